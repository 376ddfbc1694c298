"""Weight-free lip-sync measures: lag-searched correlations of a mouth's opening with the
loudness of its own speech (:func:`loudness_following`) or with a real mouth
(:func:`lagged_correlation`).

Loudness following is *not* lip sync: real speakers score 0.1-0.4 (their mouths follow
phones, not loudness), a mouth driven by loudness alone scores near 1. It tells a frozen
or out-of-step mouth (near 0, or a large lag) from one that moves with the speech,
nothing more. For lip sync without a reference, give SyncNet's weights (LSE-C/LSE-D,
:mod:`.syncnet`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import frame_loudness, load_audio
from ..face import FaceTrack, inner_mouth_opening, rigid_radius

__all__ = ["LOUDNESS_FLOOR_DB", "MIN_CORRELATION_SAMPLES", "LaggedCorrelation", "lagged_correlation",
           "loudness_following", "mouth_opening", "track_loudness_following"]

LOUDNESS_FLOOR_DB = -60.0
"""Loudness (dBFS) below which speech counts as silence for :func:`loudness_following`."""

MIN_CORRELATION_SAMPLES = 3
"""Frames that must overlap for a correlation."""


@dataclass(frozen=True)
class LaggedCorrelation:
    """Best correlation of a signal with a reference over the searched lags.

    Attributes:
        correlation: Pearson r in [-1, 1] at the best lag; NaN if not computable
            (e.g. a still mouth or constant loudness).
        lag_frames: Frames the signal lags behind the reference (positive = signal late).
    """

    correlation: float
    lag_frames: int

    def lag_ms(self, fps: float) -> float:
        """The lag in milliseconds at ``fps`` frames per second."""
        return 1000.0 * self.lag_frames / fps


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two ``(N,)`` signals; NaN if either is constant."""
    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / norm if norm > 0 else math.nan


def _lagged_pair(video: np.ndarray, audio: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping parts of ``video[t]`` and ``audio[t - lag]``."""
    n = len(video)
    return (video[lag:], audio[: n - lag]) if lag >= 0 else (video[: n + lag], audio[-lag:])


def lagged_correlation(signal: np.ndarray, reference: np.ndarray, max_lag: int = 5) -> LaggedCorrelation:
    """Best Pearson correlation of ``signal[t]`` with ``reference[t - lag]`` over the lags.

    Lags from ``-max_lag`` to ``+max_lag`` frames are tried, as long as at least 3
    frames overlap; the highest correlation wins (ties: the smaller lag).

    Args:
        signal: ``(T,)`` e.g. a generated mouth opening.
        reference: ``(T,)`` e.g. the speech loudness, or a real mouth opening.
        max_lag: Largest lag searched, frames.

    Returns:
        The best :class:`LaggedCorrelation` (positive lag: ``signal`` late); ``(NaN, 0)`` when no
        lag gives a correlation.
    """
    signal, reference = np.asarray(signal, np.float64), np.asarray(reference, np.float64)
    if signal.shape != reference.shape or signal.ndim != 1:
        raise ValueError(f"signals must be (T,) of one length, got {signal.shape} and {reference.shape}")
    reach = min(max_lag, len(signal) - MIN_CORRELATION_SAMPLES)
    scores = {lag: _pearson(*_lagged_pair(signal, reference, lag)) for lag in range(-reach, reach + 1)}
    scores = {lag: r for lag, r in scores.items() if not math.isnan(r)}
    if not scores:
        return LaggedCorrelation(math.nan, 0)
    best = max(scores, key=lambda lag: (scores[lag], -abs(lag)))
    return LaggedCorrelation(scores[best], best)


def loudness_following(mouth_opening: np.ndarray, loudness_db: np.ndarray, max_lag: int = 5) -> LaggedCorrelation:
    """Lag-searched Pearson correlation of mouth opening and speech loudness (not lip
    sync: see the module docstring).

    Loudness is clipped below at :data:`LOUDNESS_FLOOR_DB` so silence of any depth
    counts the same. Lags from ``-max_lag`` to ``+max_lag`` frames are tried (5 =
    0.2 s at 25 fps), as long as at least 3 frames overlap, and the lag with the
    highest correlation is returned (a negative correlation is no sync).

    Args:
        mouth_opening: ``(T,)`` mouth opening per frame (any unit, e.g. face sizes).
        loudness_db: ``(T,)`` speech loudness per frame, dBFS.
        max_lag: Largest lag searched, frames.

    Returns:
        The best :class:`LaggedCorrelation`; ``(NaN, 0)`` when no lag gives a correlation.
    """
    loudness = np.maximum(np.asarray(loudness_db, np.float64), LOUDNESS_FLOOR_DB)
    return lagged_correlation(mouth_opening, loudness, max_lag)


def mouth_opening(track: FaceTrack) -> np.ndarray:
    """``(T,)`` inner-lip opening of a track over its face's size (head size cancels)."""
    return inner_mouth_opening(track.landmarks[..., :2]) / rigid_radius(track.landmarks)


def track_loudness_following(track: FaceTrack, path: str | Path) -> LaggedCorrelation:
    """:func:`loudness_following` of a tracked video against the loudness of its own audio track."""
    loudness = frame_loudness(load_audio(path), track.fps, n_frames=len(track))
    return loudness_following(mouth_opening(track), loudness)
