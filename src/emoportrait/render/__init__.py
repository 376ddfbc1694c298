"""Renderers: turn a target frame and new face landmarks into an output frame
(:class:`emoportrait.types.Renderer`).

- :mod:`.warp`    training-free piecewise-affine warp with a synthetic mouth interior (CPU)
- :mod:`.neural`  EVP's edge-map-to-video generator trained per subject (:mod:`emoportrait.training.renderer`);
  imported on demand, as it needs torch
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..types import Renderer


def _warp(weights: Path | None, settings: Mapping[str, Any]) -> Renderer:
    if weights is not None:
        raise InputError("the warp renderer is training-free and takes no weights: they are the neural renderer's")
    from .warp import WarpRenderer

    return WarpRenderer(**settings)


def _neural(weights: Path | None, settings: Mapping[str, Any]) -> Renderer:
    if weights is None:
        raise InputError("the neural renderer needs a renderer run (emoportrait train renderer ...)")
    if settings:
        raise InputError(f"the neural renderer takes no settings ({', '.join(settings)}): its run holds them")
    from .neural import NeuralRenderer

    return NeuralRenderer(weights)


RENDERERS: dict[str, Callable[[Path | None, Mapping[str, Any]], Renderer]] = {"warp": _warp, "neural": _neural}
"""Every renderer by name: ``(weights run or None, settings)`` → renderer. A renderer is imported
only when made (the neural one needs torch)."""


def make_renderer(name: str, weights: Path | None = None, settings: Mapping[str, Any] | None = None) -> Renderer:
    """The renderer called ``name`` (:data:`RENDERERS`) from its run ``weights``, where it takes one;
    ``settings``: its configs by constructor argument (the warp renderer's ``config``).

    Raises:
        InputError: an unknown name, or weights or settings the renderer cannot take (or lacks).
    """
    if name not in RENDERERS:
        raise InputError(f"unknown renderer '{name}'; choose one of {', '.join(RENDERERS)}")
    return RENDERERS[name](weights, settings or {})


def __getattr__(name: str):
    """``WarpConfig`` and ``WarpRenderer``, imported when first asked for (OpenCV and the face
    mesh take a second to load; the command line lists the renderers without them)."""
    if name in ("WarpConfig", "WarpRenderer"):
        from . import warp

        return getattr(warp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RENDERERS", "Renderer", "WarpConfig", "WarpRenderer", "make_renderer"]
