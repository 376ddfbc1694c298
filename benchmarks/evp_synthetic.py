"""The learned EVP pipeline trained on a synthetic data set, measured on held-out clips.

make-dataset → prepare → train content, emotion, disentangle, audio2lm, then on the
test split:

- emotion accuracy of the emotion encoder + classifier (per window and per clip,
  by averaging the logits), against chance (1 / number of emotions);
- disentanglement: how well the *content* code predicts the emotion (a logistic
  regression fitted on train windows, scored on test windows) — it should stay
  near chance (EVP's aim: no emotion in the content code), and the emotion code's
  score for comparison;
- audio-to-landmark mouth error on the test clips of the trained subject: mean
  distance of the 40 lip points (canonical units) between the prediction and the
  tracked truth, for the learned driver, the procedural driver and a mean-pose
  baseline (the identity, mouth at rest).

The data set is synthetic (espeak-ng speech, faces made by the procedural driver),
so this checks that every stage learns, not how EVP does on MEAD.

    .venv/bin/python benchmarks/evp_synthetic.py [--work evp_bench] [--sentences 4] [--epochs 5] [--steps 30]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from emoportrait import audio
from emoportrait.drivers.learned import LearnedDriver
from emoportrait.drivers.procedural import ProceduralDriver
from emoportrait.emotions import EMOTIONS, EmotionSpec
from emoportrait.evp.cache import FeatureCache
from emoportrait.evp.models import Disentangler, EvpModelConfig
from emoportrait.evp.prepare import prepare
from emoportrait.synthetic import SyntheticConfig, make_dataset
from emoportrait.face import GROUPS
from emoportrait.runs import checkpoint_dir, load_weights
from emoportrait.training import EngineConfig
from emoportrait.training.evp import train_stage

EMOTION_SET = ("neutral", "happy", "sad", "angry", "surprised")


def _train_all(cache: Path, runs: Path, epochs: int, steps: int, batch: int) -> dict[str, float]:
    seconds = {}
    plan = [("content", [], batch), ("emotion", [], batch), ("disentangle", [runs / "content", runs / "emotion"], batch),
            ("audio2lm", [runs / "disentangle"], 8)]
    for stage, init, batch in plan:
        start = time.perf_counter()
        settings = {"lr": 5e-4, **({"subject": "M001"} if stage == "audio2lm" else {})}
        stage_epochs = epochs * 3 if stage == "audio2lm" else epochs
        train_stage(stage, cache, runs / stage, EngineConfig(epochs=stage_epochs, batch_size=batch,
                                                             max_steps_per_epoch=steps), settings, init)
        seconds[stage] = time.perf_counter() - start
    return seconds


@torch.no_grad()
def _codes(model: Disentangler, cache: FeatureCache, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    contents, emotions, labels, clips = [], [], [], []
    for row in cache.ok(split):
        content, emotion = model.encode(torch.from_numpy(cache.clip(row.clip_id).mfcc_windows))
        contents.append(content.numpy())
        emotions.append(emotion.numpy())
        labels += [EMOTIONS.index(row.emotion)] * len(content)
        clips += [row.clip_id] * len(content)
    return np.concatenate(contents), np.concatenate(emotions), np.array(labels), clips


def _probe(train_x, train_y, test_x, test_y) -> float:
    classifier = LogisticRegression(max_iter=2000).fit(train_x, train_y)
    return float(classifier.score(test_x, test_y))


def _disentangler(run: Path) -> Disentangler:
    model = Disentangler(EvpModelConfig())
    load_weights(checkpoint_dir(run), {"disentangler": model})
    return model.eval()


@torch.no_grad()
def _emotion_accuracy(model: Disentangler, cache: FeatureCache) -> tuple[float, float]:
    window_hits, clip_hits = [], []
    for row in cache.ok("test"):
        logits = model.classifier(model.emotion_encoder(torch.from_numpy(cache.clip(row.clip_id).mfcc_windows)))
        truth = EMOTIONS.index(row.emotion)
        window_hits += (logits.argmax(1) == truth).tolist()
        clip_hits.append(int(logits.mean(0).argmax()) == truth)
    return float(np.mean(window_hits)), float(np.mean(clip_hits))


def _mouth_errors(cache: FeatureCache, runs: Path) -> dict[str, float]:
    subject = cache.subject("M001")
    learned = LearnedDriver(runs / "audio2lm")
    procedural = ProceduralDriver()
    lips = GROUPS["lips"]
    errors: dict[str, list[float]] = {"learned (EVP)": [], "procedural": [], "mean pose": []}
    for row in cache.ok("test"):
        if row.subject != "M001":
            continue
        clip = cache.clip(row.clip_id)
        speech = audio.load_audio(row.audio)
        truth = clip.canonical[:, lips, :2]
        spec = EmotionSpec({} if row.emotion == "neutral" else {row.emotion: 1.0})
        identity = subject.identity
        for name, driver in (("learned (EVP)", learned), ("procedural", procedural)):
            predicted = identity[None, lips, :2] + driver.drive(speech, spec, identity, clip.n_frames, clip.fps)[:, lips, :2]
            errors[name].append(float(np.linalg.norm(predicted - truth, axis=-1).mean()))
        errors["mean pose"].append(float(np.linalg.norm(identity[None, lips, :2] - truth, axis=-1).mean()))
    return {name: float(np.mean(values)) for name, values in errors.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("evp_bench"))
    parser.add_argument("--sentences", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="steps per epoch")
    parser.add_argument("--batch", type=int, default=32, help="windows per step (content, emotion, disentangle)")
    args = parser.parse_args()
    data, cache_dir, runs = args.work / "data", args.work / "cache", args.work / "runs"
    start = time.perf_counter()
    make_dataset(data, SyntheticConfig(subjects=2, sentences=args.sentences, emotions=EMOTION_SET, levels=(3,),
                                       size=128))
    prepare(data, cache_dir)
    prepared = time.perf_counter() - start
    seconds = _train_all(cache_dir, runs, args.epochs, args.steps, args.batch)
    cache = FeatureCache(cache_dir)
    model = _disentangler(runs / "disentangle")
    train_content, train_emotion, train_labels, _ = _codes(model, cache, "train")
    test_content, test_emotion, test_labels, _ = _codes(model, cache, "test")
    chance = 1 / len(EMOTION_SET)
    window_acc, clip_acc = _emotion_accuracy(model, cache)
    rows = [
        ("emotion accuracy, test windows", window_acc),
        ("emotion accuracy, test clips", clip_acc),
        ("emotion from content code (probe)", _probe(train_content, train_labels, test_content, test_labels)),
        ("emotion from emotion code (probe)", _probe(train_emotion, train_labels, test_emotion, test_labels)),
        ("chance", chance),
    ]
    print(f"synthetic data: 2 subjects x {args.sentences} sentences x {len(EMOTION_SET)} emotions; "
          f"data + prepare {prepared:.0f} s; training " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    print(f"{'measure':<40}{'value':>8}")
    for name, value in rows:
        print(f"{name:<40}{value:>8.2f}")
    print(f"{'mouth (40 lip points) error, M001 test':<40}{'canonical units':>16}")
    for name, value in _mouth_errors(cache, runs).items():
        print(f"  {name:<38}{value:>8.3f}")


if __name__ == "__main__":
    main()
