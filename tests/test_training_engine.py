"""The training engine on tiny stages: a line fit (y = 2x + 1) and a two-optimizer GAN.

Run as a script (``torchrun --nproc_per_node=2 tests/test_training_engine.py STAGE OUT``)
this file is also the worker of the distributed test.
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import TensorDataset

from emoportrait.errors import EmoportraitError, InputError
from emoportrait.runs import load_weights, read_run_config
from emoportrait.training import EngineConfig, Monitor, Stage, StepContext, fit

STEPS_PER_EPOCH = 8
"""Training steps of one epoch: 64 samples in batches of 8."""


class Killed(Exception):
    """Stands in for a kill in the middle of an epoch."""


@dataclass(frozen=True)
class LineConfig:
    lr: float = 0.05


def line_data(count: int, seed: int = 0) -> TensorDataset:
    """``count`` samples of y = 2x + 1 with x in [-1, 1]."""
    x = torch.rand(count, 1, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return TensorDataset(x, 2 * x + 1)


class LineStage(Stage):
    """Fits ``nn.Linear(1, 1)`` by SGD with momentum and a decaying learning rate."""

    name = "line"

    def __init__(self, settings: LineConfig = LineConfig(), kill_at_step: int | None = None) -> None:
        torch.manual_seed(0)
        self.model = nn.Linear(1, 1)
        self.settings = settings
        self.kill_at_step = kill_at_step
        self.epoch = 0

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.model.parameters(), lr=self.settings.lr, momentum=0.9)
        return {"sgd": optimizer}, {"sgd": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.9)}

    def training_step(self, batch: Any, context: StepContext) -> dict[str, float]:
        if context.step == self.kill_at_step:
            raise Killed
        self.epoch = context.epoch
        x, y = batch
        with context.autocast():
            loss = F.mse_loss(context.forward("model", x), y)
        context.backward(loss, "sgd")
        return {"loss": loss.item()}

    def validation_step(self, batch: Any) -> dict[str, float]:
        x, y = batch
        return {"loss": F.mse_loss(self.model(x), y).item()}

    def config(self) -> LineConfig:
        return self.settings


class ScoredStage(LineStage):
    """A line stage whose validation also reports ``scores[epoch - 1]`` and that keeps each epoch's weights."""

    monitor = Monitor("val_score", "max")

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = scores
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def validation_step(self, batch: Any) -> dict[str, float]:
        return {**super().validation_step(batch), "score": self.scores[self.epoch - 1]}

    def on_epoch_end(self, epoch: int, metrics: dict[str, Any], out: Path) -> None:
        self.snapshots[epoch] = {k: v.clone() for k, v in self.model.state_dict().items()}


@dataclass(frozen=True)
class GanConfig:
    target_mean: float = 3.0


class GanStage(Stage):
    """A 1-D GAN: the generator shifts and scales noise to look like samples of N(3, 0.5)."""

    name = "gan"

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.generator = nn.Linear(1, 1)
        self.discriminator = nn.Sequential(nn.Linear(1, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def configure_optimizers(self):
        optimizers = {name: torch.optim.Adam(module.parameters(), lr=0.05, betas=(0.5, 0.999))
                      for name, module in self.modules().items()}
        return optimizers, {"generator": torch.optim.lr_scheduler.StepLR(optimizers["generator"], 1, 0.95)}

    def training_step(self, batch: Any, context: StepContext) -> dict[str, float]:
        (real,) = batch
        with context.autocast():
            fake = context.forward("generator", torch.randn_like(real))
            logits = context.forward("discriminator", torch.cat([real, fake.detach()]))
            d_loss = F.binary_cross_entropy_with_logits(logits, torch.cat([torch.ones_like(real),
                                                                           torch.zeros_like(real)]))
        context.backward(d_loss, "discriminator")
        with context.autocast():
            fake_logits = context.forward("discriminator", fake)
            g_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        context.backward(g_loss, "generator", clip_grad_norm=1.0)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

    def validation_step(self, batch: Any) -> dict[str, float]:
        (noise,) = batch
        return {"mean": self.generator(noise).mean().item()}

    def config(self) -> GanConfig:
        return GanConfig()


def gan_data(count: int) -> TensorDataset:
    return TensorDataset(3 + 0.5 * torch.randn(count, 1, generator=torch.Generator().manual_seed(1)))


def noise_data(count: int) -> TensorDataset:
    return TensorDataset(torch.randn(count, 1, generator=torch.Generator().manual_seed(2)))


def settings(**changes: Any) -> EngineConfig:
    return EngineConfig(**{"epochs": 3, "batch_size": 8, "device": "cpu", "log_every": 1, **changes})


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def weights(directory: Path, name: str = "model") -> dict[str, torch.Tensor]:
    return load_file(directory / f"{name}.safetensors")


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """A line run of three epochs in one go."""
    out = tmp_path_factory.mktemp("straight")
    fit(LineStage(), line_data(64), line_data(16, seed=1), out, settings())
    return out


# --- training, logs, checkpoints -------------------------------------------------------------------


def test_line_fit_learns_and_logs(tmp_path):
    stage = LineStage()
    result = fit(stage, line_data(64), line_data(16, seed=1), tmp_path, settings(epochs=6, log_every=4))
    log = rows(tmp_path / "log.csv")
    assert list(log[0]) == ["epoch", "lr", "train_loss", "val_loss", "seconds"]
    assert [row["epoch"] for row in log] == ["1", "2", "3", "4", "5", "6"]
    assert float(log[1]["lr"]) == pytest.approx(0.05 * 0.9)                   # the scheduler stepped per epoch
    losses = [float(row["val_loss"]) for row in log]
    assert losses[-1] < 0.05 * losses[0]
    steps = rows(tmp_path / "steps.csv")
    assert list(steps[0]) == ["epoch", "step", "loss"]
    assert [int(row["step"]) for row in steps] == list(range(4, 6 * STEPS_PER_EPOCH + 1, 4))
    assert [row["epoch"] for row in steps[:4]] == ["1", "1", "2", "2"]
    assert stage.model.weight.item() == pytest.approx(2, abs=0.2)
    assert stage.model.bias.item() == pytest.approx(1, abs=0.2)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert {p.name for p in (tmp_path / "last").iterdir()} == {"model.safetensors", "config.yaml", "training.pt"}
    assert not (tmp_path / "best").exists() and result.best is None            # no monitor, no best
    assert result.last == tmp_path / "last" and result.epochs == 6 and len(result.history) == 6
    assert read_run_config(tmp_path / "last") == {"lr": 0.05}


def test_resume_after_an_epoch_matches_a_straight_run(tmp_path, straight, capsys):
    fit(LineStage(), line_data(64), line_data(16, seed=1), tmp_path, settings(epochs=1))
    first = rows(tmp_path / "log.csv")
    capsys.readouterr()
    result = fit(LineStage(), line_data(64), line_data(16, seed=1), tmp_path, settings())
    said = capsys.readouterr().out
    assert "resuming" in said and "after epoch 1: training epochs 2 to 3" in said and "epoch 3/3: " in said
    log = rows(tmp_path / "log.csv")
    assert [row["epoch"] for row in log] == ["1", "2", "3"] and log[0] == first[0]
    assert [int(row["step"]) for row in rows(tmp_path / "steps.csv")] == list(range(1, 3 * STEPS_PER_EPOCH + 1))
    assert same(weights(tmp_path / "last"), weights(straight / "last"))
    assert [row["train_loss"] for row in log] == [row["train_loss"] for row in rows(straight / "log.csv")]
    assert result.epochs == 3
    fit(LineStage(), line_data(64), None, tmp_path, settings())
    assert "already holds 3 epochs; nothing to train" in capsys.readouterr().out


@pytest.mark.parametrize("every", [None, 2])
def test_a_kill_mid_epoch_loses_at_most_that_epoch(tmp_path, straight, every):
    kill = STEPS_PER_EPOCH + 3                                 # the 4th step of epoch 2
    with pytest.raises(Killed):
        fit(LineStage(kill_at_step=kill), line_data(64), line_data(16, seed=1), tmp_path,
            settings(checkpoint_every_steps=every))
    saved = torch.load(tmp_path / "last" / "training.pt", weights_only=True)
    assert (saved["epoch"], saved["step"]) == ((1, kill - 1) if every else (1, STEPS_PER_EPOCH))
    fit(LineStage(), line_data(64), line_data(16, seed=1), tmp_path, settings(checkpoint_every_steps=every))
    assert same(weights(tmp_path / "last"), weights(straight / "last"))
    assert [int(row["step"]) for row in rows(tmp_path / "steps.csv")] == list(range(1, 3 * STEPS_PER_EPOCH + 1))
    ours, theirs = rows(tmp_path / "log.csv"), rows(straight / "log.csv")
    assert [row["train_loss"] for row in ours] == [row["train_loss"] for row in theirs]


def test_a_kill_in_the_middle_of_a_checkpoint_swap_loses_one_epoch_not_the_run(tmp_path, straight, capsys):
    """Killed between the swap's two renames, ``last`` was gone and the next run began at epoch 1."""
    fit(LineStage(), line_data(64), line_data(16, seed=1), tmp_path, settings(epochs=2))
    os.replace(tmp_path / "last", tmp_path / ".last.old")  # where the kill left it
    capsys.readouterr()
    result = fit(LineStage(), line_data(64), line_data(16, seed=1), tmp_path, settings())
    assert "after epoch 2: training epochs 3 to 3" in capsys.readouterr().out
    assert result.epochs == 3 and [row["epoch"] for row in rows(tmp_path / "log.csv")] == ["1", "2", "3"]
    assert same(weights(tmp_path / "last"), weights(straight / "last"))
    assert not (tmp_path / ".last.old").exists()


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_trains(tmp_path):
    """Two runs on one --out both trained and overwrote each other's checkpoints."""
    import fcntl

    with open(tmp_path / ".lock", "w") as held:  # the first run's lock
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("process 4242 on gpu-node\n")
        held.flush()
        with pytest.raises(InputError, match="is being trained by process 4242 on gpu-node"):
            fit(LineStage(), line_data(64), None, tmp_path, settings(epochs=1))
        assert not (tmp_path / "last").exists()
    fit(LineStage(), line_data(64), None, tmp_path, settings(epochs=1))  # released: it trains
    assert (tmp_path / "last").is_dir()


def test_checkpoints_and_outputs_follow_the_umask(tmp_path):
    """Run folders were 0700 and outputs 0600 (tempfile's modes), whatever the umask."""
    from emoportrait import media

    previous = os.umask(0o022)
    try:
        fit(LineStage(), line_data(64), None, tmp_path, settings(epochs=1))
        with media.atomic_output(tmp_path / "out.txt") as temporary:
            temporary.write_text("done")
    finally:
        os.umask(previous)
    assert (tmp_path / "last").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_best_follows_the_monitored_metric(tmp_path):
    stage = ScoredStage([0.2, 0.9, float("nan"), 0.9])
    result = fit(stage, line_data(64), line_data(16, seed=1), tmp_path, settings(epochs=4))
    assert result.best == tmp_path / "best" and result.best_epoch == 2
    assert {p.name for p in result.best.iterdir()} == {"model.safetensors", "config.yaml"}
    assert same(weights(result.best), stage.snapshots[2]) and not same(weights(result.best), stage.snapshots[4])
    assert same(weights(result.last), stage.snapshots[4])
    resumed = fit(ScoredStage([0.2, 0.9, 0.1, 0.9, 0.95]), line_data(64), line_data(16, seed=1), tmp_path,
                  settings(epochs=5))
    assert resumed.best_epoch == 5                              # the best score came back with the resume


def test_load_weights_round_trip_and_wrong_folders(tmp_path):
    fit(LineStage(), line_data(64), None, tmp_path, settings(epochs=1))
    model = nn.Linear(1, 1)
    load_weights(tmp_path / "last", {"model": model})
    assert same(model.state_dict(), weights(tmp_path / "last"))
    with pytest.raises(InputError, match="'.*nowhere' is not a training checkpoint"):
        load_weights(tmp_path / "nowhere", {"model": model})
    with pytest.raises(InputError, match=r"'.*last' holds weights of line \(model\) but none named 'generator'"):
        load_weights(tmp_path / "last", {"generator": model})
    with pytest.raises(InputError, match=r"model.safetensors' \(weights of line\) does not fit this Linear"):
        load_weights(tmp_path / "last", {"model": nn.Linear(2, 1)})
    with pytest.raises(InputError, match="holds no config.yaml"):
        read_run_config(tmp_path)


def test_resuming_another_run_is_refused(tmp_path):
    fit(LineStage(), line_data(64), None, tmp_path, settings(epochs=1))
    with pytest.raises(InputError, match=r"holds a line run with other settings \(lr: 0.05 there, 0.1 here\); "
                                         "choose another --out or delete it"):
        fit(LineStage(LineConfig(lr=0.1)), line_data(64), None, tmp_path, settings(epochs=2))
    with pytest.raises(InputError, match="holds a line run, not a gan run"):
        fit(GanStage(), gan_data(64), None, tmp_path, settings(epochs=2))
    result = fit(LineStage(LineConfig(lr=0.1)), line_data(64), None, tmp_path, settings(epochs=1, resume=False))
    assert result.epochs == 1 and read_run_config(tmp_path / "last") == {"lr": 0.1}
    assert len(rows(tmp_path / "log.csv")) == 1 and len(rows(tmp_path / "steps.csv")) == STEPS_PER_EPOCH
    torch.save({"epoch": 1}, tmp_path / "last" / "training.pt")                # e.g. an older layout
    with pytest.raises(InputError, match="holds a training state this version cannot resume"):
        fit(LineStage(), line_data(64), None, tmp_path, settings())
    torch.save({"epoch": Killed()}, tmp_path / "last" / "training.pt")           # never unpickled
    with pytest.raises(InputError, match=r"training state .* is unreadable \(UnpicklingError\)"):
        fit(LineStage(), line_data(64), None, tmp_path, settings())


def test_bad_data_settings_and_divergence_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="training set of line is empty"):
        fit(LineStage(), line_data(0), None, tmp_path, settings())
    with pytest.raises(InputError, match="batch_size must be positive"):
        settings(batch_size=0)
    with pytest.raises(EmoportraitError, match=r"diverged at epoch \d+, step \d+ .*lower the learning rate "
                                               r"\(now 1000 for optimizer 'sgd'\)"):
        fit(LineStage(LineConfig(lr=1000.0)), line_data(64), None, tmp_path, settings())


def test_without_tensorboard_logs_go_to_csv_only(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)     # importing it raises ImportError
    with caplog.at_level(logging.WARNING, logger="emoportrait.training.engine"):
        fit(LineStage(), line_data(64), None, tmp_path, settings(epochs=1, amp=True))
    assert "tensorboard package is not installed" in caplog.text
    assert "mixed precision needs CUDA" in caplog.text
    assert not (tmp_path / "tensorboard").exists() and len(rows(tmp_path / "log.csv")) == 1


def test_two_optimizer_gan_trains_and_resumes(tmp_path):
    fit(GanStage(), gan_data(256), noise_data(64), tmp_path, settings(epochs=2, batch_size=16))
    result = fit(GanStage(), gan_data(256), noise_data(64), tmp_path, settings(epochs=6, batch_size=16))
    log = rows(tmp_path / "log.csv")
    assert list(log[0]) == ["epoch", "lr_generator", "lr_discriminator", "train_d_loss", "train_g_loss",
                            "val_mean", "seconds"]
    assert float(log[1]["lr_generator"]) == pytest.approx(0.05 * 0.95) and float(log[1]["lr_discriminator"]) == 0.05
    start = GanStage().generator(noise_data(64).tensors[0]).mean().item()
    assert abs(result.history[-1]["val_mean"] - 3) < 0.5 * abs(start - 3)      # the fakes moved towards N(3, .5)
    state = torch.load(tmp_path / "last" / "training.pt", weights_only=True)
    assert set(state["optimizers"]) == {"generator", "discriminator"} and set(state["schedulers"]) == {"generator"}
    assert {p.name for p in (tmp_path / "last").iterdir()} == {"generator.safetensors", "discriminator.safetensors",
                                                               "config.yaml", "training.pt"}



def test_the_loss_scale_updates_once_per_step_with_two_optimizers(tmp_path, monkeypatch):
    updates = []
    monkeypatch.setattr(torch.amp.GradScaler, "update", lambda self, new_scale=None: updates.append(1))
    fit(GanStage(), gan_data(64), noise_data(16), tmp_path, settings(epochs=1, batch_size=16))
    assert len(updates) == 64 // 16    # one per step, not one per optimizer

# --- several processes -----------------------------------------------------------------------------


STAGES = {"line": (LineStage, line_data(64), line_data(16, seed=1)), "gan": (GanStage, gan_data(64), noise_data(16))}


def _worker(stage_name: str, out: Path) -> None:
    """One rank of the distributed test: train one epoch, then save what this rank ended with."""
    make, train_set, val_set = STAGES[stage_name]
    stage = make()
    fit(stage, train_set, val_set, out, EngineConfig(epochs=1, batch_size=8, device="cpu", log_every=1))
    for name, module in stage.modules().items():
        save_file(module.state_dict(), out / f"{name}.rank{os.environ['RANK']}.safetensors")


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="this PyTorch has no torch.distributed")
@pytest.mark.parametrize("stage_name", ["line", "gan"])
def test_torchrun_with_two_processes_trains_one_model(tmp_path, stage_name):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
               stage_name, str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in STAGES[stage_name][0]().modules():
        rank0, rank1 = (load_file(tmp_path / f"{name}.rank{rank}.safetensors") for rank in (0, 1))
        assert same(rank0, rank1) and same(rank0, weights(tmp_path / "last", name))
    assert len(rows(tmp_path / "steps.csv")) == 64 // 2 // 8                   # each rank trained on half the data
    assert len(rows(tmp_path / "log.csv")) == 1


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
