"""tracking: pose recovery on a face tilted by known angles, frontalisation, npz files."""

from __future__ import annotations

import numpy as np
import pytest

from emoportrait import face, tracking
from emoportrait.errors import InputError

from .conftest import FPS


@pytest.fixture(scope="module")
def rolling_result(rolling_frames):
    frames, _ = rolling_frames
    return tracking.analyse(face.track_frames(frames, FPS))


def test_roll_follows_the_known_tilt(rolling_result, rolling_frames):
    _, angles = rolling_frames
    roll = rolling_result.pose.euler_degrees[:, 2]
    # the frames were tilted counter-clockwise by `angles`; roll is clockwise-positive
    error = (roll - roll[0]) + (angles - angles[0])
    assert np.abs(error).max() < 1.5
    assert np.ptp(roll) > 20


def test_frontalisation_removes_the_tilt(rolling_result):
    canonical = rolling_result.canonical[:, face.RIGID, :2]
    image = rolling_result.track.landmarks[:, face.RIGID, :2] / rolling_result.pose.scale[:, None, None]
    assert canonical.std(axis=0).mean() < 0.1 * image.std(axis=0).mean()


def test_reference_face_is_frontal_and_normalised(rolling_result):
    reference = rolling_result.reference
    rigid = reference[face.RIGID]
    np.testing.assert_allclose(rigid.mean(axis=0), 0, atol=1e-9)
    assert np.sqrt((rigid**2).sum(axis=1).mean()) == pytest.approx(1.0)
    right_eye, left_eye = reference[face.GROUPS["right_eye"]], reference[face.GROUPS["left_eye"]]
    assert abs(right_eye[:, 1].mean() - left_eye[:, 1].mean()) < 1e-9  # eyes level
    assert right_eye[:, 0].mean() < left_eye[:, 0].mean()


def test_projection_of_the_reference_lands_on_the_tracked_face(rolling_result):
    projected = rolling_result.pose.apply(rolling_result.reference)
    error = np.linalg.norm(projected[:, face.RIGID, :2] - rolling_result.track.landmarks[:, face.RIGID, :2], axis=-1)
    assert np.median(error) < 2.0  # pixels, on a ~60 px face


def test_npz_round_trip(tmp_path, rolling_result):
    path = tmp_path / "track.npz"
    tracking.save(path, rolling_result)
    loaded = tracking.load(path)
    np.testing.assert_array_equal(loaded.track.landmarks, rolling_result.track.landmarks)
    np.testing.assert_array_equal(loaded.pose.rotation, rolling_result.pose.rotation)
    assert loaded.track.fps == FPS and loaded.track.size == (256, 256)
    with np.load(path) as data:
        assert data["euler_deg"].shape == (40, 3) and data["canonical"].shape == (40, 478, 3)


def test_loading_something_else_is_a_clear_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(InputError, match="not an emoportrait track file"):
        tracking.load(path)
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(InputError, match="not an emoportrait track file"):
        tracking.load(tmp_path / "junk.npz")
