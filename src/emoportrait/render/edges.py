"""EVP-style edge maps: what the neural renderer draws a face from.

EVP (after vid2vid) renders each frame from an edge map of the target face: the
landmark contours of the facial parts plus edges of everything around the face.
:func:`edge_map` makes one as ``(H, W, 2)`` uint8 (0 = no ink, 255 = full ink):

- channel 0 (:data:`FACE_CHANNEL`): the face-mesh contours of the face oval,
  both brows, both eyes, the nose, and the outer and inner lips, drawn as
  anti-aliased polylines on a blank canvas from the landmarks the face should
  have. Each part is drawn along MediaPipe's own connection set (the one
  :data:`~emoportrait.face.landmarks.GROUPS` is derived from), so the brows
  keep their upper and lower contours and the nose its bridge and nostrils.
- channel 1 (:data:`BACKGROUND_CHANNEL`): Canny edges of the frame outside the
  face region (:func:`face_region`: the face-oval hull dilated), i.e. the hair,
  torso and background, where the renderer should follow the frame.

Landmarks are ``(478, 2+)`` pixels of the frame they were tracked on (x right,
y down; z ignored); maps are drawn at any ``size`` and the landmarks scaled to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from mediapipe.python.solutions import face_mesh_connections as _mesh

from ..face.landmarks import GROUPS, face_size
from ..media import resize
from .raster import SUBPIXEL_BITS

__all__ = ["BACKGROUND_CHANNEL", "EDGE_CHANNELS", "FACE_CHANNEL", "EdgeConfig", "edge_map", "edge_preview",
           "face_region", "resize", "scale_landmarks"]

FACE_CHANNEL = 0
"""Channel of the landmark contours of the facial parts."""

BACKGROUND_CHANNEL = 1
"""Channel of the frame's Canny edges outside the face region."""

EDGE_CHANNELS = 2
"""Channels of an edge map."""


_SEGMENTS = np.array(sorted(set().union(
    _mesh.FACEMESH_FACE_OVAL, _mesh.FACEMESH_LEFT_EYEBROW, _mesh.FACEMESH_RIGHT_EYEBROW,
    _mesh.FACEMESH_LEFT_EYE, _mesh.FACEMESH_RIGHT_EYE, _mesh.FACEMESH_NOSE, _mesh.FACEMESH_LIPS)))
"""``(S, 2)`` landmark index pairs: every segment of the face-part contours."""


@dataclass(frozen=True)
class EdgeConfig:
    """How edge maps are drawn (saved with a renderer run: inference draws them the same way)."""

    line_width: float = 1 / 256   # contour thickness, fraction of the map's larger side (at least 1 px)
    canny_low: float = 100.0      # Canny hysteresis thresholds on the grey frame, grey levels 0-255
    canny_high: float = 200.0
    face_margin: float = 0.12     # face region = face-oval hull dilated by this fraction of the face size


def scale_landmarks(landmarks: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """``(478, 2+)`` pixels of a ``from_size`` (W, H) frame → ``(478, 2)`` float64 pixels of ``to_size``."""
    scale = np.array(to_size, np.float64) / np.array(from_size, np.float64)
    return landmarks[:, :2].astype(np.float64) * scale


def face_region(landmark_sets: Sequence[np.ndarray], size: tuple[int, int],
                config: EdgeConfig = EdgeConfig()) -> np.ndarray:
    """``(H, W)`` uint8 mask (255 inside) of the face region of one or more faces at ``size`` (W, H).

    Each ``(478, 2+)`` landmark set (pixels of ``size``) contributes the convex hull
    of its face oval; their union is dilated by ``face_margin`` face sizes (of the
    first set, :func:`~emoportrait.face.landmarks.face_size`) with an elliptic kernel.
    """
    width, height = size
    mask = np.zeros((height, width), np.uint8)
    for landmarks in landmark_sets:
        hull = cv2.convexHull(np.round(landmarks[GROUPS["face_oval"], :2]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255)
    radius = max(1, round(config.face_margin * face_size(landmark_sets[0])))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))


def _face_contours(landmarks: np.ndarray, size: tuple[int, int], config: EdgeConfig) -> np.ndarray:
    """``(H, W)`` uint8: the face-part contours of ``(478, 2)`` landmarks (pixels of ``size``)."""
    width, height = size
    canvas = np.zeros((height, width), np.uint8)
    thickness = max(1, round(config.line_width * max(width, height)))
    segments = np.round(landmarks[_SEGMENTS] * (1 << SUBPIXEL_BITS)).astype(np.int32)  # (S, 2, 2)
    cv2.polylines(canvas, list(segments), False, 255, thickness, cv2.LINE_AA, SUBPIXEL_BITS)
    return canvas


def edge_map(landmarks: np.ndarray, frame: np.ndarray, size: tuple[int, int],
             config: EdgeConfig = EdgeConfig(), frame_landmarks: np.ndarray | None = None) -> np.ndarray:
    """The ``(H, W, 2)`` uint8 edge map (see the module docs) of a face at ``size`` (W, H).

    Args:
        landmarks: ``(478, 2+)`` pixels of ``frame``: where the face should be (channel 0).
        frame: ``(h, w, 3)`` uint8 RGB whose edges outside the face region fill
            channel 1; resized to ``size`` first (area interpolation when shrinking).
        frame_landmarks: ``(478, 2+)`` pixels of the face actually in ``frame``, when
            it differs from ``landmarks`` (rendering a new expression): the face
            region then covers both faces, so no edge of the old face leaks into
            channel 1. None: ``landmarks``.
    """
    frame_size = (frame.shape[1], frame.shape[0])
    points = scale_landmarks(landmarks, frame_size, size)
    faces = [points] if frame_landmarks is None else [points, scale_landmarks(frame_landmarks, frame_size, size)]
    grey = cv2.cvtColor(resize(frame, size), cv2.COLOR_RGB2GRAY)
    background = cv2.Canny(grey, config.canny_low, config.canny_high)
    background[face_region(faces, size, config) > 0] = 0
    return np.stack([_face_contours(points, size, config), background], axis=-1)


def edge_preview(edges: np.ndarray) -> np.ndarray:
    """``(H, W, 2)`` edge map → ``(H, W, 3)`` uint8 RGB to look at: face contours white, other edges cyan."""
    face, background = edges[..., FACE_CHANNEL], edges[..., BACKGROUND_CHANNEL]
    return np.stack([face, np.maximum(face, background), np.maximum(face, background)], axis=-1)
