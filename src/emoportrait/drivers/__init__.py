"""Drivers turn (speech, emotion) into an expression track in the canonical face frame.

Every driver implements :class:`Driver`: it returns ``(T, 478, 3)`` float32 landmark
displacements, in canonical units (the reference face's rigid points have RMS
radius 1), to be added to the target's identity face before 3D-aware alignment.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..emotions import EmotionSpec
from ..errors import InputError


class Driver(Protocol):
    """What :func:`emoportrait.pipeline.generate` needs from a driver.

    Attributes:
        notes: after :meth:`drive`, anything the user should know about how the track
            was made (e.g. which mouth source was used); ``""`` if nothing.
    """

    notes: str

    def prepare(self, speech: np.ndarray) -> None:
        """Called with the ``(S,)`` 16 kHz speech as soon as it is loaded when the target is
        a video, before it is read and tracked (which takes long enough to hide slow
        work): a driver may start slow work on the speech in the background."""
        ...

    def drive(
        self,
        speech: np.ndarray,
        emotion: EmotionSpec,
        identity: np.ndarray,
        n_frames: int,
        fps: float,
        eye_closure: np.ndarray | None = None,
    ) -> np.ndarray:
        """Expression track for ``speech``.

        Args:
            speech: ``(S,)`` float32 mono at 16 kHz.
            emotion: intensities of the emotions to show.
            identity: ``(478, 3)`` the target's face in the canonical frame, mouth
                closed (x toward the subject's left = image right, y down, z away
                from the camera; rigid points centred with RMS radius 1).
            n_frames: T, output frames (``ceil(duration * fps)``).
            fps: output frame rate.
            eye_closure: ``(T,)`` in [0, 1], how far the target video's own lids are
                closed on the frame each output frame is drawn on (1: a blink). The
                track's lids must follow it (its own blinks, if any, give way), so the
                renderer never has to open a closed lid; None for a still portrait.

        Returns:
            ``(T, 478, 3)`` float32 displacements in the canonical frame.
        """
        ...


def _procedural(weights: Path | None, emotion_audio: np.ndarray | None) -> Driver:
    if weights is not None or emotion_audio is not None:
        raise InputError("the procedural driver takes no weights and no reference speech clip: "
                         "those are the learned driver's")
    from .procedural import ProceduralDriver

    return ProceduralDriver()


def _learned(weights: Path | None, emotion_audio: np.ndarray | None) -> Driver:
    if weights is None:
        raise InputError("the learned driver needs an audio2lm run (emoportrait train audio2lm ...)")
    from .learned import LearnedDriver

    return LearnedDriver(weights, emotion_audio=emotion_audio)


DRIVERS: dict[str, Callable[[Path | None, np.ndarray | None], Driver]] = {
    "procedural": _procedural,
    "learned": _learned,
}
"""Every driver by name: ``(weights run or None, reference emotional speech (S,) or None)`` → driver.
A driver is imported only when made (the learned one needs torch)."""


def make_driver(name: str, weights: Path | None = None, emotion_audio: np.ndarray | None = None) -> Driver:
    """The driver called ``name`` (:data:`DRIVERS`), from its run ``weights`` and a reference
    emotional speech clip ``emotion_audio`` (``(S,)`` float32 at 16 kHz), where it takes them.

    Raises:
        InputError: an unknown name, or weights or a clip the driver cannot take (or lacks).
    """
    if name not in DRIVERS:
        raise InputError(f"unknown driver '{name}'; choose one of {', '.join(DRIVERS)}")
    return DRIVERS[name](weights, emotion_audio)
