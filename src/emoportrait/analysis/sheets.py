"""Contact sheets: frames side by side in one PNG, to be looked at.

A sheet is a grid of equally sized cells, one row per video (real beside generated,
say) and one column per frame, each cell a crop around the face or the mouth,
upscaled so that small faces can be judged by eye.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .. import media
from ..face import GROUPS

_LABEL_COLOUR = (255, 255, 0)
_GAP = 2  # pixels between cells


def region_box(landmarks: np.ndarray, region: str = "face", margin: float = 0.15) -> np.ndarray:
    """Square box ``(x0, y0, side)`` in pixels around the face or the mouth of ``(478, 2+)``
    landmarks, widened by ``margin`` of its side on each edge."""
    points = landmarks[GROUPS["lips"] if region == "mouth" else slice(None), :2]
    low, high = points.min(axis=0), points.max(axis=0)
    side = float((high - low).max()) * (1.0 + 2.0 * margin) * (1.6 if region == "mouth" else 1.0)
    centre = (low + high) / 2.0
    return np.array([centre[0] - side / 2.0, centre[1] - side / 2.0, side])


def crop(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8 crop of ``frame`` inside ``box`` (see :func:`region_box`);
    outside the frame is black."""
    x0, y0, side = box
    scale = size / side
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
    interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    return cv2.warpAffine(frame, matrix, (size, size), flags=interpolation, borderValue=(0, 0, 0))


def _labelled(cell: np.ndarray, text: str) -> np.ndarray:
    if text:
        cell = cell.copy()
        cv2.putText(cell, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(cell, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _LABEL_COLOUR, 1, cv2.LINE_AA)
    return cell


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[Sequence[str]] | None = None
                  ) -> np.ndarray:
    """One image of ``rows`` of equally sized ``(h, w, 3)`` uint8 cells, each labelled.

    Args:
        rows: cells per row (rows may have different lengths).
        labels: the same shape as ``rows``: a short text drawn on each cell ("" for none).

    Returns:
        ``(H, W, 3)`` uint8 RGB, the rows stacked with a 2-pixel dark gap.
    """
    height, width = rows[0][0].shape[:2]
    columns = max(len(row) for row in rows)
    sheet = np.full((len(rows) * (height + _GAP), columns * (width + _GAP), 3), 24, np.uint8)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            text = labels[r][c] if labels is not None else ""
            y, x = r * (height + _GAP), c * (width + _GAP)
            sheet[y:y + height, x:x + width] = _labelled(cell, text)
    return sheet


def write_sheet(path: str | Path, rows: Sequence[Sequence[np.ndarray]],
                labels: Sequence[Sequence[str]] | None = None) -> Path:
    """Write :func:`contact_sheet` of ``rows`` as a PNG; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    media.write_image(path, contact_sheet(rows, labels))
    return path
