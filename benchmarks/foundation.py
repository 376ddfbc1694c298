"""Throughput of the foundation stages on this machine.

Prints a table of frames per second for video decode, H.264 encode and face
tracking at 256² and 512², MFCC-window extraction and DTW alignment as real-time
factors (seconds of audio per second of compute), and the process's peak memory.

    .venv/bin/python benchmarks/foundation.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from emoportrait import audio, face, media

FPS = 25.0


def _moving_portrait(size: int, n_frames: int) -> list[np.ndarray]:
    """The astronaut portrait swaying and tilting, ``n_frames`` of ``(size, size, 3)``."""
    base = cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n_frames):
        angle = 8 * np.sin(i / 15)
        matrix = cv2.getRotationMatrix2D((size * 0.43, size * 0.25), angle, 1.0)
        matrix[0, 2] += size * 0.03 * np.sin(i / 10)
        frames.append(cv2.warpAffine(base, matrix, (size, size), borderMode=cv2.BORDER_REFLECT))
    return frames


def _timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the test clips")
    args = parser.parse_args()
    n_frames = int(args.seconds * FPS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (256, 512):
            frames = _moving_portrait(size, n_frames)
            path = Path(tmp) / f"clip{size}.mp4"
            seconds, _ = _timed(lambda: media.write_video(path, frames, FPS))
            rows.append((f"encode H.264 {size}²", n_frames / seconds, "frames/s"))
            seconds, decoded = _timed(lambda: sum(1 for _ in media.iter_frames(path)))
            rows.append((f"decode {size}²", decoded / seconds, "frames/s"))
            seconds, track = _timed(lambda: face.track_file(path))
            rows.append((f"track face {size}² (mesh + detector)", len(track) / seconds, "frames/s"))

        rate = 16000
        t = np.arange(int(args.seconds * rate)) / rate
        speech = (0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        audio.mfcc_windows(speech[: rate], FPS)  # librosa's first call compiles (numba); not timed
        seconds, _ = _timed(lambda: audio.mfcc_windows(speech, FPS))
        rows.append(("MFCC windows (T, 28, 12)", args.seconds / seconds, "x real time"))
        other = np.interp(np.linspace(0, len(speech) - 1, int(len(speech) * 1.25)),
                          np.arange(len(speech)), speech).astype(np.float32)
        seconds, _ = _timed(lambda: audio.align_audio(speech, other))
        rows.append(("DTW align + waveform warp", args.seconds / seconds, "x real time"))

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'stage':<38}{'speed':>10}  unit   ({args.seconds:.0f} s clips, {n_frames} frames)")
    print("-" * 64)
    for name, value, unit in rows:
        print(f"{name:<38}{value:>10.1f}  {unit}")
    print(f"{'peak memory (max RSS)':<38}{peak_mib:>10.0f}  MiB")


if __name__ == "__main__":
    main()
