"""Glasses: found on the nose bridge, and the face points their frames cover.

Driven brows and lids move the skin around the eyes; a warp that moves it bends the
frames of glasses lying on it. :func:`wears_glasses` looks for a frame's bridge: a
thin, sharp horizontal edge across the nose between the eyes, at the height of the
tops of the eyes, against the smooth nose below it (vertical-gradient peak over the
nose's mean gradient). :func:`frame_weights` then marks the face points a typical frame
covers (a band around each eye, the bridge), so the expression can leave them where
the head puts them (:func:`emoportrait.neutralise` is not involved: only the driven
expression is held back there).

Measured on ``shared/media`` portraits and matplotlib's Grace Hopper photo: the bridge
score is 11.7 and 18.2 for the two faces with metal or plastic frames, 7.8 for thin
transparent frames, and 1.4-8.8 for five faces without glasses; :data:`BRIDGE_THRESHOLD`
(10) finds clearly visible frames and passes on faint ones rather than stiffening a
face without glasses.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..ramps import smoothstep
from .landmarks import GROUPS

BRIDGE_THRESHOLD = 10.0
"""Bridge score above which a face is taken to wear glasses (see the module docstring)."""

_INNER_CORNERS = (133, 362)   # inner eye corners: right eye (image left), left eye
_OUTER_CORNERS = (33, 263)
_UPPER_LIDS = (159, 386)
_LID_FREEDOM = 0.15          # the skin this near the lid margins (half eye-widths) still moves
_RIM_REACH = 2.8             # a frame covers this far from the eye centre, in half eye-widths
_EYE_SPAN_PX = 128.0          # the face is measured at this distance between the outer eye corners
MIN_EYE_SPAN_PX = 40.0
"""Faces smaller than this (outer eye corners apart, pixels) are not judged: a frame's
bridge is then a pixel or two, and bare faces score as high (see :func:`wears_glasses`)."""


def bridge_score(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """How strongly a thin horizontal edge crosses the nose between the eyes.

    The frame is scaled so the outer eye corners are :data:`_EYE_SPAN_PX` apart; in a
    strip over the middle 30 % between the inner eye corners, from 0.1 spans above the
    tops of the eyes down to 0.1 spans below the corners, the row mean of the absolute
    vertical gradient peaks at a bridge; the score is that peak over the mean gradient
    of the nose just below (+1).

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(478, 2+)`` pixels tracked on it.
    """
    span = float(np.linalg.norm(landmarks[_OUTER_CORNERS[0], :2] - landmarks[_OUTER_CORNERS[1], :2]))
    scale = _EYE_SPAN_PX / max(span, 1.0)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR  # AREA enlarges in blocks: false edges
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=interpolation)
    grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 0.8)
    gradient = np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
    points = landmarks[:, :2] * scale
    left, right = points[_INNER_CORNERS[0], 0], points[_INNER_CORNERS[1], 0]
    centre, half = (left + right) / 2.0, 0.15 * (right - left)
    top = min(points[_UPPER_LIDS[0], 1], points[_UPPER_LIDS[1], 1]) - 0.1 * _EYE_SPAN_PX
    bottom = (points[_INNER_CORNERS[0], 1] + points[_INNER_CORNERS[1], 1]) / 2.0 + 0.1 * _EYE_SPAN_PX
    x0, x1 = max(int(centre - half), 0), min(int(centre + half) + 1, gradient.shape[1])
    y0, y1 = max(int(top), 0), min(int(bottom), gradient.shape[0])
    below = gradient[y1:min(y1 + int(0.25 * _EYE_SPAN_PX), gradient.shape[0]), x0:x1]
    if y1 <= y0 or x1 <= x0 or below.size == 0:
        return 0.0
    return float(gradient[y0:y1, x0:x1].mean(axis=1).max() / (below.mean() + 1.0))


def wears_glasses(frame: np.ndarray, landmarks: np.ndarray) -> bool:
    """True if :func:`bridge_score` finds the bridge of a glasses frame.

    A face under :data:`MIN_EYE_SPAN_PX` is taken to wear none: the shared portraits
    scaled down to a 30-px eye span score 6-10 with or without glasses.
    """
    span = float(np.linalg.norm(landmarks[_OUTER_CORNERS[0], :2] - landmarks[_OUTER_CORNERS[1], :2]))
    return span >= MIN_EYE_SPAN_PX and bridge_score(frame, landmarks) > BRIDGE_THRESHOLD


def frame_weights(face_points: np.ndarray) -> np.ndarray:
    """``(478,)`` in [0, 1]: how surely each point lies under a typical glasses frame.

    ``face_points`` ``(478, 2+)`` (canonical or pixels, y down). Around each eye, by
    distance in half eye-widths: the eye and the skin within 0.15 of its lid margins are
    free (the lids still blink and widen), and everything else up to 2.8 from the eye's
    centre is covered, fading in over 0.2 and out over 0.25: the rims' band, the bridge
    between the eyes and the brows, which many frames lie on (a frame's top bar on the
    brows bends with them otherwise).
    """
    points = np.asarray(face_points, np.float64)[:, :2]
    weights = np.zeros(len(points))
    for side in ("right", "left"):
        eye = points[GROUPS[f"{side}_eye"]]
        centre = eye.mean(axis=0)
        half = (eye[:, 0].max() - eye[:, 0].min()) / 2.0
        distance = np.linalg.norm(points - centre, axis=1) / half
        contour = cv2.pointPolygonTest  # signed distance to the lid margins, + inside
        to_lids = np.array([contour(eye.astype(np.float32), (float(x), float(y)), True) for x, y in points]) / half
        band = smoothstep((-to_lids - _LID_FREEDOM) / 0.2) * smoothstep((_RIM_REACH - distance) / 0.25)
        weights = np.maximum(weights, band)
    eyes = np.concatenate([GROUPS["right_eye"], GROUPS["left_eye"], GROUPS["right_iris"], GROUPS["left_iris"]])
    weights[eyes] = 0.0
    return weights
