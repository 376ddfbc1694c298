"""The neural renderer: edge maps, the networks, a CPU smoke training, inference and its errors."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from emoportrait import media
from emoportrait.errors import InputError
from emoportrait.face import GROUPS, track_frames
from emoportrait.render.edges import BACKGROUND_CHANNEL, FACE_CHANNEL, edge_map, face_region
from emoportrait.render.neural import Generator, GeneratorConfig, NeuralRenderer, renderer_checkpoint
from emoportrait.runs import read_run_config
from emoportrait.training import EngineConfig
from emoportrait.training.renderer import MultiscaleDiscriminator, RendererConfig, train_renderer

FPS = 25.0
SIDE = 96  # pixels of the test video; the renderer trains at 64 and renders back at 96
TINY = RendererConfig(size=64, generator=GeneratorConfig(base_width=8, max_width=32, downsamplings=2,
                                                         residual_blocks=1),
                      discriminator_width=8, discriminator_layers=2, val_fraction=0.35)  # 21 held-out frames


def swaying_astronaut(count: int) -> np.ndarray:
    """``(count, 96, 96, 3)`` uint8: the astronaut's head and shoulders swaying and shifting."""
    crop = cv2.resize(skimage.data.astronaut()[0:320, 60:380], (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(count):
        matrix = cv2.getRotationMatrix2D((48.0, 40.0), 5.0 * math.sin(i / 6), 1.0)
        matrix[:, 2] += (2.0 * math.sin(i / 9), 0.0)
        frames.append(cv2.warpAffine(crop, matrix, (SIDE, SIDE), borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return swaying_astronaut(60)


@pytest.fixture(scope="module")
def landmarks(frames) -> np.ndarray:
    """``(60, 478, 3)`` tracked landmark pixels of :func:`frames`."""
    return track_frames(frames, FPS).landmarks


@pytest.fixture(scope="module")
def subject_video(tmp_path_factory, frames) -> Path:
    path = tmp_path_factory.mktemp("subject") / "subject.mp4"
    media.write_video(path, frames, FPS)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, subject_video) -> Path:
    """A renderer run of 2 epochs × 6 steps at 64² on the CPU."""
    out = tmp_path_factory.mktemp("run") / "renderer"
    engine = EngineConfig(epochs=2, batch_size=2, device="cpu", max_steps_per_epoch=6, log_every=1)
    train_renderer(subject_video, out, TINY, engine)
    return out


def test_edge_map_draws_the_face_parts_and_the_background_around_them(frames, landmarks):
    edges = edge_map(landmarks[0], frames[0], (SIDE, SIDE))
    assert edges.shape == (SIDE, SIDE, 2) and edges.dtype == np.uint8
    lips = np.round(landmarks[0, GROUPS["outer_lips"], :2]).astype(int)
    assert np.mean(edges[lips[:, 1], lips[:, 0], FACE_CHANNEL] > 0) > 0.9
    inside = face_region([landmarks[0]], (SIDE, SIDE)) > 0
    assert not edges[inside, BACKGROUND_CHANNEL].any()
    assert edges[~inside, BACKGROUND_CHANNEL].any()
    assert not edges[~inside, FACE_CHANNEL].any()


def test_edge_map_scales_landmarks_to_the_requested_size(frames, landmarks):
    edges = edge_map(landmarks[0], frames[0], (48, 40))
    assert edges.shape == (40, 48, 2)
    lips = np.round(landmarks[0, GROUPS["inner_lips"], :2] * [48 / SIDE, 40 / SIDE]).astype(int)
    assert np.mean(edges[lips[:, 1], lips[:, 0], FACE_CHANNEL] > 0) > 0.9


def test_generator_and_discriminators_shapes():
    config = GeneratorConfig(history=3, base_width=8, max_width=16, downsamplings=2, residual_blocks=1)
    reference = torch.rand(2, 3, 32, 48) * 2 - 1
    output = Generator(config)(torch.rand(2, 2, 32, 48), torch.rand(2, 3, 3, 32, 48) * 2 - 1, reference)
    assert output.shape == (2, 3, 32, 48) and output.abs().max() <= 1
    with pytest.raises(ValueError, match="reference"):
        Generator(config)(torch.rand(2, 2, 32, 48), torch.rand(2, 3, 3, 32, 48))
    unanchored = Generator(replace(config, reference=False))(torch.rand(2, 2, 32, 48), torch.rand(2, 3, 3, 32, 48))
    assert unanchored.shape == (2, 3, 32, 48)
    scales = MultiscaleDiscriminator(5, 8, 2, scales=2)(torch.rand(2, 5, 32, 48))
    assert len(scales) == 2 and all(layers[-1].shape[:2] == (2, 1) for layers in scales)


def test_a_row_is_drawn_as_a_video_is_with_gradients_through_it():
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(history=2, base_width=4, max_width=8, downsamplings=1, residual_blocks=1))
    edges, frames = torch.rand(1, 3, 2, 8, 8), torch.rand(1, 3, 3, 8, 8) * 2 - 1
    masks = torch.zeros(1, 3, 1, 8, 8)
    masks[..., 2:6, 2:6] = 1.0
    seeds = (torch.rand(1, 2, 3, 8, 8) * 2 - 1).requires_grad_()
    reference = torch.rand(1, 3, 8, 8) * 2 - 1
    drawn, composited = generator.draw_in_a_row(edges, frames, masks, seeds, reference)
    history = [seeds[:, 0], seeds[:, 1]]
    for step in range(3):  # as NeuralRenderer.render: each frame after the two composited ones before it
        expected = generator(edges[:, step], torch.stack(history[-2:], dim=1), reference)
        assert torch.allclose(drawn[:, step], expected, atol=1e-6)
        history.append(frames[:, step] + masks[:, step] * (expected - frames[:, step]))
        assert torch.allclose(composited[:, step], history[-1], atol=1e-6)
    assert torch.equal(composited[..., 0, 0], frames[..., 0, 0])  # outside the mask: the real frame
    drawn[:, 2].sum().backward()  # the third frame saw only drawn frames, and through them the seeds
    assert seeds.grad.abs().sum() > 0


def test_training_windows_hold_the_history_and_the_frames_to_draw(subject_video):
    from emoportrait.training.renderer import load_subject, subject_config, window_length

    config = TINY
    video = load_subject(subject_video, config)
    train, val = video.split(subject_config(config, video))
    item = train[0]
    assert window_length(config) == 5 and item["frames"].shape == (5, 3, 64, 64)
    assert item["edges"].shape == (5, 2, 64, 64) and item["region"].shape == item["mask"].shape == (3, 1, 64, 64)
    assert 0.0 < item["mask"].mean() < item["region"].mean() <= 1.0  # the mask ramps up inside the region
    start = video.held_out(config)
    assert set(train.references) <= set(range(start)) and list(val.references) == [start]
    assert item["reference"].shape == (3, 64, 64)
    assert torch.equal(val[0]["reference"], val[len(val) - 1]["reference"])  # a held-out video's first frame
    assert min(val.ends) - 4 >= video.held_out(config) > max(train.ends)
    with pytest.raises(InputError, match="unroll must be at least 1"):
        RendererConfig(unroll=0)


def test_smoke_training_writes_a_run_whose_l1_falls(trained, subject_video):
    with (trained / "log.csv").open(newline="") as handle:
        epochs = list(csv.DictReader(handle))
    assert len(epochs) == 2
    losses = [float(value) for row in epochs for key, value in row.items() if key.startswith(("train_", "val_"))]
    assert all(math.isfinite(value) for value in losses)
    assert float(epochs[1]["train_l1"]) < float(epochs[0]["train_l1"])
    for row in epochs:  # the held-out frames drawn as one video, its first and last 10 frames compared
        assert 5.0 < float(row["video_psnr_first"]) < 60.0 and 5.0 < float(row["video_psnr_last"]) < 60.0
    for folder in ("last", "best"):
        assert {"generator", "frame_discriminator", "temporal_discriminator"} <= {
            p.stem for p in (trained / folder).glob("*.safetensors")}
    settings = read_run_config(trained / "last")
    assert (settings["subject"], settings["subject_frames"]) == (str(subject_video), 60)
    assert settings["held_out_face_error"] == pytest.approx(float(epochs[1]["val_redraw_face_l1"]))
    assert (settings["size"], settings["width"], settings["generator"]["history"]) == (64, 64, 2)
    sample = media.read_image(trained / "samples" / "epoch_2.png")
    assert sample.shape[1:] == (3 * 64, 3) and sample.shape[0] in (64, 128, 192)  # 1 to 3 held-out rows


@pytest.mark.parametrize("composite", [True, False])
def test_renderer_renders_at_the_frame_size(trained, frames, landmarks, composite):
    renderer = NeuralRenderer(trained, composite_face_only=composite)
    output = renderer.render(frames[0], landmarks[0], landmarks[5])
    assert output.shape == frames[0].shape and output.dtype == np.uint8
    outside = face_region([landmarks[5], landmarks[0]], (SIDE, SIDE)) == 0
    assert np.array_equal(output[outside], frames[0][outside]) == composite


def test_renderer_keeps_the_previous_outputs(trained, frames, landmarks):
    renderer = NeuralRenderer(trained)
    first = renderer.render_batch(frames[:2], landmarks[:2], landmarks[:2])
    assert len(first) == 2
    fresh = NeuralRenderer(trained)
    alone = fresh.render(frames[1], landmarks[1], landmarks[1])
    assert not np.array_equal(alone, first[1])  # the second frame saw the first output, not itself
    renderer.reset()
    assert np.array_equal(renderer.render(frames[1], landmarks[1], landmarks[1]), alone)


def test_wrong_weights_are_input_errors(tmp_path, trained):
    with pytest.raises(InputError, match="does not exist"):
        NeuralRenderer(tmp_path / "missing")
    with pytest.raises(InputError, match="is not a neural renderer run; train one with: emoportrait train renderer"):
        NeuralRenderer(tmp_path)
    other = tmp_path / "other" / "best"
    other.mkdir(parents=True)
    (other / "config.yaml").write_text("stage: audio2lm\n")
    with pytest.raises(InputError, match="is not a neural renderer run"):
        NeuralRenderer(tmp_path / "other")
    assert renderer_checkpoint(trained) == trained / "best"


@pytest.mark.parametrize("damage,message", [
    (lambda text: "\n".join(line for line in text.splitlines() if not line.startswith("width:")), "lacks 'width'"),
    (lambda text: text.replace("history: 2", "history: two"), "GeneratorConfig setting history must be int"),
    (lambda text: text.replace("generator:", "generator:\n  bogus: 1"), "unknown GeneratorConfig setting(s) bogus"),
])
def test_a_damaged_run_config_is_an_input_error(tmp_path, trained, damage, message):
    """A missing key was an internal KeyError, a wrong type a TypeError deep in the network."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained / "best", copy / "best")
    config = copy / "best" / "config.yaml"
    config.write_text(damage(config.read_text()))
    with pytest.raises(InputError, match=re.escape(message)):
        NeuralRenderer(copy)


def small(frames: np.ndarray, size: tuple[int, int] = (64, 64)) -> list[np.ndarray]:
    return [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames]


def test_start_measures_how_well_the_run_redraws_the_target(trained, frames, landmarks):
    renderer = NeuralRenderer(trained)
    targets, points = small(frames[:10]), landmarks[:10] * [64 / SIDE, 64 / SIDE, 1.0]
    found = np.ones(10, bool)
    error = renderer.redraw_error(targets, points, found)
    assert 0.0 < error < 0.5
    renderer.start(targets, points, found)  # its own subject: accepted
    renderer.held_out_face_error = error / 3  # as if it redrew its own subject three times as well
    with pytest.raises(InputError, match=r"does not know this face .*train one for this target: "
                                         r"emoportrait train renderer --target VIDEO --size 64 --out RUN"):
        renderer.start(targets, points, found)


def test_start_refuses_frames_of_another_size(trained, frames, landmarks):
    renderer, found = NeuralRenderer(trained), np.ones(3, bool)
    with pytest.raises(InputError, match="trained on frames 64 px high, not 96: generate with --size 64"):
        renderer.start(list(frames[:3]), landmarks[:3], found)
    with pytest.raises(InputError, match="trained on 64x64 frames, but the target's are 128x64"):
        renderer.start(small(frames[:3], (128, 64)), landmarks[:3] * [128 / SIDE, 64 / SIDE, 1.0], found)


def test_too_short_a_video_is_an_input_error(tmp_path):
    path = tmp_path / "short.mp4"
    media.write_video(path, swaying_astronaut(30), FPS)
    with pytest.raises(InputError, match="has 30 frames; the renderer needs at least 50"):
        train_renderer(path, tmp_path / "run", TINY, EngineConfig(epochs=1, batch_size=2, device="cpu"))


def test_generate_with_the_neural_renderer(trained, tmp_path, close_portrait, capsys):
    import soundfile

    from emoportrait.cli import main

    from .test_generate import RATE, speechlike

    speech = tmp_path / "speech.wav"
    soundfile.write(speech, speechlike(1.2, active=((0.1, 1.0),)), RATE)
    portrait = tmp_path / "portrait.png"
    media.write_image(portrait, close_portrait)
    out = tmp_path / "neural.mp4"
    assert main(["generate", "--speech", str(speech), "--target", str(portrait), "--renderer", "neural",
                 "--renderer-weights", str(trained), "-o", str(out)]) == 0
    info = media.probe(out)
    assert (info.n_frames, info.height) == (30, 64)  # the trained height by default
    other = tmp_path / "other.mp4"
    assert main(["generate", "--speech", str(speech), "--target", str(portrait), "--renderer", "neural",
                 "--renderer-weights", str(trained), "--size", "128", "-o", str(other)]) == 2
    assert "trained on frames 64 px high, not 128: generate with --size 64" in capsys.readouterr().err
    assert not other.exists()


def test_the_web_page_offers_a_given_renderer_run(trained, tmp_path, close_portrait):
    import soundfile

    from emoportrait.ui import PROCEDURAL, Runs, emotion_spec, make_video

    from .test_generate import RATE, speechlike

    speech = tmp_path / "speech.wav"
    soundfile.write(speech, speechlike(1.2, active=((0.1, 1.0),)), RATE)
    portrait = tmp_path / "portrait.png"
    media.write_image(portrait, close_portrait)
    runs = Runs.named(renderers=[trained])
    video, summary = make_video(portrait, speech, emotion_spec("happy", 0.5), tmp_path, runs, PROCEDURAL, trained.name)
    assert media.probe(video).height == 64 and "happy 0.50" in summary  # drawn at the run's trained height


def test_train_renderer_command_rejects_a_short_video(tmp_path, capsys):
    from emoportrait.cli import main

    video = tmp_path / "short.mp4"
    media.write_video(video, swaying_astronaut(20), 25.0)
    assert main(["train", "renderer", "--target", str(video), "--out", str(tmp_path / "run"), "--size", "64"]) == 2
    assert "needs at least 50" in capsys.readouterr().err


def test_train_renderer_command_says_when_the_held_out_video_drifts(tmp_path, capsys, monkeypatch):
    from emoportrait.cli import main
    from emoportrait.training import FitResult
    from emoportrait.training import renderer as renderer_training

    scores = {"video_psnr_first": 24.0, "video_psnr_last": 21.5}
    monkeypatch.setattr(renderer_training, "train_renderer", lambda *args, **kwargs: FitResult(
        tmp_path / "last", None, 1, None, [{"epoch": 1, **scores}]))
    assert main(["train", "renderer", "--target", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "face PSNR 24.0 dB over the first 10 frames, 21.5 dB over the last 10; it drifts" in printed
    scores["video_psnr_last"] = 23.5
    assert main(["train", "renderer", "--target", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "run")]) == 0
    assert "21.5" not in (printed := capsys.readouterr().out) and "drifts" not in printed
