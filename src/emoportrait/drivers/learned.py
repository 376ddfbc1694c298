"""EVP's learned driver: content + emotion codes → audio-to-landmark LSTM → expression track.

It loads an audio2lm run (``emoportrait train audio2lm``), which holds the frozen
content and emotion encoders, the LSTM, the training subject's landmark PCA and the
per-emotion centroids of the emotion code. For each output frame:

1. the speech's MFCC window (28 × 12) gives a content code;
2. the emotion code comes either from a reference emotional clip, DTW-aligned to
   the speech as EVP does (its MFCC sequence warped onto the speech's timeline,
   then windowed and encoded), or from the centroids: neutral + Σ intensity ×
   (emotion centroid − neutral centroid), which gives intensities and mixtures by
   interpolation in the emotion space;
3. the LSTM predicts the PCA displacement from the subject's identity code;
   in silences of at least :data:`LONG_SILENCE_S` the lips are closed (as EVP
   does, for its 20 frames at 25 fps) and the emotion is kept;
4. the displacement, decoded through the PCA basis, is the expression: the
   change of the canonical landmarks' x and y (z is left at 0, the PCA is 2-D),
   smoothed over time (:func:`smooth_track`), as EVP filters its predicted landmarks
   (with a One-Euro filter) before drawing them: a network's frame-to-frame jitter
   would otherwise show as a trembling mouth.

The expression is in canonical units (RMS radius 1 of the rigid points), so it
transfers to any target face, not only the training subject's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.signal import savgol_filter

from .. import audio
from ..config import config_from_dict
from ..emotions import EMOTIONS, EmotionSpec
from ..errors import InputError
from ..evp.models import Audio2Landmark, Disentangler, EvpModelConfig, SubjectBuffers
from ..masks import drop_short_runs, runs
from ..neutralise import close_lips
from ..runs import checkpoint_dir, load_weights, read_run_config
from .action_units import ActionUnitConfig, FaceGeometry, blink_field
from .procedural import ProceduralConfig

LONG_SILENCE_S = 0.8
"""Silences at least this long close the mouth (EVP: 20 frames at 25 fps)."""

SILENCE_FADE_FRAMES = 2
"""Frames over which the lips close at the start of a long silence (and open at its end)."""

SMOOTHING_FRAMES = 5
"""Window of :func:`smooth_track` (Savitzky-Golay, quadratic). At 25 fps: a 3 Hz movement keeps
97 % of its amplitude and a 5 Hz syllable rhythm 80 %; white frame jitter falls to 70 %."""


def smooth_track(xy: np.ndarray) -> np.ndarray:
    """``(T, N, 2)`` canonical landmark displacements smoothed over time (a zero-phase
    Savitzky-Golay filter of :data:`SMOOTHING_FRAMES` frames); float32."""
    if len(xy) < SMOOTHING_FRAMES:
        return np.asarray(xy, np.float32)
    return savgol_filter(xy, SMOOTHING_FRAMES, 2, axis=0).astype(np.float32)


def mixed_code(centroids: torch.Tensor, emotion: EmotionSpec) -> torch.Tensor:
    """The emotion code of a spec: ``neutral + Σ intensity × (centroid − neutral)``.

    ``centroids`` is ``(8, 128)``, one code per emotion in :data:`~emoportrait.emotions.EMOTIONS`
    order; returns ``(128,)``. For intensities summing to 1 this is the convex blend
    ``Σ w c``, which is how EVP's released mixture features are made (its M030
    ``angry4_neutral6.npy`` is exactly 0.4 angry + 0.6 *surprised*: six of its eight
    mixture files name the second emotion wrongly; see ``tests/test_evp_pipeline.py``).
    """
    neutral = centroids[EMOTIONS.index("neutral")]
    code = neutral.clone()
    for name, intensity in emotion.weights.items():
        code += intensity * (centroids[EMOTIONS.index(name)] - neutral)
    return code


def _model_config(values: Any, folder: Path) -> EvpModelConfig:
    """The ``model`` settings of a run's config.yaml (YAML lists read back as tuples)."""
    if not isinstance(values, dict):
        raise InputError(f"the config.yaml of '{folder}' has no model settings mapping; train the run again")
    try:
        return config_from_dict(EvpModelConfig, {key: _as_tuples(value) for key, value in values.items()})
    except InputError as exc:
        raise InputError(f"the config.yaml of '{folder}': {exc}") from None


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value


class LearnedDriver:
    """The learned EVP driver (implements :class:`~emoportrait.drivers.Driver`).

    Args:
        weights: an audio2lm run folder (or its ``best``/``last`` checkpoint).
        emotion_audio: ``(S,)`` float32 16 kHz reference emotional speech; when given,
            the emotion comes from it and the ``EmotionSpec`` passed to :meth:`drive`
            is ignored.
        device: torch device for inference.
    """

    def __init__(self, weights: str | Path, emotion_audio: np.ndarray | None = None, device: str = "cpu") -> None:
        folder = checkpoint_dir(weights)
        settings = read_run_config(folder)
        if settings.get("stage") != "audio2lm":
            raise InputError(f"'{weights}' is a {settings.get('stage')!r} run; the learned driver needs an "
                             "audio2lm run: emoportrait train audio2lm --data CACHE --init runs/dis --subject S --out RUN")
        model = _model_config(settings.get("model", {}), folder)
        self.encoders = Disentangler(model)
        self.network = Audio2Landmark(model)
        self.subject = SubjectBuffers(model)
        load_weights(folder, {"disentangler": self.encoders, "audio2lm": self.network, "subject": self.subject})
        self.device = torch.device(device)
        for module in (self.encoders, self.network, self.subject):
            module.to(self.device).eval()
        self.emotion_audio = emotion_audio
        self.notes = ""

    def prepare(self, speech: np.ndarray) -> None:
        """Nothing to start ahead: the networks run in :meth:`drive`."""

    @torch.no_grad()
    def _encode(self, windows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T, 28, 12)`` windows → content ``(T, 256)`` and emotion ``(T, 128)`` codes."""
        return self.encoders.encode(torch.from_numpy(np.ascontiguousarray(windows)).to(self.device))

    def _label_code(self, emotion: EmotionSpec) -> torch.Tensor:
        """``(128,)`` emotion code of a spec, interpolated between the centroids."""
        centroids, counts = self.subject.centroids, self.subject.centroid_counts
        missing = [name for name in (*emotion.weights, "neutral") if counts[EMOTIONS.index(name)] == 0]
        if missing:
            raise InputError(f"this audio2lm run never saw {', '.join(missing)} speech, so it has no emotion "
                             "code for it; use --emotion-audio with a reference clip instead")
        return mixed_code(centroids, emotion)

    def _reference_codes(self, speech: np.ndarray, n_frames: int, fps: float) -> torch.Tensor:
        """``(T, 128)`` emotion codes of the reference clip, DTW-aligned to the speech."""
        audio.check_speech(self.emotion_audio, name="emotion reference")
        speech_steps, reference_steps = audio.mfcc(speech), audio.mfcc(self.emotion_audio)
        alignment = audio.dtw_align(speech_steps, reference_steps)
        warped = audio.warp_features(reference_steps, alignment.path, len(speech_steps)).astype(np.float32)
        return self._encode(audio.step_windows(warped, n_frames, fps))[1]

    def _closing(self, speech: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
        """``(T,)`` weight in [0, 1] of closed lips: 1 inside long silences, ramping over
        :data:`SILENCE_FADE_FRAMES` at their ends, 0 elsewhere."""
        silent = audio.silence_mask(speech, fps, n_frames=n_frames)
        closing = drop_short_runs(silent, max(1, round(LONG_SILENCE_S * fps))).astype(np.float32)
        kernel = np.ones(2 * SILENCE_FADE_FRAMES + 1, np.float32) / (2 * SILENCE_FADE_FRAMES + 1)
        padded = np.pad(closing, SILENCE_FADE_FRAMES, mode="edge")  # a silent end stays closed
        return np.minimum(closing, np.convolve(padded, kernel, mode="valid"))

    @staticmethod
    def _close_lips(expression: np.ndarray, identity: np.ndarray, closing: np.ndarray) -> None:
        """Close the lips of ``expression`` ``(T, 478, 3)`` (in place) where ``closing`` ``(T,)``
        is above 0: each silent run gets the move that closes its mean driven mouth."""
        for start, end in runs(closing > 0):
            face = identity + expression[start:end].mean(axis=0)
            expression[start:end] += closing[start:end, None, None] * close_lips(FaceGeometry(face))

    @torch.no_grad()
    def drive(self, speech: np.ndarray, emotion: EmotionSpec, identity: np.ndarray, n_frames: int,
              fps: float, eye_closure: np.ndarray | None = None) -> np.ndarray:
        """``(T, 478, 3)`` float32 canonical displacements; see :class:`~emoportrait.drivers.Driver`.

        EVP's network does not blink; with ``eye_closure`` the lids close with the target's.
        """
        if n_frames == 0:
            return np.zeros((0, identity.shape[0], 3), np.float32)
        content, _ = self._encode(audio.mfcc_windows(speech, fps, n_frames=n_frames))
        if self.emotion_audio is not None:
            emotion_codes = self._reference_codes(speech, n_frames, fps)
        else:
            emotion_codes = self._label_code(emotion).expand(n_frames, -1)
        example = self.subject.example_code[None]
        displacement = self.network(example, content[None], emotion_codes[None])[0].cpu().numpy()
        components = self.subject.components.cpu().numpy()
        xy = smooth_track((displacement @ components).reshape(n_frames, -1, 2))
        expression = np.zeros((n_frames, identity.shape[0], 3), np.float32)
        expression[:, : xy.shape[1], :2] = xy
        self._close_lips(expression, identity, self._closing(speech, n_frames, fps))
        if eye_closure is not None:
            lids = blink_field(FaceGeometry(identity), ProceduralConfig().blink_lower_share, ActionUnitConfig())
            expression += (np.clip(eye_closure, 0.0, 1.0)[:, None, None] * lids).astype(np.float32)
        return expression
