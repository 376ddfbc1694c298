"""Speed of ``generate`` (procedural driver + warp renderer) on this machine, by stage.

For a still portrait and a moving target video at 256² and 512², a 720p video and
a 3840² (4K) photo at the default output size, prints frames per second, the
real-time factor (seconds of output video per second of compute;
≥ 1 means faster than real time) and the seconds spent in each stage ("encode" is
the time drawing waited for the encoder thread, not the encoder's own time).

    .venv/bin/python benchmarks/generate.py
"""

from __future__ import annotations

import importlib.resources
import resource
import tempfile
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from emoportrait import media
from emoportrait.emotions import parse_emotion
from emoportrait.pipeline import GenerateConfig, generate

STAGES = ("read", "track", "drive", "render", "encode")


def _swaying(portrait: np.ndarray, size: tuple[int, int], frames: int = 100) -> list[np.ndarray]:
    """``frames`` frames (W, H = ``size``) of the portrait swaying about its neck."""
    scale = size[1] / portrait.shape[0]
    swayed = []
    for i in range(frames):
        matrix = cv2.getRotationMatrix2D((220, 130), 6 * np.sin(i / 12), scale)
        matrix[0, 2] += (size[0] - portrait.shape[1] * scale) / 2  # centred on a wider frame
        swayed.append(cv2.warpAffine(portrait, matrix, size, borderMode=cv2.BORDER_REFLECT))
    return swayed


def _targets(folder: Path) -> dict[str, Path]:
    """A still portrait and a 4 s video of it swaying, both 512²; the same video at 720p,
    and the portrait at 3840² (a 4K photo)."""
    portrait = skimage.data.astronaut()
    paths = {"still": folder / "portrait.png", "video": folder / "video.mp4",
             "video 720p": folder / "video720.mp4", "still 4K": folder / "portrait4k.png"}
    media.write_image(paths["still"], portrait)
    media.write_video(paths["video"], _swaying(portrait, (512, 512)), 25.0)
    media.write_video(paths["video 720p"], _swaying(portrait, (1280, 720)), 25.0)
    media.write_image(paths["still 4K"], cv2.resize(portrait, (3840, 3840), interpolation=cv2.INTER_CUBIC))
    return paths


def _row(name: str, summary) -> tuple:
    total = sum(summary.timings.values())
    return (name, summary.n_frames / total, summary.n_frames / summary.fps / total,
            [summary.timings.get(stage, 0.0) for stage in STAGES])


def main() -> None:
    speech = importlib.resources.files("emoportrait") / "data" / "demo_speech.flac"
    rows = []
    with tempfile.TemporaryDirectory() as tmp, importlib.resources.as_file(speech) as speech_path:
        folder = Path(tmp)
        targets = _targets(folder)
        generate(speech_path, parse_emotion("happy"), targets["still"], folder / "warmup.mp4",
                 config=GenerateConfig(size=128))  # librosa/numba compile once, not timed
        for size in (256, 512):
            for kind in ("still", "video"):
                summary = generate(speech_path, parse_emotion("happy", 0.8), targets[kind],
                                   folder / f"{kind}{size}.mp4", config=GenerateConfig(size=size))
                rows.append(_row(f"{kind} {size}²", summary))
        for kind in ("video 720p", "still 4K"):  # at the default size (a 4K still is drawn 1024 px)
            summary = generate(speech_path, parse_emotion("happy", 0.8), targets[kind], folder / "big.mp4")
            rows.append(_row(kind, summary))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'target':<12}{'frames/s':>9}{'x real time':>12}  " + "".join(f"{s + ' s':>9}" for s in STAGES))
    print("-" * (35 + 9 * len(STAGES)))
    for name, fps, factor, seconds in rows:
        print(f"{name:<12}{fps:>9.1f}{factor:>12.2f}  " + "".join(f"{s:>9.2f}" for s in seconds))
    print(f"peak memory (max RSS) {peak_mib:.0f} MiB; speech: bundled demo clip (6.1 s)")


if __name__ == "__main__":
    main()
