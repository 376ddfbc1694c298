"""unfold: a driven face never turns its mesh over; moves that do not fold are kept."""

from __future__ import annotations

import numpy as np
import pytest

from emoportrait import face, tracking
from emoportrait.drivers.action_units import ActionUnitConfig, FaceGeometry, mouth_opening
from emoportrait.unfold import folding, unfold


@pytest.fixture(scope="module")
def identity(portrait) -> np.ndarray:
    return tracking.analyse(face.track_frames([portrait], fps=None)).reference


def test_a_point_pushed_past_its_neighbours_is_eased_back_until_nothing_folds(identity):
    expression = np.zeros((2, 478, 3))
    wing, below = 98, 2                                  # a nose-wing point, pushed past the nose base
    expression[1, wing, :2] = (identity[below, :2] - identity[wing, :2]) * 1.6
    assert folding(identity, expression)[1][1].any() and not folding(identity, expression)[1][0].any()
    eased = unfold(identity, expression)
    assert not folding(identity, eased)[1].any()
    np.testing.assert_array_equal(eased[0], 0.0)         # a frame without folds is untouched
    moved = np.abs(eased[1] - expression[1]).max(axis=1) > 1e-9
    assert moved[wing] and moved.sum() < 40              # only around the fold


def test_a_mouth_opening_and_a_closed_eye_are_kept(identity):
    geometry = FaceGeometry(identity)
    opened = mouth_opening(geometry, 0.3, ActionUnitConfig())[None]
    np.testing.assert_allclose(unfold(identity, opened), opened, atol=0.03)
    blink = np.zeros((1, 478, 3))
    upper, lower = 159, 145                              # the right eye's lid middles
    blink[0, upper, 1] = identity[lower, 1] - identity[upper, 1]
    np.testing.assert_array_equal(unfold(identity, blink), blink)


def test_pinned_points_keep_their_move_and_a_free_one_gives_way(identity):
    expression = np.zeros((1, 478, 3))
    wing, below = 98, 2
    expression[0, wing, :2] = (identity[below, :2] - identity[wing, :2]) * 1.6   # pushed into held skin
    pinned = np.ones(478)
    pinned[wing] = 0.0
    eased = unfold(identity, expression, pinned=pinned)
    assert not folding(identity, eased)[1].any()
    np.testing.assert_array_equal(np.delete(eased[0], wing, axis=0), 0.0)   # the held skin did not move
    assert np.linalg.norm(eased[0, wing]) < np.linalg.norm(expression[0, wing])   # the free point gave way
