"""Driven faces that never fold: the expression is eased where it would turn the mesh over.

A displacement field that is strong where the skin is thin (disgust raising the nose
wings, a tightened lower lid) can push a mesh point past its neighbours. The triangle
between them then turns over, and the warp renderer draws the skin it covers twice:
a crease that looks like a cut beside the nose. :func:`unfold` finds, in each frame,
the triangles of the frontal ``(x, y)`` mesh (:data:`~.face.landmarks.MESH_TRIANGLES`)
that the expression squeezes below ``min_area_ratio`` of their area on the identity,
or turns over, and draws the displacement of their corners toward the triangle's
common move (the mean of its corners'), keeping ``step`` of the difference, round
after round, until none is left (at most ``max_rounds`` rounds). A fold comes from
corners moving *apart*; moving together (a jaw drop carrying the lower lip and the
chin) is kept, and everywhere else the expression is untouched.

Triangles already degenerate on the identity (slivers along the lid and lip contours,
under ``sliver_fraction`` of the median area) flip at the slightest bend and are not
judged. The eyes and the mouth are holes of the mesh, so blinks and a closing mouth
are never eased.

All in the canonical face frame (x right, y down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .face.landmarks import MESH_TRIANGLES, signed_areas


@dataclass(frozen=True)
class UnfoldConfig:
    """How :func:`unfold` eases folding expressions."""

    min_area_ratio: float = 0.1   # a triangle squeezed below this share of its identity area folds
    step: float = 0.8             # each round keeps this share of a folding corner's own move
    max_rounds: int = 24          # at most this many rounds (0.8^24: 0.5 % of the difference left)
    sliver_fraction: float = 0.1  # identity triangles under this share of the median area are not judged


def folding(identity: np.ndarray, expression: np.ndarray, config: UnfoldConfig = UnfoldConfig()
            ) -> tuple[np.ndarray, np.ndarray]:
    """The judged triangles ``(F, 3)`` and, per frame, which of them fold ``(T, F)`` bool."""
    base = signed_areas(identity, MESH_TRIANGLES)
    judged = np.abs(base) >= config.sliver_fraction * np.median(np.abs(base))
    triangles, base = MESH_TRIANGLES[judged], base[judged]
    return triangles, signed_areas(identity[None] + expression, triangles) / base < config.min_area_ratio


def unfold(identity: np.ndarray, expression: np.ndarray, config: UnfoldConfig = UnfoldConfig(),
           pinned: np.ndarray | None = None) -> np.ndarray:
    """The expression eased where it folds the face (see the module docstring).

    Args:
        identity: ``(478, 3)`` canonical identity face.
        expression: ``(T, 478, 3)`` canonical displacements from it.
        pinned: ``(478,)`` or ``(T, 478)`` in [0, 1]: how firmly each point keeps its own
            move (1: it is never eased, its free neighbours give way instead; the skin under
            a glasses frame, say, which moves with the head only).

    Returns:
        ``(T, 478, 3)`` displacements of the expression's dtype.
    """
    give = np.ones(len(identity)) if pinned is None else 1.0 - np.clip(np.asarray(pinned, np.float64), 0.0, 1.0)
    result = np.array(expression, np.float64)
    identity = np.asarray(identity, np.float64)
    for _ in range(config.max_rounds):
        triangles, folds = folding(identity, result, config)
        if not folds.any():
            break
        frames, faces = np.nonzero(folds)
        corners = triangles[faces]                               # (K, 3) vertex indices
        means = result[frames[:, None], corners].mean(axis=1)    # (K, 3) each triangle's common move
        total = np.zeros_like(result)
        count = np.zeros(result.shape[:2])
        np.add.at(total, (frames[:, None], corners), means[:, None, :])
        np.add.at(count, (frames[:, None], corners), 1.0)
        eased = count > 0
        share = (1.0 - config.step) * np.broadcast_to(give, count.shape)[eased][:, None]
        result[eased] += share * (total[eased] / count[eased][:, None] - result[eased])
    return result.astype(np.asarray(expression).dtype, copy=False)
