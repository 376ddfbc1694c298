"""Glasses: found on the nose bridge, and the face points their frames cover.

Driven brows and lids move the skin around the eyes; a warp that moves it bends the
frames of glasses lying on it. :func:`wears_glasses` looks for a frame's bridge: a
thin, sharp horizontal edge across the nose between the eyes, at the height of the
tops of the eyes, against the smooth nose below it (vertical-gradient peak over the
nose's mean gradient). :func:`frame_weights` then marks the face points a typical frame
covers (a band around each eye, the bridge), so the expression can leave them where
the head puts them (:func:`emoportrait.neutralise` is not involved: only the driven
expression is held back there; :func:`hold_frames`). Thin (metal) frames, told by the
height of their bridge (:func:`thin_frames`), run under the brows: over them the band stops
at the brows, which move; thick (plastic) frames often lie on the brows, which they then hold.

Measured on ``shared/media`` portraits and matplotlib's Grace Hopper photo: the bridge
score is 11.6 and 17.7 for the two faces with metal or plastic frames, 7.8 for thin
transparent frames, and 1.4-8.8 for five faces without glasses; :data:`BRIDGE_THRESHOLD`
(10) finds clearly visible frames and passes on faint ones rather than stiffening a
face without glasses.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..media import resize
from ..ramps import smoothstep
from .landmarks import GROUPS

BRIDGE_THRESHOLD = 10.0
"""Bridge score above which a face is taken to wear glasses (see the module docstring)."""
THIN_BRIDGE = 0.05
"""Bridges at most this tall (eye spans, :func:`bridge_height`) are taken for thin frames,
whose rims run under the brows: the brows above them may move (:func:`frame_weights`)."""

_INNER_CORNERS = (133, 362)   # inner eye corners: right eye (image left), left eye
_OUTER_CORNERS = (33, 263)
_UPPER_LIDS = (159, 386)
_LOWER_BROWS = {"right": (46, 53, 52, 65, 55), "left": (276, 283, 282, 295, 285)}  # lower edge of the brows
_GLABELLA_TOP = (107, 336)   # the brows' inner ends, upper edge
_LID_FREEDOM = 0.15          # the skin this near the lid margins (half eye-widths) still moves
_BROW_RELEASE = 0.1          # over thin frames, the hold fades out over this (half eye-widths) by the brows
_RIM_REACH = 2.8             # a frame covers this far from the eye centre, in half eye-widths
_EYE_SPAN_PX = 128.0          # the face is measured at this distance between the outer eye corners
MIN_EYE_SPAN_PX = 40.0
"""Faces smaller than this (outer eye corners apart, pixels) are not judged: a frame's
bridge is then a pixel or two, and bare faces score as high (see :func:`wears_glasses`)."""


def _bridge_region(frame: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, slice, slice, slice] | None:
    """Where a bridge would cross the nose, and the nose just below it.

    The frame is scaled so the outer eye corners are :data:`_EYE_SPAN_PX` apart; the
    strip covers the middle 30 % between the inner eye corners, from 0.1 spans above
    the tops of the eyes down to 0.1 spans below the corners; the nose below it is
    0.25 spans high.

    Returns:
        ``(grey, rows, columns, rows_below)``: the scaled frame's float32 grey levels and
        the strip's and the nose's slices of it; None where the face leaves no such strip.
    """
    span = float(np.linalg.norm(landmarks[_OUTER_CORNERS[0], :2] - landmarks[_OUTER_CORNERS[1], :2]))
    scale = _EYE_SPAN_PX / max(span, 1.0)
    small = resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)))  # AREA would enlarge in blocks
    grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 0.8)
    points = landmarks[:, :2] * scale
    left, right = points[_INNER_CORNERS[0], 0], points[_INNER_CORNERS[1], 0]
    centre, half = (left + right) / 2.0, 0.15 * (right - left)
    top = min(points[_UPPER_LIDS[0], 1], points[_UPPER_LIDS[1], 1]) - 0.1 * _EYE_SPAN_PX
    bottom = (points[_INNER_CORNERS[0], 1] + points[_INNER_CORNERS[1], 1]) / 2.0 + 0.1 * _EYE_SPAN_PX
    x0, x1 = max(int(centre - half), 0), min(int(centre + half) + 1, grey.shape[1])
    y0, y1 = max(int(top), 0), min(int(bottom), grey.shape[0])
    y2 = min(y1 + int(0.25 * _EYE_SPAN_PX), grey.shape[0])
    if y1 <= y0 or x1 <= x0 or y2 <= y1:
        return None
    return grey, slice(y0, y1), slice(x0, x1), slice(y1, y2)


def bridge_score(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """How strongly a thin horizontal edge crosses the nose between the eyes.

    In the strip of :func:`_bridge_region`, the row mean of the absolute vertical
    gradient peaks at a bridge; the score is that peak over the mean gradient of the
    nose just below (+1).

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(478, 2+)`` pixels tracked on it.
    """
    region = _bridge_region(frame, landmarks)
    if region is None:
        return 0.0
    grey, rows, columns, below = region
    gradient = np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
    return float(gradient[rows, columns].mean(axis=1).max() / (gradient[below, columns].mean() + 1.0))


def bridge_height(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """How tall the bridge of a glasses frame is, in eye spans (outer eye corner to corner).

    In the strip of :func:`_bridge_region`, each row's mean grey level is compared with
    the nose's just below; the bridge is the run of rows around the largest difference
    that differ by over a third of it. Measured: 0.023 for the thin metal frames of
    ``shared/media``'s glasses portrait, 0.10 for Grace Hopper's plastic ones.
    """
    region = _bridge_region(frame, landmarks)
    if region is None:
        return 0.0
    grey, rows, columns, below = region
    difference = np.abs(grey[rows, columns].mean(axis=1) - grey[below, columns].mean())
    peak = int(np.argmax(difference))
    over = difference > difference[peak] / 3.0
    low, high = peak, peak
    while low > 0 and over[low - 1]:
        low -= 1
    while high < len(over) - 1 and over[high + 1]:
        high += 1
    return (high - low + 1) / _EYE_SPAN_PX


def wears_glasses(frame: np.ndarray, landmarks: np.ndarray) -> bool:
    """True if :func:`bridge_score` finds the bridge of a glasses frame.

    A face under :data:`MIN_EYE_SPAN_PX` is taken to wear none: the shared portraits
    scaled down to a 30-px eye span score 6-10 with or without glasses.
    """
    span = float(np.linalg.norm(landmarks[_OUTER_CORNERS[0], :2] - landmarks[_OUTER_CORNERS[1], :2]))
    return span >= MIN_EYE_SPAN_PX and bridge_score(frame, landmarks) > BRIDGE_THRESHOLD


def thin_frames(frame: np.ndarray, landmarks: np.ndarray) -> bool:
    """True if the glasses' bridge is at most :data:`THIN_BRIDGE` tall (see :func:`bridge_height`)."""
    return bridge_height(frame, landmarks) <= THIN_BRIDGE


def frame_weights(face_points: np.ndarray, brows: str = "held") -> np.ndarray:
    """``(478,)`` in [0, 1]: how surely each point lies under a typical glasses frame.

    ``face_points`` ``(478, 2+)`` (canonical or pixels, y down). Around each eye, by
    distance in half eye-widths: the eye and the skin within 0.15 of its lid margins are
    free (the lids still blink and widen), and everything else up to 2.8 from the eye's
    centre is covered, fading in over 0.2 and out over 0.25: the rims' band, the bridge
    between the eyes and the brows, which many frames lie on (a frame's top bar on the
    brows bends with them otherwise).

    ``brows`` says how far up the band reaches over thin frames (:func:`thin_frames`), whose
    rims run under the brows: ``"held"`` (the brows too, for thick frames), ``"edge"`` (up to
    the brows' lower edge, which stays: the rims that touch it do too) or ``"free"`` (it ends
    just under that edge, fading out over 0.1 below it, so the brows move whole).
    """
    if brows not in ("held", "edge", "free"):
        raise ValueError(f"brows must be 'held', 'edge' or 'free', not {brows!r}")
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
    if brows != "held":
        weights *= _below_the_brows(points, through_the_edge=brows == "edge")
    return weights


def hold_frames(identity: np.ndarray, expression: np.ndarray, thin: bool) -> tuple[np.ndarray, np.ndarray]:
    """The expression with the skin under glasses frames moving with the head only.

    Over thick frames the brows are held too (:func:`frame_weights` ``"held"``). Over thin
    ones a brow that rises moves whole (``"free"``: held at its lower edge, a raised brow
    stretched into a dark smear), one that comes down keeps its lower edge where the rims
    touch it (``"edge"``: moved, it bent the rims and the bridge between them).

    Args:
        identity: ``(478, 3)`` canonical face (y down).
        expression: ``(T, 478, 3)`` canonical displacements.
        thin: the frames are thin (:func:`thin_frames`).

    Returns:
        ``(held expression (T, 478, 3), weights (T, 478))``: how much of each point's move was
        taken off (for :func:`emoportrait.unfold.unfold`'s ``pinned``).
    """
    band = frame_weights(identity)
    if thin:
        points = np.asarray(identity, np.float64)[:, :2]
        rising = expression[..., 1] < 0.0   # y down
        weights = band * np.where(rising, _below_the_brows(points, through_the_edge=False),
                                  _below_the_brows(points, through_the_edge=True))
    else:
        weights = np.broadcast_to(band, expression.shape[:2])
    return expression * (1.0 - weights)[..., None].astype(expression.dtype), weights


def _below_the_brows(points: np.ndarray, through_the_edge: bool) -> np.ndarray:
    """``(478,)`` 1 below the brows' lower edge, 0 from :data:`_BROW_RELEASE` half eye-widths
    above it (``through_the_edge``) or from the edge itself (else: 1 from 0.1 below it); 1
    beyond the eyes' bands. Between the brows the edge rises to the height of their upper
    edge at the midline: a frame's bridge crosses the nose there."""
    eyes = [points[GROUPS[f"{side}_eye"]] for side in ("right", "left")]
    half = np.mean([(eye[:, 0].max() - eye[:, 0].min()) / 2.0 for eye in eyes])
    lower = points[list(_LOWER_BROWS["right"] + _LOWER_BROWS["left"])]
    middle = np.array([[points[list(_GLABELLA_TOP), 0].mean(), points[list(_GLABELLA_TOP), 1].mean()]])
    edge = np.concatenate([lower, middle])
    edge = edge[np.argsort(edge[:, 0])]
    height = np.interp(points[:, 0], edge[:, 0], edge[:, 1])  # the edge's y above each point (held at its ends)
    reach = _RIM_REACH * half
    beside = (points[:, 0] >= eyes[0][:, 0].mean() - reach) & (points[:, 0] <= eyes[1][:, 0].mean() + reach)
    keep = smoothstep((points[:, 1] - height) / (_BROW_RELEASE * half) + (1.0 if through_the_edge else 0.0))
    return np.where(beside, keep, 1.0)
