"""drivers.visemes: mouth tracks from timed phones, with coarticulation."""

from __future__ import annotations

import numpy as np

from emoportrait.drivers.visemes import VisemeConfig, viseme_track
from emoportrait.phones import Phone

FPS = 25.0
NO_LEAD = VisemeConfig(lead_s=0.0)


def utterance(*labelled: tuple[str, float]) -> tuple[Phone, ...]:
    """Phones back to back from 0 s: ``("AA", 0.2), ("M", 0.08), ...`` (label, duration)."""
    phones, time = [], 0.0
    for label, duration in labelled:
        phones.append(Phone(label, time, time + duration))
        time += duration
    return tuple(phones)


def frame_at(seconds: float) -> int:
    return int(seconds * FPS)


def test_vowels_open_and_a_bilabial_seals_the_lips():
    phones = utterance(("SIL", 0.3), ("AA", 0.3), ("M", 0.08), ("AA", 0.3), ("SIL", 0.4))
    opening, _, _ = viseme_track(phones, frame_at(1.4), FPS, NO_LEAD)
    assert opening[frame_at(0.45)] > 0.5 and opening[frame_at(0.83)] > 0.5
    assert opening[frame_at(0.60) : frame_at(0.68) + 1].min() < 0.05   # sealed on /m/
    assert opening[frame_at(1.3)] < 0.1                                   # closed in the pause


def test_a_bilabial_shorter_than_a_frame_still_seals():
    phones = utterance(("AA", 0.3), ("P", 0.02), ("AA", 0.3))
    opening, _, _ = viseme_track(phones, frame_at(0.62), FPS, NO_LEAD)
    assert opening.min() < 0.1 and opening.max() > 0.7


def test_lips_round_on_uw_and_w_and_spread_on_iy():
    phones = utterance(("SIL", 0.2), ("UW", 0.3), ("SIL", 0.3), ("IY", 0.3), ("SIL", 0.2), ("W", 0.1),
                       ("AH", 0.2))
    _, width, _ = viseme_track(phones, frame_at(1.6), FPS, NO_LEAD)
    assert width[frame_at(0.35)] < -0.6 and width[frame_at(0.95)] > 0.6
    assert width[frame_at(1.35)] < -0.3


def test_labiodentals_tuck_the_lower_lip():
    phones = utterance(("AA", 0.2), ("F", 0.1), ("AA", 0.2))
    opening, _, tuck = viseme_track(phones, frame_at(0.5), FPS, NO_LEAD)
    assert tuck[frame_at(0.25)] > 0.8 and tuck[frame_at(0.05)] < 0.05
    assert opening[frame_at(0.25)] < 0.3


def test_rounding_is_anticipated_through_a_tongue_consonant():
    """In "t-oo" the lips round during the /t/, before the vowel (coarticulation)."""
    rounded = utterance(("SIL", 0.3), ("T", 0.1), ("UW", 0.3))
    spread = utterance(("SIL", 0.3), ("T", 0.1), ("IY", 0.3))
    during_t = frame_at(0.35)
    assert viseme_track(rounded, frame_at(0.7), FPS, NO_LEAD)[1][during_t] < -0.3
    assert viseme_track(spread, frame_at(0.7), FPS, NO_LEAD)[1][during_t] > 0.3


def test_the_lips_lead_the_sound():
    phones = utterance(("SIL", 0.5), ("AH", 0.2), ("SIL", 0.5))
    late = viseme_track(phones, frame_at(1.2), FPS, NO_LEAD)[0]
    early = viseme_track(phones, frame_at(1.2), FPS, VisemeConfig(lead_s=0.08))[0]
    onset = frame_at(0.46)
    assert early[onset] > late[onset] + 0.1
    centre = lambda track: (np.arange(len(track)) * track).sum() / track.sum()  # noqa: E731
    assert 1.0 < (centre(late) - centre(early)) < 3.0   # 0.08 s = 2 frames


def test_no_phones_rest():
    opening, width, tuck = viseme_track((), 10, FPS)
    assert not opening.any() and not width.any() and not tuck.any()
