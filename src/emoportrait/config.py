"""Typed per-stage configs stored as YAML.

Each stage defines a frozen dataclass of its numbers (paper values as defaults);
this module turns such a dataclass into YAML and back, rejecting unknown keys so a
typo in a config file is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import InputError

ConfigT = TypeVar("ConfigT")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a plain ``dict`` of a config dataclass (nested dataclasses included)."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
    """Build ``cls`` from ``values``; unknown keys raise :class:`InputError`."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(
            f"unknown {cls.__name__} setting(s) {', '.join(unknown)}; "
            f"valid settings are {', '.join(sorted(known))}"
        )
    return cls(**values)


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` as YAML to ``path``."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def load_config(cls: type[ConfigT], path: str | Path) -> ConfigT:
    """Read a YAML file written by :func:`save_config` (or by hand) into ``cls``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file '{path}' does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"config file '{path}' is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(values, dict):
        raise InputError(f"config file '{path}' must hold a mapping of settings")
    return config_from_dict(cls, values)
