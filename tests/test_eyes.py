"""render.eyes: raised lids uncover a still eyeball instead of stretching it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emoportrait import face
from emoportrait.face.landmarks import contour_halves
from emoportrait.render.eyes import EyeConfig
from emoportrait.render.warp import WarpConfig, WarpRenderer

SKIN, WHITE, IRIS = 170, 235, 50
SCALE = 4.0  # the astronaut's eyes, 4x: an iris about 12 px across


@pytest.fixture(scope="module")
def eye_face(portrait: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A drawn face on the astronaut's landmarks (x4): skin, and in each eye contour a white
    with an iris disc whose top the upper lid hides. Returns the frame, the landmarks, and
    the right iris's centre and radius."""
    landmarks = face.track_frames([portrait], fps=None).landmarks[0].astype(np.float64) * SCALE
    frame = np.full((int(256 * SCALE), int(256 * SCALE), 3), SKIN, np.uint8)
    for side in ("right", "left"):
        eye = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(eye, [np.round(landmarks[face.GROUPS[f"{side}_eye"], :2]).astype(np.int32)], 1)
        iris = landmarks[face.GROUPS[f"{side}_iris"], :2]
        radius = float(np.linalg.norm(iris[1:] - iris[0], axis=1).mean())
        disc = np.zeros_like(eye)
        cv2.circle(disc, tuple(np.round(iris[0]).astype(int)), int(round(radius)), 1, -1)
        frame[eye > 0] = WHITE
        frame[(eye > 0) & (disc > 0)] = IRIS
    iris = landmarks[face.GROUPS["right_iris"], :2]
    return frame, landmarks, iris[0], float(np.linalg.norm(iris[1:] - iris[0], axis=1).mean())


def lids_raised(landmarks: np.ndarray, lift: float) -> np.ndarray:
    """Both upper lids raised by ``lift`` pixels mid-lid (a sine along the lid, corners fixed)."""
    target = landmarks.copy()
    for side in ("right", "left"):
        upper, _ = contour_halves(f"{side}_eye")
        target[upper, 1] -= lift * np.sin(np.linspace(0.0, np.pi, len(upper)))
    return target


def column(image: np.ndarray, x: float) -> np.ndarray:
    return image[:, int(round(x))].mean(axis=1)


def test_a_raised_lid_uncovers_the_white_above_a_round_iris(eye_face):
    frame, landmarks, centre, radius = eye_face
    target = lids_raised(landmarks, 1.5 * radius)
    painted = WarpRenderer().render(frame, landmarks, target)
    stretched = WarpRenderer(WarpConfig(eyes=EyeConfig(enabled=False))).render(frame, landmarks, target)
    top = int(centre[1] - radius)                 # the iris disc's top: the lid hid it
    upper, _ = contour_halves("right_eye")
    lid = float(np.interp(centre[0], target[upper, 0], target[upper, 1]))   # the raised lid over the iris
    above = slice(int(lid + 1.0 * radius), top - 1)  # between the raised lid's lashes and the iris
    dark = lambda image: int((column(image, centre[0])[above.start:int(centre[1] + radius) + 2] < 110).sum())
    assert column(painted, centre[0])[above].min() > 180          # white shows above the iris ...
    assert np.median(column(stretched, centre[0])[above]) < 110  # ... where the warp stretched the iris
    assert dark(painted) <= 2 * radius + 2 < dark(stretched)      # the iris stays a disc


def test_lowered_or_closed_lids_and_an_unmoved_face_are_left_to_the_warp(eye_face):
    frame, landmarks, _, radius = eye_face
    for target in (landmarks, lids_raised(landmarks, -0.5 * radius)):
        painted = WarpRenderer().render(frame, landmarks, target)
        stretched = WarpRenderer(WarpConfig(eyes=EyeConfig(enabled=False))).render(frame, landmarks, target)
        assert np.array_equal(painted, stretched)
    blink = landmarks.copy()                                 # a frame in a blink: the upper lids on the lower ones
    for side in ("right", "left"):
        upper, lower = contour_halves(f"{side}_eye")
        blink[upper, 1] = np.interp(blink[upper, 0], blink[lower, 0], blink[lower, 1]) - 1.0
    target = lids_raised(blink, 1.5 * radius)
    assert np.array_equal(WarpRenderer().render(frame, blink, target),
                          WarpRenderer(WarpConfig(eyes=EyeConfig(enabled=False))).render(frame, blink, target))
