"""EVP data preparation on a tiny MEAD-layout dataset rendered on the fly (no espeak).

One subject (M003) has six clips rendered by ``generate`` (2 sentences x neutral,
happy, sad) with separate ``.m4a`` audio; a second subject (W009) reuses the same
videos without ``.m4a`` files, so both audio paths are exercised. Three broken clips
(garbage bytes, a video without a face, 0.3 s of audio) must fail without stopping
the run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data

from emoportrait import audio, media
from emoportrait.emotions import parse_emotion
from emoportrait.errors import InputError
from emoportrait.evp import cache
from emoportrait.evp.cache import FeatureCache, ManifestRow
from emoportrait.evp.layout import discover
from emoportrait.evp.prepare import (
    PrepareConfig, assign_splits, finalize, parse_shard, prepare,
)
from emoportrait.pipeline import GenerateConfig, generate

RATE = 16000
SENTENCES = {  # sentence id -> the (F1, F2) formants (Hz) of its vowels, one syllable each
    "001": [(700, 1200), (300, 2300), (500, 1700), (400, 800), (650, 1100)],
    "002": [(300, 800), (600, 1900), (700, 1300), (350, 2200), (450, 900)],
}
STYLE = {"neutral": (1.0, 140.0, 0.25), "happy": (1.2, 210.0, 0.35), "sad": (0.85, 115.0, 0.2)}
"""Emotion -> (tempo factor, pitch in Hz, peak amplitude)."""


def speech(sentence: str, emotion: str) -> np.ndarray:
    """Vowel bursts with the sentence's formants; emotion sets tempo, pitch and level (1.2-1.6 s)."""
    tempo, pitch, level = STYLE[emotion]
    pieces = [np.zeros(int(0.12 * RATE))]
    for f1, f2 in SENTENCES[sentence]:
        t = np.arange(int(0.18 / tempo * RATE)) / RATE
        harmonics = np.arange(1, int(3500 / pitch))
        gains = np.exp(-(((harmonics * pitch)[:, None] - (f1, f2)) / 150.0) ** 2).sum(axis=1) + 0.05
        voice = (gains[:, None] * np.sin(2 * np.pi * pitch * harmonics[:, None] * t)).sum(axis=0)
        pieces += [voice * np.hanning(len(t)) ** 0.5, np.zeros(int(0.05 / tempo * RATE))]
    pieces.append(np.zeros(int(0.12 * RATE)))
    samples = np.concatenate(pieces)
    return (level * samples / np.abs(samples).max()).astype(np.float32)


def write_m4a(path: Path, samples: np.ndarray) -> None:
    """Mono AAC in an .m4a container, like MEAD's audio files."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, 0, Fraction(1, RATE)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def mead_clip(root: Path, subject: str, emotion: str, sentence: str) -> Path:
    """MEAD's path of a level-1 frontal video (its folder created)."""
    path = root / subject / "video" / "front" / emotion / "level_1" / f"{sentence}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """The MEAD-layout test dataset (see the module docstring)."""
    root = tmp_path_factory.mktemp("mead")
    work = tmp_path_factory.mktemp("work")
    portrait = work / "portrait.png"
    crop = skimage.data.astronaut()[0:320, 60:380]
    media.write_image(portrait, cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA))
    for sentence in SENTENCES:
        for emotion in STYLE:
            samples = speech(sentence, emotion)
            wav = work / f"{sentence}_{emotion}.wav"
            audio.write_wav(wav, samples, RATE)
            video = mead_clip(root, "M003", emotion, sentence)
            generate(wav, parse_emotion(emotion), portrait, video, config=GenerateConfig(size=128))
            m4a = root / "M003" / "audio" / emotion / "level_1" / f"{sentence}.m4a"
            m4a.parent.mkdir(parents=True, exist_ok=True)
            write_m4a(m4a, samples)
            shutil.copy(video, mead_clip(root, "W009", emotion, sentence))
    mead_clip(root, "M003", "neutral", "003").write_bytes(b"\x00garbage, not an mp4" * 50)
    shutil.copy(mead_clip(root, "M003", "happy", "001"), mead_clip(root, "M003", "happy", "005"))
    write_m4a(root / "M003" / "audio" / "happy" / "level_1" / "005.m4a", speech("001", "happy")[:4800])
    blank = np.full((128, 128, 3), 90, np.uint8)
    media.write_video(mead_clip(root, "M003", "sad", "004"), [blank] * 30, 25.0,
                      speech("001", "neutral")[: int(1.2 * RATE)], RATE)
    write_sentence_map(root / "sentence_map.csv", {(subject, sentence): {emotion: sentence for emotion in STYLE}
                                                  for subject in ("M003", "W009") for sentence in SENTENCES})
    return root


def write_sentence_map(path: Path, rows: dict[tuple[str, str], dict[str, str]]) -> None:
    """A sentence map: (subject, sentence) -> {emotion: clip}."""
    emotions = sorted({emotion for clips in rows.values() for emotion in clips})
    lines = [",".join(["subject", "sentence", *emotions])]
    lines += [",".join([subject, sentence, *(clips.get(e, "") for e in emotions)])
              for (subject, sentence), clips in rows.items()]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def prepared(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    return out, prepare(dataset, out)


def ok_rows(out: Path) -> list[ManifestRow]:
    """The prepared clips of a cache's manifest."""
    return [row for row in cache.read_manifest(out / cache.MANIFEST) if row.ok]


# ---------------------------------------------------------------------- layouts


def test_discover_mead_layout_uses_m4a_or_the_videos_own_track(dataset):
    clips = {clip.clip_id: clip for clip in discover(dataset)}
    assert len(clips) == 15
    clip = clips["M003_happy_1_002"]
    assert (clip.subject, clip.emotion, clip.level, clip.sentence) == ("M003", "happy", 1, "002")
    assert clip.audio.suffix == ".m4a" and clip.audio.is_file()
    assert clips["W009_happy_1_002"].audio == clips["W009_happy_1_002"].video


def test_hidden_files_in_a_mead_tree_are_skipped(tmp_path):
    """A macOS copy leaves ``._001.mp4`` AppleDouble files beside each clip; they made the
    clip-name check refuse the whole tree."""
    mead_clip(tmp_path, "M003", "happy", "001").write_bytes(b"")
    (tmp_path / "M003" / "video" / "front" / "happy" / "level_1" / "._001.mp4").write_bytes(b"\0\5\26\7")
    mead_clip(tmp_path / ".Trashes", "M009", "happy", "001").write_bytes(b"")
    assert [clip.clip_id for clip in discover(tmp_path)] == ["M003_happy_1_001"]


def test_bad_roots_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        discover(tmp_path / "missing")
    with pytest.raises(InputError, match=r"no clips found.*video/front.*dataset.csv"):
        discover(tmp_path)
    mead_clip(tmp_path, "M003", "joyful", "001").write_bytes(b"")
    with pytest.raises(InputError, match="unknown emotion folder .*joyful"):
        discover(tmp_path)
    table = tmp_path / "clips.csv"
    table.write_text("video,subject,emotion\na.mp4,S1,happy\n")
    with pytest.raises(InputError, match="lacks the column.*audio") as error:
        discover(table)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------- clips


def test_mead_sentences_come_from_the_map_never_from_clip_numbers_unless_asked(dataset, tmp_path, caplog):
    mapped = {clip.clip_id: clip.sentence for clip in discover(dataset)}
    assert mapped["M003_happy_1_001"] == mapped["M003_sad_1_001"] == "001"
    assert mapped["M003_neutral_1_003"] == "003-neutral"        # not in the map: a sentence of its own
    tree = tmp_path / "tree"
    shutil.copytree(dataset / "M003", tree / "M003")
    with caplog.at_level("WARNING", logger="emoportrait.evp.layout"):
        alone = {clip.clip_id: clip.sentence for clip in discover(tree)}
    assert "no sentence_map.csv" in caplog.text and len(set(alone.values())) == len(alone)
    assert discover(tree, sentences_by_number=True)[0].sentence == "001"
    other = tmp_path / "other.csv"   # EVP's lists: another clip of disgusted says sentence 1
    write_sentence_map(other, {("M003", "s1"): {"happy": "001", "sad": "002"}})
    renumbered = {clip.clip_id: clip.sentence for clip in discover(tree, sentence_map=other)}
    assert renumbered["M003_happy_1_001"] == renumbered["M003_sad_1_002"] == "s1"
    assert renumbered["M003_sad_1_001"] == "001-sad"
    (tmp_path / "bad.csv").write_text("subject,sentence,anger\nM003,s1,001\n")
    with pytest.raises(InputError, match="unknown emotion column"):
        discover(tree, sentence_map=tmp_path / "bad.csv")


def test_clip_files_have_consistent_shapes(prepared):
    out, summary = prepared
    rows = ok_rows(out)
    assert len(rows) == 12 and summary.n_prepared == 15 and summary.n_skipped == 0
    for row in rows[::3]:
        clip = FeatureCache(out).clip(row.clip_id)
        n = media.probe(row.video).n_frames
        assert clip.n_frames == row.n_frames == n
        assert clip.mfcc_windows.shape == (n, 28, 12) and clip.mfcc_windows.dtype == np.float32
        assert clip.mfcc.shape[1] == 12 and abs(len(clip.mfcc) - 100 * n / clip.fps) < 10
        assert clip.loudness.shape == clip.silent.shape == clip.found.shape == clip.scale.shape == (n,)
        assert clip.landmarks.shape == clip.canonical.shape == (n, 478, 3)
        assert clip.rotation.shape == (n, 3, 3) and clip.translation.shape == (n, 3)
        assert clip.silent.dtype == bool and clip.found.mean() > 0.9 and clip.fps == 25.0
        assert clip.silent[:2].all() and not clip.silent[n // 2 - 3:n // 2 + 3].all()


def test_broken_clips_are_recorded_as_failed(prepared):
    out, summary = prepared
    rows = {row.clip_id: row for row in cache.read_manifest(out / cache.MANIFEST)}
    assert rows["M003_neutral_1_003"].status.startswith("failed: ")
    assert "corrupt" in rows["M003_neutral_1_003"].status
    assert "no face" in rows["M003_sad_1_004"].status
    assert "s long; at least 0.50 s of speech" in rows["M003_happy_1_005"].status
    assert set(summary.failures) == {"M003_neutral_1_003", "M003_sad_1_004", "M003_happy_1_005"}
    assert json.loads((out / cache.SUMMARY).read_text())["failures"].keys() == summary.failures.keys()
    with pytest.raises(InputError, match="was not prepared"):
        FeatureCache(out).clip("M003_sad_1_004")


# -------------------------------------------------------------------- dataset


def test_splits_never_share_a_sentence(prepared):
    out, summary = prepared
    assert summary.dataset.split_mode == "sentence"
    splits = {}
    for row in ok_rows(out):
        splits.setdefault(row.sentence, set()).add(row.split)
    assert all(len(names) == 1 for names in splits.values())
    assert {name for names in splits.values() for name in names} == {"train", "test"}


def test_subject_disjoint_splits_from_three_subjects():
    rows = [ManifestRow(f"{s}_happy_1_00{k}", s, "happy", 1, f"00{k}", 30, 25.0, "", "ok", "v", "a")
            for s in ("A", "B", "C", "D") for k in range(3)]
    rows.append(ManifestRow("E_sad_1_001", "E", "sad", 1, "001", 0, 0.0, "", "failed: x", "v", "a"))
    split_rows, mode = assign_splits(rows, PrepareConfig())
    assert mode == "subject" and assign_splits(rows, PrepareConfig())[0] == split_rows
    by_subject = {}
    for row in split_rows:
        by_subject.setdefault(row.subject, set()).add(row.split)
    assert by_subject["E"] == {""}
    held = sorted(next(iter(by_subject[s])) for s in "ABCD")
    assert held == ["test", "train", "train", "val"]


def test_subject_model_pca_is_orthonormal_and_explains_the_motion(prepared):
    out, _ = prepared
    features = FeatureCache(out)
    for subject in ("M003", "W009"):
        model = features.subject(subject)
        k = len(model.components)
        assert k == 16 and model.mean.shape == (956,) and model.has_neutral
        np.testing.assert_allclose(model.components @ model.components.T, np.eye(k), atol=1e-5)
        assert np.all(np.diff(model.explained_variance) <= 1e-9)
        assert model.explained_variance.sum() / model.total_variance > 0.9
        assert model.identity.shape == (478, 3)
        np.testing.assert_allclose(model.example_code, model.encode(model.identity[:, :2]), atol=1e-4)
        row = next(row for row in features.ok("train") if row.subject == subject)
        xy = features.clip(row.clip_id).canonical[..., :2]
        error = np.abs(model.decode(model.encode(xy)) - xy).mean()
        assert error < 0.3 * np.abs(xy - model.mean.reshape(478, 2)).mean()
    displacements = features.reference_displacements("M003")
    assert set(displacements) == {("happy", 1), ("sad", 1)}
    assert displacements["happy", 1].shape == (478, 3)


def test_pairs_are_same_subject_same_sentence_other_emotion(prepared):
    out, summary = prepared
    features = FeatureCache(out)
    rows = {row.clip_id: row for row in features.manifest}
    pairs = features.pairs()
    assert len(pairs) == summary.dataset.n_pairs == 2 * 2 * 6
    for pair in pairs:
        a, b = rows[pair.clip_a], rows[pair.clip_b]
        assert (a.subject, a.sentence, a.split) == (b.subject, b.sentence, pair.split)
        assert a.emotion != b.emotion and pair.cost > 0
        path = features.step_path(pair)
        steps_a, steps_b = len(features.clip(a.clip_id).mfcc), len(features.clip(b.clip_id).mfcc)
        assert path.shape[1] == 2 and path.dtype == np.int64
        assert np.all(np.diff(path, axis=0) >= 0)
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (steps_a - 1, steps_b - 1)


def test_subject_without_neutral_clips_is_recorded(tmp_path, caplog):
    rng = np.random.default_rng(0)
    rows = []
    for emotion in ("happy", "sad"):
        clip_id = f"S9_{emotion}_1_001"
        n = 20
        canonical = rng.normal(size=(n, 478, 3)).astype(np.float32)
        cache.save_clip(cache.clip_path(tmp_path, clip_id), cache.ClipFeatures(
            clip_id, "S9", emotion, 1, "001", 25.0, np.zeros((n, 28, 12), np.float32),
            rng.normal(size=(80, 12)).astype(np.float32), np.zeros(n, np.float32), np.zeros(n, bool),
            canonical, canonical, np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
            np.ones(n, np.float32), np.zeros((n, 3), np.float32), np.ones(n, bool)), "v.mp4", "v.mp4")
        rows.append(ManifestRow(clip_id, "S9", emotion, 1, "001", n, 25.0, "", "ok", "v.mp4", "v.mp4"))
    cache.write_manifest(cache.part_path(tmp_path, 0, 1), rows)
    (tmp_path / cache.CONFIG).write_text("n_components: 4\n")
    summary = finalize(tmp_path)
    assert summary.subjects_without_neutral == ["S9"] and summary.n_pairs == 2
    assert "S9 has no neutral clips" in caplog.text
    features = FeatureCache(tmp_path)
    model = features.subject("S9")
    assert not model.has_neutral and model.components.shape == (4, 956)
    with pytest.raises(InputError, match="neutral"):
        features.reference_displacements("S9")


# ---------------------------------------------------------------- resume/shard


def test_resume_skips_prepared_clips(dataset, prepared, tmp_path):
    out, _ = prepared
    copy = tmp_path / "cache"
    shutil.copytree(out, copy)
    removed = cache.clip_path(copy, "W009_sad_1_001")
    removed.unlink()
    kept = cache.clip_path(copy, "M003_happy_1_001")
    stamp = kept.stat().st_mtime_ns
    summary = prepare(dataset, copy)
    assert summary.n_skipped == 11 and summary.n_prepared == 4 and removed.is_file()
    assert kept.stat().st_mtime_ns == stamp
    assert (copy / cache.MANIFEST).read_text() == (out / cache.MANIFEST).read_text()
    with pytest.raises(InputError, match="other settings"):
        prepare(dataset, copy, PrepareConfig(n_components=8))


def test_plain_csv_layout_and_shards_match_one_run(dataset, tmp_path):
    table = tmp_path / "data" / "clips.csv"
    table.parent.mkdir()
    m4a = dataset / "M003" / "audio" / "happy" / "level_1" / "001.m4a"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "audio", "subject", "emotion", "level", "sentence"])
        for emotion, audio_file in (("neutral", ""), ("happiness", m4a), ("sad", "")):
            folder = "happy" if emotion == "happiness" else emotion
            video = dataset / "M003" / "video" / "front" / folder / "level_1" / "001.mp4"
            relative = [os.path.relpath(path, table.parent) if path else "" for path in (video, audio_file)]
            writer.writerow([*relative, "S1", emotion, 2, "001"])
    sources = discover(table)
    assert [source.clip_id for source in sources] == ["S1_happy_2_001", "S1_neutral_2_001",
                                                      "S1_sad_2_001"]
    assert sources[0].audio == m4a and sources[1].audio == sources[1].video

    whole = tmp_path / "whole"
    assert prepare(table, whole).dataset.n_pairs == 6
    sharded = tmp_path / "sharded"
    first = prepare(table, sharded, shard=parse_shard("0/2"), workers=2)
    assert first.dataset is None and first.n_clips == 2 and not first.failures
    assert cache.part_path(sharded, 0, 2).is_file()
    with pytest.raises(InputError, match="lacks shard"):
        finalize(sharded)
    with pytest.raises(InputError, match="not merged"):
        FeatureCache(sharded)
    prepare(table, sharded, shard=(1, 2))
    finalize(sharded)
    for name in (cache.MANIFEST, cache.PAIRS):
        assert (sharded / name).read_text() == (whole / name).read_text()


def test_shard_and_cache_arguments_are_checked(tmp_path):
    assert parse_shard("3/4") == (3, 4)
    for text in ("4/4", "1", "-1/2"):
        with pytest.raises(InputError, match="shard"):
            parse_shard(text)
    with pytest.raises(InputError, match="emoportrait prepare DATA_ROOT --out"):
        FeatureCache(tmp_path)


SHARED_MEAD = Path(__file__).resolve().parents[2] / "shared" / "media" / "mead"
SHARED_SPEECH_CLIP = SHARED_MEAD / "with_audio" / "M030_sad_level_3_001.mp4"


@pytest.fixture(scope="module")
def real_mead(tmp_path_factory) -> Path:
    """A MEAD-layout tree of the shared real clips: M030's sad 001 with its speech (1080p,
    30 fps) and, for M030 and W009, one silent 256² clip per emotion (landmark-only)."""
    if not SHARED_SPEECH_CLIP.is_file():
        pytest.skip("no real MEAD clips in ../shared/media/mead")
    root = tmp_path_factory.mktemp("real_mead")
    clips = {("M030", "sad", "3"): SHARED_SPEECH_CLIP}
    for video in sorted((SHARED_MEAD / "video").glob("*_level*_001.mp4")):
        subject, emotion, level = video.stem.split("_")[:3]
        clips.setdefault((subject, emotion, level[-1]), video)  # M030's sad: the clip with speech
    for (subject, emotion, level), video in clips.items():
        target = root / subject / "video" / "front" / emotion / f"level_{level}" / "001.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(video, target)
    return root


@pytest.mark.slow
def test_prepare_on_real_mead_resamples_to_25_fps_and_keeps_silent_clips_for_landmarks(real_mead, tmp_path):
    # Every shared clip is MEAD's sentence 001, the one sentence all emotions share: one split holds them all.
    summary = prepare(real_mead, tmp_path / "cache", sentences_by_number=True)
    assert not summary.failures and summary.dataset.n_landmark_only == 15
    rows = {row.clip_id: row for row in ok_rows(tmp_path / "cache")}
    store = FeatureCache(tmp_path / "cache")
    spoken = store.clip("M030_sad_3_001")
    assert spoken.has_speech and spoken.fps == 25.0
    assert abs(spoken.n_frames - 3.73 * 25) <= 1 and len(spoken.mfcc_windows) == spoken.n_frames
    assert rows["M030_sad_3_001"].has_speech and [row.clip_id for row in store.speech()] == ["M030_sad_3_001"]
    silent = store.clip("W009_happy_3_001")
    assert not silent.has_speech and not rows["W009_happy_3_001"].has_speech and silent.n_frames > 80
    assert summary.dataset.n_pairs == 0   # one clip with speech: nothing to pair
    for subject in ("M030", "W009"):
        offsets = cache.load_displacements(cache.displacement_path(tmp_path / "cache", subject))
        assert len(offsets) == 7
        corners, brows = [61, 291], [105, 334]   # lip corners; brow middles (y down)
        assert offsets["happy", 3][corners, 1].mean() < -0.01     # the corners rise in a smile
        assert offsets["surprised", 3][brows, 1].mean() < -0.01   # the brows rise in surprise


def test_prepare_command_fails_when_clips_fail_unless_asked_to_keep_going(tmp_path, capsys, monkeypatch):
    from emoportrait import cli
    from emoportrait.evp import prepare as preparing

    mead_clip(tmp_path / "mead", "M003", "happy", "001").write_bytes(b"\0" * 64)
    assert cli.main(["prepare", str(tmp_path / "mead"), "--out", str(tmp_path / "cache")]) == 2
    assert "none of the 1 clip(s) could be prepared; the first, M003_happy_1_001:" in capsys.readouterr().err

    def some_fail(*args, **kwargs):
        return preparing.PrepareSummary(out=tmp_path, shard=(0, 1), n_clips=3, n_prepared=3, n_skipped=0,
                                        failures={"M003_happy_1_002": "no face found"}, seconds=1.0)

    monkeypatch.setattr(preparing, "prepare", some_fail)
    assert cli.main(["prepare", str(tmp_path / "mead"), "--out", str(tmp_path / "cache")]) == 2
    assert "1 of 3 clips failed" in capsys.readouterr().err
    assert cli.main(["prepare", str(tmp_path / "mead"), "--out", str(tmp_path / "cache"), "--keep-going"]) == 0
