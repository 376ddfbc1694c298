"""EVP's 3D-aware keypoint alignment, target side: identity, timeline and pose.

The driver's expression track lives in the canonical face frame. To place it on
the target, each output frame ``t`` takes a target frame ``k(t)`` (the target
video looped back and forth), that frame's own head pose, and the target's
identity face at rest:

    landmarks_t = s_k R_k (identity + expression_t) + t_k          (pixels)

so the output keeps the target's head motion while showing the driven mouth and
emotion. A still portrait gets a gentle, deterministic idle head motion instead.
"""

from __future__ import annotations

import numpy as np

from .face import GROUPS, inner_mouth_opening
from .geometry import Pose, euler_to_matrix
from .tracking import TrackResult

MOUTH_FALLOFF = 0.35
"""Canonical distance over which the rest mouth blends into the mean face (RMS-1 units)."""


def rest_identity(result: TrackResult) -> np.ndarray:
    """The target's identity face with its mouth as closed as the target ever shows it.

    The reference face (mean over the target's frames) has a half-open mouth when
    the target talks, so the region around the mouth is taken from the frontalised
    frame with the smallest inner-lip gap, blended into the reference with a
    Gaussian falloff of the distance from the lips.

    Returns:
        ``(478, 3)`` float64 canonical identity.
    """
    canonical = result.canonical[result.track.found] if result.track.found.any() else result.canonical
    closed = canonical[np.argmin(inner_mouth_opening(canonical))]
    lips = result.reference[GROUPS["lips"]]
    distance = np.linalg.norm(result.reference[:, None, :] - lips[None], axis=-1).min(axis=1)
    weight = np.exp(-0.5 * (distance / MOUTH_FALLOFF) ** 2)[:, None]
    return (1 - weight) * result.reference + weight * closed


_LID_PAIRS = ((159, 145), (386, 374))  # upper- and lower-lid middles of the right and left eye
OPEN_PERCENTILE = 90.0
"""A video's lids are taken as fully open at this percentile of their opening."""


def eye_closure(result: TrackResult) -> np.ndarray:
    """How far the target's lids are closed on each of its frames, from its own track.

    The lid opening (upper- to lower-lid middle, canonical, both eyes averaged) over
    its :data:`OPEN_PERCENTILE` over the frames where the face was seen, as closure
    ``1 - opening / open`` clipped to [0, 1]: 0 with the eyes open, 1 in a blink.
    Frames without a face count as open.

    Returns:
        ``(K,)`` float64, one per target frame.
    """
    canonical = result.canonical
    opening = np.mean([np.linalg.norm(canonical[:, lower, :2] - canonical[:, upper, :2], axis=-1)
                       for upper, lower in _LID_PAIRS], axis=0)
    found = result.track.found
    if not found.any():
        return np.zeros(len(canonical))
    wide = max(float(np.percentile(opening[found], OPEN_PERCENTILE)), 1e-6)
    return np.where(found, np.clip(1.0 - opening / wide, 0.0, 1.0), 0.0)


def pingpong_schedule(n_target: int, n_frames: int) -> np.ndarray:
    """Target frame index for each output frame, looping the target back and forth.

    ``0, 1, …, n-1, n-2, …, 1, 0, 1, …``; a target at least as long as the output
    is simply trimmed.

    Returns:
        ``(n_frames,)`` int64 indices into the target's frames.
    """
    if n_target <= 1:
        return np.zeros(n_frames, np.int64)
    period = 2 * (n_target - 1)
    phase = np.arange(n_frames) % period
    return np.where(phase < n_target, phase, period - phase).astype(np.int64)


def idle_pose(base: Pose, n_frames: int, fps: float, amplitude_deg: float = 1.5, seed: int = 0) -> Pose:
    """A still portrait's pose made alive: slow, smooth sways around ``base``'s first frame.

    Yaw, pitch and roll each follow a sum of two slow sines (0.1–0.4 Hz) with
    seeded phases, at most ``amplitude_deg`` degrees; the head turns about the
    canonical origin (between the eyes and the nose), so it stays in place.

    Returns:
        A :class:`Pose` of ``n_frames`` frames.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)[:, None] / fps
    frequencies = rng.uniform(0.1, 0.4, size=(2, 3))
    phases = rng.uniform(0, 2 * np.pi, size=(2, 3))
    sway = 0.5 * amplitude_deg * (np.sin(2 * np.pi * frequencies[0] * t + phases[0])
                                  + np.sin(2 * np.pi * frequencies[1] * t + phases[1]))
    rotation = base.rotation[0] @ euler_to_matrix(sway)
    return Pose(rotation, np.full(n_frames, base.scale[0]), np.repeat(base.translation[:1], n_frames, axis=0))


def select_frames(pose: Pose, indices: np.ndarray) -> Pose:
    """The poses of the target frames ``indices`` ``(T,)``, as a ``T``-frame :class:`Pose`."""
    return Pose(pose.rotation[indices], pose.scale[indices], pose.translation[indices])
