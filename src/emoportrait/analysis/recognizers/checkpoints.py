"""Checkpoint directories of the trained recognizers (DAN, Emotion-FAN, MicroExpSTCNN).

A checkpoint is a directory::

    model.safetensors   the network's weights (and DAN's affinity centres)
    config.yaml         CheckpointConfig: model kind, label set and labels, input
                        size, frames, normalisation, backbone source, training settings
    training.pt         optional, training runs' ``last`` only: optimizer and scheduler
                        state, epoch, history (torch.save; read with weights_only=True)

Directories are written whole into a temporary sibling and swapped in, so a crash
never leaves a half-written checkpoint. :func:`load_recognizer` turns one into the
matching frame or clip recognizer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ...config import load_config, save_config
from ...errors import InputError
from .base import ClipRecognizer, FrameRecognizer, RecognizerInfo
from .dan import DAN, DanRecognizer
from .fan import FAN, FanRecognizer
from .stcnn import STCNN, StcnnRecognizer

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
STATE_FILE = "training.pt"
MODELS: tuple[str, ...] = ("dan", "fan", "stcnn")
FROM_SCRATCH = "from scratch"
"""``backbone`` of a network whose ResNet-18 trunk started from random weights."""


@dataclass(frozen=True)
class CheckpointConfig:
    """What a checkpoint's weights are and how to feed them (``config.yaml``).

    Attributes:
        model: "dan", "fan" or "stcnn".
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


def _not_a_checkpoint(path: Path, reason: str) -> InputError:
    return InputError(f"'{path}' is not a dan/fan/stcnn checkpoint ({reason}); "
                      "train one with: emoportrait train fer --model dan ...")


def build_model(config: CheckpointConfig) -> nn.Module:
    """A freshly initialised network of the kind and size ``config`` describes."""
    if config.model == "dan":
        return DAN(len(config.labels))
    if config.model == "fan":
        return FAN(len(config.labels))
    if config.model == "stcnn":
        return STCNN(len(config.labels), depth=config.frames, size=config.input_size)
    raise InputError(f"unknown recognizer model '{config.model}'; choose one of {', '.join(MODELS)}")


def _swap_in(directory: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary sibling of ``directory``, then replace ``directory`` with it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        write(temporary)
        retired = directory.with_name(f".{directory.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        if directory.exists():
            os.replace(directory, retired)
        os.replace(temporary, directory)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def save_checkpoint(directory: str | Path, model: nn.Module, config: CheckpointConfig,
                    training_state: dict[str, Any] | None = None) -> None:
    """Write ``model``'s weights, ``config`` and optionally a training state as checkpoint ``directory``.

    ``training_state`` must hold only what ``torch.load(weights_only=True)`` reads back:
    tensors, numbers, strings, lists and dicts (optimizer and scheduler state dicts do).
    """
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}

    def write(folder: Path) -> None:
        save_file(weights, folder / MODEL_FILE, metadata={"format": "pt", "model": config.model})
        save_config(config, folder / CONFIG_FILE)
        if training_state is not None:
            torch.save(training_state, folder / STATE_FILE)

    _swap_in(Path(directory), write)


def read_config(directory: str | Path) -> CheckpointConfig:
    """The ``config.yaml`` of checkpoint ``directory``."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        raise _not_a_checkpoint(directory, f"no {CONFIG_FILE}")
    try:
        config = load_config(CheckpointConfig, directory / CONFIG_FILE)
    except TypeError as exc:  # a required setting is missing
        raise _not_a_checkpoint(directory, f"its {CONFIG_FILE} is incomplete: {exc}") from exc
    if config.model not in MODELS:
        raise _not_a_checkpoint(directory, f"its {CONFIG_FILE} names model '{config.model}'")
    return config


def load_weights(model: nn.Module, directory: str | Path) -> None:
    """Copy the ``model.safetensors`` of checkpoint ``directory`` into ``model``.

    Raises:
        InputError: the file is missing or unreadable, or its tensors do not fit ``model``.
    """
    directory = Path(directory)
    if not (directory / MODEL_FILE).is_file():
        raise _not_a_checkpoint(directory, f"no {MODEL_FILE}")
    try:
        weights = load_file(directory / MODEL_FILE)
    except (SafetensorError, OSError) as exc:
        raise _not_a_checkpoint(directory, f"{MODEL_FILE} is unreadable: {exc}") from exc
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise _not_a_checkpoint(directory, f"{MODEL_FILE} does not fit its {CONFIG_FILE}") from exc


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
    load_weights(model, directory)
    return model.to(device), config


def read_training_state(directory: str | Path) -> dict[str, Any]:
    """The ``training.pt`` of checkpoint ``directory``, loaded with ``weights_only=True`` onto the CPU."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise InputError(f"'{directory}' holds no training state ({STATE_FILE}); it cannot be resumed, "
                         "so start the training over without resuming")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise InputError(f"training state '{path}' is unreadable ({type(exc).__name__}); "
                         "start the training over without resuming") from exc


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
    accuracy = "n/a" if config.val_accuracy is None else f"{config.val_accuracy:.3f}"
    info = RecognizerInfo(
        name=f"{config.model} ({config.label_set})",
        label_set=config.label_set,
        labels=tuple(config.labels),
        kind="frame" if config.model == "dan" else "clip",
        source=(f"{directory} (trained on {config.label_set}, epoch {config.epoch}, validation accuracy "
                f"{accuracy}, backbone {config.backbone})"),
    )
    if isinstance(model, DAN):
        return DanRecognizer(model, info, config.input_size, target)
    if isinstance(model, FAN):
        return FanRecognizer(model, info, config.input_size, target)
    return StcnnRecognizer(model, info, config.input_size, config.frames, config.mean[0], config.std[0], target,
                           window=clip_window, stride=clip_stride)
