"""Dense 3D face landmark tracking with MediaPipe face mesh.

:func:`track_frames` turns a stream of ``(H, W, 3)`` uint8 RGB frames into a
:class:`FaceTrack`: ``(T, 478, 3)`` float32 landmarks in pixels of the source frame
(x right, y down, z depth scaled like x, larger = farther from the camera), a
per-frame confidence and found-mask, with short gaps interpolated, long gaps held
and reported, and optional zero-lag One-Euro smoothing.

One face is followed: the largest and most central one where tracking starts, then
the face that overlaps it most in the next frames, so a second person entering the
view never steals the track. Faces too small for the mesh's own detector (a wide shot,
a large photo) are found on tiles and meshed on a crop (:mod:`.search`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from mediapipe.python.solutions import face_detection as _mp_detection
from mediapipe.python.solutions import face_mesh as _mp_mesh
from tqdm import tqdm

from .. import media
from . import search
from ..errors import NoFaceError
from .landmarks import N_LANDMARKS, rigid_radius
from .smoothing import fill_gaps, one_euro_zero_phase


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of :func:`track_frames`.

    ``confidence`` of a frame is the face detector's score for the tracked face;
    where the detector misses a face that the mesh still tracks, it is
    ``min_tracking_confidence`` (the mesh's own acceptance threshold).
    """

    max_faces: int = 4                   # faces the mesh looks for before one is chosen
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    min_overlap: float = 0.2             # IoU with the last box to stay the same face
    max_gap_s: float = 0.2               # longer gaps are held and reported, not interpolated
    # Zero-lag One-Euro filter over the track, in face-size units. Measured on a
    # rendered talking face (the astronaut at 512², driven by the procedural driver):
    # these values keep the lip-opening correlation with the truth at 0.96 (raw 0.97,
    # the textbook d_cutoff of 1 Hz drops it to 0.78) while cutting still-face
    # jitter to 18 % of the raw tracker's.
    smooth: bool = True
    smooth_min_cutoff_hz: float = 1.5
    smooth_beta: float = 10.0            # per (face size per second)
    smooth_d_cutoff_hz: float = 5.0      # the speed estimate must follow 4-6 Hz syllables


@dataclass
class FaceTrack:
    """One face followed through a video (or a still image, ``T = 1``).

    Attributes:
        landmarks: ``(T, 478, 3)`` float32, pixels of the source frame.
        found: ``(T,)`` bool, the face was seen in that frame.
        interpolated: ``(T,)`` bool, filled linearly across a short gap.
        confidence: ``(T,)`` float32 in [0, 1], 0 where not found.
        fps: frames per second, ``None`` for a still image.
        size: ``(width, height)`` of the frames in pixels.
        long_gaps: ``[start, end)`` frame ranges where the face was lost for longer
            than ``max_gap_s`` (or at the ends); landmarks there hold the nearest
            found frame.
    """

    landmarks: np.ndarray
    found: np.ndarray
    interpolated: np.ndarray
    confidence: np.ndarray
    fps: float | None
    size: tuple[int, int]
    long_gaps: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.landmarks)

    @property
    def in_view(self) -> np.ndarray:
        """``(T,)`` bool: the face was seen, or is interpolated across a short gap; False
        inside the ``long_gaps``, where the landmarks only hold a frame seen elsewhere."""
        mask = np.ones(len(self), bool)
        for start, end in self.long_gaps:
            mask[start:end] = False
        return mask

    def head(self, count: int) -> FaceTrack:
        """The track of its first ``count`` frames."""
        gaps = [(start, min(end, count)) for start, end in self.long_gaps if start < count]
        return FaceTrack(self.landmarks[:count], self.found[:count], self.interpolated[:count],
                         self.confidence[:count], self.fps, self.size, gaps)

    def at_rate(self, fps: float) -> FaceTrack:
        """The track resampled to ``fps``: each new frame (centred at ``(k + 0.5) / fps`` s)
        takes the frame nearest its time, as ffmpeg's ``-r`` does (frames are dropped or
        repeated, never blended). A still image, or a track already at ``fps``, is returned
        as is."""
        if self.fps is None or abs(self.fps - fps) < 1e-6 * fps:
            return self
        count = max(1, round(len(self) * fps / self.fps))
        index = np.clip(np.round((np.arange(count) + 0.5) * self.fps / fps - 0.5).astype(int), 0, len(self) - 1)
        gaps = [(int(np.searchsorted(index, start)), int(np.searchsorted(index, end))) for start, end in self.long_gaps]
        return FaceTrack(self.landmarks[index], self.found[index], self.interpolated[index],
                         self.confidence[index], fps, self.size, [gap for gap in gaps if gap[1] > gap[0]])


def _box_of(points: np.ndarray) -> np.ndarray:
    """``(N, 2+)`` points → ``(4,)`` box ``x0, y0, x1, y1``."""
    return np.concatenate([points[:, :2].min(axis=0), points[:, :2].max(axis=0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return float(inter / union) if union > 0 else 0.0


def _prominence(box: np.ndarray, width: int, height: int) -> float:
    """Larger and more central faces score higher."""
    area = (box[2:] - box[:2]).prod() / (width * height)
    centre = (box[:2] + box[2:]) / 2
    offset = np.linalg.norm((centre - (width / 2, height / 2)) / (width / 2, height / 2)) / np.sqrt(2)
    return float(area * (1.0 - 0.5 * offset))


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[TextIO]:
    """Silence the C++ log lines MediaPipe writes straight to file descriptor 2.

    MediaPipe's graphs print start-up warnings (XNNPACK, feedback tensors) from
    their own threads that mean nothing to a user. Inside the block fd 2 goes to
    /dev/null; the yielded stream still reaches the real stderr (for progress bars).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    real_stderr = os.fdopen(os.dup(saved), "w")
    try:
        os.dup2(devnull, 2)
        yield real_stderr
    finally:
        real_stderr.flush()
        os.dup2(saved, 2)
        real_stderr.close()
        os.close(saved)
        os.close(devnull)


class _MeshTracker:
    """Per-frame MediaPipe mesh + detector, choosing and following one face."""

    def __init__(self, config: TrackerConfig, static: bool) -> None:
        self.config = config
        self.mesh = _mp_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=config.max_faces,
            refine_landmarks=True,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
        )
        self.detector = _mp_detection.FaceDetection(
            model_selection=1, min_detection_confidence=config.min_detection_confidence
        )
        self.crop_mesh = _mp_mesh.FaceMesh(  # small faces, meshed on a crop (see .search)
            static_image_mode=True,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=config.min_detection_confidence,
        )
        self.last_box: np.ndarray | None = None

    def close(self) -> None:
        self.mesh.close()
        self.detector.close()
        self.crop_mesh.close()

    def _faces(self, frame: np.ndarray) -> list[np.ndarray]:
        """``(478, 3)`` pixel landmarks of each face the mesh finds; where it finds none,
        those of the small faces around the last box, or found by :func:`.search.find_faces`."""
        height, width = frame.shape[:2]
        result = self.mesh.process(frame)
        if result.multi_face_landmarks:
            scale = np.array([width, height, width], np.float32)
            return [np.array([(p.x, p.y, p.z) for p in face.landmark], np.float32) * scale
                    for face in result.multi_face_landmarks]
        if self.last_box is not None:
            boxes = [self.last_box]
        else:
            boxes = search.find_faces(frame, self.detector, self.config.max_faces)
        meshed = (search.mesh_on_crop(frame, box, self.crop_mesh) for box in boxes)
        return [face for face in meshed if face is not None]

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray | None, float]:
        """``(H, W, 3)`` uint8 RGB → (``(478, 3)`` pixels or None, confidence)."""
        height, width = frame.shape[:2]
        frame = np.ascontiguousarray(frame)
        faces = self._faces(frame)
        if not faces:
            return None, 0.0
        boxes = [_box_of(face) for face in faces]
        if self.last_box is None:
            chosen = max(range(len(faces)), key=lambda i: _prominence(boxes[i], width, height))
        else:
            overlaps = [_iou(box, self.last_box) for box in boxes]
            chosen = int(np.argmax(overlaps))
            if overlaps[chosen] < self.config.min_overlap:
                return None, 0.0
        self.last_box = boxes[chosen]
        return faces[chosen], self._confidence(frame, boxes[chosen])

    def _confidence(self, frame: np.ndarray, box: np.ndarray) -> float:
        height, width = frame.shape[:2]
        detections = self.detector.process(frame).detections or []
        best = self.config.min_tracking_confidence
        for detection in detections:
            rel = detection.location_data.relative_bounding_box
            det_box = np.array(
                [rel.xmin * width, rel.ymin * height,
                 (rel.xmin + rel.width) * width, (rel.ymin + rel.height) * height]
            )
            if _iou(det_box, box) > 0.3:
                best = max(best, float(detection.score[0]))
        return best

    def forget(self) -> None:
        """Choose the face afresh at the next frame (after a long loss)."""
        self.last_box = None


def track_frames(
    frames: Iterable[np.ndarray],
    fps: float | None,
    config: TrackerConfig = TrackerConfig(),
    name: str = "video",
    total: int | None = None,
    progress: bool = False,
) -> FaceTrack:
    """Track one face through ``frames`` (each ``(H, W, 3)`` uint8 RGB).

    Args:
        fps: frame rate; ``None`` treats every frame as an independent still image.
        name: the source's name, used in error messages.
        total: expected frame count, for the progress bar only.

    Raises:
        NoFaceError: no face in any frame.
    """
    static = fps is None
    max_gap = 0 if static else max(1, round(config.max_gap_s * fps))
    landmarks, found, confidence = [], [], []
    size = (0, 0)
    missing_run = 0
    with _native_stderr_silenced() as stderr:
        tracker = _MeshTracker(config, static=static)
        try:
            bar = tqdm(frames, total=total, desc="tracking", unit="frame", file=stderr,
                       disable=not progress)
            for frame in bar:
                size = (frame.shape[1], frame.shape[0])
                points, score = tracker(frame)
                found.append(points is not None)
                landmarks.append(points if points is not None else np.zeros((N_LANDMARKS, 3), np.float32))
                confidence.append(score)
                missing_run = 0 if points is not None else missing_run + 1
                if missing_run > max_gap:
                    tracker.forget()
        finally:
            tracker.close()
    found_mask = np.array(found, bool)
    if not found_mask.any():
        raise NoFaceError(f"no face found in any of the {len(found)} frame(s) of '{name}'; "
                          "give a video where one face is clearly visible")
    filled, interpolated, long_gaps = fill_gaps(np.stack(landmarks), found_mask, max_gap)
    track = FaceTrack(
        landmarks=filled.astype(np.float32),
        found=found_mask,
        interpolated=interpolated,
        confidence=np.array(confidence, np.float32),
        fps=fps,
        size=size,
        long_gaps=long_gaps,
    )
    return smoothed(track, config) if config.smooth else track


def smoothed(track: FaceTrack, config: TrackerConfig = TrackerConfig()) -> FaceTrack:
    """``track`` with its landmarks smoothed over time (zero-lag One-Euro, in units of the face's
    rigid radius), as :func:`track_frames` returns it when ``config.smooth``: one unsmoothed
    tracking serves both the per-frame metrics and what needs steady landmarks. A still's
    track (no fps) or a single frame is returned as it is."""
    if track.fps is None or len(track) < 2:
        return track
    unit = float(np.median(rigid_radius(track.landmarks)))  # pixels: the unit for smoothing
    landmarks = one_euro_zero_phase(
        track.landmarks / unit, track.fps,
        min_cutoff_hz=config.smooth_min_cutoff_hz,
        beta=config.smooth_beta,
        d_cutoff_hz=config.smooth_d_cutoff_hz,
    ) * unit
    return replace(track, landmarks=landmarks.astype(np.float32))


def track_file(
    path: str | Path, config: TrackerConfig = TrackerConfig(), progress: bool = False
) -> FaceTrack:
    """Track the face in a video or still image file (decoded as a stream)."""
    info = media.probe(path)
    return track_frames(
        media.iter_frames(path), info.fps, config, name=str(path),
        total=info.n_frames, progress=progress,
    )

