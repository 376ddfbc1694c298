"""DAN, the Distract-your-Attention Network (Wen et al. 2023), a frame recognizer.

A ResNet-18 trunk turns a ``224 × 224`` RGB face (ImageNet mean/std normalised)
into a ``512 × 7 × 7`` map. Four cross-attention heads each weight that map in
space (a 1×1 conv then summed 3×3, 1×3 and 3×1 convs → a one-channel map) and
then in channels (a squeeze-and-excitation gate on the pooled vector). The head
vectors are log-softmaxed across heads, summed, classified by a linear layer, and
the logits batch-normalised.

Training adds two losses to the cross-entropy: the *affinity* loss pulls pooled
trunk features to learnable class centres, scaled by the centres' spread; the
*partition* loss ``log(1 + H / σ²)`` pushes the heads to attend to different
places (σ² is the variance across heads).

The paper starts from MS-Celeb-1M ResNet-18 weights (a Google-Drive file); here
they are optional (``--backbone``), see :func:`.resnet.load_backbone`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import RecognizerInfo
from .datasets import Item, load_images, random_erasing, random_flip, random_rotate_crop, resize_images, to_tensor
from .resnet import FEATURES, ResNet18

INPUT_SIZE = 224
"""Side of the input face in pixels (any multiple of 32 works; 224 is the paper's)."""
HEADS = 4
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
"""ImageNet normalisation of the RGB input."""
_SPATIAL_WIDTH = 256
_CHANNEL_REDUCTION = 32
_EPS = 1e-8
BATCH_SIZE = 64
"""Crops per forward pass when predicting."""
ROTATION_P = 0.2
ROTATION_DEGREES = 20.0
CROP_PAD = 32 / 224
"""Padding of the random crop as a fraction of the side (32 pixels at 224)."""


def _conv_bn(in_channels: int, out_channels: int, kernel: tuple[int, int]) -> nn.Sequential:
    padding = (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, padding=padding),
                         nn.BatchNorm2d(out_channels))


class SpatialAttention(nn.Module):
    """``(B, 512, h, w)`` → the same map weighted by a learned one-channel spatial map."""

    def __init__(self) -> None:
        super().__init__()
        self.reduce = _conv_bn(FEATURES, _SPATIAL_WIDTH, (1, 1))
        self.square = _conv_bn(_SPATIAL_WIDTH, FEATURES, (3, 3))
        self.horizontal = _conv_bn(_SPATIAL_WIDTH, FEATURES, (1, 3))
        self.vertical = _conv_bn(_SPATIAL_WIDTH, FEATURES, (3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        y = F.relu(self.square(y) + self.horizontal(y) + self.vertical(y))
        return x * y.sum(dim=1, keepdim=True)


class ChannelAttention(nn.Module):
    """``(B, 512, h, w)`` → ``(B, 512)``: the pooled vector times a sigmoid gate computed from it."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.Linear(FEATURES, _CHANNEL_REDUCTION), nn.BatchNorm1d(_CHANNEL_REDUCTION), nn.ReLU(inplace=True),
            nn.Linear(_CHANNEL_REDUCTION, FEATURES), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        return pooled * self.gate(pooled)


class CrossAttentionHead(nn.Module):
    """Spatial then channel attention: ``(B, 512, h, w)`` → ``(B, 512)``."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = SpatialAttention()
        self.channel = ChannelAttention()
        for module in self.modules():  # the original's init_weights
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.001)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel(self.spatial(x))


def affinity_loss(features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared distance of ``(B, 512)`` features to their class centre / total variance of the centres; batch mean.

    ``centres`` is ``(C, 512)``; the variance is over classes, summed over feature dimensions.
    """
    distance = (features - centres[labels]).pow(2).sum(dim=1)
    return (distance / centres.var(dim=0).sum()).mean()


def partition_loss(heads: torch.Tensor) -> torch.Tensor:
    """``log(1 + H / σ²)`` of ``(B, H, 512)`` head vectors; σ² is the variance across heads,
    averaged over batch and channels. 0 for a single head."""
    count = heads.shape[1]
    if count == 1:
        return heads.new_zeros(())
    return torch.log1p(count / (heads.var(dim=1).mean() + _EPS))


class DAN(nn.Module):
    """``(B, 3, S, S)`` normalised faces → ``(B, num_classes)`` logits.

    ``centres`` (``(num_classes, 512)``) are the affinity loss's class centres; they
    are trained with the network and saved with it, but prediction does not use them.
    """

    def __init__(self, num_classes: int, heads: int = HEADS) -> None:
        super().__init__()
        self.trunk = ResNet18()
        self.heads = nn.ModuleList(CrossAttentionHead() for _ in range(heads))
        self.fc = nn.Linear(FEATURES, num_classes)
        self.bn = nn.BatchNorm1d(num_classes)
        self.centres = nn.Parameter(torch.randn(num_classes, FEATURES))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits ``(B, C)``, trunk map ``(B, 512, S/32, S/32)`` and head vectors ``(B, H, 512)``
        (log-softmaxed across heads when there are several)."""
        trunk = self.trunk(x)
        heads = torch.stack([head(trunk) for head in self.heads], dim=1)
        if heads.shape[1] > 1:
            heads = F.log_softmax(heads, dim=1)
        return self.bn(self.fc(heads.sum(dim=1))), trunk, heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[0]

    def training_loss(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy + affinity + partition loss (weights 1, as the paper) and the logits."""
        logits, trunk, heads = self.features(x)
        loss = (F.cross_entropy(logits, labels) + affinity_loss(trunk.mean(dim=(2, 3)), labels, self.centres)
                + partition_loss(heads))
        return loss, logits


def training_sample(item: Item, rng: np.random.Generator, size: int) -> torch.Tensor:
    """The paper's RAF-DB augmentation: flip; with p = 0.2 rotate ±20° and pad-crop; normalise; erase.
    ``(3, size, size)``."""
    image = random_flip(load_images(item.paths, size), rng)[0]
    if rng.random() < ROTATION_P:
        image = random_rotate_crop(image, rng, ROTATION_DEGREES, round(CROP_PAD * size))
    return random_erasing(to_tensor(image[None], MEAN, STD)[0], rng)


def eval_sample(item: Item, rng: np.random.Generator, size: int) -> torch.Tensor:
    """The image resized and normalised, ``(3, size, size)``; ``rng`` is unused."""
    return to_tensor(load_images(item.paths, size), MEAN, STD)[0]


class DanRecognizer:
    """Frame recognizer around a trained :class:`DAN`."""

    def __init__(self, model: DAN, info: RecognizerInfo, size: int, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.info = info
        self.size = size
        self.device = device

    @torch.inference_mode()
    def predict(self, crops: np.ndarray) -> np.ndarray:
        """``(T, S, S, 3)`` uint8 RGB aligned face crops → ``(T, C)`` float32 probabilities."""
        probabilities = np.zeros((len(crops), len(self.info.labels)), np.float32)
        for start in range(0, len(crops), BATCH_SIZE):
            inputs = to_tensor(resize_images(crops[start : start + BATCH_SIZE], self.size), MEAN, STD)
            logits = self.model(inputs.to(self.device))
            probabilities[start : start + len(inputs)] = torch.softmax(logits, dim=1).cpu().numpy()
        return probabilities
