"""Mouth motion from phones: visemes with coarticulation.

Each phone (:mod:`emoportrait.phones`) has a *viseme*: articulatory targets for the
mouth, and how strongly the phone holds them against its neighbours.

* ``opening`` in [0, 1]: the jaw and lip opening, 1 for the widest vowel (/aa/);
* ``width`` in [-1, 1]: lip spreading (+, /iy/) or rounding and protrusion (-, /uw/ /w/);
* ``tuck`` in [0, 1]: the lower lip raised under the upper teeth (/f/ /v/);
* ``seal`` in [0, 1]: how far the lips close over the phone whatever its neighbours
  (1 for /p b m/, 0.7 for the lip constriction of /w/).

The tracks follow Cohen & Massaro's coarticulation model (1993): each phone ``i``
exerts a *dominance* ``D_i(t) = α_i exp(-θ · max(|t - c_i| - h_i, 0))`` around its
centre ``c_i`` (flat over the middle ``h_i`` of the phone, decaying with the rate
``θ`` outside), and a parameter is the dominance-weighted mean of the phones'
targets. Phones that the lips must reach have a large ``α`` (the bilabials /p b m/,
the labiodentals /f v/, rounded /w uw/), phones made with the tongue a small one,
so lips anticipate a coming /m/ or /u/ through a /t/ or /k/ as real speakers do.
On top of the blend, the bilabials *seal* the lips (the opening is multiplied by
``1 - seal(t)``, ``seal`` 1 over the closure; /w/ 0.7) and the labiodentals tuck the
lower lip, each shown on at least one video frame however short the phone. The whole
track leads the sound by ``lead_s``: lips move before the sound they make.

Targets are phonetic (after the viseme classes of MPEG-4 and of Jeffers & Barley's
speechreading studies); the overall amplitude and the timing were measured on real
talking faces (``benchmarks/realism.py``; numbers in :class:`VisemeConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..phones import SILENCE, Phone
from ..ramps import smoothstep


@dataclass(frozen=True)
class Viseme:
    """Mouth targets of one phone and their dominance (see the module docstring)."""

    opening: float
    width: float = 0.0
    tuck: float = 0.0
    hold: float = 1.0    # dominance α of the opening target
    shape: float = 1.0   # dominance α of the width target
    seal: float = 0.0    # share of the opening the phone closes, over its neighbours' blend


# Consonant targets and dominances were fitted (rounded) to the tracked inner-lip opening
# of two real speakers (benchmarks/realism.py: HDTF Katie Hill, MEAD M030), each fit checked
# on the other speaker: tongue consonants hold their targets 3x more strongly than before
# (driver r 0.51 -> 0.59), /w/ and /uw/ nearly close the lips, and a pause pulls the mouth
# shut only where it is long (the driver's silence gate closes it in real silence). The
# labials keep their holds: their seal and tuck close the lips, and a stronger hold would
# pull the middle of a neighbouring open vowel shut. The low vowels /aa ae ao/ hold their
# openings twice as strongly as the other vowels: the jaw reaches a low vowel whatever
# surrounds it (its height resists coarticulation more than that of the tongue vowels). Driver
# r on the same two speakers: 0.557 -> 0.594 (HDTF), 0.594 -> 0.604 (M030); a 1.5x hold gave
# 0.584 / 0.603, 3x 0.594 / 0.598, and holding /ah eh/ as strongly lowered HDTF's to 0.540.
_BILABIAL = Viseme(0.0, 0.0, hold=6.0, shape=1.0, seal=1.0)
_LABIODENTAL = Viseme(0.06, 0.0, 1.0, hold=4.0, shape=1.0)
_DENTAL = Viseme(0.16, 0.1, hold=3.0, shape=0.5)
_ALVEOLAR = Viseme(0.2, 0.0, hold=1.8, shape=0.3)
_SIBILANT = Viseme(0.08, 0.3, hold=4.5, shape=0.8)
_POSTALVEOLAR = Viseme(0.16, -0.6, hold=3.6, shape=1.5)
_VELAR = Viseme(0.28, 0.0, hold=1.5, shape=0.3)

VISEMES: dict[str, Viseme] = {
    # vowels: opening from the jaw height, width from spreading / rounding
    "AA": Viseme(1.0, 0.0, hold=2.0), "AE": Viseme(0.85, 0.4, hold=2.0), "AH": Viseme(0.7, 0.0),
    "AO": Viseme(0.8, -0.5, hold=2.0), "EH": Viseme(0.6, 0.4), "ER": Viseme(0.4, -0.4),
    "IH": Viseme(0.4, 0.5), "IY": Viseme(0.3, 1.0), "UH": Viseme(0.35, -0.6),
    "UW": Viseme(0.2, -1.0, shape=2.0),
    # consonants
    "P": _BILABIAL, "B": _BILABIAL, "M": _BILABIAL,
    "F": _LABIODENTAL, "V": _LABIODENTAL,
    "TH": _DENTAL, "DH": _DENTAL,
    "T": _ALVEOLAR, "D": _ALVEOLAR, "N": _ALVEOLAR, "L": Viseme(0.24, 0.0, hold=1.8, shape=0.3),
    "S": _SIBILANT, "Z": _SIBILANT,
    "SH": _POSTALVEOLAR, "ZH": _POSTALVEOLAR, "CH": _POSTALVEOLAR, "JH": _POSTALVEOLAR,
    "K": _VELAR, "G": _VELAR, "NG": _VELAR,
    "HH": Viseme(0.4, 0.0, hold=0.3, shape=0.1),   # takes the shape of the vowel it precedes
    "R": Viseme(0.2, -0.5, hold=2.4, shape=1.0),
    "W": Viseme(0.05, -1.0, hold=3.0, shape=2.0, seal=0.7),
    "Y": Viseme(0.16, 0.7, hold=2.4, shape=1.0),
    SILENCE: Viseme(0.0, 0.0, hold=0.2, shape=0.5),
}
"""Viseme of each phone of :data:`emoportrait.phones.PHONES` except the diphthongs."""

DIPHTHONGS: dict[str, tuple[str, str]] = {
    "AY": ("AA", "IY"), "AW": ("AA", "UW"), "EY": ("EH", "IY"), "OW": ("AO", "UW"), "OY": ("AO", "IY"),
}
"""Diphthongs glide from one vowel's viseme (first half) to another's (second half)."""



@dataclass(frozen=True)
class VisemeConfig:
    """Timing of the viseme tracks (seconds; 1/s for rates)."""

    decay_per_s: float = 12.0     # θ: dominance falls by e every 1/θ s outside a phone's middle
    plateau: float = 0.5          # h: the dominance is flat over this fraction of the phone
    lead_s: float = 0.1           # the lips lead the sound by this much (benchmarks/realism.py:
                                  # 0.06 left them 80 ms late on HDTF, 33 ms on MEAD; 0.1: 40, 0 ms)
    ramp_s: float = 0.05          # seal and tuck ramp in and out over this time
    smoothing_s: float = 0.015    # std of the final zero-phase Gaussian smoothing


@dataclass(frozen=True)
class MouthTrack:
    """Per-frame mouth articulation, the driver's mouth input.

    Attributes:
        opening: ``(T,)`` in [0, 1], 1 the widest opening.
        width: ``(T,)`` in [-1, 1], + spread, - rounded.
        tuck: ``(T,)`` in [0, 1], lower lip under the upper teeth.
        source: how it was made (``"visemes from words '...'"``, ``"spectral: ..."``).
    """

    opening: np.ndarray
    width: np.ndarray
    tuck: np.ndarray
    source: str


def _segments(phones: tuple[Phone, ...]) -> list[tuple[Viseme, str, float, float]]:
    """``(viseme, phone label, start_s, end_s)`` per phone, diphthongs split in two halves."""
    segments = []
    for phone in phones:
        if phone.label in DIPHTHONGS:
            middle = (phone.start_s + phone.end_s) / 2.0
            first, second = DIPHTHONGS[phone.label]
            segments.append((VISEMES[first], phone.label, phone.start_s, middle))
            segments.append((VISEMES[second], phone.label, middle, phone.end_s))
        else:
            segments.append((VISEMES.get(phone.label, VISEMES[SILENCE]), phone.label,
                             phone.start_s, phone.end_s))
    return segments


def _bump(times: np.ndarray, start: float, end: float, ramp: float, minimum: float) -> np.ndarray:
    """``(T,)`` 1 over ``[start, end]`` (widened to at least ``minimum`` s), smoothstep ramps."""
    centre, half = (start + end) / 2.0, max((end - start) / 2.0, minimum / 2.0)
    return smoothstep((half + ramp - np.abs(times - centre)) / ramp)


def viseme_track(
    phones: tuple[Phone, ...], n_frames: int, fps: float, config: VisemeConfig = VisemeConfig()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mouth articulation on each frame from timed phones.

    Args:
        phones: the utterance's phones, times in seconds from the start of the speech.
        n_frames: T, output frames; frame ``i`` is shown at ``(i + 0.5) / fps``.
        fps: Output frame rate.
        config: Timing.

    Returns:
        ``(opening, width, tuck)``, each ``(T,)`` float64 (ranges as in :class:`MouthTrack`).
    """
    times = (np.arange(n_frames) + 0.5) / fps + config.lead_s
    weights = np.full((2, n_frames), 1e-9)  # opening, width: small floor keeps empty spans at rest
    totals = np.zeros((2, n_frames))
    seal, tuck = np.zeros(n_frames), np.zeros(n_frames)
    for viseme, label, start, end in _segments(phones):
        half = config.plateau * (end - start) / 2.0
        decay = np.exp(-config.decay_per_s * np.maximum(np.abs(times - (start + end) / 2.0) - half, 0.0))
        for row, (target, hold) in enumerate(((viseme.opening, viseme.hold), (viseme.width, viseme.shape))):
            weights[row] += hold * decay
            totals[row] += hold * decay * target
        if viseme.seal or viseme.tuck:
            bump = _bump(times, start, end, config.ramp_s, 1.0 / fps)
            seal, tuck = np.maximum(seal, bump * viseme.seal), np.maximum(tuck, bump * viseme.tuck)
    opening, width = totals / weights
    opening = opening * (1.0 - seal)
    sigma = config.smoothing_s * fps
    if sigma > 0:
        opening, width, tuck = (gaussian_filter1d(track, sigma, mode="nearest")
                                for track in (opening, width, tuck))
    return np.clip(opening, 0.0, 1.0), np.clip(width, -1.0, 1.0), np.clip(tuck, 0.0, 1.0)
