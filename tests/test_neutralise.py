"""neutralise: the target's own open mouth is closed before the driven one is added."""

from __future__ import annotations

import numpy as np
import pytest

from emoportrait import face, tracking
from emoportrait.drivers.action_units import ActionUnitConfig, FaceGeometry, mouth_opening
from emoportrait.neutralise import NeutraliseConfig, neutralise

INNER_PAIRS = [(82, 87), (13, 14), (312, 317)]   # upper/lower inner-lip points across the mouth
OUTER_PAIRS = [(0, 13), (14, 17)]                # lip thickness: outer to inner, upper and lower


@pytest.fixture(scope="module")
def closed(portrait) -> np.ndarray:
    """The astronaut's face, canonical, with its (smiling, open) mouth closed."""
    identity = tracking.analyse(face.track_frames([portrait], fps=None)).reference
    return neutralise(identity)


def gaps(points: np.ndarray, pairs) -> np.ndarray:
    return np.array([points[b, 1] - points[a, 1] for a, b in pairs])


def test_an_open_mouth_closes_to_a_slit_and_lips_keep_their_thickness(closed):
    opened = closed + mouth_opening(FaceGeometry(closed), 0.25, ActionUnitConfig())
    result = neutralise(opened)
    assert gaps(opened, INNER_PAIRS).min() > 0.1
    np.testing.assert_allclose(gaps(result, INNER_PAIRS), NeutraliseConfig().closed_gap, atol=0.004)
    np.testing.assert_allclose(gaps(result, OUTER_PAIRS), gaps(opened, OUTER_PAIRS), rtol=0.15)
    brows = np.concatenate([face.GROUPS["left_brow"], face.GROUPS["right_brow"]])
    np.testing.assert_allclose(result[brows], opened[brows], atol=1e-4)
    assert opened[152, 1] > closed[152, 1] + 0.05        # opening dropped the chin ...
    assert abs(result[152, 1] - closed[152, 1]) < 0.01   # ... and closing brought it back
    depth = lambda points: points[14, 2] - points[13, 2]  # noqa: E731  lower lip behind the upper
    assert depth(opened) > depth(closed) + 0.05
    assert abs(depth(result) - depth(closed)) < 0.01  # the lips meet in depth too


def test_a_closed_mouth_stays_and_crossed_lips_part(closed):
    np.testing.assert_allclose(neutralise(closed), closed, atol=0.01)
    crossed = closed.copy()
    crossed[[87, 14, 317], 1] -= 0.03   # pressed lips, tracked crossing each other
    assert gaps(crossed, INNER_PAIRS).max() < 0
    np.testing.assert_allclose(gaps(neutralise(crossed), INNER_PAIRS), NeutraliseConfig().closed_gap, atol=0.004)


def test_smiles_and_frowns_are_levelled_side_by_side(closed):
    from emoportrait.drivers.action_units import action_unit
    from emoportrait.neutralise import corner_lift

    geometry = FaceGeometry(closed)
    config = NeutraliseConfig()
    smiling = closed + action_unit(geometry, "AU12R")              # a smirk on her right side only
    frowning = closed + action_unit(geometry, "AU15")
    assert corner_lift(smiling, "right") > config.neutral_lift + 0.05
    levelled = neutralise(smiling)
    assert abs(corner_lift(levelled, "right") - config.neutral_lift) < 0.035   # from 0.136
    assert abs(corner_lift(levelled, "left") - corner_lift(smiling, "left")) < 0.01   # the other side kept
    assert corner_lift(frowning, "left") < config.neutral_lift - config.frown_margin - 0.03
    raised = neutralise(frowning)
    assert abs(corner_lift(raised, "left") - (config.neutral_lift - config.frown_margin)) < 0.02
