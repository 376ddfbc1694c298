"""Pixel boxes and anti-aliased masks of landmark polygons, shared by the renderer's layers."""

from __future__ import annotations

import cv2
import numpy as np

SUBPIXEL_BITS = 4
"""Fixed-point bits of polygon vertices handed to OpenCV (its ``shift``)."""


def clipped_box(points: np.ndarray, pad: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Integer box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) around ``(K, 2)`` pixel ``points``,
    padded by ``pad`` pixels and clipped to a frame of ``shape`` ``(H, W, ...)``; empty when
    x1 <= x0 or y1 <= y0."""
    low = np.floor(points.min(axis=0) - pad).astype(int)
    high = np.ceil(points.max(axis=0) + pad).astype(int) + 1
    return max(low[0], 0), max(low[1], 0), min(high[0], shape[1]), min(high[1], shape[0])


def polygon_mask(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``shape`` float32 coverage in [0, 1] of a ``(K, 2)`` pixel polygon (anti-aliased)."""
    mask = np.zeros(shape, np.uint8)
    points = np.round(polygon * (1 << SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [points], 255, cv2.LINE_AA, SUBPIXEL_BITS)
    return mask.astype(np.float32) / 255.0
