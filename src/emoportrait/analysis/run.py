"""Run recognizers and metrics over videos: one :class:`VideoResult` per video.

Per video: track the face (:mod:`emoportrait.face`), cut aligned crops
(:mod:`.crops`), run every recognizer, and measure sharpness and how the mouth follows
the loudness (:mod:`.metrics`); with a reference video, the landmark, mouth and image
metrics too; with SyncNet's weights, LSE-C/LSE-D.
Frame recognizers give a video-level prediction by one of three protocols:

- ``mean``: average the per-frame probabilities (default);
- ``vote``: the class most frames predict;
- ``last3``: average the last three frames (the protocol of the university
  project that judged EVP's videos: an emotion shows most at the end of a clip).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from .. import audio, face, media
from ..emotions import canonical_emotion
from ..errors import EmoportraitError, InputError
from . import metrics
from .crops import face_crop
from .labels import emotion_from_path
from .lipsync import LaggedCorrelation, track_loudness_following
from .recognizers import ClipRecognizer, FrameRecognizer
from .sharpness import CPBD_MIN_SIZE, SHARPNESS_EVERY, cpbd
from .syncnet import SyncNetHook, SyncScores


Protocol = Literal["mean", "vote", "last3"]
PROTOCOLS: tuple[str, ...] = ("mean", "vote", "last3")
CROP_SIZE = 112
"""Side of the aligned crops handed to recognizers (each resizes to its own input)."""
SYNCNET_CROP_SIZE = 224
"""Side of the face crops handed to the SyncNet hook (syncnet_python's)."""


@dataclass
class Prediction:
    """One recognizer's verdict on one video.

    Attributes:
        label: predicted class, in the recognizer's own label set.
        probabilities: ``(C,)`` video-level probabilities.
        frame_probabilities: ``(T, C)`` per-frame probabilities (frame recognizers only).
    """

    label: str
    probabilities: np.ndarray
    frame_probabilities: np.ndarray | None = None


@dataclass
class VideoResult:
    """Everything measured on one video; ``error`` is set when it could not be analysed."""

    path: Path
    truth: str | None
    frames: int = 0
    fps: float = 0.0
    predictions: dict[str, Prediction] = field(default_factory=dict)
    loudness: LaggedCorrelation | None = None
    sharpness: float = float("nan")
    comparison: metrics.VideoMetrics | None = None
    sync: SyncScores | None = None
    example_crop: np.ndarray | None = None
    error: str | None = None


def video_level(frame_probabilities: np.ndarray, protocol: Protocol) -> np.ndarray:
    """``(T, C)`` per-frame probabilities → ``(C,)`` video probabilities by ``protocol``."""
    if protocol == "mean":
        return frame_probabilities.mean(axis=0)
    if protocol == "last3":
        return frame_probabilities[-3:].mean(axis=0)
    if protocol == "vote":
        votes = np.bincount(frame_probabilities.argmax(axis=1), minlength=frame_probabilities.shape[1])
        return votes / votes.sum()
    raise InputError(f"unknown protocol '{protocol}'; choose from {', '.join(PROTOCOLS)}")


def _predict(recognizer: FrameRecognizer | ClipRecognizer, crops: np.ndarray, fps: float,
             protocol: Protocol) -> Prediction:
    labels = recognizer.info.labels
    if recognizer.info.kind == "frame":
        per_frame = recognizer.predict(crops)
        probabilities = video_level(per_frame, protocol)
        return Prediction(labels[int(np.argmax(probabilities))], probabilities, per_frame)
    probabilities = recognizer.predict_clip(crops, fps)
    return Prediction(labels[int(np.argmax(probabilities))], probabilities)


def _crops_and_sharpness(path: Path, landmarks: np.ndarray, sizes: Sequence[int]
                         ) -> tuple[list[np.ndarray], float]:
    """Decode ``path`` once more (frames are never all held: a 4K video needed 12.7 GB) for
    ``(T, S, S, 3)`` face crops at each of ``sizes`` and the mean CPBD sharpness of every
    ``SHARPNESS_EVERY``-th frame (nan for frames under ``CPBD_MIN_SIZE``).

    ``landmarks``: ``(T, 478, 3)`` pixels tracked on the frames.
    """
    crops: list[list[np.ndarray]] = [[] for _ in sizes]
    sharpness = []
    for index, frame in enumerate(itertools.islice(media.iter_frames(path), len(landmarks))):
        for size, kept in zip(sizes, crops):
            kept.append(face_crop(frame, landmarks[index], size))
        if index % SHARPNESS_EVERY == 0 and min(frame.shape[:2]) >= CPBD_MIN_SIZE:
            sharpness.append(cpbd(frame))
    return [np.stack(kept) for kept in crops], float(np.mean(sharpness)) if sharpness else float("nan")


def analyse_video(
    path: Path,
    truth: str | None,
    recognizers: Sequence[FrameRecognizer | ClipRecognizer],
    protocol: Protocol = "mean",
    reference: Path | None = None,
    syncnet: SyncNetHook | None = None,
) -> VideoResult:
    """Analyse one video; user-level problems (no face, unreadable) land in ``error``.

    The video is tracked once, per frame (:data:`~emoportrait.analysis.metrics.TRACKING`):
    the comparison with the ``reference`` takes that track as it is, the face crops and the
    loudness following its smoothed landmarks (:func:`~emoportrait.face.smoothed`).
    """
    result = VideoResult(path=path, truth=truth)
    try:
        info = media.probe(path)
        per_frame = face.track_frames(media.iter_frames(path), info.fps, metrics.TRACKING, name=str(path))
        track = face.smoothed(per_frame)
        sizes = (CROP_SIZE, SYNCNET_CROP_SIZE) if syncnet is not None and info.has_audio else (CROP_SIZE,)
        crops, sharpness = _crops_and_sharpness(path, track.landmarks, sizes)
        result.frames, result.fps = len(track), info.fps or media.STILL_FPS
        result.example_crop = crops[0][len(crops[0]) // 2]
        for recognizer in recognizers:
            result.predictions[recognizer.info.name] = _predict(recognizer, crops[0], result.fps, protocol)
        result.sharpness = sharpness
        if info.has_audio:
            result.loudness = track_loudness_following(track, path)
            if syncnet is not None:
                result.sync = syncnet.scores(crops[1], audio.load_audio(path), result.fps)
        if reference is not None:
            result.comparison = metrics.compare_videos(path, reference, generated_track=per_frame)
    except EmoportraitError as exc:  # the caller reports it (a log line here would break the progress bar)
        result.error = str(exc)
    return result


def find_videos(inputs: Sequence[Path]) -> list[Path]:
    """Video files named directly or found (recursively) in the given folders, sorted."""
    videos = []
    for item in inputs:
        if item.is_dir():
            videos += sorted(p for p in item.rglob("*")
                             if p.suffix.lower() in media.VIDEO_SUFFIXES and not media.is_hidden(p, item))
        elif item.is_file():
            videos.append(item)
        else:
            raise InputError(f"'{item}' does not exist")
    if not videos:
        raise InputError(f"no videos ({', '.join(sorted(media.VIDEO_SUFFIXES))}) found in "
                         f"{', '.join(map(str, inputs))}")
    return videos


def _labels_text(path: Path) -> str:
    """The text of a labels CSV: UTF-8 (with or without a byte-order mark), else Latin-1,
    as spreadsheets on Windows save it; a binary file is refused."""
    if not path.is_file():
        raise InputError(f"labels file '{path}' does not exist; give a CSV with columns video,emotion")
    data = path.read_bytes()
    if b"\x00" in data:
        raise InputError(f"labels file '{path}' is binary, not a CSV; give a text CSV with columns video,emotion")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_labels(path: Path, videos: Sequence[Path]) -> tuple[dict[Path, str], list[str]]:
    """Ground truth from a CSV with columns ``video,emotion``.

    ``video`` is matched against each video's path, then its file name. Returns the
    labels found and one line per problem (unknown emotion, video not found) so the
    caller can report them and go on with the rest.
    """
    reader = csv.DictReader(io.StringIO(_labels_text(path), newline=""))
    try:
        if not reader.fieldnames or not {"video", "emotion"} <= set(reader.fieldnames):
            raise InputError(f"labels file '{path}' needs a header with columns video,emotion")
        rows = list(reader)
    except csv.Error as exc:
        raise InputError(f"labels file '{path}' is not a readable CSV ({exc})") from None
    by_name = {str(video): video for video in videos} | {video.name: video for video in videos}
    labels, problems = {}, []
    for number, row in enumerate(rows, start=2):
        name = row["video"] or ""  # a short row has None there
        video = by_name.get(name) or by_name.get(Path(name).name)
        if video is None:
            problems.append(f"{path}:{number}: video '{name}' is not among the analysed videos")
            continue
        try:
            labels[video] = canonical_emotion(row["emotion"] or "")
        except InputError as exc:
            problems.append(f"{path}:{number}: {exc}")
    return labels, problems


def ground_truth(videos: Sequence[Path], labels_file: Path | None
                 ) -> tuple[dict[Path, str | None], list[str], str]:
    """Each video's MEAD emotion: from the labels file, else from its MEAD-style path.

    Returns the truths, one line per problem of the labels file, and a line saying
    where the truths came from (the user should know a file name was read as a label).
    """
    labels, problems = read_labels(labels_file, videos) if labels_file else ({}, [])
    from_paths = {video: emotion_from_path(video) for video in videos if video not in labels}
    truths = {video: labels.get(video) or from_paths.get(video) for video in videos}
    named = sum(emotion is not None for emotion in from_paths.values())
    parts = [f"{len(labels)} from {labels_file}"] if labels_file else []
    parts.append(f"{named} from emotion names in the file paths (MEAD style, e.g. M003_angry_level_3_001.mp4)")
    parts.append(f"{len(videos) - len(labels) - named} unlabelled")
    return truths, problems, "ground truth: " + ", ".join(parts)


def analyse_videos(
    videos: Sequence[Path],
    truths: dict[Path, str | None],
    recognizers: Sequence[FrameRecognizer | ClipRecognizer],
    protocol: Protocol = "mean",
    references: dict[Path, Path] | None = None,
    progress: bool = False,
    syncnet: SyncNetHook | None = None,
) -> list[VideoResult]:
    """:func:`analyse_video` over many videos, with a progress bar."""
    references = references or {}
    return [
        analyse_video(video, truths.get(video), recognizers, protocol, references.get(video), syncnet)
        for video in tqdm(videos, desc="analysing", unit="video", disable=not progress)
    ]
