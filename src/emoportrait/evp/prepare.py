"""EVP data preparation: per-clip features, then splits, subject models and DTW pairs.

``prepare(DATA_ROOT, OUT)`` runs in two phases (file layout: :mod:`.cache`):

1. **Clips.** Each clip found by :func:`emoportrait.evp.layout.discover` is read,
   its face tracked and frontalised (:mod:`emoportrait.tracking`) and its speech
   turned into EVP's MFCC windows, loudness and silence (:mod:`emoportrait.audio`),
   all saved to ``clips/<clip_id>.npz``. A clip that cannot be used (corrupt file,
   no face, speech too short or silent, audio and video of different lengths) is
   logged and recorded as ``failed: <reason>``; it never stops the run. A clip
   whose file already exists is skipped, so an interrupted run resumes where it
   stopped (failed clips are tried again). ``shard=(i, n)`` prepares only the clips
   with index ``k % n == i`` (sorted by id) and writes ``manifest.part<i>of<n>.csv``.
2. **Dataset** (a call with ``n == 1``, or :func:`finalize` after all shards):
   splits, per-subject landmark PCA and rest identity, reference displacements,
   cross-reconstruction pairs aligned by DTW, ``manifest.csv`` and ``summary.json``.

Splits are subject-disjoint when at least ``min_split_subjects`` subjects have
prepared clips; otherwise whole sentence ids are held out (the same id in every
subject), so one sentence is never in two splits. A subject's models are fitted on
its training clips, or on all its clips when the subject is held out whole.

Clips are resampled to the model's frame rate (``PrepareConfig.fps``, 25 as in EVP:
MEAD is filmed at 30). A clip whose video has no sound and no separate audio file is
kept as *landmark-only*: it feeds its subject's PCA, rest identity and reference
displacements, and no stage that needs speech.

Pairs: DTW aligns the two clips' MFCC steps (100 per second); the step path is saved,
and the datasets warp B onto A's timeline along it (:mod:`.datasets`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import audio, media, tracking
from ..alignment import MOUTH_FALLOFF
from ..config import load_config, save_config
from ..errors import InputError
from ..face import GROUPS, TrackerConfig, inner_mouth_opening, track_frames
from . import cache
from .cache import ClipFeatures, ManifestRow, Pair, SubjectModel
from .layout import ClipSource, discover

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareConfig:
    """Numbers of the data preparation (stored as ``config.yaml`` in the cache)."""

    n_components: int = 16              # landmark PCA components per subject (EVP keeps 16)
    val_fraction: float = 0.1           # share of subjects (or sentence ids) held out for validation
    test_fraction: float = 0.1          # share of subjects (or sentence ids) held out for testing
    min_split_subjects: int = 3         # subjects with prepared clips needed for subject-disjoint splits
    split_seed: int = 0                 # seeds which subjects / sentence ids are held out
    min_found_fraction: float = 0.5     # a clip fails if the face is detected in fewer of its frames
    max_length_mismatch_s: float = 0.5  # a clip fails if its audio and video lengths differ more (s)
    fps: float = 25.0                   # model frame rate: clips are resampled to it (EVP: MEAD's 30 → 25)

    def __post_init__(self) -> None:
        if self.n_components < 1:
            raise InputError(f"n_components={self.n_components} must be at least 1")
        for name in ("val_fraction", "test_fraction", "min_found_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name}={getattr(self, name)} must be between 0 and 1")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise InputError("val_fraction + test_fraction must be below 1 (something must train)")
        if self.min_split_subjects < 3:
            raise InputError(f"min_split_subjects={self.min_split_subjects} must be at least 3 "
                             "(one subject each for train, val and test)")
        if not self.max_length_mismatch_s > 0:
            raise InputError(f"max_length_mismatch_s={self.max_length_mismatch_s} must be positive")
        if not self.fps > 0:
            raise InputError(f"fps={self.fps} must be positive")


@dataclass
class DatasetSummary:
    """The dataset-level outcome, also written to ``summary.json``.

    Attributes:
        n_clips: Clips in the manifest.
        n_ok: Clips prepared.
        failures: clip id -> reason, for the clips that failed.
        split_mode: ``subject`` (subject-disjoint) or ``sentence`` (sentence ids held out).
        split_counts: Prepared clips per split.
        subjects: Subjects with a model.
        subjects_without_neutral: Subjects whose identity had to come from emotional clips.
        n_pairs: Cross-reconstruction pairs (ordered: A->B and B->A both count).
        n_landmark_only: Prepared clips without speech (videos without sound): they feed
            the subject models (PCA, identity, reference displacements) only.
    """

    n_clips: int
    n_ok: int
    failures: dict[str, str]
    split_mode: str
    split_counts: dict[str, int]
    subjects: list[str]
    subjects_without_neutral: list[str]
    n_pairs: int
    n_landmark_only: int = 0


@dataclass
class PrepareSummary:
    """What one :func:`prepare` call did.

    Attributes:
        out: The cache folder.
        shard: ``(i, n)`` of this call.
        n_clips: Clips of this shard.
        n_prepared: Clips prepared by this call (including those that failed).
        n_skipped: Clips already in the cache.
        failures: clip id -> reason, for this shard's clips that failed.
        seconds: Wall time of the call.
        clip_seconds: Wall time per prepared clip (in its worker), in order.
        dataset: The dataset-level products, or None for a shard of several.
    """

    out: Path
    shard: tuple[int, int]
    n_clips: int
    n_prepared: int
    n_skipped: int
    failures: dict[str, str]
    seconds: float
    clip_seconds: list[float] = field(default_factory=list)
    dataset: DatasetSummary | None = None

    def describe(self) -> str:
        """One line for the command line."""
        per_clip = (f" ({np.mean(self.clip_seconds):.1f} s per clip)" if self.clip_seconds else "")
        text = (f"prepared {self.n_prepared} of {self.n_clips} clips in {self.seconds:.1f} s"
                f"{per_clip}, {self.n_skipped} already cached, {len(self.failures)} failed")
        if self.dataset is None:
            index, count = self.shard
            return (f"{text}; shard {index}/{count} listed in {cache.part_path(self.out, index, count)}; "
                    f"when all shards are done, merge with: emoportrait prepare DATA_ROOT --out {self.out}")
        data = self.dataset
        splits = ", ".join(f"{name} {data.split_counts.get(name, 0)}" for name in cache.SPLITS)
        silent = (f"; {data.n_landmark_only} without sound, used for the landmark models only"
                  if data.n_landmark_only else "")
        return (f"{text}; {data.n_ok} clips ready ({splits}; split by {data.split_mode}), "
                f"{len(data.subjects)} subjects, {data.n_pairs} pairs in {self.out}{silent}")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``, checked (``0 <= i < n``)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise InputError(f"shard '{text}' must be written i/n, e.g. 0/4")
    return _checked_shard((int(match.group(1)), int(match.group(2))))


def _checked_shard(shard: tuple[int, int]) -> tuple[int, int]:
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise InputError(f"shard {index}/{count} is not valid; use i/n with 0 <= i < n")
    return index, count


# ---------------------------------------------------------------------- one clip


@dataclass
class ClipOutcome:
    """A clip's manifest row, whether it was already cached, how long it took (s), and the
    traceback of an unexpected error (empty otherwise)."""

    row: ManifestRow
    skipped: bool
    seconds: float
    details: str = ""


def _has_speech(source: ClipSource, video: media.VideoInfo) -> bool:
    """False for a clip whose only audio source is a video without sound (a landmark-only
    clip); a separate audio file always counts as speech (and must then be usable)."""
    return source.audio != source.video or video.has_audio


def _features(source: ClipSource, config: PrepareConfig) -> ClipFeatures:
    """Track, frontalise and describe one clip; InputError says why it is unusable.

    The track is resampled to ``config.fps`` (:meth:`~emoportrait.face.FaceTrack.at_rate`)
    and the speech is described on that timeline. A clip without speech keeps its
    landmarks only (its MFCC, loudness and silence arrays are empty).
    """
    info = media.probe(source.video)
    if info.fps is None:
        raise InputError(f"'{source.video}' is a still image; a clip must be a video")
    speech = _has_speech(source, info)
    audio_config = audio.AudioConfig()
    if speech:
        samples = audio.load_audio(source.audio, audio_config)
        audio.check_speech(samples, audio_config, name=str(source.audio))
    track = track_frames(media.iter_frames(source.video), info.fps, TrackerConfig(),
                         name=str(source.video), total=info.n_frames)
    found = float(track.found.mean())
    if found < config.min_found_fraction:
        raise InputError(f"the face is found in only {found:.0%} of the {len(track)} frames of "
                         f"'{source.video}'; at least {config.min_found_fraction:.0%} are needed")
    video_s = len(track) / info.fps
    track = track.at_rate(config.fps)
    n_frames = len(track)
    if speech:
        audio_s = len(samples) / audio_config.sample_rate
        if abs(audio_s - video_s) > config.max_length_mismatch_s:
            raise InputError(f"the audio '{source.audio}' lasts {audio_s:.2f} s but the video "
                             f"'{source.video}' {video_s:.2f} s; they must belong together")
        described = dict(mfcc_windows=audio.mfcc_windows(samples, config.fps, audio_config, n_frames),
                         mfcc=audio.mfcc(samples, audio_config),
                         loudness=audio.frame_loudness(samples, config.fps, audio_config, n_frames),
                         silent=audio.silence_mask(samples, config.fps, audio_config, n_frames))
    else:
        coefficients = audio_config.n_mfcc - audio_config.drop_c0
        described = dict(mfcc_windows=np.zeros((0, audio_config.window_steps, coefficients), np.float32),
                         mfcc=np.zeros((0, coefficients), np.float32),
                         loudness=np.zeros(0, np.float32), silent=np.zeros(0, bool))
    result = tracking.analyse(track)
    return ClipFeatures(
        clip_id=source.clip_id, subject=source.subject, emotion=source.emotion,
        level=source.level, sentence=source.sentence, fps=config.fps, **described,
        landmarks=track.landmarks.astype(np.float32),
        canonical=result.canonical.astype(np.float32),
        rotation=result.pose.rotation.astype(np.float32),
        scale=result.pose.scale.astype(np.float32),
        translation=result.pose.translation.astype(np.float32),
        found=track.found,
    )


def _row(source: ClipSource, n_frames: int, fps: float, status: str, speech: bool = True) -> ManifestRow:
    """The clip's manifest row; a landmark-only clip (no ``speech``) has an empty ``audio``."""
    return ManifestRow(
        clip_id=source.clip_id, subject=source.subject, emotion=source.emotion,
        level=source.level, sentence=source.sentence, n_frames=n_frames, fps=fps, split="",
        status=status, video=str(source.video), audio=str(source.audio) if speech else "",
    )


def prepare_clip(source: ClipSource, out: Path, config: PrepareConfig = PrepareConfig()) -> ClipOutcome:
    """Prepare one clip into ``out/clips/<clip_id>.npz``, or reuse the file if complete.

    Never raises for a bad clip: the outcome's row then has status ``failed: <reason>``
    (unexpected errors also carry their traceback).
    """
    started = time.perf_counter()
    path = cache.clip_path(out, source.clip_id)
    cached = cache.clip_frames(path, source.clip_id)
    if cached is not None:
        n_frames, fps, speech = cached
        return ClipOutcome(_row(source, n_frames, fps, cache.OK, speech), True, 0.0)
    speech = True
    try:
        features = _features(source, config)
        speech = features.has_speech
        cache.save_clip(path, features, video=str(source.video), audio=str(source.audio) if speech else "")
        status, details = cache.OK, ""
        n_frames, fps = features.n_frames, features.fps
    except InputError as exc:
        status, details, n_frames, fps = f"failed: {_one_line(str(exc))}", "", 0, 0.0
    except Exception as exc:  # a bug shows in the log and summary; it must not stop the run
        status = f"failed: {type(exc).__name__}: {_one_line(str(exc))}"
        details, n_frames, fps = traceback.format_exc(), 0, 0.0
    return ClipOutcome(_row(source, n_frames, fps, status, speech), False,
                       time.perf_counter() - started, details)


def _one_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no reason given"


def _prepare_task(task: tuple[ClipSource, Path, PrepareConfig]) -> ClipOutcome:
    """:func:`prepare_clip` of one ``(source, out, config)`` task (picklable for workers)."""
    return prepare_clip(*task)


# --------------------------------------------------------------------- execution


def _run(function: Callable[[Any], Any], tasks: Sequence[Any], workers: int, progress: bool,
         desc: str) -> list[Any]:
    """``[function(task) for task in tasks]``, in ``workers`` spawned processes if > 1."""
    if workers == 1 or len(tasks) <= 1:
        return [function(task) for task in tqdm(tasks, desc=desc, unit="item", disable=not progress)]
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)),
                             mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(function, task) for task in tasks]
        for _ in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="item",
                      disable=not progress):
            pass
        return [future.result() for future in futures]


def _claim(out: Path, config: PrepareConfig) -> None:
    """Record ``config`` in ``out/config.yaml``, refusing a cache made with other settings."""
    path = out / cache.CONFIG
    if path.is_file():
        if load_config(PrepareConfig, path) != config:
            raise InputError(f"'{out}' was prepared with other settings (see '{path}'); "
                             "use the same settings or a new --out folder")
        return
    with media.atomic_output(path) as temp:
        save_config(config, temp)


def prepare(
    data_root: str | Path,
    out: str | Path,
    config: PrepareConfig = PrepareConfig(),
    shard: tuple[int, int] = (0, 1),
    workers: int = 1,
    progress: bool = False,
    sentence_map: str | Path | None = None,
    sentences_by_number: bool = False,
) -> PrepareSummary:
    """Prepare a dataset (or one shard of it) into the cache folder ``out``.

    Args:
        data_root: Dataset in a layout of :mod:`emoportrait.evp.layout`.
        sentence_map, sentences_by_number: how MEAD clips are matched to sentences
            (:func:`~emoportrait.evp.layout.discover`); the manifest records the result.
        out: Cache folder (created; an existing cache is resumed).
        config: Preparation settings; must match those an existing cache was made with.
        shard: ``(i, n)``: prepare the clips with index ``k % n == i``; with ``n > 1``
            only the clips and ``manifest.part<i>of<n>.csv`` are written (merge with a
            call with ``n == 1`` or :func:`finalize`).
        workers: Processes preparing clips and pairs in parallel (spawned, so a script
            calling this with ``workers > 1`` needs the ``if __name__ == "__main__":`` guard).
        progress: Show progress bars on stderr.

    Raises:
        InputError: Bad root, shard, workers or settings (never for a single bad clip).
    """
    started = time.perf_counter()
    index, count = _checked_shard(shard)
    if workers < 1:
        raise InputError(f"workers={workers} must be at least 1")
    sources = discover(data_root, sentence_map, sentences_by_number)[index::count]
    out = Path(out)
    _claim(out, config)
    outcomes = _run(_prepare_task, [(source, out, config) for source in sources], workers,
                    progress, "preparing clips")
    failures = {}
    for outcome in outcomes:
        if not outcome.row.ok:
            reason = outcome.row.status.removeprefix("failed: ")
            failures[outcome.row.clip_id] = reason
            logger.warning("clip %s failed: %s", outcome.row.clip_id, reason)
            if outcome.details:
                logger.debug("clip %s: %s", outcome.row.clip_id, outcome.details)
    rows = [outcome.row for outcome in outcomes]
    dataset = None
    if count > 1:
        cache.write_manifest(cache.part_path(out, index, count), rows)
    else:
        dataset = _finish(out, rows, config, workers, progress)
    return PrepareSummary(
        out=out, shard=(index, count), n_clips=len(sources),
        n_prepared=sum(not outcome.skipped for outcome in outcomes),
        n_skipped=sum(outcome.skipped for outcome in outcomes), failures=failures,
        seconds=time.perf_counter() - started,
        clip_seconds=[outcome.seconds for outcome in outcomes if not outcome.skipped],
        dataset=dataset,
    )


def finalize(out: str | Path, workers: int = 1, progress: bool = False) -> DatasetSummary:
    """Merge the shards' manifest parts of ``out`` and make the dataset-level products.

    Raises:
        InputError: If ``out`` holds no shards, shards of different counts, or misses one.
    """
    out = Path(out)
    config_path = out / cache.CONFIG
    if not config_path.is_file():
        raise InputError(f"'{out}' holds no prepared shards; "
                         f"run: emoportrait prepare DATA_ROOT --out {out} --shard i/n")
    config = load_config(PrepareConfig, config_path)
    return _finish(out, _merged_parts(out), config, workers, progress)


def _merged_parts(out: Path) -> list[ManifestRow]:
    """The rows of all ``manifest.part<i>of<n>.csv``, which must be one complete set."""
    parts: dict[int, dict[int, Path]] = defaultdict(dict)
    for path in out.glob("manifest.part*of*.csv"):
        match = re.fullmatch(r"manifest\.part(\d+)of(\d+)\.csv", path.name)
        if match:
            parts[int(match.group(2))][int(match.group(1))] = path
    if len(parts) != 1:
        found = "none" if not parts else f"shards of {sorted(parts)} parts"
        raise InputError(f"'{out}' must hold the manifest parts of one sharded run ({found}); "
                         "delete stale manifest.part*.csv files and prepare the shards again")
    ((count, paths),) = parts.items()
    missing = sorted(set(range(count)) - set(paths))
    if missing:
        raise InputError(f"'{out}' lacks shard(s) {', '.join(f'{i}/{count}' for i in missing)}; "
                         f"run: emoportrait prepare DATA_ROOT --out {out} --shard {missing[0]}/{count}")
    rows = sorted((row for path in paths.values() for row in cache.read_manifest(path)),
                  key=lambda row: row.clip_id)
    return rows


# ----------------------------------------------------------------------- dataset


def _held_out(names: list[str], config: PrepareConfig) -> dict[str, str]:
    """Name -> ``val`` / ``test`` for the names held out of training (others train).

    At least one name goes to test (and then one to val) whenever at least one name
    would still be left for training.
    """
    n = len(names)
    n_test = max(1, round(n * config.test_fraction)) if n >= 2 and config.test_fraction > 0 else 0
    n_val = (max(1, round(n * config.val_fraction))
             if n - n_test >= 2 and config.val_fraction > 0 else 0)
    order = np.random.default_rng(config.split_seed).permutation(n)
    chosen = [names[k] for k in order]
    return {**{name: "test" for name in chosen[:n_test]},
            **{name: "val" for name in chosen[n_test:n_test + n_val]}}


def assign_splits(rows: list[ManifestRow], config: PrepareConfig) -> tuple[list[ManifestRow], str]:
    """Give every prepared clip a split; failed clips get none.

    Returns:
        (the rows with ``split`` set, the mode: ``subject`` if the splits are
        subject-disjoint, ``sentence`` if whole sentence ids are held out).
    """
    ok = [row for row in rows if row.ok]
    subjects = sorted({row.subject for row in ok})
    mode = "subject" if len(subjects) >= config.min_split_subjects else "sentence"
    key = (lambda row: row.subject) if mode == "subject" else (lambda row: row.sentence)
    held = _held_out(sorted({key(row) for row in ok}), config)
    return [replace(row, split=held.get(key(row), "train") if row.ok else "") for row in rows], mode


def _rest_identity(mean_face: np.ndarray, closed_face: np.ndarray) -> np.ndarray:
    """The mean face with its mouth region from the most-closed frame.

    As :func:`emoportrait.alignment.rest_identity`: the blend weight is a Gaussian
    (``MOUTH_FALLOFF``) of each point's distance from the mean face's lips.
    Both faces and the result are (478, 3) canonical.
    """
    lips = mean_face[GROUPS["lips"]]
    distance = np.linalg.norm(mean_face[:, None, :] - lips[None], axis=-1).min(axis=1)
    weight = np.exp(-0.5 * (distance / MOUTH_FALLOFF) ** 2)[:, None]
    return (1 - weight) * mean_face + weight * closed_face


def _pca(total: np.ndarray, outer: np.ndarray, count: int, n_components: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """PCA from running sums: (mean (D,), components (K, D), variances (K,), total variance).

    ``total`` is the (D,) sum and ``outer`` the (D, D) sum of outer products of
    ``count`` samples. Each component's sign makes its largest entry positive.
    """
    mean = total / count
    covariance = (outer - count * np.outer(mean, mean)) / max(count - 1, 1)
    variances, vectors = np.linalg.eigh(covariance)
    order = np.argsort(variances)[::-1][:n_components]
    components = vectors[:, order].T
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    return mean, components * signs[:, None], np.maximum(variances[order], 0.0), float(np.trace(covariance))


class _FrameSums:
    """Running sums over a subject's found canonical frames, one clip at a time.

    Keeps the PCA moments of the flattened xy, the (478, 3) sum per (emotion,
    level), and the identity frames' sum and most-closed frame.
    """

    def __init__(self) -> None:
        self.count, self.total, self.outer = 0, 0.0, 0.0
        self.sums: dict[tuple[str, int], np.ndarray] = {}
        self.counts: dict[tuple[str, int], int] = defaultdict(int)
        self.identity_sum, self.identity_count = 0.0, 0
        self.closed, self.closed_gap = None, math.inf

    def add(self, key: tuple[str, int], faces: np.ndarray, identity: bool) -> None:
        """Add one clip's (F, 478, 3) frames of (emotion, level) ``key``."""
        flat = faces[..., :2].reshape(len(faces), -1)
        self.count += len(faces)
        self.total = self.total + flat.sum(axis=0)
        self.outer = self.outer + flat.T @ flat
        self.sums[key] = self.sums.get(key, 0.0) + faces.sum(axis=0)
        self.counts[key] += len(faces)
        if identity and len(faces):
            self.identity_sum = self.identity_sum + faces.sum(axis=0)
            self.identity_count += len(faces)
            gaps = inner_mouth_opening(faces)
            if gaps.min() < self.closed_gap:
                self.closed, self.closed_gap = faces[gaps.argmin()], float(gaps.min())

    def model(self, subject: str, has_neutral: bool, n_components: int) -> SubjectModel:
        """The subject's PCA and rest identity (see :class:`SubjectModel`)."""
        mean, components, variances, total_variance = _pca(self.total, self.outer, self.count,
                                                           n_components)
        identity = _rest_identity(self.identity_sum / self.identity_count, self.closed)
        xy = identity[:, :2].reshape(-1)
        return SubjectModel(subject=subject, mean=mean, components=components,
                            explained_variance=variances, total_variance=total_variance,
                            identity=identity, example_code=components @ (xy - mean),
                            has_neutral=has_neutral)

    def displacements(self) -> tuple[dict[tuple[str, int], np.ndarray], dict[tuple[str, int], int]]:
        """(emotion, level) -> mean (478, 3) offset from the neutral mean, and frame counts."""
        neutral = [key for key in self.sums if key[0] == "neutral"]
        neutral_mean = sum(self.sums[key] for key in neutral) / sum(self.counts[key] for key in neutral)
        emotional = [key for key in self.sums if key[0] != "neutral"]
        return ({key: self.sums[key] / self.counts[key] - neutral_mean for key in emotional},
                {key: self.counts[key] for key in emotional})


def _subject_products(out: Path, subject: str, rows: list[ManifestRow], config: PrepareConfig) -> bool:
    """Fit and save one subject's model and reference displacements; True if it has neutral clips.

    ``rows`` are the subject's prepared clips; its training clips are used, or all
    of them when the subject is held out whole. The identity comes from the neutral
    ones among them, or from all of them (with a warning) when there are none.
    """
    model_rows = [row for row in rows if row.split == "train"] or rows
    has_neutral = any(row.emotion == "neutral" for row in model_rows)
    if not has_neutral:
        logger.warning("subject %s has no neutral clips: its identity is taken from all its "
                       "clips, and stages that need a neutral face will refuse it", subject)
    sums = _FrameSums()
    for row in model_rows:
        arrays = cache.load_clip_arrays(cache.clip_path(out, row.clip_id), ("canonical", "found"))
        faces = arrays["canonical"][arrays["found"]].astype(np.float64)
        sums.add((row.emotion, row.level), faces, identity=row.emotion == "neutral" or not has_neutral)
    cache.save_subject(cache.subject_path(out, subject), sums.model(subject, has_neutral,
                                                                    config.n_components))
    if has_neutral:
        cache.save_displacements(cache.displacement_path(out, subject), *sums.displacements())
    return has_neutral


def _pair_task(task: tuple[Path, list[ManifestRow]]) -> list[Pair]:
    """Align every two clips of one (subject, sentence) group with different emotions.

    Both directions are saved (A -> B and B -> A, from one DTW); complete pair files
    of an earlier run are reused.
    """
    out, rows = task
    mfccs: dict[str, np.ndarray] = {}

    def mfcc(row: ManifestRow) -> np.ndarray:
        if row.clip_id not in mfccs:
            path = cache.clip_path(out, row.clip_id)
            mfccs[row.clip_id] = cache.load_clip_arrays(path, ("mfcc",))["mfcc"]
        return mfccs[row.clip_id]

    pairs = []
    for a, b in combinations(rows, 2):
        if a.emotion == b.emotion:
            continue
        forward = cache.pair_path(out, a.clip_id, b.clip_id)
        backward = cache.pair_path(out, b.clip_id, a.clip_id)
        cost = _cached_cost(forward, len(mfcc(a)))
        if cost is None or _cached_cost(backward, len(mfcc(b))) is None:
            cost = _align_pair(mfcc(a), mfcc(b), forward, backward)
        pairs += [Pair(a.clip_id, b.clip_id, a.split, cost), Pair(b.clip_id, a.clip_id, a.split, cost)]
    return pairs


def _align_pair(mfcc_a: np.ndarray, mfcc_b: np.ndarray, forward: Path, backward: Path) -> float:
    """DTW of two clips' (S, 12) MFCCs; saves the path both ways and returns the cost."""
    result = audio.dtw_align(mfcc_a, mfcc_b, audio.AudioConfig())
    cache.save_step_path(forward, result.path, result.cost)
    cache.save_step_path(backward, np.ascontiguousarray(result.path[:, ::-1]), result.cost)
    return result.cost


def _cached_cost(path: Path, n_steps: int) -> float | None:
    """The cost stored in a complete pair file whose path ends at step ``n_steps - 1``, else None."""
    if not path.is_file():
        return None
    try:
        step_path, cost = cache.load_step_path(path)
    except InputError:
        return None
    return cost if len(step_path) and step_path[-1, 0] == n_steps - 1 else None


def _finish(out: Path, rows: list[ManifestRow], config: PrepareConfig, workers: int,
            progress: bool) -> DatasetSummary:
    """Splits, subject models, displacements, pairs, summary; ``manifest.csv`` last."""
    rows, mode = assign_splits(sorted(rows, key=lambda row: row.clip_id), config)
    by_subject: dict[str, list[ManifestRow]] = defaultdict(list)
    groups: dict[tuple[str, str], list[ManifestRow]] = defaultdict(list)
    for row in rows:
        if row.ok:
            by_subject[row.subject].append(row)
            if row.has_speech:  # landmark-only clips feed the subject models, not the pairs
                groups[row.subject, row.sentence].append(row)
    without_neutral = [subject for subject, subject_rows in sorted(by_subject.items())
                       if not _subject_products(out, subject, subject_rows, config)]
    pair_lists = _run(_pair_task, [(out, group) for _, group in sorted(groups.items())],
                      workers, progress, "aligning pairs")
    pairs = [pair for pair_list in pair_lists for pair in pair_list]
    cache.write_pairs(out / cache.PAIRS, pairs)
    split_counts = defaultdict(int)
    for row in rows:
        if row.ok:
            split_counts[row.split] += 1
    summary = DatasetSummary(
        n_clips=len(rows), n_ok=sum(row.ok for row in rows),
        failures={row.clip_id: row.status.removeprefix("failed: ") for row in rows if not row.ok},
        split_mode=mode, split_counts=dict(split_counts), subjects=sorted(by_subject),
        subjects_without_neutral=without_neutral, n_pairs=len(pairs),
        n_landmark_only=sum(row.ok and not row.has_speech for row in rows),
    )
    with media.atomic_output(out / cache.SUMMARY) as temp:
        temp.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    cache.write_manifest(out / cache.MANIFEST, rows)
    return summary
