"""Reference-based video metrics of emotional talking-head papers (EVP, EAT).

A generated video is compared with its reference (ground-truth) video
(:func:`compare_videos`); the no-reference sharpness is in :mod:`.sharpness`, the
weight-free lip-sync correlations in :mod:`.lipsync`:

* **M-LMD / F-LMD** (landmark distance): mean Euclidean distance, in pixels of the
  generated video, between corresponding iBUG-68 landmarks of generated and
  reference frames, over the 20 mouth points (48-67) or all 68 points. As in EAT's
  evaluator, each frame's point set is first centred on its own mean (no scale
  normalisation), and LMD = sum of point distances / (valid frames x points).
* **M-LVD / F-LVD** (landmark velocity difference): the same distance on the
  frame-to-frame displacements of the *uncentred* landmarks. F-LVD uses all 68
  points (EAT's public evaluator wrongly adds the mouth value into it).
* **SSIM / PSNR**: per frame against the reference, averaged over frames.
* **CPBD** of both videos (:func:`~emoportrait.analysis.sharpness.cpbd`).
* **Mouth vs. the reference's mouth**: the lag-searched Pearson correlation of the
  generated inner-lip opening with the reference video's (``mouth_r``): with M-LMD,
  the reference-based check of lip sync.
* **Loudness following** of the generated video
  (:func:`~emoportrait.analysis.lipsync.loudness_following`; not lip sync).

Frames without a tracked face are skipped by the landmark metrics. Videos of
different lengths or frame rates are compared frame by frame on the generated
timeline: generated frame ``i`` (at ``i / fps_gen`` s) is paired with the nearest
reference frame in time, ``round(i * fps_ref / fps_gen)`` (simply ``i`` at equal
rates), as long as that frame exists; so ``min(T_gen, T_ref)`` frames at equal
rates. A reference of another size is resized (frames) and scaled (landmarks) to
the generated video's size.

FID and SyncNet's LSE-C / LSE-D need pretrained weights that are not available
offline; they are not implemented (:data:`UNAVAILABLE` says why, for reports).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .. import media
from ..errors import InputError
from ..face import FaceTrack, TrackerConfig, to_ibug68, track_frames
from ..face.landmarks import IBUG68_MOUTH
from .lipsync import MIN_CORRELATION_SAMPLES, lagged_correlation, mouth_opening, track_loudness_following
from .sharpness import SHARPNESS_EVERY, cpbd

__all__ = ["TRACKING", "UNAVAILABLE", "VideoMetrics", "compare_videos", "landmark_distance",
           "landmark_velocity_difference", "psnr", "ssim"]

UNAVAILABLE = {
    "FID": "not computed: needs Inception-v3 weights, which are not available offline; pass your own "
           "TorchScript feature extractor with --fid-model FILE (and --reference videos)",
    "LSE-C/LSE-D": "not computed: needs SyncNet weights, which are not available offline; pass your own "
                   "TorchScript SyncNet with --syncnet-model FILE, or see the weight-free lip-sync correlation",
}
"""Metrics of the papers that are not implemented, with the reason a report shows."""

TRACKING = TrackerConfig(smooth=False)
"""Per-frame landmarks, unsmoothed, as the papers' per-frame (dlib) detectors give them."""

MOUTH_MAX_LAG = 4  # frames searched each way when comparing a mouth with the reference's


# ----------------------------------------------------------------- landmark metrics


def _xy_pair(generated: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check two ``(T, P, 2|3)`` landmark arrays match; return their float64 ``(T, P, 2)`` xy."""
    generated, reference = np.asarray(generated, np.float64), np.asarray(reference, np.float64)
    if generated.shape != reference.shape or generated.ndim != 3 or generated.shape[-1] not in (2, 3):
        raise ValueError(f"landmarks must be two (T, P, 2|3) arrays of one shape, "
                         f"got {generated.shape} and {reference.shape}")
    return generated[..., :2], reference[..., :2]


def _valid_mask(valid: np.ndarray | None, n_frames: int) -> np.ndarray:
    """``(T,)`` bool: ``valid`` checked, or all True when it is ``None``."""
    if valid is None:
        return np.ones(n_frames, bool)
    valid = np.asarray(valid, bool)
    if valid.shape != (n_frames,):
        raise ValueError(f"valid must be a ({n_frames},) mask, got shape {valid.shape}")
    return valid


def _mean_point_distance(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    """Mean distance of ``(T, P, 2)`` point sets over valid frames and all points; NaN if none."""
    if not valid.any():
        return math.nan
    return float(np.linalg.norm(a[valid] - b[valid], axis=-1).mean())


def landmark_distance(generated: np.ndarray, reference: np.ndarray, valid: np.ndarray | None = None) -> float:
    """LMD: mean distance of corresponding landmarks, each frame centred on its own mean.

    Args:
        generated: ``(T, P, 2|3)`` landmarks, pixels; only x and y are used.
        reference: ``(T, P, 2|3)`` the corresponding reference landmarks.
        valid: ``(T,)`` bool, frames to use (a face in both); default all.

    Returns:
        Pixels: sum of point distances / (valid frames x P); NaN without a valid frame.
    """
    generated, reference = _xy_pair(generated, reference)
    centred = [points - points.mean(axis=1, keepdims=True) for points in (generated, reference)]
    return _mean_point_distance(*centred, _valid_mask(valid, len(generated)))


def landmark_velocity_difference(
    generated: np.ndarray, reference: np.ndarray, valid: np.ndarray | None = None
) -> float:
    """LVD: mean distance of corresponding frame-to-frame landmark displacements (uncentred).

    Args:
        generated: ``(T, P, 2|3)`` landmarks, pixels; only x and y are used.
        reference: ``(T, P, 2|3)`` the corresponding reference landmarks.
        valid: ``(T,)`` bool, frames to use; the velocity from frame t to t + 1
            counts only when both are valid. Default all.

    Returns:
        Pixels per frame: sum of velocity differences / (valid velocities x P);
        NaN without a valid velocity.
    """
    generated, reference = _xy_pair(generated, reference)
    valid = _valid_mask(valid, len(generated))
    velocity = [np.diff(points, axis=0) for points in (generated, reference)]
    return _mean_point_distance(*velocity, valid[1:] & valid[:-1])


# -------------------------------------------------------------------- pixel metrics


def _check_frames(generated: np.ndarray, reference: np.ndarray) -> None:
    if generated.shape != reference.shape or generated.ndim != 4 or len(generated) == 0:
        raise ValueError(f"frames must be two non-empty (T, H, W, 3) arrays of one shape, "
                         f"got {generated.shape} and {reference.shape}")


def _frame_psnr(generated: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB) of one ``(H, W, 3)`` uint8 frame; ``inf`` for identical frames."""
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(reference, generated, data_range=255))


def _frame_ssim(generated: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of one ``(H, W, 3)`` uint8 frame, colour channels averaged; 1 for identical frames."""
    return float(structural_similarity(reference, generated, channel_axis=-1, data_range=255))


def psnr(generated: np.ndarray, reference: np.ndarray) -> float:
    """Mean per-frame PSNR in dB of ``(T, H, W, 3)`` uint8 frames; ``inf`` if any frame is identical."""
    _check_frames(generated, reference)
    return float(np.mean([_frame_psnr(g, r) for g, r in zip(generated, reference)]))


def ssim(generated: np.ndarray, reference: np.ndarray) -> float:
    """Mean per-frame SSIM (in [-1, 1], 1 = identical) of ``(T, H, W, 3)`` uint8 frames."""
    _check_frames(generated, reference)
    return float(np.mean([_frame_ssim(g, r) for g, r in zip(generated, reference)]))


def _track(path: str | Path, max_frames: int | None = None) -> FaceTrack:
    """Per-frame (unsmoothed) face track of the first ``max_frames`` frames of a video."""
    info = media.probe(path)
    with contextlib.closing(media.iter_frames(path)) as frames:
        return track_frames(islice(frames, max_frames), info.fps, TRACKING, name=str(path))


def _has_sound(path: str | Path) -> bool:
    """True when ``path`` is a video with an audio track."""
    info = media.probe(path)
    return not info.is_image and info.has_audio



# ------------------------------------------------------------------ video comparison


@dataclass(frozen=True)
class VideoMetrics:
    """Metrics of a generated video against its reference; NaN where not computable.

    Attributes:
        m_lmd, f_lmd: Mouth (20 points) / face (68 points) landmark distance, pixels.
        m_lvd, f_lvd: Mouth / face landmark velocity difference, pixels per frame.
        ssim: Mean SSIM over compared frames.
        psnr: Mean PSNR over compared frames, dB (``inf`` if any frame is identical).
        cpbd_generated, cpbd_reference: Mean CPBD over every 5th compared frame.
        mouth_r, mouth_lag_ms: :func:`lagged_correlation` (lags within ±``MOUTH_MAX_LAG``
            frames) of the generated mouth opening with the reference's on the paired
            frames; lag positive = the generated mouth late.
        loudness_r, loudness_lag_frames: :func:`loudness_following` of the generated
            video with its own audio (NaN without audio); lag positive = video late.
        frames_compared: Frame pairs compared.
        loudness_lag_ms: That lag in milliseconds at the generated frame rate.
    """

    m_lmd: float
    f_lmd: float
    m_lvd: float
    f_lvd: float
    ssim: float
    psnr: float
    cpbd_generated: float
    cpbd_reference: float
    mouth_r: float
    mouth_lag_ms: float
    loudness_r: float
    loudness_lag_frames: float
    frames_compared: int
    loudness_lag_ms: float = math.nan


def _frame_pairs(
    n_generated: int, fps_generated: float | None, n_reference: int, fps_reference: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` generated and reference frame indices compared, paired by time.

    Generated frame ``i`` meets the reference frame nearest its time,
    ``round(i * fps_reference / fps_generated)``, or frame ``i`` when a rate is
    unknown (still images); pairs past the reference's end are dropped.
    """
    generated = np.arange(n_generated)
    if fps_generated is None or fps_reference is None:
        reference = generated.copy()
    else:
        reference = np.floor(generated * (fps_reference / fps_generated) + 0.5).astype(np.int64)
    keep = reference < n_reference
    return generated[keep], reference[keep]


def _landmark_metrics(
    generated: FaceTrack, reference: FaceTrack, pairs: tuple[np.ndarray, np.ndarray]
) -> dict[str, float]:
    """M-/F-LMD and M-/F-LVD of the paired frames, reference scaled to the generated size."""
    scale = np.array(generated.size, np.float64) / np.array(reference.size, np.float64)
    gen = to_ibug68(generated.landmarks[pairs[0], :, :2])
    ref = to_ibug68(reference.landmarks[pairs[1], :, :2]) * scale
    valid = generated.found[pairs[0]] & reference.found[pairs[1]]
    mouth = (slice(None), IBUG68_MOUTH)
    return {
        "m_lmd": landmark_distance(gen[mouth], ref[mouth], valid),
        "f_lmd": landmark_distance(gen, ref, valid),
        "m_lvd": landmark_velocity_difference(gen[mouth], ref[mouth], valid),
        "f_lvd": landmark_velocity_difference(gen, ref, valid),
    }


def _frames_at(path: str | Path, indices: np.ndarray) -> Iterator[np.ndarray]:
    """Yield the frames of a video at non-decreasing ``indices``, decoding it once."""
    with contextlib.closing(media.iter_frames(path)) as frames:
        frame, position = None, -1
        for index in indices:
            while position < index:
                frame, position = next(frames), position + 1
            yield frame


def _pixel_metrics(
    generated_path: str | Path, reference_path: str | Path, pairs: tuple[np.ndarray, np.ndarray]
) -> dict[str, float]:
    """Mean SSIM, PSNR and CPBD of the paired frames; the reference is resized to the generated size."""
    values: dict[str, list[float]] = {"ssim": [], "psnr": [], "cpbd_generated": [], "cpbd_reference": []}
    paired = zip(_frames_at(generated_path, pairs[0]), _frames_at(reference_path, pairs[1]))
    for number, (gen, ref) in enumerate(paired):
        if ref.shape != gen.shape:
            ref = cv2.resize(ref, gen.shape[1::-1], interpolation=cv2.INTER_AREA)
        values["ssim"].append(_frame_ssim(gen, ref))
        values["psnr"].append(_frame_psnr(gen, ref))
        if number % SHARPNESS_EVERY == 0:
            values["cpbd_generated"].append(cpbd(gen))
            values["cpbd_reference"].append(cpbd(ref))
    return {name: float(np.mean(series)) for name, series in values.items()}


def _loudness_metrics(track: FaceTrack, path: str | Path) -> dict[str, float]:
    """Loudness-following fields of :class:`VideoMetrics`; NaN when the video is silent or has no audio."""
    if not _has_sound(path):
        return {"loudness_r": math.nan, "loudness_lag_frames": math.nan, "loudness_lag_ms": math.nan}
    result = track_loudness_following(track, path)
    known = not math.isnan(result.correlation)
    return {
        "loudness_r": result.correlation,
        "loudness_lag_frames": float(result.lag_frames) if known else math.nan,
        "loudness_lag_ms": result.lag_ms(track.fps) if known else math.nan,
    }


def _found_series(values: np.ndarray, found: np.ndarray) -> np.ndarray | None:
    """``values`` with the frames where no face was found interpolated from their
    neighbours; None when fewer than 3 frames have a face."""
    if found.sum() < MIN_CORRELATION_SAMPLES:
        return None
    frames = np.arange(len(values))
    return np.interp(frames, frames[found], values[found])


def _mouth_metrics(generated: FaceTrack, reference: FaceTrack, pairs: tuple[np.ndarray, np.ndarray]
                   ) -> dict[str, float]:
    """``mouth_r`` and ``mouth_lag_ms`` of :class:`VideoMetrics`."""
    series = [_found_series(mouth_opening(track)[index], track.found[index])
              for track, index in ((generated, pairs[0]), (reference, pairs[1]))]
    if series[0] is None or series[1] is None:
        return {"mouth_r": math.nan, "mouth_lag_ms": math.nan}
    result = lagged_correlation(series[0], series[1], MOUTH_MAX_LAG)
    known = not math.isnan(result.correlation)
    return {"mouth_r": result.correlation,
            "mouth_lag_ms": result.lag_ms(generated.fps) if known and generated.fps else math.nan}


def _reference_limit(
    max_frames: int | None, fps_generated: float | None, fps_reference: float | None
) -> int | None:
    """Reference frames needed to pair ``max_frames`` generated frames (all when unbounded)."""
    if max_frames is None:
        return None
    if fps_generated is None or fps_reference is None:
        return max_frames
    return math.ceil(max_frames * fps_reference / fps_generated) + 1


def compare_videos(
    generated_path: str | Path, reference_path: str | Path, max_frames: int | None = None,
    generated_track: FaceTrack | None = None,
) -> VideoMetrics:
    """All reference-based metrics of a generated video (see the module docstring).

    Both videos are tracked per frame (MediaPipe, unsmoothed: :data:`TRACKING`) and reduced
    to the iBUG-68 points; frames are paired by time on the generated timeline.

    Args:
        generated_path: The generated video (its own audio gives the loudness following).
        reference_path: The ground-truth video.
        max_frames: Compare at most this many generated frames (from the start).
        generated_track: The generated video's track made with :data:`TRACKING`, when the
            caller has it (it is not tracked again); its first ``max_frames`` frames are used.

    Raises:
        NoFaceError: no face in any frame of one of the videos.
    """
    if generated_track is None:
        generated = _track(generated_path, max_frames)
    else:
        generated = generated_track if max_frames is None else generated_track.head(max_frames)
    reference_fps = media.probe(reference_path).fps
    reference = _track(reference_path, _reference_limit(max_frames, generated.fps, reference_fps))
    pairs = _frame_pairs(len(generated), generated.fps, len(reference), reference.fps)
    if len(pairs[0]) == 0:
        raise InputError(f"'{generated_path}' and '{reference_path}' share no frame to compare")
    return VideoMetrics(
        **_landmark_metrics(generated, reference, pairs),
        **_pixel_metrics(generated_path, reference_path, pairs),
        **_mouth_metrics(generated, reference, pairs),
        **_loudness_metrics(generated, generated_path),
        frames_compared=len(pairs[0]),
    )
