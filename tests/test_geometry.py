"""Tests of emoportrait.geometry: Euler angles, Umeyama, pose, GPA, frontalisation."""

from __future__ import annotations

import numpy as np
import pytest

from emoportrait.geometry import (
    Pose,
    align_expression,
    estimate_pose,
    euler_to_matrix,
    frontalize,
    generalized_procrustes,
    matrix_to_euler,
    project_to_image,
    umeyama,
)

N_POINTS = 400


def random_face(rng: np.random.Generator, n: int = N_POINTS) -> np.ndarray:
    """``(n, 3)`` points on a face-like ellipsoid cap, about 1 unit wide, centred near 0."""
    theta = rng.uniform(-1.2, 1.2, n)
    phi = rng.uniform(-1.0, 1.0, n)
    return np.stack(
        [0.5 * np.sin(theta) * np.cos(phi), 0.65 * np.sin(phi), -0.4 * np.cos(theta) * np.cos(phi)],
        axis=-1,
    )


def random_rotation(rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Uniformly random proper rotation(s) via QR of a Gaussian matrix."""
    shape = () if size is None else (size,)
    q, r = np.linalg.qr(rng.normal(size=(*shape, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]
    flip = np.linalg.det(q) < 0
    q[..., 0] = np.where(flip[..., None], -q[..., 0], q[..., 0])
    return q


def random_pose(rng: np.random.Generator, frames: int) -> Pose:
    angles = np.stack(
        [rng.uniform(-40, 40, frames), rng.uniform(-40, 40, frames), rng.uniform(-30, 30, frames)],
        axis=-1,
    )
    translation = np.stack(
        [
            rng.uniform(150, 600, frames),
            rng.uniform(100, 400, frames),
            rng.uniform(-50, 50, frames),
        ],
        axis=-1,
    )
    return Pose.from_euler(angles, rng.uniform(80, 300, frames), translation)


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = (np.trace(a.T @ b) - 1.0) / 2.0
    return float(np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0))))


# --------------------------------------------------------------------------- Euler


def test_euler_round_trip_and_orthonormal():
    rng = np.random.default_rng(0)
    angles = np.stack(
        [rng.uniform(-80, 80, 1000), rng.uniform(-80, 80, 1000), rng.uniform(-180, 180, 1000)],
        axis=-1,
    )
    rotation = euler_to_matrix(angles)
    assert rotation.shape == (1000, 3, 3)
    eye = np.broadcast_to(np.eye(3), rotation.shape)
    np.testing.assert_allclose(rotation @ np.swapaxes(rotation, -1, -2), eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-12)
    np.testing.assert_allclose(matrix_to_euler(rotation), angles, atol=1e-9)


def test_euler_matrix_order_is_rz_ry_rx():
    yaw, pitch, roll = 25.0, -10.0, 40.0
    rx = euler_to_matrix([0.0, pitch, 0.0])
    ry = euler_to_matrix([yaw, 0.0, 0.0])
    rz = euler_to_matrix([0.0, 0.0, roll])
    np.testing.assert_allclose(euler_to_matrix([yaw, pitch, roll]), rz @ ry @ rx, atol=1e-15)


def test_single_axis_directions():
    c, s = np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30))
    nose = np.array([0.0, 0.0, -1.0])  # a frontal face looks at the camera, along -z
    # yaw +30: +x tips toward the camera (-z), the nose turns to image left (-x)
    yaw = euler_to_matrix([30.0, 0.0, 0.0])
    np.testing.assert_allclose(yaw @ [1.0, 0.0, 0.0], [c, 0.0, -s], atol=1e-15)
    np.testing.assert_allclose(yaw @ nose, [-s, 0.0, -c], atol=1e-15)
    # pitch +30: the nose turns down in the image (+y)
    pitch = euler_to_matrix([0.0, 30.0, 0.0])
    np.testing.assert_allclose(pitch @ nose, [0.0, s, -c], atol=1e-15)
    # roll +30: +x turns toward +y (clockwise as seen in the image)
    roll = euler_to_matrix([0.0, 0.0, 30.0])
    np.testing.assert_allclose(roll @ [1.0, 0.0, 0.0], [c, s, 0.0], atol=1e-15)


@pytest.mark.parametrize("yaw", [90.0, -90.0])
def test_gimbal_lock_reconstructs_matrix(yaw):
    rotation = euler_to_matrix([yaw, 20.0, 35.0])
    angles = matrix_to_euler(rotation)
    assert angles[0] == pytest.approx(yaw)
    assert angles[2] == 0.0
    np.testing.assert_allclose(euler_to_matrix(angles), rotation, atol=1e-12)


def test_euler_bad_shapes():
    with pytest.raises(ValueError):
        euler_to_matrix(np.zeros((4, 2)))
    with pytest.raises(ValueError):
        matrix_to_euler(np.zeros((4, 3, 2)))


# --------------------------------------------------------------------------- Umeyama


def test_umeyama_exact_recovery():
    rng = np.random.default_rng(1)
    for _ in range(20):
        source = rng.normal(size=(50, 3))
        rotation = random_rotation(rng)
        scale = rng.uniform(0.1, 500.0)
        translation = rng.normal(scale=300.0, size=3)
        target = scale * source @ rotation.T + translation
        s, r, t = umeyama(source, target)
        assert s == pytest.approx(scale, rel=1e-12)
        np.testing.assert_allclose(r, rotation, atol=1e-9)
        np.testing.assert_allclose(t, translation, atol=1e-9 * max(1.0, scale))
        assert isinstance(s, float) and r.dtype == np.float64 and t.shape == (3,)


def test_umeyama_with_landmark_noise():
    rng = np.random.default_rng(2)
    source = random_face(rng) * 100.0  # a ~100 px face
    for _ in range(10):
        angles = [rng.uniform(-40, 40), rng.uniform(-40, 40), rng.uniform(-30, 30)]
        rotation = euler_to_matrix(angles)
        scale = rng.uniform(0.8, 3.0)
        target = scale * source @ rotation.T + [300.0, 200.0, 0.0]
        target += rng.normal(scale=0.5, size=target.shape)
        s, r, _ = umeyama(source, target)
        assert rotation_angle_deg(r, rotation) < 0.5
        assert s == pytest.approx(scale, rel=5e-3)


def test_umeyama_rigid_fixes_scale():
    rng = np.random.default_rng(3)
    source = rng.normal(size=(30, 3))
    rotation = random_rotation(rng)
    target = 2.0 * source @ rotation.T + [1.0, 2.0, 3.0]
    s, r, _ = umeyama(source, target, with_scale=False)
    assert s == 1.0
    np.testing.assert_allclose(r, rotation, atol=1e-9)


def test_umeyama_reflection_gives_proper_rotation():
    rng = np.random.default_rng(4)
    source = rng.normal(size=(40, 3))
    mirror = np.diag([-1.0, 1.0, 1.0])
    target = source @ mirror.T  # best orthogonal fit is a reflection
    _, r, _ = umeyama(source, target)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)

    # Planar points mirrored through their plane: the best rotation is the identity.
    planar = np.column_stack([rng.normal(size=(40, 2)), np.zeros(40)])
    s, r, t = umeyama(planar, planar * [1.0, 1.0, -1.0])
    np.testing.assert_allclose(r, np.eye(3), atol=1e-12)
    assert s == pytest.approx(1.0)
    np.testing.assert_allclose(t, 0.0, atol=1e-12)


def test_umeyama_zero_weight_outliers_ignored():
    rng = np.random.default_rng(5)
    source = rng.normal(size=(60, 3))
    rotation = random_rotation(rng)
    target = 3.0 * source @ rotation.T + [5.0, -2.0, 1.0]
    target[:10] += rng.normal(scale=50.0, size=(10, 3))
    weights = np.ones(60)
    weights[:10] = 0.0
    s, r, t = umeyama(source, target, weights=weights)
    assert s == pytest.approx(3.0, rel=1e-12)
    np.testing.assert_allclose(r, rotation, atol=1e-9)
    np.testing.assert_allclose(t, [5.0, -2.0, 1.0], atol=1e-9)
    _, r_unweighted, _ = umeyama(source, target)
    assert rotation_angle_deg(r_unweighted, rotation) > 1.0  # the outliers do matter


def test_umeyama_weights_scale_free():
    rng = np.random.default_rng(6)
    source, target = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    weights = rng.uniform(0.1, 2.0, 20)
    a = umeyama(source, target, weights=weights)
    b = umeyama(source, target, weights=7.0 * weights)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    np.testing.assert_allclose(a[1], b[1], atol=1e-12)
    # Weights really change the fit.
    c = umeyama(source, target)
    assert not np.allclose(a[1], c[1], atol=1e-6)


@pytest.mark.parametrize(
    ("source", "target", "weights"),
    [
        (np.zeros((5, 3)), np.zeros((6, 3)), None),  # mismatch
        (np.zeros((5, 2)), np.zeros((5, 2)), None),  # not 3-D
        (np.ones((2, 3)), np.ones((2, 3)), None),  # too few points
        (np.eye(4, 3), np.eye(4, 3), np.ones(3)),  # weights shape
        (np.eye(4, 3), np.eye(4, 3), [1.0, 1.0, 0.0, 0.0]),  # < 3 weighted points
        (np.eye(4, 3), np.eye(4, 3), [1.0, -1.0, 1.0, 1.0]),  # negative weight
        (np.ones((5, 3)), np.eye(5, 3), None),  # degenerate source
        (np.full((4, 3), np.nan), np.eye(4, 3), None),  # non-finite
    ],
)
def test_umeyama_rejects_bad_input(source, target, weights):
    with pytest.raises(ValueError):
        umeyama(source, target, weights=weights)


# --------------------------------------------------------------------------- Pose


def test_estimate_pose_recovers_synthetic_sequence():
    rng = np.random.default_rng(7)
    reference = random_face(rng)
    truth = random_pose(rng, 50)
    frames = truth.apply(reference) + rng.normal(scale=0.5, size=(50, N_POINTS, 3))
    pose = estimate_pose(frames.astype(np.float32), reference)
    assert len(pose) == 50
    assert pose.rotation.dtype == pose.scale.dtype == pose.translation.dtype == np.float64
    assert np.max(np.abs(pose.euler_degrees - truth.euler_degrees)) < 0.5
    np.testing.assert_allclose(pose.scale, truth.scale, rtol=5e-3)
    np.testing.assert_allclose(pose.translation, truth.translation, atol=2.0)


def test_estimate_pose_uses_only_indices():
    rng = np.random.default_rng(8)
    reference = random_face(rng, 100)
    truth = random_pose(rng, 5)
    frames = truth.apply(reference)
    frames[:, 50:] += rng.normal(scale=40.0, size=(5, 50, 3))  # non-rigid junk
    frames[:, 60] = np.nan  # junk may even be missing
    pose = estimate_pose(frames, reference, indices=np.arange(50))
    np.testing.assert_allclose(pose.rotation, truth.rotation, atol=1e-9)
    np.testing.assert_allclose(pose.scale, truth.scale, rtol=1e-12)
    np.testing.assert_allclose(pose.translation, truth.translation, atol=1e-8)
    with pytest.raises(ValueError):
        estimate_pose(frames, reference)  # NaN among the fitted points


def test_estimate_pose_bad_shapes():
    reference = np.eye(5, 3)
    with pytest.raises(ValueError):
        estimate_pose(np.zeros((4, 5, 2)), reference)
    with pytest.raises(ValueError):
        estimate_pose(np.zeros((4, 6, 3)), reference)
    with pytest.raises(ValueError):
        estimate_pose(np.zeros((4, 5, 3)), reference, indices=[0, 1, 5])
    with pytest.raises(ValueError):
        estimate_pose(np.zeros((4, 5, 3)), reference, indices=[0, 1])


def test_pose_validation_and_immutability():
    with pytest.raises(ValueError):
        Pose(np.zeros((2, 3, 3)), np.ones(3), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        Pose(np.zeros((2, 3, 3)), np.ones(2), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        Pose(np.zeros((2, 3)), np.ones(2), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        Pose(np.broadcast_to(np.eye(3), (2, 3, 3)), np.array([1.0, 0.0]), np.zeros((2, 3)))
    rotation = np.broadcast_to(np.eye(3), (2, 3, 3)).astype(np.float32)
    pose = Pose(rotation, [1, 2], np.zeros((2, 3)))
    assert pose.rotation.dtype == np.float64 and pose.scale.dtype == np.float64
    with pytest.raises(ValueError):
        pose.scale[0] = 3.0  # read-only
    with pytest.raises(AttributeError):
        pose.scale = np.ones(2)  # type: ignore[misc]


def test_pose_from_euler_broadcasts():
    pose = Pose.from_euler(np.zeros((3, 3)), 2.0, [1.0, 2.0, 3.0])
    assert len(pose) == 3
    np.testing.assert_array_equal(pose.scale, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(pose.translation, np.tile([1.0, 2.0, 3.0], (3, 1)))
    np.testing.assert_allclose(pose.euler_degrees, 0.0, atol=1e-12)
    with pytest.raises(ValueError):
        Pose.from_euler([0.0, 0.0, 0.0], 1.0, [0.0, 0.0, 0.0])


# --------------------------------------------------------------------------- mapping


def test_frontalize_project_round_trip_float64():
    rng = np.random.default_rng(9)
    pose = random_pose(rng, 20)
    canonical = rng.normal(size=(20, N_POINTS, 3))
    image = project_to_image(canonical, pose)
    assert image.dtype == np.float64
    np.testing.assert_allclose(frontalize(image, pose), canonical, rtol=1e-9, atol=1e-12)
    landmarks = rng.uniform(0, 640, size=(20, N_POINTS, 3))
    np.testing.assert_allclose(
        project_to_image(frontalize(landmarks, pose), pose), landmarks, rtol=1e-9
    )


def test_frontalize_project_round_trip_float32():
    rng = np.random.default_rng(10)
    pose = random_pose(rng, 20)
    landmarks = rng.uniform(0, 640, size=(20, N_POINTS, 3)).astype(np.float32)
    canonical = frontalize(landmarks, pose)
    assert canonical.dtype == np.float32
    back = project_to_image(canonical, pose)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, landmarks, atol=1e-4)


def test_project_matches_formula_and_broadcasts():
    rng = np.random.default_rng(11)
    pose = random_pose(rng, 4)
    face = random_face(rng, 30)
    image = pose.apply(face)
    assert image.shape == (4, 30, 3)
    for k in range(4):
        expected = pose.scale[k] * face @ pose.rotation[k].T + pose.translation[k]
        np.testing.assert_allclose(image[k], expected, rtol=1e-12)
    np.testing.assert_array_equal(image, project_to_image(np.broadcast_to(face, (4, 30, 3)), pose))
    # Frontalising a posed reference gives the reference back in every frame.
    np.testing.assert_allclose(
        frontalize(image, pose), np.broadcast_to(face, image.shape), atol=1e-12
    )


def test_mapping_bad_shapes():
    pose = Pose.from_euler(np.zeros((3, 3)), 1.0, np.zeros(3))
    with pytest.raises(ValueError):
        frontalize(np.zeros((4, 10, 3)), pose)  # frame count
    with pytest.raises(ValueError):
        frontalize(np.zeros((3, 10, 2)), pose)
    with pytest.raises(ValueError):
        project_to_image(np.zeros((2, 10, 3)), pose)
    with pytest.raises(ValueError):
        project_to_image(np.zeros((10, 2)), pose)
    with pytest.raises(ValueError):
        align_expression(np.zeros((11, 3)), np.zeros((3, 10, 3)), pose)
    with pytest.raises(ValueError):
        align_expression(np.zeros((10, 3)), np.zeros((2, 10, 3)), pose)


def test_align_expression():
    rng = np.random.default_rng(12)
    pose = random_pose(rng, 6)
    identity = random_face(rng, 50).astype(np.float32)
    zero = np.zeros((6, 50, 3), dtype=np.float32)
    out = align_expression(identity, zero, pose)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, pose.apply(identity), atol=1e-4)

    # A displacement in the canonical frame moves the image points by s R d.
    expression = rng.normal(scale=0.05, size=(6, 50, 3))
    out = align_expression(identity, expression, pose)
    assert out.dtype == np.float64
    moved = out - pose.apply(identity.astype(np.float64))
    expected = pose.scale[:, None, None] * np.einsum("tij,tnj->tni", pose.rotation, expression)
    np.testing.assert_allclose(moved, expected, atol=1e-9)
    # Frontalising the result recovers identity + expression.
    np.testing.assert_allclose(frontalize(out, pose), identity + expression, atol=1e-6)


# --------------------------------------------------------------------------- GPA


def _residual_rms(estimate: np.ndarray, truth: np.ndarray) -> float:
    """RMS distance after the best similarity fit of ``truth`` onto ``estimate``."""
    s, r, t = umeyama(truth, estimate)
    fitted = s * truth @ r.T + t
    return float(np.sqrt(np.mean(np.sum((fitted - estimate) ** 2, axis=-1))))


def test_gpa_recovers_shape_from_noisy_posed_copies():
    rng = np.random.default_rng(13)
    truth = random_face(rng)
    pose = random_pose(rng, 30)
    noise = 0.5  # px, on faces of 80-300 px
    shapes = pose.apply(truth) + rng.normal(scale=noise, size=(30, N_POINTS, 3))
    mean = generalized_procrustes(shapes.astype(np.float32))
    assert mean.shape == (N_POINTS, 3) and mean.dtype == np.float64
    np.testing.assert_allclose(mean.mean(axis=0), 0.0, atol=1e-12)
    assert np.sqrt(np.mean(np.sum(mean**2, axis=-1))) == pytest.approx(1.0, abs=1e-12)
    # Noise level of the mean in normalised units: per-frame 3D noise sqrt(3) * noise
    # / (scale * RMS radius of the truth), averaged over 30 frames.
    radius = np.sqrt(np.mean(np.sum((truth - truth.mean(axis=0)) ** 2, axis=-1)))
    expected = np.sqrt(3.0 * np.sum((noise / (pose.scale * radius)) ** 2)) / 30
    assert _residual_rms(mean, truth) < 1.3 * expected
    # A single shape is far noisier than the mean of 30.
    single = generalized_procrustes(shapes[:1])
    assert _residual_rms(single, truth) > 2.0 * _residual_rms(mean, truth)
    # Deterministic, and oriented like the first shape.
    np.testing.assert_array_equal(mean, generalized_procrustes(shapes.astype(np.float32)))
    _, r_first, _ = umeyama(shapes[0], mean)
    assert rotation_angle_deg(r_first, np.eye(3)) < 1.0


def test_gpa_exact_without_noise_and_indices_normalisation():
    rng = np.random.default_rng(14)
    truth = random_face(rng, 120)
    pose = random_pose(rng, 10)
    shapes = pose.apply(truth)
    idx = np.arange(0, 120, 2)
    shapes[:, 1::2] += rng.normal(scale=3.0, size=(10, 60, 3))  # noise off the indices only
    mean = generalized_procrustes(shapes, indices=idx)
    np.testing.assert_allclose(mean[idx].mean(axis=0), 0.0, atol=1e-12)
    assert np.sqrt(np.mean(np.sum(mean[idx] ** 2, axis=-1))) == pytest.approx(1.0, abs=1e-12)
    assert _residual_rms(mean[idx], truth[idx]) < 1e-9


def test_gpa_rejects_bad_input():
    shapes = np.random.default_rng(15).normal(size=(5, 20, 3))
    bad = shapes.copy()
    bad[3, 7, 1] = np.nan
    with pytest.raises(ValueError, match="row"):
        generalized_procrustes(bad)
    with pytest.raises(ValueError):
        generalized_procrustes(shapes[0])
    with pytest.raises(ValueError):
        generalized_procrustes(shapes[:0])
    with pytest.raises(ValueError):
        generalized_procrustes(shapes, max_iter=0)
    with pytest.raises(ValueError):
        generalized_procrustes(shapes, indices=[0, 1, 20])
