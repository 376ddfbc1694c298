"""The target video's own mouths, retrieved to draw a driven mouth (after Video Rewrite).

A talking target video already shows its person's lips, teeth and tongue in many
shapes. :class:`MouthBank` describes the mouth of every frame where the face was
found by its lip landmarks, frontalised (the head pose removed with the rigid
points, :mod:`emoportrait.geometry`) and in face-size units, and by the opening
between its inner lips at nine places across the mouth, which counts
``gap_weight`` times as much (a pout and an open mouth can have similar contours). For each output frame,
:meth:`MouthBank.choose` returns the frame whose mouth is nearest the driven one,
so the renderer can warp that frame's mouth (a small warp, as the shapes nearly
agree) into place. Choices are sticky: the frame chosen last, or its neighbour in
time, is kept unless another is better by ``switch_cost``, so a continuing mouth
motion plays the target's own frames in order instead of flickering between them.
A driven mouth that no frame shows (farther than ``max_distance``) gets ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..face.landmarks import GROUPS, RIGID, rigid_radius
from ..geometry import estimate_pose, frontalize
from .mouth import LOWER_CHAIN, UPPER_CHAIN

_LIPS = GROUPS["lips"]
_GAP_PAIRS = np.stack([UPPER_CHAIN, LOWER_CHAIN])[:, 1:-1]  # (2, 9): across the mouth, corners left out


@dataclass(frozen=True)
class BankConfig:
    """Choice of mouth frames (distances: RMS of lip points, in face-size units)."""

    max_distance: float = 0.2     # no frame nearer than this: the painted interior is used instead
    gap_weight: float = 3.0       # weight of the inner-lip openings against the lip contours
    switch_cost: float = 0.01     # a frame other than the last one (or its neighbours) must win by this
    min_frames: int = 10          # videos with fewer found frames keep no bank


class MouthBank:
    """Mouth shapes of a target video's frames, for retrieval.

    Args:
        landmarks: ``(T, 478, 3)`` tracked pixels of the target's frames.
        found: ``(T,)`` bool, frames where the face was seen (only those are chosen).
        config: Settings.
    """

    def __init__(self, landmarks: np.ndarray, found: np.ndarray, config: BankConfig = BankConfig()) -> None:
        self.config = config
        self.frames = np.flatnonzero(found)
        reference = landmarks[self.frames[0]].astype(np.float64)
        self._reference = reference
        self._unit = float(rigid_radius(reference))
        self._shapes, self._gaps = self._describe(landmarks[self.frames].astype(np.float64))
        self._last: int | None = None

    def _describe(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(K, 478, 3)`` pixels → ``(K, 40, 2)`` frontalised lip points and ``(K, 9)``
        inner-lip openings, face-size units."""
        pose = estimate_pose(points, self._reference, indices=RIGID)
        frontal = frontalize(points, pose)[..., :2] / self._unit
        return frontal[:, _LIPS], frontal[:, _GAP_PAIRS[1], 1] - frontal[:, _GAP_PAIRS[0], 1]

    def reset(self) -> None:
        """Forget the last choice (a new video starts)."""
        self._last = None

    def distances(self, target: np.ndarray) -> np.ndarray:
        """``(K,)`` distance of each bank frame's mouth to that of ``(478, 3)`` pixels: the RMS
        distance of the lip points plus ``gap_weight`` times the RMS difference of the openings."""
        shape, gaps = self._describe(np.asarray(target, np.float64)[None])
        contour = np.sqrt(((self._shapes - shape) ** 2).sum(-1).mean(-1))
        return contour + self.config.gap_weight * np.sqrt(((self._gaps - gaps) ** 2).mean(-1))

    def choose(self, target: np.ndarray) -> int | None:
        """Index (into the video's frames) of the frame to take the mouth of ``(478, 3)``
        target pixels from, or None if no frame shows a mouth that near."""
        distance = self.distances(target)
        cost = distance + self.config.switch_cost
        if self._last is not None:
            position = int(np.searchsorted(self.frames, self._last))
            neighbours = [p for p in (position - 1, position, position + 1) if 0 <= p < len(self.frames)]
            cost[neighbours] -= self.config.switch_cost
        best = int(np.argmin(cost))
        if distance[best] > self.config.max_distance:
            self._last = None
            return None
        self._last = int(self.frames[best])
        return self._last
