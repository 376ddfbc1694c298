"""phones: phone timing from pocketsphinx's bundled English models, and its plausibility check."""

from __future__ import annotations

import numpy as np
import pytest

from emoportrait import audio
from emoportrait.phones import PHONES, SILENCE, RecognitionFailed, recognise_phones

from .conftest import shared_media


def _spans_are_ordered(timing) -> bool:
    starts = np.array([p.start_s for p in timing.phones])
    ends = np.array([p.end_s for p in timing.phones])
    return bool(np.all(ends > starts) and np.all(starts[1:] >= ends[:-1] - 1e-6))


def test_the_demo_sentence_gives_timed_english_phones(demo_speech):
    timing = recognise_phones(demo_speech)
    assert timing.method == "words" and timing.text
    labels = [p.label for p in timing.phones]
    assert set(labels) <= set(PHONES)
    assert _spans_are_ordered(timing)
    assert timing.phones[-1].end_s <= len(demo_speech) / 16000 + 0.02
    spoken = [p for p in timing.phones if p.label != SILENCE]
    rate = len(spoken) / sum(p.end_s - p.start_s for p in spoken)
    assert 6 < rate < 20
    assert {"M", "P", "B"} & set(labels)  # "I am ... from": the lips close somewhere
    assert "phones/s" in timing.describe()


def test_recognition_is_deterministic(demo_speech):
    first, second = recognise_phones(demo_speech), recognise_phones(demo_speech)
    assert first == second


@pytest.mark.parametrize("kind", ["noise", "tone"])
def test_sound_that_is_not_speech_is_refused(kind):
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    samples = 0.1 * rng.standard_normal(len(t)) if kind == "noise" else 0.3 * np.sin(2 * np.pi * 220 * t)
    with pytest.raises(RecognitionFailed, match="phones/s|no phones|no words"):
        recognise_phones(samples.astype(np.float32))


def test_real_english_speech_is_recognised_as_words():
    timing = recognise_phones(audio.load_audio(shared_media("talking/hdtf_katiehill.mp4")))
    assert timing.method == "words" and "orientation" in timing.text


def test_music_is_refused():
    with pytest.raises(RecognitionFailed):
        recognise_phones(audio.load_audio(shared_media("talking/glasses_man_talking.mp4")))


def test_a_prefetched_recognition_gives_the_same_phones(demo_speech):
    from emoportrait import phones

    phones.prefetch(demo_speech)
    assert phones._key(demo_speech) in phones._PENDING
    assert recognise_phones(demo_speech) == recognise_phones(demo_speech)   # first from the worker
    assert phones._key(demo_speech) not in phones._PENDING
