"""A small synthetic data set in MEAD's layout, made entirely by emoportrait.

``make_dataset(OUT)`` writes talking-face clips of a few made-up subjects::

    OUT/README.txt                         what this is, and the settings used
    OUT/sentences.csv                      subject,clip,text: the sentence of every clip number
    OUT/sentence_map.csv                   the same, as a sentence map for prepare (see .layout)
    OUT/<subject>/portrait.png             the subject's face (size x size RGB)
    OUT/<subject>/video/front/<emotion>/level_<n>/<clip>.mp4   H.264 + AAC, 25 fps
    OUT/<subject>/audio/<emotion>/level_<n>/<clip>.m4a         the same speech, AAC

Subjects are named like MEAD's (``M001``, ``W002``, ``M003``, ...: men and women
alternate, by voice); emotions are MEAD's eight names; non-neutral emotions come
at levels 1, 2, 3 (intensity 0.4, 0.7, 1.0), neutral only at level 1. Clips are
numbered ``001 .. N`` and **the clip number is the sentence**: clip ``007`` of a
subject is the same sentence in every emotion and level (and for every subject),
as listed in ``sentences.csv``. ``sentence_map.csv`` says so to ``prepare``, which
pairs clips of the same sentence across emotions by it.

How a clip is made:

- speech: espeak-ng reads the sentence with the subject's voice variant and an
  emotion-dependent prosody (speed, pitch, loudness; :data:`PROSODY`), interpolated
  from neutral by the level's intensity; resampled to 16 kHz mono;
- face: every subject is scikit-image's public-domain astronaut portrait with a
  seeded identity change (a smooth deformation of face width, eye distance, nose
  length, mouth width and jaw; a colour change; odd-numbered subjects mirrored);
- video: :func:`emoportrait.pipeline.generate` with the procedural driver and the
  warp renderer animates the portrait with the speech and the emotion.

This is a stand-in for development and tests: it is NOT a substitute for MEAD.
Making it is resumable: a clip whose mp4 and m4a both exist is skipped.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import soundfile as sf
from tqdm import tqdm

from . import audio, media
from .drivers.procedural import ProceduralConfig, ProceduralDriver
from .emotions import EMOTIONS, EmotionSpec, parse_emotion
from .errors import InputError
from .face import GROUPS, face_size, track_frames
from .pipeline import GenerateConfig, generate
from .render import WarpRenderer
from .evp.layout import SENTENCE_MAP

MEAD_EMOTIONS = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
"""MEAD's eight emotion folder names, in MEAD's (alphabetical) order."""

LEVEL_INTENSITY = {1: 0.4, 2: 0.7, 3: 1.0}
"""Emotion intensity of each MEAD level (neutral has level 1 only, at no intensity)."""

SAMPLE_RATE = 16000
"""Rate (Hz) of the speech in the clips."""

PORTRAIT_CROP = (slice(0, 320), slice(60, 380))
"""Head-and-shoulders region (rows, columns) of ``skimage.data.astronaut()`` (512x512)."""

SENTENCES = (
    "The sun was warm on the old stone wall.",
    "Please bring the blue cups to the kitchen.",
    "We walked along the river until dark.",
    "My brother fixed the bicycle last night.",
    "The train leaves at seven in the morning.",
    "She painted the small boat bright yellow.",
    "Nobody answered when I rang the bell.",
    "The children laughed at the funny dog.",
    "A cold wind blew across the empty field.",
    "He wrote a long letter to his friend.",
    "Turn left at the bakery on the corner.",
    "The garden is full of red and white roses.",
    "I found the keys under the kitchen table.",
    "They moved to a new house by the sea.",
    "The meeting was moved to next Thursday.",
    "Rain fell all day on the quiet town.",
    "Our teacher read us a story about a fox.",
    "The shop closes early on Sunday afternoons.",
    "Put the heavy box down near the door.",
    "The lamp in the hall has stopped working.",
)
"""Built-in sentences (short, plain English); clip ``n`` reads ``SENTENCES[(n - 1) % 20]``."""


@dataclass(frozen=True)
class Prosody:
    """espeak-ng speaking settings."""

    words_per_minute: float  # espeak-ng -s (80 .. 450)
    pitch: float             # espeak-ng -p, 0 .. 99 (50 is the voice's normal pitch)
    amplitude: float         # espeak-ng -a, 0 .. 200 (100 is normal loudness)

    def towards(self, other: Prosody, amount: float) -> Prosody:
        """The prosody ``amount`` (0 .. 1) of the way from this one to ``other``."""
        return Prosody(*(a + amount * (b - a) for a, b in
                         zip(asdict(self).values(), asdict(other).values(), strict=True)))


PROSODY = {
    "neutral": Prosody(160, 50, 100),
    "happy": Prosody(175, 70, 120),      # faster, higher
    "sad": Prosody(125, 30, 70),         # slower, lower, quieter
    "angry": Prosody(180, 45, 180),      # louder, faster
    "fear": Prosody(185, 80, 100),       # faster, higher
    "surprised": Prosody(165, 85, 130),  # higher, a little louder
    "disgusted": Prosody(140, 35, 100),  # slower, lower
    "contempt": Prosody(135, 40, 90),    # slow, low
}
"""Full-intensity prosody of each emotion; a level's prosody is interpolated from neutral."""


@dataclass(frozen=True)
class IdentityConfig:
    """Ranges of the random per-subject look. Each change is drawn uniformly in ±its value;
    lengths are fractions of the face size (:func:`emoportrait.face.landmarks.face_size`)."""

    face_width: float = 0.08        # whole face wider/narrower (relative)
    eye_distance: float = 0.03      # each eye moves outward/inward by this much
    nose_length: float = 0.12       # nose longer/shorter (relative, about its centre)
    mouth_width: float = 0.12       # mouth wider/narrower (relative, about its centre)
    jaw_width: float = 0.08         # lower face wider/narrower (relative), fading in below the mouth
    eye_sigma: float = 0.10         # Gaussian reach of the eye shift
    nose_sigma: float = 0.12        # Gaussian reach of the nose scaling
    mouth_sigma: float = 0.12       # Gaussian reach of the mouth scaling
    hue_deg: float = 8.0            # hue rotation, degrees
    saturation: float = 0.15        # relative saturation change
    brightness: float = 0.12        # relative brightness change
    pitch_offset: float = 8.0       # voice pitch offset, espeak-ng pitch units (0 .. 99 scale)


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of :func:`make_dataset`."""

    subjects: int = 2                          # made-up people: M001, W002, M003, ...
    sentences: int = 6                         # clips per emotion and level, numbered 001 ..
    emotions: tuple[str, ...] = MEAD_EMOTIONS  # MEAD names
    levels: tuple[int, ...] = (1, 2, 3)        # MEAD levels of the non-neutral emotions
    size: int = 128                            # video height and width, pixels (small for speed)
    seed: int = 0                              # seeds the subjects' looks and voices and the clips' motion
    texts: tuple[str, ...] = SENTENCES         # sentences, cycled when more are asked for
    male_voices: tuple[str, ...] = ("m1", "m3", "m2", "m4")    # espeak-ng variants of M subjects, cycled
    female_voices: tuple[str, ...] = ("f1", "f3", "f2", "f4")  # ... of W subjects
    identity: IdentityConfig = field(default_factory=IdentityConfig)

    def __post_init__(self) -> None:
        if self.subjects < 1 or self.sentences < 1 or self.seed < 0:
            raise InputError("make-dataset needs at least one subject and one sentence, and a seed >= 0")
        if self.sentences > 999:
            raise InputError(f"{self.sentences} sentences asked for; MEAD's clip numbers allow 999 at most")
        unknown = [name for name in self.emotions if name not in EMOTIONS]
        if unknown or not self.emotions:
            raise InputError(f"unknown emotion(s) {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(MEAD_EMOTIONS)}")
        if not self.levels or any(level not in LEVEL_INTENSITY for level in self.levels):
            raise InputError(f"levels {self.levels} must be among 1, 2, 3")
        if not self.texts or not self.male_voices or not self.female_voices:
            raise InputError("make-dataset needs sentence texts and voice variants")
        GenerateConfig(size=self.size)  # checks the size's range


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`make_dataset` did: ``clips`` made now, ``skipped`` already there, in ``seconds``."""

    subjects: int
    clips: int
    seconds: float
    skipped: int = 0

    def describe(self) -> str:
        """One line for the CLI."""
        return (f"{self.subjects} subjects: made {self.clips} clips, "
                f"{self.skipped} already there, in {self.seconds:.1f} s")


@dataclass(frozen=True)
class Clip:
    """One clip to make: subject ``index`` (0-based), ``number`` the sentence (1-based),
    ``text`` its words."""

    index: int
    emotion: str
    level: int
    number: int
    text: str

    @property
    def subject(self) -> str:
        """The subject's MEAD-like name."""
        return subject_name(self.index)

    def video_path(self, out: Path) -> Path:
        """``out/<subject>/video/front/<emotion>/level_<n>/<clip>.mp4``."""
        folder = out / self.subject / "video" / "front" / self.emotion / f"level_{self.level}"
        return folder / f"{self.number:03d}.mp4"

    def audio_path(self, out: Path) -> Path:
        """``out/<subject>/audio/<emotion>/level_<n>/<clip>.m4a``."""
        return out / self.subject / "audio" / self.emotion / f"level_{self.level}" / f"{self.number:03d}.m4a"

    @property
    def intensity(self) -> float:
        """Emotion intensity in [0, 1] (0 for neutral)."""
        return 0.0 if self.emotion == "neutral" else LEVEL_INTENSITY[self.level]

    def spec(self) -> EmotionSpec:
        """The emotion and intensity the face shows."""
        return parse_emotion("neutral") if self.emotion == "neutral" else parse_emotion(
            f"{self.emotion}:{self.intensity}")

    def seed(self, base: int) -> int:
        """A 32-bit seed of its own (idle head motion, blinks, drift)."""
        return zlib.crc32(f"{base}/{self.subject}/{self.emotion}/{self.level}/{self.number}".encode())


# --------------------------------------------------------------------------- subjects


def subject_name(index: int) -> str:
    """MEAD-like name of subject ``index`` (0-based): M001, W002, M003, ..."""
    return f"{'M' if index % 2 == 0 else 'W'}{index + 1:03d}"


def subject_voice(index: int, config: SyntheticConfig) -> str:
    """espeak-ng voice ``en-us+<variant>`` of subject ``index``."""
    variants = config.male_voices if index % 2 == 0 else config.female_voices
    return f"en-us+{variants[(index // 2) % len(variants)]}"


def draw_identity(index: int, config: SyntheticConfig) -> dict[str, float]:
    """Subject ``index``'s random look and pitch offset: each :class:`IdentityConfig` range name
    (except the sigmas) → a value drawn uniformly in ±range, seeded by the subject."""
    ranges = {name: value for name, value in asdict(config.identity).items() if not name.endswith("_sigma")}
    draws = np.random.default_rng([config.seed, index]).uniform(-1.0, 1.0, len(ranges))
    return {name: value * draw for (name, value), draw in zip(ranges.items(), draws, strict=True)}


def clip_prosody(emotion: str, intensity: float, pitch_offset: float) -> Prosody:
    """Prosody of an emotion at ``intensity`` in [0, 1], pitch shifted by the subject's offset,
    clipped to espeak-ng's ranges."""
    base = PROSODY["neutral"].towards(PROSODY[emotion], intensity)
    return Prosody(float(np.clip(base.words_per_minute, 80, 450)),
                   float(np.clip(base.pitch + pitch_offset, 0, 99)),
                   float(np.clip(base.amplitude, 0, 200)))


def _gaussian(points: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    """``(N, 1)`` weights exp(-|p - centre|² / 2σ²) of ``(N, 2)`` points."""
    return np.exp(-((points - centre) ** 2).sum(axis=1, keepdims=True) / (2.0 * sigma**2))


def _local_scaling(points: np.ndarray, centre: np.ndarray, sigma: float, change: list[float]) -> np.ndarray:
    """``(N, 2)`` displacements scaling ``(N, 2)`` points about ``centre`` by ``1 + change``
    (x, y), faded out with a Gaussian of ``sigma`` pixels."""
    return _gaussian(points, centre, sigma) * (points - centre) * change


def _smoothstep(t: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, ``3t² - 2t³`` between (smooth at both ends)."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def identity_displacement(points: np.ndarray, landmarks: np.ndarray, change: dict[str, float],
                          config: IdentityConfig = IdentityConfig()) -> np.ndarray:
    """Smooth identity deformation: ``(N, 2)`` pixel displacements of ``(N, 2)`` pixel points.

    The field is built around a face's ``(478, 2+)`` landmarks (pixels) from the
    :func:`draw_identity` ``change``: a horizontal scaling of the face about its centre,
    Gaussian-weighted shifts of the eyes (outward for positive ``eye_distance``) and
    scalings of the nose (vertical) and mouth (horizontal) about their centres, and a
    horizontal scaling of the jaw that fades in from the mouth to the chin. The field is
    smooth; at the extremes of the default ranges its Jacobian determinant stays above 0.7
    over the whole astronaut portrait, so it never folds.
    """
    size = face_size(landmarks)
    landmarks = landmarks[:, :2].astype(np.float64)
    centre = landmarks[GROUPS["face_oval"]].mean(axis=0)
    mouth = landmarks[GROUPS["outer_lips"]].mean(axis=0)
    nose = landmarks[GROUPS["nose"]].mean(axis=0)
    chin_y = landmarks[GROUPS["face_oval"], 1].max()
    offset = points - centre
    shift = offset * [change["face_width"], 0.0]
    for eye in ("left_eye", "right_eye"):
        eye_centre = landmarks[GROUPS[eye]].mean(axis=0)
        outward = np.sign(eye_centre[0] - centre[0])
        shift += _gaussian(points, eye_centre, config.eye_sigma * size) * [
            outward * change["eye_distance"] * size, 0.0]
    shift += _local_scaling(points, nose, config.nose_sigma * size, [0.0, change["nose_length"]])
    shift += _local_scaling(points, mouth, config.mouth_sigma * size, [change["mouth_width"], 0.0])
    jaw = _smoothstep((points[:, 1] - mouth[1]) / max(chin_y - mouth[1], 1.0))
    shift[:, 0] += offset[:, 0] * change["jaw_width"] * jaw
    return shift


def _recolour(image: np.ndarray, change: dict[str, float]) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB with hue rotated and saturation and brightness scaled."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + change["hue_deg"] * 256.0 / 360.0) % 256.0
    hsv[..., 1] *= 1.0 + change["saturation"]
    hsv[..., 2] *= 1.0 + change["brightness"]
    return cv2.cvtColor(np.clip(np.round(hsv), 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)


def base_portrait() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's head and shoulders ``(320, 320, 3)`` uint8 RGB and its tracked
    ``(478, 3)`` landmarks (pixels)."""
    image = np.ascontiguousarray(skimage.data.astronaut()[PORTRAIT_CROP])
    return image, track_frames([image], fps=None, name="the astronaut portrait").landmarks[0]


def subject_portrait(index: int, base: tuple[np.ndarray, np.ndarray], config: SyntheticConfig) -> np.ndarray:
    """Subject ``index``'s face, ``(size, size, 3)`` uint8 RGB, from :func:`base_portrait`'s output:
    deformed and recoloured at the crop's resolution, mirrored for odd ``index``, resized."""
    image, landmarks = base
    change = draw_identity(index, config)
    deformed = landmarks.copy()
    deformed[:, :2] += identity_displacement(landmarks[:, :2].astype(np.float64), landmarks, change,
                                             config.identity)
    face = _recolour(WarpRenderer().render(image, landmarks, deformed), change)
    if index % 2:
        face = face[:, ::-1]
    return cv2.resize(np.ascontiguousarray(face), (config.size, config.size), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- speech


def _espeak() -> str:
    """Path of the espeak-ng program."""
    found = shutil.which("espeak-ng")
    if found is None:
        raise InputError("make-dataset needs espeak-ng: apt-get install espeak-ng")
    return found


def synthesize(text: str, voice: str, prosody: Prosody) -> np.ndarray:
    """``text`` spoken by espeak-ng: ``(S,)`` float32 mono in [-1, 1] at :data:`SAMPLE_RATE` Hz."""
    with tempfile.TemporaryDirectory() as folder:
        wav, words = Path(folder) / "speech.wav", Path(folder) / "text.txt"
        words.write_text(text, encoding="utf-8")  # read from a file: no text is taken for an option
        command = [_espeak(), "-v", voice, "-s", str(round(prosody.words_per_minute)),
                   "-p", str(round(prosody.pitch)), "-a", str(round(prosody.amplitude)),
                   "-w", str(wav), "-f", str(words)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not wav.exists():
            reason = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[0]
            raise InputError(f"espeak-ng failed for voice {voice}: {reason}")
        samples, rate = sf.read(wav, dtype="float32", always_2d=True)
    return audio.resample(samples.mean(axis=1), rate, SAMPLE_RATE)


# --------------------------------------------------------------------------- data set


def clip_text(number: int, config: SyntheticConfig) -> str:
    """The sentence of clip ``number`` (1-based), the same for every emotion, level and subject."""
    return config.texts[(number - 1) % len(config.texts)]


def plan(config: SyntheticConfig) -> Iterator[Clip]:
    """Every clip of the data set, subject by subject."""
    for index in range(config.subjects):
        for emotion in config.emotions:
            for level in (1,) if emotion == "neutral" else config.levels:
                for number in range(1, config.sentences + 1):
                    yield Clip(index, emotion, level, number, clip_text(number, config))


def make_clip(clip: Clip, out: Path, config: SyntheticConfig) -> None:
    """Speak ``clip``'s sentence in the subject's voice and animate its ``portrait.png`` with it."""
    pitch_offset = draw_identity(clip.index, config)["pitch_offset"]
    prosody = clip_prosody(clip.emotion, clip.intensity, pitch_offset)
    speech = synthesize(clip.text, subject_voice(clip.index, config), prosody)
    seed = clip.seed(config.seed)
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        audio.write_wav(wav, speech, SAMPLE_RATE)
        generate(wav, clip.spec(), out / clip.subject / "portrait.png", clip.video_path(out),
                 driver=ProceduralDriver(ProceduralConfig(seed=seed)),
                 config=GenerateConfig(size=config.size, seed=seed))
    media.write_audio(clip.audio_path(out), speech, SAMPLE_RATE)


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, unless it already holds exactly that."""
    if path.exists() and path.read_bytes() == data:
        return
    with media.atomic_output(path) as temp:
        temp.write_bytes(data)


def _readme(config: SyntheticConfig) -> str:
    """Text of ``README.txt``: what the data set is, its layout and ``config``."""
    settings = "\n".join(f"  {name} = {value!r}" for name, value in asdict(config).items())
    prosody = "\n".join(f"  {name:10s} {p.words_per_minute:g} wpm, pitch {p.pitch:g}, "
                        f"amplitude {p.amplitude:g}" for name, p in PROSODY.items())
    levels = ", ".join(f"{level} = {value}" for level, value in LEVEL_INTENSITY.items())
    return f"""SYNTHETIC talking-face data made by emoportrait (make-dataset). NOT a substitute for MEAD.

The speech is espeak-ng (formant synthesis) with emotion-dependent prosody; the faces are
scikit-image's public-domain astronaut portrait, given a random identity change per subject
and animated by emoportrait's procedural driver and warp renderer. It exists to exercise
the EVP training code end to end; models trained on it are not expected to work on real
faces or voices.

Layout (MEAD's):
  <subject>/portrait.png                                 the subject's face
  <subject>/video/front/<emotion>/level_<n>/<clip>.mp4   H.264 video + AAC speech, 25 fps
  <subject>/audio/<emotion>/level_<n>/<clip>.m4a         the same speech
  sentences.csv                                          subject,clip,text
  sentence_map.csv                                       the sentence of each clip, for prepare
The clip number is the sentence: the same number is the same sentence in every emotion
and level (and for every subject). Emotion intensity by level: {levels};
neutral has level 1 only. Subjects M... speak with male, W... with female espeak-ng voices.
A level's prosody is interpolated between neutral and the emotion's by its intensity:
{prosody}

Settings:
{settings}
"""


def _sentences_csv(config: SyntheticConfig) -> str:
    """Text of ``sentences.csv``: ``subject,clip,text`` for every subject and clip number."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["subject", "clip", "text"])
    for index in range(config.subjects):
        for number in range(1, config.sentences + 1):
            writer.writerow([subject_name(index), f"{number:03d}", clip_text(number, config)])
    return buffer.getvalue()


def _sentence_map_csv(config: SyntheticConfig) -> str:
    """Text of the sentence map (:mod:`.layout`): here clip ``k`` of every emotion says sentence ``k``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["subject", "sentence", *MEAD_EMOTIONS])
    for index in range(config.subjects):
        for number in range(1, config.sentences + 1):
            writer.writerow([subject_name(index), f"{number:03d}", *[f"{number:03d}"] * len(MEAD_EMOTIONS)])
    return buffer.getvalue()


def _write_portraits(out: Path, config: SyntheticConfig) -> None:
    """(Re)make every subject's ``portrait.png``; files that already match are left alone."""
    base = base_portrait()
    for index in range(config.subjects):
        face = subject_portrait(index, base, config)
        ok, png = cv2.imencode(".png", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        if not ok:
            raise InputError(f"cannot encode the portrait of {subject_name(index)}")
        _write_if_changed(out / subject_name(index) / "portrait.png", png.tobytes())


def make_dataset(out: Path, config: SyntheticConfig = SyntheticConfig(),
                 progress: bool = False) -> SyntheticSummary:
    """Write the synthetic MEAD-layout data set into ``out`` (see the module docstring).

    Clips whose mp4 and m4a both exist are skipped, so an interrupted run resumes;
    the portraits, ``README.txt`` and ``sentences.csv`` are rewritten only when their
    content changes. ``progress`` shows a bar over the clips on stderr.

    Raises:
        InputError: espeak-ng is missing, or a setting is out of range.
    """
    start = time.perf_counter()
    out = Path(out)
    _espeak()
    out.mkdir(parents=True, exist_ok=True)
    _write_if_changed(out / "README.txt", _readme(config).encode())
    _write_if_changed(out / "sentences.csv", _sentences_csv(config).encode())
    _write_if_changed(out / SENTENCE_MAP, _sentence_map_csv(config).encode())
    _write_portraits(out, config)
    clips = list(plan(config))
    todo = [clip for clip in clips if not (clip.video_path(out).exists() and clip.audio_path(out).exists())]
    for clip in tqdm(todo, desc="clips", unit="clip", disable=not progress):
        make_clip(clip, out, config)
    return SyntheticSummary(config.subjects, len(todo), time.perf_counter() - start, len(clips) - len(todo))
