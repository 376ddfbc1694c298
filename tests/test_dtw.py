"""dtw: the multiscale banded DTW finds the exact path in memory that grows linearly."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from emoportrait import dtw


def _readings(n: int, stretch: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random ``(n, 12)`` feature walk and a noisy, unevenly time-stretched reading of it."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(size=(n, 12)), axis=0) * 0.1 + rng.normal(size=(n, 12))
    times = np.linspace(0, n - 1, int(n * stretch))
    times = np.clip(times + 3 * np.sin(times / 50), 0, n - 1)
    other = np.stack([np.interp(times, np.arange(n), walk[:, d]) for d in range(12)], axis=1)
    return walk, other + 0.3 * rng.normal(size=other.shape)


def test_the_banded_search_finds_the_exact_path():
    reference, other = _readings(1200, 1.3)
    exact_path, exact_cost = dtw.align(reference, other)
    path, cost = dtw.align(reference, other, exact_cells=100_000)  # forced through a coarser level
    assert cost == pytest.approx(exact_cost, rel=1e-9)
    np.testing.assert_array_equal(path, exact_path)


def test_paths_are_monotone_and_span_both_sequences():
    reference, other = _readings(700, 0.6, seed=1)
    path, _ = dtw.align(reference, other, exact_cells=10_000)
    steps = np.diff(path, axis=0)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (len(reference) - 1, len(other) - 1)
    assert ((steps >= 0) & (steps <= 1)).all() and (steps.sum(axis=1) > 0).all()


def test_two_long_clips_align_in_little_memory():
    """Two 10-minute clips asked librosa for 26.8 GiB; 3 and 4 minutes here take under 100 MB."""
    reference, other = _readings(18_000, 1.3)
    tracemalloc.start()
    try:
        path, _ = dtw.align(reference, other)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6
    assert np.abs(path[:, 1] - path[:, 0] * 1.3).max() < 0.05 * len(other)  # it follows the stretch
