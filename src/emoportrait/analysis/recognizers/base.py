"""What the analysis needs from a recognizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np


@dataclass(frozen=True)
class RecognizerInfo:
    """Describes a recognizer.

    Attributes:
        name: short name shown in reports (e.g. "mini-xception (FER2013)", "dan").
        label_set: name of its label set in :data:`emoportrait.analysis.labels.LABEL_SETS`
            (e.g. "fer2013", "rafdb", "affectnet8", "ckplus", "smic").
        labels: its classes, in output order.
        kind: "frame" (one prediction per frame) or "clip" (one per clip).
        source: where the weights came from (a package file, a user file, a training run).
    """

    name: str
    label_set: str
    labels: tuple[str, ...]
    kind: Literal["frame", "clip"]
    source: str


class FrameRecognizer(Protocol):
    """Scores every frame on its own."""

    info: RecognizerInfo

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """``(T, S, S, 3)`` uint8 RGB aligned face crops (any S) → ``(T, C)`` probabilities."""
        ...


class ClipRecognizer(Protocol):
    """Scores a whole clip (a video or a fixed-length window of it)."""

    info: RecognizerInfo

    def predict_clip(self, crops: np.ndarray, fps: float) -> np.ndarray:
        """``(T, S, S, 3)`` uint8 RGB aligned face crops at ``fps`` → ``(C,)`` probabilities."""
        ...
