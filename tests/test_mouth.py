"""render.mouth and render.mouth_bank: the painted interior and a video's own mouths."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emoportrait import face
from emoportrait.render.mouth import (
    UPPER_CHAIN,
    MouthPainter,
    black_level,
    TeethStrip,
    bundled_strip,
    completed,
    face_light,
    lip_colour,
    match_colours,
    mouth_change,
    mouth_frame,
    teeth_strip,
    upper_lip_drop,
)
from emoportrait.render.mouth_bank import MouthBank
from emoportrait.render.raster import polygon_mask

from .test_render_warp import drop_jaw, face_height


@pytest.fixture(scope="module")
def landmarks(portrait: np.ndarray) -> np.ndarray:
    return face.track_frames([portrait], fps=None).landmarks[0]


def chroma(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB → ``(...,)`` distance from grey (a*, b* magnitude)."""
    lab = cv2.cvtColor(np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0, cv2.COLOR_RGB2LAB)
    return np.hypot(lab[..., 1], lab[..., 2]).reshape(np.shape(rgb)[:-1])


def test_the_bundled_teeth_are_light_and_cover_the_top_of_the_strip():
    strip, light = bundled_strip()
    skin_mean = light.skin_mean
    assert strip.texture.shape[:2] == strip.valid.shape and strip.depth > 0.2
    assert strip.valid[: len(strip.valid) // 3, 20:-20].mean() > 0.9   # all but the corners
    top = strip.texture[3:10, 30:-30]
    assert cv2.cvtColor(top.reshape(-1, 1, 3) / 255.0, cv2.COLOR_RGB2LAB)[..., 0].mean() > skin_mean[0] - 5


def test_teeth_are_cut_from_a_smile_and_not_from_closed_lips(portrait, landmarks):
    assert teeth_strip(portrait, landmarks) is not None        # the astronaut smiles with her teeth
    closed = drop_jaw(landmarks, -(landmarks[14, 1] - landmarks[13, 1]))  # her mouth shut in the landmarks
    assert teeth_strip(portrait, closed) is None


def test_only_what_the_teeth_cover_is_taken_and_the_dark_under_them_is_completed(portrait, landmarks):
    """Katie Hill's first frame shows the tips of her teeth over a black cavity: the cavity was taken
    for teeth and drew a black band across the middle of every opening."""
    scale = 3.0
    image = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    source = landmarks * scale
    mouth = mouth_frame(source)
    short = 0.08 * mouth.width                       # the teeth end this far under the upper lip
    rows, cols = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float64)
    along, down = np.moveaxis(mouth.to_mouth(np.stack([cols, rows], axis=-1)), -1, 0)
    cavity = (polygon_mask(source[face.GROUPS["inner_lips"], :2], image.shape[:2]) > 0) & (
        down > mouth.upper_at(along) + short)
    image[cavity] = (20, 10, 10)
    strip = teeth_strip(image, source)
    assert strip is not None
    v = np.linspace(0.0, strip.depth, strip.valid.shape[0])
    middle = slice(strip.valid.shape[1] // 3, -strip.valid.shape[1] // 3)
    assert strip.valid[v > 0.12, middle].max() < 0.05 and strip.valid[v < 0.06, middle].mean() > 0.75
    painter = MouthPainter.for_target(image, source)
    deep = painter.strip.valid[(v > 0.1) & (v < 0.14), middle]
    assert deep.mean() > 0.6                                            # the bundled teeth go on
    assert lightness(np.median(painter.strip.texture[(v > 0.1) & (v < 0.14), middle].reshape(-1, 3), axis=0)) > 60


def test_a_grey_photo_gets_a_grey_mouth(portrait, landmarks):
    grey = cv2.cvtColor(cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    strip, light = bundled_strip()
    recoloured = match_colours(strip, light, face_light(grey, landmarks))
    assert chroma(recoloured.texture).max() < 3 and chroma(strip.texture).mean() > 5
    painter = MouthPainter(recoloured, lip_colour(grey, landmarks))
    target = drop_jaw(landmarks, 0.2 * face_height(landmarks))
    out = grey.copy()
    painter.paint(out, target)
    assert np.any(out != grey) and chroma(out).max() < 3


def test_a_faded_photo_gets_a_mouth_no_darker_than_its_own_shadows(portrait, landmarks):
    faded = (60 + 0.7 * portrait).astype(np.uint8)                    # its black is 60 of 255
    assert np.all(black_level(faded) >= 60) and np.all(black_level(portrait) < 10)
    target = drop_jaw(landmarks, 0.2 * face_height(landmarks))
    inside = polygon_mask(target[face.GROUPS["inner_lips"], :2], portrait.shape[:2]) > 0.5
    darkest = {}
    for name, frame in (("faded", faded), ("sharp", portrait)):
        out = frame.copy()
        MouthPainter.for_target(frame, landmarks).paint(out, target)
        darkest[name] = out[inside].min()
    assert darkest["sharp"] < 40 and darkest["faded"] >= 57


def lightness(rgb: np.ndarray) -> float:
    """L* of one RGB colour."""
    return float(cv2.cvtColor(np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255.0, cv2.COLOR_RGB2LAB)[0, 0, 0])


def test_the_opening_meets_the_lips_in_their_colour_and_narrows_to_its_corners(portrait, landmarks):
    scale = 3.0  # a mouth about 60 px wide inside
    face_image = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    source = landmarks * scale
    target = drop_jaw(source, 0.15 * face_height(source))
    colour = lip_colour(face_image, source)
    out = np.empty_like(face_image)
    out[:] = np.round(colour).astype(np.uint8)   # lips all round the opening ...
    polygon = target[face.GROUPS["inner_lips"], :2]
    out[polygon_mask(polygon, out.shape[:2]) > 0] = 0   # ... and inside, what a warp leaves: the lip line, dark
    MouthPainter.for_target(face_image, source).paint(out, target)
    lips = lightness(colour)
    mouth = mouth_frame(target).smoothed()  # the opening as the painter draws it

    def at(along: float, depth_share: float, offset: float = 0.0) -> float:
        """L* of ``out`` at ``along`` (pixels from the centre), a share of the way down the opening."""
        top, bottom = mouth.upper_at(np.array([along]))[0], mouth.lower_at(np.array([along]))[0]
        x, y = np.round(mouth.to_pixels(np.array([along, top + depth_share * (bottom - top) + offset]))).astype(int)
        return lightness(out[y, x])

    cavity = at(0.0, 0.75)
    assert cavity < lips - 20                        # inside: the dark cavity
    edge = [at(0.0, 1.0, offset) for offset in np.arange(-2.5, 1.5, 0.5)]  # across the lower lip's edge
    assert min(edge) > cavity - 5 and abs(max(edge) - lips) < 8  # from the cavity to the lips, no dark rim
    assert abs(at(0.48 * mouth.width, 0.5) - lips) < 8  # toward the corners the lips meet: no dark wedge
    assert at(0.3 * mouth.width, 0.5) < lips - 20


def test_teeth_the_target_did_not_show_are_completed_in_its_own_teeth_colour():
    rows, columns = 8, 12
    own = np.zeros((rows, columns, 3), np.float32)
    own[:, 4:8] = (235.0, 230.0, 215.0)                # the middle teeth show ...
    valid = np.zeros((rows, columns), np.float32)
    valid[:, 4:8] = 1.0                                 # ... the back ones were in the dark
    fill = TeethStrip(np.full((16, columns, 3), (150.0, 140.0, 100.0), np.float32), np.ones((16, columns)), 0.6)
    result = completed(TeethStrip(own, valid, 0.3), fill)
    np.testing.assert_allclose(result.texture[:, 4:8], own[:, 4:8], atol=1e-3)   # its own teeth kept
    np.testing.assert_allclose(result.texture[:, :4], own[:, 4:8], atol=2.0)     # the rest in their colour
    assert result.valid.min() == pytest.approx(1.0) and result.depth == 0.3


def test_the_teeth_end_before_the_corners_and_meet_the_upper_lip_without_a_dark_line(portrait, landmarks):
    scale = 3.0
    face_image = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    source = landmarks * scale
    target = drop_jaw(source, 0.15 * face_height(source))
    painter = MouthPainter.for_target(face_image, source)
    colour = lip_colour(face_image, source)
    out = np.empty_like(face_image)
    out[:] = np.round(colour).astype(np.uint8)
    painter.paint(out, target)
    mouth = mouth_frame(target).smoothed()
    half = mouth.width / 2.0

    def teeth_row(along: np.ndarray, below: float) -> np.ndarray:
        """L* of ``out`` ``below`` pixels under the upper inner lip at ``along`` (pixels from the centre)."""
        points = mouth.to_pixels(np.stack([along, mouth.upper_at(along) + below], axis=1))
        x, y = np.round(points).astype(int).T
        return cv2.cvtColor(out[y, x][None].astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[0, :, 0]

    teeth = 0.05 * mouth.width
    middle, sides = teeth_row(np.linspace(-0.3, 0.3, 7) * half, teeth), teeth_row(np.array([-0.78, 0.78]) * half, teeth)
    assert sides.max() < middle.min() - 30           # the back teeth are in the cheeks' shadow
    edge = teeth_row(np.linspace(-0.4, 0.4, 41) * half, 0.0)   # on the upper arc itself
    # no dark line between lip and teeth (the teeth's own top row, under the lip, is a little darker;
    # edge pixels painted as the cavity drew a line at L* 18)
    assert edge.min() > lightness(colour) - 25


def test_an_open_mouth_closed_meets_in_a_lip_coloured_line_not_a_black_one(portrait, landmarks):
    """The astronaut smiles with her teeth; closed by the driver, the painter drew the meeting
    line of her lips in the cavity's colour: a black line (L* 5 against lips of 71)."""
    closed = drop_jaw(landmarks, -(landmarks[14, 1] - landmarks[13, 1]))
    painter = MouthPainter.for_target(portrait, landmarks)
    colour = lip_colour(portrait, landmarks)
    out = np.empty_like(portrait)
    out[:] = np.round(colour).astype(np.uint8)
    painter.paint(out, closed)
    mouth = mouth_frame(closed)
    line = mouth.to_pixels(np.stack([np.linspace(-0.3, 0.3, 13) * mouth.width,
                                     mouth.upper_at(np.linspace(-0.3, 0.3, 13) * mouth.width)], axis=1))
    x, y = np.round(line).astype(int).T
    darkest = min(lightness(out[yy, xx]) for xx, yy in zip(x, y))
    assert darkest > lightness(colour) - 35


def raise_upper_lip(landmarks: np.ndarray, lift: float) -> np.ndarray:
    """The upper inner lip's middle raised by ``lift`` pixels, tapering to 0 at the corners."""
    raised = landmarks.copy()
    chain = UPPER_CHAIN[1:-1]
    x = landmarks[chain, 0]
    raised[chain, 1] -= lift * (1.0 - ((x - x.mean()) / (np.ptp(landmarks[UPPER_CHAIN, 0]) / 2.0)) ** 2)
    return raised


def test_a_raised_upper_lip_uncovers_the_skull_fixed_upper_teeth(portrait, landmarks):
    scale = 3.0
    face_image = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    source = landmarks * scale
    painter = MouthPainter.for_target(face_image, source, rest_drop=upper_lip_drop(source))
    opened = drop_jaw(source, 0.2 * face_height(source))
    width = mouth_frame(opened).width
    raised = raise_upper_lip(opened, 0.06 * width)
    assert painter.teeth_height(opened) == pytest.approx(painter.config.teeth_height, abs=0.01)
    assert painter.teeth_height(raised) == pytest.approx(painter.config.teeth_height + 0.06, abs=0.015)
    moved = raised * 0.7 + np.array([40.0, -25.0, 0.0])   # head motion and size change nothing
    assert painter.teeth_height(moved) == pytest.approx(painter.teeth_height(raised), abs=1e-6)
    assert painter.teeth_height(drop_jaw(opened, -0.1 * width)) == painter.config.teeth_height  # never fewer

    def light_share(target: np.ndarray) -> float:
        """Share of the interior (its upper 60 %) lighter than the lips: teeth."""
        out = np.zeros_like(face_image)
        painter.paint(out, target)
        mouth = mouth_frame(target).smoothed()
        along = np.linspace(-0.3, 0.3, 13) * mouth.width
        top, bottom = mouth.upper_at(along), mouth.lower_at(along)
        points = np.concatenate([mouth.to_pixels(np.stack([along, top + f * (bottom - top)], axis=1))
                                 for f in np.linspace(0.05, 0.6, 12)])
        x, y = np.round(points).astype(int).T
        return float(np.mean([lightness(out[yy, xx]) > lightness(lip_colour(face_image, source)) for xx, yy in zip(x, y)]))

    assert light_share(raised) > light_share(opened) + 0.07   # 0.22 against 0.12; 0.12 when the teeth rose with the lip


def test_the_mouth_change_ignores_head_motion(landmarks):
    matrix = cv2.getRotationMatrix2D((128.0, 100.0), 12.0, 1.3)
    moved = landmarks.copy()
    moved[:, :2] = landmarks[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    assert mouth_change(landmarks, moved) < 1e-6
    opened = drop_jaw(landmarks, 0.1 * face_height(landmarks))
    assert mouth_change(landmarks, opened) > 0.05


def test_the_bank_chooses_the_frame_with_the_driven_mouth_and_sticks_to_it(landmarks):
    openings = np.linspace(0.0, 0.25, 11) * face_height(landmarks)
    frames = np.stack([drop_jaw(landmarks, k) for k in openings])
    bank = MouthBank(frames, np.ones(len(frames), bool))
    assert bank.choose(drop_jaw(landmarks, openings[7])) == 7
    assert bank.choose(drop_jaw(landmarks, 0.5 * (openings[7] + openings[8]) + 0.1)) in (7, 8)
    bank.reset()
    assert bank.choose(drop_jaw(landmarks, openings[3])) == 3
    assert bank.choose(drop_jaw(landmarks, 2.0 * face_height(landmarks))) is None   # nothing that open


def test_the_inner_lips_are_drawn_as_smooth_arcs_through_their_points(landmarks):
    target = drop_jaw(landmarks, 0.12 * face_height(landmarks))
    tracked, smooth = mouth_frame(target), mouth_frame(target).smoothed()
    for chain in (smooth.upper, smooth.lower):  # from corner to corner, where the depth is 0
        assert chain[0, 0] == pytest.approx(-tracked.width / 2) and chain[-1, 0] == pytest.approx(tracked.width / 2)
        assert abs(chain[0, 1]) < 1e-6 and abs(chain[-1, 1]) < 1e-6
        assert np.abs(np.diff(chain[:, 1], 2)).max() < 0.05 * tracked.width  # no kinks
    assert np.all(smooth.lower[:, 1] >= smooth.upper[:, 1])
    middle = np.zeros(1)
    opening = tracked.lower_at(middle) - tracked.upper_at(middle)
    assert smooth.lower_at(middle) - smooth.upper_at(middle) == pytest.approx(opening, rel=0.15)
