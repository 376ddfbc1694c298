"""Run folders: the checkpoint format that training writes and inference reads.

A training run (:func:`emoportrait.training.fit`) writes ``RUN/last`` and, for stages
with a monitored metric, ``RUN/best``; an imported model (``emoportrait import``) is one
such checkpoint folder. A checkpoint folder holds:

* one ``<name>.safetensors`` per module (its metadata ``stage`` names what made it);
* ``config.yaml``: the config that made the weights;
* in ``last`` only, ``training.pt``: the state a resumed run starts from (read by the
  training engine alone, with ``torch.load(weights_only=True)``).

Folders are written whole beside their place, flushed to the disk and swapped in
(:func:`write_checkpoint`), so a kill never leaves half a checkpoint. This module is
what the drivers, renderers and recognizers need to load a run: it imports no
training code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from .config import save_config
from .errors import InputError
from .media import with_umask

CONFIG_FILE = "config.yaml"
STATE_FILE = "training.pt"
WEIGHTS_SUFFIX = ".safetensors"


def checkpoint_dir(run: str | Path) -> Path:
    """The checkpoint folder of a run: ``run/best`` if there is one, else ``run/last``
    (or ``run`` itself when it is a checkpoint folder)."""
    run = Path(run)
    for candidate in (run / "best", run / "last", run):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise InputError(f"'{run}' is not a training run (no best/ or last/ checkpoint); "
                     "train it first with: emoportrait train STAGE --data CACHE --out RUN")


def _retired(directory: Path) -> Path:
    """Where :func:`_replace_directory` keeps the old ``directory`` while it swaps in the new."""
    return directory.with_name(f".{directory.name}.old")


def _fsync(folder: Path) -> None:
    """Flush ``folder``'s files and its own entry to the disk (a crash after the rename
    must not find empty files)."""
    for path in [*folder.iterdir(), folder]:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _replace_directory(directory: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary sibling of ``directory``, then swap it in for ``directory``.

    A kill between the swap's two renames leaves only the retired copy, whole:
    :func:`recover_checkpoint` puts it back.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    recover_checkpoint(directory)
    temporary = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        write(temporary)
        with_umask(temporary)
        _fsync(temporary)
        retired = _retired(directory)
        shutil.rmtree(retired, ignore_errors=True)
        if directory.exists():
            os.replace(directory, retired)
        os.replace(temporary, directory)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def recover_checkpoint(directory: Path) -> None:
    """Put back the checkpoint ``directory`` that a kill took away in the middle of
    :func:`_replace_directory` (its retired copy is whole)."""
    retired = _retired(directory)
    if not directory.exists() and retired.is_dir():
        with contextlib.suppress(FileNotFoundError):  # another process of a torchrun job was first
            os.replace(retired, directory)


def write_checkpoint(directory: str | Path, modules: Mapping[str, nn.Module], config: Any, stage: str,
                     training_state: dict[str, Any] | None = None) -> None:
    """Write ``modules`` (one ``<name>.safetensors`` each, metadata ``stage``) and ``config``
    (a config dataclass or a plain dict, as ``config.yaml``) as checkpoint ``directory``,
    whole or not at all; with ``training_state`` also ``training.pt``."""

    def write(folder: Path) -> None:
        for name, module in modules.items():
            save_model(module, str(folder / f"{name}{WEIGHTS_SUFFIX}"),
                       metadata={"format": "pt", "stage": stage}, force_contiguous=True)
        if isinstance(config, dict):
            (folder / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
        else:
            save_config(config, folder / CONFIG_FILE)
        if training_state is not None:
            torch.save(training_state, folder / STATE_FILE)

    _replace_directory(Path(directory), write)


def _stage_of(path: Path) -> str:
    """The stage named in the metadata of weights file ``path``."""
    try:
        with safe_open(str(path), framework="pt") as weights:
            return (weights.metadata() or {}).get("stage", "an unnamed stage")
    except (SafetensorError, OSError):
        return "an unreadable file"


def load_weights(directory: str | Path, modules: Mapping[str, nn.Module]) -> None:
    """Load ``<name>.safetensors`` of checkpoint ``directory`` into each of ``modules`` (strictly).

    Raises:
        InputError: ``directory`` holds no weights, none for one of the names, or
            weights that do not fit; the message names the folder and its stage.
    """
    directory = Path(directory)
    present = sorted(directory.glob(f"*{WEIGHTS_SUFFIX}")) if directory.is_dir() else []
    if not present:
        raise InputError(f"'{directory}' is not a training checkpoint (no {WEIGHTS_SUFFIX} weights); "
                         "give the last/ or best/ folder of a training run")
    owner = _stage_of(present[0])
    for name, module in modules.items():
        path = directory / f"{name}{WEIGHTS_SUFFIX}"
        if not path.is_file():
            raise InputError(f"'{directory}' holds weights of {owner} ({', '.join(p.stem for p in present)}) "
                             f"but none named '{name}'; give a checkpoint of the stage that trains it")
        try:
            load_model(module, str(path), strict=True)
        except (SafetensorError, OSError, RuntimeError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise InputError(f"'{path}' (weights of {owner}) does not fit this {type(module).__name__}: "
                             f"{detail}") from exc


def read_run_config(directory: str | Path) -> dict[str, Any]:
    """The ``config.yaml`` of checkpoint ``directory`` as a dict.

    Raises:
        InputError: it is missing or not a YAML mapping.
    """
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"'{directory}' holds no {CONFIG_FILE}; give the last/ or best/ folder of a training run")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"'{path}' is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(values, dict):
        raise InputError(f"'{path}' must hold a mapping of settings")
    return values
