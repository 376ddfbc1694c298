"""FACS action units as displacement fields on the MediaPipe face mesh.

An action unit (AU) here is a ``(478, 3)`` displacement field in the canonical face
frame (x toward the subject's left = image right, y down, z away from the camera;
the rigid points have RMS radius 1, the eye centres are ~1.17 apart), built for one
identity face. A few *control* landmarks, located on that face (lid margins split at
the eye corners, brow points ordered from the inner to the outer end, lip arcs split
at the mouth corners, ...), are moved in the AU's direction; every other mesh point
takes the inverse-distance-weighted blend of the control moves times a Gaussian
falloff of its distance to the nearest control (:func:`spread`).

Distances are *geodesic*: shortest paths along the edges of MediaPipe's face-mesh
tessellation, measured on the identity. The tessellation leaves the eyes and the
mouth open, so a lower-lip control does not reach the upper lip across the mouth,
nor an upper-lid control the lower lid; the 10 iris points are not on the surface
and never move.

Per-side AUs (brows, lids, cheeks, nose wings, lip corners) are built for each side
of the face; the bilateral AU (``"AU12"``) is the sum of the two sides, and the
suffixes ``R``/``L`` (``"AU12R"``: the subject's right, image left) select one side,
as in unilateral contempt. Per-side moves are given as ``(lateral, y, z)`` with
``lateral`` positive away from the face's midline. Amplitudes at intensity 1 (a
clearly visible apex) are in :class:`ActionUnitConfig`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path

from ..errors import InputError
from ..face.landmarks import CHEEK, GROUPS, N_LANDMARKS, NOSE_SIDE, NOSE_WING, RIGID, SIDES, contour_halves
from ..ramps import smoothstep


_SIDE_SUFFIX = {"R": "right", "L": "left"}
_OUTWARD_X = {"right": -1.0, "left": 1.0}  # sign of canonical x pointing away from the midline

# Mesh points on the face's vertical midline (forehead, nose, chin).
_MIDLINE = (10, 168, 6, 197, 195, 5, 4, 1, 2, 152)
# Inner-lip midpoints (upper, lower): the mouth opening is calibrated on their distance.
_INNER_LIP_UPPER, _INNER_LIP_LOWER = 13, 14
# Lowest point of the chin: with the lower lip, the part of the face the jaw carries.
_CHIN = 152
# The nose's base (subnasale) and the outer points of its wings: the lips' AUs stop there.
_SUBNASALE = 2
_NOSE_WING_OUTER = (64, 294)
_SIDE_BLEND = 0.2  # a one-sided mouth AU fades out over this (half mouth widths) across the midline


@dataclass(frozen=True)
class ActionUnitConfig:
    """Amplitudes (canonical units) and falloff radii of the action units.

    Per-side moves are ``(lateral, y, z)``: lateral away from the midline, y down,
    z away from the camera (so "up" is negative y, "forward" negative z).
    """

    # Falloff radii: Gaussian sigma over the geodesic distance to the nearest control.
    brow_sigma: float = 0.2         # brows: carries the move onto the forehead
    lid_sigma: float = 0.08         # lid margins: the lid skin follows, the brow does not
    lid_gap: float = 0.17           # lid moves are given for eyes this open (MEAD's M030 and W009; the
                                    # shared portraits' 0.13-0.15) and scale with the face's own gap: the
                                    # same move all but closed a smaller eye
    cheek_sigma: float = 0.2        # cheek surface
    nose_sigma: float = 0.12        # nose wing and side
    corner_sigma: float = 0.25      # lip corners: neighbouring lips and nasolabial skin
    lip_sigma: float = 0.15         # whole-lip AUs: the lips and the skin just around them
    cutoff_sigmas: float = 3.0      # the falloff reaches exactly 0 at this many sigmas
    brow_gate_height: float = 0.15  # brow AUs fade to 0 over this height above the top of the eyes
    nose_gate_height: float = 0.05  # the lips' AUs fade to 0 over this height below the nose's base
    nose_gate_side: float = 0.06    # ... and back to full beside the nose wings over this width

    au1_inner_brow_raise: float = 0.16   # lift of the inner brow end (tapers to 0 at the outer end)
    au2_outer_brow_raise: float = 0.16   # lift of the outer brow end (tapers to 0 at the inner end)
    au4_brow_lower: float = 0.18         # drop of the inner brow end (half of it at the outer end)
    au4_brow_gather: float = 0.10        # inner brow end toward the midline (0 at the outer end)
    au5_upper_lid_raise: float = 0.06    # lift of the upper-lid centre (the lid gap is ~0.18)
    au6_cheek_raise: tuple[float, float, float] = (0.0, -0.06, -0.02)  # cheek up, a little forward
    au6_lower_lid_raise: float = 0.02    # extra lift of the lower-lid centre (the cheek pushes too)
    au41_upper_lid_drop: float = 0.06    # drop of the upper-lid centre (MEAD sad, level 3: the lid gap
                                         # narrows 0.105 on M030, 0.025 on W009)
    au7_lower_lid_raise: float = 0.07    # lift of the lower-lid centre (lid tightened)
    au7_upper_lid_lower: float = 0.02    # drop of the upper-lid centre
    au9_wing_raise: tuple[float, float, float] = (0.02, -0.10, -0.01)  # nose wing up, flared
    au9_side_raise: tuple[float, float, float] = (0.0, -0.06, 0.0)      # side of the nose up (wrinkles)
    au10_upper_lip_raise: float = 0.08   # lift of the upper-lip centre (0 at the corners)
    au12_corner: tuple[float, float, float] = (0.1, -0.12, 0.03)    # lip corner out, up, back
    au14_corner: tuple[float, float, float] = (0.02, -0.02, 0.06)   # lip corner back into the cheek
    au15_corner: tuple[float, float, float] = (0.02, 0.14, 0.0)     # lip corner down
    au16_lower_lip: tuple[float, float] = (0.08, -0.03)  # lower-lip centre (y down, z forward)
    au17_lower_lip: tuple[float, float] = (-0.05, -0.03)  # chin raiser: lower-lip centre pushed up, forward
    au17_chin: float = 0.04              # ... and the chin boss lifted
    au25_upper_lip: float = 0.035        # lips part: the upper-lip centre rises ...
    au25_lower_lip: float = 0.035        # ... and the lower-lip centre falls
    au18_contraction: float = 0.2        # pucker: lips drawn to the mouth centre by this fraction
    au18_protrusion: float = 0.06        # pucker: lips pushed forward
    au20_stretch: float = 0.17           # lips pulled sideways by this fraction of their offset
    au20_corner_drop: float = 0.02       # the corners drop a little as they stretch
    au23_contraction: float = 0.08       # lip tightener: lips narrower by this fraction
    au23_thinning: float = 0.025         # outer lip contours move toward the lip line (thinner red)
    au26_gap: float = 0.25               # inner-lip gap added by the jaw drop
    # How an opening mouth shares its inner-lip gap (13-14), measured on real faces: each
    # frontalised landmark regressed on the gap over HDTF Katie Hill and MEAD M030 (sad, neutral,
    # surprised, happy) and W009 (neutral, surprised, happy). Per unit of gap the chin moves
    # 0.12-0.45 (mean 0.31) and the upper lip's middle rises 0.09-0.40 (mean 0.2); the lower lip
    # drops the rest on its own, round across the mouth (its inner points at 0.2, 0.5, 0.7, 0.9
    # and 1 of the middle's from the corner in). A jaw that carried all of it (chin 0.92) left the
    # lower lip flat-bottomed and the chin swinging like a nutcracker's.
    # In depth, the chin and the lower lip's middle go back 0.45-0.50 and 0.44-0.58 per unit of gap
    # (six of those clips): the jaw swings back 1.5 times as far as it drops.
    opening_chin_share: float = 0.3      # the jaw (and chin) drops this share of the gap
    opening_upper_share: float = 0.2     # the upper lip rises this share
    jaw_back_per_down: float = 1.5       # the jaw swings back (+z) this much per unit down
    jaw_lip_core: float = 0.6            # lower-lip points this central (lip profile) ride fully


@dataclass(frozen=True)
class Arcs:
    """The two halves of a closed contour (lids, lips), each from its image-left corner
    to its image-right one (:func:`~emoportrait.face.landmarks.contour_halves`).

    Attributes:
        upper: ``(n,)`` indices from one end to the other, both ends included.
        lower: ``(m,)`` indices of the other half, both ends included.
    """

    upper: np.ndarray
    lower: np.ndarray


class FaceGeometry:
    """An identity face with the geodesic distances and regions the AUs are built on.

    Args:
        identity: ``(478, 3)`` face in the canonical frame.
    """

    def __init__(self, identity: np.ndarray) -> None:
        self.points = np.asarray(identity, dtype=np.float64)
        if self.points.shape != (N_LANDMARKS, 3) or not np.all(np.isfinite(self.points)):
            raise InputError(f"identity face has shape {self.points.shape} or non-finite values; "
                             f"expected finite ({N_LANDMARKS}, 3) canonical landmarks")

    @cached_property
    def distances(self) -> np.ndarray:
        """``(478, 478)`` geodesic distances along the mesh (inf to and from the irises)."""
        edges = np.array(sorted(FACEMESH_TESSELATION))
        lengths = np.linalg.norm(self.points[edges[:, 0]] - self.points[edges[:, 1]], axis=1)
        lengths = np.maximum(lengths, 1e-9)  # a zero weight would drop the edge from the graph
        graph = coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(N_LANDMARKS,) * 2)
        return shortest_path(graph.tocsr(), method="D", directed=False)

    @cached_property
    def midline_x(self) -> float:
        """Canonical x of the face's vertical midline."""
        return float(self.points[list(_MIDLINE), 0].mean())

    def eye_arcs(self, side: str) -> Arcs:
        """Upper- and lower-lid margins of one eye, each from corner to corner."""
        return Arcs(*contour_halves(f"{side}_eye"))

    def lid_gap(self, side: str) -> float:
        """How open the eye of ``side`` is: the largest height (canonical y) of the lower lid
        margin below the upper one."""
        arcs = self.eye_arcs(side)
        upper = self.points[arcs.upper]
        lower = _across(self.points[arcs.lower], upper[:, 0])
        return float(max((lower[:, 1] - upper[:, 1]).max(), 0.0))

    def lip_arcs(self, contour: str) -> Arcs:
        """Upper and lower halves of the ``"outer_lips"`` or ``"inner_lips"`` contour."""
        return Arcs(*contour_halves(contour))

    @cached_property
    def mouth_centre_x(self) -> float:
        """Canonical x halfway between the outer mouth corners."""
        outer = self.points[GROUPS["outer_lips"], 0]
        return float((outer.min() + outer.max()) / 2.0)

    @cached_property
    def mouth_half_width(self) -> float:
        """Half the distance between the outer mouth corners (canonical units)."""
        outer = self.points[GROUPS["outer_lips"], 0]
        return float((outer.max() - outer.min()) / 2.0)

    def lip_offset(self, indices: np.ndarray) -> np.ndarray:
        """``(n,)`` canonical x of the points minus the mouth centre's."""
        return self.points[indices, 0] - self.mouth_centre_x

    def lip_profile(self, indices: np.ndarray) -> np.ndarray:
        """``(n,)`` 1 on the mouth's centre line, falling to 0 at the corners (parabola)."""
        relative = self.lip_offset(indices) / self.mouth_half_width
        return np.clip(1.0 - relative**2, 0.0, 1.0)

    def brow_position(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Brow points and where each lies along its brow.

        Returns:
            (``(10,)`` indices, ``(10,)`` position in [0, 1]: 0 at the inner end, 1 at
            the outer end, measured along canonical x).
        """
        indices = GROUPS[f"{side}_brow"]
        x = self.points[indices, 0]
        inner = x[np.argmin(np.abs(x - self.midline_x))]
        outer = x[np.argmax(np.abs(x - self.midline_x))]
        return indices, np.abs(x - inner) / abs(outer - inner)

    def brow_gate(self, height: float) -> np.ndarray:
        """``(478,)`` 0 at and below the top of the eyes, rising to 1 ``height`` above it."""
        eyes = np.concatenate([GROUPS["right_eye"], GROUPS["left_eye"]])
        eye_top = self.points[eyes, 1].min()
        return smoothstep((eye_top - self.points[:, 1]) / height)

    def nose_gate(self, height: float, side_ramp: float) -> np.ndarray:
        """``(478,)`` 0 on the nose at and above its base (the subnasale), rising to 1
        ``height`` below it; beside the nose (past the nose wings, over ``side_ramp``) 1."""
        x, y = self.points[:, 0], self.points[:, 1]
        half_width = abs(self.points[_NOSE_WING_OUTER[1], 0] - self.points[_NOSE_WING_OUTER[0], 0]) / 2.0
        beside = smoothstep((np.abs(x - self.midline_x) - half_width) / side_ramp + 0.5)
        below = smoothstep((y - self.points[_SUBNASALE, 1]) / height)
        return np.maximum(below, beside)


# ----------------------------------------------------------------- spreading moves


def falloff(
    geometry: FaceGeometry, controls: np.ndarray, sigma: float, config: ActionUnitConfig
) -> np.ndarray:
    """How much each mesh point follows the controls: 1 on them, Gaussian decay to 0.

    ``exp(-d² / 2σ²)`` of the geodesic distance ``d`` to the nearest control, shifted
    and rescaled so it reaches exactly 0 at ``cutoff_sigmas`` sigmas (continuously).

    Returns:
        ``(478,)`` weights in [0, 1] (0 for the iris points).
    """
    nearest = geometry.distances[np.asarray(controls)].min(axis=0)
    floor = np.exp(-0.5 * config.cutoff_sigmas**2)
    gaussian = np.exp(-0.5 * (nearest / sigma) ** 2)
    return np.maximum(gaussian - floor, 0.0) / (1.0 - floor)


def spread(
    geometry: FaceGeometry,
    controls: np.ndarray,
    moves: np.ndarray,
    sigma: float,
    config: ActionUnitConfig,
) -> np.ndarray:
    """Displacement field that moves the controls and drags their surroundings along.

    Each point gets the inverse-square-distance-weighted mean of the control moves
    (exact on the controls) times :func:`falloff`.

    Args:
        geometry: The identity face.
        controls: ``(C,)`` landmark indices.
        moves: ``(C, 3)`` canonical displacement of each control.
        sigma: Falloff radius (canonical units, geodesic).
        config: AU settings (``cutoff_sigmas``).

    Returns:
        ``(478, 3)`` float64 displacements.
    """
    distances = geometry.distances[np.asarray(controls)]  # (C, 478)
    inverse = 1.0 / (distances**2 + 1e-12)  # inf distance -> weight 0
    total = inverse.sum(axis=0)
    blended = np.divide(inverse.T @ moves, total[:, None], out=np.zeros((N_LANDMARKS, 3)),
                        where=total[:, None] > 0)
    return blended * falloff(geometry, controls, sigma, config)[:, None]


def _canonical(move: tuple[float, ...] | np.ndarray, side: str) -> np.ndarray:
    """``(..., 3)`` canonical move of ``(..., 3)`` ``(lateral, y, z)`` moves on one side."""
    return np.asarray(move, dtype=np.float64) * np.array([_OUTWARD_X[side], 1.0, 1.0])


def _lid_profile(geometry: FaceGeometry, arc: np.ndarray) -> np.ndarray:
    """``(n,)`` ``sin(π u)`` along a lid from corner (u=0) to corner (u=1): 1 mid-lid."""
    x = geometry.points[arc, 0]
    return np.sin(np.pi * (x - x.min()) / (x.max() - x.min()))


def lid_field(
    geometry: FaceGeometry, side: str, lid: str, lift: float, config: ActionUnitConfig
) -> np.ndarray:
    """One lid margin moved up by ``lift`` mid-lid (``sin`` profile, corners fixed), scaled by
    how open this face's eye is (:meth:`FaceGeometry.lid_gap` over ``config.lid_gap``).

    Args:
        lid: ``"upper"`` or ``"lower"``.
        lift: Upward move of the lid's centre (negative: down), canonical units, for an eye
            ``config.lid_gap`` open.

    Returns:
        ``(478, 3)`` displacements.
    """
    arc = getattr(geometry.eye_arcs(side), lid)
    lift = lift * geometry.lid_gap(side) / config.lid_gap
    moves = np.outer(_lid_profile(geometry, arc), [0.0, -lift, 0.0])
    return spread(geometry, arc, moves, config.lid_sigma, config)


def blink_field(geometry: FaceGeometry, lower_share: float, config: ActionUnitConfig) -> np.ndarray:
    """Both eyes closed: the lid margins meet on a line between them.

    At each x, the lower lid rises by ``lower_share`` of the lid gap and the upper lid
    comes down the rest (in y and z); the eye corners stay.

    Returns:
        ``(478, 3)`` displacements from the identity's open eyes to closed ones.
    """
    field = np.zeros((N_LANDMARKS, 3))
    for side in SIDES:
        arcs = geometry.eye_arcs(side)
        upper, lower = geometry.points[arcs.upper], geometry.points[arcs.lower]
        upper_moves = (1.0 - lower_share) * (_across(lower, upper[:, 0]) - upper)
        lower_moves = lower_share * (_across(upper, lower[:, 0]) - lower)
        controls = np.concatenate([arcs.upper, arcs.lower])
        moves = np.concatenate([upper_moves, lower_moves]) * np.array([0.0, 1.0, 1.0])
        field += spread(geometry, controls, moves, config.lid_sigma, config)
    return field


def _across(arc_points: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(n, 3)`` points of the polyline ``arc_points`` ``(m, 3)`` at the canonical ``x`` values."""
    order = np.argsort(arc_points[:, 0])
    xs = arc_points[order, 0]
    return np.stack([x] + [np.interp(x, xs, arc_points[order, k]) for k in (1, 2)], axis=1)


def eye_weight(geometry: FaceGeometry, config: ActionUnitConfig) -> np.ndarray:
    """``(478,)`` :func:`falloff` around both eyes' lid margins (1 on the margins)."""
    margins = np.concatenate([GROUPS["right_eye"], GROUPS["left_eye"]])
    return falloff(geometry, margins, config.lid_sigma, config)


# ------------------------------------------------------------ per-side action units


def _brow_field(
    geometry: FaceGeometry, side: str, moves_of: Callable[[np.ndarray], np.ndarray],
    config: ActionUnitConfig,
) -> np.ndarray:
    """Brow field: ``moves_of`` maps each brow point's position along the brow (0 inner,
    1 outer) to its ``(lateral, y, z)`` move; the result is gated to above the eyes."""
    indices, position = geometry.brow_position(side)
    moves = _canonical(moves_of(position), side)
    field = spread(geometry, indices, moves, config.brow_sigma, config)
    return field * geometry.brow_gate(config.brow_gate_height)[:, None]


def _au1(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Inner brow raiser: the inner brow end lifts, the outer end stays."""
    def moves(u: np.ndarray) -> np.ndarray:
        return np.outer(1.0 - u, [0.0, -config.au1_inner_brow_raise, 0.0])
    return _brow_field(geometry, side, moves, config)


def _au2(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Outer brow raiser: the outer brow end lifts, the inner end stays."""
    def moves(u: np.ndarray) -> np.ndarray:
        return np.outer(u, [0.0, -config.au2_outer_brow_raise, 0.0])
    return _brow_field(geometry, side, moves, config)


def _au4(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Brow lowerer: brows down (most at the inner end) and drawn toward each other."""
    def moves(u: np.ndarray) -> np.ndarray:
        gather = -config.au4_brow_gather * (1.0 - u)
        lower = config.au4_brow_lower * (1.0 - 0.5 * u)
        return np.stack([gather, lower, np.zeros_like(u)], axis=1)
    return _brow_field(geometry, side, moves, config)


def _au5(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Upper lid raiser: the upper lid lifts, widening the eye."""
    return lid_field(geometry, side, "upper", config.au5_upper_lid_raise, config)


def _au41(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Lid droop: the upper lid sags, narrowing the eye (sadness, fatigue)."""
    return lid_field(geometry, side, "upper", -config.au41_upper_lid_drop, config)


def _au6(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Cheek raiser: the cheek lifts and bunches the lower lid up."""
    cheek = np.array(CHEEK[side])
    moves = np.tile(_canonical(config.au6_cheek_raise, side), (len(cheek), 1))
    cheek_field = spread(geometry, cheek, moves, config.cheek_sigma, config)
    return cheek_field + lid_field(geometry, side, "lower", config.au6_lower_lid_raise, config)


def _au7(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Lid tightener: the lower lid rises and straightens, the upper lid drops a little."""
    lower = lid_field(geometry, side, "lower", config.au7_lower_lid_raise, config)
    return lower + lid_field(geometry, side, "upper", -config.au7_upper_lid_lower, config)


def _au9(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Nose wrinkler: the nose wing and the side of the nose pull up."""
    wing, flank = NOSE_WING[side], NOSE_SIDE[side]
    controls = np.array(wing + flank)
    moves = np.concatenate([np.tile(_canonical(config.au9_wing_raise, side), (len(wing), 1)),
                            np.tile(_canonical(config.au9_side_raise, side), (len(flank), 1))])
    return spread(geometry, controls, moves, config.nose_sigma, config)


def _corner_field(
    geometry: FaceGeometry, side: str, move: tuple[float, float, float], config: ActionUnitConfig
) -> np.ndarray:
    """The lip corner moved by ``move`` ``(lateral, y, z)``, the nearby skin following.

    Every lip point is a control: on ``side`` it moves by ``move`` times
    ``1 - lip_profile`` (all of it at the corner, none at the middle), the other side's
    lips stay, so the mouth line bends (a smile curves up, a frown down) instead of the
    whole mouth rising with the corner.
    """
    lips = GROUPS["lips"]
    on_side = np.sign(geometry.lip_offset(lips)) == _OUTWARD_X[side]
    weight = np.where(on_side, 1.0 - geometry.lip_profile(lips), 0.0)
    moves = np.outer(weight, _canonical(move, side))
    field = _off_the_nose(geometry, spread(geometry, lips, moves, config.corner_sigma, config), config)
    outward = _OUTWARD_X[side] * (geometry.points[:, 0] - geometry.mouth_centre_x) / geometry.mouth_half_width
    return field * smoothstep(outward / _SIDE_BLEND + 0.5)[:, None]  # nothing beyond the midline


def _au12(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Lip corner puller: the corner moves up and out (smile)."""
    return _corner_field(geometry, side, config.au12_corner, config)


def _au14(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Dimpler: the corner is tightened back into the cheek."""
    return _corner_field(geometry, side, config.au14_corner, config)


def _au15(geometry: FaceGeometry, config: ActionUnitConfig, side: str) -> np.ndarray:
    """Lip corner depressor: the corner is pulled down."""
    return _corner_field(geometry, side, config.au15_corner, config)


# ------------------------------------------------------------ whole-mouth action units


def _lip_contours(geometry: FaceGeometry) -> tuple[Arcs, Arcs]:
    """The outer and the inner lip contour, each split at its corners."""
    return geometry.lip_arcs("outer_lips"), geometry.lip_arcs("inner_lips")


def _upper_lips(geometry: FaceGeometry) -> np.ndarray:
    """Indices of the outer and inner upper-lip arcs (corners included)."""
    return np.concatenate([arcs.upper for arcs in _lip_contours(geometry)])


def _lower_lips(geometry: FaceGeometry) -> np.ndarray:
    """Indices of the outer and inner lower-lip arcs (corners included)."""
    return np.concatenate([arcs.lower for arcs in _lip_contours(geometry)])


def _off_the_nose(geometry: FaceGeometry, field: np.ndarray, config: ActionUnitConfig) -> np.ndarray:
    """A lip AU's ``(478, 3)`` field, kept off the nose: the skin under the nose tip is thin in
    view, and lifting it into the nose turns its triangles over (a dark ring at the nostril)."""
    return field * geometry.nose_gate(config.nose_gate_height, config.nose_gate_side)[:, None]


def upper_lip_raise(geometry: FaceGeometry, lift: float, config: ActionUnitConfig) -> np.ndarray:
    """The upper lip lifted by ``lift`` at its centre (0 at the corners): ``(478, 3)``."""
    lips = _upper_lips(geometry)
    moves = np.outer(geometry.lip_profile(lips), [0.0, -lift, 0.0])
    return _off_the_nose(geometry, spread(geometry, lips, moves, config.lip_sigma, config), config)


def lower_lip_lower(
    geometry: FaceGeometry, move: tuple[float, float], config: ActionUnitConfig
) -> np.ndarray:
    """The lower lip's centre moved by ``move`` ``(y, z)`` (0 at the corners): ``(478, 3)``."""
    lips = _lower_lips(geometry)
    moves = np.outer(geometry.lip_profile(lips), [0.0, *move])
    return spread(geometry, lips, moves, config.lip_sigma, config)


def lower_lip_tuck(
    geometry: FaceGeometry, lift: float, back: float, config: ActionUnitConfig
) -> np.ndarray:
    """The lower lip raised by ``lift`` and drawn ``back`` at its centre, as under the upper
    teeth in /f/ and /v/ (0 at the corners): ``(478, 3)``."""
    return lower_lip_lower(geometry, (-lift, back), config)


def lip_pucker(
    geometry: FaceGeometry, contraction: float, protrusion: float, config: ActionUnitConfig
) -> np.ndarray:
    """Lips drawn toward the mouth centre by ``contraction`` of their offset and pushed forward.

    Returns:
        ``(478, 3)`` displacements (rounded lips, as for /u/).
    """
    lips = GROUPS["lips"]
    moves = np.zeros((len(lips), 3))
    moves[:, 0] = -contraction * geometry.lip_offset(lips)
    moves[:, 2] = -protrusion
    return _off_the_nose(geometry, spread(geometry, lips, moves, config.lip_sigma, config), config)


def lip_stretch(
    geometry: FaceGeometry, stretch: float, corner_drop: float, config: ActionUnitConfig
) -> np.ndarray:
    """Lips pulled sideways by ``stretch`` of their offset, corners dropping ``corner_drop``.

    Returns:
        ``(478, 3)`` displacements (spread lips, as for /i/).
    """
    lips = GROUPS["lips"]
    moves = np.zeros((len(lips), 3))
    moves[:, 0] = stretch * geometry.lip_offset(lips)
    moves[:, 1] = corner_drop * (1.0 - geometry.lip_profile(lips))
    return _off_the_nose(geometry, spread(geometry, lips, moves, config.lip_sigma, config), config)


def _au10(geometry: FaceGeometry, config: ActionUnitConfig) -> np.ndarray:
    """Upper lip raiser."""
    return upper_lip_raise(geometry, config.au10_upper_lip_raise, config)


def _au16(geometry: FaceGeometry, config: ActionUnitConfig) -> np.ndarray:
    """Lower lip depressor (the lower lip also turns out a little)."""
    return lower_lip_lower(geometry, config.au16_lower_lip, config)


def _au17(geometry: FaceGeometry, config: ActionUnitConfig) -> np.ndarray:
    """Chin raiser: the chin boss pushes the lower lip up (a pout, the mouth line arched)."""
    chin = spread(geometry, np.array([_CHIN]), np.array([[0.0, -config.au17_chin, 0.0]]),
                  config.cheek_sigma, config)
    return lower_lip_lower(geometry, config.au17_lower_lip, config) + chin


def _au25(geometry: FaceGeometry, config: ActionUnitConfig) -> np.ndarray:
    """Lips part: the lips separate at the middle (the upper teeth show), the jaw stays."""
    return (upper_lip_raise(geometry, config.au25_upper_lip, config)
            + lower_lip_lower(geometry, (config.au25_lower_lip, 0.0), config))


def _au18(geometry: FaceGeometry, config: ActionUnitConfig) -> np.ndarray:
    """Lip pucker."""
    return lip_pucker(geometry, config.au18_contraction, config.au18_protrusion, config)


def _au20(geometry: FaceGeometry, config: ActionUnitConfig) -> np.ndarray:
    """Lip stretcher: the corners pulled sideways."""
    return lip_stretch(geometry, config.au20_stretch, config.au20_corner_drop, config)


def _au23(geometry: FaceGeometry, config: ActionUnitConfig) -> np.ndarray:
    """Lip tightener: narrower lips with thinner red margins; the lip line stays."""
    outer = geometry.lip_arcs("outer_lips")
    inner = GROUPS["inner_lips"]
    lips = np.concatenate([outer.upper, outer.lower, inner])
    thinning = np.concatenate([geometry.lip_profile(outer.upper), -geometry.lip_profile(outer.lower),
                               np.zeros(len(inner))])
    moves = np.stack([-config.au23_contraction * geometry.lip_offset(lips),
                      config.au23_thinning * thinning, np.zeros(len(lips))], axis=1)
    return _off_the_nose(geometry, spread(geometry, lips, moves, config.lip_sigma, config), config)


def jaw_weight(geometry: FaceGeometry, config: ActionUnitConfig) -> np.ndarray:
    """``(478,)`` how much each point rides with the jaw: 1 on the chin and mid lower lip.

    ``d_up / (d_up + d_low)`` of the geodesic distances to the upper face (rigid points,
    everything above the lower lids, cheekbones and upper lip) and to the jaw (the
    chin and the lower lip where :meth:`FaceGeometry.lip_profile` is at least
    ``jaw_lip_core``), through a smoothstep: the lower lip bends smoothly up to the
    corners, the lower cheeks fade out toward the cheekbones and the ears.
    """
    corners = np.concatenate([arcs.upper[[0, -1]] for arcs in _lip_contours(geometry)])
    cheeks = np.concatenate([CHEEK[side] for side in SIDES])
    eyes = np.concatenate([GROUPS["right_eye"], GROUPS["left_eye"]])
    above_eyes = np.flatnonzero(geometry.points[:, 1] <= geometry.points[eyes, 1].max())
    upper = np.setdiff1d(np.concatenate([RIGID, above_eyes, cheeks, _upper_lips(geometry)]), corners)
    lower_lips = _lower_lips(geometry)
    core = lower_lips[geometry.lip_profile(lower_lips) >= config.jaw_lip_core]
    lower = np.append(core, _CHIN)
    to_upper = geometry.distances[upper].min(axis=0)
    to_lower = geometry.distances[lower].min(axis=0)
    total = to_upper + to_lower
    ratio = np.divide(to_upper, total, out=np.zeros(N_LANDMARKS), where=np.isfinite(total))
    return smoothstep(ratio)


def jaw_move(geometry: FaceGeometry, step: float, config: ActionUnitConfig) -> np.ndarray:
    """The jaw moved ``step`` down (negative: up) and ``jaw_back_per_down`` as much back,
    weighted by :func:`jaw_weight`: ``(478, 3)`` displacements."""
    direction = np.array([0.0, 1.0, config.jaw_back_per_down])
    return np.outer(jaw_weight(geometry, config), step * direction)


def mouth_opening(geometry: FaceGeometry, gap: float, config: ActionUnitConfig) -> np.ndarray:
    """The mouth opened so that the inner-lip gap (13–14) grows by exactly ``gap``, shared as
    real mouths share it: the jaw carries the chin down by ``opening_chin_share`` of it
    (:func:`jaw_move`), the upper lip rises by ``opening_upper_share`` (:func:`upper_lip_raise`)
    and the lower lip drops the rest on its own (:func:`lower_lip_lower`), most at the middle.

    Returns:
        ``(478, 3)`` displacements.
    """
    lower_share = 1.0 - config.opening_chin_share - config.opening_upper_share
    unit = (jaw_move(geometry, config.opening_chin_share, config)
            + upper_lip_raise(geometry, config.opening_upper_share, config)
            + lower_lip_lower(geometry, (lower_share, 0.0), config))
    direction = unit[_INNER_LIP_LOWER] - unit[_INNER_LIP_UPPER]
    lip_gap = geometry.points[_INNER_LIP_LOWER] - geometry.points[_INNER_LIP_UPPER]
    # Solve |lip_gap + s * direction| = |lip_gap| + gap for the scale s > 0.
    a = direction @ direction
    b = 2.0 * (lip_gap @ direction)
    c = lip_gap @ lip_gap - (np.linalg.norm(lip_gap) + gap) ** 2
    return unit * (-b + np.sqrt(b * b - 4.0 * a * c)) / (2.0 * a)


def _au26(geometry: FaceGeometry, config: ActionUnitConfig) -> np.ndarray:
    """Jaw drop."""
    return mouth_opening(geometry, config.au26_gap, config)


# ------------------------------------------------------------------------ registry

_PER_SIDE: dict[str, Callable[[FaceGeometry, ActionUnitConfig, str], np.ndarray]] = {
    "AU1": _au1, "AU2": _au2, "AU4": _au4, "AU5": _au5, "AU6": _au6, "AU7": _au7,
    "AU9": _au9, "AU12": _au12, "AU14": _au14, "AU15": _au15, "AU41": _au41,
}
_WHOLE_MOUTH: dict[str, Callable[[FaceGeometry, ActionUnitConfig], np.ndarray]] = {
    "AU10": _au10, "AU16": _au16, "AU17": _au17, "AU18": _au18, "AU20": _au20, "AU23": _au23,
    "AU25": _au25, "AU26": _au26,
}

ACTION_UNITS: tuple[str, ...] = (
    *_PER_SIDE, *_WHOLE_MOUTH, *(name + suffix for name in _PER_SIDE for suffix in _SIDE_SUFFIX)
)
"""Names :func:`action_unit` builds: ``AU<n>``, and ``AU<n>R``/``AU<n>L`` for per-side AUs."""


def action_unit(
    geometry: FaceGeometry, name: str, config: ActionUnitConfig = ActionUnitConfig()
) -> np.ndarray:
    """Displacement field of one action unit at intensity 1.

    Args:
        geometry: The identity face.
        name: One of :data:`ACTION_UNITS` (e.g. ``"AU12"``, or ``"AU12R"`` for the
            subject's right side only).
        config: Amplitudes and falloffs.

    Returns:
        ``(478, 3)`` float64 canonical displacements.
    """
    if name in _WHOLE_MOUTH:
        return _WHOLE_MOUTH[name](geometry, config)
    if name in _PER_SIDE:
        return sum(_PER_SIDE[name](geometry, config, side) for side in SIDES)
    base, suffix = name[:-1], name[-1:]
    if base in _PER_SIDE and suffix in _SIDE_SUFFIX:
        return _PER_SIDE[base](geometry, config, _SIDE_SUFFIX[suffix])
    raise InputError(f"unknown action unit '{name}'; choose from {', '.join(ACTION_UNITS)}")
