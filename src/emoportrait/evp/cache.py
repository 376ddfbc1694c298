"""The prepared EVP feature cache: its files, their writers, and readers for training.

A cache folder, as written by :func:`emoportrait.evp.prepare.prepare`::

    config.yaml                           the PrepareConfig it was made with
    manifest.csv                          one row per clip (MANIFEST_COLUMNS)
    manifest.part<i>of<n>.csv             rows of shard i of n, before merging
    summary.json                          counts, split sizes, failures
    clips/<clip_id>.npz                   per-clip features (:class:`ClipFeatures`)
    subjects/<subject>.npz                landmark PCA + rest identity (:class:`SubjectModel`)
    reference_displacements/<subject>.npz mean emotion displacement per (emotion, level)
    pairs.csv                             clip_a, clip_b, split, cost
    pairs/<clip_a>__<clip_b>.npz          step_path (K, 2) int64: DTW path (step of A, step of B)

Landmark units: ``landmarks`` are pixels of the video frame; ``canonical`` are the
frontalised landmarks of :mod:`emoportrait.geometry` (rigid points centred, RMS
radius 1). Every file is written through :func:`emoportrait.media.atomic_output`,
so a file that exists is complete.
"""

from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .. import media
from ..errors import InputError
from ..face import N_LANDMARKS
from .layout import MEAD_VIDEO_GLOB, PLAIN_MANIFEST

CLIP_FORMAT = "emoportrait.evp.clip/1"
SUBJECT_FORMAT = "emoportrait.evp.subject/1"
DISPLACEMENT_FORMAT = "emoportrait.evp.displacements/1"

MANIFEST = "manifest.csv"
PAIRS = "pairs.csv"
SUMMARY = "summary.json"
CONFIG = "config.yaml"

MANIFEST_COLUMNS = ("clip_id", "subject", "emotion", "level", "sentence", "n_frames", "fps",
                    "split", "status", "video", "audio")
PAIR_COLUMNS = ("clip_a", "clip_b", "split", "cost")

SPLITS = ("train", "val", "test")
OK = "ok"
"""Status of a prepared clip; a failed clip's status is ``failed: <reason>``."""

_PREPARE_HINT = "run: emoportrait prepare DATA_ROOT --out {out}"


# --------------------------------------------------------------------------- paths


def clip_path(out: Path, clip_id: str) -> Path:
    """``out/clips/<clip_id>.npz``."""
    return out / "clips" / f"{clip_id}.npz"


def subject_path(out: Path, subject: str) -> Path:
    """``out/subjects/<subject>.npz``."""
    return out / "subjects" / f"{subject}.npz"


def displacement_path(out: Path, subject: str) -> Path:
    """``out/reference_displacements/<subject>.npz``."""
    return out / "reference_displacements" / f"{subject}.npz"


def pair_path(out: Path, clip_a: str, clip_b: str) -> Path:
    """``out/pairs/<clip_a>__<clip_b>.npz``."""
    return out / "pairs" / f"{clip_a}__{clip_b}.npz"


def part_path(out: Path, index: int, count: int) -> Path:
    """``out/manifest.part<index>of<count>.csv``, the manifest rows of one shard."""
    return out / f"manifest.part{index}of{count}.csv"


# ------------------------------------------------------------------------ CSV tables


@dataclass(frozen=True)
class ManifestRow:
    """One clip of the manifest.

    ``n_frames`` and ``fps`` are 0 and ``split`` is empty for a failed clip, and
    ``split`` is empty in a shard's part file (splits are assigned when merging).
    ``video`` and ``audio`` are the absolute source paths.
    """

    clip_id: str
    subject: str
    emotion: str
    level: int
    sentence: str
    n_frames: int
    fps: float
    split: str
    status: str
    video: str
    audio: str

    @property
    def ok(self) -> bool:
        """True if the clip was prepared."""
        return self.status == OK

    @property
    def has_speech(self) -> bool:
        """False for a landmark-only clip (a video without sound: empty ``audio``)."""
        return bool(self.audio)


@dataclass(frozen=True)
class Pair:
    """Two clips of one subject saying one sentence with different emotions.

    ``cost`` is the DTW cost of their MFCCs (:class:`emoportrait.audio.DtwResult`);
    both clips are in ``split``.
    """

    clip_a: str
    clip_b: str
    split: str
    cost: float


def _write_table(path: Path, columns: tuple[str, ...], rows: list) -> None:
    with media.atomic_output(path) as temp:
        with open(temp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows([getattr(row, column) for column in columns] for row in rows)


def _read_table(path: Path, cls: type, columns: tuple[str, ...]) -> list:
    types = {field.name: field.type for field in fields(cls)}
    convert = {"int": int, "float": float, "str": str}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != columns:
                raise ValueError(f"columns {reader.fieldnames} instead of {list(columns)}")
            return [cls(**{key: convert[types[key]](value) for key, value in row.items()})
                    for row in reader]
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"'{path}' is not a valid EVP cache table ({exc}); "
                         f"{_PREPARE_HINT.format(out=path.parent)}") from exc


def write_manifest(path: Path, rows: list[ManifestRow]) -> None:
    """Write manifest rows as CSV (atomically)."""
    _write_table(path, MANIFEST_COLUMNS, rows)


def read_manifest(path: Path) -> list[ManifestRow]:
    """Read a CSV written by :func:`write_manifest`."""
    return _read_table(path, ManifestRow, MANIFEST_COLUMNS)


def write_pairs(path: Path, pairs: list[Pair]) -> None:
    """Write pair rows as CSV (atomically)."""
    _write_table(path, PAIR_COLUMNS, pairs)


def read_pairs(path: Path) -> list[Pair]:
    """Read a CSV written by :func:`write_pairs`."""
    return _read_table(path, Pair, PAIR_COLUMNS)


# --------------------------------------------------------------------- npz records


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with media.atomic_output(path) as temp:
        with open(temp, "wb") as handle:
            np.savez(handle, **arrays)


def _load_npz(path: Path, fmt: str, what: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta dict, arrays) of an npz record of format ``fmt``; InputError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != fmt:
                raise ValueError(f"format {meta.get('format')!r} instead of {fmt!r}")
            return meta, {key: data[key] for key in data.files if key != "meta"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"'{path}' is not a valid EVP {what} file ({exc}); delete it and "
            f"{_PREPARE_HINT.format(out=path.parent.parent)}"
        ) from exc


@dataclass
class ClipFeatures:
    """Everything prepared for one clip; T = video frames, S = MFCC steps (100 per second).

    Attributes:
        clip_id, subject, emotion, level, sentence: As in the manifest.
        fps: Frame rate of the prepared frames (the model's, e.g. 25, whatever the video's).
        mfcc_windows: (T, 28, 12) float32 EVP MFCC window of each frame; this and the
            next three are empty (length 0) for a landmark-only clip (no speech).
        mfcc: (S, 12) float32 MFCC steps of the whole clip (for DTW).
        loudness: (T,) float32 RMS loudness per frame, dBFS.
        silent: (T,) bool, the frame is silence.
        landmarks: (T, 478, 3) float32 tracked landmarks, pixels.
        canonical: (T, 478, 3) float32 frontalised landmarks, canonical units.
        rotation: (T, 3, 3) float32 head rotation (canonical -> image).
        scale: (T,) float32 pixels per canonical unit.
        translation: (T, 3) float32 pixels.
        found: (T,) bool, the face was detected (else interpolated or held).
    """

    clip_id: str
    subject: str
    emotion: str
    level: int
    sentence: str
    fps: float
    mfcc_windows: np.ndarray
    mfcc: np.ndarray
    loudness: np.ndarray
    silent: np.ndarray
    landmarks: np.ndarray
    canonical: np.ndarray
    rotation: np.ndarray
    scale: np.ndarray
    translation: np.ndarray
    found: np.ndarray

    @property
    def n_frames(self) -> int:
        """T, the number of video frames."""
        return len(self.found)

    @property
    def has_speech(self) -> bool:
        """False for a landmark-only clip (its MFCC, loudness and silence are empty)."""
        return len(self.mfcc) > 0


_CLIP_META = ("clip_id", "subject", "emotion", "level", "sentence")
_CLIP_ARRAYS = ("mfcc_windows", "mfcc", "loudness", "silent", "landmarks", "canonical",
                "rotation", "scale", "translation", "found")


def save_clip(path: Path, clip: ClipFeatures, video: str, audio: str) -> None:
    """Write a clip's features (uncompressed npz, atomically) with its source paths."""
    meta = {"format": CLIP_FORMAT, **{key: getattr(clip, key) for key in _CLIP_META},
            "video": video, "audio": audio}
    arrays = {key: getattr(clip, key) for key in _CLIP_ARRAYS}
    _save_npz(path, {**arrays, "fps": np.float64(clip.fps), "meta": np.array(json.dumps(meta))})


def load_clip(path: Path) -> ClipFeatures:
    """Read a file written by :func:`save_clip`."""
    meta, arrays = _load_npz(path, CLIP_FORMAT, "clip")
    missing = [key for key in _CLIP_ARRAYS if key not in arrays]
    if missing:
        raise InputError(f"'{path}' lacks {', '.join(missing)}; delete it and "
                         f"{_PREPARE_HINT.format(out=path.parent.parent)}")
    return ClipFeatures(**{key: meta[key] for key in _CLIP_META}, fps=float(arrays["fps"]),
                        **{key: arrays[key] for key in _CLIP_ARRAYS})


def load_clip_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Only the named arrays of a clip file (e.g. ``("canonical", "found")``)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in keys}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(f"'{path}' is not a valid EVP clip file ({exc}); delete it and "
                         f"{_PREPARE_HINT.format(out=path.parent.parent)}") from exc


def clip_frames(path: Path, clip_id: str) -> tuple[int, float, bool] | None:
    """(T, fps, has speech) of a complete clip file for ``clip_id``, or None if it is
    absent or invalid.

    Reads only the small ``meta``, ``fps`` and ``found`` entries.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            complete = set(_CLIP_ARRAYS) <= set(data.files)
            if meta.get("format") != CLIP_FORMAT or meta.get("clip_id") != clip_id or not complete:
                return None
            return len(data["found"]), float(data["fps"]), bool(meta.get("audio"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


@dataclass
class SubjectModel:
    """A subject's landmark PCA (EVP's 16 components) and rest identity.

    The PCA is over flattened canonical xy, D = 478 * 2 = 956.

    Attributes:
        subject: Subject id.
        mean: (D,) float32 mean canonical xy.
        components: (K, D) float32 orthonormal principal axes, by decreasing variance.
        explained_variance: (K,) float32 variance along each axis, canonical units².
        total_variance: Total variance of the data (sum over all D axes).
        identity: (478, 3) float32 rest identity face, canonical units.
        example_code: (K,) float32 PCA code of the identity's xy.
        has_neutral: The identity came from neutral clips (False: from all clips,
            because the subject has none; stages that need a neutral face refuse it).
    """

    subject: str
    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    total_variance: float
    identity: np.ndarray
    example_code: np.ndarray
    has_neutral: bool

    def encode(self, xy: np.ndarray) -> np.ndarray:
        """PCA codes of canonical xy landmarks: (..., 478, 2) -> (..., K)."""
        xy = np.asarray(xy)
        if xy.shape[-2:] != (self.mean.size // 2, 2):
            raise ValueError(f"xy must have shape (..., {self.mean.size // 2}, 2), got {xy.shape}")
        flat = xy.reshape(*xy.shape[:-2], self.mean.size) - self.mean
        return flat @ self.components.T

    def decode(self, code: np.ndarray) -> np.ndarray:
        """Canonical xy landmarks of PCA codes: (..., K) -> (..., 478, 2)."""
        code = np.asarray(code)
        if code.shape[-1:] != (len(self.components),):
            raise ValueError(f"code must have shape (..., {len(self.components)}), got {code.shape}")
        flat = code @ self.components + self.mean
        return flat.reshape(*code.shape[:-1], self.mean.size // 2, 2)


_SUBJECT_ARRAYS = ("mean", "components", "explained_variance", "identity", "example_code")


def save_subject(path: Path, model: SubjectModel) -> None:
    """Write a subject model (npz, atomically); scalars as 0-d arrays."""
    meta = {"format": SUBJECT_FORMAT, "subject": model.subject}
    arrays = {key: np.asarray(getattr(model, key), np.float32) for key in _SUBJECT_ARRAYS}
    _save_npz(path, {**arrays, "total_variance": np.float64(model.total_variance),
                     "has_neutral": np.bool_(model.has_neutral), "meta": np.array(json.dumps(meta))})


def load_subject(path: Path) -> SubjectModel:
    """Read a file written by :func:`save_subject`."""
    meta, arrays = _load_npz(path, SUBJECT_FORMAT, "subject")
    return SubjectModel(subject=meta["subject"], total_variance=float(arrays["total_variance"]),
                        has_neutral=bool(arrays["has_neutral"]),
                        **{key: arrays[key] for key in _SUBJECT_ARRAYS})


def save_displacements(path: Path, displacements: dict[tuple[str, int], np.ndarray],
                       frame_counts: dict[tuple[str, int], int]) -> None:
    """Write reference displacements: (emotion, level) -> (478, 3) canonical offset."""
    keys = sorted(displacements)
    _save_npz(path, {
        "emotions": np.array([emotion for emotion, _ in keys], dtype=str),
        "levels": np.array([level for _, level in keys], np.int64),
        "displacements": np.array([displacements[key] for key in keys], np.float32).reshape(
            len(keys), N_LANDMARKS, 3),
        "frame_counts": np.array([frame_counts[key] for key in keys], np.int64),
        "meta": np.array(json.dumps({"format": DISPLACEMENT_FORMAT})),
    })


def load_displacements(path: Path) -> dict[tuple[str, int], np.ndarray]:
    """Read a file written by :func:`save_displacements`: (emotion, level) -> (478, 3)."""
    _, arrays = _load_npz(path, DISPLACEMENT_FORMAT, "reference displacement")
    return {(str(emotion), int(level)): offset for emotion, level, offset
            in zip(arrays["emotions"], arrays["levels"], arrays["displacements"])}


def save_step_path(path: Path, step_path: np.ndarray, cost: float) -> None:
    """Write a pair's (K, 2) int64 DTW path ``(step of A, step of B)`` and cost (npz, atomically)."""
    _save_npz(path, {"step_path": np.asarray(step_path, np.int64), "cost": np.float64(cost)})


def load_step_path(path: Path) -> tuple[np.ndarray, float]:
    """((K, 2) int64 DTW path, DTW cost) of a file written by :func:`save_step_path`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["step_path"], float(data["cost"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(f"'{path}' is not a valid EVP pair file ({exc}); delete it and "
                         f"{_PREPARE_HINT.format(out=path.parent.parent)}") from exc


# ----------------------------------------------------------------------- the cache


class FeatureCache:
    """Read access to a prepared cache folder (see the module docstring for its files).

    >>> cache = FeatureCache("cache/")
    >>> rows = cache.ok("train")
    >>> clip = cache.clip(rows[0].clip_id)          # ClipFeatures
    >>> model = cache.subject(rows[0].subject)      # SubjectModel
    >>> for pair in cache.pairs("train"):
    ...     path = cache.step_path(pair)            # (K, 2) DTW path of MFCC steps

    Raises:
        InputError: If ``out`` is not a prepared cache.
    """

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        manifest = self.root / MANIFEST
        if not manifest.is_file():
            if list(self.root.glob("manifest.part*of*.csv")):
                raise InputError(f"'{self.root}' holds prepared shards that are not merged yet; "
                                 f"to merge them, {_PREPARE_HINT.format(out=self.root)}")
            if (self.root / PLAIN_MANIFEST).is_file() or next(self.root.glob(MEAD_VIDEO_GLOB), None):
                raise InputError(f"'{self.root}' holds raw clips, not prepared features; prepare them first: "
                                 f"emoportrait prepare {self.root} --out cache/, then train with --data cache/")
            raise InputError(f"'{self.root}' is not a prepared EVP feature cache (no {MANIFEST}); "
                             f"{_PREPARE_HINT.format(out=self.root)}")
        self.manifest: list[ManifestRow] = read_manifest(manifest)
        self._rows = {row.clip_id: row for row in self.manifest}

    def ok(self, split: str | None = None) -> list[ManifestRow]:
        """The prepared clips, all or those of one split (``train``, ``val``, ``test``)."""
        if split is not None and split not in SPLITS:
            raise InputError(f"unknown split '{split}'; choose from {', '.join(SPLITS)}")
        return [row for row in self.manifest if row.ok and split in (None, row.split)]

    def speech(self, split: str | None = None) -> list[ManifestRow]:
        """The prepared clips with speech (not landmark-only), all or those of one split."""
        return [row for row in self.ok(split) if row.has_speech]

    @property
    def subjects(self) -> list[str]:
        """Subjects with a model (at least one prepared clip), sorted."""
        return sorted({row.subject for row in self.manifest if row.ok})

    def clip(self, clip_id: str) -> ClipFeatures:
        """The features of one prepared clip."""
        row = self._rows.get(clip_id)
        if row is None:
            raise InputError(f"clip '{clip_id}' is not in the manifest of '{self.root}'")
        if not row.ok:
            raise InputError(f"clip '{clip_id}' was not prepared ({row.status})")
        return load_clip(clip_path(self.root, clip_id))

    def subject(self, subject: str) -> SubjectModel:
        """The landmark PCA and rest identity of one subject."""
        if subject not in self.subjects:
            raise InputError(f"subject '{subject}' has no prepared clip in '{self.root}'; "
                             f"known subjects: {', '.join(self.subjects)}")
        return load_subject(subject_path(self.root, subject))

    def reference_displacements(self, subject: str) -> dict[tuple[str, int], np.ndarray]:
        """(emotion, level) -> (478, 3) mean canonical displacement from the neutral mean.

        Raises:
            InputError: If the subject has no neutral clips (no displacements exist).
        """
        path = displacement_path(self.root, subject)
        if not path.is_file():
            raise InputError(f"subject '{subject}' has no reference displacements in "
                             f"'{self.root}': it needs prepared neutral clips")
        return load_displacements(path)

    def pairs(self, split: str | None = None) -> list[Pair]:
        """Cross-reconstruction pairs, all or those of one split."""
        return [pair for pair in read_pairs(self.root / PAIRS) if split in (None, pair.split)]

    def step_path(self, pair: Pair) -> np.ndarray:
        """(K, 2) int64 DTW path ``(step of clip_a, step of clip_b)`` over all MFCC steps of both."""
        return load_step_path(pair_path(self.root, pair.clip_a, pair.clip_b))[0]
