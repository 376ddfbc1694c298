"""Emotion-FAN, the Frame Attention Network (Meng et al. 2019), a clip recognizer.

Every frame (``224 × 224`` RGB scaled to ``[0, 1]``, no mean/std) goes through a
ResNet-18 trunk and an average pool to ``f_i`` (512-d). Self-attention weighs the
frames, ``α_i = σ(w·dropout(f_i))``, into ``f_v = Σ α_i f_i / Σ α_i``; relation
attention re-weighs each frame against that clip vector,
``β_i = σ(w'·dropout([f_i; f_v]))``, and the clip is
``Σ α_i β_i [f_i; f_v] / Σ α_i β_i`` (1024-d) → dropout 0.6 → linear classifier.

The original evaluates with ``Σ α_i [f_i; f_v] / Σ α_i β_i`` (α alone in the
numerator) although it trains with αβ in both; here αβ is used in both places
always, so training and prediction compute the same function.

Training samples three frames per clip, one at random from each of three equal
segments. CK+ sequences run from neutral to the apex, so the segments cover the
last 3/5 of the sequence (the expressive part; the original's CK+ loader used the
*first* 3/5, its neutral end). As in the original, every sequence appears once per
frame in an epoch (each time with a fresh draw). The original's random horizontal
flip is a per-image transform, so it flips each frame of a sample on its own; here a
sample's frames are all flipped or none, so they stay views of one face. Prediction
uses every frame.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from .base import RecognizerInfo
from .datasets import Item, load_images, random_flip, resize_images, to_tensor
from .resnet import FEATURES, ResNet18

INPUT_SIZE = 224
"""Side of each input frame in pixels."""
TRAIN_FRAMES = 3
"""Frames per training sample, one from each segment."""
APEX_PART = 0.6
"""Fraction of a CK+ sequence, at its end, that training frames are drawn from."""
MEAN = (0.0, 0.0, 0.0)
STD = (1.0, 1.0, 1.0)
"""No normalisation beyond scaling to ``[0, 1]`` (torchvision's ``ToTensor``)."""
BATCH_SIZE = 64
"""Frames per trunk pass when predicting."""


class FAN(nn.Module):
    """``(B, T, 3, S, S)`` clips → ``(B, num_classes)`` logits, for any number of frames ``T``."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.trunk = ResNet18()
        self.dropout = nn.Dropout(0.5)
        self.alpha = nn.Linear(FEATURES, 1)
        self.beta = nn.Linear(2 * FEATURES, 1)
        self.head_dropout = nn.Dropout(0.6)
        self.fc = nn.Linear(2 * FEATURES, num_classes)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` frames → ``(N, 512)`` average-pooled trunk features ``f_i``."""
        return self.trunk(frames).mean(dim=(2, 3))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, T, 512)`` frame features → ``(B, num_classes)`` logits by self + relation attention."""
        alpha = torch.sigmoid(self.alpha(self.dropout(features)))                     # (B, T, 1)
        clip = (alpha * features).sum(dim=1, keepdim=True) / alpha.sum(dim=1, keepdim=True)
        paired = torch.cat([features, clip.expand_as(features)], dim=2)               # (B, T, 1024)
        weight = alpha * torch.sigmoid(self.beta(self.dropout(paired)))               # α_i β_i
        pooled = (weight * paired).sum(dim=1) / weight.sum(dim=1)
        return self.fc(self.head_dropout(pooled))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        batch, frames = clips.shape[:2]
        features = self.frame_features(clips.flatten(0, 1))
        return self.classify(features.view(batch, frames, -1))

    def training_loss(self, clips: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy and the logits."""
        logits = self(clips)
        return F.cross_entropy(logits, labels), logits


def segment_indices(count: int, segments: int, rng: np.random.Generator) -> np.ndarray:
    """One random frame index from each of ``segments`` equal parts of the last :data:`APEX_PART`
    of a ``count``-frame clip; ``(segments,)`` ints (repeats when the clip is short)."""
    edges = np.linspace(int(count * (1 - APEX_PART)), count, segments + 1)
    starts = np.floor(edges[:-1]).astype(int)
    stops = np.maximum(np.floor(edges[1:]).astype(int), starts + 1)
    return np.minimum(rng.integers(starts, stops), count - 1)


def training_items(items: tuple[Item, ...]) -> list[Item]:
    """Each clip once per frame, the original's epoch size."""
    return [item for item in items for _ in item.paths]


def training_sample(item: Item, rng: np.random.Generator, size: int, frames: int) -> torch.Tensor:
    """``frames`` segment-sampled frames, flipped together at random: ``(frames, 3, size, size)``."""
    paths = [item.paths[i] for i in segment_indices(len(item.paths), frames, rng)]
    return to_tensor(random_flip(load_images(paths, size), rng), MEAN, STD)


def eval_sample(item: Item, rng: np.random.Generator, size: int) -> torch.Tensor:
    """All frames of the clip, ``(T, 3, size, size)``; ``rng`` is unused."""
    return to_tensor(load_images(item.paths, size), MEAN, STD)


class FanRecognizer:
    """Clip recognizer around a trained :class:`FAN`; scores all frames of a clip together."""

    def __init__(self, model: FAN, info: RecognizerInfo, size: int, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.info = info
        self.size = size
        self.device = device

    @torch.inference_mode()
    def predict_clip(self, crops: np.ndarray, fps: float) -> np.ndarray:
        """``(T, S, S, 3)`` uint8 RGB aligned face crops → ``(C,)`` float32 probabilities.

        Frame attention needs no frame rate: ``fps`` is accepted for the protocol and unused.
        """
        if len(crops) == 0:
            raise InputError("Emotion-FAN needs at least one face frame to score a clip")
        features = torch.cat([
            self.model.frame_features(to_tensor(resize_images(crops[i : i + BATCH_SIZE], self.size), MEAN, STD)
                                      .to(self.device))
            for i in range(0, len(crops), BATCH_SIZE)
        ])
        logits = self.model.classify(features[None])
        return torch.softmax(logits, dim=1)[0].cpu().numpy()
