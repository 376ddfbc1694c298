"""Finding faces too small for MediaPipe's face mesh, and meshing them on a crop.

The face mesh looks for faces with MediaPipe's short-range detector on the frame scaled
down to 128², so a face under about a tenth of the frame's longer side (a wide shot,
half-body framing, a group photo, a 24-megapixel photo) is never found. This module
finds such faces with the full-range detector on a pyramid of overlapping square tiles
(:func:`find_faces`): the whole frame first, then tiles half as large, and so on until
a face is found or the tiles would be smaller than :data:`MIN_TILE`. Each face is then
meshed on a crop around it, scaled to :data:`CROP_SIZE` (:func:`mesh_on_crop`), and its
landmarks are mapped back to the frame's pixels.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from ..media import resize

MIN_TILE = 320
"""Smallest tile side searched, pixels of the frame (the detector sees 192²)."""

CROP_SIZE = 384
"""Side of the crop the mesh sees around a small face, pixels."""

CROP_MARGIN = 2.4
"""Crop side over the face box's longer side (the mesh wants the whole head in view)."""


def tiles(width: int, height: int) -> Iterator[tuple[int, int, int]]:
    """Square tiles ``(x0, y0, side)`` covering a ``width × height`` frame, coarse to fine.

    Level 0 is one tile, the frame's shorter side (centred); each next level halves the
    side and overlaps neighbours by half a tile, so every face smaller than half a tile
    lies whole inside one of them. Levels stop at :data:`MIN_TILE`.
    """
    side = min(width, height)
    yield (width - side) // 2, (height - side) // 2, side
    side //= 2
    while side >= MIN_TILE:
        step = side // 2
        for y0 in _starts(height, side, step):
            for x0 in _starts(width, side, step):
                yield x0, y0, side
        side //= 2


def _starts(length: int, side: int, step: int) -> list[int]:
    """Tile starts every ``step`` along ``length``, the last one flush with the end."""
    starts = list(range(0, max(length - side, 0) + 1, step))
    if starts[-1] + side < length:
        starts.append(length - side)
    return starts


def find_faces(frame: np.ndarray, detector, max_faces: int) -> list[np.ndarray]:
    """Boxes ``(4,)`` ``x0, y0, x1, y1`` (frame pixels) of the faces the full-range
    ``detector`` (MediaPipe ``FaceDetection``) finds in ``frame`` (``(H, W, 3)`` uint8 RGB),
    from the first pyramid level of :func:`tiles` that holds any; at most ``max_faces``,
    duplicates from overlapping tiles merged."""
    height, width = frame.shape[:2]
    found: list[np.ndarray] = []
    level_side = None
    for x0, y0, side in tiles(width, height):
        if side != level_side:
            if found:
                break
            level_side = side
        tile = np.ascontiguousarray(frame[y0:y0 + side, x0:x0 + side])
        for detection in detector.process(tile).detections or []:
            rel = detection.location_data.relative_bounding_box
            box = np.array([rel.xmin, rel.ymin, rel.xmin + rel.width, rel.ymin + rel.height]) * side
            box = box + (x0, y0, x0, y0)
            if not any(_overlap(box, other) > 0.5 for other in found):
                found.append(box)
    return found[:max_faces]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area."""
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    smaller = min((a[2:] - a[:2]).prod(), (b[2:] - b[:2]).prod())
    return float(inter / smaller) if smaller > 0 else 0.0


def mesh_on_crop(frame: np.ndarray, box: np.ndarray, mesh) -> np.ndarray | None:
    """``(478, 3)`` landmarks (frame pixels, z scaled like x) of the face in ``box``,
    meshed by ``mesh`` (a static-image MediaPipe ``FaceMesh``) on a square crop
    :data:`CROP_MARGIN` times the box's longer side, scaled to :data:`CROP_SIZE`;
    None when the mesh finds no face there."""
    height, width = frame.shape[:2]
    centre = (box[:2] + box[2:]) / 2
    half = CROP_MARGIN * float((box[2:] - box[:2]).max()) / 2
    x0, y0 = (int(max(v, 0)) for v in np.floor(centre - half))
    x1, y1 = int(min(np.ceil(centre[0] + half), width)), int(min(np.ceil(centre[1] + half), height))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    scale = CROP_SIZE / max(x1 - x0, y1 - y0)
    crop = resize(frame[y0:y1, x0:x1], (round((x1 - x0) * scale), round((y1 - y0) * scale)), enlarge=cv2.INTER_CUBIC)
    result = mesh.process(np.ascontiguousarray(crop))
    if not result.multi_face_landmarks:
        return None
    crop_height, crop_width = crop.shape[:2]
    points = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], np.float32)
    points *= np.array([crop_width, crop_height, crop_width], np.float32)
    return points / scale + np.array([x0, y0, 0.0], np.float32)
