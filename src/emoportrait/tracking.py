"""Track a face and recover its pose: face tracker + reference face + geometry.

This composes :mod:`emoportrait.face` and :mod:`emoportrait.geometry` into what
``emoportrait track`` saves: landmarks, pose per frame, the subject's reference
face and the frontalised (canonical) landmarks.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import media
from .errors import InputError
from .face import RIGID, FaceTrack, TrackerConfig, track_file
from .face.reference import build_reference_face
from .geometry import Pose, estimate_pose, frontalize

NPZ_FORMAT = "emoportrait.track/1"


@dataclass
class TrackResult:
    """A tracked face with its pose.

    Attributes:
        track: the :class:`FaceTrack` (``(T, 478, 3)`` landmarks in pixels, masks).
        reference: ``(478, 3)`` float64 frontal reference face, canonical units.
        pose: per-frame similarity pose, canonical → image pixels.
        canonical: ``(T, 478, 3)`` float32 frontalised landmarks, canonical units.
    """

    track: FaceTrack
    reference: np.ndarray
    pose: Pose
    canonical: np.ndarray


def analyse(track: FaceTrack) -> TrackResult:
    """Reference face, pose and frontalised landmarks of a track."""
    reference = build_reference_face(track.landmarks, track.found)
    pose = estimate_pose(track.landmarks, reference, indices=RIGID)
    return TrackResult(track, reference, pose, frontalize(track.landmarks, pose))


def track_and_analyse(
    path: str | Path, config: TrackerConfig = TrackerConfig(), progress: bool = False
) -> TrackResult:
    """Track the face in a video or image file and recover its pose."""
    return analyse(track_file(path, config, progress=progress))


def save(path: str | Path, result: TrackResult) -> None:
    """Write ``result`` as a compressed ``.npz`` (atomically).

    Arrays: ``landmarks`` (T,478,3) px, ``found``/``interpolated`` (T,) bool,
    ``confidence`` (T,), ``rotation`` (T,3,3), ``scale`` (T,), ``translation`` (T,3) px,
    ``euler_deg`` (T,3) yaw/pitch/roll, ``reference`` (478,3), ``canonical`` (T,478,3),
    ``long_gaps`` (G,2) frame ranges, and ``meta`` (a JSON string: format, fps, size).
    """
    track = result.track
    meta = {"format": NPZ_FORMAT, "fps": track.fps, "size": list(track.size)}
    with media.atomic_output(path) as temp:
        with open(temp, "wb") as handle:
            np.savez_compressed(
                handle,
                landmarks=track.landmarks,
                found=track.found,
                interpolated=track.interpolated,
                confidence=track.confidence,
                rotation=result.pose.rotation,
                scale=result.pose.scale,
                translation=result.pose.translation,
                euler_deg=result.pose.euler_degrees,
                reference=result.reference,
                canonical=result.canonical,
                long_gaps=np.array(track.long_gaps, np.int64).reshape(-1, 2),
                meta=np.array(json.dumps(meta)),
            )


def load(path: str | Path) -> TrackResult:
    """Read a file written by :func:`save`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"track file '{path}' does not exist; make one with 'emoportrait track'")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != NPZ_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}")
            track = FaceTrack(
                landmarks=data["landmarks"],
                found=data["found"],
                interpolated=data["interpolated"],
                confidence=data["confidence"],
                fps=meta["fps"],
                size=tuple(meta["size"]),
                long_gaps=[tuple(gap) for gap in data["long_gaps"].tolist()],
            )
            pose = Pose(data["rotation"], data["scale"], data["translation"])
            return TrackResult(track, data["reference"], pose, data["canonical"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"'{path}' is not an emoportrait track file ({exc}); make one with 'emoportrait track'"
        ) from exc
