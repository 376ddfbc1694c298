"""Media I/O: read frames and audio from any video or still image, write H.264/AAC mp4.

Frames cross this module's boundary as ``(H, W, 3)`` uint8 RGB arrays. Videos are
decoded as a stream (:func:`iter_frames`), so a long video is never held in memory
whole unless the caller asks for it (:func:`read_frames`). A still image is a
one-frame target. Every writer goes through :func:`atomic_output`: it writes to a
temporary file beside the destination and renames it at the end, so a crash never
leaves a half-written output behind.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import tempfile
import wave
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import soxr

from .errors import InputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
"""File suffixes read as still images (one-frame targets)."""
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm"})
"""File suffixes looked for as videos (a folder of videos to analyse, an upload)."""
WRITTEN_VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv"})
"""Containers :class:`VideoWriter` writes (H.264 with AAC sound)."""
STILL_FPS = 25.0
"""Frame rate of what is made from a still image (and of a video that states none): EVP's rate."""

_AV_ERRORS = (av.error.FFmpegError, UnicodeDecodeError)


@dataclass(frozen=True)
class VideoInfo:
    """What a video or image file holds.

    ``fps`` is ``None`` for a still image; ``n_frames`` is the container's count or,
    when the container does not store one, an estimate from duration × fps.
    ``duration_s`` is 0 for a still image.
    """

    path: Path
    width: int
    height: int
    fps: float | None
    n_frames: int
    duration_s: float
    has_audio: bool
    audio_sample_rate: int | None

    @property
    def is_image(self) -> bool:
        return self.fps is None


def is_image(path: str | Path) -> bool:
    """True when ``path`` names a still image (by its suffix)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_hidden(path: str | Path, root: str | Path) -> bool:
    """True when ``path``, or a folder between ``root`` and it, is hidden (its name starts
    with a dot): macOS's ``._clip.mp4`` AppleDouble files, ``.Trashes``, ``.git``."""
    return any(part.startswith(".") for part in Path(path).relative_to(root).parts)


def _require_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"'{path}' does not exist")
    if not path.is_file():
        raise InputError(f"'{path}' is not a file")
    return path


def _one_line(exc: BaseException) -> str:
    """FFmpeg's reason without its errno and file name, else the first line of the message."""
    text = getattr(exc, "strerror", None) or str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except _AV_ERRORS as exc:
        raise InputError(
            f"'{path}' is not a readable video or audio file; it may be truncated or corrupt "
            f"({_one_line(exc)})"
        ) from exc


def read_image(path: str | Path) -> np.ndarray:
    """Read a still image as ``(H, W, 3)`` uint8 RGB (EXIF orientation applied)."""
    path = _require_file(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"'{path}' is not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def probe(path: str | Path) -> VideoInfo:
    """Describe a video or image file, decoding at most its first frame (for the display
    rotation: the size is the size frames are shown and yielded at).

    A file holding a single frame and no sound (a GIF portrait) is described as a
    still: ``fps`` None, as for an image.
    """
    path = _require_file(path)
    if is_image(path):
        height, width = read_image(path).shape[:2]
        return VideoInfo(path, width, height, None, 1, 0.0, False, None)
    with _open_container(path) as container:
        if not container.streams.video:
            raise InputError(f"'{path}' has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise InputError(f"'{path}' does not state its frame rate")
        fps = float(rate)
        if container.duration:
            duration = container.duration / av.time_base
        elif stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = stream.frames / fps
        n_frames = stream.frames or round(duration * fps)
        audio = container.streams.audio[0] if container.streams.audio else None
        if n_frames == 1 and audio is None:  # a one-frame GIF or video is a still (GIFs state 100 fps)
            fps, duration = None, 0.0
        width, height = stream.codec_context.width, stream.codec_context.height
        if _first_rotation(container, stream) % 2:  # a phone's portrait clip: shown turned
            width, height = height, width
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=fps,
            n_frames=int(n_frames),
            duration_s=float(duration),
            has_audio=audio is not None,
            audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        )


def _rotation(frame: av.VideoFrame) -> int:
    """Quarter turns counterclockwise (0-3) that show ``frame`` upright, from its display
    matrix (phones store portrait clips as landscape frames and a rotation)."""
    return round(frame.rotation / 90) % 4


def width_at(width: int, height: int, new_height: int) -> int:
    """The even width that keeps a ``width`` × ``height`` frame's aspect at ``new_height``."""
    return max(2, round(width * new_height / height / 2) * 2)


def resize(image: np.ndarray, size: tuple[int, int], enlarge: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` ``(H, W, ...)`` at ``size`` ``(width, height)``: pixel-area averaging to shrink,
    ``enlarge`` (an OpenCV interpolation; bilinear) to grow; ``image`` itself at its own size.

    The toolkit's one way to resize frames and crops, but where a reference fixes the
    interpolation (FID's Inception input, the bundled FER's crops).
    """
    width, height = int(size[0]), int(size[1])
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else enlarge)


def resize_to_height(frame: np.ndarray, height: int | None) -> np.ndarray:
    """``(H, W, 3)`` → ``(height, W', 3)``, the aspect kept (:func:`width_at`); None or
    the frame's own height returns it as it is. Area averaging down, bicubic up."""
    if height is None or frame.shape[0] == height:
        return frame
    return resize(frame, (width_at(frame.shape[1], frame.shape[0], height), height), enlarge=cv2.INTER_CUBIC)


def _upright(frame: av.VideoFrame, height: int | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a decoded frame, turned as its display matrix says
    (as players and ffmpeg show it), at ``height`` when given (scaled by FFmpeg's
    swscale in the same pass as the colour conversion: twice as fast as converting,
    then resizing a 1080p frame)."""
    turns = _rotation(frame)
    shown_width, shown_height = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
    if height is None or height == shown_height:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        width = width_at(shown_width, shown_height, height)
        size = (height, width) if turns % 2 else (width, height)  # (W, H) before turning
        rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1],
                               interpolation="AREA" if height < shown_height else "BICUBIC")
    return np.ascontiguousarray(np.rot90(rgb, turns))


def _first_rotation(container: av.container.InputContainer, stream) -> int:
    """:func:`_rotation` of the stream's first frame (0 if none decodes)."""
    try:
        for frame in container.decode(stream):
            return _rotation(frame)
    except _AV_ERRORS:
        pass
    return 0


def iter_frames(path: str | Path, height: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video (or the single frame of an image), ``(H, W, 3)`` uint8 RGB,
    scaled to ``height`` pixels high (aspect kept, :func:`width_at`) when given.

    Frames are decoded one at a time. A file that turns out to be truncated or
    corrupt part-way raises :class:`InputError` naming the frame where it broke.
    """
    path = _require_file(path)
    if is_image(path):
        yield resize_to_height(read_image(path), height)
        return
    index = 0
    with _open_container(path) as container:
        if not container.streams.video:
            raise InputError(f"'{path}' has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield _upright(frame, height)
                index += 1
        except _AV_ERRORS as exc:
            raise InputError(
                f"'{path}' is corrupt or truncated at frame {index} ({_one_line(exc)})"
            ) from exc
    if index == 0:
        raise InputError(f"'{path}' holds no decodable video frame")


def read_frames(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Read up to ``max_frames`` frames into memory as ``(T, H, W, 3)`` uint8 RGB."""
    frames = []
    for frame in iter_frames(path):
        if max_frames is not None and len(frames) >= max_frames:
            break
        frames.append(frame)
    return np.stack(frames)


def read_audio(path: str | Path, mono: bool = True) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any audio or video file.

    Returns ``(samples, sample_rate)``: ``samples`` is ``(S,)`` float32 mono in
    [-1, 1] (channels mixed down) at the file's own sample rate in Hz; with ``mono``
    off, ``(C, S)`` with the file's channels (stereo kept; more than two mixed to one).
    """
    path = _require_file(path)
    if is_image(path):
        raise InputError(f"'{path}' is an image and has no audio; give a video or audio file")
    with _open_container(path) as container:
        if not container.streams.audio:
            raise InputError(f"'{path}' has no audio stream; give a file with sound")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        # planar float keeps the channels apart so they can be averaged: FFmpeg's own
        # down-mix adds them (scaled by 1/sqrt(2)), which can push loud stereo past 1.
        resampler = av.AudioResampler(format="fltp", rate=rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except _AV_ERRORS as exc:
            raise InputError(f"'{path}' has a corrupt audio stream ({_one_line(exc)})") from exc
    channels = np.concatenate(chunks, axis=1).astype(np.float32) if chunks else np.zeros((1, 0), np.float32)
    _check_complete_wav(path, channels.shape[1], int(rate))
    if mono or len(channels) > 2:
        channels = channels.mean(axis=0, keepdims=True)
    return (channels[0] if mono else channels), int(rate)


def _check_complete_wav(path: Path, n_samples: int, rate: int) -> None:
    """Raise :class:`InputError` when a PCM WAV file holds clearly less sound than its
    header states (a cut-off download or copy): FFmpeg reads what is there in silence.
    Headers of streamed WAVs (length 0 or 0xFFFFFFFF: unknown) are not judged."""
    if path.suffix.lower() != ".wav":
        return
    try:
        with wave.open(str(path), "rb") as header:
            stated, width, channels = header.getnframes(), header.getsampwidth(), header.getnchannels()
    except (wave.Error, EOFError, OSError):  # not plain PCM: nothing to compare with
        return
    if not 0 < stated * width * channels < 0xFFFFFFF0:
        return
    if stated - n_samples > max(0.05 * stated, 0.1 * rate):
        raise InputError(f"'{path}' is truncated: its header states {stated / rate:.1f} s of sound but the file "
                         f"holds {n_samples / rate:.1f} s; copy or export it again")


def _writable_folder(folder: Path, what: str) -> None:
    """Raise :class:`InputError` unless ``folder``, or the nearest existing folder above it
    (where it would be created), is a folder this process may write in."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{what}: '{existing}' is a file, not a folder; choose another place")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{what}: cannot write in '{existing}' (permission denied); choose another place")


def check_output(path: str | Path, suffixes: Iterable[str], inputs: Iterable[str | Path] = ()) -> None:
    """Check an output file's name before any work is done, so a run never fails at its end.

    Raises:
        InputError: the name lacks one of ``suffixes``, names a folder or one of ``inputs``,
            or lies where this process cannot write.
    """
    path = Path(path)
    allowed = sorted(suffix.lower() for suffix in suffixes)
    if path.suffix.lower() not in allowed:
        choice = allowed[0] if len(allowed) == 1 else "one of " + ", ".join(allowed)
        raise InputError(f"output '{path}' must end with {choice}")
    if path.is_dir():
        raise InputError(f"output '{path}' is a folder; give a file name, e.g. {path / ('out' + allowed[0])}")
    if any(path.resolve() == Path(source).resolve() for source in inputs):
        raise InputError(f"output '{path}' would overwrite an input; choose another name")
    _writable_folder(path.resolve().parent, f"output '{path}'")


def check_output_folder(folder: str | Path) -> None:
    """Check an output folder (a report, a run, a cache) before any work is done.

    Raises:
        InputError: ``folder`` is a file, or lies where this process cannot write.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"output folder '{folder}' is a file; choose a folder name")
    _writable_folder(folder.resolve(), f"output folder '{folder}'")


def with_umask(path: Path) -> None:
    """Give ``path``, made by :mod:`tempfile` (0600 files, 0700 folders), the permissions
    a plain ``open`` or ``mkdir`` would: 0666 or 0777 less the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    The temporary name keeps the suffix so writers that pick a format from it work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        with_umask(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad a frame by edge replication to even width and height (yuv420p needs both)."""
    height, width = frame.shape[:2]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
"""Sample rates (Hz) AAC carries; :class:`VideoWriter` resamples others to the next one up."""


ENCODE_AHEAD = 4
"""Frames :class:`VideoWriter` holds for its encoder thread at most (then ``write`` waits)."""


class VideoWriter:
    """Write an H.264 (yuv420p) mp4, optionally with an AAC audio track, atomically.

    >>> with VideoWriter("out.mp4", fps=25, audio=speech, sample_rate=16000) as writer:
    ...     for frame in frames:          # (H, W, 3) uint8 RGB, all the same size
    ...         writer.write(frame)

    The frame size is taken from the first frame; odd sizes are padded by one
    replicated row/column. ``audio`` is ``(S,)`` float32 mono or ``(2, S)`` stereo in
    [-1, 1]; it is interleaved with the video as frames arrive, starting at pts 0 so that audio
    and video start together. The file appears at ``path`` only when the writer
    closes without error. x264's ``veryfast`` preset at CRF 18 encodes about twice as
    fast as ``medium`` for files within 5 % of the size (measured at 256²).

    Frames are encoded on a worker thread (x264 and PyAV run without the GIL), up to
    :data:`ENCODE_AHEAD` frames behind :meth:`write`, so the caller makes the next frame
    meanwhile (a 720p video: render and encode take about as long, and now overlap). An
    encoding error is raised by the next :meth:`write` or by :meth:`close`.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        audio: np.ndarray | None = None,
        sample_rate: int | None = None,
        crf: int = 18,
        preset: str = "veryfast",
    ) -> None:
        if fps <= 0:
            raise InputError(f"frame rate must be positive, got {fps}")
        if audio is not None and not sample_rate:
            raise InputError("audio given without its sample rate")
        self.path = Path(path)
        self.fps = fps
        self._rate = Fraction(fps).limit_denominator(1001)
        self._audio = None if audio is None else np.atleast_2d(np.asarray(audio, np.float32))
        if self._audio is not None and len(self._audio) not in (1, 2):
            raise InputError(f"audio of shape {self._audio.shape}: give (S,) mono or (2, S) stereo samples")
        if self._audio is not None and sample_rate not in AAC_RATES:  # e.g. 37 kHz: AAC cannot carry it
            rate = min((r for r in AAC_RATES if r > sample_rate), default=max(AAC_RATES))
            self._audio = np.ascontiguousarray(soxr.resample(self._audio.T, sample_rate, rate, quality="HQ").T,
                                               dtype=np.float32)
            sample_rate = rate
        self._sample_rate = sample_rate
        self._options = {"crf": str(crf), "preset": preset}
        self._atomic = atomic_output(self.path)
        temp = self._atomic.__enter__()
        self._container = av.open(str(temp), mode="w")
        self._video = None
        self._audio_stream = None
        self._audio_sent = 0
        self.frames_written = 0
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
        self._pending: collections.deque[Future] = collections.deque()
        if self._audio is not None:
            self._layout = "mono" if len(self._audio) == 1 else "stereo"
            self._audio_stream = self._container.add_stream("aac", rate=sample_rate, layout=self._layout)

    def _open_video(self, frame: np.ndarray) -> None:
        stream = self._container.add_stream("libx264", rate=self._rate, options=self._options)
        stream.height, stream.width = frame.shape[:2]
        stream.pix_fmt = "yuv420p"
        self._video = stream

    def _send_audio_until(self, end_sample: int) -> None:
        end_sample = min(end_sample, self._audio.shape[1])
        if end_sample <= self._audio_sent:
            return
        chunk = np.ascontiguousarray(self._audio[:, self._audio_sent : end_sample])
        audio_frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._layout)
        audio_frame.sample_rate = self._sample_rate
        audio_frame.pts = self._audio_sent
        audio_frame.time_base = Fraction(1, self._sample_rate)
        self._container.mux(self._audio_stream.encode(audio_frame))
        self._audio_sent = end_sample

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame."""
        frame = _even(np.ascontiguousarray(frame, dtype=np.uint8))
        if self._video is None:
            self._open_video(frame)
        elif frame.shape[:2] != (self._video.height, self._video.width):
            raise InputError(
                f"frame {self.frames_written} is {frame.shape[1]}x{frame.shape[0]}, "
                f"but the video is {self._video.width}x{self._video.height}"
            )
        while len(self._pending) >= ENCODE_AHEAD:
            self._pending.popleft().result()  # waits; raises the encoder's error, if any
        self._pending.append(self._encoder.submit(self._encode, frame.copy(), self.frames_written))
        self.frames_written += 1

    def _encode(self, frame: np.ndarray, index: int) -> None:
        """Encode and mux frame ``index`` and the audio up to its end (on the encoder thread)."""
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = index
        video_frame.time_base = 1 / self._rate
        self._container.mux(self._video.encode(video_frame))
        if self._audio is not None:
            self._send_audio_until(math.ceil((index + 1) / self.fps * self._sample_rate))

    def _drain(self) -> None:
        """Wait for every frame handed to the encoder thread, then stop it."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._encoder.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Flush the encoders and move the finished file into place."""
        try:
            self._drain()
            if self._video is None:
                raise InputError(f"no frame was written to '{self.path}'")
            if self._audio is not None:
                self._send_audio_until(self._audio.shape[1])
                self._container.mux(self._audio_stream.encode(None))
            self._container.mux(self._video.encode(None))
            self._container.close()
        except BaseException as exc:
            self._abort(exc)
            raise
        self._atomic.__exit__(None, None, None)

    def _abort(self, exc: BaseException) -> None:
        with contextlib.suppress(Exception):
            self._drain()
        with contextlib.suppress(Exception):
            self._container.close()
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self._abort(exc)


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
) -> int:
    """Write ``frames`` (each ``(H, W, 3)`` uint8 RGB) to an mp4; return the frame count."""
    with VideoWriter(path, fps, audio=audio, sample_rate=sample_rate) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.frames_written


def write_image(path: str | Path, frame: np.ndarray) -> None:
    """Write one ``(H, W, 3)`` uint8 RGB frame as an image (format from the suffix), atomically."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"cannot write an image with suffix '{path.suffix}' ('{path}')")
    with atomic_output(path) as temp:
        temp.write_bytes(encoded.tobytes())


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write ``(S,)`` float32 mono samples in [-1, 1] at ``sample_rate`` Hz as AAC, atomically.

    The container follows the suffix of ``path`` (``.m4a`` gives an MPEG-4 audio file).
    The first sample has pts 0; AAC adds its usual encoder delay (priming samples),
    which the container records, so decoders trim it.
    """
    data = np.clip(np.asarray(samples, np.float32).reshape(-1), -1.0, 1.0)
    if not len(data):
        raise InputError(f"no audio samples to write to '{path}'")
    with atomic_output(path) as temp, av.open(str(temp), mode="w") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(data[None, :], format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = 0
        frame.time_base = Fraction(1, sample_rate)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
