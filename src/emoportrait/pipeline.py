"""``generate``: speech + emotion + target video or portrait → talking, emotional mp4.

The whole data flow of the design, composed from the stages:

1. speech → 16 kHz samples (:mod:`.audio`), checked (not silent, long enough);
2. target → frames (:mod:`.media`), tracked face, pose and rest identity
   (:mod:`.tracking`, :mod:`.alignment`), its own expression taken off
   (:mod:`.neutralise`);
3. driver → expression track ``(T, 478, 3)`` in the canonical frame (:mod:`.drivers`),
   its lids following a target video's own, held off glasses' frames (:mod:`.face.glasses`),
   eased where it would fold the face mesh (:mod:`.unfold`);
4. 3D-aware alignment → output landmarks ``(T, 478, 3)`` in pixels, with the
   target frame's own pose (:mod:`.geometry`);
5. renderer → frames, muxed with the speech into the mp4 (:mod:`.render`, :mod:`.media`);
   target frames where the face is out of view are passed through unchanged.

The output has exactly ``ceil(duration × fps)`` frames at the target's frame rate
(25 fps for a still portrait); the target video is looped back and forth or
trimmed to that length.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import alignment, audio, media, tracking
from .drivers.procedural import ProceduralDriver
from .emotions import EmotionSpec
from .errors import InputError
from .face import FaceTrack, TrackerConfig, track_frames
from .face.glasses import hold_frames, thin_frames, wears_glasses
from .geometry import align_expression
from .neutralise import neutralise
from .render import WarpRenderer
from .types import Driver, Renderer
from .unfold import unfold

MAX_TARGET_FRAMES = 3000
"""Target frames held in memory at most (2 min at 25 fps); longer targets are trimmed."""

MAX_STILL_SIDE = 1024
MAX_VIDEO_SIDE = 1920
"""Longest output side, pixels, when no size is given: a larger still portrait (a
24-megapixel photo) or video is drawn at this size, as players and encoders expect."""

IN_MEMORY_BYTES = 1 << 30
"""Decoded target frames up to this size (1 GiB: 15 s of 720p video) are held in memory;
larger targets are spooled to a temporary file (see :func:`_read_target`)."""

MIN_FACE_SHARE = 0.5
"""Share of a target video's frames that must show the face; frames without it are passed
through unchanged, and a target with fewer is refused."""


@dataclass(frozen=True)
class GenerateConfig:
    """Settings of :func:`generate`.

    Attributes:
        size: output height in pixels (width follows the target's aspect, even);
            ``None`` keeps the target's resolution, its longer side capped at
            :data:`MAX_STILL_SIDE` (a still) or :data:`MAX_VIDEO_SIDE` (a video).
        idle_motion_deg: head sway of a still portrait, degrees at most.
        seed: seeds the idle motion (blinks are seeded by the driver).
        keep_expression: keep the target's own expression (an open or smiling mouth)
            under the driven one instead of neutralising it first (:mod:`.neutralise`).
        rigid_glasses: when the target wears glasses (:mod:`.face.glasses`), hold the
            driven expression off the skin under their frames, so they do not bend.
    """

    size: int | None = None
    idle_motion_deg: float = 1.5
    seed: int = 0
    keep_expression: bool = False
    rigid_glasses: bool = True

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise InputError(f"seed {self.seed} must be 0 or more")
        if self.size is not None and not 64 <= self.size <= 4096:
            raise InputError(f"output size {self.size} is out of range; give a height from 64 to 4096 pixels")


@dataclass
class GenerateSummary:
    """What :func:`generate` made, and how long each stage took (seconds)."""

    output: Path
    n_frames: int
    fps: float
    size: tuple[int, int]
    emotion: str
    timings: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    def describe(self) -> str:
        total = sum(self.timings.values())
        stages = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.timings.items())
        duration = self.n_frames / self.fps
        notes = f"\n  {self.notes}" if self.notes else ""
        return (f"wrote {self.output}: {self.n_frames} frames ({duration:.2f} s at {self.fps:g} fps), "
                f"{self.size[0]}x{self.size[1]}, {self.emotion}; {total:.1f} s "
                f"({total / duration:.2f} s per second of video: {stages}){notes}")


def _output_height(info: media.VideoInfo, size: int | None) -> tuple[int | None, str]:
    """The height to draw at (None: the target's own) and a note when it was capped."""
    cap = MAX_STILL_SIDE if info.is_image else MAX_VIDEO_SIDE
    longest = max(info.width, info.height)
    if size is not None or longest <= cap:
        return size, ""
    height = max(2, round(info.height * cap / longest / 2) * 2)  # the long side at the cap
    return height, f"drawn {cap} px on its long side (the target is {info.width}x{info.height}; --size to change)"


def _read_target(path: Path, n_frames: int, height: int | None, spool: Path) -> np.ndarray:
    """``(T, H, W, 3)`` uint8: the first ``min(n_frames, MAX_TARGET_FRAMES)`` frames of the
    target, resized. Beyond :data:`IN_MEMORY_BYTES` they are kept in an unnamed temporary
    file in the folder ``spool`` (mapped: the page cache holds them, and gives them back
    under memory pressure; the system deletes the file however the run ends)."""
    decoded = media.iter_frames(path, height)
    first = next(decoded)
    capacity = min(n_frames, MAX_TARGET_FRAMES)
    shape = (capacity, *first.shape)
    if capacity * first.nbytes <= IN_MEMORY_BYTES:
        frames = np.empty(shape, np.uint8)
    else:
        spool.mkdir(parents=True, exist_ok=True)  # the output's folder: made now rather than at the end
        with tempfile.TemporaryFile(dir=spool) as backing:
            frames = np.memmap(backing, np.uint8, "w+", shape=shape)  # the mapping outlives the handle
    frames[0] = first
    count = 1
    for frame in itertools.islice(decoded, capacity - 1):
        frames[count] = frame
        count += 1
    return frames[:count]


def _face_in_view(track: FaceTrack, target: Path) -> np.ndarray:
    """``(T,)`` bool, :attr:`FaceTrack.in_view`; raises :class:`InputError` when fewer than
    :data:`MIN_FACE_SHARE` of the target's frames show the face."""
    in_view = track.in_view
    if in_view.mean() < MIN_FACE_SHARE:
        raise InputError(f"the face is in view on only {int(in_view.sum())} of the {len(in_view)} frames of "
                         f"'{target}'; give a target video where the face stays in view at least "
                         f"{100 * MIN_FACE_SHARE:.0f}% of the time (or trim it)")
    return in_view


def generate(
    speech: str | Path,
    emotion: EmotionSpec,
    target: str | Path,
    output: str | Path,
    driver: Driver | None = None,
    renderer: Renderer | None = None,
    config: GenerateConfig = GenerateConfig(),
    progress: bool = False,
) -> GenerateSummary:
    """Make ``output`` (mp4): the target person speaking ``speech`` with ``emotion``.

    Args:
        speech: any audio or video file with the speech.
        emotion: emotion intensities (see :func:`emoportrait.emotions.parse_emotion`).
        target: a video of the person (their head motion is kept) or a still portrait.
        output: the ``.mp4`` to write; it appears only when complete.
        driver: expression driver (default: the training-free procedural driver).
        renderer: frame renderer (default: the training-free warp renderer); its
            ``start`` may refuse the target (a neural renderer of another subject).
        progress: show progress bars on stderr.

    Raises:
        InputError: unreadable or unsuitable inputs (silent speech, no face, ...).
    """
    speech, target, output = Path(speech), Path(target), Path(output)
    media.check_output(output, {".mp4"}, [speech, target])
    driver = driver or ProceduralDriver()
    renderer = renderer or WarpRenderer()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - clock
        clock = now

    info = media.probe(target)
    fps = info.fps or media.STILL_FPS
    samples = audio.load_audio(speech)
    audio.check_speech(samples, name=str(speech))
    if not info.is_image:
        driver.prepare(samples)  # e.g. recognise the phones while the target video is tracked
    n_frames = audio.frame_count(len(samples), fps)
    trained = getattr(renderer, "trained_height", None)  # a neural renderer draws at its trained height
    height, size_note = _output_height(info, config.size if config.size is not None else trained)
    frames = _read_target(target, n_frames, height, output.parent)
    lap("read")

    track = track_frames(frames, None if info.is_image else fps, TrackerConfig(), name=str(target),
                         total=len(frames), progress=progress)
    in_view = _face_in_view(track, target)
    target_face = tracking.analyse(track)
    identity = alignment.rest_identity(target_face)
    if not config.keep_expression:
        identity = neutralise(identity)
    schedule = alignment.pingpong_schedule(len(frames), n_frames)
    if info.is_image:
        pose = alignment.idle_pose(target_face.pose, n_frames, fps, config.idle_motion_deg, config.seed)
        closure = None
    else:
        pose = alignment.select_frames(target_face.pose, schedule)
        closure = alignment.eye_closure(target_face)[schedule]  # its own blinks, not the driver's
    renderer.start(frames, track.landmarks, track.found)
    lap("track")

    expression = driver.drive(samples, emotion, identity, n_frames, fps, eye_closure=closure)
    notes = [driver.notes, size_note]
    hidden = int((~in_view[schedule]).sum())
    if hidden:
        notes.append(f"no face in view on {hidden} of {n_frames} frame(s): they show the target unchanged")
    seen = int(np.argmax(track.found))
    held = None
    if config.rigid_glasses and wears_glasses(frames[seen], track.landmarks[seen]):  # keep them straight
        thin = thin_frames(frames[seen], track.landmarks[seen])
        expression, held = hold_frames(identity, expression, thin)
        notes.append("glasses: the skin under their frames follows the head only"
                     + ("; the brows above them move" if thin else ", brows included"))
    expression = unfold(identity, expression, pinned=held)  # no crease where a strong expression would fold the skin
    landmarks = align_expression(identity, expression, pose)
    lap("drive")

    playback, rate = media.read_audio(speech, mono=False)  # the speech as heard: its own rate and channels
    # the bar before the writer: an interrupt in the bar's set-up would leave a half-made bar
    bar = tqdm(total=n_frames, desc="rendering", unit="frame", disable=not progress)
    with bar, media.VideoWriter(output, fps, audio=playback, sample_rate=rate) as writer:
        for t in range(n_frames):
            k = schedule[t]
            rendered = renderer.render(frames[k], track.landmarks[k], landmarks[t]) if in_view[k] else frames[k]
            lap("render")
            writer.write(rendered)
            bar.update()
            lap("encode")
    lap("encode")
    height, width = frames[0].shape[:2]
    return GenerateSummary(output, n_frames, fps, (width + width % 2, height + height % 2),
                           emotion.describe(), timings, "; ".join(note for note in notes if note))
