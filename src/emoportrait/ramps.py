"""Smooth ramps shared by the drivers and renderers."""

from __future__ import annotations

import numpy as np


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    """``3x² - 2x³`` of ``x`` clipped to [0, 1]: a smooth 0 → 1 ramp (same shape as ``x``)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
