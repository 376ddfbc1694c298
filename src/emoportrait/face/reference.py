"""A subject's reference (identity) face, built from its own tracked frames.

MediaPipe's canonical face model file is not shipped in the wheel, so the
reference is the generalized-Procrustes mean of the tracked frames, turned to
look straight at the camera. It defines the canonical frame that
:mod:`emoportrait.geometry` frontalises into: x toward the subject's left (image
right), y down, z away from the camera; the rigid points have centroid 0 and RMS
radius 1.
"""

from __future__ import annotations

import numpy as np

from ..geometry import generalized_procrustes
from .landmarks import GROUPS, RIGID

MAX_REFERENCE_FRAMES = 200
"""Frames (evenly spread over the found ones) averaged into the reference face."""


def frontal_rotation(shape: np.ndarray) -> np.ndarray:
    """``(3, 3)`` rotation turning ``shape`` ``(478, 3)`` to face the camera.

    x runs from the right-eye centre to the left-eye centre, y from the eyes'
    midpoint toward the mouth (made orthogonal to x), z = x × y.
    """
    right_eye = shape[GROUPS["right_eye"]].mean(axis=0)
    left_eye = shape[GROUPS["left_eye"]].mean(axis=0)
    mouth = shape[GROUPS["outer_lips"]].mean(axis=0)
    x_axis = left_eye - right_eye
    x_axis /= np.linalg.norm(x_axis)
    y_axis = mouth - (left_eye + right_eye) / 2
    y_axis -= x_axis * (y_axis @ x_axis)
    y_axis /= np.linalg.norm(y_axis)
    return np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)])


def build_reference_face(landmarks: np.ndarray, found: np.ndarray | None = None) -> np.ndarray:
    """Reference face of one subject.

    Args:
        landmarks: ``(T, 478, 3)`` tracked landmarks, pixels.
        found: ``(T,)`` bool, frames to use (default all).

    Returns:
        ``(478, 3)`` float64 frontal reference face in canonical units.
    """
    frames = np.flatnonzero(np.ones(len(landmarks), bool) if found is None else found)
    if len(frames) > MAX_REFERENCE_FRAMES:
        frames = frames[np.linspace(0, len(frames) - 1, MAX_REFERENCE_FRAMES).round().astype(int)]
    mean = generalized_procrustes(landmarks[frames], indices=RIGID)
    return mean @ frontal_rotation(mean).T
