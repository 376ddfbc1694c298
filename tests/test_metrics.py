"""analysis.metrics: landmark distances, pixel metrics, CPBD, loudness following, mouth vs. reference, video comparison."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import skimage.data
from scipy.ndimage import gaussian_filter1d

from emoportrait import media
from emoportrait.analysis import lipsync, metrics, sharpness
from emoportrait.audio import write_wav
from emoportrait.face import IBUG68, N_LANDMARKS, FaceTrack

from .conftest import FPS

MOUTH = slice(48, 68)
OUTER_LIPS = slice(48, 60)


@pytest.fixture
def face68() -> np.ndarray:
    """``(5, 68, 2)`` random landmarks, pixels."""
    return np.random.default_rng(0).uniform(0, 200, (5, 68, 2))


# ------------------------------------------------------------------------ landmarks


def test_identical_and_translated_landmarks_score_zero(face68):
    assert metrics.landmark_distance(face68, face68) == 0.0
    assert metrics.landmark_velocity_difference(face68, face68) == 0.0
    moved = face68 + np.array([7.0, -3.0])
    assert metrics.landmark_distance(moved, face68) == pytest.approx(0.0, abs=1e-12)
    assert metrics.landmark_velocity_difference(moved, face68) == pytest.approx(0.0, abs=1e-12)


def test_lmd_of_shifted_outer_lips_by_hand(face68):
    """Outer lips (12 points) 3 px right; each point set is centred on its own mean."""
    generated = face68.copy()
    generated[:, OUTER_LIPS, 0] += 3.0
    # mouth (20 points): mean moves 36/20 = 1.8 px -> outer lips 1.2 px off, inner 1.8 px
    assert metrics.landmark_distance(generated[:, MOUTH], face68[:, MOUTH]) == pytest.approx(
        (12 * 1.2 + 8 * 1.8) / 20)
    # face (68 points): mean moves 36/68 px -> outer lips 3 - 36/68 off, the 56 others 36/68
    assert metrics.landmark_distance(generated, face68) == pytest.approx(
        (12 * (3 - 36 / 68) + 56 * 36 / 68) / 68)


def test_lvd_by_hand_and_face_lvd_uses_all_points(face68):
    generated = face68.copy()
    generated[3:, 10] += (3.0, 4.0)   # a jaw point jumps 5 px between frames 2 and 3
    generated[1:, 50] += (6.0, 8.0)   # a lip point jumps 10 px between frames 0 and 1
    # 4 velocities per point; the face sums 5 + 10 over 68 points, the mouth 10 over 20
    assert metrics.landmark_velocity_difference(generated, face68) == pytest.approx(15 / (4 * 68))
    assert metrics.landmark_velocity_difference(generated[:, MOUTH], face68[:, MOUTH]) == pytest.approx(
        10 / (4 * 20))
    # the jumps are constant offsets afterwards, so the velocity-free LMD sees them
    assert metrics.landmark_distance(generated, face68) > 0


def test_invalid_frames_are_skipped(face68):
    generated = face68.copy()
    generated[2] += np.random.default_rng(1).normal(0, 50, (68, 2))   # a garbage frame
    generated[4:, 0] += (0.0, 6.0)                                    # a 6 px jump from 3 to 4
    valid = np.array([True, True, False, True, True])
    assert metrics.landmark_distance(generated[:4], face68[:4], valid[:4]) == pytest.approx(0.0, abs=1e-12)
    # velocities 1->2 and 2->3 touch the invalid frame: 0->1 and 3->4 remain
    assert metrics.landmark_velocity_difference(generated, face68, valid) == pytest.approx(6 / (2 * 68))
    assert math.isnan(metrics.landmark_distance(generated, face68, np.zeros(5, bool)))
    assert math.isnan(metrics.landmark_velocity_difference(generated, face68, valid & [1, 0, 1, 0, 1]))


def test_landmark_inputs_are_checked(face68):
    with pytest.raises(ValueError, match="one shape"):
        metrics.landmark_distance(face68, face68[:, :20])
    with pytest.raises(ValueError, match="valid"):
        metrics.landmark_distance(face68, face68, np.ones(4, bool))


def _track(landmarks68: np.ndarray, size: tuple[int, int], found: np.ndarray | None = None) -> FaceTrack:
    """A FaceTrack whose iBUG-68 points are ``(T, 68, 2)`` ``landmarks68`` (other points 0)."""
    landmarks = np.zeros((len(landmarks68), N_LANDMARKS, 3), np.float32)
    landmarks[:, IBUG68, :2] = landmarks68
    found = np.ones(len(landmarks68), bool) if found is None else found
    return FaceTrack(landmarks, found, np.zeros_like(found), found.astype(np.float32), FPS, size)


def test_video_landmark_metrics_split_mouth_and_face(face68):
    """F-LVD counts all 68 points: a jaw-only motion error leaves M-LVD at 0 (EAT adds M into F)."""
    generated = face68.copy()
    generated[3:, 5] += (3.0, 4.0)
    reference = _track(face68 * 2, size=(512, 512))   # the reference at twice the size
    pairs = metrics._frame_pairs(5, FPS, 5, FPS)
    scores = metrics._landmark_metrics(_track(generated, (256, 256)), reference, pairs)
    assert scores["m_lvd"] == pytest.approx(0.0, abs=1e-5)
    assert scores["f_lvd"] == pytest.approx(5 / (4 * 68), rel=1e-5)
    assert scores["m_lmd"] == pytest.approx(0.0, abs=1e-5)
    # centred, frames 3 and 4: the jaw point is off by 5 * 67/68 px, the 67 others by 5/68 px
    assert scores["f_lmd"] == pytest.approx(2 / 5 * (2 * 5 * 67 / 68) / 68, rel=1e-5)


def test_frames_are_paired_by_time():
    generated, reference = metrics._frame_pairs(10, 25.0, 7, 25.0)
    assert generated.tolist() == reference.tolist() == list(range(7))
    generated, reference = metrics._frame_pairs(6, 25.0, 9, 50.0)   # the reference at twice the rate
    assert generated.tolist() == [0, 1, 2, 3, 4] and reference.tolist() == [0, 2, 4, 6, 8]
    generated, reference = metrics._frame_pairs(4, 30.0, 10, 25.0)
    assert reference.tolist() == [0, 1, 2, 3]   # round(i * 25 / 30): 0, 0.83, 1.67, 2.5 (halves up)


# -------------------------------------------------------------------- pixel metrics


def test_psnr_and_ssim_by_hand():
    frames = np.random.default_rng(2).integers(0, 200, (2, 32, 32, 3), dtype=np.uint8)
    assert metrics.psnr(frames, frames) == math.inf
    assert metrics.psnr(frames + np.uint8(10), frames) == pytest.approx(20 * math.log10(255 / 10))
    assert metrics.ssim(frames, frames) == pytest.approx(1.0)
    noise = np.random.default_rng(3).normal(0, 1, frames.shape)
    slightly, very = (np.clip(frames + sigma * noise, 0, 255).astype(np.uint8) for sigma in (10, 40))
    assert 1.0 > metrics.ssim(slightly, frames) > metrics.ssim(very, frames)
    with pytest.raises(ValueError, match="one shape"):
        metrics.psnr(frames, frames[:1])


# ----------------------------------------------------------------------------- CPBD


CPBD_PACKAGE = {  # cpbd 1.0.7 (PyPI) on the grey levels of 256² scikit-image images, Gaussian-blurred
    "astronaut": (0.436, 0.123, 0.010, 0.0),
    "camera": (0.760, 0.387, 0.067, 0.0),
    "coffee": (0.606, 0.182, 0.003, 0.0),
}
BLURS = (0, 1, 2, 4)  # sigma, pixels (0: sharp)


@pytest.mark.parametrize("name", sorted(CPBD_PACKAGE))
def test_cpbd_equals_the_cpbd_package(name):
    image = cv2.resize(getattr(skimage.data, name)(), (256, 256), interpolation=cv2.INTER_AREA)
    for sigma, expected in zip(BLURS, CPBD_PACKAGE[name]):
        blurred = cv2.GaussianBlur(image, (0, 0), sigma) if sigma else image
        assert sharpness.cpbd(blurred) == pytest.approx(expected, abs=0.01), sigma


def test_cpbd_of_a_blank_image_and_of_one_too_small():
    assert sharpness.cpbd(np.full((64, 64), 90, np.uint8)) == 0.0
    with pytest.raises(ValueError, match="at least 64"):
        sharpness.cpbd(np.zeros((32, 80), np.uint8))


def test_cpbd_falls_with_blur(portrait):
    scores = [sharpness.cpbd(portrait)] + [
        sharpness.cpbd(cv2.GaussianBlur(portrait, (0, 0), sigma)) for sigma in (0.5, 1.0, 2.0, 4.0)]
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert scores[0] > 0.3
    assert scores[0] > scores[1] > scores[2] >= scores[3] >= scores[4]
    assert scores[3] < 0.02   # by sigma 2 nearly every edge is wider than w_JNB: CPBD saturates at 0


# ------------------------------------------------------------------ loudness following


def test_loudness_following_finds_the_delay():
    loudness = np.random.default_rng(4).uniform(-50, -10, 100)
    loudness[::7] = -100.0                         # silences, clipped at -60 dB
    mouth = np.empty(100)
    mouth[2:] = np.maximum(loudness[:-2], lipsync.LOUDNESS_FLOOR_DB) + 70.0   # 2 frames late
    mouth[:2] = 0.0
    result = lipsync.loudness_following(mouth, loudness)
    assert result.lag_frames == 2 and result.correlation == pytest.approx(1.0)
    assert result.lag_ms(FPS) == 80.0
    early = np.append(np.maximum(loudness[1:], lipsync.LOUDNESS_FLOOR_DB), 0.0)   # 1 frame early
    assert lipsync.loudness_following(early, loudness).lag_frames == -1


def test_loudness_following_of_noise_and_of_a_still_mouth():
    rng = np.random.default_rng(5)
    noise = lipsync.loudness_following(rng.normal(size=300), rng.uniform(-50, -10, 300))
    assert abs(noise.correlation) < 0.25
    still = lipsync.loudness_following(np.ones(50), rng.uniform(-50, -10, 50))
    assert math.isnan(still.correlation) and still.lag_frames == 0


def test_loudness_following_of_a_track_uses_its_audio_and_face_size(tmp_path):
    """Mouth opening (relative to a zooming face) follows the audio's loudness 2 frames late."""
    rng = np.random.default_rng(6)
    n_frames, rate = 50, 16000
    amplitude = rng.uniform(0.05, 0.5, n_frames)
    samples_per_frame = int(rate / FPS)   # 640: ten whole cycles of 250 Hz, RMS = amplitude / sqrt 2
    tone = np.sin(2 * np.pi * 250 * np.arange(samples_per_frame) / rate)
    write_wav(tmp_path / "speech.wav", np.concatenate([a * tone for a in amplitude]), rate)
    loudness_db = 20 * np.log10(amplitude / math.sqrt(2))
    opening = np.concatenate([[0.0, 0.0], loudness_db[:-2] + 40.0])
    zoom = 1.0 + 0.5 * np.sin(np.arange(n_frames) / 3)
    landmarks = rng.uniform(0, 100, (1, N_LANDMARKS, 3)) * zoom[:, None, None]
    landmarks[:, 13] = 0.0
    landmarks[:, 14] = 0.0
    landmarks[:, 14, 1] = opening * zoom
    found = np.ones(n_frames, bool)
    track = FaceTrack(landmarks, found, ~found, found.astype(np.float32), FPS, (256, 256))
    result = lipsync.track_loudness_following(track, tmp_path / "speech.wav")
    assert result.lag_frames == 2 and result.correlation > 0.99


# ------------------------------------------------------------------- whole videos


@pytest.fixture(scope="module")
def videos(tmp_path_factory, portrait) -> dict[str, str]:
    """10-frame still videos of the portrait: as is, zoomed 10 % (8 frames) and shifted."""
    folder = tmp_path_factory.mktemp("metrics")
    zoom = cv2.getRotationMatrix2D((110.0, 70.0), 0.0, 1.1)
    shift = np.float32([[1, 0, 6], [0, 1, 4]])
    variants = {
        "portrait": [portrait] * 10,
        "zoomed": [cv2.warpAffine(portrait, zoom, (256, 256), borderMode=cv2.BORDER_REFLECT)] * 8,
        "shifted": [cv2.warpAffine(portrait, shift, (256, 256), borderMode=cv2.BORDER_REFLECT)] * 10,
    }
    paths = {name: str(folder / f"{name}.mp4") for name in variants}
    for name, frames in variants.items():
        media.write_video(paths[name], frames, FPS)
    return paths


def test_a_video_compared_with_itself(videos):
    result = metrics.compare_videos(videos["portrait"], videos["portrait"])
    assert result.frames_compared == 10
    assert result.f_lmd < 0.5 and result.m_lmd < 0.5 and result.f_lvd < 0.5
    assert result.ssim > 0.95 and result.psnr == math.inf
    assert 0.2 < result.cpbd_generated == result.cpbd_reference <= 1.0
    assert math.isnan(result.loudness_r) and math.isnan(result.loudness_lag_ms)   # no audio


def test_centring_cancels_a_shift_but_not_a_zoom(videos):
    shifted = metrics.compare_videos(videos["shifted"], videos["portrait"])
    zoomed = metrics.compare_videos(videos["zoomed"], videos["portrait"])
    assert shifted.f_lmd < 0.5
    assert zoomed.f_lmd > 1.0 and zoomed.f_lmd > 3 * shifted.f_lmd
    assert zoomed.frames_compared == 8 and zoomed.ssim < 0.6
    assert metrics.compare_videos(videos["portrait"], videos["zoomed"], max_frames=6).frames_compared == 6


def test_video_sharpness(videos, portrait):
    assert sharpness.video_sharpness(videos["portrait"]) == pytest.approx(sharpness.cpbd(portrait), abs=0.05)


def _talking_track(opening: np.ndarray, found: np.ndarray | None = None) -> FaceTrack:
    """A track of a face-sized point cloud whose inner lips (13, 14) part by ``opening`` pixels."""
    base = np.zeros((478, 3), np.float32)
    angles = np.linspace(0.0, 2.0 * np.pi, 478, endpoint=False)
    base[:, 0], base[:, 1] = 100 + 60 * np.cos(angles), 100 + 80 * np.sin(angles)   # a face-sized cloud
    landmarks = np.repeat(base[None], len(opening), axis=0)
    landmarks[:, 14, 1] = landmarks[:, 13, 1] + opening
    found = np.ones(len(opening), bool) if found is None else found
    return FaceTrack(landmarks, found, np.zeros_like(found), found.astype(np.float32), FPS, (256, 256))


def test_the_mouth_is_compared_with_the_reference_mouth_at_its_lag():
    rng = np.random.default_rng(3)
    real = np.abs(gaussian_filter1d(rng.normal(size=120), 2.0)) * 20
    pairs = (np.arange(120), np.arange(120))
    same = metrics._mouth_metrics(_talking_track(real), _talking_track(real), pairs)
    assert same["mouth_r"] == pytest.approx(1.0) and same["mouth_lag_ms"] == 0.0
    late = np.concatenate([real[:2], real[:-2]])          # two frames late, and a frame lost
    found = np.ones(120, bool)
    found[50] = False
    result = metrics._mouth_metrics(_talking_track(late, found), _talking_track(real), pairs)
    assert result["mouth_r"] > 0.95 and result["mouth_lag_ms"] == pytest.approx(2000.0 / FPS)
    unrelated = metrics._mouth_metrics(_talking_track(rng.permutation(real)), _talking_track(real), pairs)
    assert unrelated["mouth_r"] < 0.5
