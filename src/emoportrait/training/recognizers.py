"""Training DAN, Emotion-FAN and MicroExpSTCNN on their datasets through the training engine.

:func:`train_recognizer` reads a dataset (:mod:`emoportrait.analysis.recognizers.datasets`),
builds the model, and trains it as a :class:`RecognizerStage` with :func:`.engine.fit`
(CPU, one GPU, or several under torchrun), which writes into the output folder ``OUT``::

    OUT/last/    checkpoint after the latest epoch, with training.pt to resume from
    OUT/best/    checkpoint of the epoch with the best validation accuracy
    OUT/log.csv  one row per epoch: lr, training and validation loss and accuracy
    OUT/steps.csv  one row per ``log_every`` steps: running training loss and accuracy
    OUT/tensorboard/  the same as TensorBoard events

Each checkpoint is ``model.safetensors`` + ``config.yaml`` (:mod:`emoportrait.analysis.recognizers.checkpoints`). A
run whose ``OUT/last`` exists continues after its saved epoch (unless ``resume``
is off, which starts over). The paper recipes are the defaults (:data:`RECIPES`):

- DAN (RAF-DB): SGD lr 0.1, momentum 0.9, weight decay 1e-4, StepLR(10, 0.1),
  40 epochs, batch 256. The same recipe is used for AffectNet-8 (the authors'
  AffectNet script uses Adam and class-balanced sampling instead).
- Emotion-FAN (CK+): SGD lr 0.01, momentum 0.9, weight decay 1e-4, StepLR(30, 0.2),
  60 epochs, batch 48; validation scores every frame of a clip, one clip per batch.
- MicroExpSTCNN (SMIC): SGD lr 0.01 (Keras' plain SGD: no momentum, no schedule),
  100 epochs, batch 16.

DAN and Emotion-FAN start their ResNet-18 trunk from a user-supplied weights file
(``backbone``) or from scratch; the papers start from MS-Celeb-1M (DAN) and FER+
(Emotion-FAN) weights that are only distributed as Google-Drive files.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from ..analysis.labels import label_set
from ..analysis.recognizers import dan, fan, stcnn
from ..analysis.recognizers.checkpoints import FROM_SCRATCH, MODULE, CheckpointConfig, build_model
from ..analysis.recognizers.datasets import SampleDataset, Split, read_dataset
from ..analysis.recognizers.registry import recognizer_model
from ..analysis.recognizers.resnet import load_backbone
from ..errors import InputError
from .engine import EngineConfig, Monitor, Stage, StepContext, fit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """A model's paper training recipe (what it trains on:
    :attr:`emoportrait.analysis.recognizers.registry.RecognizerModel.label_sets`)."""

    epochs: int
    batch: int
    lr: float
    momentum: float
    weight_decay: float
    lr_step: int          # epochs between learning-rate decays
    lr_gamma: float       # decay factor (1 = constant)
    image_size: int       # pixels
    frames: int           # FAN: frames per training sample; STCNN: clip depth; DAN: 1
    val_batch: int | None  # None: the training batch
    has_trunk: bool       # a ResNet-18 trunk that --backbone can initialise
    size_step: int = 1    # image sizes the network takes: multiples of this ...
    min_size: int = 1     # ... of at least this
    min_frames: int = 1   # fewest frames a sample may have


RECIPES: dict[str, Recipe] = {
    "dan": Recipe(epochs=40, batch=256, lr=0.1, momentum=0.9, weight_decay=1e-4,
                  lr_step=10, lr_gamma=0.1, image_size=dan.INPUT_SIZE, frames=1, val_batch=None, has_trunk=True,
                  size_step=32, min_size=32),
    "fan": Recipe(epochs=60, batch=48, lr=1e-2, momentum=0.9, weight_decay=1e-4,
                  lr_step=30, lr_gamma=0.2, image_size=fan.INPUT_SIZE, frames=fan.TRAIN_FRAMES, val_batch=1,
                  has_trunk=True, size_step=32, min_size=32),
    "stcnn": Recipe(epochs=100, batch=16, lr=0.01, momentum=0.0, weight_decay=0.0,
                    lr_step=1, lr_gamma=1.0, image_size=stcnn.INPUT_SIZE, frames=stcnn.DEPTH, val_batch=None,
                    has_trunk=False, min_size=5, min_frames=17),
}


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; ``None`` means the model's paper recipe (:data:`RECIPES`).

    Attributes:
        epochs: epochs to train in all (a resumed run continues up to this many).
        batch: samples per step.
        lr: initial learning rate.
        image_size: input side in pixels (DAN and FAN: multiples of 32; STCNN ≥ 5).
        frames: Emotion-FAN's frames per training sample, or MicroExpSTCNN's clip depth (≥ 17).
        fold: validation fold of CK+ (1-10) or SMIC (1-5); unused by RAF-DB and AffectNet.
        backbone: ResNet-18 weights file (safetensors or torch state dict) for DAN/FAN;
            None trains the trunk from scratch.
        max_steps: at most this many training steps (and validation batches) per epoch.
        device: "cpu" or "cuda"; None picks CUDA when available (under torchrun, each
            rank's GPU).
        seed: seed of torch's random stream (shuffling, augmentation, initialisation).
        num_workers: data-loading worker processes.
        resume: continue from ``OUT/last`` when it exists.
        log_every: training steps per row of ``steps.csv``.
    """

    epochs: int | None = None
    batch: int | None = None
    lr: float | None = None
    image_size: int | None = None
    frames: int | None = None
    fold: int = 1
    backbone: str | None = None
    max_steps: int | None = None
    device: str | None = None
    seed: int = 0
    num_workers: int = 0
    resume: bool = True
    log_every: int = 50


def resolve(config: TrainConfig, recipe: Recipe) -> TrainConfig:
    """``config`` with every ``None`` recipe setting replaced by the recipe's value.

    Raises:
        InputError: a count or rate that is not positive (or not a number), or an image
            size or frame count the network cannot take.
    """
    defaults = {name: getattr(recipe, name) for name in ("epochs", "batch", "lr", "image_size", "frames")}
    config = dataclasses.replace(config, **{name: value for name, value in defaults.items()
                                            if getattr(config, name) is None})
    for name in ("epochs", "batch", "lr", "image_size", "frames", "log_every", "max_steps"):
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise InputError(f"training setting {name} must be positive, got {value}")
    size = config.image_size
    if size % recipe.size_step or size < recipe.min_size:
        rule = f"a multiple of {recipe.size_step}" if recipe.size_step > 1 else f"at least {recipe.min_size}"
        raise InputError(f"image size {size} does not fit this network: it takes {rule} pixels "
                         f"(its paper's size is {recipe.image_size}); pass another --image-size")
    if config.frames < recipe.min_frames:
        raise InputError(f"{config.frames} frames per sample are too few for this network: "
                         f"it takes at least {recipe.min_frames}")
    return config


def _datasets(model: str, split: Split, config: TrainConfig) -> tuple[SampleDataset, SampleDataset,
                                                                        tuple[float, ...], tuple[float, ...]]:
    """Training and validation datasets of ``model`` and its input normalisation ``(mean, std)``."""
    size, frames = config.image_size, config.frames
    if model == "dan":
        return (SampleDataset(split.train, partial(dan.training_sample, size=size)),
                SampleDataset(split.val, partial(dan.eval_sample, size=size)), dan.MEAN, dan.STD)
    if model == "fan":
        return (SampleDataset(fan.training_items(split.train), partial(fan.training_sample, size=size, frames=frames)),
                SampleDataset(split.val, partial(fan.eval_sample, size=size)), fan.MEAN, fan.STD)
    mean, scale = stcnn.normalisation(split.train, size, frames)
    sample = partial(stcnn.sample, size=size, depth=frames, mean=mean, scale=scale)
    return SampleDataset(split.train, sample), SampleDataset(split.val, sample), (mean,), (scale,)


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == labels).float().mean().item()


class RecognizerStage(Stage):
    """A recognizer network (with ``training_loss(inputs, labels) -> (loss, logits)``) as an engine stage.

    One SGD optimizer with the recipe's momentum, weight decay and StepLR schedule;
    validation reports cross-entropy and accuracy, and the epoch with the best
    validation accuracy is kept in ``OUT/best``. The saved ``config.yaml`` is the
    :class:`CheckpointConfig`, with the epoch and its validation accuracy.
    """

    monitor = Monitor("val_accuracy", "max")

    def __init__(self, network: nn.Module, recipe: Recipe, config: TrainConfig, checkpoint: CheckpointConfig) -> None:
        self.name = checkpoint.model
        self.network, self.recipe, self.lr, self.checkpoint = network, recipe, config.lr, checkpoint

    def modules(self) -> dict[str, nn.Module]:
        return {MODULE: self.network}

    def configure_optimizers(self) -> tuple[dict[str, torch.optim.Optimizer], dict[str, LRScheduler]]:
        optimizer = torch.optim.SGD(self.network.parameters(), lr=self.lr, momentum=self.recipe.momentum,
                                    weight_decay=self.recipe.weight_decay)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.recipe.lr_step,
                                                    gamma=self.recipe.lr_gamma)
        return {"sgd": optimizer}, {"sgd": scheduler}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], context: StepContext) -> dict[str, float]:
        inputs, labels = batch
        with context.autocast():
            loss, logits = context.call(MODULE, "training_loss", inputs, labels)
        context.backward(loss, "sgd")
        return {"loss": loss.item(), "accuracy": _accuracy(logits, labels)}

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        inputs, labels = batch
        logits = self.network(inputs)
        return {"loss": F.cross_entropy(logits, labels).item(), "accuracy": _accuracy(logits, labels)}

    def config(self) -> CheckpointConfig:
        return self.checkpoint

    def resume_settings(self) -> dict[str, Any]:
        """The network's kind and shape: a run resumes with other epochs, batch or learning rate."""
        return {name: getattr(self.checkpoint, name) for name in ("label_set", "input_size", "frames")}

    def on_epoch_end(self, epoch: int, metrics: dict[str, Any], out: Path) -> None:
        self.checkpoint = dataclasses.replace(self.checkpoint, epoch=epoch, val_accuracy=metrics["val_accuracy"])


def _engine_config(config: TrainConfig, recipe: Recipe) -> EngineConfig:
    return EngineConfig(epochs=config.epochs, batch_size=config.batch, val_batch_size=recipe.val_batch,
                        device=config.device, num_workers=config.num_workers, seed=config.seed,
                        log_every=config.log_every, max_steps_per_epoch=config.max_steps, resume=config.resume)


def train_recognizer(model: str, dataset: str, root: Path, out: Path, config: TrainConfig = TrainConfig()) -> Path:
    """Train recognizer ``model`` ("dan", "fan", "stcnn") on ``dataset`` under ``root``; return ``out/best``.

    DAN trains on "rafdb" or "affectnet8", Emotion-FAN on "ckplus", MicroExpSTCNN on
    "smic". Settings left ``None`` in ``config`` follow the paper recipe.

    Raises:
        InputError: an unknown model or dataset, a pairing the model does not train on,
            a bad dataset folder, backbone file or output folder of another run.
    """
    datasets = recognizer_model(model).label_sets
    recipe = RECIPES[model]
    if dataset not in datasets:
        raise InputError(f"{model} trains on {' or '.join(datasets)}, not '{dataset}'")
    if config.backbone and not recipe.has_trunk:
        raise InputError(f"{model} has no ResNet-18 trunk; leave out the backbone file")
    config = resolve(config, recipe)
    torch.manual_seed(config.seed)
    split = read_dataset(dataset, root, config.fold)
    train_set, val_set, mean, std = _datasets(model, split, config)
    backbone = "none" if not recipe.has_trunk else config.backbone or FROM_SCRATCH
    checkpoint = CheckpointConfig(
        model=model, label_set=dataset, labels=list(label_set(dataset)), input_size=config.image_size,
        frames=config.frames, mean=[float(m) for m in mean], std=[float(s) for s in std], backbone=backbone,
        dataset_root=str(root), training={**dataclasses.asdict(config), "momentum": recipe.momentum,
                                          "weight_decay": recipe.weight_decay, "lr_step": recipe.lr_step,
                                          "lr_gamma": recipe.lr_gamma},
    )
    network = build_model(checkpoint)
    if config.backbone:
        load_backbone(network.trunk, config.backbone)
        logger.info("%s: ResNet-18 trunk initialised from '%s'", model, config.backbone)
    elif recipe.has_trunk:
        logger.info("%s: no backbone file given; training the ResNet-18 trunk from scratch "
                    "(the paper starts from pretrained weights, so expect lower accuracy)", model)
    logger.info("%s on %s: %d training and %d validation samples", model, dataset, len(train_set), len(val_set))
    fit(RecognizerStage(network, recipe, config, checkpoint), train_set, val_set, Path(out),
        _engine_config(config, recipe))
    return Path(out) / "best"
