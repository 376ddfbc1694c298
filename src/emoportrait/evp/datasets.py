"""Torch datasets over a prepared feature cache (:class:`~emoportrait.evp.cache.FeatureCache`).

- :class:`WindowDataset`: single MFCC windows with their emotion (emotion pretraining).
- :class:`PairDataset`: a frame's window of clip A and the DTW-aligned window of clip B,
  the same sentence spoken with another emotion (content pretraining, disentanglement).
- :class:`SequenceDataset`: runs of frames of one subject with their landmark PCA
  displacement (audio-to-landmark).

Each item is a dict of tensors; MFCC windows are ``(28, 12)`` float32.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..emotions import EMOTIONS
from ..errors import InputError
from .cache import FeatureCache


def _emotion_index(name: str) -> int:
    return EMOTIONS.index(name)


class WindowDataset(Dataset):
    """Every frame of every prepared clip of a split: ``{"x": (28, 12), "emotion": ()}``."""

    def __init__(self, cache: FeatureCache, split: str) -> None:
        rows = cache.ok(split)
        self.windows = [cache.clip(row.clip_id).mfcc_windows for row in rows]
        self.labels = [_emotion_index(row.emotion) for row in rows]
        self.index = [(c, t) for c, windows in enumerate(self.windows) for t in range(len(windows))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        clip, frame = self.index[item]
        return {"x": torch.from_numpy(self.windows[clip][frame]),
                "emotion": torch.tensor(self.labels[clip])}


class PairDataset(Dataset):
    """Aligned frames of same-sentence, different-emotion pairs of a split.

    Items: ``{"a": (28, 12), "b": (28, 12), "emotion_a": (), "emotion_b": ()}`` where
    ``b`` is clip B's window at the frame DTW aligned to frame t of clip A.
    """

    def __init__(self, cache: FeatureCache, split: str) -> None:
        pairs = cache.pairs(split)
        ids = sorted({p.clip_a for p in pairs} | {p.clip_b for p in pairs})
        clips = {clip_id: cache.clip(clip_id) for clip_id in ids}
        self.windows = {clip_id: clip.mfcc_windows for clip_id, clip in clips.items()}
        self.labels = {clip_id: _emotion_index(clip.emotion) for clip_id, clip in clips.items()}
        self.items = [(p.clip_a, p.clip_b, t, int(b_frame))
                      for p in pairs for t, b_frame in enumerate(cache.frame_map(p))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        clip_a, clip_b, frame_a, frame_b = self.items[item]
        return {"a": torch.from_numpy(self.windows[clip_a][frame_a]),
                "b": torch.from_numpy(self.windows[clip_b][frame_b]),
                "emotion_a": torch.tensor(self.labels[clip_a]),
                "emotion_b": torch.tensor(self.labels[clip_b])}


class SequenceDataset(Dataset):
    """Runs of ``length`` frames (half-overlapping) of one subject's clips in a split.

    Items: ``{"x": (L, 28, 12), "target": (L, 16), "mask": (L,) bool}`` where ``target``
    is the frame's landmark PCA code minus the subject's identity code (EVP's
    displacement) and ``mask`` marks frames with a tracked face (and real frames of a
    clip shorter than ``length``, which is padded).
    """

    def __init__(self, cache: FeatureCache, split: str, subject: str, length: int) -> None:
        model = cache.subject(subject)
        self.runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for row in cache.ok(split):
            if row.subject != subject:
                continue
            clip = cache.clip(row.clip_id)
            codes = model.encode(clip.canonical[..., :2]) - model.example_code
            for start in range(0, max(1, len(codes) - length // 2), max(1, length // 2)):
                self.runs.append(_padded_run(clip.mfcc_windows, codes, clip.found, start, length))
        if not self.runs:
            raise InputError(f"subject '{subject}' has no prepared {split} clips in '{cache.root}'")

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        windows, codes, mask = self.runs[item]
        return {"x": torch.from_numpy(windows), "target": torch.from_numpy(codes), "mask": torch.from_numpy(mask)}


def _padded_run(windows: np.ndarray, codes: np.ndarray, found: np.ndarray, start: int,
                length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames ``start .. start+length`` of a clip, zero-padded (mask False) past its end."""
    stop = min(start + length, len(codes))
    pad = length - (stop - start)
    mask = np.concatenate([found[start:stop], np.zeros(pad, bool)])
    return (np.concatenate([windows[start:stop], np.zeros((pad, *windows.shape[1:]), np.float32)]),
            np.concatenate([codes[start:stop], np.zeros((pad, codes.shape[1]), np.float32)]).astype(np.float32),
            mask)
