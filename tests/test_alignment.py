"""alignment: target timeline, idle motion of stills, rest identity."""

from __future__ import annotations

import numpy as np

from emoportrait import alignment, face, tracking
from emoportrait.geometry import Pose

from .conftest import FPS


def test_pingpong_loops_back_and_forth_and_trims():
    assert alignment.pingpong_schedule(4, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert alignment.pingpong_schedule(10, 3).tolist() == [0, 1, 2]
    assert alignment.pingpong_schedule(1, 3).tolist() == [0, 0, 0]


def test_idle_pose_is_gentle_smooth_and_deterministic():
    base = Pose.from_euler(np.array([[5.0, -3.0, 2.0]]), 100.0, np.array([128.0, 100.0, 0.0]))
    pose = alignment.idle_pose(base, 250, FPS, amplitude_deg=1.5, seed=3)
    sway = pose.euler_degrees - base.euler_degrees
    assert np.abs(sway).max() <= 1.6 and np.abs(sway).max() > 0.3
    assert np.abs(np.diff(sway, axis=0)).max() < 0.2           # degrees per frame: smooth
    np.testing.assert_array_equal(pose.rotation, alignment.idle_pose(base, 250, FPS, 1.5, seed=3).rotation)
    np.testing.assert_allclose(pose.translation, np.repeat(base.translation, 250, axis=0))


def test_rest_identity_takes_the_most_closed_mouth(rolling_frames):
    frames = rolling_frames[0][:6]
    result = tracking.analyse(face.track_frames(frames, FPS))
    opening = face.inner_mouth_opening(result.canonical)
    identity = alignment.rest_identity(result)
    assert face.inner_mouth_opening(identity) <= opening.mean() + 1e-6
    far = face.GROUPS["left_eye"]
    np.testing.assert_allclose(identity[far], result.reference[far], atol=0.02)


def test_eye_closure_measures_the_targets_own_blinks(rolling_frames):
    result = tracking.analyse(face.track_frames(rolling_frames[0][:8], FPS))
    opening = np.linalg.norm(result.canonical[:, 145, :2] - result.canonical[:, 159, :2], axis=1)
    shut = result.canonical.copy()
    for upper, lower in ((159, 145), (386, 374)):
        shut[3, upper, 1] = shut[3, lower, 1] = (shut[3, upper, 1] + shut[3, lower, 1]) / 2
    result.canonical = shut
    closure = alignment.eye_closure(result)
    assert closure[3] > 0.8 and np.all(closure[np.r_[0:3, 4:8]] < 0.2)
    assert opening.min() > 0  # the astronaut's eyes are open in every frame
