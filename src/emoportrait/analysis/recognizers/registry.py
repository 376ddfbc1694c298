"""The recognizer networks a checkpoint can hold, by name: one entry each.

Loading checkpoints (:mod:`.checkpoints`), training (:mod:`.training`), importing the
authors' weights (:mod:`emoportrait.importing.recognizers`) and the command line find
a model here. Adding one is a module with its network and recognizer, an entry in
:data:`MODELS`, a training recipe and, if its authors released weights, an importer.
Nothing is imported from torch until a network is built, so the command line's help
stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .base import ClipRecognizer, FrameRecognizer, RecognizerInfo
    from .checkpoints import CheckpointConfig

TASKS = {"fer": "facial-expression recognizer", "mer": "micro-expression recognizer"}
"""What a model recognizes: ``analyze --fer`` or ``--mer``, ``train fer`` or ``train mer``."""


@dataclass(frozen=True)
class RecognizerModel:
    """One recognizer network.

    Attributes:
        name: its name in checkpoints and on the command line ("dan").
        title: what it is, for help texts ("DAN").
        task: a key of :data:`TASKS`.
        kind: "frame" (a verdict per frame) or "clip" (per window of frames).
        label_sets: the label sets (data sets) it trains on; its releases use them too.
        release: the weights its authors released, for ``import-weights``' help.
        network: a fresh network for a checkpoint's config.
        recognizer: ``(network with weights, info, config, device, clip window, clip stride)``
            → the recognizer ``analyze`` runs (the clip settings are in frames; None: the
            model's defaults, and frame recognizers ignore them).
    """

    name: str
    title: str
    task: str
    kind: str
    label_sets: tuple[str, ...]
    release: str
    network: Callable[[CheckpointConfig], nn.Module]
    recognizer: Callable[[nn.Module, RecognizerInfo, CheckpointConfig, torch.device, int | None, int | None],
                         FrameRecognizer | ClipRecognizer]


def _dan_network(config: CheckpointConfig) -> nn.Module:
    from .dan import DAN

    return DAN(len(config.labels))


def _dan_recognizer(network, info, config, device, window, stride):
    from .dan import DanRecognizer

    return DanRecognizer(network, info, config.input_size, device)


def _fan_network(config: CheckpointConfig) -> nn.Module:
    from .fan import FAN

    return FAN(len(config.labels))


def _fan_recognizer(network, info, config, device, window, stride):
    from .fan import FanRecognizer

    return FanRecognizer(network, info, config.input_size, device)


def _stcnn_network(config: CheckpointConfig) -> nn.Module:
    from .stcnn import STCNN

    return STCNN(len(config.labels), depth=config.frames, size=config.input_size)


def _stcnn_recognizer(network, info, config, device, window, stride):
    from .stcnn import StcnnRecognizer

    return StcnnRecognizer(network, info, config.input_size, config.frames, config.mean[0], config.std[0], device,
                           window=window, stride=stride)


MODELS: dict[str, RecognizerModel] = {model.name: model for model in (
    RecognizerModel("dan", "DAN", "fer", "frame", ("rafdb", "affectnet8"),
                    "DAN (yaoing/DAN), e.g. rafdb_epoch21_acc0.897_bacc0.8532.pth", _dan_network, _dan_recognizer),
    RecognizerModel("fan", "Emotion-FAN", "fer", "clip", ("ckplus",),
                    "Emotion-FAN (Open-Debin/Emotion-FAN) trained with its authors' code on CK+",
                    _fan_network, _fan_recognizer),
    RecognizerModel("stcnn", "MicroExpSTCNN", "mer", "clip", ("smic",), "MicroExpSTCNN (Keras .h5/.hdf5, SMIC)",
                    _stcnn_network, _stcnn_recognizer),
)}
"""Every recognizer network, by name."""


def recognizer_model(name: str) -> RecognizerModel:
    """The model called ``name``.

    Raises:
        InputError: no model has that name.
    """
    if name not in MODELS:
        raise InputError(f"unknown recognizer model '{name}'; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def models_for(task: str) -> list[RecognizerModel]:
    """The models of one task (a key of :data:`TASKS`), in registry order."""
    return [model for model in MODELS.values() if model.task == task]
