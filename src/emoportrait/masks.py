"""Helpers on per-frame boolean masks (silence, face found, ...)."""

from __future__ import annotations

import numpy as np


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges of the True runs of a ``(T,)`` bool mask."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def drop_short_runs(mask: np.ndarray, min_length: int) -> np.ndarray:
    """Copy of a ``(T,)`` bool mask with its True runs shorter than ``min_length`` cleared."""
    kept = np.zeros(len(mask), bool)
    for start, end in runs(mask):
        if end - start >= min_length:
            kept[start:end] = True
    return kept
