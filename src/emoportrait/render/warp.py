"""Training-free warp renderer: move a frame's face from one set of landmarks to another.

For each output frame, :class:`WarpRenderer` takes the target video frame
``(H, W, 3)`` uint8 RGB, the face-mesh landmarks tracked on it (``source``,
``(478, 3)`` pixels, x right, y down; z is ignored) and the landmarks the face
should have (``target``, same layout), and warps the frame so that every mesh
point moves from its source to its target position.

The warp is piecewise affine over triangles of the *target* positions:

- the faces of MediaPipe's face-mesh tessellation over the 468 mesh points (the 10
  iris points are left out: they sit on top of the eyelid points), with the eyes
  filled by fans of their contours and the mouth by a strip between the inner lips
  (so closing lips meet and opening ones stretch the frame's own mouth);
- a Delaunay triangulation of the band between the face oval and an anchor ring of
  :attr:`WarpConfig.ring_points` points around the face, a margin of
  :attr:`WarpConfig.margin` face sizes outside every source and target mesh point,
  and the four corners of the ring's bounding box; these do not move.

Each triangle maps output pixels back to the frame by an affine map, so a triangle
whose three vertices do not move copies its pixels unchanged: only pixels inside
triangles with a moving vertex are resampled (bilinear, reflected at the frame
border); every other pixel, the whole frame outside the anchor ring in particular,
is copied unchanged, and ``render(frame, L, L)`` returns the frame exactly.
Triangles the target folds over are drawn first, so unfolded ones win where they
overlap. Skin the warp squeezes where folds form is darkened a little, and the creases
of the expression (forehead lines, furrows between the brows, the nasolabial fold, ...)
are shaded in (:mod:`.creases`). A raised upper lid uncovers the eyeball instead of
stretching it (:mod:`.eyes`).

The mouth (:mod:`.mouth`, :mod:`.mouth_bank`): on a video target each driven mouth is
drawn from the target frame whose mouth matches it best; otherwise the inside of the
driven inner lips is painted (the target's own or the bundled teeth over a dark
cavity in the target's colours), fading in as the mouth's shape departs from the
frame's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from matplotlib.path import Path
from scipy.spatial import Delaunay
from threadpoolctl import ThreadpoolController

from ..face.landmarks import GROUPS, MESH_TRIANGLES, face_size, signed_areas
from .creases import SHADOW_TINT, CreaseConfig, flatten_folds, shade_creases
from .eyes import EyeConfig, paint_eyes
from .mouth import LOWER_CHAIN, UPPER_CHAIN, MouthConfig, MouthPainter, mouth_change, teeth_strip, upper_lip_drop
from .mouth_bank import BankConfig, MouthBank
from .raster import SUBPIXEL_BITS, clipped_box, polygon_mask

__all__ = ["WarpConfig", "WarpRenderer", "anchor_ring"]

N_MESH = 468
"""Mesh points used by the warp (indices ``0 .. 467``; the iris points are not used)."""

_FACE_OVAL = GROUPS["face_oval"]
_OUTER_LIPS = GROUPS["outer_lips"]
_FOLD_DEAD_ZONE = 0.04                   # log compression that makes no visible fold
_FOLD_MAX = 0.3                          # folds darken the skin by at most this
_TEETH_CANDIDATES = 8                    # a video's most open frames tried for the teeth to show
_SLIVER_HEIGHT = 1.0                     # a triangle less high than this (pixels) is a sliver


@dataclass(frozen=True)
class WarpConfig:
    """Settings of :class:`WarpRenderer`. Lengths given as fractions are of the face size
    (:func:`~emoportrait.face.landmarks.face_size`, about the geometric mean of the face oval's width and height)."""

    margin: float = 0.35                 # deformable band around the face; beyond it the frame is untouched
    ring_points: int = 48                # anchor points on the ring around the face
    fold_shading: float = 0.4            # squeezed skin darkens by this per unit of log compression
    fold_blur: float = 0.015             # ... the shading smoothed over this (Gaussian sigma)
    creases: CreaseConfig = CreaseConfig()  # the expression's creases, shaded in (depth 0: off)
    eyes: EyeConfig = EyeConfig()        # raised lids uncover the eyeball, not stretch it
    mouth: MouthConfig = MouthConfig()   # the painted interior
    repaint_change: float = 0.08         # the interior is fully painted once the inner lips change by
                                         # this (mouth widths, RMS); less change keeps the frame's own
    bank: BankConfig = BankConfig()      # a video target's own mouths
    paste_margin: float = 0.12           # a retrieved mouth brings the skin this far (mouth widths) around it
    paste_feather: float = 0.05          # ... fading out over this (Gaussian sigma, mouth widths)
    shading_sigma: float = 0.3           # it takes the output's shading, smoothed over this (mouth widths)
    max_shading: float = 60.0            # ... changing no pixel by more than this (grey levels)


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


def _tessellation_faces() -> np.ndarray:
    """``(F, 3)`` triangles of the face mesh (:data:`~emoportrait.face.landmarks.MESH_TRIANGLES`)
    with the eyes filled by a fan of their contour; the mouth is left open."""
    faces = {tuple(face) for face in MESH_TRIANGLES}
    for eye in (GROUPS["right_eye"], GROUPS["left_eye"]):
        faces |= {(eye[0], eye[i], eye[i + 1]) for i in range(1, len(eye) - 1)}
    return np.array(sorted(faces), np.int64)


_MESH_FACES = _tessellation_faces()


def _triangles(target: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``(F, 3)`` triangles over ``concat(target mesh, anchors)``: the mesh's own faces, and a
    Delaunay triangulation of the band between the face oval and the anchors."""
    oval = target[_FACE_OVAL]
    band_points = np.concatenate([oval, anchors])
    band = Delaunay(band_points).simplices
    outside = ~Path(oval).contains_points(band_points[band].mean(axis=1))
    labels = np.concatenate([_FACE_OVAL, len(target) + np.arange(len(anchors))])
    return np.concatenate([labels[band[outside]], _MESH_FACES])


def _backward_maps(target: np.ndarray, source: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``(F, 2, 3)`` float64 affine maps taking output pixels of each triangle (``target``
    vertices) to frame pixels (``source`` vertices); NaN for degenerate triangles."""
    corners = np.concatenate([target[faces], np.ones((len(faces), 3, 1))], axis=2)  # (F, 3, 3)
    area = np.linalg.det(corners)
    maps = np.full((len(faces), 2, 3), np.nan)
    good = np.abs(area) > 1e-6
    maps[good] = np.transpose(np.linalg.solve(corners[good], source[faces[good]]), (0, 2, 1))
    return maps


def _face_index(points: np.ndarray, faces: np.ndarray, origin: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``shape`` int32 image: the index of the triangle covering each box pixel, -1 for none.

    Triangles are rasterised in order (later ones win where they overlap)."""
    index = np.full(shape, -1, np.int32)
    corners = np.round((points[faces] - origin) * (1 << SUBPIXEL_BITS)).astype(np.int32)
    for k, triangle in enumerate(corners):
        cv2.fillConvexPoly(index, triangle, int(k), cv2.LINE_8, SUBPIXEL_BITS)
    return index


def _mouth_faces() -> np.ndarray:
    """``(F, 3)`` triangles filling the inner-lip contour: a strip between the upper and
    the lower inner lip, both taken from the image-left corner to the right one."""
    upper, lower = UPPER_CHAIN, LOWER_CHAIN  # both from 78 to 308
    faces = [(upper[i], upper[i + 1], lower[i]) for i in range(len(upper) - 1)]
    faces += [(upper[i + 1], lower[i + 1], lower[i]) for i in range(len(upper) - 1)]
    return np.array([face for face in faces if len(set(face)) == 3], np.int64)


_MOUTH_FACES = _mouth_faces()

# Where skin folds when squeezed (MediaPipe indices, both sides): the nasolabial folds, the
# furrows between the brows and the nose's wrinkles. Lips, chin and cheeks are left out
# (speech and the closing of an open mouth squeeze them all the time), and so is the
# forehead, whose horizontal lines a smooth darkening cannot draw.
_FOLD_POINTS = np.zeros(N_MESH)
_FOLD_POINTS[[
    203, 206, 216, 212, 57, 186, 205, 36, 207, 423, 426, 436, 432, 287, 410, 425, 266, 427,  # nasolabial
    9, 8, 107, 336, 55, 285, 193, 417, 168,                                                     # glabella
    6, 197, 122, 351, 188, 412, 196, 419, 174, 399, 236, 456, 3, 248, 195,                      # nose
]] = 1.0


@dataclass(frozen=True)
class _Layout:
    """Where the output pixels of one frame lie on the target mesh.

    Attributes:
        box: ``(x0, y0, x1, y1)`` the pixels covered (the anchor ring's box on the frame).
        points: ``(N_MESH + A, 2)`` target mesh points, then the fixed anchors.
        faces: ``(F, 3)`` triangles over ``points``.
        index: ``(y1 - y0, x1 - x0)`` int32, the triangle of each box pixel (-1: none).
    """

    box: tuple[int, int, int, int]
    points: np.ndarray
    faces: np.ndarray
    index: np.ndarray


def _layout(target: np.ndarray, ring: np.ndarray, shape: tuple[int, int], source: np.ndarray
            ) -> _Layout | None:
    """The :class:`_Layout` of ``(N_MESH, 2)`` target pixels inside the fixed ``(K, 2)``
    ``ring`` on a frame of ``shape`` ``(H, W)``; None if the ring is off the frame.

    Triangles the target folds over (oriented otherwise than on the ``(N_MESH, 2)``
    ``source`` face) are drawn first, so where they overlap a neighbour the unfolded one wins.
    """
    x0, y0, x1, y1 = clipped_box(ring, 0.0, shape)
    if x1 <= x0 or y1 <= y0:
        return None
    low, high = ring.min(axis=0) - 1.0, ring.max(axis=0) + 1.0
    anchors = np.concatenate([ring, [low, [high[0], low[1]], high, [low[0], high[1]]]])
    points = np.concatenate([target, anchors])
    faces = np.concatenate([_triangles(target, anchors), _MOUTH_FACES])
    corners = points[faces]
    inside = ((corners[..., 0].max(axis=1) >= x0) & (corners[..., 0].min(axis=1) < x1)
              & (corners[..., 1].max(axis=1) >= y0) & (corners[..., 1].min(axis=1) < y1))
    faces = faces[inside]
    folded = np.sign(signed_areas(points, faces)) != np.sign(
        signed_areas(np.concatenate([source, anchors]), faces))
    faces = np.concatenate([faces[folded], faces[~folded]])
    index = _face_index(points, faces, np.array([x0, y0], np.float64), (y1 - y0, x1 - x0))
    return _Layout((x0, y0, x1, y1), points, faces, index)


def _compression(maps: np.ndarray) -> np.ndarray:
    """``(F,)`` how much each triangle's skin is squeezed along some direction, beyond the
    face's overall change of scale: ``log(s_max / g)`` of the backward maps ``(F, 2, 3)``,
    ``s_max`` their largest singular value, ``g`` the median over triangles of
    ``sqrt(s_max s_min)`` (so head motion and zoom give 0); NaN maps give 0."""
    linear = np.nan_to_num(maps[:, :, :2])
    frobenius = (linear ** 2).sum(axis=(1, 2))
    determinant = np.abs(np.linalg.det(linear))
    root = np.sqrt(np.maximum(frobenius ** 2 - 4.0 * determinant ** 2, 0.0))
    largest = np.sqrt((frobenius + root) / 2.0)
    scale = np.median(np.sqrt(determinant[determinant > 0])) if np.any(determinant > 0) else 1.0
    return np.where(largest > 0, np.log(np.maximum(largest, 1e-9) / scale), 0.0)


def _bound_slivers(map_x: np.ndarray, map_y: np.ndarray, chosen: np.ndarray, layout: _Layout,
                   source_points: np.ndarray) -> None:
    """Keep the pixels of slivers sampling near their own triangle (``map_x``, ``map_y`` in place).

    A triangle the target squeezes nearly into a line (less than ``_SLIVER_HEIGHT`` pixels
    high) still owns the pixels the rasteriser touches beside it, and its affine map sends
    those far off (stray dark specks on a jaw, 78 px away): they sample within a pixel of
    the triangle's corners on the frame. ``chosen`` ``(h, w)`` is each pixel's triangle
    (``len(layout.faces)``: none); ``source_points`` the frame's positions of the layout's points."""
    corners = layout.points[layout.faces]
    doubled_area = np.abs(signed_areas(layout.points, layout.faces))
    longest = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(axis=1)
    sliver = doubled_area < _SLIVER_HEIGHT * np.maximum(longest, 1e-9)
    if not sliver.any():
        return
    pixels = np.append(sliver, False)[chosen]
    owners = chosen[pixels]
    frame_corners = source_points[layout.faces[owners]]
    low, high = frame_corners.min(axis=1) - 1.0, frame_corners.max(axis=1) + 1.0
    map_x[pixels] = np.clip(map_x[pixels], low[:, 0], high[:, 0])
    map_y[pixels] = np.clip(map_y[pixels], low[:, 1], high[:, 1])


def _warp(frame: np.ndarray, out: np.ndarray, source: np.ndarray, layout: _Layout,
          region: tuple[int, int, int, int] | None = None, folds: float = 0.0, fold_blur: float = 1.0) -> None:
    """Write into ``out`` the frame warped so that its mesh points ``source`` ``(N_MESH, 2)``
    go to the layout's target points (the inside of the inner lips too).

    Only pixels of triangles with a moving vertex are written; with ``region``
    ``(x0, y0, x1, y1)``, only those inside it. With ``folds`` > 0, skin the warp
    squeezes where folds form (:data:`_FOLD_POINTS`: the nasolabial fold of a smile, the
    furrow between lowered brows, ...) is darkened by ``folds`` per unit of log
    compression (:func:`_compression`) beyond ``_FOLD_DEAD_ZONE``, at most by
    ``_FOLD_MAX``, the shading blurred by ``fold_blur`` pixels (Gaussian sigma).
    """
    x0, y0, x1, y1 = layout.box
    if region is not None:
        x0, y0, x1, y1 = max(x0, region[0]), max(y0, region[1]), min(x1, region[2]), min(y1, region[3])
        if x1 <= x0 or y1 <= y0:
            return
    index = layout.index[y0 - layout.box[1]:y1 - layout.box[1], x0 - layout.box[0]:x1 - layout.box[0]]
    source_points = layout.points.copy()
    source_points[:N_MESH] = source
    maps = _backward_maps(layout.points, source_points, layout.faces)
    moving = (np.any(layout.points[layout.faces] != source_points[layout.faces], axis=(1, 2))
              & np.isfinite(maps[:, 0, 0]))
    # Each pixel's triangle's affine map, gathered over the whole box (the last row, the
    # identity, for pixels that are not written): a gather and a few products per pixel.
    identity = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    written = index >= 0
    written[written] = moving[index[written]]
    chosen = np.where(written, index, len(maps))
    # about the box's origin, so float32 keeps a 1/1000 pixel on any frame size
    local = np.concatenate([maps, identity])
    local[:, :, 2] += local[:, :, 0] * x0 + local[:, :, 1] * y0
    coefficients = local.reshape(-1, 6).T.astype(np.float32)                 # (6, F + 1)
    xs = np.arange(x1 - x0, dtype=np.float32)[None, :]
    ys = np.arange(y1 - y0, dtype=np.float32)[:, None]
    a, b, c, d, e, f = (row[chosen] for row in coefficients)
    map_x, map_y = a * xs + b * ys + c, d * xs + e * ys + f
    _bound_slivers(map_x, map_y, chosen, layout, source_points)
    warped = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if folds > 0:
        prone = np.concatenate([_FOLD_POINTS, np.zeros(len(layout.points) - N_MESH)])[layout.faces].mean(axis=1)
        squeeze = np.maximum(_compression(maps) - _FOLD_DEAD_ZONE, 0.0) * prone
        darkening = np.clip(folds * np.append(squeeze, 0.0)[chosen], 0.0, _FOLD_MAX).astype(np.float32)
        darkening = cv2.GaussianBlur(darkening, (0, 0), fold_blur)[..., None]
        warped = np.clip(warped * (1.0 - darkening * SHADOW_TINT), 0, 255).astype(np.uint8)
    np.copyto(out[y0:y1, x0:x1], warped, where=written[:, :, None])


def _grown(polygon: np.ndarray, by: float) -> np.ndarray:
    """``(K, 2)`` polygon moved outward from its centroid by ``by`` pixels at every vertex."""
    centre = polygon.mean(axis=0)
    radius = np.maximum(np.linalg.norm(polygon - centre, axis=1, keepdims=True), 1e-3)
    return centre + (polygon - centre) * (1.0 + by / radius)


class WarpRenderer:
    """Render a frame with its face moved to new landmarks by a piecewise-affine warp.

    The triangulation runs with BLAS limited to one thread: scipy's Delaunay makes a
    tiny LAPACK call per triangle, which a multi-threaded OpenBLAS slows 10-500x on
    a busy machine (measured: 1.2 ms per frame alone, up to 600 ms under load).
    """

    def __init__(self, config: WarpConfig = WarpConfig()) -> None:
        self.config = config
        self._threads = ThreadpoolController()
        self._painter: MouthPainter | None = None
        self._bank: MouthBank | None = None
        self._frames: Sequence[np.ndarray] = ()
        self._landmarks = np.zeros((0, 478, 3), np.float32)

    def start(self, frames: Sequence[np.ndarray], landmarks: np.ndarray, found: np.ndarray) -> None:
        """Learn the target's mouth: its own mouth frames, lip colour and teeth.

        A video target with at least ``bank.min_frames`` frames with a face keeps them
        in a :class:`~emoportrait.render.mouth_bank.MouthBank`: each driven mouth is then
        drawn from the frame that shows it best. For mouths no frame shows, and for
        stills, the interior is painted: of the frames where the face was found, the
        most open mouths are tried for teeth
        (:func:`~emoportrait.render.mouth.teeth_strip`); without any, the bundled teeth
        are recoloured to the target. The upper lip's rest, from which a raised lip shows more
        of the upper teeth, is its median over the frames
        (:func:`~emoportrait.render.mouth.upper_lip_drop`). Without :meth:`start`, the first frame rendered
        is taken as the target (a still).
        """
        seen = np.flatnonzero(found)
        self._bank = None
        if not len(seen):
            self._painter = None
            return
        if len(seen) >= self.config.bank.min_frames:
            self._bank = MouthBank(landmarks, found, self.config.bank)
            self._frames, self._landmarks = frames, landmarks
        opening = np.linalg.norm(landmarks[seen, 14, :2] - landmarks[seen, 13, :2], axis=1)
        rest_drop = float(np.median([upper_lip_drop(landmarks[k]) for k in seen]))
        candidates = seen[np.argsort(-opening)[:_TEETH_CANDIDATES]]
        chosen = next((k for k in candidates if teeth_strip(frames[k], landmarks[k], self.config.mouth) is not None),
                      seen[0])
        self._painter = MouthPainter.for_target(frames[chosen], landmarks[chosen], self.config.mouth, rest_drop)

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
        size = face_size(source)
        ring = anchor_ring(mesh_source, mesh_target, self.config.margin * size, self.config.ring_points)
        with self._threads.limit(limits=1, user_api="blas"):
            layout = _layout(mesh_target, ring, frame.shape[:2], mesh_source)
            if layout is None:
                return out
            _warp(frame, out, mesh_source, layout, folds=self.config.fold_shading,
                  fold_blur=max(self.config.fold_blur * size, 0.5))
            paint_eyes(out, frame, source, target, self.config.eyes)
            flatten_folds(out, source, target, self.config.creases)
            shade_creases(out, source, target, self.config.creases)
            chosen = self._bank.choose(target) if self._bank is not None and target.shape[1] >= 3 else None
            if chosen is not None:
                self._paste_mouth(out, chosen, target, layout)
                return out
        if self._painter is None:
            self._painter = MouthPainter.for_target(frame, source, self.config.mouth)
        self._painter.paint(out, target, mouth_change(source, target) / self.config.repaint_change)
        return out

    def _paste_mouth(self, out: np.ndarray, chosen: int, target: np.ndarray, layout: _Layout) -> None:
        """Blend into ``out`` the mouth of target frame ``chosen``, warped to ``target``.

        The mouth (lips, teeth, cavity) and the skin just around it are warped from the
        chosen frame and given the shading of ``out``: the difference between the two on a
        band of skin around the lips, spread inward by a normalised Gaussian convolution
        (``shading_sigma``), is added to it. It replaces the lips and what is inside them,
        and blends into the skin around over ``paste_margin`` of the mouth width.
        """
        config = self.config
        frame, source = self._frames[chosen], self._landmarks[chosen]
        lips = target[_OUTER_LIPS, :2].astype(np.float64)
        width = float(np.ptp(lips[:, 0]))
        grown, band = (_grown(lips, share * config.paste_margin * width) for share in (1.0, 2.0))
        x0, y0, x1, y1 = clipped_box(band, 2.0, out.shape)
        if x1 <= x0 or y1 <= y0:
            return
        canvas = np.ascontiguousarray(frame).copy()
        _warp(frame, canvas, source[:N_MESH, :2].astype(np.float64), layout, region=(x0, y0, x1, y1))
        origin = np.array([x0, y0], np.float64)
        shape = (y1 - y0, x1 - x0)
        mask = polygon_mask(grown - origin, shape)
        skin = (polygon_mask(band - origin, shape) > 0.5) & (mask < 0.5)
        patch, base = canvas[y0:y1, x0:x1].astype(np.float32), out[y0:y1, x0:x1].astype(np.float32)
        if skin.sum() > 10:  # shading of the output around the lips, carried inward smoothly
            weight = skin.astype(np.float32)
            sigma = config.shading_sigma * width
            spread = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
            difference = cv2.GaussianBlur((base - patch) * weight[..., None], (0, 0), sigma)
            patch += np.clip(difference / np.maximum(spread, 1e-3), -config.max_shading, config.max_shading)
        mask = np.maximum(cv2.GaussianBlur(mask, (0, 0), max(config.paste_feather * width, 0.5)),
                          polygon_mask(lips - origin, shape))
        blended = base + mask[..., None] * (patch - base)
        out[y0:y1, x0:x1] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
