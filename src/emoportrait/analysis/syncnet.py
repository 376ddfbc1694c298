"""LSE-D / LSE-C (Wav2Lip's SyncNet scores) with a SyncNet the user supplies.

SyncNet's weights (Chung & Zisserman 2016) are not available offline, so the network
is passed as a TorchScript file exporting two methods (``@torch.jit.export``):

- ``forward_lip(video)``: ``(B, 3, 5, 224, 224)`` float **BGR 0-255**, five consecutive
  aligned face crops → ``(B, D)`` embeddings;
- ``forward_aud(audio)``: ``(B, 1, 13, 20)`` float, the matching 13 MFCCs × 20 steps
  (10 ms) → ``(B, D)`` embeddings.

Inputs and scoring follow the public evaluator (syncnet_python's ``evaluate``, which
Wav2Lip's LSE scripts call), so a SyncNet exported from its weights scores as there:

- crops as OpenCV reads frames (BGR, 0-255, not normalised);
- MFCCs from ``python_speech_features.mfcc`` with its defaults on 16-bit sample values
  (c0 the log energy), window ``i`` from step ``4 i`` at 25 fps (``100 i / fps``);
- ``min(T, samples / (16000 / fps)) - 5`` windows;
- for offsets of −15 … +15 frames the mean distance (``‖v - a + 1e-6‖``, as
  ``torch.pairwise_distance``) between each video window and the audio window shifted
  by the offset, the audio zero-padded at both ends; LSE-D is the smallest mean
  distance, LSE-C the median over offsets minus that minimum, and the offset is the
  evaluator's (``15 - argmin``: positive when the video lags the audio).

Crops come from the toolkit's tracker, not the evaluator's S3FD detector, so face
framing can differ a little.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..errors import InputError
from .torchscript import load_torchscript

WINDOW = 5
MAX_OFFSET = 15
STEPS_PER_WINDOW = 20
INT16_SCALE = 32768.0  # the evaluator reads 16-bit WAV samples as they are
PAIRWISE_EPS = 1e-6    # torch.nn.functional.pairwise_distance's eps


@dataclass(frozen=True)
class SyncScores:
    """``lse_d`` (lower is better), ``lse_c`` (higher is better), ``offset_frames``."""

    lse_d: float
    lse_c: float
    offset_frames: int


class SyncNetHook:
    """A user-supplied TorchScript SyncNet (see the module docstring)."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.network = load_torchscript(path, "a TorchScript SyncNet with forward_lip and forward_aud", device)
        self.device = device

    @torch.no_grad()
    def embeddings(self, crops: np.ndarray, speech: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
        """``(T, 224, 224, 3)`` uint8 RGB crops + 16 kHz float speech → video and audio
        embeddings, ``(N, D)`` each, ``N = min(T, frames of speech) - 5``."""
        config = audio.AudioConfig(drop_c0=False)
        steps = audio.mfcc(np.asarray(speech, np.float64) * INT16_SCALE, config)
        count = min(len(crops), int(len(speech) * fps // config.sample_rate)) - WINDOW
        starts = np.round(np.arange(count) * config.steps_per_second / fps).astype(int)
        index = np.clip(starts[:, None] + np.arange(STEPS_PER_WINDOW), 0, len(steps) - 1)
        audio_in = torch.from_numpy(steps[index].transpose(0, 2, 1)[:, None].copy()).float().to(self.device)
        frames = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).float().permute(0, 3, 1, 2)  # BGR
        video_in = torch.stack([frames[i:i + WINDOW].permute(1, 0, 2, 3) for i in range(count)]).to(self.device)
        return (self.network.forward_lip(video_in).cpu().numpy(),
                self.network.forward_aud(audio_in).cpu().numpy())

    def scores(self, crops: np.ndarray, speech: np.ndarray, fps: float) -> SyncScores:
        """LSE-D, LSE-C and the best offset of one video."""
        if len(crops) < WINDOW + 2 * MAX_OFFSET:
            raise InputError(f"SyncNet scores need at least {WINDOW + 2 * MAX_OFFSET} frames, got {len(crops)}")
        video, sound = self.embeddings(crops, speech, fps)
        return sync_scores(video, sound)


def sync_scores(video: np.ndarray, sound: np.ndarray, max_offset: int = MAX_OFFSET) -> SyncScores:
    """Scores from per-window embeddings ``(N, D)`` of the video and the audio (see the
    module docstring); ``offset_frames`` positive when the video lags the audio."""
    shifts = np.arange(-max_offset, max_offset + 1)   # video window i against audio window i + shift
    padded = np.pad(sound, ((max_offset, max_offset), (0, 0)))
    distances = np.array([np.linalg.norm(video - padded[max_offset + shift: max_offset + shift + len(video)]
                                         + PAIRWISE_EPS, axis=1).mean() for shift in shifts])
    best = int(np.argmin(distances))
    return SyncScores(float(distances[best]), float(np.median(distances) - distances[best]), int(-shifts[best]))
