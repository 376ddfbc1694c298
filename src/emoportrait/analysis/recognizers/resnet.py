"""ResNet-18 trunk (He et al. 2016) shared by DAN and Emotion-FAN, and loading its weights.

The trunk is torchvision's ``resnet18`` without the average pool and the classifier,
with the same parameter names (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``layer2.0.downsample.0``), so state dicts saved from torchvision models — such as
the MS-Celeb-1M weights DAN starts from, or the FER+ weights Emotion-FAN starts
from — load directly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...errors import InputError
from ...importing.reading import read_torch_tensors

FEATURES = 512
"""Channels of the trunk's output map."""

STRIDE = 32
"""Input pixels per output-map cell: a ``224 × 224`` input gives a ``7 × 7`` map."""

LAYER_BLOCKS = (2, 2, 2, 2)
LAYER_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3×3 conv + BN layers with an identity (or strided 1×1 conv + BN) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, H, W)`` → ``(B, out, H / stride, W / stride)``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + shortcut)


class ResNet18(nn.Module):
    """ResNet-18 up to its last residual stage: ``(B, 3, H, W)`` → ``(B, 512, ⌈H/32⌉, ⌈W/32⌉)``.

    11.18 M parameters. Convolutions are He-initialised (fan-out), batch norms start
    at identity, as in torchvision.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, LAYER_WIDTHS[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(LAYER_WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = LAYER_WIDTHS[0]
        for index, (blocks, width) in enumerate(zip(LAYER_BLOCKS, LAYER_WIDTHS), start=1):
            stride = 1 if index == 1 else 2
            layer = [BasicBlock(in_channels, width, stride)] + [BasicBlock(width, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*layer))
            in_channels = width
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images → ``(B, 512, ⌈H/32⌉, ⌈W/32⌉)`` features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def load_backbone(trunk: ResNet18, path: str | Path) -> None:
    """Copy ResNet-18 weights from a user file into ``trunk``.

    Accepts a ``.safetensors`` file or anything else
    :func:`~emoportrait.importing.reading.read_torch_tensors` reads safely: a state dict,
    optionally wrapped as ``{'state_dict': ...}`` (as DAN's ``resnet18_msceleb.pth`` is),
    keys optionally prefixed ``module.``; keys outside the trunk (``fc.*``) are ignored.

    Raises:
        InputError: the file is missing or unreadable, lacks trunk weights, or has wrong shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"backbone file '{path}' does not exist; give ResNet-18 weights or leave --backbone out "
                         "to train from scratch")
    tensors = read_torch_tensors(path, "backbone")
    expected = trunk.state_dict()
    # torch < 0.4 saved no batch-norm step counters; they only matter for momentum=None.
    tensors = {**{k: v for k, v in expected.items() if k.endswith("num_batches_tracked")}, **tensors}
    missing = [key for key in expected if key not in tensors]
    if missing:
        raise InputError(f"backbone '{path}' is not a ResNet-18 state dict: it lacks {len(missing)} trunk "
                         f"tensors, e.g. '{missing[0]}'")
    wrong = [key for key, value in expected.items() if tensors[key].shape != value.shape]
    if wrong:
        raise InputError(f"backbone '{path}' does not fit ResNet-18: '{wrong[0]}' is "
                         f"{tuple(tensors[wrong[0]].shape)}, expected {tuple(expected[wrong[0]].shape)}")
    trunk.load_state_dict({key: tensors[key] for key in expected})
