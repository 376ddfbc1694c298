"""Checkpoint directories of the trained recognizers (DAN, Emotion-FAN, MicroExpSTCNN).

A checkpoint is a directory::

    model.safetensors   the network's weights (and DAN's affinity centres)
    config.yaml         CheckpointConfig: model kind, label set and labels, input
                        size, frames, normalisation, backbone source, training settings
    training.pt         training runs' ``last`` only: the state to resume from

This is the layout the training engine (:mod:`emoportrait.training.engine`) writes
for a stage with one module named :data:`MODULE`. :func:`load_recognizer` turns a
checkpoint into the matching frame or clip recognizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...config import load_config
from ...errors import InputError
from ...runs import CONFIG_FILE, STATE_FILE, WEIGHTS_SUFFIX, load_weights  # noqa: F401 (STATE_FILE: layout)
from .base import ClipRecognizer, FrameRecognizer, RecognizerInfo
from .registry import MODELS, recognizer_model

MODULE = "model"
"""The name of a recognizer's one module in the training engine."""
MODEL_FILE = f"{MODULE}{WEIGHTS_SUFFIX}"
FROM_SCRATCH = "from scratch"
"""``backbone`` of a network whose ResNet-18 trunk started from random weights."""


@dataclass(frozen=True)
class CheckpointConfig:
    """What a checkpoint's weights are and how to feed them (``config.yaml``).

    Attributes:
        model: a name of :data:`.registry.MODELS` ("dan", "fan", "stcnn").
        label_set: "rafdb", "affectnet8", "ckplus" or "smic".
        labels: the classes in output order.
        input_size: side of the square input in pixels.
        frames: STCNN's clip depth; Emotion-FAN's frames per training sample; 1 for DAN.
        mean, std: input normalisation ``(pixel / 255 − mean) / std`` per channel
            (one value for STCNN's gray input).
        backbone: the ResNet-18 weights file training started from, "from scratch",
            or "none" (STCNN has no trunk).
        dataset_root: where the training data was read.
        training: the training settings (TrainConfig and the recipe's optimizer numbers).
        epoch: epochs trained when saved.
        val_accuracy: validation accuracy after that epoch (None before any).
        source: where imported weights came from (``emoportrait import-weights``);
            empty for weights trained here.
        published_accuracy: the accuracy the authors published for imported weights.
    """

    model: str
    label_set: str
    labels: list[str]
    input_size: int
    frames: int
    mean: list[float]
    std: list[float]
    backbone: str
    dataset_root: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    val_accuracy: float | None = None
    source: str = ""
    published_accuracy: float | None = None


def _not_a_checkpoint(path: Path, reason: str) -> InputError:
    return InputError(f"'{path}' is not a {'/'.join(MODELS)} checkpoint ({reason}); "
                      "train one with: emoportrait train fer --model dan ...")


def build_model(config: CheckpointConfig) -> nn.Module:
    """A freshly initialised network of the kind and size ``config`` describes."""
    return recognizer_model(config.model).network(config)


def read_config(directory: str | Path) -> CheckpointConfig:
    """The ``config.yaml`` of checkpoint ``directory``."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        raise _not_a_checkpoint(directory, f"no {CONFIG_FILE}")
    try:
        config = load_config(CheckpointConfig, directory / CONFIG_FILE)
    except InputError as exc:  # a setting missing, unknown or of the wrong type
        raise _not_a_checkpoint(directory, f"its {CONFIG_FILE} is damaged: {exc}") from None
    if config.model not in MODELS:
        raise _not_a_checkpoint(directory, f"its {CONFIG_FILE} names model '{config.model}'")
    return config


def read_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, CheckpointConfig]:
    """The network (weights loaded, on ``device``) and config of checkpoint ``directory``.

    Raises:
        InputError: files missing or unreadable, or weights that do not fit the config.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise _not_a_checkpoint(directory, "no such directory")
    if not (directory / MODEL_FILE).is_file():
        raise _not_a_checkpoint(directory, f"no {MODEL_FILE}")
    config = read_config(directory)
    model = build_model(config)
    load_weights(directory, {MODULE: model})
    return model.to(device), config


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_recognizer(path: str | Path, device: str | None = None, clip_window: int | None = None,
                    clip_stride: int | None = None) -> FrameRecognizer | ClipRecognizer:
    """The recognizer saved in checkpoint directory ``path`` (or its ``model.safetensors``).

    DAN gives a frame recognizer; Emotion-FAN and MicroExpSTCNN give clip
    recognizers. ``clip_window`` and ``clip_stride`` (frames) set MicroExpSTCNN's
    sliding windows (default 18 and 9, see :mod:`.stcnn`); other models ignore them.
    ``device`` defaults to CUDA when available.

    Raises:
        InputError: ``path`` is not a checkpoint written by training.
    """
    path = Path(path)
    directory = path.parent if path.name == MODEL_FILE else path
    target = torch.device(device) if device else default_device()
    model, config = read_checkpoint(directory, target)
    if config.source:  # imported: the authors' numbers, not a training run's
        trained = f"{config.source}; trained on {config.label_set}, backbone {config.backbone}"
    else:
        accuracy = "n/a" if config.val_accuracy is None else f"{config.val_accuracy:.3f}"
        trained = (f"trained on {config.label_set}, epoch {config.epoch}, validation accuracy {accuracy}, "
                   f"backbone {config.backbone}")
    kind = recognizer_model(config.model)
    info = RecognizerInfo(
        name=f"{config.model} ({config.label_set})",
        label_set=config.label_set,
        labels=tuple(config.labels),
        kind=kind.kind,
        source=f"{directory} ({trained})",
    )
    return kind.recognizer(model, info, config, target, clip_window, clip_stride)
