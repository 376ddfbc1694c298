"""Training of the neural renderer on one subject's video (``emoportrait train renderer``).

The renderer learns self-reconstruction, as EVP's vid2vid stage does: frame ``t``
of the target video is drawn from its own edge map and the ``K`` frames before it.
Those are the real frames (teacher forcing) in some batches; in a share
(:attr:`RendererConfig.generated_history`) of them they are all the generator's
own renderings of frames ``t − K … t − 1`` (each drawn from the real frames before
it), as at inference, where every frame follows generated ones, so the network
learns to correct its own errors rather than copy them (the history low-pass of
:class:`~emoportrait.render.neural.Generator` is what stops them from growing;
see :mod:`.neural`).

Data (:func:`load_subject`): the video is decoded as a stream and each frame
resized to the trained size (height ``size``, width from the video's aspect, both
multiples of ``2 ** downsamplings``); one face is tracked through it
(:func:`~emoportrait.face.track_frames`), and each frame's edge map and face region
are drawn. The last 10 % of the frames (at least ``2K + 1``) are held out for
validation; a training item is a window of ``2K + 1`` consecutive frames with a
tracked face (``K`` to draw generated history frames from, ``K`` of history, the
frame). Memory: about 6 bytes per pixel per frame (frame, edge map, face region),
0.4 MB per frame at 256².

Losses (pix2pixHD / vid2vid, least-squares GAN as in both; weights in :class:`RendererConfig`):

- frame discriminator: a PatchGAN at full and half size on (edge map, frame) pairs;
- temporal discriminator: a PatchGAN on the ``K + 1`` last frames stacked as
  channels (real: the video's; fake: the history the generator saw + its frame);
- feature matching: L1 between the discriminators' intermediate features of the
  generated and the real frames (both discriminators);
- L1 reconstruction, with the face region counting ``1 + face_l1_boost``, and L1
  of the image gradients (horizontal and vertical differences).

EVP and pix2pixHD add a VGG perceptual loss; its ImageNet weights need a download
(torchvision/hub), which is not available offline, so it is left out: feature
matching on the discriminators and the gradient L1 stand in for it (both push
toward sharp detail that a plain L1 loss averages away).

The run (see :mod:`emoportrait.training.engine`) saves ``generator``,
``frame_discriminator`` and ``temporal_discriminator``; ``best`` is the epoch of
the lowest validation L1 (teacher-forced, intensities in [0, 1]); every epoch
writes ``OUT/samples/epoch_<n>.png``: rows of (edge map | generated | real) of
held-out frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from .. import media
from ..config import config_to_dict
from ..errors import InputError
from ..face import TrackerConfig, track_frames
from ..training import EngineConfig, FitResult, Monitor, Stage, StepContext, fit
from .edges import EDGE_CHANNELS, EdgeConfig, edge_map, edge_preview, face_region, resize
from .neural import (STAGE_NAME, Generator, GeneratorConfig, edges_to_tensor, face_redraw_error, frames_to_tensor,
                     instance_norm, tensor_to_frames)

__all__ = ["MIN_FRAMES", "MultiscaleDiscriminator", "RendererConfig", "RendererStage", "RendererWindows",
           "SubjectVideo", "load_subject", "sample_batch", "subject_config",
           "train_renderer", "window_length"]

MIN_FRAMES = 50
"""Frames a subject's video needs at least (2 s at 25 fps)."""

_SAMPLE_ROWS = 3  # held-out windows shown in each epoch's sample grid


@dataclass(frozen=True)
class RendererConfig:
    """Settings of a neural renderer run, saved as its ``config.yaml``.

    :class:`~emoportrait.render.neural.NeuralRenderer` reads ``stage``, ``size``,
    ``width``, ``generator`` and ``edges`` back; the rest is for training.
    """

    stage: str = STAGE_NAME                 # marks the run as a neural renderer run
    size: int = 256                         # trained frame height, pixels (a multiple of 2 ** downsamplings)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    edges: EdgeConfig = field(default_factory=EdgeConfig)
    discriminator_width: int = 64           # channels of a PatchGAN's first layer, doubled per layer up to 512
    discriminator_layers: int = 3           # stride-2 layers of a PatchGAN (70-pixel patches at 3, pix2pixHD)
    frame_scales: int = 2                   # frame discriminator: PatchGANs at full and half size
    temporal_scales: int = 1                # temporal discriminator: PatchGANs on the stacked K + 1 frames
    lr: float = 2e-4                        # Adam learning rate of both optimizers (pix2pixHD, vid2vid, EVP)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas of both optimizers
    l1_weight: float = 20.0                 # L1 reconstruction (the frame GAN loss has weight 1)
    face_l1_boost: float = 4.0              # a face-region pixel counts 1 + this in the L1 loss
    gradient_weight: float = 10.0           # L1 of the image gradients
    feature_matching_weight: float = 10.0   # discriminator feature matching (pix2pixHD's 10)
    temporal_weight: float = 1.0            # temporal GAN loss of the generator
    generated_history: float = 0.5          # share of batches whose K history frames are generated
    val_fraction: float = 0.1               # share of the frames (the last ones) held out for validation
    max_frames: int = 7500                  # frames of the video used at most (5 min at 25 fps)
    subject: str = ""                       # the subject's video (set by subject_config)
    subject_frames: int = 0                 # its frames used (set by subject_config)
    width: int = 0                          # trained frame width, pixels (set by subject_config)
    held_out_face_error: float = 0.0        # measured each epoch: mean face_redraw_error of the held-out frames

    def __post_init__(self) -> None:
        multiple = self.generator.multiple
        if self.size < multiple or self.size % multiple:
            raise InputError(f"renderer size {self.size} must be a positive multiple of {multiple} "
                             f"(2 ** downsamplings); try {max(multiple, round(self.size / multiple) * multiple)}")
        if not 0.0 <= self.generated_history <= 1.0 or not 0.0 < self.val_fraction < 1.0:
            raise InputError("renderer settings generated_history must be in [0, 1] and val_fraction in (0, 1)")

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        """Trained ``(W, H)`` for a ``width`` × ``height`` video: height ``size``, the aspect kept
        to the nearest multiple of ``2 ** downsamplings``."""
        multiple = self.generator.multiple
        return max(multiple, round(self.size * width / height / multiple) * multiple), self.size


# --- data -------------------------------------------------------------------------------------------


@dataclass
class SubjectVideo:
    """A subject's video prepared for training, all at the trained size (W, H).

    Attributes:
        path: the video file.
        frames: ``(T, H, W, 3)`` uint8 RGB.
        landmarks: ``(T, 478, 3)`` float32 tracked landmark pixels.
        edges: ``(T, H, W, 2)`` uint8 edge maps (:func:`~emoportrait.render.edges.edge_map`).
        regions: ``(T, H, W)`` uint8 face regions (255 inside).
        usable: ``(T,)`` bool, the face was tracked (or interpolated) in the frame.
    """

    path: Path
    frames: np.ndarray
    landmarks: np.ndarray
    edges: np.ndarray
    regions: np.ndarray
    usable: np.ndarray

    def held_out(self, history: int, val_fraction: float) -> int:
        """The first held-out frame: the last ``val_fraction`` of the frames, at least one window."""
        return len(self.frames) - max(math.ceil(val_fraction * len(self.frames)), window_length(history))

    def split(self, history: int, val_fraction: float) -> tuple[RendererWindows, RendererWindows]:
        """Training and validation windows, the latter of the :meth:`held_out` frames; windows
        with an untracked frame are skipped.

        Raises:
            InputError: either part has no window (too few frames with a tracked face).
        """
        start, length = self.held_out(history, val_fraction), window_length(history)
        ends = [t for t in range(length - 1, len(self.frames)) if self.usable[t - length + 1:t + 1].all()]
        train = [t for t in ends if t < start]
        val = [t for t in ends if t - length + 1 >= start]
        if not train or not val:
            raise InputError(f"'{self.path}' has too few consecutive frames with a tracked face to train on "
                             f"({len(train)} training and {len(val)} held-out windows of {length}); "
                             "give a video where the face stays in view")
        return RendererWindows(self, train, history), RendererWindows(self, val, history)


def window_length(history: int) -> int:
    """Frames of a training window: ``K`` to draw generated history from, ``K`` of history, the frame."""
    return 2 * history + 1


class RendererWindows(Dataset):
    """Windows of ``2K + 1`` consecutive frames of a :class:`SubjectVideo`, one per end frame.

    An item is a dict: ``frames`` ``(2K + 1, 3, H, W)`` in [-1, 1] and ``edges``
    ``(2K + 1, 2, H, W)`` in [0, 1] (oldest first; the last is the frame to draw),
    and ``region`` ``(1, H, W)`` in [0, 1], the face region of the last frame.
    """

    def __init__(self, video: SubjectVideo, ends: list[int], history: int) -> None:
        self.video, self.ends, self.history = video, ends, history

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        end = self.ends[index]
        span = slice(end - window_length(self.history) + 1, end + 1)
        return {"frames": frames_to_tensor(self.video.frames[span]), "edges": edges_to_tensor(self.video.edges[span]),
                "region": torch.from_numpy(self.video.regions[end]).float().div(255.0)[None]}


def load_subject(path: str | Path, config: RendererConfig, progress: bool = False) -> SubjectVideo:
    """Decode, resize and track the subject's video and draw its edge maps (see the module docs).

    Raises:
        InputError: unreadable, or fewer than :data:`MIN_FRAMES` frames.
        NoFaceError: no face in any frame.
    """
    path = Path(path)
    info = media.probe(path)
    size = config.frame_size(info.width, info.height)
    frames = np.stack([resize(frame, size) for frame in islice(media.iter_frames(path), config.max_frames)])
    if len(frames) < MIN_FRAMES:
        raise InputError(f"'{path}' has {len(frames)} frames; the renderer needs at least {MIN_FRAMES} (2 s) "
                         "of the subject")
    track = track_frames(frames, info.fps, TrackerConfig(), name=str(path), total=len(frames), progress=progress)
    edges = np.stack([edge_map(points, frame, size, config.edges) for points, frame in zip(track.landmarks, frames)])
    regions = np.stack([face_region([points], size, config.edges) for points in track.landmarks])
    return SubjectVideo(path, frames, track.landmarks, edges, regions, track.found | track.interpolated)


# --- discriminators and losses ----------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """pix2pixHD's PatchGAN: ``(B, C, H, W)`` → the outputs of its layers, the last a
    ``(B, 1, h, w)`` map of realness scores (one per overlapping patch)."""

    def __init__(self, in_channels: int, width: int, layers: int) -> None:
        super().__init__()
        channels = [in_channels] + [min(width * 2**i, 512) for i in range(layers + 1)]
        blocks = [nn.Sequential(nn.Conv2d(channels[0], channels[1], 4, 2, 2), nn.LeakyReLU(0.2, True))]
        blocks += [nn.Sequential(nn.Conv2d(channels[i], channels[i + 1], 4, 2 if i < layers else 1, 2),
                                 instance_norm(channels[i + 1], affine=False), nn.LeakyReLU(0.2, True))
                   for i in range(1, layers + 1)]
        blocks.append(nn.Conv2d(channels[-1], 1, 4, 1, 2))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """PatchGANs on the input at full size, half size, ... (``scales`` of them):
    ``(B, C, H, W)`` → per scale, the list of :class:`PatchDiscriminator` outputs."""

    def __init__(self, in_channels: int, width: int, layers: int, scales: int) -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, width, layers) for _ in range(scales))

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        outputs = []
        for index, discriminator in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs


Outputs = list[list[Tensor]]


def _halves(outputs: Outputs) -> tuple[Outputs, Outputs]:
    """Outputs of a discriminator run on ``cat([real, fake])`` → those of ``real`` and of ``fake``."""
    pairs = [[layer.chunk(2) for layer in scale] for scale in outputs]
    return [[real for real, _ in scale] for scale in pairs], [[fake for _, fake in scale] for scale in pairs]


def _least_squares(outputs: Outputs, real: bool) -> Tensor:
    """LSGAN loss: mean squared distance of each scale's score map from 1 (real) or 0 (fake), over scales."""
    return torch.stack([F.mse_loss(scale[-1].float(), torch.full_like(scale[-1].float(), float(real)))
                        for scale in outputs]).mean()


def _feature_matching(fake: Outputs, real: Outputs) -> Tensor:
    """Mean L1 between the intermediate features of fake and (fixed) real inputs, over layers and scales."""
    return torch.stack([F.l1_loss(f.float(), r.detach().float())
                        for fake_scale, real_scale in zip(fake, real)
                        for f, r in zip(fake_scale[:-1], real_scale[:-1])]).mean()


def _gradient_l1(fake: Tensor, real: Tensor) -> Tensor:
    """L1 between the horizontal and vertical pixel differences of ``(B, 3, H, W)`` frames."""
    def differences(x: Tensor) -> tuple[Tensor, Tensor]:
        return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]

    return sum(F.l1_loss(f, r) for f, r in zip(differences(fake.float()), differences(real.float()))) / 2


def _weighted_l1(fake: Tensor, real: Tensor, weights: Tensor) -> Tensor:
    """Mean ``|fake − real|`` of ``(B, 3, H, W)`` frames, pixels weighted by ``(B, 1, H, W)`` ``weights``."""
    error = (fake.float() - real.float()).abs().mean(dim=1, keepdim=True)
    return (weights * error).sum() / weights.sum()


# --- the stage --------------------------------------------------------------------------------------


class RendererStage(Stage):
    """The neural renderer's GAN training (see the module docs).

    Args:
        config: the run's settings, filled in by :func:`subject_config`.
        samples: a batch of held-out windows (:class:`RendererWindows` items, stacked)
            drawn into each epoch's sample grid.
    """

    name = STAGE_NAME
    monitor = Monitor("val_l1")

    def __init__(self, config: RendererConfig, samples: dict[str, Tensor]) -> None:
        if not config.width:
            raise ValueError("RendererStage needs the subject's settings: pass subject_config(config, video)")
        self.settings = config
        self.samples = samples
        self._held_out_face_error = 0.0
        history, width, layers = config.generator.history, config.discriminator_width, config.discriminator_layers
        self.generator = Generator(config.generator)
        self.frame_discriminator = MultiscaleDiscriminator(EDGE_CHANNELS + 3, width, layers, config.frame_scales)
        self.temporal_discriminator = MultiscaleDiscriminator(3 * (history + 1), width, layers,
                                                              config.temporal_scales)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "frame_discriminator": self.frame_discriminator,
                "temporal_discriminator": self.temporal_discriminator}

    def configure_optimizers(self):
        config = self.settings
        discriminators = [*self.frame_discriminator.parameters(), *self.temporal_discriminator.parameters()]
        return {"generator": torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=config.betas),
                "discriminator": torch.optim.Adam(discriminators, lr=config.lr, betas=config.betas)}, {}

    def _real_history(self, batch: dict[str, Tensor]) -> Tensor:
        """``(B, K, 3, H, W)``: the real frames before the last of each window."""
        return batch["frames"][:, -self.settings.generator.history - 1:-1]

    def _history(self, batch: dict[str, Tensor]) -> Tensor:
        """``(B, K, 3, H, W)``: the real history, or in a ``generated_history`` share of the batches
        the generator's renderings of those frames, each from the ``K`` real frames before it
        (one batched call)."""
        if torch.rand(()) >= self.settings.generated_history:
            return self._real_history(batch)
        frames, history = batch["frames"], self.settings.generator.history
        sources = torch.stack([frames[:, i:i + history] for i in range(history)], dim=1)  # (B, K, K, 3, H, W)
        with torch.no_grad():
            generated = self.generator(batch["edges"][:, history:-1].flatten(0, 1), sources.flatten(0, 1))
        return generated.unflatten(0, (len(frames), history)).to(frames.dtype)

    @staticmethod
    def _inputs(batch: dict[str, Tensor], history: Tensor, frame: Tensor) -> tuple[Tensor, Tensor]:
        """The discriminators' inputs for ``frame`` ``(B, 3, H, W)`` after ``history`` ``(B, K, 3, H, W)``:
        ``(B, 2 + 3, H, W)`` (edge map, frame) pairs and ``(B, 3 (K + 1), H, W)`` stacked sequences."""
        return torch.cat([batch["edges"][:, -1], frame], 1), torch.cat([history, frame[:, None]], 1).flatten(1, 2)

    def training_step(self, batch: dict[str, Tensor], context: StepContext) -> dict[str, float]:
        """One discriminator step on real and generated frames (concatenated: one call per
        discriminator and backward, as DDP wants), then one generator step. The feature-matching
        targets are the real frames' features from the discriminator step."""
        config, real = self.settings, batch["frames"][:, -1]
        with context.autocast():
            history = self._history(batch)
            fake = context.forward("generator", batch["edges"][:, -1], history)
            real_pair, real_sequence = self._inputs(batch, self._real_history(batch), real)
            fake_pair, fake_sequence = self._inputs(batch, history, fake.detach())
            frame_real, frame_fake = _halves(context.forward("frame_discriminator", torch.cat([real_pair, fake_pair])))
            time_real, time_fake = _halves(context.forward("temporal_discriminator",
                                                           torch.cat([real_sequence, fake_sequence])))
            d_frame = (_least_squares(frame_real, True) + _least_squares(frame_fake, False)) / 2
            d_temporal = (_least_squares(time_real, True) + _least_squares(time_fake, False)) / 2
        context.backward(d_frame + d_temporal, "discriminator")
        with context.autocast():
            fake_pair, fake_sequence = self._inputs(batch, history, fake)
            frame_fake = context.forward("frame_discriminator", fake_pair)
            time_fake = context.forward("temporal_discriminator", fake_sequence)
            g_frame, g_temporal = _least_squares(frame_fake, True), _least_squares(time_fake, True)
            matching = _feature_matching(frame_fake, frame_real) + _feature_matching(time_fake, time_real)
            l1 = _weighted_l1(fake, real, 1.0 + config.face_l1_boost * batch["region"])
            gradient = _gradient_l1(fake, real)
            loss = (g_frame + config.temporal_weight * g_temporal + config.feature_matching_weight * matching
                    + config.l1_weight * l1 + config.gradient_weight * gradient)
        context.backward(loss, "generator")
        return {"loss": loss.item(), "d_frame": d_frame.item(), "d_temporal": d_temporal.item(),
                "g_frame": g_frame.item(), "g_temporal": g_temporal.item(), "feature_matching": matching.item(),
                "l1": (fake.detach().float() - real).abs().mean().item() / 2, "gradient": gradient.item()}

    def validation_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """Teacher-forced L1 of the whole frame and of the face region, and the face region's
        :func:`~emoportrait.render.neural.face_redraw_error`; intensities in [0, 1]."""
        edges, real = batch["edges"][:, -1], batch["frames"][:, -1]
        fake = self.generator(edges, self._real_history(batch))
        return {"l1": (fake - real).abs().mean().item() / 2,
                "face_l1": _weighted_l1(fake, real, batch["region"]).item() / 2,
                "redraw_face_l1": face_redraw_error(self.generator, edges, real, batch["region"]).mean().item()}

    def config(self) -> RendererConfig:
        """The settings, with the last epoch's held-out redraw error (the subject check's yardstick)."""
        return replace(self.settings, held_out_face_error=self._held_out_face_error)

    def resume_settings(self) -> dict[str, Any]:
        """The settings without the measured error: a run resumes whatever its last epoch measured."""
        return config_to_dict(self.settings)

    @torch.no_grad()
    def on_epoch_end(self, epoch: int, metrics: dict[str, Any], out: Path) -> None:
        """Note the held-out redraw error for :meth:`config` and write ``out/samples/epoch_<epoch>.png``:
        rows of (edge map | generated | real)."""
        self._held_out_face_error = float(metrics["val_redraw_face_l1"])
        device = next(self.generator.parameters()).device
        edges, frames = self.samples["edges"][:, -1], self.samples["frames"]
        fake = self.generator(edges.to(device), self._real_history(self.samples).to(device))
        previews = [edge_preview(e) for e in edges.mul(255).round().to(torch.uint8).movedim(1, -1).numpy()]
        rows = [np.concatenate([preview, generated, real], axis=1)
                for preview, generated, real in zip(previews, tensor_to_frames(fake), tensor_to_frames(frames[:, -1]))]
        media.write_image(out / "samples" / f"epoch_{epoch}.png", np.concatenate(rows, axis=0))


def subject_config(config: RendererConfig, video: SubjectVideo) -> RendererConfig:
    """``config`` with the subject's video, its frame count and the trained width filled in."""
    return replace(config, subject=str(video.path), subject_frames=len(video.frames), width=video.frames.shape[2])


def sample_batch(windows: RendererWindows, count: int = _SAMPLE_ROWS) -> dict[str, Tensor]:
    """``count`` windows spread over ``windows`` (first to last), stacked into one batch."""
    picks = np.unique(np.linspace(0, len(windows) - 1, count).round().astype(int))
    items = [windows[int(i)] for i in picks]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def train_renderer(target: str | Path, out: str | Path, config: RendererConfig, engine: EngineConfig,
                   progress: bool = False) -> FitResult:
    """Train a neural renderer on the subject's video ``target`` into run folder ``out``
    (``emoportrait train renderer``); a run there of the same settings and video is resumed.
    ``progress`` shows the tracking progress bar (the engine shows the training's).

    Raises:
        InputError: the video is unreadable or too short, or a bad setting.
        NoFaceError: no face in the video.
    """
    video = load_subject(target, config, progress)
    config = subject_config(config, video)
    train, val = video.split(config.generator.history, config.val_fraction)
    torch.manual_seed(engine.seed)
    return fit(RendererStage(config, sample_batch(val)), train, val, out, engine)
