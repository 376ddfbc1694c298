"""Speech audio: 16 kHz loading, EVP MFCC windows, loudness/silence, DTW alignment.

EVP (Ji et al., CVPR 2021) drives the face from speech resampled to 16 kHz and
described by MFCCs with a 25 ms window and a 10 ms hop, 13 cepstra of which the 0th
(overall energy) is dropped, leaving 12 per step. At 25 fps there are 4 MFCC steps
per video frame, and the network input for video frame ``i`` is the 28 x 12 "image"
of steps ``4(i-3)`` to ``4(i+4)`` (exclusive).

The MFCCs are python_speech_features' (as in EVP's code), so step ``k`` analyses
samples ``[k * hop, k * hop + win)``. This module generalises the window to any frame
rate: the window of ``window_steps`` step indices is centred on the middle of frame
``i``'s time interval ``[i/fps, (i+1)/fps)``::

    start_i = round((i + 0.5) * steps_per_second / fps) - window_steps // 2

(``round`` halves up), which gives ``4(i-3)`` at 25 fps and 100 steps per second,
EVP's indexing (the audio it covers sits half an analysis window, 12.5 ms, later).
EVP's public code drops the frames whose window leaves the clip; here the MFCC
sequence is instead padded by edge replication, so there is exactly one window per
video frame and a clip of ``duration_s`` seconds has ``T = ceil(duration_s * fps)``
frames (the last one possibly covering only part of a frame interval).

Emotional clips of the same sentence are aligned with dynamic time warping (DTW) on
per-clip mean/variance-normalised MFCCs, and a clip's waveform can be time-warped
onto another's timeline with a phase vocoder (pitch unchanged).

Units: samples are float32 in [-1, 1]; times in seconds; "steps" are MFCC/STFT
columns at the hop; "frames" are video frames; loudness is RMS in dBFS (a full-scale
square wave is 0 dBFS, a full-scale sine about -3 dBFS).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import python_speech_features
import soundfile as sf
import soxr

from . import dtw, media
from .errors import InputError
from .masks import drop_short_runs

logger = logging.getLogger(__name__)

LOUDNESS_FLOOR_DB = -100.0
"""Loudness (dBFS) reported for digital silence and frames past the end of a clip."""

_LOUD_PERCENTILE = 95.0
"""Percentile of the per-frame loudness taken as the clip's "loud" level."""


@dataclass(frozen=True)
class AudioConfig:
    """Numbers of the audio stage (EVP values as defaults).

    Attributes:
        sample_rate: Rate (Hz) all speech is resampled to.
        n_mfcc: Cepstra computed per MFCC step (including c0).
        drop_c0: Drop the 0th cepstrum (overall energy), leaving ``n_mfcc - 1``.
        win_ms: MFCC analysis window length in milliseconds (400 samples at 16 kHz).
        hop_ms: MFCC hop in milliseconds (160 samples at 16 kHz: 100 steps/s).
        n_fft: FFT size of the MFCC and phase-vocoder STFT.
        n_mels: Mel filters. ``n_fft=512`` and ``n_mels=26`` are the defaults of
            ``python_speech_features.mfcc``, which :func:`mfcc` calls as EVP does.
        window_steps: MFCC steps per video frame's input window (28 = 0.28 s).
        silence_db: A frame is silent if it is this many dB (negative) below the
            clip's loud level, the 95th percentile of the per-frame loudness.
        silence_floor_dbfs: A frame below this absolute loudness (dBFS) is always
            silent; a clip whose peak sample is below it is rejected as silent.
        min_silence_frames: Shorter runs of silent frames are not silence (a short
            dip inside a word must not close the mouth).
        min_duration_s: Shortest clip (seconds) accepted for features and DTW.
    """

    sample_rate: int = 16000
    n_mfcc: int = 13
    drop_c0: bool = True
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 26
    window_steps: int = 28
    silence_db: float = -40.0
    silence_floor_dbfs: float = -60.0
    min_silence_frames: int = 3
    min_duration_s: float = 0.5

    def __post_init__(self) -> None:
        positive = ("sample_rate", "n_mfcc", "win_ms", "hop_ms", "n_fft", "n_mels",
                    "window_steps", "min_silence_frames", "min_duration_s")
        for name in positive:
            value = getattr(self, name)
            if not value > 0:
                raise InputError(f"audio setting {name}={value!r} must be positive")
        if self.win_length > self.n_fft:
            raise InputError(
                f"audio setting win_ms={self.win_ms} ({self.win_length} samples) exceeds "
                f"n_fft={self.n_fft}; lower win_ms or raise n_fft"
            )

    @property
    def hop_length(self) -> int:
        """MFCC/STFT hop in samples (160 at 16 kHz)."""
        return round(self.sample_rate * self.hop_ms / 1000.0)

    @property
    def win_length(self) -> int:
        """MFCC analysis window in samples (400 at 16 kHz)."""
        return round(self.sample_rate * self.win_ms / 1000.0)

    @property
    def steps_per_second(self) -> float:
        """MFCC steps per second (100 at the defaults)."""
        return self.sample_rate / self.hop_length


# --------------------------------------------------------------------------- I/O


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a mono signal with soxr (high quality).

    Args:
        samples: (S,) float samples at ``from_rate`` Hz.
        from_rate: Input rate in Hz.
        to_rate: Output rate in Hz.

    Returns:
        (round(S * to_rate / from_rate),) float32 samples at ``to_rate`` Hz.
    """
    for rate in (from_rate, to_rate):
        if not rate > 0:
            raise InputError(f"sample rate {rate!r} Hz is not valid; it must be a positive number")
    samples = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate:
        return samples.copy()
    return np.asarray(soxr.resample(samples, from_rate, to_rate, quality="HQ"), dtype=np.float32)


def load_audio(path: str | Path, config: AudioConfig = AudioConfig()) -> np.ndarray:
    """Read the audio of any audio or video file as mono at ``config.sample_rate``.

    Decoding and the mix-down of all channels to mono are done by
    :func:`emoportrait.media.read_audio` (which raises :class:`InputError` for
    missing or corrupt files and files without audio); input below ``config.sample_rate``
    (e.g. 8 kHz telephone audio) is accepted with a warning that its bandwidth is
    limited.

    Args:
        path: Audio or video file.
        config: Audio settings (``sample_rate`` is used).

    Returns:
        (S,) float32 mono samples in [-1, 1] at ``config.sample_rate`` Hz.
    """
    samples, rate = media.read_audio(path)
    if rate < config.sample_rate:
        logger.warning(
            "'%s' is sampled at %d Hz: its bandwidth is limited to %.1f kHz, so mouth "
            "motion may be less accurate than from %d Hz audio",
            path, rate, rate / 2000.0, config.sample_rate,
        )
    return resample(samples, rate, config.sample_rate)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono samples as a 16-bit PCM WAV file, atomically.

    Written through :func:`emoportrait.media.atomic_output`, so ``path`` is never
    left half-written. Samples outside [-1, 1] are clipped.

    Args:
        path: Output ``.wav`` file (missing directories are created).
        samples: (S,) float samples in [-1, 1].
        sample_rate: Rate in Hz.
    """
    data = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    with media.atomic_output(path) as temp:
        sf.write(temp, data, sample_rate, format="WAV", subtype="PCM_16")


# ----------------------------------------------------------------------- features


def frame_count(n_samples: int, fps: float, config: AudioConfig = AudioConfig()) -> int:
    """Number of video frames of a clip: ``ceil(n_samples / sample_rate * fps)``.

    Args:
        n_samples: Clip length in samples at ``config.sample_rate``.
        fps: Video frame rate (frames per second) the frames are counted at.
        config: Audio settings (``sample_rate``).

    Returns:
        T, the number of frames (a partial last frame counts).
    """
    exact = n_samples * fps / config.sample_rate
    return max(0, math.ceil(exact - 1e-6))  # tolerance: float error must not add a frame


def mfcc(samples: np.ndarray, config: AudioConfig = AudioConfig()) -> np.ndarray:
    """MFCCs of a clip, one step per hop (10 ms), exactly as EVP computes them.

    ``python_speech_features.mfcc`` (EVP's and SyncNet's own front end): pre-emphasis
    0.97, rectangular 25 ms frames starting at sample ``k * hop`` (the last zero-padded),
    ``n_fft`` power spectrum, ``n_mels`` mel filters, natural-log energies, orthonormal
    DCT, lifter 22, and c0 replaced by the log frame energy — then dropped.

    Args:
        samples: (S,) float samples at ``config.sample_rate``.
        config: Audio settings.

    Returns:
        (1 + ceil((S - win) / hop), n_mfcc - drop_c0) float32 MFCCs ((steps, 12) by default).
    """
    coefficients = python_speech_features.mfcc(
        np.asarray(samples, dtype=np.float64),
        samplerate=config.sample_rate,
        winlen=config.win_length / config.sample_rate,
        winstep=config.hop_length / config.sample_rate,
        numcep=config.n_mfcc,
        nfilt=config.n_mels,
        nfft=config.n_fft,
    )
    first = 1 if config.drop_c0 else 0
    return np.ascontiguousarray(coefficients[:, first:], dtype=np.float32)


def window_starts(n_frames: int, fps: float, config: AudioConfig = AudioConfig()) -> np.ndarray:
    """First MFCC step of each video frame's window (may be negative or past the end).

    ``start_i = round((i + 0.5) * steps_per_second / fps) - window_steps // 2`` with
    halves rounded up: the window is centred on the middle of frame ``i``; at 25 fps
    and 100 steps/s this is EVP's ``4 * (i - 3)``.

    Args:
        n_frames: T, the number of video frames.
        fps: Their frame rate.
        config: Audio settings.

    Returns:
        (T,) int64 start steps.
    """
    centres = (np.arange(n_frames) + 0.5) * (config.steps_per_second / fps)
    return np.floor(centres + 0.5).astype(np.int64) - config.window_steps // 2


def mfcc_windows(
    samples: np.ndarray, fps: float, config: AudioConfig = AudioConfig(), n_frames: int | None = None
) -> np.ndarray:
    """EVP's per-frame MFCC "images": one window of ``window_steps`` steps per frame.

    Args:
        samples: (S,) float samples at ``config.sample_rate``.
        fps: Video frame rate the windows are cut for (EVP: 25).
        config: Audio settings.
        n_frames: Number of frames T to produce (e.g. the video's frame count);
            default :func:`frame_count` of the clip. Extra frames see edge-padded
            features; fewer frames truncate.

    Returns:
        (T, window_steps, n_mfcc - drop_c0) float32, (T, 28, 12) by default.
    """
    if n_frames is None:
        n_frames = frame_count(len(samples), fps, config)
    return step_windows(mfcc(samples, config), n_frames, fps, config)


def step_windows(features: np.ndarray, n_frames: int, fps: float, config: AudioConfig = AudioConfig()
                 ) -> np.ndarray:
    """The window of :func:`window_starts` of each of ``n_frames`` frames, cut from
    per-step features (e.g. MFCCs, or another clip's MFCCs warped onto this timeline).

    Steps before the start or after the end repeat the first or last step (edge padding).

    Args:
        features: (N, D) features, one row per step.
        n_frames: T, the number of video frames.
        fps: Their frame rate.
        config: Audio settings (``window_steps``, the hop).

    Returns:
        (T, window_steps, D) windows, in the features' dtype.
    """
    steps = window_starts(n_frames, fps, config)[:, None] + np.arange(config.window_steps)
    return features[np.clip(steps, 0, len(features) - 1)]


def _frame_bounds(n_frames: int, fps: float, config: AudioConfig) -> np.ndarray:
    """(T + 1,) int64 sample index where each frame starts (the last entry ends T-1)."""
    times = np.arange(n_frames + 1) / fps
    return np.floor(times * config.sample_rate + 0.5).astype(np.int64)


def frame_loudness(
    samples: np.ndarray, fps: float, config: AudioConfig = AudioConfig(), n_frames: int | None = None
) -> np.ndarray:
    """RMS loudness of each video frame's samples.

    Frame ``i`` covers ``[i / fps, (i + 1) / fps)``. Digital silence, and frames
    entirely past the end of the clip (when ``n_frames`` asks for more), read
    :data:`LOUDNESS_FLOOR_DB`.

    Args:
        samples: (S,) float samples at ``config.sample_rate``.
        fps: Video frame rate.
        config: Audio settings.
        n_frames: Number of frames T; default :func:`frame_count` of the clip.

    Returns:
        (T,) float32 loudness in dBFS, at least -100.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if n_frames is None:
        n_frames = frame_count(len(samples), fps, config)
    bounds = np.minimum(_frame_bounds(n_frames, fps, config), len(samples))
    energy = np.concatenate([[0.0], np.cumsum(samples**2)])
    counts = np.diff(bounds)
    sums = np.maximum(energy[bounds[1:]] - energy[bounds[:-1]], 0.0)
    mean_square = np.divide(sums, counts, out=np.zeros(n_frames), where=counts > 0)
    floor_power = 10.0 ** (LOUDNESS_FLOOR_DB / 10.0)
    return (10.0 * np.log10(np.maximum(mean_square, floor_power))).astype(np.float32)


def silence_mask(
    samples: np.ndarray, fps: float, config: AudioConfig = AudioConfig(), n_frames: int | None = None
) -> np.ndarray:
    """Which video frames are silent (the mouth is then forced closed).

    A frame is silent if its :func:`frame_loudness` is below the clip's loud level
    (95th percentile of the loudness of the frames inside the clip) plus
    ``silence_db``, OR below the absolute ``silence_floor_dbfs``. Runs of fewer
    than ``min_silence_frames`` silent frames are then cleared (a short dip inside
    a word is not silence).

    Args:
        samples: (S,) float samples at ``config.sample_rate``.
        fps: Video frame rate.
        config: Audio settings.
        n_frames: Number of frames T; default :func:`frame_count` of the clip.
            Frames past the end of the clip are silent.

    Returns:
        (T,) bool, True where the frame is silent.
    """
    loudness = frame_loudness(samples, fps, config, n_frames)
    inside = loudness[: frame_count(len(samples), fps, config)]
    loud_level = np.percentile(inside, _LOUD_PERCENTILE) if len(inside) else LOUDNESS_FLOOR_DB
    silent = (loudness < loud_level + config.silence_db) | (loudness < config.silence_floor_dbfs)
    return drop_short_runs(silent, config.min_silence_frames)


def check_speech(
    samples: np.ndarray, config: AudioConfig = AudioConfig(), name: str = "speech"
) -> None:
    """Reject clips that cannot drive a face: too short, non-finite or silent.

    Args:
        samples: (S,) float samples at ``config.sample_rate``.
        config: Audio settings (``min_duration_s``, ``silence_floor_dbfs``).
        name: The clip's name (e.g. its file) for the error message.

    Raises:
        InputError: If the clip is shorter than ``min_duration_s``, holds NaN or
            infinite samples, or its peak is below ``silence_floor_dbfs``.
    """
    samples = np.asarray(samples)
    duration = len(samples) / config.sample_rate
    if duration < config.min_duration_s:
        raise InputError(
            f"'{name}' is {duration:.2f} s long; at least {config.min_duration_s:.2f} s "
            "of speech is needed"
        )
    if not np.all(np.isfinite(samples)):
        raise InputError(f"'{name}' contains NaN or infinite samples; re-export the audio")
    peak = float(np.max(np.abs(samples)))
    peak_db = 20.0 * math.log10(peak) if peak > 0 else -math.inf
    if peak_db < config.silence_floor_dbfs:
        raise InputError(
            f"'{name}' is silent (peak {peak_db:.1f} dBFS); use a recording with audible "
            f"speech (peak above {config.silence_floor_dbfs:.0f} dBFS)"
        )


# -------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class DtwResult:
    """A DTW alignment of a reference sequence (N steps) and another (M steps).

    Attributes:
        path: (K, 2) int64 ``(reference_step, other_step)`` pairs, monotone
            non-decreasing in both columns, from ``(0, 0)`` to ``(N-1, M-1)``.
        cost: Accumulated Euclidean distance of the normalised features along the
            path divided by the path length K (0 for identical inputs).
    """

    path: np.ndarray
    cost: float


def _cmvn(features: np.ndarray) -> np.ndarray:
    """(N, D) features with per-dimension zero mean and unit variance over the clip."""
    features = np.asarray(features, dtype=np.float64)
    return (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-8)


def dtw_align(
    reference: np.ndarray, other: np.ndarray, config: AudioConfig = AudioConfig()
) -> DtwResult:
    """Align two feature sequences (e.g. MFCCs of two readings of one sentence).

    Each sequence is first normalised per clip (cepstral mean and variance
    normalisation, CMVN), so the overall loudness and timbre differences between
    emotions do not dominate the distance; then :func:`emoportrait.dtw.align` (the
    Euclidean metric, steps (1,1), (0,1), (1,0); exact up to a few thousand steps each,
    multiscale in linear memory beyond) finds the cheapest path.

    Args:
        reference: (N, D) features of the reference clip, one row per step.
        other: (M, D) features of the clip to align to it.
        config: Audio settings; each sequence needs at least
            ``min_duration_s * steps_per_second`` steps.

    Returns:
        The :class:`DtwResult`.

    Raises:
        InputError: If a sequence is too short or the feature sizes differ.
    """
    reference, other = np.asarray(reference), np.asarray(other)
    min_steps = math.ceil(config.min_duration_s * config.steps_per_second)
    for label, features in (("reference", reference), ("other", other)):
        if features.ndim != 2 or len(features) < min_steps:
            raise InputError(
                f"{label} features have shape {features.shape}; DTW needs (steps, dims) "
                f"with at least {min_steps} steps ({config.min_duration_s:.2f} s of speech)"
            )
    if reference.shape[1] != other.shape[1]:
        raise InputError(
            f"reference features have {reference.shape[1]} dims but other features have "
            f"{other.shape[1]}; compute both with the same AudioConfig"
        )
    path, accumulated = dtw.align(_cmvn(reference), _cmvn(other))
    return DtwResult(path=path, cost=accumulated / len(path))


def warp_features(other_features: np.ndarray, path: np.ndarray, n_reference: int) -> np.ndarray:
    """Resample the other clip's per-step features onto the reference timeline.

    Args:
        other_features: (M, ...) features of the other clip.
        path: (K, 2) ``(reference_step, other_step)`` pairs covering every reference
            step ``0 .. n_reference-1`` (as returned by :func:`dtw_align`).
        n_reference: N, the number of reference steps.

    Returns:
        (N, ...) array (float64 or the input's float type): for every reference step,
        the mean of the other clip's steps matched to it.
    """
    other_features = np.asarray(other_features)
    path = np.asarray(path)
    counts = np.bincount(path[:, 0], minlength=n_reference)[:n_reference]
    if np.any(counts == 0) or path[:, 0].max() >= n_reference:
        raise ValueError(f"path does not cover reference steps 0..{n_reference - 1} exactly")
    dtype = np.result_type(other_features.dtype, np.float32)
    sums = np.zeros((n_reference, *other_features.shape[1:]), dtype=np.float64)
    np.add.at(sums, path[:, 0], other_features[path[:, 1]])
    shape = (n_reference,) + (1,) * (other_features.ndim - 1)
    return (sums / counts.reshape(shape)).astype(dtype)


def _time_map(path: np.ndarray, n_columns: int, n_other: int) -> np.ndarray:
    """(n_columns,) fractional other step for each reference step, monotone.

    The mean matched other step per reference step is made non-decreasing; runs of
    reference steps with the same value (the other clip is stretched there) are
    replaced by one anchor at the run's centre, and the anchors are linearly
    interpolated, so stretches progress smoothly instead of freezing and jumping.
    """
    mean_other = warp_features(np.arange(n_other, dtype=np.float64), path, path[:, 0].max() + 1)
    mean_other = np.maximum.accumulate(mean_other)
    values, first, run_lengths = np.unique(mean_other, return_index=True, return_counts=True)
    centres = first + (run_lengths - 1) / 2.0
    time_map = np.interp(np.arange(n_columns), centres, values)
    return np.clip(time_map, 0.0, n_other - 1)


def warp_waveform(
    other_samples: np.ndarray,
    path: np.ndarray,
    n_reference_samples: int,
    config: AudioConfig = AudioConfig(),
) -> np.ndarray:
    """Time-warp the other clip's waveform onto the reference timeline, pitch kept.

    A monotone map from each reference STFT step to a fractional step of the other
    clip is built from the path (see :func:`_time_map`); a phase vocoder then reads
    the other clip's STFT (``n_fft``, hop 160, Hann) at those fractional steps, as
    ``librosa.phase_vocoder`` does for a constant rate: magnitudes are interpolated
    linearly between the two neighbouring columns and the phase is accumulated from
    the measured per-bin phase advance. ``librosa.istft`` gives the exact length.

    Args:
        other_samples: (S_other,) float samples at ``config.sample_rate``.
        path: (K, 2) ``(reference_step, other_step)`` MFCC-step pairs from
            :func:`dtw_align` (the STFT here uses the same hop and centring, so its
            steps are the MFCC steps).
        n_reference_samples: Length of the reference clip in samples.
        config: Audio settings (``hop_length``, ``n_fft``).

    Returns:
        (n_reference_samples,) float32 warped samples.
    """
    hop = config.hop_length
    spectrum = librosa.stft(
        np.asarray(other_samples, dtype=np.float32), n_fft=config.n_fft, hop_length=hop
    )
    n_other = spectrum.shape[1]
    time_steps = _time_map(np.asarray(path), 1 + n_reference_samples // hop, n_other)

    padded = np.concatenate([spectrum, spectrum[:, -1:]], axis=1)  # room for column k + 1
    column = np.floor(time_steps).astype(np.int64)
    alpha = (time_steps - column)[None, :]
    left, right = padded[:, column], padded[:, column + 1]
    magnitude = (1.0 - alpha) * np.abs(left) + alpha * np.abs(right)

    expected = np.linspace(0.0, np.pi * hop, spectrum.shape[0])[:, None]  # 2*pi*k*hop/n_fft
    deviation = np.angle(right) - np.angle(left) - expected
    deviation -= 2.0 * np.pi * np.round(deviation / (2.0 * np.pi))
    advance = np.cumsum(expected + deviation, axis=1)
    phase = np.angle(left[:, :1]) + np.concatenate(
        [np.zeros((spectrum.shape[0], 1)), advance[:, :-1]], axis=1
    )
    warped = librosa.istft(
        magnitude * np.exp(1j * phase), hop_length=hop, n_fft=config.n_fft,
        length=n_reference_samples,
    )
    return warped.astype(np.float32)


def align_audio(
    reference_samples: np.ndarray,
    other_samples: np.ndarray,
    config: AudioConfig = AudioConfig(),
    names: tuple[str, str] = ("reference", "other"),
) -> tuple[np.ndarray, DtwResult]:
    """Time-warp one reading of a sentence onto another's timeline.

    Both clips are checked with :func:`check_speech`, described by :func:`mfcc`,
    aligned with :func:`dtw_align` and the other clip's waveform is warped with
    :func:`warp_waveform`.

    Args:
        reference_samples: (S_ref,) float samples at ``config.sample_rate``.
        other_samples: (S_other,) float samples at ``config.sample_rate``.
        config: Audio settings.
        names: The two clips' names (e.g. their files) for error messages.

    Returns:
        ((S_ref,) float32 warped other samples, the :class:`DtwResult` on MFCC steps).
    """
    check_speech(reference_samples, config, name=names[0])
    check_speech(other_samples, config, name=names[1])
    result = dtw_align(mfcc(reference_samples, config), mfcc(other_samples, config), config)
    warped = warp_waveform(other_samples, result.path, len(reference_samples), config)
    return warped, result
