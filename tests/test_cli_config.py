"""``--config FILE.yaml`` of generate, prepare, train and analyze: the file sets the command's
configs, flags given override it, and an unknown or mistyped key is a one-line error."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile

from emoportrait import media
from emoportrait.cli import main

from .test_cli import _assert_one_line_error, _run, _speechlike


class Called:
    """Stands in for a command's work and keeps what it was called with."""

    def __init__(self, result=None) -> None:
        self.result = result
        self.args: tuple = ()
        self.kwargs: dict = {}

    def __call__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        return self.result


def _yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def generate(monkeypatch) -> Called:
    """The pipeline's generate, replaced: it keeps what the command called it with."""
    from emoportrait import pipeline

    class Summary:
        emotion = ""

        def describe(self) -> str:
            return "made"

    called = Called(Summary())
    monkeypatch.setattr(pipeline, "generate", called)
    return called


def test_generate_takes_its_sections_from_the_file_and_flags_override_them(tmp_path, capsys, generate):
    config = _yaml(tmp_path, "emotion: {name: sad, intensity: 0.5}\n"
                             "generate: {size: 256, seed: 3, keep_expression: true, idle_motion_deg: 0.5}\n"
                             "renderer: {name: warp}\n")
    code, out, err = _run(capsys, "generate", "--speech", "s.wav", "--target", "t.png", "-o", str(tmp_path / "o.mp4"),
                          "--config", config, "--seed", "7")
    assert code == 0 and out.strip() == "made", err
    speech, emotion, target, output = generate.args
    settings = generate.kwargs["config"]
    assert emotion.weights == {"sad": 0.5}
    assert (settings.size, settings.seed, settings.keep_expression, settings.idle_motion_deg) == (256, 7, True, 0.5)
    assert type(generate.kwargs["renderer"]).__name__ == "WarpRenderer"


def test_generate_writes_the_size_the_file_asks_for(tmp_path, capsys, close_portrait):
    soundfile.write(tmp_path / "s.wav", _speechlike(1.0), 16000)
    media.write_image(tmp_path / "p.png", close_portrait)
    config = _yaml(tmp_path, "generate:\n  size: 128\n")
    code, _, err = _run(capsys, "generate", "--speech", str(tmp_path / "s.wav"), "--target", str(tmp_path / "p.png"),
                        "-o", str(tmp_path / "o.mp4"), "--config", config)
    assert code == 0, err
    assert media.probe(tmp_path / "o.mp4").height == 128


def test_a_learned_driver_from_the_file_needs_its_weights(tmp_path, capsys):
    config = _yaml(tmp_path, "driver: {name: learned}\n")
    code, _, err = _run(capsys, "generate", "--speech", "s.wav", "--target", "t.png", "-o", str(tmp_path / "o.mp4"),
                        "--config", config)
    _assert_one_line_error(code, err, "--driver learned needs --weights RUN")


@pytest.mark.parametrize("text, fragments", [
    ("generate: {sizes: 256}\n", ["settings.yaml", "generate: unknown GenerateConfig setting(s) sizes",
                                  "valid settings are", "keep_expression", "seed, size"]),
    ("drivr: {name: learned}\n", ["unknown section(s) drivr", "valid sections are emotion, generate, driver, "
                                                              "renderer"]),
    ("generate: {seed: many}\n", ["generate: GenerateConfig setting seed must be int, not 'many'"]),
    ("generate: {seed: -1}\n", ["settings.yaml': generate: seed -1 must be 0 or more"]),
    ("generate: 3\n", ["section generate must be a mapping of settings"]),
    ("- size\n", ["must hold a mapping of settings"]),
])
def test_bad_generate_settings_are_one_line_errors(tmp_path, capsys, text, fragments):
    config = _yaml(tmp_path, text)
    code, _, err = _run(capsys, "generate", "--speech", "s.wav", "--target", "t.png", "-o", str(tmp_path / "o.mp4"),
                        "--config", config)
    _assert_one_line_error(code, err, *fragments)


def test_prepare_takes_prepare_config_from_the_file(tmp_path, capsys, monkeypatch):
    from emoportrait.evp import prepare as preparing

    prepare = Called(SimpleNamespace(describe=lambda: "prepared", failures={}, n_clips=1))
    monkeypatch.setattr(preparing, "prepare", prepare)
    config = _yaml(tmp_path, "n_components: 8\nfps: 30\n")
    assert main(["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "cache"), "--config", config]) == 0
    settings = prepare.args[2]
    assert (settings.n_components, settings.fps, settings.split_seed) == (8, 30.0, 0)
    code, _, err = _run(capsys, "prepare", str(tmp_path / "data"), "--out", str(tmp_path / "cache"), "--config",
                        _yaml(tmp_path, "n_component: 8\n"))
    _assert_one_line_error(code, err, "unknown PrepareConfig setting(s) n_component", "n_components")


def test_train_stage_takes_engine_and_stage_sections(tmp_path, capsys, monkeypatch):
    from emoportrait.training import FitResult
    from emoportrait.training import evp

    train_stage = Called(FitResult(tmp_path / "last", None, 1, None, []))
    monkeypatch.setattr(evp, "train_stage", train_stage)
    config = _yaml(tmp_path, "engine: {epochs: 3, batch_size: 8, max_steps_per_epoch: 5}\n"
                             "stage: {lr: 1.0e-3, margin: 0.5}\n")
    assert main(["train", "content", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--config", config,
                 "--epochs", "2"]) == 0
    stage, data, out, engine, settings, init = train_stage.args
    assert (engine.epochs, engine.batch_size, engine.max_steps_per_epoch, engine.num_workers) == (2, 8, 5, 0)
    assert (settings["lr"], settings["margin"], settings["subject"]) == (1e-3, 0.5, "")
    code, _, err = _run(capsys, "train", "content", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                        "--config", _yaml(tmp_path, "stage: {stage: emotion}\n"))
    _assert_one_line_error(code, err, "its stage settings are for emotion, not content")
    code, _, err = _run(capsys, "train", "content", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                        "--config", _yaml(tmp_path, "engine: {epoch: 3}\n"))
    _assert_one_line_error(code, err, "engine: unknown EngineConfig setting(s) epoch", "epochs")


def test_train_fer_takes_train_config_from_the_file(tmp_path, monkeypatch):
    from emoportrait.training import recognizers

    train = Called(tmp_path / "best")
    monkeypatch.setattr(recognizers, "train_recognizer", train)
    config = _yaml(tmp_path, "epochs: 4\nbatch: 16\nbackbone: resnet18.safetensors\n")
    assert main(["train", "fer", "--model", "dan", "--dataset", "rafdb", str(tmp_path), "--out",
                 str(tmp_path / "run"), "--config", config, "--batch", "32"]) == 0
    settings = train.args[4]
    assert (settings.epochs, settings.batch, settings.backbone) == (4, 32, "resnet18.safetensors")


def test_analyze_takes_its_options_from_the_file(tmp_path, capsys, monkeypatch):
    from emoportrait.analysis import analyze as analysing

    outcome = SimpleNamespace(sources="", notes=[], dataset_metrics={}, results=[], summaries=[],
                              report=tmp_path / "report", failed=[])
    recognizers, analyze = Called([]), Called(outcome)
    monkeypatch.setattr(analysing, "recognizers", recognizers)
    monkeypatch.setattr(analysing, "analyze", analyze)
    config = _yaml(tmp_path, "fer: [runs/dan, runs/fan]\ndefault_fer: false\nprotocol: vote\n")
    assert main(["analyze", "videos", "--config", config, "--protocol", "last3"]) == 0
    assert recognizers.args == ([Path("runs/dan"), Path("runs/fan")],)
    assert recognizers.kwargs == {"default_fer": False}
    assert analyze.kwargs["protocol"] == "last3"
    code, _, err = _run(capsys, "analyze", "videos", "--config", _yaml(tmp_path, "protocol: median\n"))
    _assert_one_line_error(code, err, "protocol 'median' is not one of mean, vote, last3")
    code, _, err = _run(capsys, "analyze", "videos", "--config", _yaml(tmp_path, "fer: runs/dan\n"))
    _assert_one_line_error(code, err, "AnalyzeOptions setting fer must be a list, not 'runs/dan'")


def test_a_missing_config_file_is_a_one_line_error(tmp_path, capsys):
    code, _, err = _run(capsys, "analyze", "videos", "--config", str(tmp_path / "none.yaml"))
    _assert_one_line_error(code, err, "none.yaml' does not exist")


def test_the_file_tunes_the_training_free_driver_and_renderer(tmp_path, capsys, generate):
    config = _yaml(tmp_path, "procedural: {opening_gap: 0.4, prototypes: {happy: {AU12: 2.0}}}\n"
                             "action_units: {au12_corner: [0.12, -0.15, 0.0]}\n"
                             "warp: {creases: {depth: 0.5}, mouth: {teeth_height: 0.08}}\n")
    code, out, err = _run(capsys, "generate", "--speech", "s.wav", "--target", "t.png", "-o", str(tmp_path / "o.mp4"),
                          "--config", config)
    assert code == 0 and out.strip() == "made", err
    driver, renderer = generate.kwargs["driver"], generate.kwargs["renderer"]
    assert driver.config.opening_gap == 0.4 and driver.config.prototypes["happy"]["AU12"] == 2.0
    assert driver.config.prototypes["happy"]["AU6"] == 1.0               # the rest of the prototype stays
    assert driver.action_units.au12_corner == (0.12, -0.15, 0.0)
    assert renderer.config.creases.depth == 0.5 and renderer.config.mouth.teeth_height == 0.08


def test_tuning_a_stage_that_is_not_used_is_an_error(tmp_path, capsys):
    config = _yaml(tmp_path, "warp: {creases: {depth: 0.5}}\nrenderer: {name: neural, weights: run}\n")
    code, _, err = _run(capsys, "generate", "--speech", "s.wav", "--target", "t.png", "-o", str(tmp_path / "o.mp4"),
                        "--config", config)
    _assert_one_line_error(code, err, "warp section(s) tune the warp one, not 'neural'")
