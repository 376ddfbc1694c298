"""No-reference sharpness of frames: CPBD (Narvekar & Karam, IEEE TIP 2011), as the
talking-head papers report it.

Each 64-pixel block with enough Canny edges is an edge block; along each edge pixel's
gradient direction the edge's width is measured, and the probability that a viewer
detects blur there follows from the just-noticeable width ``w_JNB`` (5 px at contrasts
up to 50 grey levels, else 3). CPBD is the share of edge pixels whose blur a viewer
would not detect: 1 is sharp.
"""

from __future__ import annotations

import contextlib
import math
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from skimage.feature import canny

from .. import media

__all__ = ["CPBD_MIN_SIZE", "SHARPNESS_EVERY", "cpbd", "video_sharpness"]

SHARPNESS_EVERY = 5
"""CPBD is averaged over every 5th frame (it changes slowly and costs the most)."""

CPBD_MIN_SIZE = 64         # block side, pixels: smaller images have no block to measure
_CPBD_EDGE_SHARE = 0.002    # a block is an edge block above this share of Canny edge pixels
_CPBD_BETA = 3.6            # exponent of the probability-of-blur-detection model
_CPBD_LOW_CONTRAST = 50     # grey levels; blocks up to this contrast have w_JNB = 5, others 3
_P_JNB_PERCENT = 63  # 1 - exp(-1) = 0.632, in percent: the blur probability of an edge w_JNB wide


def _grey(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB or ``(H, W)`` uint8 → ``(H, W)`` float64 grey levels 0-255 (BT.601 luma)."""
    image = np.asarray(image, np.uint8)
    return (cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image).astype(np.float64)


_SOBEL_X = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0
_MAX_HALF_WIDTH = 101  # an edge's width is counted up to this many pixels on each side


def _sobel_edges(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool edges of the Octave-style Sobel detector the ``cpbd`` package uses:
    the squared horizontal derivative (kernel normalised to unit absolute sum) above
    ``2 sqrt(mean)`` of itself, thinned to pixels larger than both neighbours along the
    row or along the column (zero beyond the border)."""
    strength = ndimage.convolve(grey, _SOBEL_X) ** 2
    strength[strength <= 2.0 * math.sqrt(float(strength.mean()))] = 0.0
    padded = np.pad(strength, 1)
    centre = padded[1:-1, 1:-1]
    along_row = (centre > padded[1:-1, :-2]) & (centre > padded[1:-1, 2:])
    along_column = (centre > padded[:-2, 1:-1]) & (centre > padded[2:, 1:-1])
    return along_row | along_column


def _monotone_runs(step_sign: np.ndarray, forward: bool) -> np.ndarray:
    """``(H, W-1)`` how many consecutive row steps share the sign ``True`` of ``step_sign``,
    starting at each step and going right (``forward``) or ending there going left."""
    runs = np.zeros(step_sign.shape, np.int64)
    columns = range(step_sign.shape[1] - 1, -1, -1) if forward else range(step_sign.shape[1])
    previous = np.zeros(step_sign.shape[0], np.int64)
    for column in columns:
        previous = np.where(step_sign[:, column], previous + 1, 0)
        runs[:, column] = previous
    return runs


def _edge_widths(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` edge widths (pixels) at the Sobel edges whose gradient is horizontal, 0 elsewhere.

    As Marziliano's method in the ``cpbd`` package: the gradient angle
    (``np.gradient``, 0 where the horizontal gradient is 0) is rounded to 45 degrees;
    at 0 (brighter to the right) the width runs left while the row keeps falling and
    right while it keeps rising, at ±180 the other way round, each side counting the
    pixel next to the edge and at most ``_MAX_HALF_WIDTH`` pixels. The border rows and
    columns are not measured.
    """
    gradient_y, gradient_x = np.gradient(grey)
    angle = np.where(gradient_x != 0, np.degrees(np.arctan2(gradient_y, gradient_x)), 0.0)
    quantised = 45.0 * np.round(angle / 45.0)
    steps = np.diff(grey, axis=1)              # steps[:, j] = grey[:, j + 1] - grey[:, j]
    width = grey.shape[1]
    widths = np.zeros(grey.shape)
    for rising, direction in ((True, quantised == 0.0), (False, np.abs(quantised) == 180.0)):
        sign = steps > 0 if rising else steps < 0
        before, after = _monotone_runs(sign, forward=False), _monotone_runs(sign, forward=True)
        left = np.zeros(grey.shape, np.int64)   # runs ending at step c - 2 (pixels c-2 -> c-1)
        left[:, 2:] = before[:, : width - 2]
        right = np.zeros(grey.shape, np.int64)  # runs starting at step c + 1 (pixels c+1 -> c+2)
        right[:, : width - 2] = after[:, 1:]
        measured = np.minimum(left, _MAX_HALF_WIDTH - 1) + np.minimum(right, _MAX_HALF_WIDTH - 1) + 2
        widths = np.where(direction, measured, widths)
    inside = np.zeros(grey.shape, bool)
    inside[1:-1, 1:-1] = np.any(angle)  # the package measures nothing when no gradient is horizontal-ish
    return np.where(_sobel_edges(grey) & inside, widths, 0.0)


def _blocks(array: np.ndarray) -> np.ndarray:
    """``(H, W)`` → ``(H // 64, W // 64, 64, 64)`` whole blocks (a partial last row/column is dropped)."""
    rows, cols = array.shape[0] // CPBD_MIN_SIZE, array.shape[1] // CPBD_MIN_SIZE
    cropped = array[: rows * CPBD_MIN_SIZE, : cols * CPBD_MIN_SIZE]
    return cropped.reshape(rows, CPBD_MIN_SIZE, cols, CPBD_MIN_SIZE).swapaxes(1, 2)


def cpbd(image: np.ndarray) -> float:
    """CPBD sharpness (Narvekar & Karam, IEEE TIP 2011): in [0, 1], higher = sharper.

    The image is cut into 64 x 64 blocks; a block is an edge block when more than
    0.2 % of its pixels are Canny edges. At each measurable Sobel edge pixel of an
    edge block (:func:`_sobel_edges`) the edge width ``w`` is measured along the
    row; with ``w_JNB`` = 5 px if the block's contrast (max - min grey level) is at
    most 50, else 3 px, the probability of detecting blur is
    ``P = 1 - exp(-(w / w_JNB) ** 3.6)``. CPBD is the share of these edges with
    ``P <= P_JNB = 1 - exp(-1) = 0.63``, i.e. at most ``w_JNB`` wide.

    The steps follow the ``cpbd`` package (1.0.7), the Python port of the authors' code
    that talking-face evaluations call: scikit-image's Canny with its defaults on the
    0-255 grey levels for the edge blocks, the Octave-style Sobel edges of
    :func:`_sobel_edges`, Marziliano widths (:func:`_edge_widths`), and ``P`` rounded to
    a percent before it is compared with 0.63. ``tests/test_metrics.py`` holds the
    package's values on blurred images; this matches them within 0.01.

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W)`` grey, uint8.

    Returns:
        CPBD; 0 when no edge block has a measurable edge (as the authors' code: a
        blank frame and a heavily blurred one both score 0).

    Raises:
        ValueError: the image is smaller than one block.
    """
    grey = _grey(image)
    if min(grey.shape) < CPBD_MIN_SIZE:
        raise ValueError(f"CPBD needs an image of at least {CPBD_MIN_SIZE} x {CPBD_MIN_SIZE} pixels, "
                         f"got {grey.shape[1]} x {grey.shape[0]}")
    widths = _blocks(_edge_widths(grey))
    edge_blocks = _blocks(canny(grey)).sum(axis=(2, 3)) > _CPBD_EDGE_SHARE * CPBD_MIN_SIZE**2
    contrast = np.floor(np.ptp(_blocks(grey), axis=(2, 3)))
    w_jnb = np.where(contrast <= _CPBD_LOW_CONTRAST, 5.0, 3.0)[..., None, None]
    counted = (widths > 0) & edge_blocks[..., None, None]
    if not counted.any():
        return 0.0
    percent = np.round(100.0 * (1.0 - np.exp(-((widths / w_jnb) ** _CPBD_BETA))))
    return float(np.count_nonzero(counted & (percent <= _P_JNB_PERCENT)) / np.count_nonzero(counted))


def video_sharpness(path: str | Path, every: int = SHARPNESS_EVERY) -> float:
    """Mean :func:`cpbd` of every ``every``-th frame of a video (frames 0, every, 2 every, ...)."""
    with contextlib.closing(media.iter_frames(path)) as frames:
        return float(np.mean([cpbd(frame) for frame in islice(frames, 0, None, every)]))
