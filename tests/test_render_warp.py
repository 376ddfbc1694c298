"""render.warp: piecewise-affine face warp over the face mesh, with a painted mouth interior."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emoportrait import face
from emoportrait.render import WarpConfig, WarpRenderer
from emoportrait.face import face_size
from emoportrait.render.creases import CreaseConfig
from emoportrait.render.warp import anchor_ring


@pytest.fixture(scope="module")
def landmarks(portrait: np.ndarray) -> np.ndarray:
    """``(478, 3)`` landmarks tracked on the astronaut portrait."""
    return face.track_frames([portrait], fps=None).landmarks[0]


def drop_jaw(landmarks: np.ndarray, k: float) -> np.ndarray:
    """Open the mouth by ``k`` pixels: the lower lip, chin and the lower face below them move
    straight down by ``k``, fading to 0 at the upper inner lip's height and at the face's sides."""
    oval = landmarks[face.GROUPS["face_oval"], :2]
    centre_x, half_width = (oval[:, 0].min() + oval[:, 0].max()) / 2, np.ptp(oval[:, 0]) / 2
    upper, lower = landmarks[13, 1], landmarks[14, 1]
    below = np.clip((landmarks[:, 1] - upper) / (lower - upper), 0, 1)
    central = np.clip(2 * (1 - np.abs(landmarks[:, 0] - centre_x) / half_width), 0, 1)
    target = landmarks.copy()
    target[:, 1] += k * below * central
    return target


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def polygon_mask(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[:, :2]).astype(np.int32)], 1)
    return mask.astype(bool)


def face_height(landmarks: np.ndarray) -> float:
    return float(np.ptp(landmarks[face.GROUPS["face_oval"], 1]))


def test_identity_returns_the_frame(portrait, landmarks):
    out = WarpRenderer().render(portrait, landmarks, landmarks)
    assert out.shape == portrait.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - portrait).max() <= 1


def test_pixels_outside_the_anchor_ring_are_untouched(portrait, landmarks):
    target = drop_jaw(landmarks, 0.25 * face_height(landmarks))
    for margin in (0.1, 0.35):
        out = WarpRenderer(WarpConfig(margin=margin)).render(portrait, landmarks, target)
        ring = anchor_ring(landmarks, target, margin * face_size(landmarks), WarpConfig().ring_points)
        inside = cv2.dilate(polygon_mask(ring, portrait.shape).astype(np.uint8), np.ones((3, 3))).astype(bool)
        changed = np.any(out != portrait, axis=2)
        assert changed.any() and not (changed & ~inside).any()
    assert np.array_equal(out[200:], portrait[200:])  # the suit
    assert np.array_equal(out[:20, :20], portrait[:20, :20]) and np.array_equal(out[:20, -20:], portrait[:20, -20:])


def test_dropped_jaw_moves_the_content_by_the_imposed_amount(landmarks):
    # A vertical ramp (green = row) reads the vertical displacement straight off the output.
    rows = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None], (256, 256))
    ramp = np.stack([np.full_like(rows, 128), rows, np.full_like(rows, 128)], axis=-1)
    k = 8.0
    target = drop_jaw(landmarks, k)
    out = WarpRenderer().render(ramp, landmarks, target)
    chin = np.round(target[[18, 200, 199], :2]).astype(int)  # between the lower lip and the chin
    shift = ramp[chin[:, 1], chin[:, 0], 1].astype(float) - out[chin[:, 1], chin[:, 0], 1]
    np.testing.assert_allclose(shift, k, atol=1.0)


def test_retracked_mouth_opens(portrait, landmarks):
    # over three openings: the tracker reads one small mouth (40 px wide) within a few pixels
    drops = np.array([0.1, 0.15, 0.2]) * face_height(landmarks)
    renderer = WarpRenderer()
    outs = [renderer.render(portrait, landmarks, drop_jaw(landmarks, k)) for k in drops]
    retracked = face.track_frames(outs, fps=None).landmarks
    gains = face.inner_mouth_opening(retracked) - face.inner_mouth_opening(landmarks)
    assert gains.mean() >= 0.5 * drops.mean() and gains[-1] > gains[0]


def test_opened_mouth_shows_upper_teeth_over_a_dark_cavity(portrait, landmarks):
    target = drop_jaw(landmarks, 0.2 * face_height(landmarks))
    inner = polygon_mask(target[face.GROUPS["inner_lips"]], portrait.shape)
    lips = polygon_mask(target[face.GROUPS["outer_lips"]], portrait.shape) & ~cv2.dilate(
        inner.astype(np.uint8), np.ones((3, 3))).astype(bool)
    top, bottom = target[13, 1], target[14, 1]
    x = int(round((target[13, 0] + target[14, 0]) / 2))
    upper_band = slice(int(np.ceil(top)) + 1, int(round(top + 0.25 * (bottom - top))) + 1)
    middle_band = slice(int(round(top + 0.4 * (bottom - top))), int(round(top + 0.6 * (bottom - top))) + 1)
    out = luminance(WarpRenderer().render(portrait, landmarks, target))
    column = out[:, x - 2:x + 3].mean(axis=1)
    assert column[middle_band].mean() < out[lips].mean() - 30           # a dark cavity
    assert column[upper_band].max() > column[middle_band].mean() + 60   # teeth under the upper lip


def test_smoothly_opening_mouth_gives_smoothly_changing_frames(portrait, landmarks):
    renderer = WarpRenderer()
    targets = [drop_jaw(landmarks, k) for k in np.linspace(0, 0.25 * face_height(landmarks), 25)]
    frames = np.stack([renderer.render(portrait, landmarks, t) for t in targets]).astype(float)
    x0, y0 = np.floor(targets[-1][face.GROUPS["outer_lips"], :2].min(axis=0)).astype(int) - 3
    x1, y1 = np.ceil(targets[-1][face.GROUPS["outer_lips"], :2].max(axis=0)).astype(int) + 3
    steps = np.abs(np.diff(frames[:, y0:y1, x0:x1], axis=0)).mean(axis=(1, 2, 3))
    assert steps.min() > 0 and steps.max() <= 3 * np.median(steps)


@pytest.mark.parametrize("offset", [(-110.0, 0.0), (0.0, 170.0), (150.0, -60.0), (1000.0, 1000.0)])
def test_landmarks_partly_outside_the_frame(portrait, landmarks, offset):
    source = landmarks + np.array([*offset, 0.0], np.float32)
    out = WarpRenderer().render(portrait, source, drop_jaw(source, 0.25 * face_height(landmarks)))
    assert out.shape == portrait.shape and out.dtype == np.uint8


def test_wrong_shapes_are_rejected(portrait, landmarks):
    with pytest.raises(ValueError, match="source and target"):
        WarpRenderer().render(portrait, landmarks, landmarks[:68])
    with pytest.raises(ValueError, match="frame"):
        WarpRenderer().render(portrait[..., 0], landmarks, landmarks)


def test_squeezed_skin_darkens_only_where_folds_form(portrait, landmarks):
    from emoportrait.render.warp import _compression

    rotation = np.array([[np.cos(0.3), -np.sin(0.3), 5.0], [np.sin(0.3), np.cos(0.3), -2.0]])
    squeeze = np.array([[1.0, 0.0, 0.0], [0.0, 1.3, 0.0]])          # output squeezed 1.3x along y
    compression = _compression(np.stack([1.7 * rotation] * 10 + [squeeze * 1.7]))
    np.testing.assert_allclose(compression[:10], 0.0, atol=1e-9)      # head motion and zoom: no fold
    assert compression[10] == pytest.approx(np.log(1.3), abs=0.02)
    target = landmarks.copy()
    folds = [206, 216, 426, 436]                                      # the nasolabial folds
    target[folds, 0] += np.sign(target[folds, 0] - target[1, 0]) * -3.0  # cheeks pushed toward the nose
    plain = WarpRenderer(WarpConfig(fold_shading=0.0)).render(portrait, landmarks, target)
    shaded = WarpRenderer().render(portrait, landmarks, target)
    darker = luminance(plain) - luminance(shaded)
    assert darker.max() > 3 and darker.min() >= -1
    assert np.abs(darker[: int(landmarks[9, 1])]).max() < 1             # nothing above the brows


def test_a_sliver_triangle_samples_only_near_its_own_corners(landmarks):
    """The jaw's triangle (58, 172, 215) squeezed into a line, just folded over: pixels the
    rasteriser gives it must not fetch the frame from far away (stray dark specks on the
    astronaut's jaw; 78 px away before)."""
    rows, cols = np.mgrid[:256, :256]
    frame = np.stack([cols, rows, np.zeros_like(rows)], axis=-1).astype(np.uint8)  # colour = position
    target = landmarks.astype(np.float64).copy()
    line = target[215, :2] - target[58, :2]
    normal = np.array([-line[1], line[0]]) / np.linalg.norm(line)
    target[172, :2] = (target[58, :2] + target[215, :2]) / 2 - 0.2 * normal
    out = WarpRenderer(WarpConfig(creases=CreaseConfig(depth=0.0), fold_shading=0.0)).render(frame, landmarks, target)
    moved = float(np.linalg.norm(target[172, :2] - landmarks[172, :2]))
    fetched = np.linalg.norm(out[..., :2].astype(float) - np.stack([cols, rows], axis=-1), axis=-1)
    assert fetched.max() < moved + 3.0
