"""FID with a feature extractor the user supplies (no Inception weights ship offline).

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to deep
features of real and generated frames. The usual features are Inception-v3's
2048-d pool features, whose weights are downloaded at run time by every package
that offers them; here the user passes the network as a TorchScript file
(``torch.jit.save`` of a module mapping ``(B, 3, 299, 299)`` float RGB in [-1, 1]
to ``(B, D)`` features). As in EAT's evaluator, a few evenly spaced frames of each
video are used; numbers are comparable only between runs with the same extractor.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import scipy.linalg
import torch

from .. import media
from ..errors import InputError
from .torchscript import load_torchscript

INPUT_SIZE = 299
FRAMES_PER_VIDEO = 5


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to features ``a`` ``(N, D)`` and ``b`` ``(M, D)``."""
    if len(a) < 2 or len(b) < 2:
        raise InputError(f"FID needs at least 2 frames on each side, got {len(a)} and {len(b)}")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * np.real(root)))


class FeatureExtractor:
    """A user-supplied TorchScript feature network (see the module docstring)."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.network = load_torchscript(path, "a TorchScript Inception feature extractor", device)
        self.device = device

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 RGB → ``(N, D)`` float64 features."""
        resized = np.stack([cv2.resize(f, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR) for f in frames])
        batch = torch.from_numpy(resized).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(self.device)
        return self.network(batch).reshape(len(frames), -1).double().cpu().numpy()


def sample_frames(path: Path, count: int = FRAMES_PER_VIDEO) -> np.ndarray:
    """``count`` evenly spaced frames of a video: ``(count, H, W, 3)`` uint8 (fewer if it is shorter)."""
    frames = media.read_frames(path)
    return frames[np.unique(np.linspace(0, len(frames) - 1, count).round().astype(int))]


def video_fid(generated: Sequence[Path], reference: Sequence[Path], extractor: FeatureExtractor) -> float:
    """FID between the sampled frames of the generated and the reference videos."""
    features = [np.concatenate([extractor(sample_frames(path)) for path in paths]) for paths in (generated, reference)]
    return frechet_distance(*features)
