"""The disentanglement data: B warped onto A's timeline, and four-clip items."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from emoportrait import audio
from emoportrait.evp.cache import Pair
from emoportrait.evp.datasets import PairDataset
from emoportrait.evp.losses import disentanglement_losses
from emoportrait.evp.models import Disentangler, EvpModelConfig

N_STEPS = 200  # 2 s of MFCC steps: 50 frames at 25 fps


class _Cache:
    """The part of FeatureCache that PairDataset reads, over clips made in memory.

    Clips ``<sentence>_<emotion>``: each sentence has its own random MFCC sequence; the
    sad reading says it at half speed (every step twice), so its DTW path is known.
    """

    def __init__(self, sentences: tuple[str, ...]) -> None:
        rng = np.random.default_rng(0)
        self.root, self.clips, self.paths, self.pair_list = "memory", {}, {}, []
        for sentence in sentences:
            steps = rng.normal(size=(N_STEPS, 12)).astype(np.float32)
            for emotion, features in (("happy", steps), ("sad", np.repeat(steps, 2, axis=0))):
                n_frames = len(features) // 4
                self.clips[f"{sentence}_{emotion}"] = SimpleNamespace(
                    subject="M001", emotion=emotion, sentence=sentence, fps=25.0, mfcc=features,
                    mfcc_windows=audio.step_windows(features, n_frames, 25.0))
            slow = np.stack([np.repeat(np.arange(N_STEPS), 2), np.arange(2 * N_STEPS)], axis=1)
            for a, b, path in ((f"{sentence}_happy", f"{sentence}_sad", slow),
                               (f"{sentence}_sad", f"{sentence}_happy", slow[:, ::-1])):
                self.pair_list.append(Pair(a, b, "train", 1.0))
                self.paths[a, b] = path

    def pairs(self, split):
        return self.pair_list

    def clip(self, clip_id):
        return self.clips[clip_id]

    def step_path(self, pair):
        return self.paths[pair.clip_a, pair.clip_b]


def test_the_other_clip_is_warped_onto_a_then_windowed():
    dataset = PairDataset(_Cache(("001",)), "train")
    happy_first = [i for i, item in enumerate(dataset.items) if item[0] == 0]
    for item in happy_first[::7]:
        batch = dataset[item]
        # the slow reading warped onto the fast one's timeline is the fast one, window for window
        np.testing.assert_allclose(batch["b"].numpy(), batch["a"].numpy(), atol=1e-6)
        assert batch["emotion_a"] != batch["emotion_b"]


def test_four_clip_items_pair_two_sentences_with_the_same_two_emotions():
    cache = _Cache(("001", "002"))
    dataset = PairDataset(cache, "train", four_clips=True)
    assert len(dataset) == 2 * (50 + 100)  # every frame of A of each of the four pairs
    for index, frame, other, other_frame in dataset.items[::37]:
        first, second = cache.pair_list[index], cache.pair_list[other]
        a, c = cache.clip(first.clip_a), cache.clip(second.clip_a)
        b, d = cache.clip(first.clip_b), cache.clip(second.clip_b)
        assert a.sentence == b.sentence != c.sentence == d.sentence
        assert (a.emotion, b.emotion) == (c.emotion, d.emotion)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(0, len(dataset), 25)])
    assert {"a", "b", "c", "d"} <= set(batch)
    terms = disentanglement_losses(Disentangler(EvpModelConfig()), batch)
    assert torch.isfinite(terms["loss"]) and terms["cross_rec"] > 0


def test_one_sentence_falls_back_to_pairs(caplog):
    dataset = PairDataset(_Cache(("001",)), "train", four_clips=True)
    assert "c" not in dataset[0] and "four-clip" in caplog.text
