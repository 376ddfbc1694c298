"""Eyeballs that stay put while the lids move over them.

The warp (:mod:`.warp`) fills each eye with a fan of its contour, so an upper lid that
rises (AU5: surprise, fear) stretches the iris with it: the eye grows, iris and all,
and shows no more white than before. A real eyeball does not move with its lids:
raised lids uncover the white above the iris, which is what people read as wide,
startled eyes (the shared MEAD actors' surprise and fear).

:func:`paint_eyes` redraws the inside of each driven eye whose upper lid rose, in two
layers:

* **the eyeball**, carried rigidly with the eye (the similarity that takes the frame's
  two eye corners to the driven ones). What the frame's lids hid is completed
  (:func:`eyeball`): inside the iris (the disc its landmarks give), its mirror image
  about its centre row where that shows (the dark limbal ring stays round; catchlights
  are not mirrored), else the median colour it shows at that radius; outside it, the
  lighter part of the white the eye shows, in the lid's shadow near the lid;
* **the upper lid's margin**: the lashes and the shadow they cast, a band of
  :attr:`EyeConfig.lid_band` iris radii under the lid, moves with the lid (a pixel at
  some depth under the driven lid shows the frame at that depth under its own lid),
  fading into the eyeball below.

An eye the frame shows too little of (a blink, a squint: less than
:attr:`EyeConfig.min_visible` of its iris disc) is left to the warp, so a closed lid is
never opened onto an invented eye (the repainting fades in as the frame's eye opens past that,
and as the lid rises, so a blink's frames do not pop); nor is an eye whose lid does not rise above its
frame's (the warp's squeeze of a lowered lid looks as a lid over an eye does).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..face.landmarks import GROUPS, SIDES, contour_halves
from ..ramps import smoothstep
from .raster import clipped_box, polygon_mask

__all__ = ["EyeConfig", "eyeball", "paint_eyes"]

_CORNERS = {"right": (33, 133), "left": (362, 263)}
_UPPER_LIDS = {side: contour_halves(f"{side}_eye")[0] for side in SIDES}


@dataclass(frozen=True)
class EyeConfig:
    """Settings of :func:`paint_eyes` (lengths in iris radii)."""

    enabled: bool = True
    lid_band: float = 0.45         # the lashes' shadow: this deep a band under the upper lid moves with it
    min_visible: float = 0.3       # share of the iris disc the frame must show to repaint the eye (a blink
                                   # shows less; open eyes 0.41-0.79 on the shared faces, under the lashes)
    visible_ramp: float = 0.1      # ... fully repainted once it shows this much more
    min_rise: float = 0.05         # the eye is repainted once its upper lid rises this far above the frame's
    white_percentile: float = 60.0  # the uncovered white: the mean of the eye's white above this percentile
    lid_shade: float = 0.2         # ... darker by this right under the lid ...
    shade_depth: float = 0.7       # ... fading out over this far down
    margin: float = 1.0            # the eyeball is completed this far beyond the frame's eye contour


def _iris(landmarks: np.ndarray, side: str) -> tuple[np.ndarray, float]:
    """Centre ``(2,)`` pixels and radius (pixels) of the iris of ``side``."""
    points = landmarks[GROUPS[f"{side}_iris"], :2].astype(np.float64)
    return points[0], float(np.linalg.norm(points[1:] - points[0], axis=1).mean())


def _upper_lid_rows(landmarks: np.ndarray, side: str, columns: np.ndarray) -> np.ndarray:
    """The upper lid's row (pixels) at each of ``columns`` (pixels, same frame), held at its corners."""
    lid = landmarks[_UPPER_LIDS[side], :2].astype(np.float64)
    order = np.argsort(lid[:, 0])
    return np.interp(columns, lid[order, 0], lid[order, 1])


def eyeball(frame: np.ndarray, landmarks: np.ndarray, side: str, config: EyeConfig = EyeConfig()
            ) -> tuple[np.ndarray, tuple[int, int], float] | None:
    """The eyeball of ``side`` as the frame shows it, completed where its lids hide it.

    The band of ``lid_band`` iris radii under the upper lid counts as hidden: it is the
    lashes' shadow, which belongs to the lid.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(478, 2+)`` pixels tracked on ``frame``.
        side: ``"right"`` or ``"left"`` (the subject's).

    Returns:
        ``(h, w, 3)`` float32 RGB over a box around the eye (the eye contour and iris
        grown by ``margin`` iris radii), the box's top-left corner ``(x0, y0)`` in
        frame pixels, and the share of the iris disc the frame shows; None when that is
        less than ``min_visible``, or the box is off the frame.
    """
    centre, radius = _iris(landmarks, side)
    contour = landmarks[GROUPS[f"{side}_eye"], :2].astype(np.float64)
    x0, y0, x1, y1 = clipped_box(np.concatenate([contour, [centre - radius, centre + radius]]),
                                 config.margin * radius, frame.shape)
    if x1 - x0 < 3 or y1 - y0 < 3 or radius < 1.0:
        return None
    patch = frame[y0:y1, x0:x1].astype(np.float32)
    shape = patch.shape[:2]
    rows, cols = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
    lid = _upper_lid_rows(landmarks, side, np.arange(x0, x1, dtype=np.float64)) - y0
    depth = rows - lid[None, :]
    visible = (polygon_mask(contour - (x0, y0), shape) > 0.5) & (depth >= config.lid_band * radius)
    distance = np.hypot(cols - (centre[0] - x0), rows - (centre[1] - y0))
    disc = distance <= radius
    shown = float((visible & disc).sum()) / (np.pi * radius ** 2)
    if shown < config.min_visible or (visible & ~disc).sum() < 4:
        return None
    sclera = patch[visible & ~disc]
    lightness = sclera.mean(axis=1)
    white = sclera[lightness >= np.percentile(lightness, config.white_percentile)].mean(axis=0)
    completed = np.where(visible[..., None], patch, white)
    # the white under the lid is in its shadow
    shade = 1.0 - config.lid_shade * np.exp(-0.5 * (np.maximum(depth, 0.0) / (config.shade_depth * radius)) ** 2)
    completed = np.where(visible[..., None], completed, completed * shade[..., None])
    # the hidden iris: its mirror image about the centre row where that shows (the limbal ring
    # stays round), else the median colour the iris shows at that radius
    seen = visible & disc
    hidden = disc & ~visible
    rings = np.minimum((distance / radius * 8).astype(int), 8)
    for ring in np.unique(rings[hidden]):
        on_ring = seen & (rings == ring)
        completed[hidden & (rings == ring)] = np.median(patch[on_ring if on_ring.sum() >= 3 else seen], axis=0)
    mirror = np.clip(np.round(2.0 * (centre[1] - y0) - rows).astype(int), 0, shape[0] - 1), cols.astype(int)
    iris_lightness = patch[seen].mean(axis=1)
    glint = patch[mirror].mean(axis=2) > np.percentile(iris_lightness, 90)  # no mirrored catchlights
    reflected = hidden & seen[mirror] & ~glint
    completed[reflected] = patch[mirror][reflected]
    soft = cv2.GaussianBlur(completed, (0, 0), max(0.1 * radius, 0.5))
    return np.where(visible[..., None], completed, soft), (x0, y0), shown


def _corner_similarity(source: np.ndarray, target: np.ndarray, side: str) -> np.ndarray:
    """``(2, 3)`` similarity taking the eye corners of ``side`` from ``source`` to ``target``."""
    first, second = _CORNERS[side]
    a, b = source[[first, second], :2].astype(np.float64)
    c, d = target[[first, second], :2].astype(np.float64)
    u, v = b - a, d - c
    denominator = max(float(u @ u), 1e-9)
    cos, sin = float(u @ v) / denominator, float(u[0] * v[1] - u[1] * v[0]) / denominator
    rotation = np.array([[cos, -sin], [sin, cos]])
    return np.column_stack([rotation, c - rotation @ a])


def paint_eyes(out: np.ndarray, frame: np.ndarray, source: np.ndarray, target: np.ndarray,
               config: EyeConfig = EyeConfig()) -> None:
    """Redraw in ``out`` the eyes of ``target`` whose upper lids rose: the frame's
    eyeball, held still, under the frame's lid margin, moved with the lid.

    Args:
        out: ``(H, W, 3)`` uint8 RGB, the warped frame, changed in place.
        frame: ``(H, W, 3)`` uint8 RGB, the frame ``source`` was tracked on.
        source: ``(478, 2+)`` landmark pixels on ``frame``.
        target: ``(478, 2+)`` the driven landmark pixels ``out`` was warped to.
    """
    if not config.enabled:
        return
    for side in SIDES:
        similarity = _corner_similarity(source, target, side)
        scale = float(np.hypot(*similarity[:, 0]))
        upper = _UPPER_LIDS[side]
        _, radius = _iris(source, side)
        carried = source[upper, :2].astype(np.float64) @ similarity[:, :2].T + similarity[:, 2]
        rise = float(np.max(carried[:, 1] - target[upper, 1])) / max(scale * radius, 1e-6)
        if rise < config.min_rise:
            continue
        ball = eyeball(frame, source, side, config)
        if ball is None:
            continue
        texture, origin, shown = ball
        contour = target[GROUPS[f"{side}_eye"], :2].astype(np.float64)
        x0, y0, x1, y1 = clipped_box(contour, 2.0, out.shape)
        if x1 <= x0 or y1 <= y0:
            continue
        inverse = cv2.invertAffineTransform(similarity)
        cols, rows = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
        source_cols = inverse[0, 0] * cols + inverse[0, 1] * rows + inverse[0, 2] - origin[0]
        source_rows = inverse[1, 0] * cols + inverse[1, 1] * rows + inverse[1, 2] - origin[1]
        ball_pixels = cv2.remap(texture, source_cols.astype(np.float32), source_rows.astype(np.float32),
                                cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # the lid's margin: a pixel d under the driven lid shows the frame d / scale under its own lid
        depth = rows - _upper_lid_rows(target, side, cols[0])[None, :]
        frame_cols = source_cols + origin[0]
        margin_rows = _upper_lid_rows(source, side, frame_cols.ravel()).reshape(cols.shape) + depth / scale
        margin_pixels = cv2.remap(frame, frame_cols.astype(np.float32), margin_rows.astype(np.float32),
                                  cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        band = config.lid_band * radius * scale
        on_margin = np.clip(2.0 - depth / max(band, 0.5), 0.0, 1.0)[..., None]
        drawn = ball_pixels + on_margin * (margin_pixels - ball_pixels)
        # fading in as the lid rises and as the frame's own eye opens (a blink's frames do not pop)
        opened = float(smoothstep((shown - config.min_visible) / config.visible_ramp))
        strength = min(rise / (2.0 * config.min_rise), 1.0) * opened
        mask = polygon_mask(contour - (x0, y0), (y1 - y0, x1 - x0)) * strength
        base = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(np.round(base + mask[..., None] * (drawn - base)), 0, 255).astype(np.uint8)
