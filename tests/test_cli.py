"""The command line: each command end to end, and every bad input as one line + exit 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile

from emoportrait import media
from emoportrait.cli import main
from emoportrait.errors import InputError

RATE = 16000


def _speechlike(seconds: float, rate: int = RATE, seed: int = 0, stretch: float = 1.0) -> np.ndarray:
    """Vowel-like harmonic bursts separated by pauses; ``stretch`` slows it down."""
    rng = np.random.default_rng(seed)
    pieces = []
    for pitch in (140, 180, 120, 200, 160):
        n = int(0.25 * stretch * rate)
        t = np.arange(n) / rate
        tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 8)) * np.hanning(n)
        pieces += [0.3 * tone, 0.003 * rng.standard_normal(int(0.1 * rate))]
    audio = np.concatenate(pieces)
    return np.resize(audio, int(seconds * stretch * rate)).astype(np.float32)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("emoportrait: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


def test_info_lists_versions_and_models(capsys):
    code, out, _ = _run(capsys, "info")
    assert code == 0
    assert "mediapipe" in out and "face mesh" in out and "bundled" in out and "libx264): yes" in out


def test_track_video_writes_npz_and_overlay(tmp_path, capsys, rolling_video):
    out_npz, overlay = tmp_path / "t.npz", tmp_path / "overlay.mp4"
    code, out, _ = _run(capsys, "track", rolling_video, "-o", str(out_npz), "--overlay", str(overlay))
    assert code == 0, out
    assert "face found in 40 (100%)" in out and "roll" in out
    with np.load(out_npz) as data:
        assert data["landmarks"].shape == (40, 478, 3) and data["found"].all()
    assert media.probe(overlay).n_frames == 40


def test_track_image_with_image_overlay(tmp_path, capsys, portrait):
    image = tmp_path / "face.jpg"
    media.write_image(image, portrait)
    code, out, _ = _run(capsys, "track", str(image), "-o", str(tmp_path / "t.npz"),
                        "--overlay", str(tmp_path / "o.png"))
    assert code == 0 and "1 frame(s) 256x256" in out
    assert media.read_image(tmp_path / "o.png").shape == (256, 256, 3)


def test_track_config_file_and_unknown_setting(tmp_path, capsys, portrait):
    image = tmp_path / "face.png"
    media.write_image(image, portrait)
    (tmp_path / "ok.yaml").write_text("max_faces: 1\n")
    assert _run(capsys, "track", str(image), "-o", str(tmp_path / "t.npz"), "--config",
                str(tmp_path / "ok.yaml"))[0] == 0
    (tmp_path / "bad.yaml").write_text("max_facez: 1\n")
    code, _, err = _run(capsys, "track", str(image), "-o", str(tmp_path / "u.npz"), "--config",
                        str(tmp_path / "bad.yaml"))
    _assert_one_line_error(code, err, "unknown TrackerConfig setting(s) max_facez")


@pytest.mark.parametrize("setting,message", [
    ("max_faces: many", "setting max_faces must be int, not 'many'"),
    ("smooth: 1", "setting smooth must be bool, not 1"),
    ("max_faces: 2.5", "setting max_faces must be int, not 2.5"),
    ("[1, 2]", "must hold a mapping of settings"),
])
def test_track_config_of_the_wrong_type_is_a_one_line_error(tmp_path, capsys, setting, message):
    """``max_faces: many`` was an internal TypeError from inside MediaPipe."""
    (tmp_path / "bad.yaml").write_text(setting + "\n")
    media.write_image(tmp_path / "face.png", np.zeros((64, 64, 3), np.uint8))
    code, _, err = _run(capsys, "track", str(tmp_path / "face.png"), "-o", str(tmp_path / "u.npz"), "--config",
                        str(tmp_path / "bad.yaml"))
    _assert_one_line_error(code, err, message)


def test_a_negative_seed_is_a_one_line_error(tmp_path, capsys):
    """``--seed -1`` was an internal ValueError from numpy after the tracking."""
    code, _, err = _run(capsys, "generate", "--speech", str(tmp_path / "s.wav"), "--target", str(tmp_path / "t.png"),
                        "-o", str(tmp_path / "out.mp4"), "--seed", "-1")
    _assert_one_line_error(code, err, "seed -1 must be 0 or more")


@pytest.mark.parametrize("lr", [-1.0, 0.0, float("nan"), float("inf")])
def test_learning_rates_out_of_range_are_refused(lr):
    """``--lr -1`` or ``nan`` reached Adam: an internal error, or a run of nan losses."""
    from emoportrait.training.evp import StageConfig
    from emoportrait.training.renderer import RendererConfig

    for make in (lambda: StageConfig(stage="content", lr=lr), lambda: RendererConfig(lr=lr)):
        with pytest.raises(InputError, match="must be a finite number above 0"):
            make()


def test_align_audio_warps_onto_the_reference(tmp_path, capsys):
    reference, other = tmp_path / "neutral.wav", tmp_path / "sad.wav"
    soundfile.write(reference, _speechlike(2.0), RATE)
    soundfile.write(other, _speechlike(2.0, rate=48000, stretch=1.3), 48000)
    code, out, _ = _run(capsys, "align-audio", str(reference), str(other), "-o", str(tmp_path / "w.wav"))
    assert code == 0 and "DTW cost" in out
    warped, rate = soundfile.read(tmp_path / "w.wav")
    assert rate == RATE and len(warped) == 2 * RATE


@pytest.mark.parametrize("case", ["missing", "corrupt", "noface", "suffix", "overwrite"])
def test_track_bad_input(tmp_path, capsys, case):
    out = tmp_path / "t.npz"
    source = tmp_path / "in.mp4"
    expected = {"missing": "does not exist", "corrupt": "truncated or corrupt",
                "noface": "no face found", "suffix": "must end with .npz",
                "overwrite": "would overwrite an input"}[case]
    if case == "corrupt":
        source.write_bytes(b"\x00" * 1000)
    elif case in ("noface", "suffix", "overwrite"):
        noise = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), np.uint8)
        media.write_video(source, noise, 25.0)
    if case == "suffix":
        out = tmp_path / "t.txt"
    if case == "overwrite":
        out = tmp_path / "in.npz"
        source = source.rename(out.with_suffix(".npz"))
    code, _, err = _run(capsys, "track", str(source), "-o", str(out))
    _assert_one_line_error(code, err, expected)
    assert not out.exists() or case == "overwrite"
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("case", ["short", "silent", "noaudio", "image"])
def test_align_audio_bad_input(tmp_path, capsys, case):
    reference = tmp_path / "ref.wav"
    soundfile.write(reference, _speechlike(2.0), RATE)
    other = tmp_path / "other.wav"
    if case == "short":
        soundfile.write(other, _speechlike(0.1), RATE)
    elif case == "silent":
        soundfile.write(other, np.zeros(2 * RATE, np.float32), RATE)
    elif case == "noaudio":
        other = tmp_path / "other.mp4"
        media.write_video(other, [np.zeros((16, 16, 3), np.uint8)] * 5, 25.0)
    else:
        other = tmp_path / "other.png"
        media.write_image(other, np.zeros((16, 16, 3), np.uint8))
    expected = {"short": "is 0.10 s long", "silent": "is silent", "noaudio": "has no audio stream",
                "image": "is an image"}[case]
    code, _, err = _run(capsys, "align-audio", str(reference), str(other), "-o", str(tmp_path / "w.wav"))
    _assert_one_line_error(code, err, expected, other.name)
    assert not (tmp_path / "w.wav").exists()


def test_console_script_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "emoportrait.cli", "track", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "t.npz")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"emoportrait: error: '{tmp_path / 'none.mp4'}' does not exist"


def test_an_emotion_label_beside_a_reference_clip_is_refused(tmp_path, capsys):
    for extra in (("--emotion", "sad"), ("--intensity", "0.5")):
        code, _, err = _run(capsys, "generate", "--speech", "s.wav", "--target", "t.png", "-o",
                            str(tmp_path / "out.mp4"), "--driver", "learned", "--weights", "run",
                            "--emotion-audio", "ref.wav", *extra)
        _assert_one_line_error(code, err, "--emotion-audio gives the emotion")


def test_checkpoint_every_reaches_the_training_engine(tmp_path, capsys):
    code, _, err = _run(capsys, "train", "content", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                        "--checkpoint-every", "0")
    _assert_one_line_error(code, err, "checkpoint_every_steps must be positive")


def test_drivers_and_renderers_are_made_by_name_from_their_registries(tmp_path):
    from emoportrait.drivers import DRIVERS, make_driver
    from emoportrait.drivers.procedural import ProceduralDriver
    from emoportrait.render import RENDERERS, WarpRenderer, make_renderer

    assert list(DRIVERS) == ["procedural", "learned"] and list(RENDERERS) == ["warp", "neural"]
    assert isinstance(make_driver("procedural"), ProceduralDriver)
    assert isinstance(make_renderer("warp"), WarpRenderer)
    for call, message in ((lambda: make_driver("learned"), "needs an audio2lm run"),
                          (lambda: make_driver("procedural", tmp_path), "takes no weights"),
                          (lambda: make_driver("gan"), "unknown driver 'gan'; choose one of procedural, learned"),
                          (lambda: make_renderer("neural"), "needs a renderer run"),
                          (lambda: make_renderer("warp", tmp_path), "takes no weights"),
                          (lambda: make_renderer("nerf"), "unknown renderer 'nerf'; choose one of warp, neural")):
        with pytest.raises(InputError, match=message):
            call()
