"""Typed per-stage configs stored as YAML.

Each stage defines a frozen dataclass of its numbers (paper values as defaults);
this module turns such a dataclass into YAML and back, rejecting unknown keys so a
typo in a config file is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import InputError

ConfigT = TypeVar("ConfigT")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a plain ``dict`` of a config dataclass (nested dataclasses included)."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type[ConfigT], values: Any) -> ConfigT:
    """Build ``cls`` from ``values`` (nested mappings become nested configs).

    Raises:
        InputError: ``values`` is not a mapping, names an unknown setting, lacks one
            without a default, or gives one a value of the wrong type (``max_faces:
            many``); the message names the setting and what it takes.
    """
    if not isinstance(values, dict):
        raise InputError(f"{cls.__name__} settings must be a mapping, not {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(
            f"unknown {cls.__name__} setting(s) {', '.join(unknown)}; "
            f"valid settings are {', '.join(sorted(known))}"
        )
    missing = sorted(name for name, f in known.items() if name not in values and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if missing:
        raise InputError(f"{cls.__name__} setting(s) {', '.join(missing)} are missing")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _typed(cls, name, value, hints[name]) for name, value in values.items()})


_PLAIN = (bool, int, float, str)


def _typed(cls: type, name: str, value: Any, hint: Any) -> Any:
    """``value`` of setting ``name``, checked against its annotation ``hint``: the plain
    types (an int is a float too, a bool is not an int), ``X | None`` and nested configs;
    other annotations (tuples, dicts) are passed as they are."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    options = typing.get_args(hint) if union else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, dict):
            return config_from_dict(option, value)
        if option is float and type(value) is int:
            return float(value)
        if option in _PLAIN and type(value) is option:
            return value
    if not all(option in _PLAIN or option is type(None) or dataclasses.is_dataclass(option) for option in options):
        return value
    wanted = " or ".join("null" if option is type(None) else option.__name__ for option in options)
    raise InputError(f"{cls.__name__} setting {name} must be {wanted}, not {value!r}")


def check_learning_rate(value: float, owner: str) -> None:
    """Raise :class:`InputError` unless ``value`` is a finite number above 0 (``owner``
    names the settings in the message)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"{owner} learning rate {value!r} must be a finite number above 0 (EVP uses 2e-4)")


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
    try:
        return config_from_dict(cls, values)
    except InputError as exc:
        raise InputError(f"config file '{path}': {exc}") from None
