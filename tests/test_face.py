"""face: landmark groups, gap filling, smoothing and MediaPipe tracking."""

from __future__ import annotations

import numpy as np
import pytest

from emoportrait import face
from emoportrait.errors import NoFaceError
from emoportrait.face.smoothing import fill_gaps, one_euro, one_euro_zero_phase
from emoportrait.masks import drop_short_runs, runs
from emoportrait.face.tracker import TrackerConfig

from .conftest import FPS


# ---------------------------------------------------------------- landmark groups

def test_groups_have_the_mesh_sizes():
    sizes = {name: len(idx) for name, idx in face.GROUPS.items()}
    assert sizes["outer_lips"] == sizes["inner_lips"] == 20
    assert sizes["left_eye"] == sizes["right_eye"] == 16
    assert sizes["left_iris"] == sizes["right_iris"] == 5
    assert sizes["face_oval"] == 36
    assert not set(face.GROUPS["outer_lips"]) & set(face.GROUPS["inner_lips"])
    assert all(idx.min() >= 0 and idx.max() < face.N_LANDMARKS for idx in face.GROUPS.values())


def test_unknown_group_names_the_known_ones():
    with pytest.raises(KeyError, match="known groups: outer_lips"):
        face.group("lipz")


def test_ibug68_is_68_distinct_mesh_points():
    assert face.IBUG68.shape == (68,) and len(set(face.IBUG68.tolist())) == 68
    assert face.to_ibug68(np.zeros((5, 478, 3))).shape == (5, 68, 3)


# ---------------------------------------------------------------- gaps and smoothing

def test_the_face_sizes_scale_with_the_face_and_the_rigid_radius_ignores_the_mouth(portrait):
    points = face.track_frames([portrait], fps=None).landmarks[0].astype(np.float64)
    larger = 2.0 * points + 17.0
    assert face.face_size(larger) == pytest.approx(2.0 * face.face_size(points))
    assert face.rigid_radius(larger) == pytest.approx(2.0 * face.rigid_radius(points))
    opened = points.copy()
    opened[face.GROUPS["lips"], 1] += 0.1 * face.face_size(points)  # an expression moves no rigid point
    assert face.rigid_radius(opened) == face.rigid_radius(points)
    assert face.rigid_radius(np.stack([points, larger])).shape == (2,)
    assert 0.2 < face.rigid_radius(points) / face.face_size(points) < 0.5


def test_runs_finds_true_stretches():
    assert runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)]
    assert runs(np.zeros(3, bool)) == []
    assert drop_short_runs(np.array([1, 0, 1, 1, 0], bool), 2).tolist() == [0, 0, 1, 1, 0]


def test_short_gap_is_interpolated_and_long_gap_held():
    values = np.arange(20, dtype=float)[:, None]
    found = np.ones(20, bool)
    found[[0, 5, 6]] = False       # a start gap and a 2-frame gap
    found[10:16] = False           # a 6-frame gap
    filled, interpolated, long_gaps = fill_gaps(values, found, max_gap=3)
    np.testing.assert_allclose(filled[5:7, 0], [5, 6])
    assert interpolated.tolist() == [i in (5, 6) for i in range(20)]
    assert long_gaps == [(0, 1), (10, 16)]
    assert filled[0, 0] == 1
    np.testing.assert_allclose(filled[10:16, 0], [9, 9, 9, 16, 16, 16])


def test_one_euro_removes_jitter_but_follows_fast_motion():
    rng = np.random.default_rng(0)
    still = 1.0 + 0.01 * rng.standard_normal(200)
    assert one_euro(still, FPS).std() < 0.6 * still.std()
    assert one_euro_zero_phase(still, FPS).std() < 0.4 * still.std()
    step = np.r_[np.zeros(50), np.ones(50)]
    smoothed = one_euro_zero_phase(step, FPS)
    assert smoothed[55] > 0.9 and smoothed[45] < 0.1


def test_zero_phase_filter_has_no_lag():
    t = np.arange(100) / FPS
    wave = np.sin(2 * np.pi * 1.0 * t)
    lag_causal = np.argmax(one_euro(wave, FPS, beta=0.0)[25:50]) - np.argmax(wave[25:50])
    lag_zero = np.argmax(one_euro_zero_phase(wave, FPS, beta=0.0)[25:50]) - np.argmax(wave[25:50])
    assert lag_causal >= 2 and abs(lag_zero) <= 1


# ---------------------------------------------------------------- tracking

def test_tracks_the_astronaut(portrait):
    track = face.track_frames([portrait], fps=None)
    assert track.landmarks.shape == (1, 478, 3) and track.landmarks.dtype == np.float32
    assert track.found.all() and track.confidence[0] > 0.7 and track.fps is None
    ibug = face.to_ibug68(track.landmarks[0])
    # anatomy in image coordinates: the subject's right eye is on the image left,
    # the mouth below the nose tip, the chin the lowest jaw point, all inside the face
    assert ibug[36:42, 0].mean() < ibug[30, 0] < ibug[42:48, 0].mean()
    assert ibug[30, 1] < ibug[48:68, 1].mean() < ibug[8, 1]
    assert np.argmax(ibug[:17, 1]) == 8
    assert 70 < ibug[30, 0] < 150 and 30 < ibug[30, 1] < 100


def test_largest_face_is_chosen_and_kept(portrait):
    small = portrait[::2, ::2]
    both = np.concatenate([portrait, np.pad(small, ((0, 128), (0, 0), (0, 0)))], axis=1)
    track = face.track_frames([both] * 3, fps=FPS)
    assert (track.landmarks[:, 1, 0] < 256).all()   # the big face on the left every frame


def test_no_face_is_an_error_naming_the_source():
    noise = np.random.default_rng(0).integers(0, 255, (128, 128, 3), np.uint8)
    with pytest.raises(NoFaceError, match="no face found in any of the 4 frame\\(s\\) of 'noise.mp4'"):
        face.track_frames([noise] * 4, fps=FPS, name="noise.mp4")


def test_gaps_are_filled_and_long_losses_reported(rolling_frames):
    frames = rolling_frames[0].copy()
    frames[10:12] = 0            # 2 frames: interpolated
    frames[20:32] = 0            # 12 frames (0.48 s > 0.2 s): held and reported
    track = face.track_frames(frames, fps=FPS, config=TrackerConfig(smooth=False))
    assert not track.found[10:12].any() and track.interpolated[10:12].all()
    assert track.long_gaps == [(20, 32)]
    assert np.isfinite(track.landmarks).all()
    assert track.found.sum() == len(frames) - 14


def test_smoothing_reduces_frame_to_frame_jitter(rolling_frames):
    frames = rolling_frames[0][:1].repeat(20, axis=0)      # a still face: any motion is jitter
    noise = np.random.default_rng(1).integers(-12, 13, frames.shape)
    frames = np.clip(frames + noise, 0, 255).astype(np.uint8)
    raw = face.track_frames(frames, FPS, TrackerConfig(smooth=False)).landmarks
    smooth = face.track_frames(frames, FPS).landmarks
    jitter = lambda lm: np.abs(np.diff(lm[:, :, :2], axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < 0.7 * jitter(raw)


def test_a_track_resampled_from_30_to_25_fps_drops_every_sixth_frame():
    n = 30
    landmarks = np.repeat(np.arange(n, dtype=np.float32)[:, None, None], 478, axis=1).repeat(3, axis=2)
    found = np.ones(n, bool)
    track = face.FaceTrack(landmarks, found, ~found, found.astype(np.float32), 30.0, (64, 64), [(6, 12)])
    resampled = track.at_rate(25.0)
    assert len(resampled) == 25 and resampled.fps == 25.0
    kept = resampled.landmarks[:, 0, 0].astype(int)
    assert np.all(np.diff(kept) >= 1) and len(set(range(n)) - set(kept)) == 5   # 5 of 30 dropped
    assert resampled.long_gaps == [(5, 10)]                                      # 6..12 at 30 fps
    assert track.at_rate(30.0) is track


def _on_canvas(image: np.ndarray, width: int, places: list[tuple[int, int, float]]) -> np.ndarray:
    """A grey ``width × 3/4 width`` canvas with ``image`` scaled by ``s`` pasted at each ``(x, y, s)``."""
    import cv2

    canvas = np.full((width * 3 // 4, width, 3), 90, np.uint8)
    for x, y, scale in places:
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


def test_a_small_face_in_a_wide_shot_is_found_where_it_is(close_portrait):
    """Faces under about a tenth of the frame were "no face found" (wide shots, big photos)."""
    reference = face.track_frames([close_portrait], fps=None).landmarks[0]
    eye_span = np.linalg.norm(reference[33, :2] - reference[263, :2])
    x, y, scale = 300, 400, 0.6  # the face is about 70 px wide in a 1600 px frame
    track = face.track_frames([_on_canvas(close_portrait, 1600, [(x, y, scale)])], fps=None)
    mapped_back = (track.landmarks[0, :, :2] - (x, y)) / scale
    assert np.linalg.norm(mapped_back - reference[:, :2], axis=1).mean() < 0.03 * eye_span


def test_of_two_small_faces_the_larger_is_tracked_through_a_video(close_portrait):
    frames = [_on_canvas(close_portrait, 1600, [(200 + 8 * i, 300, 0.4), (1000, 500, 0.8)]) for i in range(4)]
    track = face.track_frames(frames, fps=FPS)
    assert track.found.all()
    assert (track.landmarks[:, :, 0].min(axis=1) > 1000).all()  # the larger face, on the right


def test_tiles_hold_every_face_up_to_half_a_tile():
    from emoportrait.face.search import MIN_TILE, tiles

    width, height = 1700, 900
    squares = list(tiles(width, height))
    assert squares[0] == ((width - height) // 2, 0, height)
    for side in {s for _, _, s in squares[1:]}:
        level = [(x0, y0) for x0, y0, s in squares if s == side]
        assert side >= MIN_TILE
        for fx in range(0, width - side // 2 + 1, 37):  # every face box of side/2 lies inside a tile
            for fy in range(0, height - side // 2 + 1, 37):
                assert any(x0 <= fx and fx + side // 2 <= x0 + side and y0 <= fy and fy + side // 2 <= y0 + side
                           for x0, y0 in level)
