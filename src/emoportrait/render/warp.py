"""Training-free warp renderer: move a frame's face from one set of landmarks to another.

For each output frame, :class:`WarpRenderer` takes the target video frame
``(H, W, 3)`` uint8 RGB, the face-mesh landmarks tracked on it (``source``,
``(478, 3)`` pixels, x right, y down; z is ignored) and the landmarks the face
should have (``target``, same layout), and warps the frame so that every mesh
point moves from its source to its target position.

The warp is piecewise affine over a Delaunay triangulation of the *target*
positions (triangles never fold in the output) of

- the 468 mesh points (the 10 iris points are left out: they sit on top of the
  eyelid points and add nothing the eye contours do not already move),
- an anchor ring of :attr:`WarpConfig.ring_points` points around the face, a
  margin of :attr:`WarpConfig.margin` face sizes outside every source and target
  mesh point, that does not move,
- the four corners of the ring's bounding box, that do not move either.

Each triangle maps output pixels back to the frame by an affine *displacement*
(source − target), so a triangle whose three vertices do not move has exactly
zero displacement: only pixels inside triangles with a moving vertex are
resampled (bilinear, reflected at the frame border); every other pixel — the
whole frame outside the anchor ring in particular — is copied unchanged, and
``render(frame, L, L)`` returns the frame exactly.

Where the target mouth opens wider than the source mouth, the warp can only
stretch the thin source lip gap; the inside of the target inner-lip contour is
then painted instead with a synthetic mouth interior (a dark cavity and, with
:attr:`WarpConfig.teeth`, an upper teeth band), blended in through a feathered
mask with a weight that grows continuously with the extra opening (see
:func:`fill_weight`), so a smoothly opening mouth gives smoothly changing frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay
from threadpoolctl import ThreadpoolController

from ..face.landmarks import GROUPS

__all__ = ["WarpConfig", "WarpRenderer", "anchor_ring", "face_size", "fill_weight"]

N_MESH = 468
"""Mesh points used by the warp (indices ``0 .. 467``; the iris points are not used)."""

_INNER_LIPS = GROUPS["inner_lips"]
_UPPER_LIP_MID, _LOWER_LIP_MID = 13, 14  # inner-lip midpoints
_MOUTH_LEFT, _MOUTH_RIGHT = 78, 308      # inner mouth corners (image left, image right)
_SUBPIXEL_BITS = 4                       # fixed-point bits for OpenCV polygon rasterising
_CAVITY_BOTTOM_SHADE = 0.4               # the cavity darkens by this much toward its bottom
_CAVITY_CENTRE_SHADE = 0.45              # ... and by this much toward its centre line
_TEETH_CORNER_SHADE = 0.25               # teeth darken by this much toward the mouth corners
_TEETH_EDGE_SHADE = 0.15                 # ... and by this much toward their lower edge


@dataclass(frozen=True)
class WarpConfig:
    """Settings of :class:`WarpRenderer`. Lengths given as fractions are of the face size
    (:func:`face_size`, about the geometric mean of the face oval's width and height)."""

    margin: float = 0.35                 # deformable band around the face; beyond it the frame is untouched
    feather_px: float | None = None      # Gaussian sigma of the mouth-interior mask edge; None: feather_fraction
    teeth: bool = True                   # synthesise an upper teeth band in a newly opened mouth
    ring_points: int = 48                # anchor points on the ring around the face
    feather_fraction: float = 0.015      # default feather_px, fraction of the face size
    open_tolerance: float = 0.01         # extra opening (height, fraction of the face size) ignored
    full_fill_fraction: float = 0.5      # interior fully synthetic once this fraction of the target opening is new
    teeth_fraction: float = 0.35         # teeth band height, fraction of the mouth opening at its middle
    teeth_max_fraction: float = 0.2      # ... at most this fraction of the inner mouth width
    cavity_rgb: tuple[int, int, int] = (105, 40, 36)   # cavity colour at its brightest (upper corners)
    teeth_rgb: tuple[int, int, int] = (240, 233, 216)  # teeth colour at their brightest (middle, top)


def _polygon_area(points: np.ndarray) -> float:
    """Unsigned area (pixels²) of the closed polygon ``(K, 2)`` (shoelace formula)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def face_size(landmarks: np.ndarray) -> float:
    """Diameter (pixels) of the disc with the area of the face oval of ``(478, 2+)`` landmarks."""
    return float(np.sqrt(4.0 / np.pi * _polygon_area(landmarks[GROUPS["face_oval"], :2])))


def anchor_ring(source: np.ndarray, target: np.ndarray, margin_px: float, count: int) -> np.ndarray:
    """``(count, 2)`` pixels: a star-shaped ring at least ``margin_px`` outside all mesh points.

    For ``count`` evenly spaced directions around the centroid of the source and target
    mesh points, the ring point lies ``margin_px`` beyond the farthest extent of those
    points in that direction (their support line), so it moves continuously with them.
    """
    points = np.concatenate([source[:N_MESH, :2], target[:N_MESH, :2]]).astype(np.float64)
    centre = points.mean(axis=0)
    angles = np.linspace(0.0, 2.0 * np.pi, count, endpoint=False)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    reach = ((points - centre) @ directions.T).max(axis=0)
    return centre + (reach + margin_px)[:, None] * directions


def _rasterise(polygons: np.ndarray, shape: tuple[int, int], line: int) -> np.ndarray:
    """Fill polygons ``(M, K, 2)`` (pixels of the mask) into a ``shape`` uint8 0/255 mask.

    Vertices keep sub-pixel precision; ``line`` is ``cv2.LINE_8`` or ``cv2.LINE_AA``.
    Polygons must not overlap (overlaps cancel out, as in an even-odd fill).
    """
    mask = np.zeros(shape, np.uint8)
    points = np.round(polygons * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, list(points), 255, line, _SUBPIXEL_BITS)
    return mask


def _clipped_box(points: np.ndarray, pad: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) around ``points`` ``(K, 2)``,
    padded by ``pad`` pixels and clipped to the frame; empty when x1 <= x0 or y1 <= y0."""
    low = np.floor(points.min(axis=0) - pad).astype(int)
    high = np.ceil(points.max(axis=0) + pad).astype(int) + 1
    return max(low[0], 0), max(low[1], 0), min(high[0], width), min(high[1], height)


def _displacement_coefficients(triangulation: Delaunay, displacement: np.ndarray) -> np.ndarray:
    """Per-triangle affine displacement ``(T, 2, 3)`` float32 from vertex displacements ``(N, 2)``.

    Row ``c`` of triangle ``t`` gives ``d_c(x, y) = a x + b y + e`` (pixels), the linear
    interpolation of its vertices' displacements. Triangles whose vertices do not move get
    exact zeros; degenerate (zero-area) triangles, which hold no pixel, get zeros too.
    """
    barycentric = triangulation.transform  # (T, 3, 2): b[:2] = M @ (p - r), r the last vertex
    vertex = displacement[triangulation.simplices]  # (T, 3, 2)
    relative = vertex[:, :2] - vertex[:, 2:3]  # (T, 2 vertices, 2 coords)
    linear = np.einsum("tic,tij->tcj", relative, barycentric[:, :2])
    offset = vertex[:, 2] - np.einsum("tcj,tj->tc", linear, barycentric[:, 2])
    coefficients = np.concatenate([linear, offset[:, :, None]], axis=2)
    return np.nan_to_num(coefficients, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def _moving_mask(
    triangulation: Delaunay, displacement: np.ndarray, origin: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """``shape`` bool mask (box pixels, box corner at ``origin`` ``(2,)``) of the triangles
    with a moving vertex, grown by one pixel so rasterisation never misses an edge pixel."""
    moving = np.any(displacement[triangulation.simplices] != 0, axis=(1, 2))
    mask = _rasterise(triangulation.points[triangulation.simplices[moving]] - origin, shape, cv2.LINE_8)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool)


def _warp(frame: np.ndarray, out: np.ndarray, source: np.ndarray, target: np.ndarray,
          ring: np.ndarray) -> None:
    """Write into ``out`` the frame warped so that mesh points go from ``source`` to ``target``.

    ``source``, ``target``: ``(N_MESH, 2)`` pixels; ``ring``: ``(K, 2)`` fixed anchor pixels.
    Only pixels of triangles with a moving vertex (all inside the ring) are written.
    """
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = _clipped_box(ring, 0.0, width, height)
    if x1 <= x0 or y1 <= y0:
        return
    low, high = ring.min(axis=0) - 1.0, ring.max(axis=0) + 1.0
    corners = np.array([low, [high[0], low[1]], high, [low[0], high[1]]])
    triangulation = Delaunay(np.concatenate([target, ring, corners]))
    displacement = np.zeros_like(triangulation.points)
    displacement[:N_MESH] = source - target
    mask = _moving_mask(triangulation, displacement, np.array([x0, y0]), (y1 - y0, x1 - x0))
    rows, cols = np.nonzero(mask)  # all inside the triangulation, which covers the ring's box
    pixels = np.column_stack([cols + x0, rows + y0]).astype(np.float32)
    coefficients = _displacement_coefficients(triangulation, displacement)[
        triangulation.find_simplex(pixels)]  # (P, 2, 3)
    shift = np.einsum("pcj,pj->pc", coefficients[:, :, :2], pixels) + coefficients[:, :, 2]
    map_x, map_y = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    map_x[rows, cols] += shift[:, 0]
    map_y[rows, cols] += shift[:, 1]
    warped = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    np.copyto(out[y0:y1, x0:x1], warped, where=mask[:, :, None])


def _lip_profiles() -> tuple[np.ndarray, np.ndarray]:
    """Indices of the upper and lower inner-lip chains, each from corner to corner."""
    loop = _INNER_LIPS
    first, last = sorted(np.flatnonzero(np.isin(loop, (_MOUTH_LEFT, _MOUTH_RIGHT))))
    chain = loop[first:last + 1]
    other = np.concatenate([loop[last:], loop[:first + 1]])
    return (chain, other) if _UPPER_LIP_MID in chain else (other, chain)


_UPPER_CHAIN, _LOWER_CHAIN = _lip_profiles()


def _mouth_frame(target: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mouth coordinates of ``(478, 2+)`` landmarks: origin ``(2,)`` (midpoint of the inner
    corners), axes ``(2, 2)`` (rows: unit vectors along the corners and 90° toward the chin)
    and the half inner mouth width (pixels)."""
    left, right = target[_MOUTH_LEFT, :2], target[_MOUTH_RIGHT, :2]
    half_width = max(float(np.linalg.norm(right - left)) / 2.0, 1e-3)
    axes = np.array([right - left, [left[1] - right[1], right[0] - left[0]]]) / (2.0 * half_width)
    return (left + right) / 2.0, axes, half_width


def _profile(points: np.ndarray, along: np.ndarray) -> np.ndarray:
    """Height of a lip chain ``(K, 2)`` (mouth coordinates: along, down) at positions ``along``."""
    order = np.argsort(points[:, 0])
    return np.interp(along, points[order, 0], points[order, 1])


def fill_weight(source: np.ndarray, target: np.ndarray, config: WarpConfig = WarpConfig()) -> float:
    """Weight in [0, 1] of the synthetic mouth interior for ``(478, 2+)`` landmark pixels.

    The rule: the part of the target inner-lip area that the source opening cannot
    supply, ``new = A_target − A_source − tolerance`` (tolerance: a strip
    ``open_tolerance`` face sizes high across the mouth), as a fraction of
    ``full_fill_fraction · A_target``, clipped to [0, 1]. A closed source mouth opened
    by the target gets the full synthetic interior; a source mouth that is already open
    nearly as wide keeps its own (warped, mildly stretched) teeth and cavity. The weight
    is 0 where ``new`` crosses 0, so it never jumps as the opening changes.
    """
    area_source = _polygon_area(source[_INNER_LIPS, :2])
    area_target = _polygon_area(target[_INNER_LIPS, :2])
    mouth_width = 2.0 * _mouth_frame(target)[2]
    new = area_target - area_source - config.open_tolerance * face_size(source) * mouth_width
    return float(np.clip(new / (config.full_fill_fraction * area_target), 0.0, 1.0)) if new > 0 else 0.0


def _cavity(depth: np.ndarray, opening: np.ndarray, s2: np.ndarray, config: WarpConfig) -> np.ndarray:
    """Cavity colour ``(h, w, 3)`` float32, darker toward its bottom and its centre line.

    ``depth``: pixels below the upper inner lip; ``opening``: lip gap (pixels) at each
    pixel's position along the mouth; ``s2``: squared position along the mouth (0 at the
    middle, 1 at the corners). All ``(h, w)``.
    """
    t = np.clip(depth / np.maximum(opening, 1e-3), 0.0, 1.0)
    shade = (1.0 - _CAVITY_BOTTOM_SHADE * t) * (1.0 - _CAVITY_CENTRE_SHADE * (1.0 - s2))
    return shade[..., None] * np.array(config.cavity_rgb, np.float32)


def _add_teeth(colour: np.ndarray, along: np.ndarray, down: np.ndarray, upper_lip: np.ndarray,
               opening: float, half_width: float, config: WarpConfig) -> np.ndarray:
    """Paint the upper teeth band over ``colour`` ``(h, w, 3)``; return the new colours.

    ``along``, ``down``: ``(h, w)`` pixel mouth coordinates; ``upper_lip``: ``(K, 2)`` the
    upper inner-lip chain in mouth coordinates; ``opening``: lip gap at the middle (pixels).
    The band hangs from a parabola fitted to the upper lip (so it has no kinks), its height
    ``min(teeth_fraction · opening, teeth_max_fraction · mouth width)`` at the middle,
    narrowing to nothing at the corners; its lower edge is anti-aliased over one pixel.
    """
    band = min(config.teeth_fraction * opening, config.teeth_max_fraction * 2.0 * half_width)
    lip = np.polyval(np.polyfit(upper_lip[:, 0], upper_lip[:, 1], 2), along)
    s2 = np.clip(along / half_width, -1.0, 1.0) ** 2
    height = band * np.sqrt(1.0 - s2)
    depth = np.clip((down - lip) / np.maximum(height, 1e-3), 0.0, 1.0)
    shade = (1.0 - _TEETH_CORNER_SHADE * s2) * (1.0 - _TEETH_EDGE_SHADE * depth)
    teeth = shade[..., None] * np.array(config.teeth_rgb, np.float32)
    coverage = np.clip(lip + height - down + 0.5, 0.0, 1.0)[..., None]
    return colour + coverage * (teeth - colour)


def _mouth_interior(target: np.ndarray, origin: np.ndarray, shape: tuple[int, int],
                    config: WarpConfig) -> np.ndarray:
    """Synthetic mouth interior ``shape + (3,)`` float32 RGB for a box at ``origin`` ``(2,)``.

    ``target``: ``(478, 2+)`` pixels. Each box pixel is placed in mouth coordinates
    (:func:`_mouth_frame`) and against the target's upper and lower inner-lip profiles.
    """
    centre, axes, half_width = _mouth_frame(target)
    mouth = (target[:, :2] - centre) @ axes.T  # (478, 2): along, down
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    along, down = np.moveaxis((np.stack([cols, rows], axis=-1) + origin - centre) @ axes.T, -1, 0)
    top = _profile(mouth[_UPPER_CHAIN], along)
    opening = _profile(mouth[_LOWER_CHAIN], along) - top
    s2 = np.clip(along / half_width, -1.0, 1.0) ** 2
    colour = _cavity(down - top, opening, s2, config)
    if config.teeth:
        middle = max(mouth[_LOWER_LIP_MID, 1] - mouth[_UPPER_LIP_MID, 1], 0.0)
        colour = _add_teeth(colour, along, down, mouth[_UPPER_CHAIN], middle, half_width, config)
    return colour.astype(np.float32)


def _fill_mouth(out: np.ndarray, source: np.ndarray, target: np.ndarray, config: WarpConfig) -> None:
    """Blend the synthetic interior into ``out`` inside the target inner-lip contour.

    ``source``, ``target``: ``(478, 2+)`` pixels. The mask is the anti-aliased contour,
    Gaussian-blurred by the feather, times :func:`fill_weight`.
    """
    weight = fill_weight(source, target, config)
    if weight == 0.0:
        return
    feather = config.feather_px if config.feather_px is not None else config.feather_fraction * face_size(source)
    polygon = target[_INNER_LIPS, :2].astype(np.float64)
    x0, y0, x1, y1 = _clipped_box(polygon, 3.0 * feather + 2.0, out.shape[1], out.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    origin = np.array([x0, y0], np.float64)
    shape = (y1 - y0, x1 - x0)
    mask = _rasterise((polygon - origin)[None], shape, cv2.LINE_AA).astype(np.float32) / 255.0
    if feather > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), feather)
    alpha = (weight * mask)[..., None]
    patch = out[y0:y1, x0:x1].astype(np.float32)
    blended = patch + alpha * (_mouth_interior(target, origin, shape, config) - patch)
    out[y0:y1, x0:x1] = np.clip(np.round(blended), 0, 255).astype(np.uint8)


class WarpRenderer:
    """Render a frame with its face moved to new landmarks by a piecewise-affine warp.

    The triangulation runs with BLAS limited to one thread: scipy's Delaunay makes a
    tiny LAPACK call per triangle, which a multi-threaded OpenBLAS slows 10-500x on
    a busy machine (measured: 1.2 ms per frame alone, up to 600 ms under load).
    """

    def __init__(self, config: WarpConfig = WarpConfig()) -> None:
        self.config = config
        self._threads = ThreadpoolController()

    def start(self, frames: Sequence[np.ndarray], landmarks: np.ndarray, found: np.ndarray) -> None:
        """Nothing to prepare: the warp renderer keeps no state and draws any face."""

    def render(self, frame: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Warp ``frame`` so its face's landmarks move from ``source`` to ``target``.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB, the frame the ``source`` landmarks were tracked on.
            source: ``(478, 2+)`` landmark pixels (x right, y down) on ``frame``; z is ignored.
            target: ``(478, 2+)`` landmark pixels the face should have in the output.

        Returns:
            ``(H, W, 3)`` uint8 RGB, a new array. Pixels outside the anchor ring
            (:func:`anchor_ring`) are those of ``frame`` exactly.

        Raises:
            ValueError: a frame or landmark array of the wrong shape.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        if source.ndim != 2 or source.shape[0] < N_MESH or source.shape[1] < 2 or source.shape != target.shape:
            raise ValueError(f"source and target must both be (478, 2+), got {source.shape} and {target.shape}")
        frame = np.ascontiguousarray(frame)
        out = frame.copy()
        mesh_source = source[:N_MESH, :2].astype(np.float64)
        mesh_target = target[:N_MESH, :2].astype(np.float64)
        if np.array_equal(mesh_source, mesh_target):
            return out
        margin_px = self.config.margin * face_size(source)
        ring = anchor_ring(mesh_source, mesh_target, margin_px, self.config.ring_points)
        with self._threads.limit(limits=1, user_api="blas"):
            _warp(frame, out, mesh_source, mesh_target, ring)
        _fill_mouth(out, source, target, self.config)
        return out
