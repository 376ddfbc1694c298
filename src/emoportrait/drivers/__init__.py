"""Drivers turn (speech, emotion) into an expression track in the canonical face frame.

Every driver implements :class:`emoportrait.types.Driver`: it returns ``(T, 478, 3)``
float32 landmark displacements, in canonical units (the reference face's rigid points
have RMS radius 1), to be added to the target's identity face before 3D-aware alignment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..types import Driver


def _procedural(weights: Path | None, emotion_audio: np.ndarray | None, settings: Mapping[str, Any]) -> Driver:
    if weights is not None or emotion_audio is not None:
        raise InputError("the procedural driver takes no weights and no reference speech clip: "
                         "those are the learned driver's")
    from .procedural import ProceduralDriver

    return ProceduralDriver(**settings)


def _learned(weights: Path | None, emotion_audio: np.ndarray | None, settings: Mapping[str, Any]) -> Driver:
    if weights is None:
        raise InputError("the learned driver needs an audio2lm run (emoportrait train audio2lm ...)")
    if settings:
        raise InputError(f"the learned driver takes no settings ({', '.join(settings)}): its run holds them")
    from .learned import LearnedDriver

    return LearnedDriver(weights, emotion_audio=emotion_audio)


DRIVERS: dict[str, Callable[[Path | None, np.ndarray | None, Mapping[str, Any]], Driver]] = {
    "procedural": _procedural,
    "learned": _learned,
}
"""Every driver by name: ``(weights run or None, reference emotional speech (S,) or None, settings)``
→ driver. A driver is imported only when made (the learned one needs torch)."""


def make_driver(name: str, weights: Path | None = None, emotion_audio: np.ndarray | None = None,
                settings: Mapping[str, Any] | None = None) -> Driver:
    """The driver called ``name`` (:data:`DRIVERS`), from its run ``weights`` and a reference
    emotional speech clip ``emotion_audio`` (``(S,)`` float32 at 16 kHz), where it takes them;
    ``settings``: its configs by constructor argument (the procedural driver's ``config``,
    ``action_units`` and ``audio``).

    Raises:
        InputError: an unknown name, or weights, a clip or settings the driver cannot take (or lacks).
    """
    if name not in DRIVERS:
        raise InputError(f"unknown driver '{name}'; choose one of {', '.join(DRIVERS)}")
    return DRIVERS[name](weights, emotion_audio, settings or {})


__all__ = ["DRIVERS", "Driver", "make_driver"]
