"""Dynamic time warping in memory that grows linearly with the sequences' length.

Full DTW of an ``N``-step and an ``M``-step sequence fills ``N × M`` cells: for two
10-minute clips (60 000 MFCC steps each) that is 27 GiB with librosa. :func:`align`
runs ``librosa.sequence.dtw`` exactly while ``N × M`` is at most :data:`EXACT_CELLS`;
beyond that it is *multiscale*: both sequences are averaged over blocks of ``f`` steps so
that the coarse problem fits, the coarse path is found (recursively), and the full
resolution path is searched only inside a band around it, :data:`RADIUS` steps wider
than the coarse path's blocks on either side (as FastDTW, Salvador & Chan 2007). The
band holds about ``N × (f + 2·RADIUS)`` cells.

Steps are (1, 1), (1, 0) and (0, 1), the local cost the Euclidean distance, as in
librosa's default; the cost returned is the accumulated cost at ``(N-1, M-1)``.
"""

from __future__ import annotations

import math

import librosa
import numpy as np

EXACT_CELLS = 4_000_000
"""``N × M`` up to which the exact, full-matrix DTW runs (about 100 MB)."""

RADIUS = 8
"""Full-resolution steps the band extends beyond the coarse path's blocks on each side."""

_DIAGONAL, _UP, _LEFT = 0, 1, 2  # the step that reached a cell: from (i-1, j-1), (i-1, j), (i, j-1)


def align(reference: np.ndarray, other: np.ndarray, exact_cells: int = EXACT_CELLS) -> tuple[np.ndarray, float]:
    """The cheapest monotone path between two feature sequences.

    Args:
        reference: ``(N, D)`` features, one row per step.
        other: ``(M, D)`` features.
        exact_cells: the largest ``N × M`` solved exactly (see the module docs).

    Returns:
        ``((K, 2)`` int64 ``(reference_step, other_step)`` pairs from ``(0, 0)`` to
        ``(N-1, M-1)``, the accumulated Euclidean cost along it).
    """
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    n, m = len(reference), len(other)
    if n * m <= exact_cells or min(n, m) < 2:
        accumulated, warping = librosa.sequence.dtw(X=reference.T, Y=other.T, metric="euclidean")
        return np.ascontiguousarray(warping[::-1], dtype=np.int64), float(accumulated[-1, -1])
    factor = math.ceil(math.sqrt(n * m / exact_cells))
    coarse, _ = align(_block_means(reference, factor), _block_means(other, factor), exact_cells)
    low, high = _band(coarse, factor, n, m)
    return _banded(reference, other, low, high)


def _block_means(features: np.ndarray, factor: int) -> np.ndarray:
    """``(ceil(N / factor), D)`` means of consecutive blocks of ``factor`` rows."""
    blocks = -(-len(features) // factor)
    padded = np.concatenate([features, np.repeat(features[-1:], blocks * factor - len(features), axis=0)])
    return padded.reshape(blocks, factor, -1).mean(axis=1)


def _band(coarse: np.ndarray, factor: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` first and ``(N,)`` one-past-last other step allowed on each reference
    step: the blocks of the coarse path's cells, widened by :data:`RADIUS`."""
    low = np.full(-(-n // factor), np.iinfo(np.int64).max)
    high = np.zeros_like(low)
    np.minimum.at(low, coarse[:, 0], coarse[:, 1] * factor)
    np.maximum.at(high, coarse[:, 0], (coarse[:, 1] + 1) * factor)
    low = np.repeat(low, factor)[:n]
    high = np.repeat(high, factor)[:n]
    low = np.clip(low - RADIUS, 0, m)
    high = np.clip(high + RADIUS, 1, m)
    low[0], high[-1] = 0, m
    return low, high


def _banded(reference: np.ndarray, other: np.ndarray, low: np.ndarray, high: np.ndarray
            ) -> tuple[np.ndarray, float]:
    """DTW restricted to columns ``[low[i], high[i])`` of each row ``i``.

    Row by row: with ``a_j`` the best of the diagonal and upper neighbours and ``c_j``
    the local cost, a cell's cost ``D_j = c_j + min(a_j, D_{j-1})`` unrolls to
    ``S_j + min_{k<=j}(a_k - S_{k-1})`` with ``S`` the running sum of ``c``: a cumulative
    minimum, so each row is a few vector operations.
    """
    previous = np.full(0, np.inf)
    previous_low = 0
    steps: list[np.ndarray] = []
    for i in range(len(reference)):
        columns = np.arange(low[i], high[i])
        cost = np.linalg.norm(other[low[i]:high[i]] - reference[i], axis=1)
        up = _lookup(previous, previous_low, columns)
        diagonal = _lookup(previous, previous_low, columns - 1)
        if i == 0:
            diagonal[0] = 0.0  # the path starts at (0, 0)
        entry = np.minimum(diagonal, up)
        running = np.concatenate([[0.0], np.cumsum(cost)])
        candidates = entry - running[:-1]
        best = np.minimum.accumulate(candidates)
        total = running[1:] + best
        step = np.where(diagonal <= up, _DIAGONAL, _UP).astype(np.int8)
        from_left = np.concatenate([[False], candidates[1:] > best[:-1]])
        step[from_left] = _LEFT
        steps.append(step)
        previous, previous_low = total, low[i]
    return _trace(steps, low, len(other)), float(previous[-1])


def _lookup(row: np.ndarray, start: int, columns: np.ndarray) -> np.ndarray:
    """``row``'s values (it spans columns ``start …``) at ``columns``; inf outside it."""
    index = columns - start
    inside = (index >= 0) & (index < len(row))
    values = np.full(len(columns), np.inf)
    values[inside] = row[index[inside]]
    return values


def _trace(steps: list[np.ndarray], low: np.ndarray, m: int) -> np.ndarray:
    """The path back from ``(N-1, M-1)`` to ``(0, 0)`` along the recorded steps."""
    i, j = len(steps) - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        step = steps[i][j - low[i]]
        if step != _UP:
            j -= 1
        if step != _LEFT:
            i -= 1
        path.append((i, j))
    return np.array(path[::-1], dtype=np.int64)
