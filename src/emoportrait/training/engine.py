"""The one training loop of emoportrait: every trainable model runs through :func:`fit`.

A model takes part by implementing a :class:`Stage`: its modules, its optimizers and
learning-rate schedulers, one training step, one validation step and the config
that made it. :func:`fit` runs the stage on the CPU, one GPU, or several GPUs of a
``torchrun`` launch, and writes the run folder ``OUT``::

    OUT/last/          checkpoint after the latest epoch (and every ``checkpoint_every_steps``
                       steps), with training.pt to resume from
    OUT/best/          checkpoint of the epoch with the best monitored metric (stages
                       with a :class:`Monitor` only)
    OUT/log.csv        one row per epoch: epoch, lr (``lr_<optimizer>`` with several),
                       train_<metric> and val_<metric> means, seconds
    OUT/steps.csv      one row per ``log_every`` steps: epoch, step, and the training
                       metrics averaged since the previous row (rank 0's batches)
    OUT/tensorboard/   the same scalars as TensorBoard events ("train/…" per step,
                       "epoch/…" per epoch, both at the global step); skipped with a
                       warning when the tensorboard package is missing

A checkpoint folder (format, atomic writing and readers: :mod:`emoportrait.runs`) holds
one ``<name>.safetensors`` per entry of :meth:`Stage.modules` and the stage's
:meth:`Stage.config` as ``config.yaml``; ``last`` also holds ``training.pt``: where the
run stands (:class:`_State`), the optimizer, scheduler, grad-scaler and random states,
read back only with ``torch.load(weights_only=True)``.

While a run trains, ``OUT/.lock`` (an ``flock``, released when the process ends) makes
a second run on the same folder fail with a message naming the first.

Resuming: with ``resume`` on, a run whose ``OUT/last`` exists continues after the
saved epoch (or mid-epoch, after the saved step), so a kill loses at most one epoch,
or at most ``checkpoint_every_steps`` steps. Runs are deterministic on the CPU: the
shuffling depends only on ``seed`` and the epoch, and the random states are saved,
so a resumed run ends with the same weights as an uninterrupted one. A ``last`` of
another stage, or one whose :meth:`Stage.resume_settings` differ, is refused.

Several GPUs (or CPU processes): under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`fit`
joins the process group (NCCL on CUDA, Gloo on the CPU), takes the GPU of its
``LOCAL_RANK``, wraps every module with trainable parameters in
:class:`~torch.nn.parallel.DistributedDataParallel` and gives each rank its share of
the data (:class:`~torch.utils.data.DistributedSampler`). Epoch means are averaged
over all ranks; only rank 0 writes logs, checkpoints and the progress bar.
``batch_size`` is per rank. A training step must call modules through
:meth:`StepContext.forward` / :meth:`StepContext.call` so DDP sees the calls, and
every such call must be followed by a backward pass that reaches all of that
module's trainable parameters (DDP's rule; do not toggle ``requires_grad``).

Mixed precision (``amp``, CUDA only): the step runs its forward pass inside
:meth:`StepContext.autocast`, and :meth:`StepContext.backward` scales the loss with a
:class:`torch.amp.GradScaler`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import itertools
import logging
import math
import os
import random
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from ..config import config_to_dict
from ..errors import EmoportraitError, InputError
from ..media import atomic_output
from ..runs import STATE_FILE, load_weights, recover_checkpoint, write_checkpoint

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"

Metrics = dict[str, float]


@dataclass(frozen=True)
class EngineConfig:
    """How :func:`fit` trains (the model's own numbers live in the stage's config).

    Attributes:
        epochs: epochs to train in all (a resumed run continues up to this many).
        batch_size: training samples per step (per rank under torchrun).
        val_batch_size: validation samples per batch; None: ``batch_size``.
        device: "cpu", "cuda" or "cuda:N"; None: CUDA when available, else the CPU.
            Under torchrun each rank takes the GPU of its ``LOCAL_RANK``.
        num_workers: data-loading worker processes.
        amp: mixed precision (autocast + gradient scaling); CUDA only, ignored with
            a warning on the CPU.
        seed: seeds the random streams and the shuffling.
        log_every: training steps per row of ``steps.csv``.
        max_steps_per_epoch: at most this many training steps (and validation
            batches) per epoch; None: whole passes.
        checkpoint_every_steps: also write ``OUT/last`` every this many steps.
        resume: continue from ``OUT/last`` when it exists; off starts over.
    """

    epochs: int
    batch_size: int
    val_batch_size: int | None = None
    device: str | None = None
    num_workers: int = 0
    amp: bool = False
    seed: int = 0
    log_every: int = 50
    max_steps_per_epoch: int | None = None
    checkpoint_every_steps: int | None = None
    resume: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "val_batch_size", "log_every", "max_steps_per_epoch",
                     "checkpoint_every_steps"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"training setting {name} must be positive, got {value}")
        for name in ("num_workers", "seed"):
            if getattr(self, name) < 0:
                raise InputError(f"training setting {name} must be 0 or more, got {getattr(self, name)}")


@dataclass(frozen=True)
class Monitor:
    """The ``log.csv`` column (e.g. "val_loss") whose best epoch is kept in ``OUT/best``."""

    metric: str
    mode: str = "min"  # "min" or "max"

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"Monitor mode must be 'min' or 'max', not '{self.mode}'")

    def improves(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` (None: nothing yet); NaN never does."""
        if math.isnan(value):
            return False
        return best is None or (value < best if self.mode == "min" else value > best)


@dataclass(frozen=True)
class FitResult:
    """Where :func:`fit` left its checkpoints and what it logged.

    Attributes:
        last: ``OUT/last``.
        best: ``OUT/best``; None when the stage has no monitor or no epoch scored.
        epochs: epochs trained in all.
        best_epoch: the epoch saved in ``best`` (None as for ``best``).
        history: the rows of ``log.csv``.
    """

    last: Path
    best: Path | None
    epochs: int
    best_epoch: int | None
    history: list[dict[str, Any]]


class _Dispatch(nn.Module):
    """Runs any method of ``module`` as its ``forward``, so DDP sees (and synchronises) every call."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, method: str, *args: Any, **kwargs: Any) -> Any:
        target = self.module if method == "forward" else getattr(self.module, method)
        return target(*args, **kwargs)


class StepContext:
    """What :meth:`Stage.training_step` trains with.

    Attributes:
        device: where the batch and the modules are.
        epoch: the epoch being trained (from 1).
        step: training steps done before this one, in all epochs.
        rank, world_size: this process and the number of processes (1 without torchrun).
        optimizers: the stage's optimizers by name.
    """

    def __init__(self, replicas: dict[str, nn.Module], optimizers: dict[str, Optimizer],
                 scaler: torch.amp.GradScaler, device: torch.device, rank: int, world_size: int) -> None:
        self.device, self.rank, self.world_size = device, rank, world_size
        self.optimizers = optimizers
        self.epoch = self.step = 0
        self._replicas = replicas
        self._scaler = scaler
        self._stepped = False

    def forward(self, module: str, *args: Any, **kwargs: Any) -> Any:
        """``modules()[module](*args, **kwargs)``, through DDP when distributed."""
        return self.call(module, "forward", *args, **kwargs)

    def call(self, module: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``modules()[module].<method>(*args, **kwargs)`` (e.g. a ``training_loss``), through DDP when distributed."""
        return self._replicas[module](method, *args, **kwargs)

    def autocast(self) -> AbstractContextManager:
        """The mixed-precision region for forward passes (does nothing unless ``amp`` is on)."""
        return torch.autocast(self.device.type, enabled=self._scaler.is_enabled())

    def backward(self, loss: torch.Tensor, optimizer: str, clip_grad_norm: float | None = None) -> None:
        """Clear ``optimizer``'s gradients, backpropagate ``loss`` (scaled under AMP), optionally clip
        the gradient norm to ``clip_grad_norm``, and step ``optimizer``.

        Raises:
            EmoportraitError: the loss is NaN or infinite (training diverged).
        """
        target = self.optimizers[optimizer]
        if not torch.isfinite(loss.detach()).all():
            raise EmoportraitError(
                f"training diverged at epoch {self.epoch}, step {self.step + 1} (loss {loss.detach().float().sum():g});"
                f" lower the learning rate (now {target.param_groups[0]['lr']:g} for optimizer '{optimizer}')")
        target.zero_grad(set_to_none=True)
        self._scaler.scale(loss).backward()
        if clip_grad_norm is not None:
            self._scaler.unscale_(target)
            nn.utils.clip_grad_norm_([p for group in target.param_groups for p in group["params"]], clip_grad_norm)
        self._scaler.step(target)
        self._stepped = True

    def end_step(self) -> None:
        """After a training step: update the AMP loss scale once, however many optimizers stepped
        (the engine calls it; a second update in a step would rescale on half the evidence)."""
        if self._stepped:
            self._scaler.update()
        self._stepped = False


class Stage(ABC):
    """One trainable thing: a recognizer, an EVP training stage, a GAN renderer.

    Subclasses set ``name`` (it names the run: a resume checks it) and implement the
    abstract methods; the other members are optional hooks.

    Attributes:
        name: the stage's name, e.g. "dan" or "audio2lm".
        monitor: the metric whose best epoch goes to ``OUT/best``; None: no ``best``.
    """

    name: str
    monitor: Monitor | None = None

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """The modules trained and saved, by name; each is saved as ``<name>.safetensors``.
        Always the same objects: :func:`fit` moves them to the device and loads resumed weights into them."""

    @abstractmethod
    def configure_optimizers(self) -> tuple[dict[str, Optimizer], dict[str, LRScheduler]]:
        """Optimizers over the modules' parameters and learning-rate schedulers, by name.
        Schedulers are stepped once per epoch; called after the modules are on the device."""

    @abstractmethod
    def training_step(self, batch: Any, context: StepContext) -> Metrics:
        """Train on one batch (already on the device): forward through ``context.forward``/``call``
        inside ``context.autocast()``, then ``context.backward(loss, optimizer)`` once per optimizer
        to step (a GAN steps its discriminator and its generator). Return scalars to log, the same
        keys every step."""

    @abstractmethod
    def validation_step(self, batch: Any) -> Metrics:
        """Scalars of one validation batch (already on the device; modules in eval mode, no gradients);
        :func:`fit` averages them over the validation set, weighted by batch size."""

    @abstractmethod
    def config(self) -> Any:
        """The config dataclass saved as ``config.yaml`` beside the weights."""

    def resume_settings(self) -> dict[str, Any]:
        """The settings a run must share with ``OUT/last`` to resume from it (default: the whole config)."""
        return config_to_dict(self.config())

    def on_epoch_end(self, epoch: int, metrics: dict[str, Any], out: Path) -> None:
        """Called on rank 0 after each epoch's validation, before its checkpoint is written, with the
        ``log.csv`` row: write sample images under ``out``, note what :meth:`config` should report, or
        add scalar columns to the row (the same ones every epoch) that it measured itself."""


@dataclass
class _World:
    """This process's place in a torchrun launch (rank 0 of 1 otherwise)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    owns_group: bool = False  # fit started the process group and ends it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


class _Means:
    """Weighted running means of named scalars."""

    def __init__(self, sums: dict[str, float] | None = None, weights: dict[str, float] | None = None) -> None:
        self.sums = dict(sums or {})
        self.weights = dict(weights or {})

    def add(self, metrics: Metrics, weight: float) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * weight
            self.weights[key] = self.weights.get(key, 0.0) + weight

    def means(self) -> Metrics:
        return {key: self.sums[key] / self.weights[key] for key in self.sums}

    def state(self) -> dict[str, dict[str, float]]:
        """A copy of the sums, as ``_Means(**state)`` takes them."""
        return {"sums": dict(self.sums), "weights": dict(self.weights)}

    def reduced(self, world: _World, device: torch.device) -> _Means:
        """The sums over all ranks (every rank must hold the same keys)."""
        if world.size == 1:
            return self
        keys = sorted(self.sums)
        totals = torch.tensor([self.sums[k] for k in keys] + [self.weights[k] for k in keys],
                              dtype=torch.float64, device=device)
        dist.all_reduce(totals)
        values = totals.tolist()
        return _Means(dict(zip(keys, values[:len(keys)])), dict(zip(keys, values[len(keys):])))


@dataclass
class _State:
    """Where the run stands; saved in ``training.pt`` with the optimizer and random states."""

    epoch: int = 0            # epochs completed
    step: int = 0             # training steps done in all
    batches_done: int = 0     # batches of epoch ``epoch + 1`` done (a mid-epoch checkpoint)
    best: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    partial: dict[str, dict[str, float]] = field(default_factory=dict)  # _Means of the unfinished epoch


# --- files ------------------------------------------------------------------------------------------


def _read_training_state(directory: Path) -> dict[str, Any]:
    """``training.pt`` of ``directory``, loaded with ``weights_only=True`` onto the CPU."""
    path = directory / STATE_FILE
    if not path.is_file():
        raise InputError(f"'{directory}' holds no training state ({STATE_FILE}) to resume from; "
                         "choose another --out or delete it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise InputError(f"training state '{path}' is unreadable ({type(exc).__name__}); "
                         "choose another --out or delete it") from exc


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``rows`` (columns: every key, in order of appearance) atomically."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_output(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def _append_csv(path: Path, row: Mapping[str, Any]) -> None:
    """Append ``row`` to ``path`` under its header, or under a header of ``row``'s keys when the file is new."""
    new = not path.is_file() or path.stat().st_size == 0
    if new:
        columns = list(row)
    else:
        with path.open(newline="") as handle:
            columns = next(csv.reader(handle))
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


# --- logs -------------------------------------------------------------------------------------------


class _Logs:
    """``steps.csv``, ``log.csv`` and TensorBoard of a run; inert on ranks other than 0."""

    def __init__(self, out: Path, active: bool, state: _State) -> None:
        """Cut the logs back to ``state`` (all of them for a fresh run); TensorBoard hides the
        events after ``state.step`` (no TensorBoard, with a warning, when it is not installed)."""
        self.out, self.active = out, active
        self.writer = None
        if not active:
            return
        steps = []
        if (out / "steps.csv").is_file():
            with (out / "steps.csv").open(newline="") as handle:
                steps = [row for row in csv.DictReader(handle) if int(row["step"]) <= state.step]
        for name, rows in (("steps.csv", steps), ("log.csv", state.history)):
            (out / name).unlink(missing_ok=True)
            if rows:
                _write_csv(out / name, rows)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning("the tensorboard package is not installed; logging to CSV only (pip install tensorboard)")
        else:
            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=state.step)

    def step(self, epoch: int, step: int, metrics: Metrics) -> None:
        if not self.active:
            return
        _append_csv(self.out / "steps.csv", {"epoch": epoch, "step": step, **metrics})
        self._scalars("train", metrics, step)

    def epoch(self, history: list[dict[str, Any]], step: int) -> None:
        if not self.active:
            return
        _write_csv(self.out / "log.csv", history)
        self._scalars("epoch", {k: v for k, v in history[-1].items() if k != "epoch"}, step)

    def _scalars(self, group: str, values: Mapping[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{group}/{key}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --- random state -----------------------------------------------------------------------------------


def _seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) random streams."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(device: torch.device) -> dict[str, Any]:
    """The random streams in types ``torch.load(weights_only=True)`` reads."""
    _, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": [version, list(internal), gauss_next]}


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


# --- setting up -------------------------------------------------------------------------------------


def _device(config: EngineConfig, local_rank: int, world_size: int) -> torch.device:
    """The device this process trains on."""
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise InputError(f"device '{config.device}' was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    if world_size > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def _join_world(device: torch.device, local_rank: int, size: int) -> _World:
    """Join the process group of a torchrun launch of ``size`` > 1 processes (NCCL on CUDA, else Gloo)."""
    if size <= 1:
        return _World()
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _World(dist.get_rank(), local_rank, dist.get_world_size(), owns)


def _replica(module: nn.Module, world: _World, device: torch.device) -> nn.Module:
    """What a step calls ``module`` through: DDP-wrapped when distributed and trainable."""
    dispatch = _Dispatch(module)
    if world.size == 1 or not any(p.requires_grad for p in module.parameters()):
        return dispatch
    return DistributedDataParallel(dispatch, device_ids=[device.index] if device.type == "cuda" else None)


def _grad_scaler(config: EngineConfig, device: torch.device, stage: Stage) -> torch.amp.GradScaler:
    if config.amp and device.type != "cuda":
        logger.warning("mixed precision needs CUDA; training %s in float32 on %s", stage.name, device)
    return torch.amp.GradScaler(device.type, enabled=config.amp and device.type == "cuda")


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as plain YAML types (tuples become lists), so saved and current settings compare."""
    return yaml.safe_load(yaml.safe_dump(values))


@dataclass
class _Run:
    """Everything one :func:`fit` call works with."""

    stage: Stage
    config: EngineConfig
    out: Path
    train_set: Dataset
    val_set: Dataset | None
    collate_fn: Callable | None
    device: torch.device
    world: _World
    optimizers: dict[str, Optimizer]
    schedulers: dict[str, LRScheduler]
    scaler: torch.amp.GradScaler
    settings: dict[str, Any]
    state: _State = field(default_factory=_State)

    def training_state(self) -> dict[str, Any]:
        """What ``training.pt`` stores."""
        return {"stage": self.stage.name, "settings": self.settings,
                "layout": [self.config.batch_size, self.world.size], **dataclasses.asdict(self.state),
                "optimizers": {name: o.state_dict() for name, o in self.optimizers.items()},
                "schedulers": {name: s.state_dict() for name, s in self.schedulers.items()},
                "scaler": self.scaler.state_dict(), "rng": _rng_state(self.device)}


def _differences(saved: dict[str, Any], ours: dict[str, Any]) -> str:
    """``key: X there, Y here`` for the settings that differ."""
    keys = [key for key in dict.fromkeys([*saved, *ours]) if saved.get(key) != ours.get(key)]
    return ", ".join(f"{key}: {saved.get(key)} there, {ours.get(key)} here" for key in keys)


def _check_resumable(saved: dict[str, Any], run: _Run) -> None:
    """Refuse a ``last`` of another stage, other settings, or other optimizers and schedulers."""
    where = run.out / "last"
    if not {"stage", "settings", "optimizers", "schedulers"} <= set(saved):
        raise InputError(f"'{where}' holds a training state this version cannot resume; "
                         "choose another --out or delete it")
    if saved["stage"] != run.stage.name:
        raise InputError(f"'{run.out}' holds a {saved['stage']} run, not a {run.stage.name} run; "
                         "choose another --out or delete it")
    # the names have spaces, so they cannot clash with a setting
    ours = {**run.settings, "optimizer names": sorted(run.optimizers), "scheduler names": sorted(run.schedulers)}
    theirs = {**saved["settings"], "optimizer names": sorted(saved["optimizers"]),
              "scheduler names": sorted(saved["schedulers"])}
    if ours != theirs:
        raise InputError(f"'{run.out}' holds a {saved['stage']} run with other settings "
                         f"({_differences(theirs, ours)}); choose another --out or delete it")


def _resume(run: _Run) -> None:
    """Load ``OUT/last``: weights, optimizer, scheduler, scaler and random states, and where the run stood."""
    last = run.out / "last"
    saved = _read_training_state(last)
    _check_resumable(saved, run)
    load_weights(last, run.stage.modules())
    for name, optimizer in run.optimizers.items():
        optimizer.load_state_dict(saved["optimizers"][name])
    for name, scheduler in run.schedulers.items():
        scheduler.load_state_dict(saved["schedulers"][name])
    if saved["scaler"]:
        run.scaler.load_state_dict(saved["scaler"])
    run.state = _State(**{f.name: saved[f.name] for f in dataclasses.fields(_State)})
    if run.world.is_main:
        _set_rng_state(saved["rng"], run.device)
    else:
        _seed(run.config.seed + run.world.rank + run.state.step * run.world.size)
    if run.state.batches_done and saved["layout"] != [run.config.batch_size, run.world.size]:
        logger.warning("'%s' was saved mid-epoch with another batch size or process count; "
                       "epoch %d starts over", last, run.state.epoch + 1)
        run.state.batches_done, run.state.partial = 0, {}
    if run.world.is_main:  # said to the user, once: a resume must not look like a fresh start
        tqdm.write(f"resuming '{last}' after epoch {run.state.epoch}: training epochs {run.state.epoch + 1} "
                   f"to {run.config.epochs}"
                   + (f" (epoch {run.state.epoch + 1} from its step {run.state.batches_done + 1})"
                      if run.state.batches_done else ""))


def _start(stage: Stage, train_set: Dataset, val_set: Dataset | None, out: Path, config: EngineConfig,
           collate_fn: Callable | None, device: torch.device, world: _World) -> _Run:
    """Put the stage's modules on the device, build its optimizers, and resume when asked."""
    _seed(config.seed + world.rank)
    for module in stage.modules().values():
        module.to(device)
    optimizers, schedulers = stage.configure_optimizers()
    run = _Run(stage, config, out, train_set, val_set, collate_fn, device, world, optimizers, schedulers,
               _grad_scaler(config, device, stage), _plain(stage.resume_settings()))
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
    world.barrier()
    for checkpoint in ("last", "best"):
        recover_checkpoint(out / checkpoint)
    if config.resume and (out / "last").is_dir():
        _resume(run)
    return run


# --- training ---------------------------------------------------------------------------------------


def _tensors(batch: Any) -> Iterator[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, Mapping):
        for value in batch.values():
            yield from _tensors(value)
    elif isinstance(batch, (list, tuple)):
        for value in batch:
            yield from _tensors(value)


def _batch_size(batch: Any) -> int:
    """Samples in ``batch``: the length of its first tensor (1 when it holds none, or a scalar)."""
    first = next(_tensors(batch), None)
    return len(first) if first is not None and first.dim() else 1


def _to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor (in nested lists, tuples and dicts) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def _loader(run: _Run, dataset: Dataset, batch_size: int, sampler: Iterable[int], drop_last: bool) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=run.config.num_workers,
                      collate_fn=run.collate_fn, drop_last=drop_last, pin_memory=run.device.type == "cuda")


def _train_batches(run: _Run, epoch: int) -> tuple[Iterator[Any], int]:
    """The training batches of ``epoch`` still to do, and the epoch's number of steps.

    Each rank takes its share of an order that depends only on the seed and the epoch.
    The short last batch is dropped unless it is the only one (batch norm cannot train
    on a batch of one); a mid-epoch resume skips the batches done.
    """
    config, world = run.config, run.world
    sampler = DistributedSampler(run.train_set, num_replicas=world.size, rank=world.rank, shuffle=True,
                                 seed=config.seed)
    sampler.set_epoch(epoch)
    drop_last = len(sampler) > config.batch_size
    batches = len(sampler) // config.batch_size if drop_last else math.ceil(len(sampler) / config.batch_size)
    steps = min(batches, config.max_steps_per_epoch or batches)
    rest = list(sampler)[run.state.batches_done * config.batch_size:]
    loader = _loader(run, run.train_set, config.batch_size, rest, drop_last)
    return itertools.islice(loader, max(0, steps - run.state.batches_done)), steps


def _train_epoch(run: _Run, context: StepContext, logs: _Logs, epoch: int) -> Metrics:
    """Train the rest of ``epoch``; the training metrics' means over the epoch and all ranks."""
    for module in run.stage.modules().values():
        module.train()
    batches, steps = _train_batches(run, epoch)
    total, window = _Means(**run.state.partial), _Means()
    every = run.config.checkpoint_every_steps
    with tqdm(total=steps, initial=run.state.batches_done, desc=f"{run.stage.name} epoch {epoch}/{run.config.epochs}",
              unit="step", leave=False, disable=not run.world.is_main) as bar:
        for batch in batches:
            context.epoch, context.step = epoch, run.state.step
            metrics = run.stage.training_step(_to_device(batch, run.device), context)
            context.end_step()
            run.state.step += 1
            run.state.batches_done += 1
            for means in (total, window):
                means.add(metrics, _batch_size(batch))
            bar.update()
            bar.set_postfix({key: f"{value:.4g}" for key, value in total.means().items()})
            if run.state.step % run.config.log_every == 0:
                logs.step(epoch, run.state.step, window.means())
                window = _Means()
            if every and run.state.step % every == 0 and run.state.batches_done < steps:
                run.state.partial = total.state()
                _save(run, "last")
    return total.reduced(run.world, run.device).means()


@torch.no_grad()
def _validate(run: _Run) -> Metrics:
    """The validation metrics' means over the validation set (at most ``max_steps_per_epoch`` batches).

    Under torchrun each rank scores its share; DistributedSampler repeats up to
    ``world_size - 1`` samples so that the shares are equal.
    """
    for module in run.stage.modules().values():
        module.eval()
    cap = run.config.max_steps_per_epoch
    # A capped validation scores a sample of the whole set (the same one every epoch), not its first batches.
    sampler = DistributedSampler(run.val_set, num_replicas=run.world.size, rank=run.world.rank,
                                 shuffle=cap is not None, seed=run.config.seed)
    loader = _loader(run, run.val_set, run.config.val_batch_size or run.config.batch_size, sampler, False)
    means = _Means()
    total = len(loader) if cap is None else min(cap, len(loader))
    for batch in tqdm(itertools.islice(loader, cap), total=total, desc=f"{run.stage.name} validation",
                      unit="step", leave=False, disable=not run.world.is_main):
        means.add(run.stage.validation_step(_to_device(batch, run.device)), _batch_size(batch))
    return means.reduced(run.world, run.device).means()


def _learning_rates(optimizers: dict[str, Optimizer]) -> dict[str, float]:
    """``lr`` of the one optimizer, or ``lr_<name>`` of each (their first parameter group)."""
    if len(optimizers) == 1:
        return {"lr": float(next(iter(optimizers.values())).param_groups[0]["lr"])}
    return {f"lr_{name}": float(optimizer.param_groups[0]["lr"]) for name, optimizer in optimizers.items()}


def _save(run: _Run, name: str) -> None:
    """Rank 0 writes checkpoint ``OUT/<name>``: ``last`` with the training state, ``best`` without."""
    if run.world.is_main:
        write_checkpoint(run.out / name, run.stage.modules(), run.stage.config(), run.stage.name,
                         run.training_state() if name == "last" else None)


def _monitored(run: _Run, row: dict[str, Any]) -> bool:
    """Whether ``row`` beats the best epoch so far (and becomes it)."""
    monitor = run.stage.monitor
    if monitor is None:
        return False
    if monitor.metric not in row:
        raise ValueError(f"stage {run.stage.name} monitors '{monitor.metric}', which is not one of the "
                         f"logged columns {', '.join(row)}")
    if not monitor.improves(row[monitor.metric], run.state.best):
        return False
    run.state.best, run.state.best_epoch = row[monitor.metric], row["epoch"]
    return True


def _end_epoch(run: _Run, logs: _Logs, row: dict[str, Any]) -> None:
    """Record the epoch's ``log.csv`` row; rank 0 writes ``best`` (when the row beats it), ``last`` and the logs."""
    epoch = row["epoch"]
    if run.world.is_main:
        run.stage.on_epoch_end(epoch, row, run.out)
    improved = _monitored(run, row)
    run.state.history.append(row)
    run.state.epoch, run.state.batches_done, run.state.partial = epoch, 0, {}
    if not run.world.is_main:
        return
    if improved:
        _save(run, "best")
    _save(run, "last")
    logs.epoch(run.state.history, run.state.step)
    tqdm.write(f"{run.stage.name} epoch {epoch}/{run.config.epochs}: "
               + ", ".join(f"{key} {value:.4g}" for key, value in row.items() if key != "epoch"))


def _run_epoch(run: _Run, context: StepContext, logs: _Logs, epoch: int) -> None:
    started = time.perf_counter()
    learning_rates = _learning_rates(run.optimizers)
    train = _train_epoch(run, context, logs, epoch)
    for scheduler in run.schedulers.values():
        scheduler.step()
    val = _validate(run) if run.val_set is not None else {}
    _end_epoch(run, logs, {"epoch": epoch, **learning_rates, **{f"train_{k}": v for k, v in train.items()},
                           **{f"val_{k}": v for k, v in val.items()},
                           "seconds": round(time.perf_counter() - started, 2)})


def _train(run: _Run) -> None:
    """Train the epochs after the saved one."""
    if run.state.epoch >= run.config.epochs:
        if run.world.is_main:
            tqdm.write(f"'{run.out / 'last'}' already holds {run.state.epoch} epochs; nothing to train")
        return
    replicas = {name: _replica(module, run.world, run.device) for name, module in run.stage.modules().items()}
    context = StepContext(replicas, run.optimizers, run.scaler, run.device, run.world.rank, run.world.size)
    logs = _Logs(run.out, run.world.is_main, run.state)
    try:
        for epoch in range(run.state.epoch + 1, run.config.epochs + 1):
            _run_epoch(run, context, logs, epoch)
    finally:
        logs.close()


@contextlib.contextmanager
def _run_lock(out: Path, active: bool) -> Iterator[None]:
    """Hold ``OUT/.lock`` while training (when ``active``: rank 0 of a torchrun job), so a
    second run on the same folder is refused instead of overwriting this one's checkpoints.

    The lock is an ``flock``: the system releases it when the process ends, however it
    ends, so a killed run never leaves a stale lock. The file names the holder.
    """
    if not active:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise InputError(f"'{out}' is being trained by {holder}; wait for it to finish, "
                             "or give another --out") from None
        handle.truncate(0)
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield


def fit(stage: Stage, train_set: Dataset, val_set: Dataset | None, out: str | Path, config: EngineConfig,
        collate_fn: Callable | None = None) -> FitResult:
    """Train ``stage`` for ``config.epochs`` epochs in all, resuming from ``out/last``; see the module docs.

    Each epoch trains on ``train_set`` (shuffled), steps the schedulers, averages
    :meth:`Stage.validation_step` over ``val_set`` (when given), and writes the
    checkpoints and logs. ``collate_fn`` makes the data loaders' batches.

    Raises:
        InputError: an empty dataset, a bad setting, or an ``out/last`` that belongs to
            another stage or other settings.
        EmoportraitError: training diverged (a NaN or infinite loss).
    """
    for name, dataset in (("training", train_set), ("validation", val_set)):
        if dataset is not None and len(dataset) == 0:
            raise InputError(f"the {name} set of {stage.name} is empty; check the dataset folder")
    out = Path(out)
    local_rank, size = int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's
    device = _device(config, local_rank, size)
    world = _join_world(device, local_rank, size)
    try:
        with _run_lock(out, world.is_main):
            run = _start(stage, train_set, val_set, out, config, collate_fn, device, world)
            _train(run)
            world.barrier()
    finally:
        if world.owns_group:
            dist.destroy_process_group()
    best = out / "best" if run.state.best_epoch is not None else None
    return FitResult(out / "last", best, run.state.epoch, run.state.best_epoch, run.state.history)
