"""make-dataset: MEAD layout, audio/video agreement, prosody, subjects, resume; media.write_audio."""

from __future__ import annotations

import csv
import itertools
import shutil
import time

import librosa
import numpy as np
import pytest

from emoportrait import media
from emoportrait.errors import InputError
from emoportrait import synthetic
from emoportrait.synthetic import (
    PROSODY, IdentityConfig, SyntheticConfig, base_portrait, clip_prosody, identity_displacement,
    make_dataset, subject_portrait,
)
from emoportrait.face import track_frames

TEXTS = ("Yes.", "We walked along the river until dark.")  # short: the clips are rendered at 25 fps
CONFIG = SyntheticConfig(subjects=2, sentences=2, emotions=("neutral", "happy", "sad"), levels=(1, 3),
                         size=96, texts=TEXTS)
FOLDERS = (("neutral", 1), ("happy", 1), ("happy", 3), ("sad", 1), ("sad", 3))
SUBJECTS = ("M001", "W002")

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = tmp_path_factory.mktemp("synthetic")
    return out, make_dataset(out, CONFIG)


def _median_pitch(samples: np.ndarray, rate: int) -> float:
    """Median f0 (Hz, YIN) over the loud frames (RMS above 30 % of the loudest), i.e. the vowels."""
    f0 = librosa.yin(samples, fmin=60, fmax=500, sr=rate, frame_length=1024, hop_length=256)
    rms = librosa.feature.rms(y=samples, frame_length=1024, hop_length=256)[0]
    return float(np.median(f0[rms > 0.3 * rms.max()]))


@pytest.mark.slow
def test_the_mead_layout_has_every_clip_and_neutral_only_at_level_1(dataset):
    out, summary = dataset
    assert (summary.subjects, summary.clips, summary.skipped) == (2, 20, 0)
    assert sorted(p.name for p in out.iterdir()) == ["M001", "README.txt", "W002", "sentence_map.csv", "sentences.csv"]
    for subject in SUBJECTS:
        assert (out / subject / "portrait.png").is_file()
        folders = {(p.parent.name, p.name) for p in (out / subject / "video" / "front").glob("*/*/")}
        assert folders == {(emotion, f"level_{level}") for emotion, level in FOLDERS}
        for emotion, level in FOLDERS:
            videos = out / subject / "video" / "front" / emotion / f"level_{level}"
            sounds = out / subject / "audio" / emotion / f"level_{level}"
            assert sorted(p.name for p in videos.iterdir()) == ["001.mp4", "002.mp4"]
            assert sorted(p.name for p in sounds.iterdir()) == ["001.m4a", "002.m4a"]
    assert "NOT a substitute for MEAD" in (out / "README.txt").read_text()


@pytest.mark.slow
def test_every_clip_has_frames_and_its_m4a_is_the_videos_speech(dataset):
    out, _ = dataset
    videos = sorted(out.glob("*/video/**/*.mp4"))
    assert len(videos) == 20
    for video in videos:
        info = media.probe(video)
        assert info.n_frames > 10 and info.has_audio and (info.width, info.height) == (96, 96)
        subject, _, _, emotion, level, _ = video.relative_to(out).parts
        speech, rate = media.read_audio(out / subject / "audio" / emotion / level / f"{video.stem}.m4a")
        track, track_rate = media.read_audio(video)
        assert rate == track_rate == 16000
        assert abs(len(speech) / rate - info.n_frames / info.fps) < 0.1
        n = min(len(speech), len(track))
        assert np.corrcoef(speech[:n], track[:n])[0, 1] > 0.95


@pytest.mark.slow
def test_the_clip_number_is_the_sentence(dataset):
    out, _ = dataset
    with open(out / "sentences.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["subject"], r["clip"], r["text"]) for r in rows] == [
        (s, f"{n:03d}", TEXTS[n - 1]) for s in SUBJECTS for n in (1, 2)]
    for subject, (emotion, level) in itertools.product(SUBJECTS, FOLDERS):
        folder = out / subject / "audio" / emotion / f"level_{level}"
        short, long = (len(media.read_audio(folder / f"00{n}.m4a")[0]) for n in (1, 2))
        assert long > 2 * short


@pytest.mark.slow
def test_happy_speech_is_higher_and_faster_than_sad(dataset):
    out, _ = dataset
    for subject in SUBJECTS:
        happy, rate = media.read_audio(out / subject / "audio/happy/level_3/002.m4a")
        sad, _ = media.read_audio(out / subject / "audio/sad/level_3/002.m4a")
        assert _median_pitch(happy, rate) > 1.2 * _median_pitch(sad, rate)
        assert len(sad) > 1.2 * len(happy)


@pytest.mark.slow
def test_the_subjects_look_different_and_both_have_a_trackable_face(dataset):
    out, _ = dataset
    faces = [media.read_image(out / subject / "portrait.png") for subject in SUBJECTS]
    assert np.abs(faces[0].astype(float) - faces[1]).mean() > 10
    assert all(track_frames([face], fps=None).found.all() for face in faces)


def test_unmirrored_subjects_differ_too():
    config = SyntheticConfig(subjects=3, size=128)
    base = base_portrait()
    first, third = (subject_portrait(index, base, config).astype(float) for index in (0, 2))
    assert np.abs(first - third).mean() > 3


@pytest.mark.slow
def test_a_second_run_skips_everything_and_changes_nothing(dataset):
    out, _ = dataset
    files = sorted(p for p in out.rglob("*") if p.is_file())
    stamps = [p.stat().st_mtime_ns for p in files]
    start = time.perf_counter()
    summary = make_dataset(out, CONFIG)
    assert time.perf_counter() - start < 10  # no clip is rendered
    assert (summary.clips, summary.skipped) == (0, 20)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    assert [p.stat().st_mtime_ns for p in files] == stamps


def test_the_identity_deformation_never_folds_at_its_extremes():
    _, landmarks = base_portrait()
    ranges = IdentityConfig()
    names = ("face_width", "eye_distance", "nose_length", "mouth_width", "jaw_width")
    rows, cols = np.mgrid[0:320:4, 0:320:4].astype(float)
    points = np.stack([cols.ravel(), rows.ravel()], axis=1)
    step = 1e-3
    for signs in itertools.product((-1, 1), repeat=len(names)):
        change = {name: sign * getattr(ranges, name) for name, sign in zip(names, signs)}
        moved = [p + identity_displacement(p, landmarks, change, ranges) for p in (
            points + [step, 0], points - [step, 0], points + [0, step], points - [0, step])]
        dx, dy = (moved[0] - moved[1]) / (2 * step), (moved[2] - moved[3]) / (2 * step)
        assert (dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0]).min() > 0.5


def test_prosody_is_interpolated_from_neutral_by_intensity():
    assert clip_prosody("sad", 0.0, 0.0) == PROSODY["neutral"]
    assert clip_prosody("sad", 1.0, 0.0) == PROSODY["sad"]
    halfway = clip_prosody("happy", 0.5, 4.0)
    assert halfway.words_per_minute == pytest.approx(167.5) and halfway.pitch == pytest.approx(64.0)
    assert clip_prosody("surprised", 1.0, 30.0).pitch == 99


def test_settings_are_checked():
    with pytest.raises(InputError, match="unknown emotion"):
        SyntheticConfig(emotions=("happy", "bored"))
    with pytest.raises(InputError, match="levels"):
        SyntheticConfig(levels=(1, 4))


def test_missing_espeak_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="apt-get install espeak-ng"):
        make_dataset(tmp_path / "out", SyntheticConfig(subjects=1, sentences=1))
    assert not (tmp_path / "out").exists()


def test_write_audio_round_trips_through_aac(tmp_path):
    rate = 16000
    t = np.arange(int(1.7 * rate)) / rate
    samples = (0.4 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 1.5 * t)).astype(np.float32)
    media.write_audio(tmp_path / "tone.m4a", samples, rate)
    decoded, decoded_rate = media.read_audio(tmp_path / "tone.m4a")
    assert decoded_rate == rate
    assert 0 <= len(decoded) - len(samples) <= 1024  # AAC pads to whole 1024-sample frames
    shifts = range(-64, 65)
    lag = max(shifts, key=lambda s: float(np.dot(np.roll(decoded[:len(samples)], -s), samples)))
    aligned = np.roll(decoded[:len(samples)], -lag)[100:-100]
    assert np.corrcoef(aligned, samples[100:-100])[0, 1] > 0.9
    assert [p.name for p in tmp_path.iterdir()] == ["tone.m4a"]  # no temporary left behind
