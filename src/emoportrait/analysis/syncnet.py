"""LSE-D / LSE-C (Wav2Lip's SyncNet scores) with a SyncNet the user supplies.

SyncNet's weights (Chung & Zisserman 2016) are not available offline, so the network
is passed as a TorchScript file exporting two methods (``@torch.jit.export``):

- ``forward_lip(video)``: ``(B, 3, 5, 224, 224)`` float RGB in [0, 1], five
  consecutive aligned face crops → ``(B, D)`` embeddings;
- ``forward_aud(audio)``: ``(B, 1, 13, 20)`` float, the matching 13 MFCCs × 20 steps
  (10 ms) → ``(B, D)`` embeddings.

As in the public evaluator: for offsets of −15 … +15 frames the mean embedding
distance over the video is computed; LSE-D is the smallest mean distance, LSE-C
the median over offsets minus that minimum, and the offset of the minimum is
reported too (positive: the audio leads). Crops come from the toolkit's tracker
and MFCCs from librosa, so numbers compare only between runs of this hook.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..errors import InputError
from .torchscript import load_torchscript

WINDOW = 5
MAX_OFFSET = 15
STEPS_PER_WINDOW = 20


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
        """``(T, 224, 224, 3)`` uint8 crops + 16 kHz speech → video ``(T-4, D)`` and audio ``(T-4, D)``."""
        config = replace(audio.AudioConfig(), fps=fps, drop_c0=False)
        steps = audio.mfcc(speech, config)
        starts = np.round(np.arange(len(crops) - WINDOW + 1) * config.steps_per_second / fps).astype(int)
        index = np.clip(starts[:, None] + np.arange(STEPS_PER_WINDOW), 0, len(steps) - 1)
        audio_in = torch.from_numpy(steps[index].transpose(0, 2, 1)[:, None].copy()).float().to(self.device)
        frames = torch.from_numpy(crops).float().div(255).permute(0, 3, 1, 2)  # (T, 3, H, W)
        video_in = torch.stack([frames[i:i + WINDOW].permute(1, 0, 2, 3) for i in range(len(starts))]).to(self.device)
        return (self.network.forward_lip(video_in).cpu().numpy(),
                self.network.forward_aud(audio_in).cpu().numpy())

    def scores(self, crops: np.ndarray, speech: np.ndarray, fps: float) -> SyncScores:
        """LSE-D, LSE-C and the best offset of one video."""
        if len(crops) < WINDOW + 2 * MAX_OFFSET:
            raise InputError(f"SyncNet scores need at least {WINDOW + 2 * MAX_OFFSET} frames, got {len(crops)}")
        video, sound = self.embeddings(crops, speech, fps)
        return sync_scores(video, sound)


def sync_scores(video: np.ndarray, sound: np.ndarray, max_offset: int = MAX_OFFSET) -> SyncScores:
    """Scores from per-window embeddings ``(N, D)`` of the video and the audio."""
    offsets = np.arange(-max_offset, max_offset + 1)
    padded = np.pad(sound, ((max_offset, max_offset), (0, 0)), mode="edge")
    distances = np.array([np.linalg.norm(video - padded[max_offset + o: max_offset + o + len(video)], axis=1).mean()
                          for o in offsets])
    best = int(np.argmin(distances))
    return SyncScores(float(distances[best]), float(np.median(distances) - distances[best]), int(offsets[best]))
