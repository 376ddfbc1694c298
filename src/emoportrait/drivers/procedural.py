"""A training-free driver: mouth from the speech's phones, emotion from FACS prototypes.

:class:`ProceduralDriver` builds the expression track from three parts, all in the
canonical face frame (y down, "up" is negative y) and all built on the identity
face (see :mod:`.action_units`):

* **Mouth** (:func:`mouth_track`). The speech's phones are recognised
  (:mod:`emoportrait.phones`) and turned into visemes with coarticulation
  (:mod:`.visemes`): the jaw opens on vowels, the lips seal on /p b m/, the lower lip
  tucks under the teeth on /f v/, the lips round on /u o w/ and spread on /i e/.
  Where no plausible phones are found (music, noise) the *spectral* mouth is used:
  the jaw opening follows the frame's loudness (:func:`mouth_opening_track`) and the
  rounding the balance of second- to first-formant band energy
  (:func:`lip_rounding_track`). :attr:`ProceduralDriver.notes` says which was used.
  Either way the mouth is at rest on the frames
  :func:`emoportrait.audio.silence_mask` calls silent.
* **Emotion.** Each emotion is a weighted set of action units (``prototypes``); a
  mixture adds its emotions' AU fields by intensity. The field is scaled by an
  envelope (:func:`emotion_envelope`): onset and offset ramps and a slow, seeded,
  slight drift.
* **Blinks.** The lids close (upper lid down to meet a slightly raised lower lid)
  at seeded random intervals (:func:`blink_track`); a closing lid overrides the
  emotion's lid moves, so wide-open (AU5) eyes blink fully too.

The output is linear in each part: ``Σ_k coefficient_k(t) · field_k``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import librosa
import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter1d

from ..audio import AudioConfig, frame_count, frame_loudness, silence_mask
from ..emotions import EMOTIONS, EmotionSpec
from ..errors import InputError
from ..face.landmarks import N_LANDMARKS
from ..phones import PhoneConfig, RecognitionFailed, prefetch, recognise_phones
from ..ramps import smoothstep
from .action_units import (
    ACTION_UNITS,
    ActionUnitConfig,
    FaceGeometry,
    action_unit,
    blink_field,
    eye_weight,
    lip_pucker,
    lip_stretch,
    lower_lip_tuck,
    mouth_opening,
    upper_lip_raise,
)
from .visemes import MouthTrack, VisemeConfig, viseme_track

MOUTH_SOURCES = ("auto", "visemes", "spectral")
"""``ProceduralConfig.mouth``: visemes when phones are recognised (auto), always, or never."""

# FACS prototypes: AU weights of each emotion at intensity 1 (after Ekman & Friesen's EMFACS).
# The lips' parting (AU25) and the jaw drop (AU26) are what a talking face holds open on top of
# its speech, which opens wider with the emotion's articulation gain (below): while talking, MEAD's
# actors' median lip gap is 0.04-0.11 above their neutral one (surprised 0.03 / 0.05, fear
# 0.05 / 0.07, angry 0.10 / 0.11, M030 / W009), where these prototypes held surprise and fear
# 0.24 and 0.19 open, then 0.11 and 0.14, now 0.056 and 0.085 (gain included; the driver's own
# gap on the actors' neutral faces, 3 s of speech).
# Surprise and fear open the mouth with the speech more than neutral does (10th-90th percentile
# range x1.19 and x1.48 here, the actors' x1.31 / x1.03 and x1.30 / x1.76).
_PROTOTYPES: dict[str, dict[str, float]] = {
    "happy": {"AU6": 1.0, "AU10": 0.4, "AU12": 1.3, "AU25": 1.0},               # Duchenne smile, teeth showing
    # sad: oblique brows (inner ends up and together), drooping lids, corners down; 1.4x the
    # brows and corners of before (by eye, and the default FER's p(sad) over the six benchmark
    # portraits 0.18 -> 0.23: at the strength of MEAD's level 3 it read as neutral)
    # The lids are tightened too (AU7): the tracked lid gap of MEAD's sad actors narrows by 0.068 and
    # 0.018 eye spans, the prototype's (AU41 alone) by 0.017 and 0.009 (benchmarks/evp_mead.py's clips);
    # at AU7 0.8 a video target's open eyes looked shut.
    "sad": {"AU1": 1.4, "AU4": 0.8, "AU7": 0.4, "AU15": 1.4, "AU17": 0.3, "AU41": 1.0},
    "angry": {"AU4": 1.2, "AU5": 0.5, "AU7": 1.0, "AU10": 0.6, "AU23": 0.4},  # glare, bared teeth
    # fear: inner brows up and drawn together (AU1 + AU4: oblique, not arched as in surprise),
    # upper lids up and tense, lips stretched sideways with the lower one drawn down (AU20 + AU16):
    # a wide, tense mouth, not surprise's dropped jaw (which speech would open further). The outer
    # brows rise too (AU2 1.0; at 0.4, AU4 pulled them down, where M030's rise and W009's stay)
    "fear": {"AU1": 1.8, "AU2": 1.0, "AU4": 1.0, "AU5": 1.5, "AU7": 0.4, "AU16": 0.5, "AU20": 1.8},
    # disgust narrows the eyes as MEAD's actors do (tracked lid gap -0.041 and -0.022 eye spans; with
    # AU7 0.5, -0.021 and -0.017)
    "disgusted": {"AU9": 0.6, "AU10": 1.2, "AU4": 0.5, "AU6": 0.4, "AU7": 0.7, "AU15": 0.4, "AU17": 0.5},
    "surprised": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.2, "AU25": 0.2, "AU26": 0.1},  # raised brows and lids, lips apart
    "contempt": {"AU12R": 1.2, "AU14R": 1.8, "AU1": 0.4, "AU2": 0.3},          # one-sided smirk, brows up
                                                                                 # (both MEAD actors raise them)
}


# How much wider each emotion articulates its speech than neutral: the gain of the speech opening at
# intensity 1. Measured on MEAD's level-3 clips (benchmarks/evp_mead.py's): the 10th-90th percentile
# range of the tracked inner-lip gap over the neutral clip's, M030 / W009: happy 1.14 / 1.28, sad
# 0.84 / 0.75, angry 2.16 / 2.08, fear 1.30 / 1.76, disgusted 1.52 / 1.29, surprised 1.31 / 1.03,
# contempt 1.02 / 1.13. Aroused speakers open wider on every syllable, sad ones less.
_ARTICULATION: dict[str, float] = {"happy": 1.2, "sad": 0.8, "angry": 2.0, "fear": 1.5, "disgusted": 1.4,
                                   "surprised": 1.2, "contempt": 1.1}


def _default_prototypes() -> dict[str, dict[str, float]]:
    return {emotion: dict(weights) for emotion, weights in _PROTOTYPES.items()}


@dataclass(frozen=True)
class ProceduralConfig:
    """Numbers of the procedural driver (canonical units, seconds, Hz)."""

    mouth: str = "auto"              # one of MOUTH_SOURCES
    visemes: VisemeConfig = field(default_factory=VisemeConfig)
    phones: PhoneConfig = field(default_factory=PhoneConfig)
    # Mouth amplitudes, for either mouth source.
    # Calibrated (benchmarks/realism.py) so that the viseme mouth's mean opening is that
    # of the real speakers': generated/real 0.85-1.11 on stills and video targets.
    opening_gap: float = 0.53        # inner-lip gap at full opening (shared by the jaw and the lips
                                     # as ActionUnitConfig's opening_*_share say)
    tuck_lift: float = 0.015         # /f v/: the lower lip's rise toward the upper teeth
    tuck_back: float = 0.03          # ... and its move back under them
    tuck_teeth_show: float = 0.02    # ... while the upper lip lifts to show the teeth' edges
    # Spectral mouth: opening from loudness.
    loud_percentile: float = 95.0    # percentile of the frame loudness taken as "loud" (opening 1)
    knee: float = 0.35               # fraction of the silence→loud dB range with the jaw still shut
    opening_exponent: float = 0.7    # < 1: compressive curve from dB above the knee to opening
    spectral_opening: float = 0.45   # the loudest frames open this fraction of opening_gap
    smoothing_s: float = 0.035       # std of the zero-phase Gaussian smoother (FWHM 82 ms; 0: off)
    speech_ramp_s: float = 0.08      # mouth motion fades in/out over this time next to silence
    # Lip rounding from the spectral balance.
    low_band_low_hz: float = 250.0     # F1 band: first formants of all vowels
    low_band_high_hz: float = 1000.0
    high_band_low_hz: float = 1400.0   # F2 band: second formants of spread (front) vowels
    high_band_high_hz: float = 3200.0
    balance_min_spread_db: float = 4.0  # floor of the clip's balance spread (steady vowels stay still)
    rounding_gain: float = 1.0         # rounding = tanh(-gain * normalised balance)
    pucker_contraction: float = 0.12  # fully rounded: lips drawn in by this fraction of their offset
    pucker_protrusion: float = 0.04   # fully rounded: lips pushed forward
    spread_stretch: float = 0.08      # fully spread: lips pulled out by this fraction of their offset
    # Emotion.
    prototypes: dict[str, dict[str, float]] = field(default_factory=_default_prototypes)  # _PROTOTYPES
    articulation: dict[str, float] = field(default_factory=lambda: dict(_ARTICULATION))  # speech opening gain
    onset_s: float = 0.4             # the expression builds up over this time at the start
    offset_s: float = 0.4            # and relaxes over this time at the end
    drift_depth: float = 0.08        # slow relative variation of the expression's strength (±)
    drift_low_hz: float = 0.1        # the drift sums sines with seeded frequencies in this band
    drift_high_hz: float = 0.35
    drift_components: int = 3        # number of sines in the drift
    # Blinks.
    first_blink_min_s: float = 0.5   # the first blink comes between this and blink_max_interval_s
    blink_min_interval_s: float = 2.0  # time between blink peaks: uniform in [min, max]
    blink_max_interval_s: float = 6.0
    blink_close_s: float = 0.07      # lids fully open → closed
    blink_open_s: float = 0.13       # closed → fully open (reopening is slower)
    blink_lower_share: float = 0.2   # share of the lid gap the lower lid closes
    seed: int = 0                    # seeds the drift and the blink times

    def __post_init__(self) -> None:
        positive = ("loud_percentile", "opening_exponent", "speech_ramp_s", "low_band_low_hz",
                    "balance_min_spread_db", "onset_s", "offset_s", "drift_low_hz",
                    "drift_components", "blink_min_interval_s", "blink_close_s", "blink_open_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(f"procedural driver setting {name}={getattr(self, name)!r} "
                                 "must be positive")
        if self.mouth not in MOUTH_SOURCES:
            raise InputError(f"procedural driver mouth '{self.mouth}' is unknown; "
                             f"choose from {', '.join(MOUTH_SOURCES)}")
        if not (0.0 <= self.knee < 1.0 and 0.0 <= self.blink_lower_share <= 1.0
                and self.smoothing_s >= 0):
            raise InputError("procedural driver settings need 0 <= knee < 1, "
                             "0 <= blink_lower_share <= 1 and smoothing_s >= 0")
        bands_ordered = (self.low_band_low_hz < self.low_band_high_hz
                         <= self.high_band_low_hz < self.high_band_high_hz)
        if not bands_ordered or self.blink_max_interval_s < self.blink_min_interval_s:
            raise InputError("procedural driver settings need ordered F1 and F2 bands and "
                             "blink_min_interval_s <= blink_max_interval_s")
        self._check_prototypes()

    def _check_prototypes(self) -> None:
        """Every emotion has a prototype made of known action units, and articulation gains are
        positive and of known emotions."""
        for emotion, gain in self.articulation.items():
            if emotion not in EMOTIONS[1:] or not gain > 0:
                raise InputError(f"procedural driver articulation {emotion}={gain!r}: the emotion must be one of "
                                 f"{', '.join(EMOTIONS[1:])} and the gain positive")
        missing = sorted(set(EMOTIONS[1:]) - set(self.prototypes))
        if missing:
            raise InputError(f"procedural driver prototypes lack {', '.join(missing)}")
        for emotion, weights in self.prototypes.items():
            unknown = sorted(set(weights) - set(ACTION_UNITS))
            if unknown:
                raise InputError(f"prototype of '{emotion}' uses unknown action unit(s) "
                                 f"{', '.join(unknown)}; choose from {', '.join(ACTION_UNITS)}")


# ------------------------------------------------------------------ time helpers


def frame_times(n_frames: int, fps: float) -> np.ndarray:
    """``(T,)`` centre time (s) of each frame ``[i/fps, (i+1)/fps)``."""
    return (np.arange(n_frames) + 0.5) / fps


def smooth(track: np.ndarray, fps: float, sigma_s: float) -> np.ndarray:
    """Zero-phase smoothing of a per-frame track with a Gaussian kernel.

    A Gaussian of standard deviation ``sigma_s`` keeps ``exp(-(2π f σ)² / 2)`` of a
    rhythm of ``f`` Hz: at σ = 35 ms, 55% of a 5 Hz syllable rhythm and 2% of 12.5 Hz
    frame-to-frame jitter (the Nyquist rate at 25 fps). A recursive (critically
    damped) smoother on the frame grid passes far more of the jitter for the same
    syllable loss. The ends are extended with their edge values, so a constant
    track stays constant.

    Args:
        track: ``(T,)`` values at ``fps`` frames per second.
        fps: Frame rate.
        sigma_s: Kernel standard deviation in seconds; 0 returns a copy unchanged.

    Returns:
        ``(T,)`` float64 smoothed track.
    """
    track = np.asarray(track, dtype=np.float64)
    if sigma_s == 0 or len(track) == 0:
        return track.copy()
    return gaussian_filter1d(track, sigma_s * fps, mode="nearest")


def speech_gate(silent: np.ndarray, fps: float, ramp_s: float) -> np.ndarray:
    """``(T,)`` 0 on silent frames, rising smoothly to 1 within ``ramp_s`` of speech.

    Args:
        silent: ``(T,)`` bool, True on silent frames.
        fps: Frame rate.
        ramp_s: Ramp length in seconds.
    """
    silent = np.asarray(silent, dtype=bool)
    if not silent.any():
        return np.ones(len(silent))
    frames_to_silence = distance_transform_edt(~silent)
    return smoothstep(frames_to_silence / (fps * ramp_s))


# ----------------------------------------------------------------------- mouth


def led(track: np.ndarray, fps: float, lead_s: float) -> np.ndarray:
    """``(T,)`` ``track`` moved ``lead_s`` earlier (linear interpolation, the ends held)."""
    times = np.arange(len(track), dtype=np.float64)
    return np.interp(times + lead_s * fps, times, track)




def mouth_opening_track(
    speech: np.ndarray,
    n_frames: int,
    fps: float,
    config: ProceduralConfig = ProceduralConfig(),
    audio: AudioConfig = AudioConfig(),
) -> np.ndarray:
    """How far the jaw is open on each frame, from the speech's loudness.

    The loudness ``L`` of each frame (dBFS) is placed between the clip's silence
    level ``Q`` (the median loudness of its silent frames, at least ``silence_db``
    below the loud level) and its loud level (``loud_percentile``):
    ``x = (L - Q) / (loud - Q)``; the opening is ``((x - knee) / (1 - knee))`` clipped
    to [0, 1] to the power ``opening_exponent``, set to 0 on silent frames,
    :func:`smooth`-ed and multiplied by :func:`speech_gate`.

    Args:
        speech: ``(S,)`` float samples at ``audio.sample_rate`` (16 kHz).
        n_frames: T, output frames.
        fps: Output frame rate.
        config: Driver settings.
        audio: Audio settings (``silence_db`` etc.).

    Returns:
        ``(T,)`` float64 opening in [0, 1], exactly 0 on silent frames.
    """
    silent = silence_mask(speech, fps, audio, n_frames)
    if silent.all():
        return np.zeros(n_frames)
    loudness = frame_loudness(speech, fps, audio, n_frames).astype(np.float64)
    inside = loudness[: frame_count(len(speech), fps, audio)]
    loud = np.percentile(inside, config.loud_percentile)
    quiet = loud + audio.silence_db
    if silent.any():
        quiet = max(quiet, float(np.median(loudness[silent])))
    above = (loudness - quiet) / max(loud - quiet, 1e-6)
    raw = np.clip((above - config.knee) / (1.0 - config.knee), 0.0, 1.0) ** config.opening_exponent
    raw[silent] = 0.0
    gate = speech_gate(silent, fps, config.speech_ramp_s)
    return np.clip(smooth(raw, fps, config.smoothing_s) * gate, 0.0, 1.0)


def _frame_spectra(speech: np.ndarray, n_frames: int, fps: float, audio: AudioConfig) -> np.ndarray:
    """``(T, n_fft // 2 + 1)`` mean power spectrum of the STFT columns inside each frame.

    Columns (hop and window of the MFCCs, centred) are assigned to the frame their
    centre falls in; a frame holding no column (fps above the column rate, or past
    the end) takes the next column, or the last.
    """
    samples = np.asarray(speech, dtype=np.float32)
    samples = np.pad(samples, (0, max(0, audio.n_fft - len(samples))))  # room for one window
    power = np.abs(librosa.stft(samples, n_fft=audio.n_fft, hop_length=audio.hop_length,
                                win_length=audio.win_length)) ** 2
    n_columns = power.shape[1]
    edges = np.ceil(np.arange(n_frames + 1) * audio.steps_per_second / fps).astype(np.int64)
    start = np.minimum(edges[:-1], n_columns - 1)
    end = np.clip(edges[1:], start + 1, n_columns)
    cumulative = np.concatenate([np.zeros((1, power.shape[0])), np.cumsum(power.T, axis=0)])
    return (cumulative[end] - cumulative[start]) / (end - start)[:, None]


def lip_rounding_track(
    speech: np.ndarray,
    n_frames: int,
    fps: float,
    config: ProceduralConfig = ProceduralConfig(),
    audio: AudioConfig = AudioConfig(),
) -> np.ndarray:
    """Lip rounding (+) or spreading (-) on each frame, from the spectral balance.

    The balance is the frame's energy in the F2 band over that in the F1 band, in
    dB: low for rounded back vowels (/u/ /o/, F2 under 1 kHz), high for spread front
    vowels (/i/ /e/, F2 near 2 kHz). It is centred on the middle of the 10th-90th
    percentile range of the clip's speech frames and divided by half that range
    (floored at ``balance_min_spread_db``), so the speaker's and the microphone's
    spectral tilt cancel; rounding is ``tanh(-rounding_gain * normalised)``, 0 on
    silent frames, :func:`smooth`-ed and multiplied by :func:`speech_gate`.

    Args:
        speech: ``(S,)`` float samples at ``audio.sample_rate`` (16 kHz).
        n_frames: T, output frames.
        fps: Output frame rate.
        config: Driver settings.
        audio: Audio settings.

    Returns:
        ``(T,)`` float64 in [-1, 1]: +1 fully rounded, -1 fully spread.
    """
    silent = silence_mask(speech, fps, audio, n_frames)
    if silent.all():
        return np.zeros(n_frames)
    spectra = _frame_spectra(speech, n_frames, fps, audio)
    frequencies = librosa.fft_frequencies(sr=audio.sample_rate, n_fft=audio.n_fft)

    def band_db(low_hz: float, high_hz: float) -> np.ndarray:
        inside = (frequencies >= low_hz) & (frequencies < high_hz)
        return 10.0 * np.log10(spectra[:, inside].sum(axis=1) + 1e-20)  # digital silence: finite

    balance = (band_db(config.high_band_low_hz, config.high_band_high_hz)
               - band_db(config.low_band_low_hz, config.low_band_high_hz))
    low, high = np.percentile(balance[~silent], [10.0, 90.0])
    spread = max((high - low) / 2.0, config.balance_min_spread_db)
    rounding = np.tanh(-config.rounding_gain * (balance - (low + high) / 2.0) / spread)
    rounding[silent] = 0.0
    gate = speech_gate(silent, fps, config.speech_ramp_s)
    return smooth(rounding, fps, config.smoothing_s) * gate


def mouth_track(
    speech: np.ndarray,
    n_frames: int,
    fps: float,
    config: ProceduralConfig = ProceduralConfig(),
    audio: AudioConfig = AudioConfig(),
) -> MouthTrack:
    """The mouth's articulation on each frame: from visemes, or from the spectrum.

    With ``config.mouth`` ``"auto"`` the phones are recognised and turned into visemes
    (:func:`.visemes.viseme_track`); if recognition fails, the spectral tracks
    (:func:`mouth_opening_track` times ``spectral_opening``, :func:`lip_rounding_track`)
    are used, and ``source`` says why. ``"visemes"`` raises :class:`InputError` instead
    of falling back; ``"spectral"`` skips recognition. Silent speech gives the rest mouth.

    Args:
        speech: ``(S,)`` float samples at ``audio.sample_rate`` (16 kHz).
        n_frames: T, output frames.
        fps: Output frame rate.
        config: Driver settings.
        audio: Audio settings.
    """
    silent = silence_mask(speech, fps, audio, n_frames)
    rest = np.zeros(n_frames)
    if silent.all():
        return MouthTrack(rest, rest, rest, "rest (the speech is silent)")
    reason = "chosen"
    if config.mouth != "spectral":
        try:
            timing = recognise_phones(speech, config.phones)
        except RecognitionFailed as exc:
            if config.mouth == "visemes":
                raise InputError(f"no speech recognised for the viseme mouth ({exc}); "
                                 "use the spectral mouth instead") from None
            reason = f"no speech recognised: {exc}"
        else:
            opening, width, tuck = viseme_track(timing.phones, n_frames, fps, config.visemes)
            gate = led(speech_gate(silent, fps, config.speech_ramp_s), fps, config.visemes.lead_s)
            return MouthTrack(opening * gate, width * gate, tuck * gate,
                              f"visemes from {timing.describe()}")
    opening = config.spectral_opening * mouth_opening_track(speech, n_frames, fps, config, audio)
    rounding = lip_rounding_track(speech, n_frames, fps, config, audio)
    return MouthTrack(opening, -rounding, rest, f"spectral ({reason})")


# --------------------------------------------------------------------- emotion


def emotion_envelope(
    n_frames: int, fps: float, config: ProceduralConfig = ProceduralConfig()
) -> np.ndarray:
    """``(T,)`` strength of the expression: onset/offset ramps times a slow drift.

    ``smoothstep(t / onset_s) * smoothstep((duration - t) / offset_s) *
    (1 + drift_depth * mean_k sin(2π f_k t + φ_k))`` at the frame centres ``t``, with
    ``f_k`` and ``φ_k`` drawn from ``seed``.
    """
    times = frame_times(n_frames, fps)
    duration = n_frames / fps
    ramps = smoothstep(times / config.onset_s) * smoothstep((duration - times) / config.offset_s)
    rng = np.random.default_rng([config.seed, 1])
    frequencies = rng.uniform(config.drift_low_hz, config.drift_high_hz, config.drift_components)
    phases = rng.uniform(0.0, 2.0 * np.pi, config.drift_components)
    drift = np.sin(2.0 * np.pi * np.outer(times, frequencies) + phases).mean(axis=1)
    return ramps * (1.0 + config.drift_depth * drift)


def action_unit_weights(
    emotion: EmotionSpec, config: ProceduralConfig = ProceduralConfig()
) -> dict[str, float]:
    """AU weights of an emotion spec: its emotions' prototypes summed by intensity."""
    weights: dict[str, float] = {}
    for name, intensity in emotion.weights.items():
        for unit, weight in config.prototypes[name].items():
            weights[unit] = weights.get(unit, 0.0) + intensity * weight
    return weights


def articulation_gain(emotion: EmotionSpec, config: ProceduralConfig = ProceduralConfig()) -> float:
    """How much wider than neutral the mouth articulates at the apex of ``emotion``:
    ``1 + Σ intensity · (gain - 1)`` over its emotions (``config.articulation``, 1 when absent)."""
    return 1.0 + sum(intensity * (config.articulation.get(name, 1.0) - 1.0)
                     for name, intensity in emotion.weights.items())


def emotion_field(
    emotion: EmotionSpec,
    geometry: FaceGeometry,
    config: ProceduralConfig = ProceduralConfig(),
    au_config: ActionUnitConfig = ActionUnitConfig(),
) -> np.ndarray:
    """``(478, 3)`` displacement of the emotion at its apex (zeros for neutral)."""
    total = np.zeros((N_LANDMARKS, 3))
    for unit, weight in action_unit_weights(emotion, config).items():
        total += weight * action_unit(geometry, unit, au_config)
    return total


# ---------------------------------------------------------------------- blinks


def blink_peaks(
    duration_s: float, fps: float, config: ProceduralConfig = ProceduralConfig()
) -> np.ndarray:
    """Times (s) at which the lids are fully closed, snapped to frame centres.

    The first comes uniformly between ``first_blink_min_s`` and
    ``blink_max_interval_s``, the next ones after uniform intervals in
    ``[blink_min_interval_s, blink_max_interval_s]``, all drawn from ``seed``.

    Returns:
        ``(B,)`` float64 peak times before ``duration_s``.
    """
    rng = np.random.default_rng([config.seed, 2])
    peaks = []
    time = rng.uniform(config.first_blink_min_s, config.blink_max_interval_s)
    while time < duration_s:
        peaks.append(time)
        time += rng.uniform(config.blink_min_interval_s, config.blink_max_interval_s)
    return (np.floor(np.asarray(peaks) * fps) + 0.5) / fps


def blink_track(
    n_frames: int, fps: float, config: ProceduralConfig = ProceduralConfig()
) -> np.ndarray:
    """``(T,)`` lid closure in [0, 1] (1: closed) on each frame.

    Each blink closes over ``blink_close_s`` up to its peak and reopens over
    ``blink_open_s`` (smoothstep ramps), peaks from :func:`blink_peaks`.
    """
    times = frame_times(n_frames, fps)
    closure = np.zeros(n_frames)
    for peak in blink_peaks(n_frames / fps, fps, config):
        since = times - peak
        ramp = np.where(since < 0, 1.0 + since / config.blink_close_s,
                        1.0 - since / config.blink_open_s)
        closure = np.maximum(closure, smoothstep(ramp))
    return closure


# ---------------------------------------------------------------------- driver


class ProceduralDriver:
    """Training-free :class:`~emoportrait.drivers.Driver`: speech phones + FACS + blinks.

    Args:
        config: Driver settings.
        action_units: Amplitudes and falloffs of the action units.
        audio: Audio settings for loudness, silence and spectra.

    Attributes:
        notes: after :meth:`drive`, which mouth source was used (see :func:`mouth_track`).
    """

    def __init__(
        self,
        config: ProceduralConfig = ProceduralConfig(),
        action_units: ActionUnitConfig = ActionUnitConfig(),
        audio: AudioConfig = AudioConfig(),
    ) -> None:
        self.config = config
        self.action_units = action_units
        self.audio = audio
        self.notes = ""

    def prepare(self, speech: np.ndarray) -> None:
        """Start recognising the speech's phones in a worker process (:func:`~emoportrait.phones.prefetch`)."""
        if self.config.mouth != "spectral":
            prefetch(speech)

    def drive(
        self,
        speech: np.ndarray,
        emotion: EmotionSpec,
        identity: np.ndarray,
        n_frames: int,
        fps: float,
        eye_closure: np.ndarray | None = None,
    ) -> np.ndarray:
        """Expression track for ``speech`` (see :class:`~emoportrait.drivers.Driver`).

        Args:
            speech: ``(S,)`` float32 mono at 16 kHz.
            emotion: Intensities of the emotions to show.
            identity: ``(478, 3)`` the target's face, canonical frame, mouth closed.
            n_frames: T, output frames.
            fps: Output frame rate.
            eye_closure: ``(T,)`` the target video's own lid closure; it replaces the
                driver's blinks (and, as they do, overrides the emotion's lid moves).

        Returns:
            ``(T, 478, 3)`` float32 canonical displacements.
        """
        if n_frames == 0:
            return np.zeros((0, N_LANDMARKS, 3), dtype=np.float32)
        geometry = FaceGeometry(identity)
        coefficients = self._coefficients(speech, emotion, n_frames, fps, eye_closure)
        basis = self._basis(emotion, geometry)
        track = coefficients.astype(np.float32) @ basis.reshape(len(basis), -1).astype(np.float32)
        return track.reshape(n_frames, N_LANDMARKS, 3)

    def _coefficients(self, speech: np.ndarray, emotion: EmotionSpec, n_frames: int, fps: float,
                      eye_closure: np.ndarray | None) -> np.ndarray:
        """``(T, 7)`` per-frame weights of the fields of :meth:`_basis`, in that order. The
        opening is scaled by the emotion's :func:`articulation_gain` as the expression builds up
        (its envelope), at most to the widest opening."""
        config = self.config
        mouth = mouth_track(speech, n_frames, fps, config, self.audio)
        self.notes = f"mouth: {mouth.source}"
        envelope = emotion_envelope(n_frames, fps, config)
        closure = blink_track(n_frames, fps, config) if eye_closure is None else np.clip(eye_closure, 0.0, 1.0)
        gain = 1.0 + (articulation_gain(emotion, config) - 1.0) * envelope
        opening = np.minimum(mouth.opening * gain, 1.0)
        return np.stack([opening, np.maximum(-mouth.width, 0.0), np.maximum(mouth.width, 0.0),
                         mouth.tuck, envelope, -envelope * closure, closure], axis=1)

    def _basis(self, emotion: EmotionSpec, geometry: FaceGeometry) -> np.ndarray:
        """``(7, 478, 3)`` fields: jaw opening, pucker, spread, lower lip tucked, emotion,
        emotion on the lids (removed as they close), closed lids."""
        config, units = self.config, self.action_units
        opening = mouth_opening(geometry, config.opening_gap, units)
        pucker = lip_pucker(geometry, config.pucker_contraction, config.pucker_protrusion, units)
        spread = lip_stretch(geometry, config.spread_stretch, 0.0, units)
        tuck = (lower_lip_tuck(geometry, config.tuck_lift, config.tuck_back, units)
                + upper_lip_raise(geometry, config.tuck_teeth_show, units))
        expression = emotion_field(emotion, geometry, config, units)
        on_lids = expression * eye_weight(geometry, units)[:, None]
        closed = blink_field(geometry, config.blink_lower_share, units)
        return np.stack([opening, pucker, spread, tuck, expression, on_lids, closed])
