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


def _items_of(hint: Any) -> Any:
    """``X`` of a ``tuple[X, ...]`` annotation whose items are plain values or paths; None for
    any other annotation."""
    args = typing.get_args(hint)
    variadic = typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis
    return args[0] if variadic and (args[0] in _PLAIN or args[0] is Path) else None


def _fixed_items(hint: Any) -> tuple[Any, ...] | None:
    """``(X, Y, ...)`` of a fixed-length ``tuple[X, Y, ...]`` annotation of plain values; None for
    any other annotation."""
    args = typing.get_args(hint)
    fixed = typing.get_origin(hint) is tuple and args and Ellipsis not in args
    return args if fixed and all(arg in _PLAIN for arg in args) else None


def _checked(hint: Any) -> bool:
    """Whether :func:`_typed` checks values of ``hint`` (else it passes them as they are)."""
    return (hint in _PLAIN or hint is type(None) or hint is Path or dataclasses.is_dataclass(hint)
            or _items_of(hint) is not None or _fixed_items(hint) is not None)


def _typed(cls: type, name: str, value: Any, hint: Any) -> Any:
    """``value`` of setting ``name``, checked against its annotation ``hint``: the plain
    types (an int is a float too, a bool is not an int), paths (from strings), ``tuple[X,
    ...]`` and ``tuple[X, Y]`` (from lists), ``X | None`` and nested configs; other
    annotations (dicts) are passed as they are."""
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
        if option is Path and isinstance(value, (str, Path)):
            return Path(value)
        if _items_of(option) is not None and isinstance(value, (list, tuple)):
            return tuple(_typed(cls, name, item, _items_of(option)) for item in value)
        fixed = _fixed_items(option)
        if fixed is not None and isinstance(value, (list, tuple)) and len(value) == len(fixed):
            return tuple(_typed(cls, name, item, hint) for item, hint in zip(value, fixed))
    if not all(_checked(option) for option in options):
        return value
    wanted = " or ".join("null" if option is type(None) else "a list" if _items_of(option) is not None
                         else f"a list of {len(_fixed_items(option))} values" if _fixed_items(option) is not None
                         else "a path" if option is Path else option.__name__ for option in options)
    raise InputError(f"{cls.__name__} setting {name} must be {wanted}, not {value!r}")


def updated_config(base: ConfigT, values: dict[str, Any]) -> ConfigT:
    """``base`` with the settings in ``values`` replaced; a mapping given for a nested config
    replaces only the settings it names there (``{"creases": {"depth": 0}}``).

    Raises:
        InputError: as :func:`config_from_dict`.
    """
    return config_from_dict(type(base), _merged(config_to_dict(base), values))


def _merged(settings: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with ``values`` laid over them, mapping into mapping."""
    merged = dict(settings)
    for name, value in values.items():
        nested = isinstance(value, dict) and isinstance(merged.get(name), dict)
        merged[name] = _merged(merged[name], value) if nested else value
    return merged


def check_learning_rate(value: float, owner: str) -> None:
    """Raise :class:`InputError` unless ``value`` is a finite number above 0 (``owner``
    names the settings in the message)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"{owner} learning rate {value!r} must be a finite number above 0 (EVP uses 2e-4)")


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` as YAML to ``path``."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping of settings in the YAML file ``path`` (not yet checked against a config).

    Raises:
        InputError: the file is missing, is not YAML, or does not hold a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file '{path}' does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"config file '{path}' is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(values, dict):
        raise InputError(f"config file '{path}' must hold a mapping of settings")
    return values


def load_config(cls: type[ConfigT], path: str | Path) -> ConfigT:
    """Read a YAML file written by :func:`save_config` (or by hand) into ``cls``."""
    values = read_config_file(path)
    try:
        return config_from_dict(cls, values)
    except InputError as exc:
        raise InputError(f"config file '{path}': {exc}") from None
