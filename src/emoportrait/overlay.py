"""Draw tracked landmarks and head pose over frames, to check a track by eye."""

from __future__ import annotations

import cv2
import numpy as np

from .face import GROUPS

_CONTOURS = ("face_oval", "left_eye", "right_eye", "outer_lips", "inner_lips")
_FOUND_COLOUR = (0, 255, 255)
_HELD_COLOUR = (255, 140, 0)
_AXIS_COLOURS = ((255, 0, 0), (255, 255, 0), (60, 60, 255))  # x red, y yellow, z blue


def draw_overlay(
    frame: np.ndarray,
    landmarks: np.ndarray,
    rotation: np.ndarray,
    euler_deg: np.ndarray,
    found: bool,
) -> np.ndarray:
    """Return a copy of ``frame`` with the face drawn on it.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(478, 3)`` pixels.
        rotation: ``(3, 3)`` head rotation (canonical → image).
        euler_deg: ``(3,)`` yaw, pitch, roll in degrees, printed in a corner.
        found: False draws the (held or interpolated) landmarks in orange.
    """
    canvas = frame.copy()
    height, width = canvas.shape[:2]
    colour = _FOUND_COLOUR if found else _HELD_COLOUR
    thickness = max(1, round(min(height, width) / 256))
    xy = landmarks[:, :2]
    for x, y in xy.round().astype(int):
        cv2.circle(canvas, (x, y), max(1, thickness // 2), colour, -1)
    for name in _CONTOURS:
        points = xy[GROUPS[name]].round().astype(np.int32)
        cv2.polylines(canvas, [points], True, (0, 255, 0), thickness, cv2.LINE_AA)
    origin = xy[GROUPS["nose"]].mean(axis=0)
    length = 0.5 * np.ptp(xy[GROUPS["face_oval"], 0])
    for axis, axis_colour in zip(rotation.T, _AXIS_COLOURS):
        tip = origin + length * axis[:2]
        cv2.arrowedLine(canvas, tuple(origin.round().astype(int)), tuple(tip.round().astype(int)),
                        axis_colour, thickness + 1, cv2.LINE_AA, tipLength=0.15)
    yaw, pitch, roll = euler_deg
    label = f"yaw {yaw:+.0f}  pitch {pitch:+.0f}  roll {roll:+.0f}" + ("" if found else "  (lost)")
    scale = max(0.4, min(height, width) / 600)
    cv2.putText(canvas, label, (8, round(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thickness + 1, cv2.LINE_AA)
    return canvas
