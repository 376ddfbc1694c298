"""Speed of ``generate`` (procedural driver + warp renderer) on this machine, by stage.

For a still portrait and a moving target video at 256² and 512², prints frames
per second, the real-time factor (seconds of output video per second of compute;
≥ 1 means faster than real time) and the seconds spent in each stage.

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


def _targets(folder: Path) -> dict[str, Path]:
    """A still portrait and a 4 s video of it swaying, both 512²."""
    portrait = skimage.data.astronaut()
    still = folder / "portrait.png"
    media.write_image(still, portrait)
    frames = []
    for i in range(100):
        matrix = cv2.getRotationMatrix2D((220, 130), 6 * np.sin(i / 12), 1.0)
        frames.append(cv2.warpAffine(portrait, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT))
    video = folder / "video.mp4"
    media.write_video(video, frames, 25.0)
    return {"still": still, "video": video}


def main() -> None:
    speech = importlib.resources.files("emoportrait") / "data" / "demo_speech.flac"
    rows = []
    with tempfile.TemporaryDirectory() as tmp, importlib.resources.as_file(speech) as speech_path:
        folder = Path(tmp)
        targets = _targets(folder)
        generate(speech_path, parse_emotion("happy"), targets["still"], folder / "warmup.mp4",
                 config=GenerateConfig(size=128))  # librosa/numba compile once, not timed
        for size in (256, 512):
            for kind, target in targets.items():
                summary = generate(speech_path, parse_emotion("happy", 0.8), target,
                                   folder / f"{kind}{size}.mp4", config=GenerateConfig(size=size))
                total = sum(summary.timings.values())
                rows.append((f"{kind} {size}²", summary.n_frames / total,
                             summary.n_frames / summary.fps / total,
                             [summary.timings.get(stage, 0.0) for stage in STAGES]))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'target':<12}{'frames/s':>9}{'x real time':>12}  " + "".join(f"{s + ' s':>9}" for s in STAGES))
    print("-" * (35 + 9 * len(STAGES)))
    for name, fps, factor, seconds in rows:
        print(f"{name:<12}{fps:>9.1f}{factor:>12.2f}  " + "".join(f"{s:>9.2f}" for s in seconds))
    print(f"peak memory (max RSS) {peak_mib:.0f} MiB; speech: bundled demo clip (6.1 s)")


if __name__ == "__main__":
    main()
