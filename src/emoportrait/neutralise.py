"""The target's own expression, measured on its identity face and taken off it.

The driver adds speech and emotion to the target's *identity* face. If that face
already shows an expression (a portrait with an open, smiling mouth), the driven
one would add to it. :func:`neutralise` measures the expression on the identity
and returns the identity with it removed, as displacements built from the same
action units the driver uses (:mod:`.drivers.action_units`):

* **open mouth**: the lips are closed (the jaw rises, the upper lip comes down a
  little, the rest of the inner-lip contour is sealed);
* **smile or frown**, on each side: how far the lip corner sits above the upper inner
  lip's middle, over the mouth width (:func:`corner_lift`), beyond a neutral face's, is
  undone with the lip corner puller (AU12) and part of the cheek raiser (AU6) of that
  side; corners lower than ``frown_margin`` below it with the depressor (AU15).
  Neutral faces measure 0.00-0.06 (MEAD's M030 and W009, four neutral portraits of
  ``shared/media``), smiles 0.09-0.16.

Brow height and lid opening differ too much between people to be told from one face
and are kept.

All in the canonical face frame (see :mod:`.drivers.action_units`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .drivers.action_units import SIDES, ActionUnitConfig, FaceGeometry, action_unit, jaw_move, spread
from .face.landmarks import LIP_CORNER

_LOWER_MIDDLE = 14  # lower inner-lip midpoint
_UPPER_MIDDLE = 13  # upper inner-lip midpoint
_SIDE_SUFFIX = {"right": "R", "left": "L"}


@dataclass(frozen=True)
class NeutraliseConfig:
    """How far :func:`neutralise` goes (canonical units)."""

    closed_gap: float = 0.005      # inner-lip height (13 to 14) of closed lips; wider mouths are closed
    neutral_lift: float = 0.035    # corner lift of a neutral face (measured: 0.00-0.06)
    frown_margin: float = 0.035    # corners lower than neutral by more than this are frowning
    max_amount: float = 1.5        # at most this much AU12 or AU15 is taken off a side
    cheek_share: float = 0.5       # AU6 taken off with each unit of AU12


def close_lips(geometry: FaceGeometry, config: NeutraliseConfig = NeutraliseConfig(),
               units: ActionUnitConfig = ActionUnitConfig()) -> np.ndarray:
    """``(478, 3)`` displacement that closes an open mouth, leaving a ``closed_gap`` slit.

    At each point of the lips, the gap is the height (y) of the lower inner lip below
    the upper one at that x, less ``closed_gap`` (negative where pressed lips were
    tracked crossing each other: those are parted to the slit). The mouth closes as real
    mouths open, backwards (:func:`~.drivers.action_units.mouth_opening`): the upper lip (inner
    and outer contour) comes down by ``opening_upper_share`` of the gap and the lower lip rises by
    the rest, so the inner contours meet and both lips keep their thickness; the skin around
    follows. The jaw (:func:`~.drivers.action_units.jaw_move`) rises by ``opening_chin_share`` of
    the gap at the middle, carrying the chin; the lip's own moves make up the rest.
    The lower lip of an open mouth also sits behind the upper one (+z; 0.09 on MEAD's
    M030, under 0.002 on closed mouths): it comes forward to meet it, by the share
    ``gap / (gap + closed_gap)`` of that depth (all of it for a wide mouth, none for
    closed or crossed lips), else a turned head would show the closed lips parted.
    """
    inner, outer = geometry.lip_arcs("inner_lips"), geometry.lip_arcs("outer_lips")
    points = geometry.points

    def height(arc: np.ndarray, x: np.ndarray, axis: int = 1) -> np.ndarray:
        order = np.argsort(points[arc, 0])
        return np.interp(x, points[arc[order], 0], points[arc[order], axis])

    def gap_at(indices: np.ndarray, axis: int = 1) -> np.ndarray:
        x = points[indices, 0]
        return height(inner.lower, x, axis) - height(inner.upper, x, axis) - config.closed_gap * (axis == 1)

    corners = np.concatenate([arc[[0, -1]] for arc in (inner.upper, outer.upper)])
    sides = [np.unique(np.concatenate(arcs)) for arcs in ((inner.upper, outer.upper), (inner.lower, outer.lower))]
    nearest = [geometry.distances[np.setdiff1d(side, corners)].min(axis=0) for side in sides]
    below = nearest[1] < nearest[0]  # each point follows the lip it is closer to (corners stay)
    upper, lower = sides
    rise = (1.0 - units.opening_upper_share) * gap_at(lower)   # how far each lower-lip point must rise
    middle = float(gap_at(np.array([_LOWER_MIDDLE]))[0])
    jaw = jaw_move(geometry, -units.opening_chin_share * middle, units)   # the jaw carries the chin up
    opened = np.clip(gap_at(lower), 0.0, None)
    forward = gap_at(lower, axis=2) * opened / (opened + config.closed_gap)   # depth to close
    moves = np.zeros((len(lower), 3))
    moves[:, 1] = -rise - jaw[lower, 1]                      # the lip's own share, around the corners
    moves[:, 2] = -forward - jaw[lower, 2]
    lower_field = jaw + spread(geometry, lower, moves, units.lip_sigma, units)
    moves = np.zeros((len(upper), 3))
    moves[:, 1] = units.opening_upper_share * gap_at(upper)
    upper_field = spread(geometry, upper, moves, units.lip_sigma, units)
    return np.where(below[:, None], lower_field, upper_field)


def corner_lift(points: np.ndarray, side: str) -> float:
    """How far the lip corner of ``side`` sits above the upper inner lip's middle, over the
    distance between the corners (canonical ``(478, 3)`` points; positive: smiling)."""
    width = float(np.linalg.norm(points[LIP_CORNER["right"], :2] - points[LIP_CORNER["left"], :2]))
    return float(points[_UPPER_MIDDLE, 1] - points[LIP_CORNER[side], 1]) / width


def level_corners(geometry: FaceGeometry, points: np.ndarray, config: NeutraliseConfig = NeutraliseConfig(),
                  units: ActionUnitConfig = ActionUnitConfig()) -> np.ndarray:
    """``(478, 3)`` displacement bringing the lip corners of ``points`` (a closed-mouth
    version of ``geometry``'s face) to a neutral face's height, each side on its own:
    a smile is undone with AU12 and some AU6, a frown with AU15 (see the module docstring)."""
    field = np.zeros_like(points)
    for side in SIDES:
        suffix = _SIDE_SUFFIX[side]
        lift = corner_lift(points, side) - config.neutral_lift
        if lift > 0:
            unit = action_unit(geometry, f"AU12{suffix}", units) + config.cheek_share * action_unit(
                geometry, f"AU6{suffix}", units)
        elif lift < -config.frown_margin:
            unit = action_unit(geometry, f"AU15{suffix}", units)
            lift += config.frown_margin
        else:
            continue
        per_unit = corner_lift(points + unit, side) - corner_lift(points, side)
        amount = lift / per_unit if per_unit * lift > 0 else 0.0
        field -= float(np.clip(amount, 0.0, config.max_amount)) * unit
    return field


def neutralise(identity: np.ndarray, config: NeutraliseConfig = NeutraliseConfig()) -> np.ndarray:
    """The identity face with its own expression removed (see the module docstring).

    Args:
        identity: ``(478, 3)`` canonical face of the target.

    Returns:
        ``(478, 3)`` float64 neutral identity.
    """
    geometry = FaceGeometry(identity)
    closed = geometry.points + close_lips(geometry, config)
    return closed + level_corners(geometry, closed, config)
