"""Aligned face crops from tracked landmarks, the input of every recognizer.

A crop is a similarity warp of the frame that puts the two eye centres at fixed
places, level, so faces of any size, position and roll look alike:
the eyes sit at 30 % and 70 % of the width and 38 % of the height, which frames
the face from the hairline to just below the chin (as FER2013 and RAF-DB crops do).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..face import GROUPS

EYE_Y = 0.38
EYE_X = (0.30, 0.70)  # the subject's right eye (image left), then left eye


def _crop_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """``(2, 3)`` affine matrix taking frame pixels to crop pixels."""
    right_eye = landmarks[GROUPS["right_eye"], :2].mean(axis=0)
    left_eye = landmarks[GROUPS["left_eye"], :2].mean(axis=0)
    source = np.stack([right_eye, left_eye]).astype(np.float32)
    target = np.array([[EYE_X[0] * size, EYE_Y * size], [EYE_X[1] * size, EYE_Y * size]], np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(source, target)
    if matrix is None:  # two points always fit; only coincident eyes fail
        raise ValueError("eye centres coincide; the landmarks are degenerate")
    return matrix


def face_crop(frame: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Aligned face crop.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(478, 2+)`` pixels of that frame.
        size: side of the square crop in pixels.

    Returns:
        ``(size, size, 3)`` uint8 RGB; outside the frame is filled by edge replication.
    """
    matrix = _crop_matrix(landmarks, size)
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_AREA if size < 100 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def face_crops(frames: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """``(T, H, W, 3)`` frames + ``(T, 478, 2+)`` landmarks → ``(T, size, size, 3)`` uint8 crops."""
    return np.stack([face_crop(frame, points, size) for frame, points in zip(frames, landmarks)])
