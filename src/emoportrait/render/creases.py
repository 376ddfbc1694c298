"""Expression creases: the skin folds that come with an expression, shaded in.

A warp moves skin, but it cannot fold it: a smile that raises the cheeks does not
deepen the nasolabial furrow, lowered brows draw no lines between them. FACS lists
these appearance changes beside the movements (Ekman, Friesen & Hager 2002), and
people read expressions by them as much as by the shapes:

* **forehead lines** (AU1, AU2): horizontal lines above brows that rise, only over
  the part of the brow that rises (the middle for AU1 alone);
* **glabellar furrows** (AU4): vertical lines between lowered, gathered brows, and a
  horizontal line over the root of the nose;
* **nasolabial furrow** (AU6, AU9): from the nose wing past the lip corner, deeper as
  the cheek or the nose wing rise; the cheek bulges over it (the lip corner is not
  judged: speech moves it);
* **infraorbital furrow and crow's feet** (AU6): under the lower lid and fanning out
  from the outer eye corner as the cheek rises;
* **nose wrinkles** (AU9): oblique lines on the side of the nose as it wrinkles;
* **a dimple** beyond the lip corner (AU14, one-sided as in contempt): where one lip
  corner is pulled out and up more than the other, a short fold curves beside it (the
  difference between the sides is judged, so symmetric speech moves draw none).

How far each is drawn is measured from the landmarks alone: the driven face is
aligned onto the frame's own face on the rigid points (so head motion cancels), and
each region's move is taken in eye spans (the distance between the outer eye
corners). Speech moves none of these regions (brows, cheeks, nose), so the creases
do not flicker with the mouth; moves away from a fold (brows lowered on a frame whose
brows were raised) draw nothing. Each crease is a soft dark line (Gaussian profile)
that multiplies the skin, redder in the shadow, and for a fold a soft highlight on the
side that bulges: the skin's own texture stays.

One move away from a fold does change the skin: a cheek that falls (a portrait's smile
taken off) has its nasolabial fold, the smile's shadow the warp carried along,
smoothed out (:func:`flatten_folds`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..face.landmarks import CHEEK, GROUPS, LIP_CORNER, NOSE_SIDE, NOSE_WING, RIGID, SIDES
from ..geometry import umeyama
from ..ramps import smoothstep
from .raster import clipped_box

SHADOW_TINT = np.array([0.8, 1.0, 1.1], np.float32)
"""Per-channel (RGB) share of a darkening: skin in shadow turns redder (light scatters in it)."""

_OUTER_EYE_CORNERS = (33, 263)
_MEDIAL = {"right": 1.0, "left": -1.0}  # sign of image x toward the midline, per side

# Landmark rows of each side, outer end first ("right": the subject's right, image left).
_BROW_TOP = {"right": (70, 63, 105, 66, 107), "left": (300, 293, 334, 296, 336)}
_FOREHEAD_LOW = {"right": (71, 68, 104, 69, 108), "left": (301, 298, 333, 299, 337)}
_FOREHEAD_HIGH = {"right": (21, 54, 103, 67, 109), "left": (251, 284, 332, 297, 338)}
_BROW_MIDDLE, _FOREHEAD_MIDDLE_LOW, _FOREHEAD_MIDDLE_HIGH = 9, 151, 10
_INNER_BROW = {"right": (107, 66, 55, 65), "left": (336, 296, 285, 295)}
_GLABELLA = {"right": (55, 107), "left": (285, 336)}  # inner brow head: lower, upper edge
_GLABELLA_MIDLINE = (8, 9)                             # the midline between the brows, low and high
_NOSE_ROOT = (193, 168, 417)
_NASOLABIAL = {"right": (203, 206, 216, 212, 202), "left": (423, 426, 436, 432, 422)}
_LOWER_LID_SKIN = {"right": (25, 110, 24, 23, 22, 26), "left": (255, 339, 254, 253, 252, 256)}
_INFRAORBITAL = {"right": (31, 228, 229, 230, 231, 232), "left": (261, 448, 449, 450, 451, 452)}
_LOWER_LID_MIDDLE = {"right": 145, "left": 374}
_OUTER_CANTHUS = {"right": 130, "left": 359}
_CROWS_FEET_TOWARD = {"right": (156, 34, 116), "left": (383, 264, 345)}
_NOSE_WRINKLES = {"right": ((188, 122), (174, 196)), "left": ((412, 351), (399, 419))}
_OTHER_SIDE = {"right": "left", "left": "right"}


@dataclass(frozen=True)
class CreaseConfig:
    """How deep the creases are drawn, and for which moves.

    Moves are in eye spans (outer eye corner to outer eye corner): a crease starts to
    show at the first number of its ``*_moves`` pair and is full at the second.
    ``*_depth`` darkens the skin at the crease's centre line by that share at full
    strength; widths are Gaussian sigmas in eye spans. ``depth`` scales everything
    (0: off).
    """

    depth: float = 1.0
    brow_rise_moves: tuple[float, float] = (0.012, 0.07)     # AU1/AU2: brow points up
    brow_lower_moves: tuple[float, float] = (0.012, 0.07)    # AU4: inner brow down or toward the midline
    cheek_rise_moves: tuple[float, float] = (0.008, 0.04)    # AU6: cheek surface up
    wing_rise_moves: tuple[float, float] = (0.008, 0.04)     # AU9: nose wing up
    nose_side_moves: tuple[float, float] = (0.008, 0.035)    # AU9: side of the nose up
    corner_pull_moves: tuple[float, float] = (0.01, 0.05)    # AU14: one lip corner out and up more than the other
    # Depths and widths: beside MEAD's M030 and W009 at level 3 (benchmarks/evp_mead.py's clips, upper
    # faces side by side at 512 px), the furrows of sad, angry and fear and the forehead lines of
    # fear read as faint pencil lines at half these depths and 0.6 of these widths.
    forehead_depth: float = 0.2
    forehead_width: float = 0.010
    glabella_depth: float = 0.3
    glabella_width: float = 0.012
    glabella_length: float = 0.2  # the furrows between the brows run this far up (eye spans)
    nasolabial_depth: float = 0.22
    nasolabial_width: float = 0.014
    infraorbital_depth: float = 0.18
    infraorbital_width: float = 0.014
    crows_feet_depth: float = 0.13
    crows_feet_width: float = 0.009
    nose_depth: float = 0.16
    nose_width: float = 0.008
    dimple_depth: float = 0.2
    dimple_width: float = 0.012
    dimple_offset: float = 0.08   # the dimple curves this far (eye spans) beyond the lip corner ...
    dimple_length: float = 0.12   # ... over this length, centred on the corner's height
    bulge_share: float = 0.35     # a fold's highlight, as a share of its darkening
    max_darkening: float = 0.5    # no pixel is darkened by more than this share
    # Folds the face leaves (a portrait's smile taken off): its nasolabial fold is smoothed.
    # (speech moves the cheek down by at most 0.0034, the astronaut's smile taken off by 0.017-0.023)
    cheek_fall_moves: tuple[float, float] = (0.004, 0.02)  # cheek surface down from the frame's
    flatten_width: float = 0.08   # the fold's band: Gaussian sigma about the nasolabial line (eye spans)
    flatten_relief: float = 0.07  # relief from this scale (sigma, eye spans) ...
    flatten_texture: float = 0.008  # ... down to this one is flattened; finer texture (pores) stays
    flatten_lip_margin: float = 0.04  # nor within this of the lips (their outline's shading shapes them)


@dataclass(frozen=True)
class Crease:
    """One crease to draw: a polyline with a strength per vertex.

    Attributes:
        points: ``(K, 2)`` pixels (x right, y down) along the crease.
        strength: ``(K,)`` in [0, 1] at each point (tapered to 0 at the ends).
        depth: darkening of the centre line at strength 1.
        width: Gaussian sigma of the profile, pixels.
        bulge_toward: ``(2,)`` pixel on the side where the skin bulges (highlighted), or None.
    """

    points: np.ndarray
    strength: np.ndarray
    depth: float
    width: float
    bulge_toward: np.ndarray | None = None


def _ramp(value: np.ndarray | float, moves: tuple[float, float]) -> np.ndarray:
    """Strength in [0, 1] of a move: 0 below ``moves[0]``, 1 above ``moves[1]``, smooth between."""
    low, high = moves
    return smoothstep((np.asarray(value, np.float64) - low) / (high - low))


def _taper(count: int) -> np.ndarray:
    """``(count,)`` 0 at both ends of a polyline, 1 over its middle."""
    along = np.linspace(0.0, 1.0, count)
    return smoothstep(np.minimum(along, 1.0 - along) / 0.3)


def _lerp(points: np.ndarray, first, second, share: float) -> np.ndarray:
    """``(K, 2)`` points ``share`` of the way from landmarks ``first`` to ``second``."""
    return points[list(first)] + share * (points[list(second)] - points[list(first)])


def _moves(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """``(478, 2)`` the target's moves from the source after aligning it onto the source on
    the rigid points (a similarity, so head motion and zoom cancel), in eye spans; and
    the eye span (pixels)."""
    span = float(np.linalg.norm(source[_OUTER_EYE_CORNERS[0], :2] - source[_OUTER_EYE_CORNERS[1], :2]))
    flat = np.zeros((len(RIGID), 3))
    from_points, to_points = flat.copy(), flat.copy()
    from_points[:, :2], to_points[:, :2] = target[RIGID, :2], source[RIGID, :2]
    scale, rotation, translation = umeyama(from_points, to_points)
    aligned = scale * target[:, :2] @ rotation[:2, :2].T + translation[:2]
    return (aligned - source[:, :2]) / max(span, 1e-6), span


def _rise(moves: np.ndarray, indices) -> float:
    """Mean upward move of ``indices`` (eye spans; image y points down)."""
    return float(-moves[list(indices), 1].mean())


def _pull(moves: np.ndarray, side: str) -> float:
    """How far the lip corner of ``side`` moved out (away from the midline) plus up, eye spans."""
    move = moves[LIP_CORNER[side]]
    return float(-_MEDIAL[side] * move[0] - move[1])


def creases(source: np.ndarray, target: np.ndarray, config: CreaseConfig = CreaseConfig()) -> list[Crease]:
    """The creases the expression of ``target`` draws on the face of ``source``.

    Args:
        source: ``(478, 2+)`` landmark pixels on the frame.
        target: ``(478, 2+)`` driven landmark pixels; the creases lie on them.
        config: Depths, widths and the moves that draw them.

    Returns:
        The creases with any strength (an unchanged face gives none).
    """
    moves, span = _moves(np.asarray(source, np.float64), np.asarray(target, np.float64))
    points = np.asarray(target, np.float64)[:, :2]
    found: list[Crease] = []

    def add(line: np.ndarray, strength: np.ndarray, depth: float, width: float, bulge=None) -> None:
        strength = np.clip(strength, 0.0, 1.0) * _taper(len(line))
        if strength.max() > 1e-3 and depth * config.depth > 0:
            found.append(Crease(line, strength, depth * config.depth, width * span, bulge))

    # Forehead: three lines across, each point as strong as the brow below it rises.
    right, left = _BROW_TOP["right"], _BROW_TOP["left"]
    brow_row = list(right) + [_BROW_MIDDLE] + list(left[::-1])
    rows = (brow_row,
            list(_FOREHEAD_LOW["right"]) + [_FOREHEAD_MIDDLE_LOW] + list(_FOREHEAD_LOW["left"][::-1]),
            list(_FOREHEAD_HIGH["right"]) + [_FOREHEAD_MIDDLE_HIGH] + list(_FOREHEAD_HIGH["left"][::-1]))
    rise = -moves[brow_row, 1]
    rise[len(right)] = (rise[len(right) - 1] + rise[len(right) + 1]) / 2.0  # the midline: the inner ends
    top = points[_FOREHEAD_MIDDLE_HIGH]  # the skin above each line bulges into the light
    for low, high, share in ((0, 1, 0.55), (1, 2, 0.1), (1, 2, 0.6)):
        add(_lerp(points, rows[low], rows[high], share), _ramp(rise, config.brow_rise_moves),
            config.forehead_depth, config.forehead_width, top)
    lowered = {}
    up = points[_GLABELLA_MIDLINE[1]] - points[_NOSE_ROOT[1]]   # the face's up, from the nose root
    up /= max(float(np.linalg.norm(up)), 1e-9)
    for side in SIDES:
        inner = list(_INNER_BROW[side])
        lowered[side] = max(float(moves[inner, 1].mean()), float(_MEDIAL[side] * moves[inner[:1], 0].mean()))
        strength = _ramp(lowered[side], config.brow_lower_moves)
        low = _lerp(points, _GLABELLA[side][:1], _GLABELLA_MIDLINE[:1], 0.5)[0]
        # from between the brow heads up into the forehead (not by the brows' thickness: lowered
        # brows are squeezed thin, and furrows drawn that long were dots)
        furrow = low + np.linspace(-0.01, config.glabella_length, 8)[:, None] * span * up
        add(furrow, np.full(len(furrow), strength), config.glabella_depth, config.glabella_width,
            points[_GLABELLA_MIDLINE[1]])  # the skin gathered between the brows bulges
        cheek = _rise(moves, CHEEK[side])
        fold = max(_ramp(cheek, config.cheek_rise_moves), _ramp(_rise(moves, NOSE_WING[side]), config.wing_rise_moves))
        line = points[list(_NASOLABIAL[side])]
        add(line, np.full(len(line), fold), config.nasolabial_depth, config.nasolabial_width,
            points[CHEEK[side][0]])
        raised = _ramp(cheek, config.cheek_rise_moves)
        line = _lerp(points, _LOWER_LID_SKIN[side], _INFRAORBITAL[side], 0.55)
        add(line, np.full(len(line), raised), config.infraorbital_depth, config.infraorbital_width,
            points[_LOWER_LID_MIDDLE[side]])
        corner = points[_OUTER_CANTHUS[side]]
        for toward in _CROWS_FEET_TOWARD[side]:
            line = corner + np.linspace(0.3, 0.8, 5)[:, None] * (points[toward] - corner)
            add(line, np.full(len(line), raised), config.crows_feet_depth, config.crows_feet_width)
        wrinkled = _ramp(_rise(moves, NOSE_SIDE[side]), config.nose_side_moves)
        for first, second in _NOSE_WRINKLES[side]:
            line = np.linspace(points[first], points[second], 5)
            add(line, np.full(len(line), wrinkled), config.nose_depth, config.nose_width)
        one_sided = _ramp(_pull(moves, side) - _pull(moves, _OTHER_SIDE[side]), config.corner_pull_moves)
        corner = points[LIP_CORNER[side]]
        out = corner - points[LIP_CORNER[_OTHER_SIDE[side]]]
        out /= max(float(np.linalg.norm(out)), 1e-9)
        along = np.linspace(-0.5, 0.5, 7)[:, None]
        line = corner + span * (out * (config.dimple_offset + 0.3 * config.dimple_length * (0.25 - along**2))
                                + up * along * config.dimple_length)  # bowed away from the mouth
        add(line, np.full(len(line), one_sided), config.dimple_depth, config.dimple_width, corner)
    root = _ramp((lowered["right"] + lowered["left"]) / 2.0, config.brow_lower_moves)
    line = np.stack([_lerp(points, _NOSE_ROOT[:1], _NOSE_ROOT[1:2], 0.4)[0], points[_NOSE_ROOT[1]],
                     _lerp(points, _NOSE_ROOT[2:], _NOSE_ROOT[1:2], 0.4)[0]])
    add(line, np.full(len(line), root), config.glabella_depth * 0.6, config.glabella_width)
    return found


def _normals(points: np.ndarray, toward: np.ndarray) -> np.ndarray:
    """``(K, 2)`` unit normals of a polyline, each turned to the side of ``toward``."""
    tangent = np.gradient(points, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    return normal * np.sign(((toward - points) * normal).sum(axis=1, keepdims=True) + 1e-12)


def _draw(canvas: np.ndarray, points: np.ndarray, strength: np.ndarray, width: float) -> None:
    """Raise ``canvas`` to a Gaussian ridge of peak ``strength`` along the polyline (pixels):
    where creases meet (lines bunched on a small face) the deeper one shows, they do not add up.

    Only the crease's own box (the polyline and 4 sigma around it) is drawn and blurred;
    the polyline is cut into segments of half a sigma (at least a pixel), each of one
    strength, which the blur makes smooth."""
    sigma = max(width, 0.5)
    pad = int(np.ceil(4.0 * sigma)) + 2
    height, width_px = canvas.shape
    x0, y0 = (max(int(np.floor(v)) - pad, 0) for v in points.min(axis=0))
    x1 = min(int(np.ceil(points[:, 0].max())) + pad + 1, width_px)
    y1 = min(int(np.ceil(points[:, 1].max())) + pad + 1, height)
    if x1 <= x0 or y1 <= y0:
        return
    layer = np.zeros((y1 - y0, x1 - x0), canvas.dtype)
    local = points - (x0, y0)
    scale = 16.0  # 4 fractional bits of cv2.line's fixed-point coordinates
    length = float(np.linalg.norm(np.diff(local, axis=0), axis=1).sum())
    dense = max(2, int(np.ceil(length / max(1.0, 0.5 * sigma))))
    along = np.linspace(0.0, len(points) - 1.0, dense)
    xy = np.stack([np.interp(along, np.arange(len(points)), local[:, k]) for k in (0, 1)], axis=1)
    values = np.interp(along, np.arange(len(points)), strength)
    ends = np.round(xy * scale).astype(int)
    for k in range(dense - 1):
        cv2.line(layer, tuple(ends[k]), tuple(ends[k + 1]), float(values[k]), 1, cv2.LINE_AA, shift=4)
    layer = cv2.GaussianBlur(layer, (0, 0), sigma)
    # a 1-px line blurred by sigma peaks at 1 / (sqrt(2 pi) sigma): scaled back to the strength
    np.maximum(canvas[y0:y1, x0:x1], layer * max(1.0, np.sqrt(2.0 * np.pi) * sigma), out=canvas[y0:y1, x0:x1])


def flatten_folds(out: np.ndarray, source: np.ndarray, target: np.ndarray,
                  config: CreaseConfig = CreaseConfig()) -> None:
    """Smooth out, in ``out`` (in place), the nasolabial folds of cheeks ``target`` lowers.

    A smiling portrait made neutral keeps its smile's folds in the skin: the warp moves
    the cheek down, not the shadow it cast. Where a cheek falls (its surface moves
    down from the frame's, :attr:`CreaseConfig.cheek_fall_moves`), the skin's relief
    about the driven nasolabial line (a Gaussian band ``flatten_width`` eye spans wide)
    is flattened: each colour channel is divided by its relief at scales between
    ``flatten_texture`` and ``flatten_relief`` (the ratio of a light blur of the
    channel to a wide one), so the fold's reddish shadow and the bulge's highlight fade
    and pores, freckles and the overall shading stay. The lips and the skin within
    ``flatten_lip_margin`` of them are left alone.

    Args:
        out: ``(H, W, 3)`` uint8 RGB frame already showing the face at ``target``.
        source: ``(478, 2+)`` landmark pixels of the frame the face was warped from.
        target: ``(478, 2+)`` landmark pixels of the face in ``out``.
        config: The moves that flatten, and the band's and the relief's sizes.
    """
    if config.depth <= 0:
        return
    moves, span = _moves(np.asarray(source, np.float64), np.asarray(target, np.float64))
    points = np.asarray(target, np.float64)[:, :2]
    strength = {side: float(_ramp(-_rise(moves, CHEEK[side]), config.cheek_fall_moves)) for side in SIDES}
    if max(strength.values()) <= 1e-3:
        return
    band_sigma, relief_sigma = config.flatten_width * span, config.flatten_relief * span
    lines = np.concatenate([points[list(_NASOLABIAL[side])] for side in SIDES])
    x0, y0, x1, y1 = clipped_box(lines, 3.0 * (band_sigma + relief_sigma) + 2.0, out.shape[:2])
    if x1 <= x0 or y1 <= y0:
        return
    origin = np.array([x0, y0], np.float64)
    band = np.zeros((y1 - y0, x1 - x0), np.float32)
    for side in SIDES:
        if strength[side] > 1e-3:
            line = points[list(_NASOLABIAL[side])] - origin
            _draw(band, line, np.full(len(line), strength[side]), band_sigma)
    lips = np.zeros_like(band)
    cv2.fillPoly(lips, [np.round(points[GROUPS["outer_lips"]] - origin).astype(np.int32)], 1.0)
    reach = 2 * int(round(config.flatten_lip_margin * span)) + 1   # the lips' outline keeps its shading
    lips = cv2.dilate(lips, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (reach, reach)))
    band *= 1.0 - cv2.GaussianBlur(lips, (0, 0), max(0.5 * config.flatten_lip_margin * span, 0.5))
    region = out[y0:y1, x0:x1].astype(np.float32) + 1.0
    relief = cv2.GaussianBlur(region, (0, 0), max(config.flatten_texture * span, 0.5)) / cv2.GaussianBlur(
        region, (0, 0), relief_sigma)
    flattened = region / np.power(relief, np.clip(band, 0.0, 1.0)[..., None]) - 1.0
    out[y0:y1, x0:x1] = np.clip(np.round(flattened), 0, 255).astype(np.uint8)


def shade_creases(out: np.ndarray, source: np.ndarray, target: np.ndarray,
                  config: CreaseConfig = CreaseConfig()) -> None:
    """Darken the creases of ``target``'s expression into ``out`` (in place).

    Args:
        out: ``(H, W, 3)`` uint8 RGB frame already showing the face at ``target``.
        source: ``(478, 2+)`` landmark pixels of the frame the face was warped from.
        target: ``(478, 2+)`` landmark pixels of the face in ``out``.
        config: Depths, widths, and the moves that draw them.
    """
    found = creases(source, target, config)
    if not found:
        return
    every = np.concatenate([crease.points for crease in found])
    x0, y0, x1, y1 = clipped_box(every, 4.0 * max(crease.width for crease in found) + 4.0, out.shape[:2])
    if x1 <= x0 or y1 <= y0:
        return
    origin = np.array([x0, y0], np.float64)
    dark = np.zeros((y1 - y0, x1 - x0), np.float32)
    light = np.zeros_like(dark)
    for crease in found:
        local = crease.points - origin
        _draw(dark, local, crease.strength * crease.depth, crease.width)
        if crease.bulge_toward is not None:
            side = _normals(local, crease.bulge_toward - origin)
            _draw(light, local + 2.0 * crease.width * side,
                  crease.strength * crease.depth * config.bulge_share, 1.5 * crease.width)
    dark = np.minimum(dark, config.max_darkening)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    shaded = region * (1.0 - dark * SHADOW_TINT) * (1.0 + light[..., None])
    out[y0:y1, x0:x1] = np.clip(np.round(shaded), 0, 255).astype(np.uint8)
