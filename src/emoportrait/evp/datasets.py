"""Torch datasets over a prepared feature cache (:class:`~emoportrait.evp.cache.FeatureCache`).

- :class:`WindowDataset`: single MFCC windows with their emotion (emotion pretraining).
- :class:`PairDataset`: a frame's window of clip A and the same window of clip B, the
  same sentence spoken with another emotion, DTW-warped onto A's timeline (content
  pretraining); with ``four_clips`` also the same two emotions speaking another
  sentence (disentanglement: the paper's cross-reconstruction of four clips).
- :class:`SequenceDataset`: runs of frames of one subject with their landmark PCA
  displacement (audio-to-landmark).

Each item is a dict of tensors; MFCC windows are ``(28, 12)`` float32.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import audio
from ..emotions import EMOTIONS
from ..errors import InputError
from .cache import FeatureCache, Pair

logger = logging.getLogger(__name__)


def _emotion_index(name: str) -> int:
    return EMOTIONS.index(name)


class WindowDataset(Dataset):
    """Every frame of every prepared clip with speech of a split: ``{"x": (28, 12), "emotion": ()}``."""

    def __init__(self, cache: FeatureCache, split: str) -> None:
        rows = cache.speech(split)
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

    Items: ``{"a": (28, 12), "b": (28, 12), "emotion_a": (), "emotion_b": ()}``. Clip B's
    whole MFCC sequence is first warped onto A's timeline along the pair's DTW path
    (:func:`~emoportrait.audio.warp_features`), then windowed at A's frame ``t``, as EVP
    does: ``b`` covers the same speech as ``a``, said at A's pace.

    With ``four_clips``, items also hold ``"c"`` and ``"d"``: a pair (C, D) of the same
    subject and the same two emotions (C has A's, D has B's) saying another sentence,
    at the frame of C proportional to ``t`` (D warped onto C as B onto A). Pairs with
    no such partner are left out; where no pair has one, the items are two-clip ones
    and a warning says so.
    """

    def __init__(self, cache: FeatureCache, split: str, four_clips: bool = False) -> None:
        self.cache = cache
        pairs = cache.pairs(split)
        ids = sorted({p.clip_a for p in pairs} | {p.clip_b for p in pairs})
        self.clips = {clip_id: cache.clip(clip_id) for clip_id in ids}
        self.labels = {clip_id: _emotion_index(clip.emotion) for clip_id, clip in self.clips.items()}
        self.pairs = pairs
        self._warped: dict[int, np.ndarray] = {}
        partners = _partners(pairs, self.clips) if four_clips else {}
        if four_clips and not partners:
            logger.warning("no two sentences of '%s' (%s) are spoken by one subject with the same two "
                           "emotions: training on pairs only, without the four-clip cross-reconstruction",
                           cache.root, split)
            four_clips = False
        self.items = []
        for index, pair in enumerate(pairs):
            if four_clips and index not in partners:
                continue
            length = len(self.clips[pair.clip_a].mfcc_windows)
            for t in range(length):
                if not four_clips:
                    self.items.append((index, t, None, None))
                    continue
                other = partners[index][t % len(partners[index])]
                other_length = len(self.clips[pairs[other].clip_a].mfcc_windows)
                self.items.append((index, t, other, round(t * (other_length - 1) / max(length - 1, 1))))

    def __len__(self) -> int:
        return len(self.items)

    def _pair_windows(self, index: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows of clip A and of warped clip B of pair ``index`` at A's ``frame``."""
        pair = self.pairs[index]
        a, b = self.clips[pair.clip_a], self.clips[pair.clip_b]
        if index not in self._warped:
            self._warped[index] = audio.warp_features(b.mfcc, self.cache.step_path(pair), len(a.mfcc))
        config = audio.AudioConfig()
        steps = audio.window_starts(frame + 1, a.fps, config)[frame] + np.arange(config.window_steps)
        warped = self._warped[index]
        return a.mfcc_windows[frame], warped[np.clip(steps, 0, len(warped) - 1)]

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        index, frame, other, other_frame = self.items[item]
        pair = self.pairs[index]
        a, b = self._pair_windows(index, frame)
        result = {"a": torch.from_numpy(a), "b": torch.from_numpy(np.ascontiguousarray(b, np.float32)),
                  "emotion_a": torch.tensor(self.labels[pair.clip_a]),
                  "emotion_b": torch.tensor(self.labels[pair.clip_b])}
        if other is not None:
            c, d = self._pair_windows(other, other_frame)
            result.update(c=torch.from_numpy(c), d=torch.from_numpy(np.ascontiguousarray(d, np.float32)))
        return result


def _partners(pairs: list[Pair], clips: dict) -> dict[int, list[int]]:
    """For each pair index, the indices of pairs of the same subject and emotions (in order)
    saying another sentence."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, pair in enumerate(pairs):
        a, b = clips[pair.clip_a], clips[pair.clip_b]
        groups[a.subject, a.emotion, b.emotion].append(index)
    partners = {}
    for members in groups.values():
        for index in members:
            sentence = clips[pairs[index].clip_a].sentence
            others = [other for other in members if clips[pairs[other].clip_a].sentence != sentence]
            if others:
                partners[index] = others
    return partners


class SequenceDataset(Dataset):
    """Runs of ``length`` frames (half-overlapping) of one subject's clips with speech in a split.

    Items: ``{"x": (L, 28, 12), "target": (L, 16), "mask": (L,) bool}`` where ``target``
    is the frame's landmark PCA code minus the subject's identity code (EVP's
    displacement) and ``mask`` marks frames with a tracked face (and real frames of a
    clip shorter than ``length``, which is padded). ``clip_ids``, when given, keeps only
    those clips.
    """

    def __init__(self, cache: FeatureCache, split: str, subject: str, length: int,
                 clip_ids: Collection[str] | None = None) -> None:
        model = cache.subject(subject)
        self.runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for row in cache.speech(split):
            if row.subject != subject or (clip_ids is not None and row.clip_id not in clip_ids):
                continue
            clip = cache.clip(row.clip_id)
            codes = model.encode(clip.canonical[..., :2]) - model.example_code
            for start in range(0, max(1, len(codes) - length // 2), max(1, length // 2)):
                self.runs.append(_padded_run(clip.mfcc_windows, codes, clip.found, start, length))
        if not self.runs:
            raise InputError(f"subject '{subject}' has no prepared {split} clips with speech in '{cache.root}'")

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


HELD_OUT_EVERY = 5
"""When no validation clip of the trained subject exists, every 5th training clip is held out."""


def subject_sequences(cache: FeatureCache, val_split: str, subject: str, length: int
                      ) -> tuple[SequenceDataset, SequenceDataset]:
    """Training and validation sequences of one subject for audio-to-landmark.

    Validation uses the subject's clips of ``val_split``; where it has none (splits by
    subject hold the trained subject out of validation), every :data:`HELD_OUT_EVERY`-th
    of its training clips (at least one) is held out instead, so the best checkpoint is
    never chosen on the data it was trained on. A subject with one clip validates on it,
    with a warning.
    """
    if val_split != "train" and any(row.subject == subject for row in cache.speech(val_split)):
        return (SequenceDataset(cache, "train", subject, length),
                SequenceDataset(cache, val_split, subject, length))
    clips = [row.clip_id for row in cache.speech("train") if row.subject == subject]
    if len(clips) < 2:
        logger.warning("subject %s has one training clip and none for validation: the best checkpoint "
                       "is chosen on the training clip", subject)
        train = SequenceDataset(cache, "train", subject, length)
        return train, train
    held = set(clips[HELD_OUT_EVERY - 1::HELD_OUT_EVERY] or clips[-1:])
    return (SequenceDataset(cache, "train", subject, length, clip_ids=set(clips) - held),
            SequenceDataset(cache, "train", subject, length, clip_ids=held))
