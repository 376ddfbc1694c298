"""MicroExpSTCNN (Reddy et al. 2019), a 3D-CNN micro-expression clip recognizer.

Input: 18 grayscale ``64 × 64`` frames, normalised by the training set's mean and
maximum (``(pixel − mean) / max(pixel − mean)``, both stored in the checkpoint).
One Conv3D (32 filters, 3×3 spatial × 15 temporal, valid, ReLU) → MaxPool3D 3×3×3
→ dropout 0.5 → flatten (32 × 1 × 20 × 20 = 12 800) → dense 128 ReLU → dropout 0.5
→ dense over negative, positive, surprise. Initialisation as Keras: Glorot-uniform
conv, normal(0, 0.05) dense layers.

Training clips are the first 18 frames of each SMIC-HS clip (0.18 s at 100 fps), as
in the original; shorter clips are stretched to 18 by repeating frames evenly.

Time scale at prediction: a recognised video has its own rate, usually 25 fps, at
which 0.18 s is only 4.5 frames — too few for the 15-frame temporal kernel. The
recognizer therefore slides windows of 18 *consecutive frames at the video's own
rate* (0.72 s at 25 fps, about one whole SMIC clip) with a stride of 9 frames, and
averages the windows' probabilities. Both are settable
(:class:`StcnnRecognizer`); a window of other than 18 frames is resampled to 18.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from .base import RecognizerInfo
from .datasets import Item, load_images, resize_images, to_gray, to_tensor

INPUT_SIZE = 64
"""Side of each grayscale frame in pixels."""
DEPTH = 18
"""Frames per clip."""
FILTERS = 32
KERNEL = (15, 3, 3)
"""Conv3D kernel as (time, height, width)."""
POOL = 3
HIDDEN = 128
BATCH_SIZE = 32
"""Windows per forward pass when predicting."""


def flat_features(size: int, depth: int) -> int:
    """Length of the flattened conv + pool output for ``depth × size × size`` clips."""
    def pooled(extent: int, kernel: int) -> int:
        return max((extent - kernel + 1) // POOL, 0)
    return FILTERS * pooled(depth, KERNEL[0]) * pooled(size, KERNEL[1]) * pooled(size, KERNEL[2])


class STCNN(nn.Module):
    """``(B, 1, depth, size, size)`` normalised gray clips → ``(B, num_classes)`` logits."""

    def __init__(self, num_classes: int, depth: int = DEPTH, size: int = INPUT_SIZE) -> None:
        super().__init__()
        if flat_features(size, depth) == 0:
            raise InputError(f"MicroExpSTCNN needs clips of at least {KERNEL[0] + POOL - 1} frames of "
                             f"{KERNEL[1] + POOL - 1}x{KERNEL[1] + POOL - 1} pixels, not {depth} of {size}x{size}")
        self.conv = nn.Conv3d(1, FILTERS, KERNEL)
        self.pool = nn.MaxPool3d(POOL)
        self.dropout = nn.Dropout(0.5)
        self.hidden = nn.Linear(flat_features(size, depth), HIDDEN)
        self.out = nn.Linear(HIDDEN, num_classes)
        nn.init.xavier_uniform_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        for layer in (self.hidden, self.out):
            nn.init.normal_(layer.weight, std=0.05)
            nn.init.zeros_(layer.bias)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.pool(F.relu(self.conv(clips))))
        x = self.dropout(F.relu(self.hidden(x.flatten(1))))
        return self.out(x)

    def training_loss(self, clips: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy and the logits."""
        logits = self(clips)
        return F.cross_entropy(logits, labels), logits


def clip_indices(count: int, depth: int) -> np.ndarray:
    """The first ``depth`` of ``count`` frames, or all of them stretched evenly to ``depth``; ``(depth,)``."""
    if count >= depth:
        return np.arange(depth)
    return np.round(np.linspace(0, count - 1, depth)).astype(int)


def _gray_frames(item: Item, size: int, depth: int) -> np.ndarray:
    return to_gray(load_images([item.paths[i] for i in clip_indices(len(item.paths), depth)], size))


def normalisation(items: tuple[Item, ...], size: int, depth: int) -> tuple[float, float]:
    """``(mean, scale)`` in ``[0, 1]`` pixel units: the mean of all training pixels, and the
    maximum of pixel − mean, so that ``(pixel − mean) / scale`` peaks at 1 as in the original."""
    total, count, brightest = 0.0, 0, 0.0
    for item in items:
        frames = _gray_frames(item, size, depth).astype(np.float64) / 255.0
        total, count, brightest = total + frames.sum(), count + frames.size, max(brightest, frames.max())
    mean = total / count
    return mean, max(brightest - mean, 1 / 255)


def sample(item: Item, rng: np.random.Generator, size: int, depth: int, mean: float, scale: float) -> torch.Tensor:
    """The clip's first ``depth`` frames, gray and normalised: ``(1, depth, size, size)``; no augmentation."""
    return to_tensor(_gray_frames(item, size, depth), (mean,), (scale,)).transpose(0, 1)


class StcnnRecognizer:
    """Clip recognizer around a trained :class:`STCNN`: averages sliding windows over a clip.

    ``window`` consecutive frames at the video's own rate (default: the model's depth)
    make one clip, resampled to the depth if they differ; windows start every
    ``stride`` frames (default: half the depth), and the last one ends at the last
    frame. A clip shorter than a window is stretched to one.
    """

    def __init__(self, model: STCNN, info: RecognizerInfo, size: int, depth: int, mean: float, scale: float,
                 device: torch.device, window: int | None = None, stride: int | None = None) -> None:
        self.window, self.stride = window or depth, stride or max(depth // 2, 1)
        if self.window < 1 or self.stride < 1:
            raise InputError(f"window and stride must be at least one frame, got {window} and {stride}")
        self.model = model.to(device).eval()
        self.info = info
        self.size, self.depth, self.mean, self.scale = size, depth, mean, scale
        self.device = device

    def windows(self, count: int) -> np.ndarray:
        """Frame indices of each window over a ``count``-frame clip: ``(W, depth)``."""
        span = min(self.window, count)
        starts = list(range(0, count - span + 1, self.stride))
        if starts[-1] != count - span:
            starts.append(count - span)
        return np.stack([start + np.round(np.linspace(0, span - 1, self.depth)).astype(int) for start in starts])

    @torch.inference_mode()
    def predict_clip(self, crops: np.ndarray, fps: float) -> np.ndarray:
        """``(T, S, S, 3)`` uint8 RGB aligned face crops → ``(C,)`` float32 probabilities.

        Windows are counted in frames, so ``fps`` is accepted for the protocol and unused
        (see the module notes on time scale).
        """
        if len(crops) == 0:
            raise InputError("MicroExpSTCNN needs at least one face frame to score a clip")
        frames = to_tensor(to_gray(resize_images(crops, self.size)), (self.mean,), (self.scale,))[:, 0]
        windows = torch.from_numpy(self.windows(len(frames)))
        probabilities = []
        for start in range(0, len(windows), BATCH_SIZE):
            clips = frames[windows[start : start + BATCH_SIZE]][:, None]   # (B, 1, depth, size, size)
            probabilities.append(torch.softmax(self.model(clips.to(self.device)), dim=1))
        return torch.cat(probabilities).mean(dim=0).cpu().numpy()
