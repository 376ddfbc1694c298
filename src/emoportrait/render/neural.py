"""Neural renderer: EVP's per-subject edge-to-face network (vid2vid style) and its inference.

The :class:`Generator` draws a frame from the frame's edge map
(:func:`~emoportrait.render.edges.edge_map`), the ``K`` frames generated before
it (vid2vid's temporal conditioning) and a *reference*: one real frame of the target,
fixed for the whole video (few-shot vid2vid's appearance anchor). Their channels are
concatenated into one input, ``(B, 2 + 3K + 3, H, W)``, and a U-Net-style encoder-decoder (reflect-padded
convolutions, instance norm, residual blocks at the bottleneck, additive skips)
returns the RGB frame in [-1, 1] (tanh). It is trained on one subject's video by
:mod:`emoportrait.training.renderer` (``emoportrait train renderer``).

The history enters low-passed (averaged over blocks of ``history_pool`` pixels, 4
by default, and scaled back): it carries the colours and shading of the previous
frames, while detail finer than that comes from the edge map alone. Without it, a
network trained briefly fed its own high-frequency artefacts back through the
history and they grew from frame to frame: 16 held-out frames rendered in a row
lost 0.7-0.85 dB PSNR per frame; with it, the composited face region lost nothing
beyond what re-seeding every frame from the target frame gives, and the full frame
0.35 dB per frame after 600 training steps, 0.15 dB after 1300 (128², CPU, on a
video that ``generate`` made). Trained in rows (:meth:`Generator.draw_in_a_row`,
see :mod:`emoportrait.training.renderer`) on a real talking clip, 10 CPU minutes, a 2 s held-out
video still lost 1.1-1.3 dB of face PSNR from its first to its last 10 frames, with dark
smudges growing over the eyes: colour and shading had nothing to hold on to but the
frames drawn before. The reference holds them: a real frame the network never drew;
training gives it a random frame of the subject's video, so the network learns to take
the appearance from it and the shape from the edge map. With it the same video loses
0.97 dB (0.32 dB trained 20 minutes) and keeps one skin tone (``benchmarks/neural_renderer.py``, README).

:class:`NeuralRenderer` implements the :class:`~emoportrait.types.Renderer`
protocol with a trained run. Per call it

1. resizes the frame to the trained size (W, H) and scales both landmark sets to it;
2. draws the edge map: the *target* landmarks' contours plus the frame's edges
   outside the face region of both the target and the source face;
3. runs the generator on it, the previous ``K`` outputs and the reference (state
   kept between calls; the first call seeds all ``K`` and the reference with the
   frame itself);
4. resizes the output back to the frame's size and, with ``composite_face_only``
   (the default, see below), keeps the frame itself outside the face region: output
   = mask · generated + (1 − mask) · frame, the mask being the face region of both
   faces (:func:`~emoportrait.render.edges.face_region`), ramping linearly from 0 at
   its edge to 1 over :data:`COMPOSITE_FEATHER` face sizes inside it.

The composite keeps the background, hair and torso at the frame's full resolution
and exactly as in the target video; only the face is drawn by the network. It is
the default because it scored better than the full generated frame in
``benchmarks/neural_renderer.py`` (PSNR and SSIM on held-out frames; see there).

Before a video, :meth:`NeuralRenderer.start` checks the target: its frames must
have the trained height (``generate`` renders at it by default) and aspect, and
the run must redraw its face (:func:`face_redraw_error`) about as well as the
held-out frames of its own subject, the error measured at the end of each
training epoch and saved with the weights (``held_out_face_error``). A run
trained on one person draws that person's features into anyone else's face, so
another person's face comes out with a larger error and is refused
(:data:`SUBJECT_TOLERANCE`). The check sharpens with training: after 20 s of CPU
training only Grace Hopper stood out (2.85 times the held-out error, the mirrored
astronaut 1.5), after 5 min she stood at 6.2 and the mirrored astronaut at 4.0.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..config import config_from_dict
from ..errors import InputError
from ..face.landmarks import face_size
from ..runs import checkpoint_dir, load_weights, read_run_config
from ..media import resize
from .edges import EDGE_CHANNELS, EdgeConfig, edge_map, face_region, scale_landmarks

__all__ = ["COMPOSITE_FEATHER", "STAGE_NAME", "SUBJECT_CHECK_FRAMES", "SUBJECT_TOLERANCE", "TRAIN_HINT", "Generator",
           "GeneratorConfig", "NeuralRenderer", "composite", "composite_mask", "edges_to_tensor",
           "face_redraw_error", "frames_to_tensor", "instance_norm", "renderer_checkpoint", "tensor_to_frames"]

STAGE_NAME = "renderer"
"""Name of the training stage (and of the runs) of the neural renderer."""

TRAIN_HINT = "emoportrait train renderer --target VIDEO --out RUN"
"""The command that makes a neural renderer run, for error messages."""

COMPOSITE_FEATHER = 0.06
"""Width of the composite mask's ramp inside the face region's edge, fraction of the face size."""

SUBJECT_CHECK_FRAMES = 8
"""Target frames (spread over the video) whose redraw error the subject check measures."""

SUBJECT_TOLERANCE = 2.0
"""The subject check fails where the target's redraw error exceeds this times the held-out error.

Measured (``benchmarks/neural_renderer.py``, a run trained 5 min at 128² on the
talking astronaut): another video of her 0.98-1.02 times the held-out error; her
face deformed and recoloured (the synthetic data set's M003) 1.4-1.5; the same,
mirrored (W002) 3.7-4.0; her portrait framed wider 3.3-3.6; Grace Hopper 5.6-6.2.
"""


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of the :class:`Generator` (saved with a renderer run)."""

    history: int = 2            # K: previous frames the generator sees (vid2vid's temporal conditioning)
    base_width: int = 32        # channels at full resolution, doubled at each downsampling
    max_width: int = 256        # cap on the channels
    downsamplings: int = 4      # stride-2 stages; frame sides must be multiples of 2 ** downsamplings
    residual_blocks: int = 4    # residual blocks at the bottleneck
    history_pool: int = 4       # history frames are averaged over blocks of this many pixels (1: as they are)
    reference: bool = True      # a fixed real frame of the target is an input too (the appearance anchor)

    def __post_init__(self) -> None:
        for name in ("history", "base_width", "max_width", "downsamplings", "residual_blocks", "history_pool"):
            if getattr(self, name) < 1:
                raise InputError(f"renderer setting {name} must be at least 1, got {getattr(self, name)}")

    @property
    def multiple(self) -> int:
        """Frame sides must be multiples of this (pixels)."""
        return 2 ** self.downsamplings


def instance_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    """Instance norm as a GroupNorm of one channel per group: the same maths, several times faster
    than ``nn.InstanceNorm2d`` on the CPU (measured with torch 2.13)."""
    return nn.GroupNorm(channels, channels, affine=affine)


def _conv(in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Reflect-padded convolution → instance norm → ReLU (``stride`` 2 halves the sides)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False, padding_mode="reflect"),
        instance_norm(out_channels), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    """``x + norm(conv(relu(norm(conv(x)))))`` at constant width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels),
                                  nn.Conv2d(channels, channels, 3, 1, 1, bias=False, padding_mode="reflect"),
                                  instance_norm(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """Edge map + ``K`` previous frames → frame; see the module docs.

    Input sides must be multiples of ``config.multiple``. About 6.7 M parameters with
    the defaults (base width 32, 4 downsamplings, 4 residual blocks at 1/16 size); the
    renderer draws 256² frames with it at 11-12 fps on 2 idle CPU cores (6.5 on one).
    """

    def __init__(self, config: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.config = config
        widths = [min(config.base_width * 2**level, config.max_width) for level in range(config.downsamplings + 1)]
        self.stem = _conv(EDGE_CHANNELS + 3 * config.history + 3 * config.reference, widths[0], kernel=7)
        self.down = nn.ModuleList(_conv(widths[i], widths[i + 1], stride=2) for i in range(config.downsamplings))
        self.middle = nn.Sequential(*(_Residual(widths[-1]) for _ in range(config.residual_blocks)))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(widths[i + 1], widths[i]))
            for i in reversed(range(config.downsamplings)))
        self.head = nn.Sequential(nn.Conv2d(widths[0], 3, 7, 1, 3, padding_mode="reflect"), nn.Tanh())

    def _low_pass(self, history: Tensor) -> Tensor:
        """``(B, 3K, H, W)`` history averaged over ``history_pool``-pixel blocks and scaled back
        (bilinear): details finer than that come from the edge map alone (see the module docs)."""
        pool = self.config.history_pool
        if pool == 1:
            return history
        return F.interpolate(F.avg_pool2d(history, pool), size=history.shape[-2:], mode="bilinear",
                             align_corners=False)

    def forward(self, edges: Tensor, history: Tensor, reference: Tensor | None = None) -> Tensor:
        """``edges`` ``(B, 2, H, W)`` in [0, 1], ``history`` ``(B, K, 3, H, W)`` in [-1, 1]
        (oldest first) and, with ``config.reference``, ``reference`` ``(B, 3, H, W)`` in [-1, 1]
        → ``(B, 3, H, W)`` RGB in [-1, 1]."""
        inputs = [edges, self._low_pass(history.flatten(1, 2))]
        if self.config.reference:
            if reference is None:
                raise ValueError("this generator draws from a reference frame: pass reference (B, 3, H, W)")
            inputs.append(reference)
        x = self.stem(torch.cat(inputs, dim=1))
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, skip in zip(self.up, reversed(skips)):
            x = up(x) + skip
        return self.head(x)

    def draw_in_a_row(self, edges: Tensor, frames: Tensor, masks: Tensor, seeds: Tensor,
                      reference: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``U`` consecutive frames as :class:`NeuralRenderer` draws a video: each from its edge
        map and the ``K`` frames before it, those being the composited outputs once there are any.

        One call, so that DDP sees one forward pass for the whole row (training unrolls it).

        Args:
            edges: ``(B, U, 2, H, W)`` edge maps in [0, 1] of the frames to draw.
            frames: ``(B, U, 3, H, W)`` the frames themselves in [-1, 1]: their pixels are kept
                where ``masks`` is 0.
            masks: ``(B, U, 1, H, W)`` in [0, 1], the :func:`composite_mask` of each frame.
            seeds: ``(B, K, 3, H, W)`` in [-1, 1], the history of the first frame (oldest first).
            reference: ``(B, 3, H, W)`` in [-1, 1], the reference of the whole row (with
                ``config.reference``).

        Returns:
            ``(B, U, 3, H, W)`` the outputs and ``(B, U, 3, H, W)`` the outputs composited over
            ``frames`` (the history the later frames saw), in [-1, 1]. Gradients flow through the
            whole row, from each frame into the ones drawn after it.
        """
        history, outputs, composited = list(seeds.unbind(1)), [], []
        for step in range(edges.shape[1]):
            output = self(edges[:, step], torch.stack(history[-self.config.history:], dim=1), reference)
            outputs.append(output)
            composited.append(frames[:, step] + masks[:, step] * (output - frames[:, step]))
            history.append(composited[-1])
        return torch.stack(outputs, dim=1), torch.stack(composited, dim=1)


def frames_to_tensor(frames: np.ndarray) -> Tensor:
    """``(..., H, W, 3)`` uint8 RGB → ``(..., 3, H, W)`` float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float().div(127.5).sub(1.0)


def edges_to_tensor(edges: np.ndarray) -> Tensor:
    """``(..., H, W, C)`` uint8 edge maps → ``(..., C, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(edges)).movedim(-1, -3).float().div(255.0)


def tensor_to_frames(frames: Tensor) -> np.ndarray:
    """``(..., 3, H, W)`` in [-1, 1] (clipped) → ``(..., H, W, 3)`` uint8 RGB."""
    scaled = frames.detach().float().add(1.0).mul(127.5).clamp(0, 255).round()
    return scaled.to(torch.uint8).movedim(-3, -1).cpu().numpy()


def face_redraw_error(generator: Generator, edges: Tensor, frames: Tensor, regions: Tensor) -> Tensor:
    """How well ``generator`` redraws frames from their own edge maps, seeded with themselves.

    Each frame is drawn as the first frame of a video is at inference: from its own
    edge map, with all ``K`` history frames and the reference the frame itself. On the subject it was
    trained on this is near the held-out error; another person's face comes out
    with the trained subject's features, and the error rises (the subject check of
    :meth:`NeuralRenderer.start`).

    Args:
        generator: the renderer's network (on the tensors' device).
        edges: ``(B, 2, H, W)`` edge maps in [0, 1].
        frames: ``(B, 3, H, W)`` the frames in [-1, 1].
        regions: ``(B, 1, H, W)`` their face regions in [0, 1].

    Returns:
        ``(B,)`` mean absolute error over each face region, intensities in [0, 1].
    """
    history = frames[:, None].expand(-1, generator.config.history, -1, -1, -1)
    error = (generator(edges, history, frames) - frames).abs().mean(dim=1, keepdim=True) / 2
    return (error * regions).flatten(1).sum(1) / regions.flatten(1).sum(1).clamp_min(1.0)


def composite_mask(landmark_sets: Sequence[np.ndarray], size: tuple[int, int],
                   config: EdgeConfig = EdgeConfig()) -> np.ndarray:
    """``(H, W)`` float32 in [0, 1]: where :func:`composite` keeps the generated face, at ``size`` (W, H).

    0 outside the face region of the ``(478, 2+)`` landmark sets (pixels of ``size``),
    rising linearly with the distance from its edge to 1 at :data:`COMPOSITE_FEATHER`
    face sizes inside.
    """
    depth = cv2.distanceTransform(face_region(landmark_sets, size, config), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    ramp = max(COMPOSITE_FEATHER * face_size(landmark_sets[0]), 1.0)
    return np.minimum(depth / ramp, 1.0).astype(np.float32)


def composite(generated: np.ndarray, frame: np.ndarray, landmark_sets: Sequence[np.ndarray],
              config: EdgeConfig = EdgeConfig()) -> np.ndarray:
    """``mask · generated + (1 − mask) · frame`` of two ``(H, W, 3)`` uint8 frames of one size, the
    mask the :func:`composite_mask` of the ``(478, 2+)`` landmark sets (pixels of the frame): outside
    the face region the pixels are the frame's exactly."""
    mask = composite_mask(landmark_sets, (frame.shape[1], frame.shape[0]), config)[..., None]
    blended = frame.astype(np.float32) + mask * (generated.astype(np.float32) - frame)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def renderer_checkpoint(run: str | Path) -> Path:
    """The checkpoint folder of a neural renderer run (``run/best``, else ``run/last``, else ``run``).

    Raises:
        InputError: ``run`` does not exist, or is not a (finished) renderer run.
    """
    run = Path(run)
    if not run.exists():
        raise InputError(f"'{run}' does not exist; train a neural renderer with: {TRAIN_HINT}")
    not_a_run = InputError(f"'{run}' is not a neural renderer run; train one with: {TRAIN_HINT}")
    try:
        folder = checkpoint_dir(run)
    except InputError:
        raise not_a_run from None
    if read_run_config(folder).get("stage") != STAGE_NAME:
        raise not_a_run
    return folder


class NeuralRenderer:
    """Render frames with a trained neural renderer run (implements :class:`~emoportrait.types.Renderer`).

    :meth:`render` draws at the run's trained size and resizes back (see the module
    docs), so it takes any frame size; :meth:`start` accepts only targets of the
    trained size and subject. The renderer keeps the last ``K`` outputs as state,
    which :meth:`start` (or :meth:`reset`) clears between videos.

    Args:
        weights: a renderer run folder (``emoportrait train renderer``) or one of its
            ``best``/``last`` checkpoints.
        device: torch device for inference ("cpu", "cuda", ...).
        composite_face_only: keep the frame outside the face region (default), or
            use the whole generated frame.

    Raises:
        InputError: ``weights`` does not exist or is not a renderer run.
    """

    def __init__(self, weights: str | Path, device: str = "cpu", composite_face_only: bool = True) -> None:
        folder = renderer_checkpoint(weights)
        settings = read_run_config(folder)
        try:
            self.generator = Generator(config_from_dict(GeneratorConfig, settings["generator"]))
            self.edges = config_from_dict(EdgeConfig, settings["edges"])
            self.size: tuple[int, int] = (int(settings["width"]), int(settings["size"]))  # (W, H)
            self.trained_height = self.size[1]  # generate draws at this height unless told a size
        except (KeyError, TypeError, ValueError, InputError) as exc:
            problem = f"lacks {exc}" if isinstance(exc, KeyError) else f"is damaged ({exc})"
            raise InputError(f"the config.yaml of '{folder}' {problem}; train the renderer again with: "
                             f"{TRAIN_HINT}") from None
        load_weights(folder, {"generator": self.generator})
        self.device = torch.device(device)
        self.generator.to(self.device).eval()
        self.composite_face_only = composite_face_only
        self.run = Path(weights)
        self.subject = str(settings.get("subject", ""))
        self.held_out_face_error = float(settings.get("held_out_face_error", 0.0))
        self._history: deque[Tensor] = deque(maxlen=self.generator.config.history)
        self._reference: Tensor | None = None

    def reset(self) -> None:
        """Forget the previous outputs and the reference: the next frame starts a new sequence."""
        self._history.clear()
        self._reference = None

    def start(self, frames: Sequence[np.ndarray], landmarks: np.ndarray, found: np.ndarray) -> None:
        """Begin a video: :meth:`reset`, and check that the run can draw this target.

        Args:
            frames: ``T`` target frames, ``(H, W, 3)`` uint8 RGB, all of one size.
            landmarks: ``(T, 478, 2+)`` their tracked landmark pixels.
            found: ``(T,)`` bool, frames where the face was seen.

        Raises:
            InputError: the frames are not of the trained height or aspect, or the
                face is not the trained subject's: the run redraws it worse than
                :data:`SUBJECT_TOLERANCE` times its own held-out frames.
        """
        self.reset()
        height, width = frames[0].shape[:2]
        trained_width, trained_height = self.size
        retrain = f"train one for this target: {TRAIN_HINT.replace('--out', f'--size {height} --out')}"
        if height != trained_height:
            raise InputError(f"renderer '{self.run}' was trained on frames {trained_height} px high, not {height}: "
                             f"generate with --size {trained_height}, or {retrain}")
        if abs(width - trained_width) > self.generator.config.multiple:
            raise InputError(f"renderer '{self.run}' was trained on {trained_width}x{trained_height} frames, but "
                             f"the target's are {width}x{height}: give a target framed like its training video "
                             f"'{self.subject}', or {retrain}")
        error = self.redraw_error(frames, landmarks, found)
        if self.held_out_face_error > 0 and error > SUBJECT_TOLERANCE * self.held_out_face_error:
            raise InputError(f"renderer '{self.run}' does not know this face (it redraws it with error {error:.3f}, "
                             f"its own subject {self.held_out_face_error:.3f}): it was trained on another person, "
                             f"or on footage framed otherwise ('{self.subject}'); {retrain}")

    @torch.no_grad()
    def redraw_error(self, frames: Sequence[np.ndarray], landmarks: np.ndarray, found: np.ndarray) -> float:
        """Mean :func:`face_redraw_error` of up to :data:`SUBJECT_CHECK_FRAMES` of the target frames
        where the face was ``found``, spread evenly (arguments as in :meth:`start`)."""
        seen = np.flatnonzero(found)
        picks = seen[np.unique(np.linspace(0, len(seen) - 1, SUBJECT_CHECK_FRAMES).round().astype(int))]
        frame_size = (frames[0].shape[1], frames[0].shape[0])
        points = [scale_landmarks(landmarks[t], frame_size, self.size) for t in picks]
        edges = np.stack([edge_map(landmarks[t], frames[t], self.size, self.edges) for t in picks])
        regions = np.stack([face_region([p], self.size, self.edges) for p in points])[..., None]
        resized = np.stack([resize(frames[t], self.size) for t in picks])
        errors = face_redraw_error(self.generator, edges_to_tensor(edges).to(self.device),
                                   frames_to_tensor(resized).to(self.device),
                                   edges_to_tensor(regions).to(self.device))
        return float(errors.mean())

    @torch.no_grad()
    def render(self, frame: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Draw ``frame`` with its face at the ``target`` landmarks.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB, a frame of the target video (any size).
            source: ``(478, 2+)`` landmark pixels of the face in ``frame``.
            target: ``(478, 2+)`` landmark pixels the face should have.

        Returns:
            ``(H, W, 3)`` uint8 RGB, a new array.

        Raises:
            ValueError: a frame or landmark array of the wrong shape.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        if source.ndim != 2 or source.shape[1] < 2 or source.shape != target.shape:
            raise ValueError(f"source and target must both be (478, 2+), got {source.shape} and {target.shape}")
        frame_size = (frame.shape[1], frame.shape[0])
        if not self._history:
            self._reference = frames_to_tensor(resize(frame, self.size)).to(self.device)
            self._history.extend([self._reference] * self._history.maxlen)
        edges = edges_to_tensor(edge_map(target, frame, self.size, self.edges, frame_landmarks=source))
        generated = self.generator(edges[None].to(self.device), torch.stack(list(self._history))[None],
                                   self._reference[None])
        output = resize(tensor_to_frames(generated[0]), frame_size)
        if self.composite_face_only:
            output = composite(output, frame, [target, source], self.edges)
        self._history.append(frames_to_tensor(resize(output, self.size)).to(self.device))
        return output

    def render_batch(self, frames: Sequence[np.ndarray], sources: Sequence[np.ndarray],
                     targets: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`render` of consecutive frames, in order (``T`` frames and ``T`` landmark pairs).

        Each output is an input of the next (the generator sees the previous ``K``
        outputs), so the frames of one sequence cannot be generated side by side:
        this runs them one after another and keeps the state, exactly as ``T`` calls
        of :meth:`render`.
        """
        if not len(frames) == len(sources) == len(targets):
            raise ValueError(f"render_batch needs as many frames as landmark sets, got {len(frames)} frames, "
                             f"{len(sources)} sources and {len(targets)} targets")
        return [self.render(frame, source, target) for frame, source, target in zip(frames, sources, targets)]
