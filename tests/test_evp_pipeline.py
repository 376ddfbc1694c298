"""The learned EVP pipeline end to end on a tiny synthetic data set:
make-dataset → prepare → train content, emotion, disentangle, audio2lm → generate --driver learned."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from emoportrait import media
from emoportrait.cli import main
from emoportrait.drivers.learned import LearnedDriver
from emoportrait.emotions import parse_emotion
from emoportrait.synthetic import SyntheticConfig, make_dataset

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")]

STAGES = [("content", []), ("emotion", []), ("disentangle", ["--init", "{runs}/content,{runs}/emotion"]),
          ("audio2lm", ["--init", "{runs}/disentangle", "--subject", "M001"])]


def _train(stage: str, cache, runs, extra: list[str], epochs: int = 3) -> int:
    args = [part.format(runs=runs) for part in extra]
    return main(["train", stage, "--data", str(cache), "--out", str(runs / stage), "--epochs", str(epochs),
                 "--batch", "16", "--max-steps", "4", "--lr", "2e-4", *args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evp")
    data, cache, runs = root / "data", root / "cache", root / "runs"
    make_dataset(data, SyntheticConfig(subjects=2, sentences=2, emotions=("neutral", "happy", "sad"),
                                       levels=(3,), size=96))
    assert main(["prepare", str(data), "--out", str(cache)]) == 0
    for stage, extra in STAGES:
        assert _train(stage, cache, runs, extra) == 0, stage
    return data, cache, runs


def _losses(run) -> list[float]:
    with open(run / "log.csv", newline="") as handle:
        return [float(row["train_loss"]) for row in csv.DictReader(handle)]


@pytest.mark.parametrize("stage", [stage for stage, _ in STAGES])
def test_every_stage_trains_and_its_loss_falls(trained, stage):
    _, _, runs = trained
    losses = _losses(runs / stage)
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert (runs / stage / "best" / "config.yaml").is_file()


def test_a_stage_resumes_where_it_stopped(trained, capsys):
    _, cache, runs = trained
    assert _train("emotion", cache, runs, [], epochs=4) == 0
    assert len(_losses(runs / "emotion")) == 4
    assert "emotion: 4 epoch(s)" in capsys.readouterr().out


def test_generate_with_the_learned_driver(trained, tmp_path):
    data, _, runs = trained
    speech = data / "M001" / "audio" / "happy" / "level_3" / "001.m4a"
    out = tmp_path / "learned.mp4"
    assert main(["generate", "--driver", "learned", "--weights", str(runs / "audio2lm"), "--speech", str(speech),
                 "--emotion", "sad:0.5", "--target", str(data / "W002" / "portrait.png"), "-o", str(out)]) == 0
    info = media.probe(out)
    assert info.has_audio and info.n_frames > 10
    reference = data / "M001" / "audio" / "sad" / "level_3" / "002.m4a"
    out2 = tmp_path / "reference.mp4"
    assert main(["generate", "--driver", "learned", "--weights", str(runs / "audio2lm"), "--speech", str(speech),
                 "--emotion-audio", str(reference), "--target", str(data / "W002" / "portrait.png"),
                 "-o", str(out2)]) == 0


def test_learned_driver_closes_the_mouth_in_long_silence_and_keeps_the_emotion(trained):
    _, cache, runs = trained
    from emoportrait.evp.cache import FeatureCache
    from emoportrait.face import inner_mouth_opening

    identity = FeatureCache(cache).subject("M001").identity
    speech = np.zeros(48000, np.float32)   # 0.5 s pause, 1 s speech, 1.5 s pause
    speech[8000:24000] = 0.3 * np.sin(2 * np.pi * 180 * np.arange(16000) / 16000)
    expression = LearnedDriver(runs / "audio2lm").drive(speech, parse_emotion("happy"), identity, 75, 25.0)
    assert expression.shape == (75, 478, 3) and np.isfinite(expression).all()
    driven = identity + expression
    long_pause, short_pause = slice(-30, None), slice(0, 10)
    assert inner_mouth_opening(driven[long_pause]).max() < 0.02
    # Only the lips close: a short pause keeps the network's face, a long one its brows.
    assert np.abs(expression[short_pause]).max() > 0
    brows = [70, 105, 300, 334]
    assert np.abs(expression[long_pause][:, brows]).max() > 1e-4


@pytest.mark.parametrize("damage,message", [
    (lambda text: text.replace("model:", "model:\n  bogus: 1"), "unknown EvpModelConfig setting(s) bogus"),
    (lambda text: text.replace("lstm_layers: ", "lstm_layers: x"), "setting lstm_layers must be int"),
])
def test_a_damaged_audio2lm_config_is_an_input_error(tmp_path, trained, damage, message):
    """An unknown or mistyped model setting was an internal TypeError."""
    from emoportrait.errors import InputError

    _, _, runs = trained
    copy = tmp_path / "run" / "best"
    shutil.copytree(runs / "audio2lm" / "best", copy)
    config = copy / "config.yaml"
    config.write_text(damage(config.read_text()))
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LearnedDriver(tmp_path / "run")


def test_audio2lm_validates_on_clips_it_does_not_train_on(trained):
    from emoportrait.evp.cache import FeatureCache
    from emoportrait.evp.datasets import subject_sequences

    _, cache, _ = trained
    features = FeatureCache(cache)
    n_clips = sum(row.subject == "M001" for row in features.ok("train"))
    # As when the splits hold whole subjects out: no validation clip of M001 exists.
    train, val = subject_sequences(features, "train", "M001", 16)
    assert len(train) > 0 and len(val) > 0
    held = {run[0].tobytes() for run in val.runs}
    assert not held & {run[0].tobytes() for run in train.runs}
    assert n_clips >= 2


@pytest.mark.parametrize("case,message", [
    ("wrong_init", "audio2lm starts from a disentangle run"),
    ("wrong_stage_init", "is an audio2lm run; disentangle starts from one content and one emotion run"),
    ("twice_init", "is a second content run"),
    ("init_of_pretraining", "emotion is pretrained from scratch; --init is for disentangle"),
    ("wrong_weights", "the learned driver needs an audio2lm run"),
    ("unknown_subject", "subject 'X999' has no prepared clip"),
    ("no_cache", "is not a prepared EVP feature cache"),
    ("raw_data", "holds raw clips, not prepared features; prepare them first"),
    ("no_weights", "--driver learned needs --weights"),
])
def test_bad_input_is_one_line(trained, tmp_path, capsys, case, message):
    data, cache, runs = trained
    speech = str(data / "M001" / "audio" / "happy" / "level_3" / "001.m4a")
    portrait = str(data / "W002" / "portrait.png")
    argv = {
        "wrong_init": ["train", "audio2lm", "--data", str(cache), "--out", str(tmp_path / "r"), "--init",
                       str(runs / "content"), "--subject", "M001"],
        "wrong_stage_init": ["train", "disentangle", "--data", str(cache), "--out", str(tmp_path / "r"),
                             "--init", f"{runs / 'audio2lm'},{runs / 'emotion'}"],
        "twice_init": ["train", "disentangle", "--data", str(cache), "--out", str(tmp_path / "r"),
                       "--init", f"{runs / 'content'},{runs / 'content'}"],
        "init_of_pretraining": ["train", "emotion", "--data", str(cache), "--out", str(tmp_path / "r"),
                                "--init", str(runs / "content")],
        "wrong_weights": ["generate", "--driver", "learned", "--weights", str(runs / "disentangle"), "--speech",
                          speech, "--target", portrait, "-o", str(tmp_path / "o.mp4")],
        "unknown_subject": ["train", "audio2lm", "--data", str(cache), "--out", str(tmp_path / "r"), "--init",
                            str(runs / "disentangle"), "--subject", "X999"],
        "no_cache": ["train", "emotion", "--data", str(tmp_path), "--out", str(tmp_path / "r")],
        "raw_data": ["train", "emotion", "--data", str(data), "--out", str(tmp_path / "r")],
        "no_weights": ["generate", "--driver", "learned", "--speech", speech, "--target", portrait,
                       "-o", str(tmp_path / "o.mp4")],
    }[case]
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("emoportrait:")]
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "o.mp4").exists()


def test_audio2lm_refuses_a_subject_without_neutral_clips(trained, tmp_path, capsys):
    import dataclasses

    from emoportrait.evp import cache as cache_files

    _, cache, runs = trained
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    path = cache_files.subject_path(copy, "M001")
    cache_files.save_subject(path, dataclasses.replace(cache_files.load_subject(path), has_neutral=False))
    assert _train("audio2lm", copy, tmp_path / "runs", ["--init", str(runs / "disentangle"), "--subject", "M001"]) == 2
    assert "has no neutral clips" in capsys.readouterr().err


def test_the_learned_track_loses_its_jitter_but_keeps_the_syllables():
    from emoportrait.drivers.learned import smooth_track

    fps, rng = 25.0, np.random.default_rng(0)
    t = np.arange(100) / fps
    syllables = 0.1 * np.sin(2 * np.pi * 5.0 * t)[:, None, None] * np.ones((1, 4, 2))
    jitter = 0.005 * rng.standard_normal((100, 4, 2))
    smoothed = smooth_track(syllables)
    assert np.abs(smoothed[10:-10]).max() > 0.075                     # 5 Hz keeps most of its amplitude
    still = smooth_track(jitter)
    assert still.std() < 0.75 * jitter.std()                          # frame jitter of a still face falls


def test_disentangle_without_pretrained_encoders_warns(trained, tmp_path, caplog, capsys, monkeypatch):
    _, cache, runs = trained
    with caplog.at_level("WARNING", logger="emoportrait.training.evp"):
        assert _train("disentangle", cache, tmp_path, ["--init", str(runs / "content")], epochs=1) == 0
    assert "starts its emotion encoder(s) from scratch" in caplog.text
    assert "disentangle: 1 epoch(s)" in capsys.readouterr().out
    monkeypatch.setenv("RANK", "1")                       # another torchrun process: it trains, says nothing
    assert _train("disentangle", cache, tmp_path / "other", [], epochs=1) == 0
    assert "epoch(s)" not in capsys.readouterr().out


EVP_M030 = Path(__file__).resolve().parents[2] / "shared" / "media" / "mead" / "evp_M030"


@pytest.mark.skipif(not EVP_M030.is_dir(), reason="EVP's released M030 features are not in ../shared/media")
def test_the_mixture_rule_reproduces_evps_released_mixture_features():
    import torch

    from emoportrait.drivers.learned import mixed_code
    from emoportrait.emotions import EMOTIONS, EmotionSpec

    centroids = torch.stack([torch.from_numpy(np.load(EVP_M030 / f"{emotion}.npy")) for emotion in EMOTIONS])
    # (file, what it holds): EVP's names are right for two files; the others hold surprised / neutral
    mixtures = {"angry2_surprised8": {"angry": 0.2, "surprised": 0.8}, "happy4_neutral6": {"happy": 0.4, "neutral": 0.6},
                "angry6_neutral4": {"angry": 0.6, "surprised": 0.4}, "happy6_sad4": {"happy": 0.6, "neutral": 0.4}}
    for name, weights in mixtures.items():
        expected = torch.from_numpy(np.load(EVP_M030 / f"{name}.npy"))
        spec = EmotionSpec({k: v for k, v in weights.items() if k != "neutral"})
        assert torch.allclose(mixed_code(centroids, spec), expected, atol=1e-4), name
