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
