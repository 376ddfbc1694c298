"""Label sets of the recognizers and their explicit mapping to MEAD's eight emotions.

Ground truth is always a MEAD emotion (:data:`emoportrait.emotions.EMOTIONS`).
Each recognizer predicts in its own label set; :func:`target_class` says which of
its classes counts as correct for a MEAD emotion, or ``None`` when the recognizer
cannot output that emotion at all (e.g. contempt for FER2013 or RAF-DB models,
neutral for CK+ models). Such emotions are reported as unreachable, never dropped.

SMIC's three micro-expression classes follow the usual convention: happy →
positive; angry, disgusted, fear, sad and contempt → negative; surprised →
surprise; neutral has no class.
"""

from __future__ import annotations

from pathlib import Path

from ..emotions import EMOTIONS, canonical_emotion
from ..errors import InputError

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "mead": EMOTIONS,
    "fer2013": ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
    "rafdb": ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"),
    "affectnet8": ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"),
    "ckplus": ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"),
    "smic": ("negative", "positive", "surprise"),
}
"""Classes of each label set, in the order its models output them."""

_SMIC_OF_MEAD = {
    "happy": "positive", "surprised": "surprise",
    "angry": "negative", "disgusted": "negative", "fear": "negative", "sad": "negative",
    "contempt": "negative",
}


def label_set(name: str) -> tuple[str, ...]:
    """Classes of a label set; unknown names raise :class:`InputError`."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise InputError(f"unknown label set '{name}'; known: {', '.join(LABEL_SETS)}") from None


def target_class(set_name: str, emotion: str) -> str | None:
    """The class of ``set_name`` that is correct for MEAD ``emotion``, or None if none is."""
    classes = label_set(set_name)
    if set_name == "smic":
        return _SMIC_OF_MEAD.get(emotion)
    matches = [c for c in classes if canonical_emotion(c) == emotion]
    return matches[0] if matches else None


def unreachable(set_name: str) -> list[str]:
    """MEAD emotions a recognizer with this label set can never predict correctly."""
    return [emotion for emotion in EMOTIONS if target_class(set_name, emotion) is None]


def emotion_from_path(path: str | Path) -> str | None:
    """MEAD emotion named by a path, MEAD-style (``.../front/angry/level_3/001.mp4``) or in
    the file name (``angry_001.mp4``, ``M003_happy_level2.mp4``); None if none is named."""
    parts = Path(path).with_suffix("").parts
    tokens = [token for part in parts for token in part.replace("-", "_").split("_")]
    for token in reversed(tokens):
        try:
            return canonical_emotion(token)
        except InputError:
            continue
    return None
