"""The recognizers' released weights → recognizer checkpoints ``analyze`` loads.

* **DAN** (yaoing/DAN): ``rafdb_epoch21_acc0.897_bacc0.8532.pth`` and the AffectNet-8
  file are ``{'iter', 'model_state_dict', 'optimizer_state_dict'}`` of ``DAN``:
  ``features.{0,1,4..7}`` (torchvision's ResNet-18 children), ``cat_head{i}.sa.conv1x1 /
  conv_3x3 / conv_1x3 / conv_3x1`` and ``cat_head{i}.ca.attention``, ``fc``, ``bn``. Only
  names change. The affinity loss's class centres were never saved; training-only, they
  stay zero.
* **Emotion-FAN** (Open-Debin/Emotion-FAN): ``{'epoch', 'state_dict', 'prec1'}`` of a
  DataParallel ``ResNet_AT``: the trunk under its torchvision names, ``alpha.0``,
  ``beta.0`` (Linear + Sigmoid), ``pred_fc1`` (the self-attention-only head, unused)
  and ``pred_fc2`` (the classifier). The authors released no trained FAN; this reads
  one trained with their code. Their CK+ loader numbers the classes Happy, Angry,
  Disgust, Fear, Sad, Contempt, Surprise; the classifier's rows are reordered.
* **MicroExpSTCNN** (bogireddytejareddy/micro-expression-recognition): a Keras 2 HDF5
  of Conv3D → MaxPool3D → Flatten → Dense 128 → Dense 3, in 'th' order: clips
  ``(1, H, W, T)``, kernel ``(3, 3, 15, in, out)`` over (H, W, T). The kernel is
  permuted to ``(out, in, T, H, W)`` (and flipped first when Theano wrote it, as
  Keras's own loader does); the first dense layer's rows are reordered from the
  file's flatten order to ours ``(C, T, H, W)``: ``(C, H, W, T)`` before Keras 2.1.6,
  ``(H, W, T, C)`` from it (Flatten then moves channels last).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..analysis.labels import LABEL_SETS, label_set
from ..analysis.recognizers import dan, fan, stcnn
from ..analysis.recognizers.checkpoints import MODULE, CheckpointConfig, build_model
from ..analysis.recognizers.registry import recognizer_model
from ..errors import InputError
from ..runs import write_checkpoint
from .keymap import KeyMap, Source, apply_key_map, same_names
from .reading import KerasWeights, read_keras_h5, read_torch_tensors
from .runs import new_run_folder


@dataclass(frozen=True)
class Release:
    """What the authors published about one model trained on one label set."""

    accuracy: float
    protocol: str
    backbone: str


RELEASES: dict[tuple[str, str], Release] = {
    ("dan", "rafdb"): Release(0.8970, "RAF-DB test set (Wen et al. 2023)",
                              "MS-Celeb-1M ResNet-18 (the authors' resnet18_msceleb.pth)"),
    ("dan", "affectnet8"): Release(0.6209, "AffectNet-8 validation set (Wen et al. 2023)",
                                   "MS-Celeb-1M ResNet-18 (the authors' resnet18_msceleb.pth)"),
    ("fan", "ckplus"): Release(0.9969, "CK+ 10-fold (Meng et al. 2019)",
                               "MS-Celeb-1M + FER+ ResNet-18 (the authors' Resnet18_FER+_pytorch.pth.tar)"),
    ("stcnn", "smic"): Release(0.6875, "SMIC-HS, the best epoch on a 32-clip split (Reddy et al. 2019)", "none"),
}
"""Published accuracy, its protocol, and the starting weights, per (model, label set)."""

DEFAULT_LABEL_SETS = {"dan": {7: "rafdb", 8: "affectnet8"}, "fan": {7: "ckplus"}, "stcnn": {3: "smic"}}
"""The label set a released file of this many classes was trained on."""

FAN_CKPLUS_ORDER = ("happy", "anger", "disgust", "fear", "sadness", "contempt", "surprise")
"""Emotion-FAN's CK+ class order (its loader's numbering), in our ``ckplus`` names."""

STCNN_DEPTH = 18
SMIC_PIXEL_MEAN = 0.5
"""Assumed mean gray level of SMIC-HS (0–1): the original normalised by the data set's
mean and maximum and saved neither; ``--pixel-mean`` sets it."""

_DAN_TRUNK = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
_DAN_SPATIAL = {"reduce": "conv1x1", "square": "conv_3x3", "horizontal": "conv_1x3", "vertical": "conv_3x1"}


def dan_source_name(ours: str) -> str:
    """DAN's name of our tensor ``ours`` (e.g. ``heads.2.spatial.square.0.weight`` →
    ``cat_head2.sa.conv_3x3.0.weight``)."""
    parts = ours.split(".")
    if parts[0] == "trunk":
        return ".".join(["features", _DAN_TRUNK[parts[1]], *parts[2:]])
    if parts[0] == "heads" and parts[2] == "spatial":
        return ".".join([f"cat_head{parts[1]}", "sa", _DAN_SPATIAL[parts[3]], *parts[4:]])
    if parts[0] == "heads":
        return ".".join([f"cat_head{parts[1]}", "ca", "attention", *parts[4:]])
    return ours


def fan_key_map(ours: Mapping[str, torch.Tensor], label_set_name: str) -> KeyMap:
    """Our FAN's tensors ← ``ResNet_AT``'s, the classifier's rows in our ``label_set_name`` order."""
    rows = None
    if label_set_name == "ckplus":
        rows = [FAN_CKPLUS_ORDER.index(name) for name in label_set("ckplus")]
    key_map = same_names([name for name in ours if name.startswith("trunk.")], lambda name: name.removeprefix("trunk."))
    for name in ("alpha", "beta"):
        key_map |= {f"{name}.{kind}": Source(f"{name}.0.{kind}") for kind in ("weight", "bias")}
    pick = (lambda tensor: tensor[rows]) if rows else None
    return key_map | {f"fc.{kind}": Source(f"pred_fc2.{kind}", pick) for kind in ("weight", "bias")}


def _flatten_channels_last(keras: KerasWeights) -> bool:
    """Whether the file's Flatten put channels last (Keras ≥ 2.1.6 with 'th' data, or said so)."""
    layers = (keras.model_config or {}).get("config", {})
    layers = layers.get("layers", []) if isinstance(layers, dict) else layers
    for layer in layers:
        if layer.get("class_name") == "Flatten" and "data_format" in layer.get("config", {}):
            return layer["config"]["data_format"] == "channels_first"
    version = tuple(int(part) for part in keras.keras_version.split(".")[:3] if part.isdigit())
    return version >= (2, 1, 6)


def stcnn_key_map(keras: KerasWeights, what: str, depth: int, size: int) -> KeyMap:
    """Our STCNN's tensors ← the Keras layers in file order: one Conv3D, then two Dense."""
    kernels = [name for name in keras.weights if name.endswith("/kernel")]
    shapes = [keras.weights[name].ndim for name in kernels]
    if shapes != [5, 2, 2]:
        raise InputError(f"{what} is not a MicroExpSTCNN: it holds kernels of {len(kernels)} layer(s) with "
                         f"{shapes} axes, not one Conv3D and two Dense")
    conv, hidden, out = (name.removesuffix("/kernel") for name in kernels)
    pooled_time = (depth - stcnn.KERNEL[0] + 1) // stcnn.POOL
    pooled_side = (size - stcnn.KERNEL[1] + 1) // stcnn.POOL
    flip = keras.backend == "theano"
    channels_last = _flatten_channels_last(keras)

    def conv_kernel(kernel: torch.Tensor) -> torch.Tensor:  # (H, W, T, in, out) → (out, in, T, H, W)
        return (kernel.flip(0, 1, 2) if flip else kernel).permute(4, 3, 2, 0, 1)

    def hidden_kernel(kernel: torch.Tensor) -> torch.Tensor:  # rows in the file's flatten order → ours
        if kernel.shape[0] != stcnn.FILTERS * pooled_time * pooled_side ** 2:
            return kernel.T  # the shape check names the mismatch
        grid = (pooled_side, pooled_side, pooled_time)
        if channels_last:
            rows = kernel.reshape(*grid, stcnn.FILTERS, -1).permute(4, 3, 2, 0, 1)
        else:
            rows = kernel.reshape(stcnn.FILTERS, *grid, -1).permute(4, 0, 3, 1, 2)
        return rows.reshape(kernel.shape[1], -1)

    return {"conv.weight": Source(f"{conv}/kernel", conv_kernel), "conv.bias": Source(f"{conv}/bias"),
            "hidden.weight": Source(f"{hidden}/kernel", hidden_kernel), "hidden.bias": Source(f"{hidden}/bias"),
            "out.weight": Source(f"{out}/kernel", lambda kernel: kernel.T), "out.bias": Source(f"{out}/bias")}


@dataclass(frozen=True)
class RecognizerImport:
    """What :func:`import_recognizer` wrote."""

    out: Path
    tensors: int
    config: CheckpointConfig


def _classes(tensors: Mapping[str, torch.Tensor], name: str, what: str) -> int:
    if name not in tensors:
        raise InputError(f"{what} lacks '{name}'; it is not the checkpoint this import expects")
    return int(tensors[name].shape[-1 if name.endswith("kernel") else 0])


def _label_set_for(model: str, classes: int, chosen: str | None, what: str) -> str:
    name = chosen or DEFAULT_LABEL_SETS[model].get(classes)
    if name is None:
        raise InputError(f"{what} has {classes} classes, which no known {model} release has; "
                         f"name its labels with --label-set ({', '.join(LABEL_SETS)})")
    if len(label_set(name)) != classes:
        raise InputError(f"{what} has {classes} classes but label set '{name}' has {len(label_set(name))}")
    if model == "fan" and name != "ckplus":
        raise InputError(f"Emotion-FAN's class order is known for CK+ only, not '{name}'")
    return name


def import_recognizer(model: str, path: str | Path, out: str | Path, label_set_name: str | None = None,
                      pixel_mean: float | None = None) -> RecognizerImport:
    """Write a recognizer checkpoint at ``out`` from the authors' weight file ``path``.

    Args:
        model: "dan", "fan" or "stcnn".
        path: the released file (``.pth`` / ``.pth.tar`` for DAN and Emotion-FAN, a
            Keras ``.h5`` / ``.hdf5`` for MicroExpSTCNN).
        out: the checkpoint folder to write; it must not exist.
        label_set_name: the labels it was trained on (default: from the class count,
            see :data:`DEFAULT_LABEL_SETS`).
        pixel_mean: MicroExpSTCNN only: the training set's mean gray level in 0–1
            (default :data:`SMIC_PIXEL_MEAN`).

    Raises:
        InputError: the file is missing, unsafe, unreadable, or not this model's.
    """
    recognizer_model(model)  # a known one, or a one-line error naming them
    out, path = new_run_folder(out), Path(path)
    what = f"{model} weights '{path}'"
    if model == "stcnn":
        keras = read_keras_h5(path, f"{model} weights")
        tensors = {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in keras.weights.items()}
        kernels = [name for name in tensors if name.endswith("/kernel")]
        classes = _classes(tensors, kernels[-1], what) if kernels else 0
    else:
        tensors = read_torch_tensors(path, f"{model} weights")
        classes = _classes(tensors, "fc.weight" if model == "dan" else "pred_fc2.weight", what)
    label_set_name = _label_set_for(model, classes, label_set_name, what)
    release = RELEASES.get((model, label_set_name))
    config = _config(model, label_set_name, release, pixel_mean)
    network = build_model(config)
    expected = {name: value for name, value in network.state_dict().items() if name != "centres"}
    if model == "dan":
        key_map, unused = same_names(expected, dan_source_name), ()
    elif model == "fan":
        key_map, unused = fan_key_map(expected, label_set_name), ("pred_fc1.weight", "pred_fc1.bias")
    else:
        key_map, unused = stcnn_key_map(keras, what, config.frames, config.input_size), ()
    state = apply_key_map(tensors, key_map, expected, what, unused)
    if model == "dan":
        state["centres"] = torch.zeros_like(network.centres)
    network.load_state_dict(state)
    write_checkpoint(out, {MODULE: network}, config, model)
    return RecognizerImport(out, len(tensors), config)


def _config(model: str, label_set_name: str, release: Release | None, pixel_mean: float | None) -> CheckpointConfig:
    if model == "stcnn":
        mean = SMIC_PIXEL_MEAN if pixel_mean is None else pixel_mean
        if not 0.0 < mean < 1.0:
            raise InputError(f"--pixel-mean {mean:g} is not a gray level between 0 and 1")
        size, frames, means, stds = stcnn.INPUT_SIZE, STCNN_DEPTH, [mean], [1.0 - mean]
        assumed = " (assumed)" if pixel_mean is None else ""
        normalisation = f"; pixel mean {mean:g}{assumed}"
    else:
        module = dan if model == "dan" else fan
        size, means, stds = module.INPUT_SIZE, list(module.MEAN), list(module.STD)
        frames = 1 if model == "dan" else fan.TRAIN_FRAMES
        normalisation = ""
    published = f"; published accuracy {release.accuracy:.2%} on {release.protocol}" if release else ""
    return CheckpointConfig(
        model=model, label_set=label_set_name, labels=list(label_set(label_set_name)), input_size=size,
        frames=frames, mean=means, std=stds, backbone=release.backbone if release else "unknown",
        source=f"imported from the authors' {model} weights{published}{normalisation}",
        published_accuracy=release.accuracy if release else None)

