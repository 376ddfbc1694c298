"""Training DAN, Emotion-FAN and MicroExpSTCNN on their datasets with one resumable loop.

:func:`train_recognizer` reads a dataset (:mod:`.datasets`), builds the model, and
runs :func:`fit`, which writes into the output folder ``OUT``::

    OUT/last/    checkpoint after the latest epoch, with training.pt to resume from
    OUT/best/    checkpoint of the epoch with the best validation accuracy
    OUT/log.csv  one row per epoch: lr, training and validation loss and accuracy
    OUT/steps.csv  one row per ``log_every`` steps: running training loss and accuracy

A run whose ``OUT/last`` exists continues after its saved epoch (unless ``resume``
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

import csv
import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ...errors import EmoportraitError, InputError
from ...media import atomic_output
from ..labels import label_set
from . import dan, fan, stcnn
from .checkpoints import (FROM_SCRATCH, MODELS, CheckpointConfig, build_model, default_device, load_weights,
                          read_config, read_training_state, save_checkpoint)
from .datasets import SampleDataset, Split, read_dataset
from .resnet import load_backbone

logger = logging.getLogger(__name__)

EPOCH_COLUMNS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")
STEP_COLUMNS = ("epoch", "step", "loss", "accuracy")


@dataclass(frozen=True)
class Recipe:
    """A model's paper training recipe and what it trains on."""

    datasets: tuple[str, ...]
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


RECIPES: dict[str, Recipe] = {
    "dan": Recipe(("rafdb", "affectnet8"), epochs=40, batch=256, lr=0.1, momentum=0.9, weight_decay=1e-4,
                  lr_step=10, lr_gamma=0.1, image_size=dan.INPUT_SIZE, frames=1, val_batch=None, has_trunk=True),
    "fan": Recipe(("ckplus",), epochs=60, batch=48, lr=1e-2, momentum=0.9, weight_decay=1e-4,
                  lr_step=30, lr_gamma=0.2, image_size=fan.INPUT_SIZE, frames=fan.TRAIN_FRAMES, val_batch=1,
                  has_trunk=True),
    "stcnn": Recipe(("smic",), epochs=100, batch=16, lr=0.01, momentum=0.0, weight_decay=0.0,
                    lr_step=1, lr_gamma=1.0, image_size=stcnn.INPUT_SIZE, frames=stcnn.DEPTH, val_batch=None,
                    has_trunk=False),
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
        device: "cpu" or "cuda"; None picks CUDA when available.
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
        InputError: a count or rate that is not positive.
    """
    defaults = {name: getattr(recipe, name) for name in ("epochs", "batch", "lr", "image_size", "frames")}
    config = dataclasses.replace(config, **{name: value for name, value in defaults.items()
                                            if getattr(config, name) is None})
    for name in ("epochs", "batch", "lr", "image_size", "frames", "log_every", "max_steps"):
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise InputError(f"training setting {name} must be positive, got {value}")
    return config


def _device(config: TrainConfig) -> torch.device:
    if config.device is None:
        return default_device()
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{config.device}' was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(config.device)


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


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    with atomic_output(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _append_csv(path: Path, columns: Sequence[str], row: dict[str, Any]) -> None:
    with path.open("a", newline="") as handle:
        csv.DictWriter(handle, columns).writerow(row)


class _Meter:
    """Running sums of loss and correct predictions over samples."""

    def __init__(self) -> None:
        self.loss = self.correct = self.count = 0.0

    def add(self, loss: float, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss += loss * len(labels)
        self.correct += (logits.argmax(dim=1) == labels).sum().item()
        self.count += len(labels)

    def means(self) -> tuple[float, float]:
        """Mean loss and accuracy (NaN when empty)."""
        if not self.count:
            return math.nan, math.nan
        return self.loss / self.count, self.correct / self.count


@dataclass
class _Run:
    """What one training run needs besides the model; ``state`` is what ``training.pt`` stores."""

    out: Path
    config: TrainConfig
    checkpoint: CheckpointConfig
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    state: dict[str, Any]


def _train_epoch(model: nn.Module, loader: DataLoader, run: _Run, epoch: int) -> tuple[float, float]:
    """One pass over ``loader`` (at most ``max_steps`` steps); mean training loss and accuracy."""
    model.train()
    total, window = _Meter(), _Meter()
    limit = min(len(loader), run.config.max_steps or len(loader))
    bar = tqdm(loader, total=limit, desc=f"epoch {epoch}/{run.config.epochs}", unit="step", leave=False)
    for step, (inputs, labels) in enumerate(bar, start=1):
        inputs, labels = inputs.to(run.device), labels.to(run.device)
        loss, logits = model.training_loss(inputs, labels)
        if not torch.isfinite(loss):
            raise EmoportraitError(f"training diverged at epoch {epoch}, step {step} (loss {loss.item()}); "
                             f"lower the learning rate (now {run.config.lr})")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.state["step"] += 1
        for meter in (total, window):
            meter.add(loss.item(), logits.detach(), labels)
        bar.set_postfix(loss=f"{total.means()[0]:.3f}", acc=f"{total.means()[1]:.3f}")
        if step % run.config.log_every == 0:
            loss_mean, accuracy = window.means()
            _append_csv(run.out / "steps.csv", STEP_COLUMNS,
                        {"epoch": epoch, "step": run.state["step"], "loss": loss_mean, "accuracy": accuracy})
            window = _Meter()
        if step >= limit:
            break
    return total.means()


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device,
             max_steps: int | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` over ``loader`` (at most ``max_steps`` batches)."""
    model.eval()
    meter = _Meter()
    for step, (inputs, labels) in enumerate(loader, start=1):
        inputs, labels = inputs.to(device), labels.to(device)
        logits = model(inputs)
        meter.add(F.cross_entropy(logits, labels).item(), logits, labels)
        if max_steps is not None and step >= max_steps:
            break
    return meter.means()


def _resume(model: nn.Module, run: _Run) -> None:
    """Load ``OUT/last`` into the model, optimizer, scheduler and ``run.state``; trim ``steps.csv`` to it."""
    last = run.out / "last"
    saved = read_config(last)
    ours = run.checkpoint
    if (saved.model, saved.label_set, saved.input_size, saved.frames) != (ours.model, ours.label_set,
                                                                          ours.input_size, ours.frames):
        raise InputError(f"'{last}' holds a {saved.model} run on {saved.label_set} ({saved.input_size} px, "
                         f"{saved.frames} frames), not this {ours.model} run on {ours.label_set}; give another "
                         "output folder or turn resuming off to start over")
    load_weights(model, last)
    state = read_training_state(last)
    run.optimizer.load_state_dict(state.pop("optimizer"))
    run.scheduler.load_state_dict(state.pop("scheduler"))
    torch.set_rng_state(state.pop("rng"))
    run.state.update(state)
    steps = [row for row in _read_csv(run.out / "steps.csv") if int(row["epoch"]) <= state["epoch"]]
    _write_csv(run.out / "steps.csv", STEP_COLUMNS, steps)


def _save(model: nn.Module, run: _Run, epoch: int, accuracy: float) -> None:
    """Write ``OUT/last`` (with the training state) and ``OUT/log.csv``; ``OUT/best`` when ``accuracy`` is best."""
    checkpoint = dataclasses.replace(run.checkpoint, epoch=epoch, val_accuracy=accuracy)
    is_best = accuracy > run.state["best_accuracy"]
    if is_best:
        run.state["best_accuracy"] = accuracy
    run.state["epoch"] = epoch
    state = {**run.state, "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
             "rng": torch.get_rng_state()}
    save_checkpoint(run.out / "last", model, checkpoint, state)
    _write_csv(run.out / "log.csv", EPOCH_COLUMNS, run.state["history"])
    if is_best:
        save_checkpoint(run.out / "best", model, checkpoint)


def fit(model: nn.Module, train_set: SampleDataset, val_set: SampleDataset, recipe: Recipe, config: TrainConfig,
        checkpoint: CheckpointConfig, out: Path) -> Path:
    """Train ``model`` (which has ``training_loss(inputs, labels) -> (loss, logits)``) for
    ``config.epochs`` epochs in all, resuming from ``out/last``; return ``out/best``.

    ``config`` must be resolved (:func:`resolve`). The learning rate steps by the
    recipe's schedule once per epoch; each epoch ends with a validation pass and a
    checkpoint.
    """
    device = _device(config)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.lr_step, gamma=recipe.lr_gamma)
    run = _Run(out, config, checkpoint, device, optimizer, scheduler,
               {"epoch": 0, "step": 0, "best_accuracy": -1.0, "history": []})
    out.mkdir(parents=True, exist_ok=True)
    if config.resume and (out / "last").is_dir():
        _resume(model, run)
        logger.info("resuming '%s' after epoch %d: training epochs %d to %d",
                    out / "last", run.state["epoch"], run.state["epoch"] + 1, config.epochs)
    else:
        _write_csv(out / "steps.csv", STEP_COLUMNS, [])
    if run.state["epoch"] >= config.epochs:
        logger.info("'%s' already holds %d epochs; nothing to train", out / "last", run.state["epoch"])
    # Batch norm cannot train on a batch of one, so a short last batch is dropped.
    train_loader = DataLoader(train_set, batch_size=config.batch, shuffle=True, num_workers=config.num_workers,
                              drop_last=len(train_set) > config.batch, pin_memory=device.type == "cuda")
    val_loader = DataLoader(val_set, batch_size=recipe.val_batch or config.batch, num_workers=config.num_workers,
                            pin_memory=device.type == "cuda")
    for epoch in range(run.state["epoch"] + 1, config.epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_accuracy = _train_epoch(model, train_loader, run, epoch)
        scheduler.step()
        val_loss, val_accuracy = evaluate(model, val_loader, device, config.max_steps)
        run.state["history"].append({
            "epoch": epoch, "lr": lr, "train_loss": train_loss, "train_accuracy": train_accuracy,
            "val_loss": val_loss, "val_accuracy": val_accuracy, "seconds": round(time.perf_counter() - started, 2)})
        _save(model, run, epoch, val_accuracy)
        logger.info("epoch %d/%d: train loss %.4f acc %.3f, validation loss %.4f acc %.3f",
                    epoch, config.epochs, train_loss, train_accuracy, val_loss, val_accuracy)
    return out / "best"


def train_recognizer(model: str, dataset: str, root: Path, out: Path, config: TrainConfig = TrainConfig()) -> Path:
    """Train recognizer ``model`` ("dan", "fan", "stcnn") on ``dataset`` under ``root``; return ``out/best``.

    DAN trains on "rafdb" or "affectnet8", Emotion-FAN on "ckplus", MicroExpSTCNN on
    "smic". Settings left ``None`` in ``config`` follow the paper recipe.

    Raises:
        InputError: an unknown model or dataset, a pairing the model does not train on,
            a bad dataset folder, backbone file or output folder of another run.
    """
    if model not in MODELS:
        raise InputError(f"unknown recognizer model '{model}'; choose one of {', '.join(MODELS)}")
    recipe = RECIPES[model]
    if dataset not in recipe.datasets:
        raise InputError(f"{model} trains on {' or '.join(recipe.datasets)}, not '{dataset}'")
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
    return fit(network, train_set, val_set, recipe, config, checkpoint, Path(out))
