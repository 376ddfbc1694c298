"""The eight MEAD emotions and emotion specs (a label with an intensity, or a mixture).

An :class:`EmotionSpec` maps emotion names to intensities in [0, 1]; "neutral" is
what is left. It is parsed from the forms the CLI accepts::

    happy                 (with a separate intensity, default 1.0)
    angry:0.6,sad:0.4     (a mixture; the intensities add up to at most 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputError

EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "disgusted", "surprised", "contempt")
"""MEAD's eight emotions, in the order the learned models use as class indices."""

_ALIASES = {
    "fearful": "fear", "afraid": "fear", "scared": "fear",
    "disgust": "disgusted", "surprise": "surprised", "anger": "angry", "happiness": "happy",
    "sadness": "sad", "calm": "neutral",
}


def canonical_emotion(name: str) -> str:
    """MEAD name of an emotion, accepting common aliases (e.g. 'fearful' → 'fear')."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in EMOTIONS:
        raise InputError(f"unknown emotion '{name}'; choose from {', '.join(EMOTIONS)}")
    return key


@dataclass(frozen=True)
class EmotionSpec:
    """Intensity in [0, 1] of each non-neutral emotion; absent emotions are 0.

    The intensities add up to at most 1; the rest is neutral.
    """

    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.weights.items():
            if name not in EMOTIONS or name == "neutral":
                raise InputError(f"emotion '{name}' cannot carry an intensity; "
                                 f"use one of {', '.join(EMOTIONS[1:])}")
            if not 0.0 <= value <= 1.0:
                raise InputError(f"intensity of '{name}' is {value:g}; it must be between 0 and 1")
        total = sum(self.weights.values())
        if total > 1.0 + 1e-6:
            raise InputError(f"emotion intensities add up to {total:g}; they must add up to at most 1")

    def intensity(self, name: str) -> float:
        """Intensity of one emotion (0 when absent)."""
        return self.weights.get(name, 0.0)

    def describe(self) -> str:
        """Short text such as 'happy 0.70' or 'angry 0.60 + sad 0.40' or 'neutral'."""
        parts = [f"{name} {value:.2f}" for name, value in self.weights.items() if value > 0]
        return " + ".join(parts) or "neutral"


def parse_emotion(text: str, intensity: float | None = None) -> EmotionSpec:
    """Parse 'happy' (with ``intensity``, default 1) or 'angry:0.6,sad:0.4'."""
    weights: dict[str, float] = {}
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise InputError(f"emotion '{text}' is empty; choose from {', '.join(EMOTIONS)}")
    mixture = len(parts) > 1 or ":" in text
    if mixture and intensity is not None:
        raise InputError("give intensities inside the mixture ('angry:0.6,sad:0.4'), not with --intensity")
    for part in parts:
        name, _, value = part.partition(":")
        name = canonical_emotion(name)
        try:
            amount = float(value) if value.strip() else (1.0 if intensity is None else float(intensity))
        except ValueError:
            raise InputError(f"intensity '{value}' of '{name}' is not a number") from None
        if name == "neutral":  # carries nothing, but an impossible intensity is still a mistake
            if not 0.0 <= amount <= 1.0:
                raise InputError(f"intensity of 'neutral' is {amount:g}; it must be between 0 and 1")
            continue
        weights[name] = weights.get(name, 0.0) + amount
    return EmotionSpec(weights)
