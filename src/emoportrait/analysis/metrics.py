"""Video quality and lip-sync metrics of emotional talking-head papers (EVP, EAT).

A generated video is compared with its reference (ground-truth) video:

* **M-LMD / F-LMD** (landmark distance): mean Euclidean distance, in pixels of the
  generated video, between corresponding iBUG-68 landmarks of generated and
  reference frames, over the 20 mouth points (48-67) or all 68 points. As in EAT's
  evaluator, each frame's point set is first centred on its own mean (no scale
  normalisation), and LMD = sum of point distances / (valid frames x points).
* **M-LVD / F-LVD** (landmark velocity difference): the same distance on the
  frame-to-frame displacements of the *uncentred* landmarks. F-LVD uses all 68
  points (EAT's public evaluator wrongly adds the mouth value into it).
* **SSIM / PSNR**: per frame against the reference, averaged over frames.
* **CPBD**: no-reference sharpness (Narvekar & Karam, IEEE TIP 2011), see :func:`cpbd`.
* **Mouth vs. the reference's mouth**: the lag-searched Pearson correlation of the
  generated inner-lip opening with the reference video's (``mouth_r``): with M-LMD,
  the reference-based check of lip sync.
* **Loudness following** (no reference, no weights): the lag-searched correlation of the
  mouth opening with the loudness of the video's own speech, see
  :func:`loudness_following`. It is *not* lip sync: real speakers score 0.1-0.4 (their
  mouths follow phones, not loudness), a mouth driven by loudness alone scores near 1.
  It tells a frozen or out-of-step mouth (near 0, or a large lag) from one that moves
  with the speech, nothing more. For lip sync without a reference, give SyncNet's
  weights (LSE-C/LSE-D, :mod:`.syncnet`).

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
from scipy import ndimage
from skimage.feature import canny
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .. import media
from ..audio import frame_loudness, load_audio
from ..errors import InputError
from ..face import FaceTrack, TrackerConfig, inner_mouth_opening, rigid_radius, to_ibug68, track_frames
from ..face.landmarks import IBUG68_MOUTH

__all__ = [
    "UNAVAILABLE", "LaggedCorrelation", "VideoMetrics", "compare_videos", "cpbd", "lagged_correlation",
    "landmark_distance",
    "landmark_velocity_difference", "loudness_following", "mouth_opening", "psnr", "ssim",
    "track_loudness_following", "video_sharpness",
]

UNAVAILABLE = {
    "FID": "not computed: needs Inception-v3 weights, which are not available offline; pass your own "
           "TorchScript feature extractor with --fid-model FILE (and --reference videos)",
    "LSE-C/LSE-D": "not computed: needs SyncNet weights, which are not available offline; pass your own "
                   "TorchScript SyncNet with --syncnet-model FILE, or see the weight-free lip-sync correlation",
}
"""Metrics of the papers that are not implemented, with the reason a report shows."""

_TRACKING = TrackerConfig(smooth=False)
"""Per-frame landmarks, unsmoothed, as the papers' per-frame (dlib) detectors give them."""

SHARPNESS_EVERY = 5
"""CPBD is averaged over every 5th frame (it changes slowly and costs the most)."""

LOUDNESS_FLOOR_DB = -60.0
"""Loudness (dBFS) below which speech counts as silence for :func:`loudness_following`."""

CPBD_MIN_SIZE = 64         # block side, pixels: smaller images have no block to measure
_CPBD_EDGE_SHARE = 0.002    # a block is an edge block above this share of Canny edge pixels
_CPBD_BETA = 3.6            # exponent of the probability-of-blur-detection model
_CPBD_LOW_CONTRAST = 50     # grey levels; blocks up to this contrast have w_JNB = 5, others 3
_P_JNB_PERCENT = 63  # 1 - exp(-1) = 0.632, in percent: the blur probability of an edge w_JNB wide
_MIN_CORRELATION_SAMPLES = 3
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


# ----------------------------------------------------------------------------- CPBD


def _grey(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB or ``(H, W)`` uint8 → ``(H, W)`` float64 grey levels 0-255 (BT.601 luma)."""
    image = np.asarray(image, np.uint8)
    return (cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image).astype(np.float64)


_SOBEL_X = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0
_MAX_HALF_WIDTH = 101  # an edge's width is counted up to this many pixels on each side


def _sobel_edges(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool edges of the Octave-style Sobel detector the ``cpbd`` package uses:
    the squared horizontal derivative (kernel normalised to unit absolute sum) above
    ``2 sqrt(mean)`` of itself, thinned to pixels larger than both neighbours along the
    row or along the column (zero beyond the border)."""
    strength = ndimage.convolve(grey, _SOBEL_X) ** 2
    strength[strength <= 2.0 * math.sqrt(float(strength.mean()))] = 0.0
    padded = np.pad(strength, 1)
    centre = padded[1:-1, 1:-1]
    along_row = (centre > padded[1:-1, :-2]) & (centre > padded[1:-1, 2:])
    along_column = (centre > padded[:-2, 1:-1]) & (centre > padded[2:, 1:-1])
    return along_row | along_column


def _monotone_runs(step_sign: np.ndarray, forward: bool) -> np.ndarray:
    """``(H, W-1)`` how many consecutive row steps share the sign ``True`` of ``step_sign``,
    starting at each step and going right (``forward``) or ending there going left."""
    runs = np.zeros(step_sign.shape, np.int64)
    columns = range(step_sign.shape[1] - 1, -1, -1) if forward else range(step_sign.shape[1])
    previous = np.zeros(step_sign.shape[0], np.int64)
    for column in columns:
        previous = np.where(step_sign[:, column], previous + 1, 0)
        runs[:, column] = previous
    return runs


def _edge_widths(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` edge widths (pixels) at the Sobel edges whose gradient is horizontal, 0 elsewhere.

    As Marziliano's method in the ``cpbd`` package: the gradient angle
    (``np.gradient``, 0 where the horizontal gradient is 0) is rounded to 45 degrees;
    at 0 (brighter to the right) the width runs left while the row keeps falling and
    right while it keeps rising, at ±180 the other way round, each side counting the
    pixel next to the edge and at most ``_MAX_HALF_WIDTH`` pixels. The border rows and
    columns are not measured.
    """
    gradient_y, gradient_x = np.gradient(grey)
    angle = np.where(gradient_x != 0, np.degrees(np.arctan2(gradient_y, gradient_x)), 0.0)
    quantised = 45.0 * np.round(angle / 45.0)
    steps = np.diff(grey, axis=1)              # steps[:, j] = grey[:, j + 1] - grey[:, j]
    width = grey.shape[1]
    widths = np.zeros(grey.shape)
    for rising, direction in ((True, quantised == 0.0), (False, np.abs(quantised) == 180.0)):
        sign = steps > 0 if rising else steps < 0
        before, after = _monotone_runs(sign, forward=False), _monotone_runs(sign, forward=True)
        left = np.zeros(grey.shape, np.int64)   # runs ending at step c - 2 (pixels c-2 -> c-1)
        left[:, 2:] = before[:, : width - 2]
        right = np.zeros(grey.shape, np.int64)  # runs starting at step c + 1 (pixels c+1 -> c+2)
        right[:, : width - 2] = after[:, 1:]
        measured = np.minimum(left, _MAX_HALF_WIDTH - 1) + np.minimum(right, _MAX_HALF_WIDTH - 1) + 2
        widths = np.where(direction, measured, widths)
    inside = np.zeros(grey.shape, bool)
    inside[1:-1, 1:-1] = np.any(angle)  # the package measures nothing when no gradient is horizontal-ish
    return np.where(_sobel_edges(grey) & inside, widths, 0.0)


def _blocks(array: np.ndarray) -> np.ndarray:
    """``(H, W)`` → ``(H // 64, W // 64, 64, 64)`` whole blocks (a partial last row/column is dropped)."""
    rows, cols = array.shape[0] // CPBD_MIN_SIZE, array.shape[1] // CPBD_MIN_SIZE
    cropped = array[: rows * CPBD_MIN_SIZE, : cols * CPBD_MIN_SIZE]
    return cropped.reshape(rows, CPBD_MIN_SIZE, cols, CPBD_MIN_SIZE).swapaxes(1, 2)


def cpbd(image: np.ndarray) -> float:
    """CPBD sharpness (Narvekar & Karam, IEEE TIP 2011): in [0, 1], higher = sharper.

    The image is cut into 64 x 64 blocks; a block is an edge block when more than
    0.2 % of its pixels are Canny edges. At each measurable Sobel edge pixel of an
    edge block (:func:`_sobel_edges`) the edge width ``w`` is measured along the
    row; with ``w_JNB`` = 5 px if the block's contrast (max - min grey level) is at
    most 50, else 3 px, the probability of detecting blur is
    ``P = 1 - exp(-(w / w_JNB) ** 3.6)``. CPBD is the share of these edges with
    ``P <= P_JNB = 1 - exp(-1) = 0.63``, i.e. at most ``w_JNB`` wide.

    The steps follow the ``cpbd`` package (1.0.7), the Python port of the authors' code
    that talking-face evaluations call: scikit-image's Canny with its defaults on the
    0-255 grey levels for the edge blocks, the Octave-style Sobel edges of
    :func:`_sobel_edges`, Marziliano widths (:func:`_edge_widths`), and ``P`` rounded to
    a percent before it is compared with 0.63. ``tests/test_metrics.py`` holds the
    package's values on blurred images; this matches them within 0.01.

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W)`` grey, uint8.

    Returns:
        CPBD; 0 when no edge block has a measurable edge (as the authors' code: a
        blank frame and a heavily blurred one both score 0).

    Raises:
        ValueError: the image is smaller than one block.
    """
    grey = _grey(image)
    if min(grey.shape) < CPBD_MIN_SIZE:
        raise ValueError(f"CPBD needs an image of at least {CPBD_MIN_SIZE} x {CPBD_MIN_SIZE} pixels, "
                         f"got {grey.shape[1]} x {grey.shape[0]}")
    widths = _blocks(_edge_widths(grey))
    edge_blocks = _blocks(canny(grey)).sum(axis=(2, 3)) > _CPBD_EDGE_SHARE * CPBD_MIN_SIZE**2
    contrast = np.floor(np.ptp(_blocks(grey), axis=(2, 3)))
    w_jnb = np.where(contrast <= _CPBD_LOW_CONTRAST, 5.0, 3.0)[..., None, None]
    counted = (widths > 0) & edge_blocks[..., None, None]
    if not counted.any():
        return 0.0
    percent = np.round(100.0 * (1.0 - np.exp(-((widths / w_jnb) ** _CPBD_BETA))))
    return float(np.count_nonzero(counted & (percent <= _P_JNB_PERCENT)) / np.count_nonzero(counted))


def video_sharpness(path: str | Path, every: int = SHARPNESS_EVERY) -> float:
    """Mean :func:`cpbd` of every ``every``-th frame of a video (frames 0, every, 2 every, ...)."""
    with contextlib.closing(media.iter_frames(path)) as frames:
        return float(np.mean([cpbd(frame) for frame in islice(frames, 0, None, every)]))


# ------------------------------------------------------------------ lagged correlation


@dataclass(frozen=True)
class LaggedCorrelation:
    """Best correlation of a signal with a reference over the searched lags.

    Attributes:
        correlation: Pearson r in [-1, 1] at the best lag; NaN if not computable
            (e.g. a still mouth or constant loudness).
        lag_frames: Frames the signal lags behind the reference (positive = signal late).
    """

    correlation: float
    lag_frames: int

    def lag_ms(self, fps: float) -> float:
        """The lag in milliseconds at ``fps`` frames per second."""
        return 1000.0 * self.lag_frames / fps


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two ``(N,)`` signals; NaN if either is constant."""
    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / norm if norm > 0 else math.nan


def _lagged_pair(video: np.ndarray, audio: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping parts of ``video[t]`` and ``audio[t - lag]``."""
    n = len(video)
    return (video[lag:], audio[: n - lag]) if lag >= 0 else (video[: n + lag], audio[-lag:])


def lagged_correlation(signal: np.ndarray, reference: np.ndarray, max_lag: int = 5) -> LaggedCorrelation:
    """Best Pearson correlation of ``signal[t]`` with ``reference[t - lag]`` over the lags.

    Lags from ``-max_lag`` to ``+max_lag`` frames are tried, as long as at least 3
    frames overlap; the highest correlation wins (ties: the smaller lag).

    Args:
        signal: ``(T,)`` e.g. a generated mouth opening.
        reference: ``(T,)`` e.g. the speech loudness, or a real mouth opening.
        max_lag: Largest lag searched, frames.

    Returns:
        The best :class:`LaggedCorrelation` (positive lag: ``signal`` late); ``(NaN, 0)`` when no
        lag gives a correlation.
    """
    signal, reference = np.asarray(signal, np.float64), np.asarray(reference, np.float64)
    if signal.shape != reference.shape or signal.ndim != 1:
        raise ValueError(f"signals must be (T,) of one length, got {signal.shape} and {reference.shape}")
    reach = min(max_lag, len(signal) - _MIN_CORRELATION_SAMPLES)
    scores = {lag: _pearson(*_lagged_pair(signal, reference, lag)) for lag in range(-reach, reach + 1)}
    scores = {lag: r for lag, r in scores.items() if not math.isnan(r)}
    if not scores:
        return LaggedCorrelation(math.nan, 0)
    best = max(scores, key=lambda lag: (scores[lag], -abs(lag)))
    return LaggedCorrelation(scores[best], best)


def loudness_following(mouth_opening: np.ndarray, loudness_db: np.ndarray, max_lag: int = 5) -> LaggedCorrelation:
    """Lag-searched Pearson correlation of mouth opening and speech loudness (not lip
    sync: see the module docstring).

    Loudness is clipped below at :data:`LOUDNESS_FLOOR_DB` so silence of any depth
    counts the same. Lags from ``-max_lag`` to ``+max_lag`` frames are tried (5 =
    0.2 s at 25 fps), as long as at least 3 frames overlap, and the lag with the
    highest correlation is returned (a negative correlation is no sync).

    Args:
        mouth_opening: ``(T,)`` mouth opening per frame (any unit, e.g. face sizes).
        loudness_db: ``(T,)`` speech loudness per frame, dBFS.
        max_lag: Largest lag searched, frames.

    Returns:
        The best :class:`LaggedCorrelation`; ``(NaN, 0)`` when no lag gives a correlation.
    """
    loudness = np.maximum(np.asarray(loudness_db, np.float64), LOUDNESS_FLOOR_DB)
    return lagged_correlation(mouth_opening, loudness, max_lag)


def mouth_opening(track: FaceTrack) -> np.ndarray:
    """``(T,)`` inner-lip opening of a track over its face's size (head size cancels)."""
    return inner_mouth_opening(track.landmarks[..., :2]) / rigid_radius(track.landmarks)


def track_loudness_following(track: FaceTrack, path: str | Path) -> LaggedCorrelation:
    """:func:`loudness_following` of a tracked video against the loudness of its own audio track."""
    loudness = frame_loudness(load_audio(path), track.fps, n_frames=len(track))
    return loudness_following(mouth_opening(track), loudness)


def _track(path: str | Path, max_frames: int | None = None) -> FaceTrack:
    """Per-frame (unsmoothed) face track of the first ``max_frames`` frames of a video."""
    info = media.probe(path)
    with contextlib.closing(media.iter_frames(path)) as frames:
        return track_frames(islice(frames, max_frames), info.fps, _TRACKING, name=str(path))


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
    if found.sum() < _MIN_CORRELATION_SAMPLES:
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
    generated_path: str | Path, reference_path: str | Path, max_frames: int | None = None
) -> VideoMetrics:
    """All reference-based metrics of a generated video (see the module docstring).

    Both videos are tracked per frame (MediaPipe, unsmoothed) and reduced to the
    iBUG-68 points; frames are paired by time on the generated timeline.

    Args:
        generated_path: The generated video (its own audio gives the loudness following).
        reference_path: The ground-truth video.
        max_frames: Compare at most this many generated frames (from the start).

    Raises:
        NoFaceError: no face in any frame of one of the videos.
    """
    generated = _track(generated_path, max_frames)
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
