"""Similarity pose, reference face, frontalisation and projection of 3D landmarks.

This is the core of EVP's *3D-aware keypoint alignment*. Faces are dense 3D
landmarks (MediaPipe face mesh, ``N = 478``) stored as ``(T, N, 3)`` arrays in
image pixels: ``x`` right, ``y`` down, ``z`` depth (scaled like ``x``, larger =
farther from the camera). The head pose of frame ``k`` is a similarity transform
from a canonical (frontal) reference face to that frame::

    x_image = s_k * R_k @ X_canonical + t_k

with ``R_k`` a proper 3x3 rotation, ``s_k > 0`` a scale (pixels per canonical
unit) and ``t_k`` a translation in pixels. The camera is orthographic: the image
position of a landmark is ``x_image[:2]``; ``x_image[2]`` is its depth.

Euler convention
----------------
Angles are ``(yaw, pitch, roll)`` in degrees, all right-handed rotations in the
image-aligned frame (``x`` right, ``y`` down, ``z`` forward into the scene)::

    R = Rz(roll) @ Ry(yaw) @ Rx(pitch)

    Rx(a) = [[1, 0, 0], [0, c, -s], [0, s, c]]
    Ry(a) = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    Rz(a) = [[c, -s, 0], [s, c, 0], [0, 0, 1]]

A frontal canonical face looks at the camera, i.e. along ``-z``. Then

- positive **yaw** (about ``y``) turns the nose toward image left (``-x``): the
  subject turns to *their own* right; the ``+x`` axis tips toward ``-z``
  (toward the camera);
- positive **pitch** (about ``x``) turns the nose toward image down (``+y``):
  the subject looks down;
- positive **roll** (about ``z``) turns ``+x`` toward ``+y``: the face rotates
  clockwise as seen in the image (the subject tilts their head toward their
  left shoulder).

:func:`matrix_to_euler` returns yaw in ``[-90, 90]`` and pitch, roll in
``(-180, 180]``; it inverts :func:`euler_to_matrix` exactly for ``|yaw| < 90``.
At gimbal lock (``|yaw| = 90``) roll is set to 0 and pitch absorbs the rest.

Dtypes: all arithmetic is float64. :class:`Pose` holds float64 arrays. Functions
returning landmark arrays return float32 when every landmark array passed in is
float32 and float64 otherwise. Shape errors and non-finite inputs raise
:class:`ValueError` (these are programming errors, not user errors: callers drop
frames without a face before calling in here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Pose",
    "align_expression",
    "estimate_pose",
    "euler_to_matrix",
    "frontalize",
    "generalized_procrustes",
    "matrix_to_euler",
    "project_to_image",
    "umeyama",
]

Float64Array = NDArray[np.float64]
Indices = Sequence[int] | NDArray[np.integer] | None

# cos(yaw) below this counts as gimbal lock in matrix_to_euler.
_GIMBAL_EPS = 1e-9


# --------------------------------------------------------------------------- Euler


def euler_to_matrix(angles_deg: ArrayLike) -> Float64Array:
    """Rotation matrices from ``(yaw, pitch, roll)`` angles.

    Args:
        angles_deg: ``(..., 3)`` yaw, pitch, roll in degrees (see module docstring
            for the convention ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``).

    Returns:
        ``(..., 3, 3)`` float64 proper rotation matrices.
    """
    angles = np.asarray(angles_deg, dtype=np.float64)
    if angles.ndim < 1 or angles.shape[-1] != 3:
        raise ValueError(f"angles must have shape (..., 3), got {angles.shape}")
    yaw, pitch, roll = np.moveaxis(np.deg2rad(angles), -1, 0)
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    # Product Rz(roll) @ Ry(yaw) @ Rx(pitch), written out.
    rows = [
        [cr * cy, cr * sy * sp - sr * cp, cr * sy * cp + sr * sp],
        [sr * cy, sr * sy * sp + cr * cp, sr * sy * cp - cr * sp],
        [-sy, cy * sp, cy * cp],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_euler(rotation: ArrayLike) -> Float64Array:
    """``(yaw, pitch, roll)`` angles of rotation matrices; inverse of :func:`euler_to_matrix`.

    Args:
        rotation: ``(..., 3, 3)`` proper rotation matrices.

    Returns:
        ``(..., 3)`` float64 yaw in ``[-90, 90]``, pitch and roll in ``(-180, 180]``,
        all in degrees. At gimbal lock (``|yaw| = 90``) roll is 0.
    """
    r = np.asarray(rotation, dtype=np.float64)
    if r.ndim < 2 or r.shape[-2:] != (3, 3):
        raise ValueError(f"rotation must have shape (..., 3, 3), got {r.shape}")
    cos_yaw = np.hypot(r[..., 0, 0], r[..., 1, 0])
    yaw = np.arctan2(-r[..., 2, 0], cos_yaw)
    locked = cos_yaw < _GIMBAL_EPS
    # Away from gimbal lock: R20 = -sin(yaw), R21/R22 ~ (sin, cos)(pitch),
    # R10/R00 ~ (sin, cos)(roll). At lock only pitch -/+ roll is defined; take roll = 0.
    pitch = np.where(
        locked,
        np.arctan2(-r[..., 2, 0] * r[..., 0, 1], r[..., 1, 1]),
        np.arctan2(r[..., 2, 1], r[..., 2, 2]),
    )
    roll = np.where(locked, 0.0, np.arctan2(r[..., 1, 0], r[..., 0, 0]))
    return np.rad2deg(np.stack([yaw, pitch, roll], axis=-1))


# --------------------------------------------------------------------------- Pose


@dataclass(frozen=True, eq=False)
class Pose:
    """Per-frame similarity pose ``x_image = scale * rotation @ X_canonical + translation``.

    Attributes:
        rotation: ``(T, 3, 3)`` float64 proper rotations (canonical -> image frame).
        scale: ``(T,)`` float64, pixels per canonical unit, positive.
        translation: ``(T, 3)`` float64 pixels (x, y, depth).

    The arrays are copied to read-only float64 on construction. Equality is
    identity (``eq=False``): compare the arrays explicitly.
    """

    rotation: Float64Array
    scale: Float64Array
    translation: Float64Array

    def __post_init__(self) -> None:
        rotation = _frozen_float64(self.rotation)
        scale = _frozen_float64(self.scale)
        translation = _frozen_float64(self.translation)
        if rotation.ndim != 3 or rotation.shape[1:] != (3, 3):
            raise ValueError(f"Pose.rotation must have shape (T, 3, 3), got {rotation.shape}")
        frames = rotation.shape[0]
        if scale.shape != (frames,):
            raise ValueError(f"Pose.scale must have shape ({frames},), got {scale.shape}")
        if translation.shape != (frames, 3):
            raise ValueError(
                f"Pose.translation must have shape ({frames}, 3), got {translation.shape}"
            )
        if not np.all(scale > 0):
            raise ValueError("Pose.scale must be positive")
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "translation", translation)

    @classmethod
    def from_euler(
        cls, yaw_pitch_roll_deg: ArrayLike, scale: ArrayLike, translation: ArrayLike
    ) -> Pose:
        """Build a pose from Euler angles.

        Args:
            yaw_pitch_roll_deg: ``(T, 3)`` degrees, convention of :func:`euler_to_matrix`.
            scale: ``(T,)`` pixels per canonical unit, or a scalar for all frames.
            translation: ``(T, 3)`` pixels, or ``(3,)`` for all frames.
        """
        rotation = euler_to_matrix(yaw_pitch_roll_deg)
        if rotation.ndim != 3:
            raise ValueError("yaw_pitch_roll_deg must have shape (T, 3)")
        frames = rotation.shape[0]
        return cls(
            rotation,
            np.broadcast_to(np.asarray(scale, dtype=np.float64), (frames,)),
            np.broadcast_to(np.asarray(translation, dtype=np.float64), (frames, 3)),
        )

    @property
    def euler_degrees(self) -> Float64Array:
        """``(T, 3)`` float64 (yaw, pitch, roll) in degrees; see :func:`matrix_to_euler`."""
        return matrix_to_euler(self.rotation)

    def __len__(self) -> int:
        """Number of frames ``T``."""
        return self.rotation.shape[0]

    def apply(self, canonical: ArrayLike) -> NDArray[np.floating]:
        """Same as :func:`project_to_image` ``(canonical, self)``."""
        return project_to_image(canonical, self)


def _frozen_float64(values: ArrayLike) -> Float64Array:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


# --------------------------------------------------------------------------- fitting


def umeyama(
    source: ArrayLike,
    target: ArrayLike,
    weights: ArrayLike | None = None,
    with_scale: bool = True,
) -> tuple[float, Float64Array, Float64Array]:
    """Least-squares similarity transform taking ``source`` onto ``target`` (Umeyama 1991).

    Minimises ``sum_i w_i * ||target_i - (s * R @ source_i + t)||^2`` over a proper
    rotation ``R`` (``det R = +1``; the reflection solution is replaced by the best
    rotation), scale ``s > 0`` and translation ``t``.

    Args:
        source: ``(N, 3)`` points.
        target: ``(N, 3)`` corresponding points.
        weights: ``(N,)`` non-negative weights (default: all equal). Points with
            weight 0 do not influence the fit (but must still be finite); at
            least 3 must have positive weight.
        with_scale: if False, ``s`` is fixed to 1 (rigid fit).

    Returns:
        ``(s, R, t)``: float scale, ``(3, 3)`` rotation, ``(3,)`` translation, in
        float64 and in the units of ``target`` (for ``t``) / ``target`` per
        ``source`` unit (for ``s``).
    """
    src = _as_float64(source, "source")
    dst = _as_float64(target, "target")
    if src.ndim != 2 or src.shape[1] != 3 or dst.shape != src.shape:
        raise ValueError(
            f"source and target must both have shape (N, 3), got {src.shape} and {dst.shape}"
        )
    w = _normalised_weights(weights, src.shape[0])
    _require_finite(src, "source")
    _require_finite(dst, "target")
    scale, rotation, translation = _similarity_batch(src[None], dst[None], w, with_scale)
    return float(scale[0]), rotation[0], translation[0]


def estimate_pose(landmarks: ArrayLike, reference: ArrayLike, indices: Indices = None) -> Pose:
    """Per-frame pose: the Umeyama similarity fit of ``reference`` onto each frame.

    Args:
        landmarks: ``(T, N, 3)`` image landmarks (pixels), finite on ``indices``.
        reference: ``(N, 3)`` canonical reference face.
        indices: landmark indices used for the fit (e.g. rigid points: forehead,
            nose bridge, eye corners); default all ``N``.

    Returns:
        :class:`Pose` with ``T`` frames such that ``pose.apply(reference)`` best
        matches ``landmarks`` on ``indices`` in the least-squares sense.
    """
    frames = _as_landmarks(landmarks, "landmarks")
    ref = _as_float64(reference, "reference")
    if ref.shape != frames.shape[1:]:
        raise ValueError(
            f"reference must have shape {frames.shape[1:]} to match landmarks, got {ref.shape}"
        )
    idx = _resolve_indices(indices, ref.shape[0])
    src, dst = ref[idx], frames[:, idx]
    _require_finite(src, "reference")
    _require_finite(dst, "landmarks")
    scale, rotation, translation = _similarity_batch(src[None], dst, None, True)
    return Pose(rotation, scale, translation)


def generalized_procrustes(
    shapes: ArrayLike,
    indices: Indices = None,
    max_iter: int = 50,
    tol: float = 1e-7,
) -> Float64Array:
    """Mean shape of ``shapes`` modulo per-shape similarity (generalised Procrustes analysis).

    Starting from the first shape, repeatedly: fit every shape onto the current mean
    with a similarity transform estimated on ``indices``, transform all its points,
    average, and normalise the average so that the ``indices`` points have centroid 0
    and RMS distance 1 from it. Stops when the RMS change of the mean over all
    points is below ``tol`` or after ``max_iter`` iterations.

    The orientation of the result follows the first shape (deterministic); rotate it
    to a frontal pose yourself if needed.

    Args:
        shapes: ``(T, N, 3)`` landmark sets (any units), all finite.
        indices: landmark indices used for alignment and normalisation; default all.
        max_iter: maximum number of align-and-average iterations (>= 1).
        tol: convergence threshold on the RMS change of the normalised mean.

    Returns:
        ``(N, 3)`` float64 mean shape in normalised units.
    """
    data = _as_landmarks(shapes, "shapes")
    if data.shape[0] == 0:
        raise ValueError("shapes must contain at least one shape")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    bad = ~np.isfinite(data).all(axis=(1, 2))
    if bad.any():
        raise ValueError(
            f"shapes has non-finite values in {int(bad.sum())} row(s), "
            f"first at row {int(np.argmax(bad))}"
        )
    idx = _resolve_indices(indices, data.shape[1])
    mean = _normalise_shape(data[0], idx)
    for _ in range(max_iter):
        scale, rotation, translation = _similarity_batch(data[:, idx], mean[idx][None], None, True)
        aligned = _transform(data, scale, rotation, translation)
        new_mean = _normalise_shape(aligned.mean(axis=0), idx)
        change = np.sqrt(np.mean(np.sum((new_mean - mean) ** 2, axis=-1)))
        mean = new_mean
        if change < tol:
            break
    return mean


def _similarity_batch(
    source: Float64Array,
    target: Float64Array,
    weights: Float64Array | None,
    with_scale: bool,
) -> tuple[Float64Array, Float64Array, Float64Array]:
    """Batched Umeyama fit of ``source`` onto ``target``.

    ``source`` and ``target`` are ``(B, K, 3)`` (either may have ``B = 1`` to
    broadcast); ``weights`` is ``(K,)`` summing to 1, or None for uniform. Returns
    scale ``(B,)``, rotation ``(B, 3, 3)``, translation ``(B, 3)``.
    """
    count = source.shape[1]
    if count < 3:
        raise ValueError(f"a similarity fit needs at least 3 points, got {count}")
    w = np.full(count, 1.0 / count) if weights is None else weights
    mu_src = np.einsum("k,bkd->bd", w, source)
    mu_dst = np.einsum("k,bkd->bd", w, target)
    src = source - mu_src[:, None]
    dst = target - mu_dst[:, None]
    covariance = np.einsum("k,bki,bkj->bij", w, dst, src)
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.ones_like(singular)
    signs[:, 2] = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    rotation = u @ (signs[:, :, None] * vt)
    variance = np.einsum("k,bk->b", w, np.sum(src**2, axis=-1))
    if np.any(variance <= 0):
        raise ValueError("source points are degenerate (all at one location)")
    batch = rotation.shape[0]
    if with_scale:
        scale = np.broadcast_to(np.sum(singular * signs, axis=-1) / variance, (batch,))
    else:
        scale = np.ones(batch)
    translation = mu_dst - scale[:, None] * np.einsum("bij,bj->bi", rotation, mu_src)
    return scale, rotation, translation


def _normalise_shape(shape: Float64Array, idx: NDArray[np.intp] | slice) -> Float64Array:
    """Translate/scale ``(N, 3)`` so ``shape[idx]`` has centroid 0 and RMS radius 1."""
    centred = shape - shape[idx].mean(axis=0)
    radius = np.sqrt(np.mean(np.sum(centred[idx] ** 2, axis=-1)))
    if radius <= 0:
        raise ValueError("shape is degenerate (all indexed points at one location)")
    return centred / radius


# --------------------------------------------------------------------------- mapping


def frontalize(landmarks: ArrayLike, pose: Pose) -> NDArray[np.floating]:
    """Undo the pose: canonical coordinates ``X = R^T (x - t) / s`` of image landmarks.

    Args:
        landmarks: ``(T, N, 3)`` image landmarks (pixels, depth), ``T = len(pose)``.
        pose: per-frame pose.

    Returns:
        ``(T, N, 3)`` canonical landmarks; float32 if ``landmarks`` is float32,
        else float64.
    """
    points = _as_landmarks(landmarks, "landmarks")
    _check_frames(points, pose, "landmarks")
    centred = points - pose.translation[:, None, :]
    canonical = np.einsum("tji,tnj->tni", pose.rotation, centred) / pose.scale[:, None, None]
    return canonical.astype(_output_dtype(landmarks), copy=False)


def project_to_image(canonical: ArrayLike, pose: Pose) -> NDArray[np.floating]:
    """Pose canonical landmarks into the image: ``x = s R X + t``; inverse of :func:`frontalize`.

    Args:
        canonical: ``(T, N, 3)`` per-frame canonical landmarks, or ``(N, 3)`` used
            for every frame.
        pose: per-frame pose with ``T`` frames.

    Returns:
        ``(T, N, 3)`` image landmarks (x, y in pixels, z depth); float32 if
        ``canonical`` is float32, else float64.
    """
    points = _as_float64(canonical, "canonical")
    if points.ndim == 2:
        points = np.broadcast_to(points, (len(pose), *points.shape))
    points = _as_landmarks(points, "canonical")
    _check_frames(points, pose, "canonical")
    image = _transform(points, pose.scale, pose.rotation, pose.translation)
    return image.astype(_output_dtype(canonical), copy=False)


def align_expression(
    identity: ArrayLike, expression: ArrayLike, pose: Pose
) -> NDArray[np.floating]:
    """EVP 3D-aware keypoint alignment: put an expression on an identity, in a pose.

    Args:
        identity: ``(N, 3)`` neutral face of the target person in canonical coordinates.
        expression: ``(T, N, 3)`` per-frame expression *displacements* in the same
            canonical frame (e.g. frontalised driving landmarks minus their neutral
            face, or predicted by the audio-to-landmark network).
        pose: per-frame head pose of the target video, ``T`` frames.

    Returns:
        ``(T, N, 3)`` image landmarks ``project_to_image(identity + expression, pose)``;
        float32 if both inputs are float32, else float64.
    """
    ident = _as_float64(identity, "identity")
    disp = _as_landmarks(expression, "expression")
    if ident.shape != disp.shape[1:]:
        raise ValueError(
            f"identity must have shape {disp.shape[1:]} to match expression, got {ident.shape}"
        )
    _check_frames(disp, pose, "expression")
    image = project_to_image(ident[None] + disp, pose)
    return image.astype(_output_dtype(identity, expression), copy=False)


def _transform(
    points: Float64Array, scale: Float64Array, rotation: Float64Array, translation: Float64Array
) -> Float64Array:
    """``s_t R_t p + t_t`` for ``points (T, N, 3)``, ``scale (T,)``, ``rotation (T, 3, 3)``."""
    rotated = np.einsum("tij,tnj->tni", rotation, points)
    return scale[:, None, None] * rotated + translation[:, None, :]


# --------------------------------------------------------------------------- validation


def _as_float64(values: ArrayLike, name: str) -> Float64Array:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < 1:
        raise ValueError(f"{name} must be an array, got a scalar")
    return array


def _as_landmarks(values: ArrayLike, name: str) -> Float64Array:
    array = _as_float64(values, name)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{name} must have shape (T, N, 3), got {array.shape}")
    return array


def _require_finite(values: Float64Array, name: str) -> None:
    if not np.isfinite(values).all():
        raise ValueError(f"{name} has non-finite values at the fitted points")


def _check_frames(points: Float64Array, pose: Pose, name: str) -> None:
    if points.shape[0] != len(pose):
        raise ValueError(f"{name} has {points.shape[0]} frames but pose has {len(pose)}")


def _resolve_indices(indices: Indices, count: int) -> NDArray[np.intp] | slice:
    """Validated integer index array into ``count`` landmarks, or ``slice(None)`` for all."""
    if indices is None:
        return slice(None)
    idx = np.asarray(indices)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be a 1-D sequence of integers, got shape {idx.shape}")
    if idx.size < 3:
        raise ValueError(f"indices must name at least 3 landmarks, got {idx.size}")
    if idx.min() < 0 or idx.max() >= count:
        raise ValueError(f"indices must lie in [0, {count}), got {idx.min()}..{idx.max()}")
    return idx.astype(np.intp)


def _normalised_weights(weights: ArrayLike | None, count: int) -> Float64Array | None:
    """Weights scaled to sum 1 (None stays None); validates shape, sign and support."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (count,):
        raise ValueError(f"weights must have shape ({count},), got {w.shape}")
    if not np.isfinite(w).all() or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    if np.count_nonzero(w) < 3:
        raise ValueError("a similarity fit needs at least 3 points with positive weight")
    return w / w.sum()


def _output_dtype(*inputs: ArrayLike) -> type[np.floating]:
    """float32 if every input array is float32, else float64."""
    all32 = all(np.asarray(x).dtype == np.float32 for x in inputs)
    return np.float32 if all32 else np.float64
