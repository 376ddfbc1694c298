"""Recognizer datasets, the shared training loop, checkpoints and load_recognizer, on tiny generated datasets.

Every dataset is written in its real folder layout with a few small images whose
class is a colour, so the models can learn it in a few steps.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from emoportrait.analysis.recognizers.checkpoints import CONFIG_FILE, MODEL_FILE, STATE_FILE, load_recognizer
from emoportrait.analysis.recognizers.dan import DanRecognizer
from emoportrait.analysis.recognizers.datasets import read_dataset
from emoportrait.analysis.recognizers.fan import FanRecognizer
from emoportrait.analysis.recognizers.stcnn import StcnnRecognizer
from emoportrait.errors import InputError
from emoportrait.training.recognizers import RECIPES, TrainConfig, resolve, train_recognizer

SIZE = 32
"""Side of the generated images in pixels."""
COLOURS = [(230, 40, 40), (40, 200, 40), (40, 40, 230), (220, 220, 40), (220, 40, 220), (40, 220, 220),
           (250, 250, 250), (20, 20, 20)]
"""RGB colour of each class index."""


def _face(label: int, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A gray ``SIZE × SIZE`` RGB image with a disc of the class colour (blended by ``strength``) and noise."""
    image = np.full((SIZE, SIZE, 3), 128.0)
    disc = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(disc, (SIZE // 2 + int(rng.integers(-3, 4)), SIZE // 2 + int(rng.integers(-3, 4))), SIZE // 3, 1, -1)
    image[disc == 1] = (1 - strength) * 128 + strength * np.array(COLOURS[label])
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def make_rafdb(root: Path, per_class: int = 2, classes: int = 7) -> Path:
    """RAF-DB basic layout: ``per_class`` training and one test image per class."""
    rng = np.random.default_rng(0)
    lines = []
    for split, count in (("train", per_class), ("test", 1)):
        for label in range(classes):
            for _ in range(count):
                name = f"{split}_{len(lines) + 1:05d}"
                _write(root / "Image" / "aligned" / f"{name}_aligned.jpg", _face(label, rng))
                lines.append(f"{name}.jpg {label + 1}")
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def make_affectnet(root: Path) -> Path:
    """AffectNet-8 layout: two training and one validation image for each of the eight classes."""
    rng = np.random.default_rng(1)
    for split, count in (("train", 2), ("val", 1)):
        for label in range(8):
            for index in range(count):
                _write(root / split / str(label) / f"{index}.jpg", _face(label, rng))
    return root


CKPLUS_SEQUENCES = {"S005": {"001": 3, "002": 7}, "S010": {"001": 1, "003": 5}, "S011": {"002": 7, "004": 1},
                    "S022": {"001": 3, "005": 5}}
"""Subject → sequence → CK+ label (1-7) of the generated CK+ sequences."""


def make_ckplus(root: Path, frames: int = 6) -> Path:
    """CK+ layout: the sequences of :data:`CKPLUS_SEQUENCES` fading from neutral to the class colour,
    plus one unlabelled sequence (no emotion file)."""
    rng = np.random.default_rng(2)
    sequences = {subject: dict(seqs) for subject, seqs in CKPLUS_SEQUENCES.items()}
    sequences["S005"]["009"] = None
    for subject, seqs in sequences.items():
        for sequence, label in seqs.items():
            for index in range(frames):
                image = _face((label or 1) - 1, rng, strength=index / (frames - 1))
                _write(root / "cohn-kanade-images" / subject / sequence / f"{subject}_{sequence}_{index + 1:08d}.png",
                       image)
            if label is not None:
                emotion = root / "Emotion" / subject / sequence / f"{subject}_{sequence}_{frames:08d}_emotion.txt"
                emotion.parent.mkdir(parents=True, exist_ok=True)
                emotion.write_text(f"   {label:.7e}\n")
    return root


SMIC_CLASSES = ("negative", "positive", "surprise")


def make_smic(root: Path, subjects: int = 5, frames: int = 20) -> Path:
    """SMIC-HS layout: per subject one clip of each class; frame names are unpadded numbers."""
    rng = np.random.default_rng(3)
    for subject in range(1, subjects + 1):
        for label, name in enumerate(SMIC_CLASSES):
            clip = root / "HS" / f"s{subject}" / "micro" / name / f"s{subject}_{name[:2]}_01"
            for index in range(frames):
                _write(clip / f"image{index}.bmp", _face(label, rng))
    return root


@pytest.fixture(scope="module")
def rafdb(tmp_path_factory) -> Path:
    return make_rafdb(tmp_path_factory.mktemp("rafdb"))


@pytest.fixture(scope="module")
def ckplus(tmp_path_factory) -> Path:
    return make_ckplus(tmp_path_factory.mktemp("ckplus"))


@pytest.fixture(scope="module")
def smic(tmp_path_factory) -> Path:
    return make_smic(tmp_path_factory.mktemp("smic"))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# --- readers ---------------------------------------------------------------------------------


def test_rafdb_reader_splits_by_prefix_and_maps_labels(rafdb):
    split = read_dataset("rafdb", rafdb)
    assert len(split.train) == 14 and len(split.val) == 7
    assert sorted(item.label for item in split.val) == list(range(7))
    first = split.train[0]
    assert first.paths == (rafdb / "Image" / "aligned" / "train_00001_aligned.jpg",) and first.label == 0


def test_affectnet_reader_uses_class_folders(tmp_path):
    split = read_dataset("affectnet8", make_affectnet(tmp_path))
    assert len(split.train) == 16 and len(split.val) == 8
    assert {item.label for item in split.train} == set(range(8))
    assert all(item.paths[0].parent.name == str(item.label) for item in split.val)


def test_ckplus_reader_skips_unlabelled_and_folds_by_subject(ckplus):
    split = read_dataset("ckplus", ckplus, fold=1)
    assert {item.subject for item in split.val} == {"S005"}      # subjects sorted, fold 1 = the first
    assert len(split.train) + len(split.val) == 8                # the unlabelled S005/009 is skipped
    assert sorted(item.label for item in split.val) == [2, 6]    # 3 → disgust (2), 7 → surprise (6)
    assert all(len(item.paths) == 6 and list(item.paths) == sorted(item.paths) for item in split.val)
    folds = [{item.subject for item in read_dataset("ckplus", ckplus, fold=k).val} for k in (1, 2, 3, 4)]
    assert folds == [{"S005"}, {"S010"}, {"S011"}, {"S022"}]


def test_smic_reader_sorts_frames_naturally_and_folds_subjects(smic):
    split = read_dataset("smic", smic, fold=2)
    assert {item.subject for item in split.val} == {"s2"}
    assert len(split.train) == 12 and len(split.val) == 3
    frames = split.val[0].paths
    assert [p.name for p in frames[:3]] == ["image0.bmp", "image1.bmp", "image2.bmp"]
    assert frames[10].name == "image10.bmp"                         # natural, not lexical, order
    assert sorted(item.label for item in split.val) == [0, 1, 2]


@pytest.mark.parametrize("dataset", ["rafdb", "affectnet8", "ckplus", "smic"])
def test_missing_or_wrong_root_names_the_layout(tmp_path, dataset):
    with pytest.raises(InputError, match="does not exist; expected ROOT/"):
        read_dataset(dataset, tmp_path / "nowhere")
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(InputError, match="is not a .* folder: expected ROOT/"):
        read_dataset(dataset, tmp_path)


def test_unknown_labels_are_refused(tmp_path):
    rafdb = make_rafdb(tmp_path / "rafdb", per_class=1, classes=1)
    (rafdb / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 9\ntest_00002.jpg 1\n")
    with pytest.raises(InputError, match="unknown label '9'"):
        read_dataset("rafdb", rafdb)
    ckplus = make_ckplus(tmp_path / "ckplus", frames=2)
    next((ckplus / "Emotion").glob("*/*/*_emotion.txt")).write_text("   8.0000000e+00\n")
    with pytest.raises(InputError, match="unknown label"):
        read_dataset("ckplus", ckplus)
    smic = make_smic(tmp_path / "smic", subjects=2, frames=1)
    (smic / "HS" / "s1" / "micro" / "negative").rename(smic / "HS" / "s1" / "micro" / "happy")
    with pytest.raises(InputError, match="unknown label folder"):
        read_dataset("smic", smic)
    affectnet = make_affectnet(tmp_path / "affectnet")
    (affectnet / "train" / "7").rename(affectnet / "train" / "contempt")
    with pytest.raises(InputError, match="unknown label folder"):
        read_dataset("affectnet8", affectnet)


def test_fold_out_of_range_is_refused(ckplus):
    with pytest.raises(InputError, match="choose a fold from 1 to 10"):
        read_dataset("ckplus", ckplus, fold=11)
    with pytest.raises(InputError, match="no training or no validation subject"):
        read_dataset("ckplus", ckplus, fold=7)                     # only 4 subjects


# --- training, checkpoints, recognizers -----------------------------------------------------------


def test_dan_learns_saves_and_predicts(rafdb, tmp_path):
    out = tmp_path / "dan"
    config = TrainConfig(epochs=10, batch=7, lr=0.01, image_size=64, log_every=1, device="cpu")
    best = train_recognizer("dan", "rafdb", rafdb, out, config)
    losses = [float(row["loss"]) for row in _rows(out / "steps.csv")]
    assert len(losses) == 20                                       # 10 epochs × 2 steps of 7 images
    assert np.mean(losses[-4:]) < 0.9 * np.mean(losses[:4])        # CE + affinity + partition loss
    assert float(_rows(out / "log.csv")[-1]["train_accuracy"]) > 2 / 7   # chance is 1/7
    assert best == out / "best" and {p.name for p in best.iterdir()} == {MODEL_FILE, CONFIG_FILE}
    assert {p.name for p in (out / "last").iterdir()} == {MODEL_FILE, CONFIG_FILE, STATE_FILE}
    saved = yaml.safe_load((best / CONFIG_FILE).read_text())
    assert saved["model"] == "dan" and saved["backbone"] == "from scratch" and saved["input_size"] == 64
    assert saved["labels"][3] == "happiness" and saved["training"]["momentum"] == 0.9

    recognizer = load_recognizer(best, device="cpu")
    assert isinstance(recognizer, DanRecognizer) and recognizer.info.kind == "frame"
    crops = np.random.default_rng(0).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    probabilities = recognizer.predict(crops)
    assert probabilities.shape == (5, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_training_resumes_after_the_saved_epoch(rafdb, tmp_path, capsys):
    config = TrainConfig(epochs=1, batch=7, lr=0.01, image_size=64, max_steps=1, log_every=1, device="cpu")
    out = tmp_path / "run"
    train_recognizer("dan", "rafdb", rafdb, out, config)
    first = _rows(out / "log.csv")
    capsys.readouterr()
    train_recognizer("dan", "rafdb", rafdb, out, replace(config, epochs=2))
    assert "resuming" in (said := capsys.readouterr().out) and "after epoch 1: training epochs 2 to 2" in said
    rows = _rows(out / "log.csv")
    assert [row["epoch"] for row in rows] == ["1", "2"] and rows[0] == first[0]
    assert [row["epoch"] for row in _rows(out / "steps.csv")] == ["1", "2"]
    assert yaml.safe_load((out / "last" / CONFIG_FILE).read_text())["epoch"] == 2
    # optimizer, scheduler and random state come back too: the same weights as two epochs in one go
    straight = tmp_path / "straight"
    train_recognizer("dan", "rafdb", rafdb, straight, replace(config, epochs=2))
    resumed, whole = load_file(out / "last" / MODEL_FILE), load_file(straight / "last" / MODEL_FILE)
    assert all(torch.equal(resumed[name], whole[name]) for name in whole)

    with pytest.raises(InputError, match=r"holds a dan run with other settings \(input_size: 64 there, 32 here\)"):
        train_recognizer("dan", "rafdb", rafdb, out, replace(config, image_size=32))
    train_recognizer("dan", "rafdb", rafdb, out, replace(config, resume=False))
    assert len(_rows(out / "log.csv")) == 1


def test_fan_trains_on_ckplus_and_scores_whole_clips(ckplus, tmp_path):
    config = TrainConfig(epochs=1, batch=4, image_size=64, max_steps=2, device="cpu")
    best = train_recognizer("fan", "ckplus", ckplus, tmp_path / "fan", config)
    recognizer = load_recognizer(best, device="cpu")
    assert isinstance(recognizer, FanRecognizer) and recognizer.info.kind == "clip"
    assert recognizer.info.labels[1] == "contempt"
    crops = np.random.default_rng(0).integers(0, 256, (9, 112, 112, 3), dtype=np.uint8)
    probabilities = recognizer.predict_clip(crops, fps=25.0)
    assert probabilities.shape == (7,) and probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_stcnn_trains_on_smic_and_slides_windows(smic, tmp_path):
    config = TrainConfig(epochs=2, batch=4, image_size=32, device="cpu")
    best = train_recognizer("stcnn", "smic", smic, tmp_path / "stcnn", config)
    saved = yaml.safe_load((best / CONFIG_FILE).read_text())
    assert saved["frames"] == 18 and saved["backbone"] == "none"
    assert 0 < saved["mean"][0] < 1 and 0 < saved["std"][0] <= 1
    recognizer = load_recognizer(best, device="cpu", clip_window=18, clip_stride=9)
    assert isinstance(recognizer, StcnnRecognizer) and recognizer.info.labels == SMIC_CLASSES
    crops = np.random.default_rng(0).integers(0, 256, (40, 48, 48, 3), dtype=np.uint8)
    assert recognizer.predict_clip(crops, fps=25.0).shape == (3,)
    assert recognizer.predict_clip(crops[:5], fps=25.0).shape == (3,)   # shorter than one window


def test_bad_model_dataset_pairs_and_checkpoints_are_refused(rafdb, tmp_path):
    with pytest.raises(InputError, match="fan trains on ckplus, not 'rafdb'"):
        train_recognizer("fan", "rafdb", rafdb, tmp_path / "x")
    with pytest.raises(InputError, match="unknown recognizer model"):
        train_recognizer("vgg", "rafdb", rafdb, tmp_path / "x")
    with pytest.raises(InputError, match="has no ResNet-18 trunk"):
        train_recognizer("stcnn", "smic", rafdb, tmp_path / "x", TrainConfig(backbone="w.pth"))
    with pytest.raises(InputError, match="is not a dan/fan/stcnn checkpoint .*emoportrait train fer"):
        load_recognizer(tmp_path)
    (tmp_path / MODEL_FILE).write_bytes(b"not safetensors")
    (tmp_path / CONFIG_FILE).write_text("model: dan\n")
    with pytest.raises(InputError, match="config.yaml is damaged: .* backbone, frames, .* are missing"):
        load_recognizer(tmp_path)


@pytest.mark.parametrize("model,config,message", [
    ("dan", TrainConfig(image_size=33), "image size 33 does not fit this network: it takes a multiple of 32"),
    ("fan", TrainConfig(image_size=16), "a multiple of 32"),
    ("stcnn", TrainConfig(image_size=4), "it takes at least 5 pixels"),
    ("stcnn", TrainConfig(frames=5), "5 frames per sample are too few for this network: it takes at least 17"),
    ("dan", TrainConfig(lr=float("nan")), "lr must be positive, got nan"),
    ("dan", TrainConfig(lr=-1.0), "lr must be positive, got -1"),
])
def test_settings_the_network_cannot_take_are_refused_before_training(model, config, message):
    with pytest.raises(InputError, match=message):
        resolve(config, RECIPES[model])
    assert resolve(TrainConfig(), RECIPES[model]).image_size == RECIPES[model].image_size
