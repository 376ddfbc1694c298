"""Facial-expression datasets in their standard folder layouts, and turning their images into tensors.

Readers (:func:`read_dataset`) list a dataset's samples as :class:`Item` (image or
frame paths + label index + subject) split into training and validation sets:

- ``rafdb`` — RAF-DB basic: ``ROOT/EmoLabel/list_patition_label.txt`` (lines
  ``train_00001.jpg 5``, labels 1–7 = surprise, fear, disgust, happiness, sadness,
  anger, neutral) and ``ROOT/Image/aligned/train_00001_aligned.jpg``; ``train_*``
  images train, ``test_*`` images validate.
- ``affectnet8`` — AffectNet with contempt: ``ROOT/{train,val}/{0..7}/*.jpg`` where the
  folder is AffectNet's own class number (0 neutral, 1 happy, 2 sad, 3 surprise,
  4 fear, 5 disgust, 6 anger, 7 contempt) and ``val`` validates.
- ``ckplus`` — CK+: ``ROOT/cohn-kanade-images/S005/001/*.png`` and
  ``ROOT/Emotion/S005/001/*_emotion.txt`` (one float label 1–7 = anger, contempt,
  disgust, fear, happy, sadness, surprise). Sequences without an emotion file are
  unlabelled and skipped. Ten subject-disjoint folds.
- ``smic`` — SMIC-HS: ``ROOT/HS/s1/micro/{negative,positive,surprise}/<clip>/*.bmp``.
  Five subject-disjoint folds, so one fold validates on 20 % of the subjects
  (the original MicroExpSTCNN split clips 80/20 at random, mixing subjects).

Subject folds are deterministic: subjects sorted by name (numbers compared as
numbers), subject ``i`` in fold ``i mod n + 1``; fold ``k`` validates, the rest train.
Frames of a sequence are sorted the same way (the original SMIC code used the
unsorted ``os.listdir`` order).

The images are used as they are, resized to the model's input: RAF-DB and
AffectNet ship face crops, but CK+ and SMIC ship full camera frames. Cropping
their faces is the user's job — a copy of the dataset with aligned crops in the
same layout (e.g. cut with :mod:`emoportrait.analysis.crops`) reads the same way,
and it matches what the recognizers see at prediction time.

The rest of the module is the shared image pipeline: loading, resizing,
normalising (``(pixel / 255 − mean) / std``), the augmentations of the paper
recipes (flip, rotation, padded random crop, random erasing — torchvision-free), and
:class:`SampleDataset`, the torch dataset every model trains on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import InputError
from ...media import is_image, read_image, resize
from ..labels import label_set

DATASETS: tuple[str, ...] = ("rafdb", "affectnet8", "ckplus", "smic")
FOLDS: dict[str, int] = {"ckplus": 10, "smic": 5}
"""Subject folds of the datasets split by subject; the others have fixed splits."""

_LAYOUTS = {
    "rafdb": ("RAF-DB", "ROOT/EmoLabel/list_patition_label.txt and ROOT/Image/aligned/<name>_aligned.jpg"),
    "affectnet8": ("AffectNet-8", "ROOT/train/<0-7>/*.jpg and ROOT/val/<0-7>/*.jpg, one folder per AffectNet "
                                  "class number (0 neutral ... 7 contempt)"),
    "ckplus": ("CK+", "ROOT/cohn-kanade-images/S005/001/*.png and ROOT/Emotion/S005/001/*_emotion.txt"),
    "smic": ("SMIC-HS", "ROOT/HS/s1/micro/{negative,positive,surprise}/<clip>/*.bmp"),
}


@dataclass(frozen=True)
class Item:
    """One sample: an image (one path) or a clip (its frames in order), its class index and subject."""

    paths: tuple[Path, ...]
    label: int
    subject: str = ""


@dataclass(frozen=True)
class Split:
    """A dataset's training and validation items."""

    train: tuple[Item, ...]
    val: tuple[Item, ...]


def _layout_error(name: str, root: Path) -> InputError:
    title, layout = _LAYOUTS[name]
    return InputError(f"'{root}' is not a {title} folder: expected {layout}")


def _natural_key(text: str) -> list[int | str]:
    """Sort key comparing digit runs as numbers (``s2`` before ``s10``, ``img9`` before ``img10``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _image_files(folder: Path) -> tuple[Path, ...]:
    """Image files directly in ``folder``, in natural name order (none if it is not a folder)."""
    if not folder.is_dir():
        return ()
    return tuple(sorted((p for p in folder.iterdir() if p.is_file() and is_image(p)),
                        key=lambda p: _natural_key(p.name)))


def _label_index(text: str, labels: tuple[str, ...], where: str) -> int:
    """A 1-based label number (``'5'`` or ``'3.0000000e+00'``) → 0-based index into ``labels``."""
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not (number.is_integer() and 1 <= number <= len(labels)):
        raise InputError(f"unknown label '{text.strip()}' in {where}; labels are 1-{len(labels)} "
                         f"({', '.join(labels)})")
    return int(number) - 1


def _read_rafdb(root: Path) -> Split:
    labels = label_set("rafdb")
    list_file = root / "EmoLabel" / "list_patition_label.txt"
    images = root / "Image" / "aligned"
    if not list_file.is_file() or not images.is_dir():
        raise _layout_error("rafdb", root)
    splits: dict[str, list[Item]] = {"train_": [], "test_": []}
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{list_file} line {number}"
        prefix = next((p for p in splits if fields[0].startswith(p)), None)
        if len(fields) != 2 or prefix is None:
            raise InputError(f"{where} should read 'train_00001.jpg 5' or 'test_0001.jpg 5', not '{line.strip()}'")
        name = Path(fields[0])
        path = images / f"{name.stem}_aligned{name.suffix}"
        if not path.is_file():
            raise InputError(f"RAF-DB image '{path}' listed in {where} is missing; "
                             f"expected {_LAYOUTS['rafdb'][1]}")
        splits[prefix].append(Item((path,), _label_index(fields[1], labels, where)))
    if not splits["train_"] or not splits["test_"]:
        raise _layout_error("rafdb", root)
    return Split(tuple(splits["train_"]), tuple(splits["test_"]))


def _read_affectnet8(root: Path) -> Split:
    labels = label_set("affectnet8")
    class_folders = {str(index) for index in range(len(labels))}
    splits = []
    for part in ("train", "val"):
        folder = root / part
        if not folder.is_dir():
            raise _layout_error("affectnet8", root)
        items = []
        for class_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
            if class_folder.name not in class_folders:
                raise InputError(f"unknown label folder '{class_folder}'; AffectNet-8 class folders are 0-7 "
                                 f"({', '.join(labels)})")
            items += [Item((path,), int(class_folder.name)) for path in _image_files(class_folder)]
        if not items:
            raise _layout_error("affectnet8", root)
        splits.append(tuple(items))
    return Split(*splits)


def _subject_split(name: str, items: list[Item], fold: int) -> Split:
    """Hold out the subjects of fold ``fold`` (1-based) for validation."""
    folds, title = FOLDS[name], _LAYOUTS[name][0]
    if not 1 <= fold <= folds:
        raise InputError(f"{title} has {folds} subject folds; choose a fold from 1 to {folds}, not {fold}")
    subjects = sorted({item.subject for item in items}, key=_natural_key)
    held_out = set(subjects[fold - 1 :: folds])
    val = tuple(item for item in items if item.subject in held_out)
    train = tuple(item for item in items if item.subject not in held_out)
    if not val or not train:
        raise InputError(f"fold {fold} of {title} leaves no training or no validation subject "
                         f"({len(subjects)} subject(s) found); add subjects or choose another fold")
    return Split(train, val)


def _read_ckplus(root: Path, fold: int) -> Split:
    labels = label_set("ckplus")
    images, emotions = root / "cohn-kanade-images", root / "Emotion"
    if not images.is_dir() or not emotions.is_dir():
        raise _layout_error("ckplus", root)
    items = []
    for label_file in sorted(emotions.glob("*/*/*_emotion.txt")):
        subject, sequence = label_file.parent.parent.name, label_file.parent.name
        frames = _image_files(images / subject / sequence)
        if not frames:
            raise InputError(f"labelled CK+ sequence {subject}/{sequence} has no images in "
                             f"'{images / subject / sequence}'")
        items.append(Item(frames, _label_index(label_file.read_text().strip(), labels, str(label_file)), subject))
    if not items:
        raise _layout_error("ckplus", root)
    return _subject_split("ckplus", items, fold)


def _read_smic(root: Path, fold: int) -> Split:
    labels = label_set("smic")
    if not (root / "HS").is_dir():
        raise _layout_error("smic", root)
    items = []
    for clip in sorted(root.glob("HS/*/micro/*/*"), key=lambda p: _natural_key(str(p.relative_to(root)))):
        if not clip.is_dir():
            continue
        subject, class_name = clip.parents[2].name, clip.parent.name
        if class_name not in labels:
            raise InputError(f"unknown label folder '{clip.parent}'; SMIC classes are {', '.join(labels)}")
        frames = _image_files(clip)
        if not frames:
            raise InputError(f"SMIC clip '{clip}' has no image frames")
        items.append(Item(frames, labels.index(class_name), subject))
    if not items:
        raise _layout_error("smic", root)
    return _subject_split("smic", items, fold)


def read_dataset(name: str, root: str | Path, fold: int = 1) -> Split:
    """List the items of dataset ``name`` (one of :data:`DATASETS`) under ``root``.

    ``fold`` (1-based) picks the validation subjects of CK+ (1–10) and SMIC (1–5);
    RAF-DB and AffectNet have fixed splits and ignore it. Labels index
    ``label_set(name)`` (:mod:`emoportrait.analysis.labels`).

    Raises:
        InputError: unknown dataset, a missing root or one without the expected
            layout, an unknown label, or a fold out of range or without subjects.
    """
    root = Path(root)
    if name not in DATASETS:
        raise InputError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")
    if not root.is_dir():
        raise InputError(f"dataset folder '{root}' does not exist; expected {_LAYOUTS[name][1]}")
    if name == "rafdb":
        return _read_rafdb(root)
    if name == "affectnet8":
        return _read_affectnet8(root)
    if name == "ckplus":
        return _read_ckplus(root, fold)
    return _read_smic(root, fold)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 → ``(T, size, size, 3)`` (:func:`emoportrait.media.resize`)."""
    if images.shape[1:3] == (size, size):
        return images
    return np.stack([resize(image, (size, size)) for image in images])


def load_images(paths: Sequence[Path], size: int) -> np.ndarray:
    """Read image files as ``(T, size, size, 3)`` uint8 RGB (gray files are expanded to RGB)."""
    return np.stack([resize_images(read_image(path)[None], size)[0] for path in paths])


def to_gray(images: np.ndarray) -> np.ndarray:
    """``(T, S, S, 3)`` uint8 RGB → ``(T, S, S, 1)`` uint8 ITU-R 601 luma."""
    return np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in images])[..., None]


def to_tensor(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(T, S, S, C)`` uint8 → ``(T, C, S, S)`` float32 ``(pixel / 255 − mean) / std`` per channel."""
    scaled = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (scaled - mean_t) / std_t


def random_flip(images: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror ``(T, H, W, C)`` images left-right with probability ``p`` (all frames alike)."""
    return np.ascontiguousarray(images[:, :, ::-1]) if rng.random() < p else images


def random_rotate_crop(image: np.ndarray, rng: np.random.Generator, degrees: float, pad: int) -> np.ndarray:
    """torchvision's ``RandomRotation(degrees)`` then ``RandomCrop(side, padding=pad)`` on ``(H, W, C)``.

    Rotation by a uniform angle in ``[-degrees, degrees]`` about the centre (nearest
    neighbour, black outside); then zero padding by ``pad`` pixels and a random crop
    back to ``(H, W)``.
    """
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), rng.uniform(-degrees, degrees), 1.0)
    rotated = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0).reshape(image.shape)
    padded = np.pad(rotated, ((pad, pad), (pad, pad), (0, 0)))
    top, left = rng.integers(0, 2 * pad + 1, size=2)
    return padded[top : top + height, left : left + width]


def random_erasing(x: torch.Tensor, rng: np.random.Generator, p: float = 0.5,
                   scale: tuple[float, float] = (0.02, 0.25),
                   ratio: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """torchvision's ``RandomErasing``: with probability ``p`` zero a random box of a ``(C, H, W)`` tensor.

    The box covers a uniform ``scale`` fraction of the area with a log-uniform aspect
    ``ratio`` (height / width); up to ten draws are tried for one that fits.
    """
    if rng.random() >= p:
        return x
    height, width = x.shape[-2:]
    for _ in range(10):
        area = height * width * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        box_h, box_w = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
        if box_h < height and box_w < width:
            top, left = rng.integers(0, height - box_h + 1), rng.integers(0, width - box_w + 1)
            x = x.clone()
            x[..., top : top + box_h, left : left + box_w] = 0
            return x
    return x


Sample = Callable[[Item, np.random.Generator], torch.Tensor]
"""Makes a model's input tensor from an item; draws any augmentation from the generator."""


class SampleDataset(Dataset):
    """Items as ``(input tensor, label)`` pairs; the input is made by a model's ``sample`` function.

    Each fetch seeds a fresh numpy generator from torch's random stream, so
    augmentations follow ``torch.manual_seed`` and differ between loader workers.
    """

    def __init__(self, items: Sequence[Item], sample: Sample) -> None:
        self.items = tuple(items)
        self.sample = sample

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
        item = self.items[index]
        return self.sample(item, rng), item.label
