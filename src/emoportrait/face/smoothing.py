"""Temporal clean-up of landmark tracks: gap filling and One-Euro smoothing."""

from __future__ import annotations

import numpy as np

from ..masks import runs


def fill_gaps(
    values: np.ndarray, found: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Fill the frames where nothing was found.

    Args:
        values: ``(T, ...)`` per-frame values; rows where ``found`` is False are ignored.
        found: ``(T,)`` bool, at least one True.
        max_gap: gaps of at most this many frames between two found frames are
            linearly interpolated; longer gaps, and gaps at either end, hold the
            nearest found frame.

    Returns:
        ``(filled, interpolated, long_gaps)``: ``filled`` like ``values`` with every
        row finite; ``interpolated`` ``(T,)`` bool marks the linearly filled frames;
        ``long_gaps`` lists the ``[start, end)`` ranges that were held, not interpolated.
    """
    found = np.asarray(found, bool)
    if not found.any():
        raise ValueError("fill_gaps needs at least one found frame")
    filled = np.array(values, copy=True)
    interpolated = np.zeros(len(found), bool)
    long_gaps = []
    flat = filled.reshape(len(found), -1)
    for start, end in runs(~found):
        inside = start > 0 and end < len(found)
        if inside and end - start <= max_gap:
            weights = (np.arange(start, end) - (start - 1)) / (end - start + 1)
            flat[start:end] = (1 - weights[:, None]) * flat[start - 1] + weights[:, None] * flat[end]
            interpolated[start:end] = True
            continue
        middle = (start + end) // 2 if inside else (start if start == 0 else end)
        if start > 0:
            flat[start:middle] = flat[start - 1]
        if end < len(found):
            flat[middle:end] = flat[end]
        long_gaps.append((start, end))
    return filled, interpolated, long_gaps


def _smoothing_factor(cutoff_hz: np.ndarray | float, fps: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * np.pi * cutoff_hz)
    return 1.0 / (1.0 + tau * fps)


def one_euro(
    values: np.ndarray,
    fps: float,
    min_cutoff_hz: float = 1.5,
    beta: float = 3.0,
    d_cutoff_hz: float = 1.0,
) -> np.ndarray:
    """Causal One-Euro filter (Casiez et al., CHI 2012) along axis 0.

    Args:
        values: ``(T, ...)`` float signal sampled at ``fps``; every element is filtered
            independently.
        min_cutoff_hz: cutoff when the signal is still (removes jitter).
        beta: how fast the cutoff rises with speed, in Hz per (unit of ``values``
            per second); larger keeps fast motion (speech) sharper.
        d_cutoff_hz: cutoff of the speed estimate.

    Returns:
        ``(T, ...)`` float64 filtered signal.
    """
    values = np.asarray(values, np.float64)
    out = np.empty_like(values)
    out[0] = values[0]
    speed = np.zeros_like(values[0])
    alpha_d = _smoothing_factor(d_cutoff_hz, fps)
    for t in range(1, len(values)):
        raw_speed = (values[t] - out[t - 1]) * fps
        speed = alpha_d * raw_speed + (1 - alpha_d) * speed
        alpha = _smoothing_factor(min_cutoff_hz + beta * np.abs(speed), fps)
        out[t] = alpha * values[t] + (1 - alpha) * out[t - 1]
    return out


def one_euro_zero_phase(values: np.ndarray, fps: float, **params: float) -> np.ndarray:
    """One-Euro run forward then backward: no lag, for offline tracks. Same arguments."""
    forward = one_euro(values, fps, **params)
    return one_euro(forward[::-1], fps, **params)[::-1]
