"""``--config FILE.yaml``: a command's configs from a file, with the flags given laid over it.

A command that builds one config (``prepare``: :class:`~emoportrait.evp.prepare.PrepareConfig`)
reads a file of that config's settings; a command that composes several
(``generate``: the emotion, the pipeline's, the driver's and the renderer's) reads one
section per config::

    generate:               # GenerateConfig
      size: 512
    driver:                 # the generate command's DriverOptions
      name: learned
      weights: runs/a2l     # paths are relative to the working folder
    warp:                   # WarpConfig, the warp renderer's (nested configs by mapping)
      creases: {depth: 0.6}

Settings the file leaves out keep the command's defaults; a flag given on the command
line overrides the file. An unknown section or setting, or a value of the wrong type, is
an :class:`~emoportrait.errors.InputError` naming the file, the setting and the valid ones.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..config import read_config_file, updated_config
from ..errors import InputError

Configs = TypeVar("Configs")


def add_config_option(parser: argparse.ArgumentParser, holds: str) -> None:
    """Give ``parser`` the ``--config`` option; ``holds`` says what the file's keys are."""
    parser.add_argument("--config", type=Path, metavar="FILE.yaml",
                        help=f"settings from a YAML file: {holds}; flags given override it")


def configured(base: Configs, path: Path | None, flags: Mapping[str, Any]) -> Configs:
    """``base`` updated by the file at ``path`` (if any), then by the ``flags`` given.

    Args:
        base: the command's default config (a config dataclass), or its configs by
            section name (``{"generate": GenerateConfig(), ...}``).
        path: the ``--config`` file; None: no file.
        flags: setting → flag value, None where the flag was not given; a section's
            setting is ``"section.setting"``.

    Returns:
        the config, or the configs by section, of the same shape as ``base``.
    """
    values = read_config_file(path) if path is not None else {}
    given: dict[str, Any] = {}
    for key, value in flags.items():
        if value is not None:
            *sections, name = key.split(".")
            place = given
            for section in sections:
                place = place.setdefault(section, {})
            place[name] = value
    try:
        from_file = _updated(base, values)
    except InputError as exc:
        raise InputError(f"config file '{path}': {exc}") from None
    return _updated(from_file, given)


def _updated(base: Configs, values: dict[str, Any]) -> Configs:
    if not isinstance(base, dict):
        return updated_config(base, values)
    unknown = sorted(set(values) - set(base))
    if unknown:
        raise InputError(f"unknown section(s) {', '.join(unknown)}; valid sections are {', '.join(base)}")
    configs = dict(base)
    for section, settings in values.items():
        if not isinstance(settings, dict):
            raise InputError(f"section {section} must be a mapping of settings, not {settings!r}")
        try:
            configs[section] = updated_config(base[section], settings)
        except InputError as exc:
            raise InputError(f"{section}: {exc}") from None
    return configs
