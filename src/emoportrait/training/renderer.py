"""Training of the neural renderer on one subject's video (``emoportrait train renderer``).

The renderer learns self-reconstruction, as EVP's vid2vid stage does: frames of
the target video are drawn from their own edge maps and the ``K`` frames before
them, and from a reference frame: a training window's is a frame of the training
part drawn at random (the held-out windows' is the first held-out frame, as a video's
first frame is at inference), so the network learns to take the face's appearance
from any frame of the subject and its shape from the edge map. A training window is ``K`` real frames followed by ``U``
(:attr:`RendererConfig.unroll`, 3: more than ``K`` = 2) frames that the generator draws in
a row, exactly as a video is drawn at inference
(:meth:`~emoportrait.render.neural.Generator.draw_in_a_row`): each after the ones
it drew before, composited over the real frame outside the face as
:class:`~emoportrait.render.neural.NeuralRenderer` composites them, so that from
the ``K + 1``-th frame on its history holds only its own faces. The losses of all
``U`` frames backpropagate through the whole row (truncated backpropagation through
time), so the network learns to draw frames that stay good as the history of the
next ones, rather than copy its own errors forward (vid2vid's recurrent training;
the history low-pass of :class:`~emoportrait.render.neural.Generator` helps too,
see :mod:`emoportrait.render.neural`).

Data (:func:`load_subject`): the video is decoded as a stream and each frame
resized to the trained size (height ``size``, width from the video's aspect, both
multiples of ``2 ** downsamplings``); one face is tracked through it
(:func:`~emoportrait.face.track_frames`), and each frame's edge map and face region
are drawn. The last 10 % of the frames (at least ``K + U``) are held out for
validation; a training item is a window of ``K + U`` consecutive frames with a
tracked face (``K`` of real history, ``U`` to draw). Memory: about 7 bytes per
pixel per frame (frame, edge map, face region, composite mask), 0.5 MB per frame at
256².

Losses (pix2pixHD / vid2vid, least-squares GAN as in both; weights in :class:`RendererConfig`):

- frame discriminator: a PatchGAN at full and half size on (edge map, frame) pairs;
- temporal discriminator: a PatchGAN on ``K + 1`` consecutive frames stacked as
  channels (real: the video's; fake: the composited row ending at each drawn frame,
  the last one all drawn by the generator);
- feature matching: L1 between the discriminators' intermediate features of the
  generated and the real frames (both discriminators);
- L1 reconstruction, with the face region counting ``1 + face_l1_boost``, and L1
  of the image gradients (horizontal and vertical differences).

EVP and pix2pixHD add a VGG perceptual loss; its ImageNet weights need a download
(torchvision/hub), which is not available offline, so it is left out: feature
matching on the discriminators and the gradient L1 stand in for it (both push
toward sharp detail that a plain L1 loss averages away).

The run (see :mod:`.engine`) saves ``generator``,
``frame_discriminator`` and ``temporal_discriminator``; ``best`` is the epoch of
the lowest validation L1 (of held-out windows drawn as in training, intensities in
[0, 1]); every epoch writes ``OUT/samples/epoch_<n>.png``: rows of (edge map |
generated | real) of held-out frames, and draws the held-out frames as one video
(up to :data:`DRIFT_CHECK_FRAMES`, seeded with the first as at inference): the
face-region PSNR of its first and its last :data:`DRIFT_SPAN` frames go into the
epoch's log row (``video_psnr_first``, ``video_psnr_last``), so a renderer that
drifts over a video says so.
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
from ..config import check_learning_rate, config_to_dict
from ..errors import InputError
from ..face import TrackerConfig, track_frames
from ..media import resize
from ..render.edges import EDGE_CHANNELS, EdgeConfig, edge_map, edge_preview, face_region
from ..render.neural import (STAGE_NAME, Generator, GeneratorConfig, composite_mask, edges_to_tensor,
                             face_redraw_error, frames_to_tensor, instance_norm, tensor_to_frames)
from .engine import EngineConfig, FitResult, Monitor, Stage, StepContext, fit

__all__ = ["DRIFT_CHECK_FRAMES", "DRIFT_SPAN", "DRIFT_TOLERANCE_DB", "MIN_FRAMES", "MultiscaleDiscriminator",
           "RendererConfig", "RendererStage", "RendererWindows", "SubjectVideo", "held_out_video", "load_subject",
           "region_psnr", "sample_batch", "subject_config", "train_renderer", "video_drift", "window_length"]

MIN_FRAMES = 50
"""Frames a subject's video needs at least (2 s at 25 fps)."""

DRIFT_CHECK_FRAMES = 50
"""Held-out frames (2 s at 25 fps) drawn as one video after each epoch, at most."""

DRIFT_SPAN = 10
"""Frames at the start and at the end of that video whose face PSNR is compared."""

DRIFT_TOLERANCE_DB = 1.0
"""The face PSNR of the last frames may be this much below the first frames' before a run is said to drift."""

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
    unroll: int = 3                         # U: frames drawn in a row per window after K real ones (1: none
                                            # drawn after another, teacher forcing)
    val_fraction: float = 0.1               # share of the frames (the last ones) held out for validation
    max_frames: int = 7500                  # frames of the video used at most (5 min at 25 fps)
    subject: str = ""                       # the subject's video (set by subject_config)
    subject_frames: int = 0                 # its frames used (set by subject_config)
    width: int = 0                          # trained frame width, pixels (set by subject_config)
    held_out_face_error: float = 0.0        # measured each epoch: mean face_redraw_error of the held-out frames

    def __post_init__(self) -> None:
        check_learning_rate(self.lr, "renderer")
        multiple = self.generator.multiple
        if self.size < multiple or self.size % multiple:
            raise InputError(f"renderer size {self.size} must be a positive multiple of {multiple} "
                             f"(2 ** downsamplings); try {max(multiple, round(self.size / multiple) * multiple)}")
        if self.unroll < 1 or not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"renderer settings unroll must be at least 1 (got {self.unroll}) and val_fraction "
                             f"in (0, 1) (got {self.val_fraction})")

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
        masks: ``(T, H, W)`` uint8 composite masks
            (:func:`~emoportrait.render.neural.composite_mask`, 255 for 1).
        usable: ``(T,)`` bool, the face was tracked (or interpolated) in the frame.
    """

    path: Path
    frames: np.ndarray
    landmarks: np.ndarray
    edges: np.ndarray
    regions: np.ndarray
    masks: np.ndarray
    usable: np.ndarray

    def held_out(self, config: RendererConfig) -> int:
        """The first held-out frame: the last ``val_fraction`` of the frames, at least one window."""
        return len(self.frames) - max(math.ceil(config.val_fraction * len(self.frames)), window_length(config))

    def split(self, config: RendererConfig) -> tuple[RendererWindows, RendererWindows]:
        """Training and validation windows, the latter of the :meth:`held_out` frames; windows
        with an untracked frame are skipped.

        Raises:
            InputError: either part has no window (too few frames with a tracked face).
        """
        start, length = self.held_out(config), window_length(config)
        ends = [t for t in range(length - 1, len(self.frames)) if self.usable[t - length + 1:t + 1].all()]
        train = [t for t in ends if t < start]
        val = [t for t in ends if t - length + 1 >= start]
        if not train or not val:
            raise InputError(f"'{self.path}' has too few consecutive frames with a tracked face to train on "
                             f"({len(train)} training and {len(val)} held-out windows of {length}); "
                             "give a video where the face stays in view")
        history, unroll = config.generator.history, config.unroll
        references = np.flatnonzero(self.usable[:start])
        first_held_out = start + int(np.argmax(self.usable[start:]))
        return (RendererWindows(self, train, history, unroll, references),
                RendererWindows(self, val, history, unroll, np.array([first_held_out])))


def window_length(config: RendererConfig) -> int:
    """Frames of a training window: ``K`` of real history, then ``U`` to draw."""
    return config.generator.history + config.unroll


class RendererWindows(Dataset):
    """Windows of ``K + U`` consecutive frames of a :class:`SubjectVideo`, one per end frame.

    An item is a dict (oldest frame first): ``frames`` ``(K + U, 3, H, W)`` in [-1, 1]
    and ``edges`` ``(K + U, 2, H, W)`` in [0, 1] of the whole window, ``region``
    and ``mask`` ``(U, 1, H, W)`` in [0, 1], the face regions and composite masks of
    the ``U`` frames to draw, and ``reference`` ``(3, H, W)`` in [-1, 1]: one of the
    ``references`` frames, drawn at random (torch's generator) when there are several.
    """

    def __init__(self, video: SubjectVideo, ends: list[int], history: int, unroll: int,
                 references: np.ndarray) -> None:
        self.video, self.ends, self.history, self.unroll = video, ends, history, unroll
        self.references = references

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        end = self.ends[index]
        span, drawn = slice(end - self.history - self.unroll + 1, end + 1), slice(end - self.unroll + 1, end + 1)
        reference = self.references[int(torch.randint(len(self.references), ()))]
        return {"frames": frames_to_tensor(self.video.frames[span]), "edges": edges_to_tensor(self.video.edges[span]),
                "region": _unit(self.video.regions[drawn]), "mask": _unit(self.video.masks[drawn]),
                "reference": frames_to_tensor(self.video.frames[reference])}


def _unit(masks: np.ndarray) -> Tensor:
    """``(..., H, W)`` uint8 masks (255 for 1) → ``(..., 1, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(masks)).float().div(255.0).unsqueeze(-3)


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
    masks = np.stack([np.round(255 * composite_mask([points], size, config.edges)).astype(np.uint8)
                      for points in track.landmarks])
    return SubjectVideo(path, frames, track.landmarks, edges, regions, masks, track.found | track.interpolated)


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
        held_out: the held-out frames drawn as one video after each epoch (the drift
            check): a dict of ``frames`` ``(T, 3, H, W)`` in [-1, 1], ``edges``
            ``(T, 2, H, W)``, ``region`` and ``mask`` ``(T, 1, H, W)`` in [0, 1]
            (:func:`held_out_video`); None: no drift check.
    """

    name = STAGE_NAME
    monitor = Monitor("val_l1")

    def __init__(self, config: RendererConfig, samples: dict[str, Tensor],
                 held_out: dict[str, Tensor] | None = None) -> None:
        if not config.width:
            raise ValueError("RendererStage needs the subject's settings: pass subject_config(config, video)")
        self.settings = config
        self.samples = samples
        self.held_out = held_out
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

    def _split(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """A batch's ``(B, K, 3, H, W)`` real history, ``(B, U, 3, H, W)`` frames to draw and their
        ``(B, U, 2, H, W)`` edge maps."""
        history = self.settings.generator.history
        return batch["frames"][:, :history], batch["frames"][:, history:], batch["edges"][:, history:]

    def _inputs(self, edges: Tensor, drawn: Tensor, row: Tensor) -> tuple[Tensor, Tensor]:
        """The discriminators' inputs for ``U`` drawn frames ``(B, U, 3, H, W)`` with their edge maps
        ``(B, U, 2, H, W)``, in the row ``(B, K + U, 3, H, W)`` they end: ``(B U, 2 + 3, H, W)``
        (edge map, frame) pairs and ``(B U, 3 (K + 1), H, W)`` the ``K + 1`` frames of the row
        ending at each."""
        history = self.settings.generator.history
        sequences = torch.stack([row[:, step:step + history + 1] for step in range(drawn.shape[1])], dim=1)
        return torch.cat([edges, drawn], 2).flatten(0, 1), sequences.flatten(0, 1).flatten(1, 2)

    def training_step(self, batch: dict[str, Tensor], context: StepContext) -> dict[str, float]:
        """Draw the window's ``U`` frames in a row (one generator call), then one discriminator step
        on real and drawn frames (concatenated: one call per discriminator and backward, as DDP
        wants), then one generator step on all ``U`` frames. The feature-matching targets are the
        real frames' features from the discriminator step."""
        config = self.settings
        seeds, real, edges = self._split(batch)
        region = 1.0 + config.face_l1_boost * batch["region"].flatten(0, 1)
        with context.autocast():
            fake, composited = context.call("generator", "draw_in_a_row", edges, real, batch["mask"], seeds,
                                            batch["reference"])
            row = torch.cat([seeds, composited], 1)
            real_pair, real_sequence = self._inputs(edges, real, batch["frames"])
            fake_pair, fake_sequence = self._inputs(edges, fake.detach(), row.detach())
            frame_real, frame_fake = _halves(context.forward("frame_discriminator", torch.cat([real_pair, fake_pair])))
            time_real, time_fake = _halves(context.forward("temporal_discriminator",
                                                           torch.cat([real_sequence, fake_sequence])))
            d_frame = (_least_squares(frame_real, True) + _least_squares(frame_fake, False)) / 2
            d_temporal = (_least_squares(time_real, True) + _least_squares(time_fake, False)) / 2
        context.backward(d_frame + d_temporal, "discriminator")
        with context.autocast():
            fake_pair, fake_sequence = self._inputs(edges, fake, row)
            frame_fake = context.forward("frame_discriminator", fake_pair)
            time_fake = context.forward("temporal_discriminator", fake_sequence)
            g_frame, g_temporal = _least_squares(frame_fake, True), _least_squares(time_fake, True)
            matching = _feature_matching(frame_fake, frame_real) + _feature_matching(time_fake, time_real)
            flat_fake, flat_real = fake.flatten(0, 1), real.flatten(0, 1)
            l1 = _weighted_l1(flat_fake, flat_real, region)
            gradient = _gradient_l1(flat_fake, flat_real)
            loss = (g_frame + config.temporal_weight * g_temporal + config.feature_matching_weight * matching
                    + config.l1_weight * l1 + config.gradient_weight * gradient)
        context.backward(loss, "generator")
        return {"loss": loss.item(), "d_frame": d_frame.item(), "d_temporal": d_temporal.item(),
                "g_frame": g_frame.item(), "g_temporal": g_temporal.item(), "feature_matching": matching.item(),
                "l1": (fake.detach().float() - real).abs().mean().item() / 2, "gradient": gradient.item()}

    def validation_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """L1 of the whole frame and of the face region of held-out windows drawn in a row as in
        training, and the face region's :func:`~emoportrait.render.neural.face_redraw_error` of
        their last frames; intensities in [0, 1]."""
        seeds, real, edges = self._split(batch)
        fake, _ = self.generator.draw_in_a_row(edges, real, batch["mask"], seeds, batch["reference"])
        regions = batch["region"].flatten(0, 1)
        return {"l1": (fake - real).abs().mean().item() / 2,
                "face_l1": _weighted_l1(fake.flatten(0, 1), real.flatten(0, 1), regions).item() / 2,
                "redraw_face_l1": face_redraw_error(self.generator, edges[:, -1], real[:, -1],
                                                    batch["region"][:, -1]).mean().item()}

    def config(self) -> RendererConfig:
        """The settings, with the last epoch's held-out redraw error (the subject check's yardstick)."""
        return replace(self.settings, held_out_face_error=self._held_out_face_error)

    def resume_settings(self) -> dict[str, Any]:
        """The settings without the measured error: a run resumes whatever its last epoch measured."""
        return config_to_dict(self.settings)

    @torch.no_grad()
    def on_epoch_end(self, epoch: int, metrics: dict[str, Any], out: Path) -> None:
        """Note the held-out redraw error for :meth:`config`, add the drift check's
        ``video_psnr_first`` and ``video_psnr_last`` to the epoch's row, and write
        ``out/samples/epoch_<epoch>.png``: rows of (edge map | generated | real)."""
        self._held_out_face_error = float(metrics["val_redraw_face_l1"])
        device = next(self.generator.parameters()).device
        if self.held_out is not None:
            metrics.update(video_drift(self.generator, {key: value.to(device) for key, value in self.held_out.items()}))
        seeds, real, edges = (part.to(device) for part in self._split(self.samples))
        fake, _ = self.generator.draw_in_a_row(edges, real, self.samples["mask"].to(device), seeds,
                                               self.samples["reference"].to(device))
        last_edges = self.samples["edges"][:, -1]
        previews = [edge_preview(e) for e in last_edges.mul(255).round().to(torch.uint8).movedim(1, -1).numpy()]
        rows = [np.concatenate([preview, generated, frame], axis=1)
                for preview, generated, frame in zip(previews, tensor_to_frames(fake[:, -1]),
                                                     tensor_to_frames(real[:, -1]))]
        media.write_image(out / "samples" / f"epoch_{epoch}.png", np.concatenate(rows, axis=0))


def region_psnr(fake: Tensor, real: Tensor, region: Tensor) -> float:
    """PSNR in dB (intensities in [0, 1]) of ``(T, 3, H, W)`` frames in [-1, 1] over the pixels where
    ``(T, 1, H, W)`` ``region`` is above one half."""
    inside = (region > 0.5).expand_as(real)
    error = ((fake.float() - real.float()) / 2)[inside].square().mean().clamp_min(1e-10)
    return float(-10.0 * torch.log10(error))


def held_out_video(video: SubjectVideo, config: RendererConfig) -> dict[str, Tensor] | None:
    """The first :data:`DRIFT_CHECK_FRAMES` held-out frames of ``video`` for the drift check of
    :class:`RendererStage` (keys as there), up to the first untracked one; None when they are
    fewer than ``2 ×`` :data:`DRIFT_SPAN`."""
    start = video.held_out(config)
    stop = min(len(video.frames), start + DRIFT_CHECK_FRAMES)
    lost = np.flatnonzero(~video.usable[start:stop])
    stop = start + lost[0] if len(lost) else stop
    if stop - start < 2 * DRIFT_SPAN:
        return None
    span = slice(start, stop)
    return {"frames": frames_to_tensor(video.frames[span]), "edges": edges_to_tensor(video.edges[span]),
            "region": _unit(video.regions[span]), "mask": _unit(video.masks[span])}


def video_drift(generator: Generator, clip: dict[str, Tensor]) -> dict[str, float]:
    """Draw ``clip`` (:func:`held_out_video`) as one video, seeded with its first frame as
    :class:`~emoportrait.render.neural.NeuralRenderer` seeds a video (history and reference), and return the face-region
    :func:`region_psnr` of its first and its last :data:`DRIFT_SPAN` frames (composited, against
    the real frames): ``video_psnr_first`` and ``video_psnr_last``."""
    frames = clip["frames"]
    seeds = frames[:1, None].expand(-1, generator.config.history, -1, -1, -1)
    _, drawn = generator.draw_in_a_row(clip["edges"][None], frames[None], clip["mask"][None], seeds, frames[:1])
    first, last = slice(0, DRIFT_SPAN), slice(-DRIFT_SPAN, None)
    return {"video_psnr_first": region_psnr(drawn[0, first], frames[first], clip["region"][first]),
            "video_psnr_last": region_psnr(drawn[0, last], frames[last], clip["region"][last])}


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
    train, val = video.split(config)
    torch.manual_seed(engine.seed)
    return fit(RendererStage(config, sample_batch(val), held_out_video(video, config)), train, val, out, engine)
