"""The mouth interior: real teeth, a dark shaded cavity, coloured like the target.

Inside a driven mouth, the warp would only stretch what the target frame shows
there: a thin dark line for a closed mouth, the person's teeth pulled into stripes
for an open one. :class:`MouthPainter` paints the interior instead, in layers, in
*mouth coordinates* of the driven landmarks: ``u`` across the mouth (-1 and 1 at the
inner corners), ``v`` down from the upper inner lip in units of the inner mouth width.

* The **cavity**: the colour of the target's lips, darkened (a black-and-white photo
  gets a grey mouth), no darker than the photo's own black (:func:`black_level`: a
  faded photo gets no pitch-black hole), shaded darker toward the middle and the bottom, with the
  tongue's back rising in a wide-open mouth and the lips' wet inner surface at the
  lower lip and the corners.
* The **teeth**: a :class:`TeethStrip`, a texture of real teeth in ``(u, v)``. The
  upper ones hang from the upper inner lip and are never stretched by the opening;
  they are fixed to the skull, so an upper lip that rises above where it rests
  (opening, smiling, snarling: :func:`upper_lip_drop`) shows more of them, and the
  lower lip covers what the opening does not show. The
  lower front teeth (the strip mirrored, in shadow) show on the lower lip when the
  mouth opens wide. A nearly closed mouth is dark inside. The strip is cut from the
  target itself when it shows its teeth (:func:`teeth_strip`), else it is the bundled
  one (scikit-image's public-domain astronaut portrait, :func:`bundled_strip`),
  colour-matched to the target's lighting: its skin and the whites of its eyes
  (:func:`match_colours`).
* The **lips' inner surface**: the opening narrows to a point at the corners, where
  the lips meet, and meets the lips in their own colours (continued inward from the
  frame), not in a rim of whatever the warp stretched there.

Colours are RGB 0-255 float32 arrays; landmarks ``(478, 2+)`` pixels.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from ..face.landmarks import GROUPS, contour_halves
from ..media import resize
from ..ramps import smoothstep
from .raster import clipped_box, polygon_mask

_INNER_LIPS = GROUPS["inner_lips"]
_OUTER_LIPS = GROUPS["outer_lips"]
_CORNER_LEFT, _CORNER_RIGHT = 78, 308    # inner mouth corners (image left, image right)
_UPPER_LIP_MIDDLE = 13                   # the upper inner lip's middle
_SUBNASALE, _NOSE_BRIDGE = 2, 168        # the nose's base and its bridge between the eyes
_ARC_SAMPLES = 33      # points of each smoothed inner-lip arc (MouthFrame.smoothed)
_TEETH_OVER_SKIN = 8.0  # L*: teeth are lighter than the skin around the mouth in portraits
BLACK_PERCENTILE = 0.5  # a photo's black: this percentile of each channel over the frame
BUNDLED_STRIP = "astronaut_teeth.npz"
"""Package data file of the bundled strip (made by ``scripts/make_mouth_bank.py``)."""


@dataclass(frozen=True)
class MouthConfig:
    """Settings of the painted interior (lengths in inner mouth widths unless stated)."""

    strip_rows: int = 32               # texture rows of a teeth strip
    strip_columns: int = 96            # texture columns (across the mouth)
    strip_depth: float = 0.35          # a strip covers v in [0, strip_depth]
    min_teeth_opening: float = 0.12    # a frame shows its teeth when its middle opening is this wide
    min_teeth_contrast: float = 10.0   # ... and the lightest tenth of what it shows there is this much
                                       # lighter (L*) than its lips
    cavity_gain: float = 0.12          # cavity colour: the lips' colour times this (linear light)
    tongue_gain: float = 0.45          # tongue colour: the lips' colour times this (linear light)
    tongue_top: float = 0.55           # the tongue's top, as a fraction of the opening from the top ...
    tongue_min_opening: float = 0.15   # ... shown once the mouth opens this wide (mouth widths)
    tongue_half_width: float = 0.75    # its half width (of the half mouth width)
    lip_inner_gain: float = 0.5        # the lips' inner surface, from their colour at the opening's edge
                                       # to it times this (linear light), feather_fraction inside ...
    lip_margin: float = 0.03           # ... and this far above the lower lip (the lower teeth stand on it)
    corner_taper: float = 0.35         # over this outer share of each half mouth, the visible opening
                                       # narrows from the inner lips' gap to a point (times 1 - e², e from 0
                                       # to 1): the lips meet at the corners, where the tracked inner lips of
                                       # real faces stay open (0.38 of the middle gap 7 % of the width from
                                       # the corner, on benchmarks/realism.py's clips)
    cavity_bottom_shade: float = 0.4   # the cavity darkens by this much toward its bottom
    cavity_centre_shade: float = 0.45  # ... and by this much toward its centre line
    teeth_height: float = 0.1          # visible length of the upper teeth below the upper lip at rest; a
                                       # lip raised above its rest shows that much more (at most the strip's)
    teeth_span: float = 0.7            # the teeth fade out past this share of the half mouth (the cheeks
                                       # hide the back ones; the strip's ends show the source's lip corners)
    lower_teeth_height: float = 0.06   # ... of the lower teeth above the lower lip's inner surface
    lower_teeth_shade: float = 0.75    # the lower teeth, in the shadow of the upper ones, are this bright
    lower_teeth_span: float = 0.4      # ... and show across this much of the half mouth (the front ones:
                                       # wider, they drew a grey ring along the whole lower lip)
    lower_teeth_skip: float = 0.04     # they show the strip from this depth on (past its lip shadow)
    lower_teeth_opening: float = 0.2   # the lower lip uncovers them as the mouth opens past this ...
    lower_teeth_reveal: float = 0.1    # ... fully this much wider
    teeth_edge: float = 0.02           # the teeth's edges fade over this length
    shadow_opening: float = 0.15       # a mouth opened less than this is in shadow inside ...
    shadow_depth: float = 0.3          # ... down to this brightness when nearly closed
    teeth_opening: float = 0.02        # the teeth show once the lips part this much ...
    teeth_reveal: float = 0.05         # ... fully this much wider (a slit is a dark line)
    corner_shade: float = 0.3          # teeth darken by this much toward the corners (buccal shadow)
    lip_shadow: float = 0.1            # teeth darken by this much right under the upper lip
    lip_shadow_depth: float = 0.04     # ... fading out over this depth
    feather_fraction: float = 0.025    # a closed mouth's interior fades in from its edge over this, an
                                       # open one's meets the lower lip over it (mouth widths)
    lip_line: float = 0.012            # the lips are continued inward over a ring this wide (mouth widths,
                                       # at least a pixel) round the interior: the target's closed lip line,
                                       # which the warp stretches along the opening's edge, goes with it


@dataclass(frozen=True)
class TeethStrip:
    """Upper teeth as a texture in mouth coordinates.

    Attributes:
        texture: ``(V, U, 3)`` float32 RGB; row ``i`` at ``v = i / (V - 1) * depth``,
            column ``j`` at ``u = 2 j / (U - 1) - 1``.
        valid: ``(V, U)`` float32 in [0, 1]: 1 where the texture saw the interior (for a
            target's own teeth, in the columns where they show).
        depth: ``v`` of the last row (inner mouth widths).
    """

    texture: np.ndarray
    valid: np.ndarray
    depth: float


@dataclass(frozen=True)
class MouthFrame:
    """Mouth coordinates of one face: ``origin`` ``(2,)`` (midpoint of the inner corners),
    ``axes`` ``(2, 2)`` (rows: unit vectors across the mouth, and 90° toward the chin),
    ``width`` (inner corner to corner, pixels) and the inner-lip chains in mouth
    coordinates (pixels), ``upper`` and ``lower``, each ``(K, 2)`` sorted by ``along``."""

    origin: np.ndarray
    axes: np.ndarray
    width: float
    upper: np.ndarray
    lower: np.ndarray

    def to_mouth(self, pixels: np.ndarray) -> np.ndarray:
        """``(..., 2)`` pixels → ``(..., 2)`` (along, down) pixels in mouth coordinates."""
        return (pixels - self.origin) @ self.axes.T

    def to_pixels(self, mouth: np.ndarray) -> np.ndarray:
        """``(..., 2)`` mouth coordinates → pixels."""
        return mouth @ self.axes + self.origin

    def upper_at(self, along: np.ndarray) -> np.ndarray:
        """Depth (pixels, mouth coordinates) of the upper inner lip at ``along``."""
        return np.interp(along, self.upper[:, 0], self.upper[:, 1])

    def lower_at(self, along: np.ndarray) -> np.ndarray:
        """Depth of the lower inner lip at ``along``."""
        return np.interp(along, self.lower[:, 0], self.lower[:, 1])

    def smoothed(self, samples: int = _ARC_SAMPLES) -> MouthFrame:
        """The same mouth with each inner lip a smooth arc through its points.

        Landmarks give each inner lip as a chain of ten points; a warp that drops the
        jaw moves the middle ones more than those by the corners, so the chain has kinks
        (an opening drawn through it reads as a trapezoid). Each chain is fitted (least
        squares) with ``depth(u) = (1 - u²)(a + b u + c u²)``, ``u`` from -1 to 1 between
        the corners: it passes through both corners, meets them in a point as lips do, and
        can lean to one side. The lower arc never rises above the upper one. ``samples``
        points per arc.
        """
        half = self.width / 2.0
        u = np.linspace(-1.0, 1.0, samples)
        arcs = []
        for chain in (self.upper, self.lower):
            x = np.clip(chain[:, 0] / half, -1.0, 1.0)
            basis = (1.0 - x * x)[:, None] * np.stack([np.ones_like(x), x, x * x], axis=1)
            coefficients = np.linalg.lstsq(basis, chain[:, 1] - np.interp(x, [-1.0, 1.0], chain[[0, -1], 1]),
                                           rcond=None)[0]
            ends = np.interp(u, [-1.0, 1.0], chain[[0, -1], 1])
            arcs.append(ends + (1.0 - u * u) * (coefficients[0] + coefficients[1] * u + coefficients[2] * u * u))
        upper, lower = arcs[0], np.maximum(arcs[1], arcs[0])
        along = u * half
        return MouthFrame(self.origin, self.axes, self.width,
                          np.stack([along, upper], axis=1), np.stack([along, lower], axis=1))

    def outline(self) -> np.ndarray:
        """``(2K - 2, 2)`` pixels: the opening's outline, along the upper chain and back along the lower."""
        return self.to_pixels(np.concatenate([self.upper, self.lower[-2:0:-1]]))


UPPER_CHAIN, LOWER_CHAIN = contour_halves("inner_lips")
"""The upper and lower inner-lip chains, each from the image-left corner to the right one."""


def mouth_frame(landmarks: np.ndarray) -> MouthFrame:
    """:class:`MouthFrame` of ``(478, 2+)`` landmark pixels."""
    left, right = landmarks[_CORNER_LEFT, :2].astype(np.float64), landmarks[_CORNER_RIGHT, :2].astype(np.float64)
    width = max(float(np.linalg.norm(right - left)), 1e-3)
    across = (right - left) / width
    axes = np.array([across, [-across[1], across[0]]])
    origin = (left + right) / 2.0
    chains = []
    for chain in (UPPER_CHAIN, LOWER_CHAIN):
        points = (landmarks[chain, :2] - origin) @ axes.T
        chains.append(points[np.argsort(points[:, 0])])
    return MouthFrame(origin, axes, width, *chains)


def mouth_change(source: np.ndarray, target: np.ndarray) -> float:
    """How much the inner lips of ``(478, 2+)`` ``target`` differ from those of ``source``:
    RMS distance of the inner-lip points in each face's mouth coordinates, in mouth widths
    (head motion and size cancel out)."""
    shapes = []
    for landmarks in (source, target):
        coordinates = mouth_frame(landmarks)
        shapes.append(coordinates.to_mouth(landmarks[_INNER_LIPS, :2].astype(np.float64)) / coordinates.width)
    return float(np.sqrt(((shapes[0] - shapes[1]) ** 2).sum(-1).mean()))


def nose_length(landmarks: np.ndarray) -> float:
    """Pixels from the nose's bridge (between the eyes) to its base in ``(478, 2+)`` landmark pixels."""
    return max(float(np.linalg.norm(landmarks[_SUBNASALE, :2] - landmarks[_NOSE_BRIDGE, :2])), 1e-3)


def upper_lip_drop(landmarks: np.ndarray) -> float:
    """How far the upper inner lip's middle hangs below the nose's base, along the mouth's
    down axis, in :func:`nose_length` units of ``(478, 2+)`` landmark pixels. The nose is
    fixed to the skull, as the upper teeth are: the lip rising above its rest drop uncovers them."""
    down = mouth_frame(landmarks).axes[1]
    return float((landmarks[_UPPER_LIP_MIDDLE, :2] - landmarks[_SUBNASALE, :2]) @ down / nose_length(landmarks))


# ------------------------------------------------------------------ colour helpers


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0-255 → linear light 0-1."""
    c = np.asarray(rgb, np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light 0-1 → sRGB 0-255."""
    c = np.clip(linear, 0.0, 1.0)
    return 255.0 * np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB 0-255 → CIE L*a*b* (float32)."""
    flat = np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(np.shape(rgb))


def _rgb(lab: np.ndarray) -> np.ndarray:
    """``(..., 3)`` L*a*b* → RGB 0-255 (float32)."""
    flat = np.asarray(lab, np.float32).reshape(-1, 1, 3)
    return 255.0 * np.clip(cv2.cvtColor(flat, cv2.COLOR_LAB2RGB).reshape(np.shape(lab)), 0.0, 1.0)


def _ring_pixels(frame: np.ndarray, inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """``(N, 3)`` pixels inside polygon ``outer`` and outside polygon ``inner`` (both ``(K, 2)``)."""
    shape = frame.shape[:2]
    inside = (polygon_mask(outer, shape) > 0.5) & (polygon_mask(inner, shape) < 0.5)
    return frame[inside].astype(np.float32)


def lip_colour(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``(3,)`` median RGB of the lips (between the outer and inner contours)."""
    pixels = _ring_pixels(frame, landmarks[_INNER_LIPS, :2], landmarks[_OUTER_LIPS, :2])
    return np.median(pixels, axis=0) if len(pixels) else np.array([150.0, 90.0, 90.0], np.float32)


@dataclass(frozen=True)
class FaceLight:
    """How a face is lit, to recolour teeth taken from another face.

    Attributes:
        skin_mean, skin_std: ``(3,)`` mean and spread in L*a*b* of the skin around the mouth.
        white: ``(3,)`` L*a*b* of the whites of the eyes (the lighting's white), or None
            when too little of them shows (closed eyes).
    """

    skin_mean: np.ndarray
    skin_std: np.ndarray
    white: np.ndarray | None


def _sclera(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """``(3,)`` mean L*a*b* of the lightest tenth of the eyes' pixels outside the irises
    (the rest is lids, lashes and shadow in all but wide-open eyes)."""
    shape = frame.shape[:2]
    inside = np.zeros(shape, bool)
    for side in ("right", "left"):
        eye = polygon_mask(landmarks[GROUPS[f"{side}_eye"], :2].astype(np.float64), shape) > 0.5
        iris = landmarks[GROUPS[f"{side}_iris"], :2].astype(np.float64)
        radius = 1.15 * float(np.linalg.norm(iris[1:] - iris[0], axis=1).mean())
        rows, cols = np.ogrid[:shape[0], :shape[1]]
        outside_iris = (cols - iris[0, 0]) ** 2 + (rows - iris[0, 1]) ** 2 > radius ** 2
        inside |= eye & outside_iris
    if inside.sum() < 12:
        return None
    lab = _lab(frame[inside].astype(np.float32))
    lighter = lab[lab[:, 0] >= np.percentile(lab[:, 0], 90)]
    return lighter.mean(axis=0)


def black_level(frame: np.ndarray) -> np.ndarray:
    """``(3,)`` RGB black of a photo: each channel's ``BLACK_PERCENTILE`` over the frame.

    A hazy, faded or low-contrast photo has no true black (the glasses portrait of
    ``shared/media``: 51, 40 and 28 of 255); a mouth painted darker than its darkest
    shadows looks pasted on. A frame with real blacks gives about 0: no change."""
    return np.percentile(frame.reshape(-1, 3), BLACK_PERCENTILE, axis=0).astype(np.float32)


def face_light(frame: np.ndarray, landmarks: np.ndarray) -> FaceLight:
    """:class:`FaceLight` of a face: the skin in a band from the outer lips out to twice
    their size about the mouth centre, and the whites of the eyes."""
    outer = landmarks[_OUTER_LIPS, :2].astype(np.float64)
    centre = outer.mean(axis=0)
    band = (outer - centre) * np.array([1.4, 2.2]) + centre
    lab = _lab(_ring_pixels(frame, outer, band))
    if len(lab) < 10:
        mean, std = np.array([60.0, 15.0, 20.0]), np.array([8.0, 4.0, 4.0])
    else:
        mean, std = lab.mean(axis=0), lab.std(axis=0) + 1e-3
    return FaceLight(mean, std, _sclera(frame, landmarks))


def match_colours(strip: TeethStrip, source: FaceLight, target: FaceLight) -> TeethStrip:
    """The strip recoloured from one face's lighting to another's.

    In L*a*b*: the chroma (a*, b*) is scaled by the ratio of the skins' chroma, at most
    1.2 (a grey target gets grey teeth). With the whites of both faces' eyes seen, the
    teeth keep their lightness and colour offsets from those whites (teeth and sclera
    are near-white surfaces under the same light); else the lightness keeps its offset
    from the skin's, scaled by the square root of the ratio of the skins' spreads. Either
    way the teeth end up at least ``_TEETH_OVER_SKIN`` lighter than the skin (median).
    """
    lab = _lab(strip.texture)
    chroma = float(np.clip(np.hypot(*target.skin_mean[1:]) / max(float(np.hypot(*source.skin_mean[1:])), 1e-3),
                           0.0, 1.2))
    if source.white is not None and target.white is not None:
        lightness = lab[..., 0] - source.white[0] + target.white[0]
        colour = (lab[..., 1:] - source.white[1:]) * chroma + target.white[1:] * min(chroma, 1.0)
    else:
        contrast = float(np.sqrt(np.clip(target.skin_std[0] / source.skin_std[0], 0.25, 4.0)))
        lightness = (lab[..., 0] - source.skin_mean[0]) * contrast + target.skin_mean[0]
        colour = lab[..., 1:] * chroma
    seen = strip.valid > 0.9
    if seen.any():  # dark, small eyes would give dark teeth: keep them lighter than the skin
        lightness = lightness + max(0.0, target.skin_mean[0] + _TEETH_OVER_SKIN - float(np.median(lightness[seen])))
    matched = np.concatenate([np.clip(lightness, 0.0, 100.0)[..., None], colour], axis=-1)
    return replace(strip, texture=_rgb(matched).astype(np.float32))


# ------------------------------------------------------------------ teeth strips


def _strip_grid(frame_coordinates: MouthFrame, config: MouthConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(V, U, 2)`` float32 pixel positions of a strip's texels, and ``(V, U)`` v values."""
    u = np.linspace(-1.0, 1.0, config.strip_columns)
    v = np.linspace(0.0, config.strip_depth, config.strip_rows)
    along = u * frame_coordinates.width / 2.0
    down = frame_coordinates.upper_at(along)[None, :] + v[:, None] * frame_coordinates.width
    mouth = np.stack([np.broadcast_to(along, down.shape), down], axis=-1)
    return frame_coordinates.to_pixels(mouth).astype(np.float32), np.broadcast_to(v[:, None], down.shape)


def teeth_strip(frame: np.ndarray, landmarks: np.ndarray, config: MouthConfig = MouthConfig()
                ) -> TeethStrip | None:
    """The upper teeth of a frame as a :class:`TeethStrip`, or None if it shows none. Its
    texels count as seen (``valid``) in each column down to the end of its first run of texels
    lighter than the lips.

    A frame shows its teeth when its mouth is open at least ``min_teeth_opening``
    mouth widths at the middle and the lightest tenth of the middle half of what its
    strip shows is at least ``min_teeth_contrast`` lighter (L*) than its lips (an
    empty mouth is darker than the lips, teeth are lighter).

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(478, 2+)`` pixels tracked on ``frame``.
    """
    coordinates = mouth_frame(landmarks)
    middle = coordinates.lower_at(np.array([0.0]))[0] - coordinates.upper_at(np.array([0.0]))[0]
    if middle < config.min_teeth_opening * coordinates.width:
        return None
    grid, v = _strip_grid(coordinates, config)
    texture = cv2.remap(frame, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    along = (np.linspace(-1.0, 1.0, config.strip_columns) * coordinates.width / 2.0)
    opening = (coordinates.lower_at(along) - coordinates.upper_at(along)) / coordinates.width
    valid = np.clip((opening[None, :] - v) * coordinates.width, 0.0, 1.0).astype(np.float32)
    central = slice(config.strip_columns // 4, -config.strip_columns // 4)
    seen = valid[:, central] > 0.9
    if not seen.any():
        return None
    lightness = _lab(texture)[..., 0]
    lips = _lab(lip_colour(frame, landmarks))[0]
    if np.percentile(lightness[:, central][seen], 90) - lips < config.min_teeth_contrast:
        return None
    # only what teeth cover counts as seen: in each column, down to where its first run of texels
    # lighter than the lips ends (the back teeth of a parted mouth, and the cavity under short teeth
    # with the lower lip's highlights beyond it, are not upper teeth)
    light = (valid > 0.9) & (lightness - lips >= config.min_teeth_contrast)
    ended = np.maximum.accumulate(np.maximum.accumulate(light, axis=0) & ~light, axis=0)
    covered = cv2.GaussianBlur((light.any(axis=0) & ~ended).astype(np.float32), (0, 0), 1.0)
    return TeethStrip(texture, valid * covered, config.strip_depth)


def completed(strip: TeethStrip, fill: TeethStrip) -> TeethStrip:
    """``strip`` with its texels that saw no teeth taken from ``fill`` (resampled to its grid
    and depth, and shifted in L*a*b* so that its teeth have the mean colour of ``strip``'s):
    ``strip`` where its ``valid`` is 1, ``fill`` where it is 0, blended between."""
    rows, columns = strip.valid.shape
    fill_rows = int(round((fill.texture.shape[0] - 1) * min(strip.depth / fill.depth, 1.0))) + 1
    texture, valid = (resize(np.ascontiguousarray(grid[:fill_rows]), (columns, rows)) for grid in (fill.texture, fill.valid))
    seen, filled = strip.valid > 0.9, valid > 0.9
    if seen.any() and filled.any():
        lab = _lab(texture)
        lab += _lab(strip.texture)[seen].mean(axis=0) - lab[filled].mean(axis=0)
        texture = _rgb(lab)
    own = strip.valid[..., None]
    return TeethStrip(strip.texture * own + texture * (1.0 - own), np.maximum(strip.valid, valid), strip.depth)


def bundled_strip() -> tuple[TeethStrip, FaceLight]:
    """The bundled teeth strip and the lighting of the face it was cut from."""
    return _load_bundled()


@lru_cache(maxsize=1)
def _load_bundled() -> tuple[TeethStrip, FaceLight]:
    resource = importlib.resources.files("emoportrait") / "data" / BUNDLED_STRIP
    with importlib.resources.as_file(resource) as path, np.load(path) as data:
        strip = TeethStrip(data["texture"].astype(np.float32), data["valid"].astype(np.float32),
                           float(data["depth"]))
        light = FaceLight(data["skin_mean"].astype(np.float64), data["skin_std"].astype(np.float64),
                          data["white"].astype(np.float64))
        return strip, light


# ------------------------------------------------------------------ painting


class MouthPainter:
    """Paints the interior of driven mouths of one target (see the module docstring).

    Args:
        strip: the upper teeth to show, already in the target's colours.
        lips_rgb: ``(3,)`` the target's lip colour (the cavity is made from it).
        config: Settings.
        rest_drop: the target's :func:`upper_lip_drop` at rest; None: the upper teeth always show
            ``teeth_height``.
        black_rgb: ``(3,)`` the target's black (:func:`black_level`): the painted cavity and teeth
            are lifted onto it, as the photo's own shadows are; None: true black.
    """

    def __init__(self, strip: TeethStrip, lips_rgb: np.ndarray, config: MouthConfig = MouthConfig(),
                 rest_drop: float | None = None, black_rgb: np.ndarray | None = None) -> None:
        self.strip = strip
        self.rest_drop = rest_drop
        self.black_linear = _to_linear(np.zeros(3) if black_rgb is None else black_rgb)
        self.cavity_linear = config.cavity_gain * _to_linear(lips_rgb)
        self.tongue_linear = config.tongue_gain * _to_linear(lips_rgb)
        self.lips_rgb = np.asarray(lips_rgb, np.float32)
        self.lip_inner_linear = config.lip_inner_gain * _to_linear(lips_rgb)
        self.config = config

    @classmethod
    def for_target(cls, frame: np.ndarray, landmarks: np.ndarray, config: MouthConfig = MouthConfig(),
                   rest_drop: float | None = None) -> MouthPainter:
        """A painter with the target's own teeth where ``frame`` shows them, and the bundled
        teeth recoloured to the target's light everywhere else (a slightly parted mouth shows
        only a few of its teeth: alone, they left the rest of a wider opening empty). The upper
        lip rests at ``rest_drop`` (default: where it is in ``frame``)."""
        bundled, light = bundled_strip()
        strip = match_colours(bundled, light, face_light(frame, landmarks))
        own = teeth_strip(frame, landmarks, config)
        if own is not None:
            strip = completed(own, strip)
        rest = upper_lip_drop(landmarks) if rest_drop is None else rest_drop
        return cls(strip, lip_colour(frame, landmarks), config, rest, black_level(frame))

    def teeth_height(self, landmarks: np.ndarray) -> float:
        """Visible length (mouth widths) of the upper teeth under the upper lip of ``(478, 2+)``
        landmark pixels: ``teeth_height``, plus how far the lip has risen above its rest."""
        if self.rest_drop is None:
            return self.config.teeth_height
        rise = max(self.rest_drop - upper_lip_drop(landmarks), 0.0)  # nose lengths
        lift = rise * nose_length(landmarks) / mouth_frame(landmarks).width
        return min(self.config.teeth_height + lift, self.strip.depth)

    def interior(self, coordinates: MouthFrame, origin: np.ndarray, shape: tuple[int, int],
                 lips: np.ndarray | None = None, teeth_height: float | None = None) -> np.ndarray:
        """``shape + (3,)`` float32 RGB interior for the box at ``origin`` ``(2,)`` (x, y),
        in ``coordinates`` (the driven mouth, :meth:`MouthFrame.smoothed`); ``lips`` ``shape + (3,)``: the
        colours of the lips around, continued inward, which the edge takes (default: the
        target's lip colour); ``teeth_height``: the upper teeth's visible length (mouth widths;
        default ``config.teeth_height``)."""
        config = self.config
        teeth_height = config.teeth_height if teeth_height is None else teeth_height
        rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
        pixels = np.stack([cols + origin[0], rows + origin[1]], axis=-1)
        along, down = np.moveaxis(coordinates.to_mouth(pixels), -1, 0)
        top = coordinates.upper_at(along)
        opening = np.maximum(coordinates.lower_at(along) - top, 1e-3)
        u = np.clip(2.0 * along / coordinates.width, -1.0, 1.0)
        v = (down - top) / coordinates.width
        # cavity: darker toward the bottom and the centre line; the tongue's back rises from
        # the bottom of a wide-open mouth, lit from the front, darker toward its sides
        depth = np.clip((down - top) / opening, 0.0, 1.0)
        shade = (1.0 - config.cavity_bottom_shade * depth) * (1.0 - config.cavity_centre_shade * (1.0 - u * u))
        side = np.clip(np.abs(u) / config.tongue_half_width, 0.0, 1.0)
        surface = config.tongue_top + (1.0 - config.tongue_top) * side * side  # an arch, lowest at the sides
        wide = smoothstep((opening / coordinates.width - config.tongue_min_opening) / config.tongue_min_opening)
        tongue = wide * smoothstep((depth - surface) / 0.15) * (1.0 - side)
        linear = shade[..., None] * self.cavity_linear
        linear = linear + tongue[..., None] * ((1.0 - 0.4 * depth)[..., None] * self.tongue_linear - linear)
        cavity = _to_srgb(linear)
        # teeth: the upper ones hang from the upper lip, the lower ones (the strip mirrored,
        # in shadow) stand on the lower lip; a nearly closed mouth is dark inside
        rise = (coordinates.lower_at(along) - down) / coordinates.width
        colour = cavity
        relative = opening / coordinates.width
        reveal = (smoothstep((relative - config.lower_teeth_opening) / config.lower_teeth_reveal)
                  * smoothstep((config.lower_teeth_span - np.abs(u)) / 0.2))  # the front teeth only
        parted = smoothstep((relative - config.teeth_opening) / config.teeth_reveal)
        for depth_in, height, brightness, skip, shown in (
                (np.maximum(v, 0.0), teeth_height, 1.0, 0.0, parted),  # the edge pixels take the top row
                (rise - config.lip_margin, config.lower_teeth_height, config.lower_teeth_shade,
                 config.lower_teeth_skip, reveal)):
            texture, valid = self._sample(u, depth_in + skip)
            alpha = (shown * valid * smoothstep((height - depth_in) / config.teeth_edge) * (depth_in >= 0)
                     * smoothstep((config.teeth_span - np.abs(u)) / 0.12))
            shade = brightness * (1.0 - config.corner_shade * u * u) * (
                1.0 - config.lip_shadow * np.clip(1.0 - depth_in / config.lip_shadow_depth, 0.0, 1.0))
            colour = colour + alpha[..., None] * (texture * shade[..., None] - colour)
        light = 1.0 - (1.0 - config.shadow_depth) * (1.0 - smoothstep(relative / config.shadow_opening))
        colour = self._lifted(colour * light[..., None])
        # where the lips have not parted yet (a closed mouth, an opening's corners) they meet in a
        # line of their own shadowed inner surface, not of the cavity (it drew a black line)
        inner = self._lifted(_to_srgb(self.lip_inner_linear))
        colour = inner + parted[..., None] * (colour - inner)
        # the lips' wet inner surface of an open mouth, not in its shadow: below the visible opening
        # (the lower lip rises to meet the upper one toward the corners), fading into it over
        # feather_fraction of the mouth width, or 15 % of the opening where that is less
        openness = self.openness(coordinates)
        end = np.clip((np.abs(u) - 1.0 + config.corner_taper) / max(config.corner_taper, 1e-6), 0.0, 1.0)
        visible = np.maximum((1.0 - openness * end * end) * opening, 1e-3)
        band = np.maximum(np.minimum(config.feather_fraction * coordinates.width, 0.15 * visible), 1e-3)
        lip = openness * (1.0 - smoothstep((top + visible - down) / band))
        lip = lip[..., None]
        around = self.lips_rgb if lips is None else lips
        surface = inner + lip * (around - inner)  # the lips' own colour at the edge, darker inside
        return (colour + lip * (surface - colour)).astype(np.float32)

    def _lifted(self, rgb: np.ndarray) -> np.ndarray:
        """sRGB colours ``(..., 3)`` lifted onto the target's black: ``b + (1 - b) c`` in linear light."""
        return _to_srgb(self.black_linear + (1.0 - self.black_linear) * _to_linear(rgb))

    def openness(self, coordinates: MouthFrame) -> float:
        """0 for a closed mouth to 1 for one open ``shadow_opening`` mouth widths at the middle: how
        much of the lips' inner surface shows (a closed mouth shows their dark line instead)."""
        middle = float(coordinates.lower_at(np.zeros(1))[0] - coordinates.upper_at(np.zeros(1))[0])
        return float(smoothstep(middle / coordinates.width / self.config.shadow_opening))

    def _sample(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The strip's texture ``(h, w, 3)`` and validity ``(h, w)`` at mouth coordinates."""
        strip = self.strip
        column = ((u + 1.0) / 2.0 * (strip.texture.shape[1] - 1)).astype(np.float32)
        row = (np.clip(v, 0.0, None) / strip.depth * (strip.texture.shape[0] - 1)).astype(np.float32)
        texture = cv2.remap(strip.texture, column, row, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        valid = cv2.remap(strip.valid, column, row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
        return texture, valid

    def paint(self, out: np.ndarray, landmarks: np.ndarray, opacity: float = 1.0) -> None:
        """Paint the interior into ``out`` ``(H, W, 3)`` uint8 inside the inner lips of
        ``(478, 2+)`` landmarks, with ``opacity`` (clipped to [0, 1], through a smoothstep).

        Under the interior and a pixel ring round it, the lips' own colours continued inward
        from around the polygon replace what the warp stretched there (the target's closed
        lip line: a dark outline round an open mouth). A closed mouth's interior fades in
        over them from the polygon's edge over ``feather_fraction`` of the mouth width (its
        slit stays a faint line); an open one's (:meth:`openness`) covers the polygon.
        """
        opacity = float(smoothstep(opacity))
        if opacity <= 0.0:
            return
        coordinates = mouth_frame(landmarks).smoothed()
        polygon = coordinates.outline()
        tracked = landmarks[_INNER_LIPS, :2].astype(np.float64)
        x0, y0, x1, y1 = clipped_box(np.concatenate([polygon, tracked]), 2.0, out.shape)
        if x1 <= x0 or y1 <= y0:
            return
        origin = np.array([x0, y0], np.float64)
        shape = (y1 - y0, x1 - x0)
        mask = polygon_mask(polygon - origin, shape)
        if not mask.any():
            return
        patch = out[y0:y1, x0:x1]
        # under the interior (and inside the tracked inner lips, where they stray from its arcs) and a
        # pixel round it, the lips continued inward (the warp stretched the target's dark lip line
        # there); the interior fades into them toward its edge
        inside = (mask > 0) | (polygon_mask(tracked - origin, shape) > 0)
        reach = 1 + int(round(self.config.lip_line * coordinates.width))
        ring = cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
        around = cv2.inpaint(patch, ring, 3, cv2.INPAINT_TELEA).astype(np.float32)
        interior = self.interior(coordinates, origin, shape, around, self.teeth_height(landmarks))
        openness = self.openness(coordinates)
        feather = self.config.feather_fraction * coordinates.width
        if feather > 0.3:  # a closed mouth's slit stays faint: soft toward the inside, nothing outside
            soft = mask * np.minimum(1.5 * cv2.GaussianBlur(mask, (0, 0), feather), 1.0)
            mask = soft + openness * (mask - soft)
        base = patch.astype(np.float32)
        base = base + (opacity * ring)[..., None] * (around - base)
        blended = base + (opacity * mask)[..., None] * (interior - base)
        out[y0:y1, x0:x1] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
