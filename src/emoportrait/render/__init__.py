"""Renderers: turn a target frame and new face landmarks into an output frame.

- :mod:`.warp`    training-free piecewise-affine warp with a synthetic mouth interior (CPU)
- :mod:`.neural`  EVP's edge-map-to-video generator trained per subject (:mod:`.neural_training`);
  imported on demand, as it needs torch
"""

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .warp import WarpConfig, WarpRenderer


class Renderer(Protocol):
    """What :func:`emoportrait.pipeline.generate` needs from a renderer.

    A renderer trained for one frame height (the neural one) also has a
    ``trained_height: int`` attribute: ``generate`` draws at that height unless told a size.
    """

    def start(self, frames: Sequence[np.ndarray], landmarks: np.ndarray, found: np.ndarray) -> None:
        """Called once per video before its first :meth:`render`, with the target's ``T``
        frames ``(H, W, 3)`` uint8, their tracked ``(T, 478, 3)`` landmark pixels and
        ``(T,)`` bool where the face was seen: reset any state, and raise
        :class:`~emoportrait.errors.InputError` if the renderer cannot draw this target."""
        ...

    def render(self, frame: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``frame`` ``(H, W, 3)`` uint8 RGB with its face at ``source`` ``(478, 3)`` px
        → the frame with the face moved to ``target`` ``(478, 3)`` px, ``(H, W, 3)`` uint8."""
        ...


__all__ = ["Renderer", "WarpConfig", "WarpRenderer"]
