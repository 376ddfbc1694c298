"""face.glasses: the bridge of a glasses frame is found, and the skin under it is held."""

from __future__ import annotations

import numpy as np
import pytest

from emoportrait import face, media
from emoportrait.face.glasses import frame_weights, wears_glasses

from .conftest import shared_media


@pytest.fixture(scope="module")
def astronaut_landmarks(portrait):
    return face.track_frames([portrait], fps=None).landmarks[0]


def test_the_frames_band_holds_brows_and_rims_but_not_lids_or_mouth(astronaut_landmarks):
    weights = frame_weights(astronaut_landmarks)
    lids = np.concatenate([face.GROUPS["right_eye"], face.GROUPS["left_eye"]])
    brows = np.concatenate([face.GROUPS["right_brow"], face.GROUPS["left_brow"]])
    assert np.all(weights[lids] == 0) and np.all(weights[face.GROUPS["lips"]] == 0)
    assert weights[brows].mean() > 0.9 and weights[168] > 0.9   # brows and the nose bridge
    assert weights[[145, 374]].max() < 0.5                      # the lower lids still move


def test_no_glasses_on_a_bare_face(portrait, astronaut_landmarks):
    assert not wears_glasses(portrait, astronaut_landmarks)


@pytest.mark.parametrize("name,expected", [("glasses.png", True), ("male_face.png", False),
                                           ("beard.png", False), ("smiling_woman.jpg", False)])
def test_glasses_are_found_on_real_portraits(name, expected):
    image = media.read_image(shared_media(f"portraits/{name}"))
    assert wears_glasses(image, face.track_frames([image], fps=None).landmarks[0]) == expected


@pytest.mark.parametrize("name,scale,expected", [("glasses.png", 0.5, True), ("male_face.png", 0.25, False),
                                                 ("male_face.png", 0.15, False), ("beard.png", 0.5, False)])
def test_small_faces_are_judged_on_their_own_pixels(name, scale, expected):
    """Enlarged in blocks, a small bare face (a wide shot, a big photo drawn at 1024 px) grew a bridge."""
    import cv2

    image = media.read_image(shared_media(f"portraits/{name}"))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((small.shape[0] + 200, small.shape[1] + 200, 3), 90, np.uint8)
    canvas[100:-100, 100:-100] = small
    assert wears_glasses(canvas, face.track_frames([canvas], fps=None).landmarks[0]) == expected


def test_over_thin_frames_the_brows_move_and_the_rims_band_stays(astronaut_landmarks):
    held, free = frame_weights(astronaut_landmarks), frame_weights(astronaut_landmarks, "free")
    brows = np.concatenate([face.GROUPS["right_brow"], face.GROUPS["left_brow"]])
    assert held[brows].min() > 0.9 and free[brows].max() == 0.0
    forehead = [151, 10, 108, 337]
    assert free[forehead].max() == 0.0
    under_the_eyes = [118, 347, 117, 346, 168, 6]   # the lower rims' band and the nose bridge
    np.testing.assert_allclose(free[under_the_eyes], held[under_the_eyes])
    assert free[under_the_eyes].min() > 0.9


def test_thin_metal_frames_are_told_from_thick_plastic_ones():
    import matplotlib.cbook
    import matplotlib.image

    from emoportrait.face.glasses import THIN_BRIDGE, bridge_height, thin_frames

    hopper = matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))[..., :3].astype(np.uint8)
    landmarks = face.track_frames([hopper], fps=None).landmarks[0]
    assert wears_glasses(hopper, landmarks) and bridge_height(hopper, landmarks) > 1.5 * THIN_BRIDGE
    assert not thin_frames(hopper, landmarks)
    image = media.read_image(shared_media("portraits/glasses.png"))
    landmarks = face.track_frames([image], fps=None).landmarks[0]
    assert thin_frames(image, landmarks) and bridge_height(image, landmarks) < 0.6 * THIN_BRIDGE
