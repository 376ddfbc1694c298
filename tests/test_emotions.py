"""Emotion names, intensities and mixtures."""

from __future__ import annotations

import pytest

from emoportrait.emotions import EMOTIONS, EmotionSpec, parse_emotion
from emoportrait.errors import InputError


def test_the_eight_mead_emotions():
    assert EMOTIONS == ("neutral", "happy", "sad", "angry", "fear", "disgusted", "surprised", "contempt")


@pytest.mark.parametrize("text,intensity,expected", [
    ("happy", None, {"happy": 1.0}),
    ("happy", 0.7, {"happy": 0.7}),
    ("Fearful", 0.5, {"fear": 0.5}),
    ("angry:0.6,sad:0.4", None, {"angry": 0.6, "sad": 0.4}),
    ("neutral", None, {}),
    ("surprise:0.3", None, {"surprised": 0.3}),
])
def test_parse(text, intensity, expected):
    assert parse_emotion(text, intensity).weights == pytest.approx(expected)


@pytest.mark.parametrize("text,intensity,message", [
    ("joyful", None, "unknown emotion 'joyful'; choose from neutral, happy"),
    ("happy", 1.5, "intensity of 'happy' is 1.5; it must be between 0 and 1"),
    ("happy", -0.1, "must be between 0 and 1"),
    ("neutral", 5.0, "intensity of 'neutral' is 5; it must be between 0 and 1"),
    ("happy", float("nan"), "intensity of 'happy' is nan"),
    ("angry:0.8,sad:0.4", None, "add up to 1.2"),
    ("angry:0.5,sad:0.4", 0.5, "inside the mixture"),
    ("angry:lots", None, "'lots' of 'angry' is not a number"),
    ("", None, "is empty"),
])
def test_bad_emotions_are_one_line_errors(text, intensity, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        parse_emotion(text, intensity)


def test_describe_and_intensity():
    spec = EmotionSpec({"angry": 0.6, "sad": 0.4})
    assert spec.describe() == "angry 0.60 + sad 0.40" and spec.intensity("happy") == 0.0
    assert EmotionSpec().describe() == "neutral"
