"""Shared types: the array conventions that cross stage boundaries and the stage protocols.

Arrays are NumPy arrays; the aliases name their dtype, and their docs the shape and
units (NumPy's typing cannot check shapes):

- :data:`Speech`    ``(S,)`` float32 mono samples at 16 kHz, in [-1, 1];
- :data:`Frame`     ``(H, W, 3)`` uint8 RGB;
- :data:`Landmarks` ``(N, 3)`` or, over ``T`` frames, ``(T, N, 3)`` float32; ``N`` = 478
  (MediaPipe's face mesh). Either in pixels of the source frame (x right, y down, z
  scaled like x) or in the canonical face frame (rigid points centred with RMS radius 1,
  x toward the subject's left, y down, z away from the camera): each use says which.

Conventions that cross the stages:

- **frame rate**: ``fps`` is always an argument (frames per second of the video made or
  read), never an audio setting; the audio features take it (:func:`emoportrait.audio.frame_count`,
  ``mfcc_windows``, ``silence_mask``, ...). A still target is driven at
  :data:`emoportrait.media.STILL_FPS`; EVP's models work at ``PrepareConfig.fps`` (25).
- **sizes**: a pair is ``(W, H)`` pixels (``media.resize``, edge maps, the renderer's trained
  size); a config's ``size: int`` is a frame height (generate's output, the renderer's
  training), or a square's side where its comment says so (the synthetic data set,
  a recognizer's ``image_size`` crop). A face's scale is
  :func:`emoportrait.face.landmarks.face_size`.

A :class:`Driver` turns speech and an emotion into landmark motion in the canonical
frame (registry: :data:`emoportrait.drivers.DRIVERS`); a :class:`Renderer` draws a
target frame with its face moved to new landmarks (:data:`emoportrait.render.RENDERERS`).
:func:`emoportrait.pipeline.generate` composes one of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .emotions import EmotionSpec

Speech = npt.NDArray[np.float32]
"""``(S,)`` float32 mono at 16 kHz."""

Frame = npt.NDArray[np.uint8]
"""``(H, W, 3)`` uint8 RGB."""

Landmarks = npt.NDArray[np.float32]
"""``(N, 3)``, or ``(T, N, 3)`` over frames, float32: pixels or the canonical frame (say which)."""


class Driver(Protocol):
    """What :func:`emoportrait.pipeline.generate` needs from a driver.

    Every driver returns ``(T, 478, 3)`` float32 landmark displacements, in canonical
    units (the reference face's rigid points have RMS radius 1), to be added to the
    target's identity face before 3D-aware alignment.

    Attributes:
        notes: after :meth:`drive`, anything the user should know about how the track
            was made (e.g. which mouth source was used); ``""`` if nothing.
    """

    notes: str

    def prepare(self, speech: Speech) -> None:
        """Called with the ``(S,)`` 16 kHz speech as soon as it is loaded when the target is
        a video, before it is read and tracked (which takes long enough to hide slow
        work): a driver may start slow work on the speech in the background."""
        ...

    def drive(
        self,
        speech: Speech,
        emotion: EmotionSpec,
        identity: Landmarks,
        n_frames: int,
        fps: float,
        eye_closure: np.ndarray | None = None,
    ) -> Landmarks:
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


class Renderer(Protocol):
    """What :func:`emoportrait.pipeline.generate` needs from a renderer.

    A renderer trained for one frame height (the neural one) also has a
    ``trained_height: int`` attribute: ``generate`` draws at that height unless told a size.
    """

    def start(self, frames: Sequence[Frame], landmarks: Landmarks, found: np.ndarray) -> None:
        """Called once per video before its first :meth:`render`, with the target's ``T``
        frames ``(H, W, 3)`` uint8, their tracked ``(T, 478, 3)`` landmark pixels and
        ``(T,)`` bool where the face was seen: reset any state, and raise
        :class:`~emoportrait.errors.InputError` if the renderer cannot draw this target."""
        ...

    def render(self, frame: Frame, source: Landmarks, target: Landmarks) -> Frame:
        """``frame`` ``(H, W, 3)`` uint8 RGB with its face at ``source`` ``(478, 3)`` px
        → the frame with the face moved to ``target`` ``(478, 3)`` px, ``(H, W, 3)`` uint8."""
        ...
