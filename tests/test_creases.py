"""render.creases: the folds of an expression, measured from landmark moves and shaded in."""

from __future__ import annotations

import numpy as np
import pytest

from emoportrait import face
from emoportrait.face.landmarks import CHEEK, SIDES
from emoportrait.render.creases import CreaseConfig, creases, flatten_folds, shade_creases

FLAT_SKIN = 180


@pytest.fixture(scope="module")
def landmarks(portrait: np.ndarray) -> np.ndarray:
    """``(478, 3)`` landmarks tracked on the astronaut portrait."""
    return face.track_frames([portrait], fps=None).landmarks[0].astype(np.float64)


def span(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[33, :2] - landmarks[263, :2]))


def moved(landmarks: np.ndarray, indices, dy_spans: float) -> np.ndarray:
    """Landmarks with ``indices`` moved down by ``dy_spans`` eye spans (negative: up)."""
    target = landmarks.copy()
    target[list(indices), 1] += dy_spans * span(landmarks)
    return target


def brows_raised(landmarks: np.ndarray, rise: float = 0.1) -> np.ndarray:
    brows = np.concatenate([face.GROUPS["right_brow"], face.GROUPS["left_brow"]])
    return moved(landmarks, brows, -rise)


def shaded(landmarks: np.ndarray, target: np.ndarray, config: CreaseConfig = CreaseConfig()) -> np.ndarray:
    """``(H, W)`` darkening of a flat grey frame by the creases, 0-1."""
    frame = np.full((512, 512, 3), FLAT_SKIN, np.uint8)
    shade_creases(frame, landmarks, target, config)
    return 1.0 - frame.astype(np.float64).mean(axis=2) / FLAT_SKIN


def darkening_above(darkening: np.ndarray, landmarks: np.ndarray, row: int) -> float:
    """Largest darkening over the band between the brows' tops and ``row`` pixels above."""
    top = int(landmarks[face.GROUPS["right_brow"], 1].min())
    x0, x1 = (int(v) for v in (landmarks[70, 0], landmarks[300, 0]))
    return float(darkening[max(top - row, 0):top, x0:x1].max())


def test_an_unchanged_face_or_head_motion_alone_draws_nothing(landmarks):
    assert creases(landmarks, landmarks) == []
    angle = np.radians(6.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = landmarks.copy()
    turned[:, :2] = 1.1 * (landmarks[:, :2] - 256) @ rotation.T + 256 + [7.0, -4.0]
    assert creases(landmarks, turned) == []
    assert np.abs(shaded(landmarks, turned)).max() == 0


def test_raised_brows_draw_forehead_lines_and_only_them(landmarks):
    target = brows_raised(landmarks)
    drawn = creases(landmarks, target)
    assert len(drawn) == 3  # three lines across the forehead
    darkening = shaded(landmarks, target)
    assert darkening_above(darkening, target, int(0.4 * span(landmarks))) > 0.05
    below = int(target[face.GROUPS["right_eye"], 1].min())
    assert darkening[below:].max() == 0  # no fold below the brows


def test_lowered_brows_draw_furrows_between_them(landmarks):
    inner = [107, 66, 55, 65, 336, 296, 285, 295]
    darkening = shaded(landmarks, moved(landmarks, inner, 0.08))
    x0, x1 = int(landmarks[107, 0]), int(landmarks[336, 0])
    y0, y1 = int(landmarks[107, 1] - 0.1 * span(landmarks)), int(landmarks[168, 1])
    between = darkening[y0:y1, x0:x1]
    assert between.max() > 0.08
    assert darkening[y1 + 5:].max() < 1e-6


def test_the_furrows_between_lowered_brows_run_up_into_the_forehead(landmarks):
    """Lowered brows are squeezed thin at their inner ends (their upper edge comes down more);
    furrows as long as the brows are thick were dots."""
    target = moved(landmarks, [107, 66, 336, 296], 0.08)      # the upper edges down ...
    target = moved(target, [55, 65, 285, 295], 0.03)          # ... more than the lower ones
    furrows = [crease for crease in creases(landmarks, target) if crease.bulge_toward is not None
               and abs(crease.points[-1, 0] - crease.points[0, 0]) < abs(crease.points[-1, 1] - crease.points[0, 1])]
    assert len(furrows) == 2
    for furrow in furrows:
        assert furrow.points[0, 1] - furrow.points[-1, 1] > 0.15 * span(landmarks)   # upward, long


def test_a_raised_cheek_deepens_its_own_nasolabial_fold_with_the_bulge_lit(landmarks):
    target = moved(landmarks, CHEEK["right"], -0.05)
    darkening = shaded(landmarks, target)
    middle = int(landmarks[9, 0])
    fold = landmarks[[206, 216], :2].mean(axis=0).astype(int)
    assert darkening[fold[1] - 6:fold[1] + 6, fold[0] - 6:fold[0] + 6].max() > 0.08
    assert darkening[:, middle + 5:].max() < 1e-6  # the other side's cheek did not move
    assert darkening.min() < 0  # the cheek bulging over the fold is lit


def test_strength_follows_the_move_and_stays_bounded(landmarks):
    unlit = CreaseConfig(bulge_share=0.0)  # the lines' highlights overlap differently as the brows rise
    peaks = [darkening_above(shaded(landmarks, brows_raised(landmarks, rise), unlit), landmarks,
                             int(0.5 * span(landmarks))) for rise in (0.02, 0.04, 0.1, 0.3)]
    assert peaks[0] < peaks[1] < peaks[2] and peaks[2] == pytest.approx(peaks[3], abs=1e-3)
    assert peaks[3] <= CreaseConfig().max_darkening + 1e-3
    assert creases(landmarks, brows_raised(landmarks), CreaseConfig(depth=0.0)) == []


def test_one_lip_corner_pulled_out_and_up_draws_a_dimple_beside_it_and_speech_none(landmarks):
    out = np.array([-1.0, -1.0]) * 0.04 * span(landmarks)     # the subject's right corner (image left)
    smirk = landmarks.copy()
    smirk[61, :2] += out
    darkening = shaded(landmarks, smirk)
    corner = landmarks[61, :2].astype(int)
    reach = int(0.15 * span(landmarks))
    assert darkening[corner[1] - reach:corner[1] + reach, corner[0] - reach:corner[0]].max() > 0.08
    assert darkening[:, int(landmarks[9, 0]):].max() < 1e-6     # nothing on the other side
    spread = landmarks.copy()                                  # both corners out and up: a symmetric move
    spread[61, :2] += out
    spread[291, :2] += out * np.array([-1.0, 1.0])
    assert not any(np.linalg.norm(crease.points.mean(axis=0) - landmarks[61, :2]) < reach
                   for crease in creases(landmarks, spread))


def test_a_lowered_cheek_smooths_its_smile_fold_and_keeps_the_skin_texture(landmarks):
    """A portrait's smile taken off: the fold it cast fades, pores and lips stay; speech does nothing."""
    landmarks = landmarks * 4.0                                      # a face 120 px between the eyes
    rng = np.random.default_rng(0)
    frame = np.full((1024, 1024, 3), FLAT_SKIN, np.float64) + rng.normal(0.0, 4.0, (1024, 1024, 1))
    rows, cols = np.mgrid[:1024, :1024]
    fold = np.zeros((1024, 1024))
    width = 0.03 * span(landmarks)                                    # a smile's fold, as in real portraits
    for side in SIDES:
        for x, y in landmarks[[206, 216, 212], :2] if side == "right" else landmarks[[426, 436, 432], :2]:
            fold = np.maximum(fold, np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * width ** 2)))
    frame = np.clip(frame * (1.0 - 0.3 * fold[..., None]), 0, 255).astype(np.uint8)
    reach = 0.3 * span(landmarks)
    on_fold, beside = fold > 0.9, (fold < 0.01) & (np.abs(cols - landmarks[216, 0]) < reach) & \
        (np.abs(rows - landmarks[216, 1]) < reach)

    def contrast(image: np.ndarray) -> float:
        return float(image[beside].mean() - image[on_fold].mean())

    smile_gone = moved(landmarks, np.concatenate([CHEEK["right"], CHEEK["left"]]), 0.03)
    out = frame.copy()
    flatten_folds(out, landmarks, smile_gone)
    assert contrast(frame) > 40 and contrast(out) < 0.5 * contrast(frame)
    texture = beside & (rows < landmarks[216, 1])
    assert out[texture].std() > 0.6 * frame[texture].std()       # the pores are not blurred away
    lips = face.GROUPS["outer_lips"]
    inside = (np.abs(cols - landmarks[lips, 0].mean()) < 5) & (np.abs(rows - landmarks[lips, 1].mean()) < 3)
    assert np.array_equal(out[inside], frame[inside])
    for unmoved in (landmarks, moved(landmarks, CHEEK["right"], -0.03), moved(landmarks, [14, 17, 152], 0.05)):
        untouched = frame.copy()
        flatten_folds(untouched, landmarks, unmoved)                  # same, raised cheek, an opening jaw
        assert np.array_equal(untouched, frame)
