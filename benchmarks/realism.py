"""How real the generated mouth is, against real people talking (``shared/media``).

For each real talking clip with its own speech, ``generate`` makes two videos from
the clip's own audio (neutral: a MEAD clip's photo already shows its emotion):

* **still**: the target is the clip's first frame, as a portrait;
* **video**: the target is the clip itself (self-reenactment: its head motion kept,
  its mouth driven by the speech).

Each video is tracked again with the toolkit's tracker, and its inner-lip opening
(canonical face units, so head size and pose cancel) is compared with the real
person's on the same timeline:

* ``r``: Pearson correlation with the real opening at the best lag within ±4 frames,
  and that ``lag`` in ms (positive: the generated mouth is late);
* ``mean ratio``: mean generated opening over the real person's mean;
* ``closures/s``: how often the mouth closes (falls below 30 % of its own 90th
  percentile opening after rising above 50 % of it), generated and real;
* ``lower lip``: the lower lip's area on open frames (top quarter of the opening) over
  its area on closed frames (bottom quarter): below 1 means the lip thins as the mouth opens.

It prints one table and writes contact sheets (the real face, the still and the
video result side by side, face upscaled) to ``--out`` (default ``realism/``). Look at them.

    .venv/bin/python benchmarks/realism.py [--media ../shared/media] [--out realism/]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoportrait import media, tracking
from emoportrait.analysis.lipsync import lagged_correlation
from emoportrait.analysis.sheets import crop, region_box, write_sheet
from emoportrait.drivers.action_units import FaceGeometry
from emoportrait.emotions import EmotionSpec
from emoportrait.errors import EmoportraitError
from emoportrait.face import TrackerConfig, inner_mouth_opening, track_frames
from emoportrait.pipeline import generate

DEFAULT_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
CLIPS = ("talking/hdtf_katiehill.mp4", "talking/glasses_man_talking.mp4",
         "mead/with_audio/M030_sad_level_3_001.mp4")
NOT_THE_SPEAKER = {
    "glasses_man_talking": "its soundtrack is music (a ~130 bpm beat and sustained tones, no speech "
                           "recognised), not the man's voice",
}
"""Clips whose audio is not what the person on screen says: generated, shown on the sheets
and tabled, but left out of the mean correlation (nothing driven by that audio can follow
the real mouth)."""
MAX_LAG = 4
SHEET_FRAMES = 10


@dataclass
class Track:
    """A video's frames with its tracked face: ``(T, 478, 3)`` canonical and pixel landmarks."""

    frames: list[np.ndarray]
    fps: float
    canonical: np.ndarray
    landmarks: np.ndarray

    @property
    def opening(self) -> np.ndarray:
        """``(T,)`` inner-lip gap, canonical units."""
        return inner_mouth_opening(self.canonical)

    def on(self, times: np.ndarray) -> np.ndarray:
        """The opening resampled at ``times`` (s)."""
        return np.interp(times, (np.arange(len(self.canonical)) + 0.5) / self.fps, self.opening)


def read_track(path: Path) -> Track:
    frames = list(media.iter_frames(path))
    fps = media.probe(path).fps or 25.0
    result = tracking.analyse(track_frames(frames, fps, TrackerConfig(), name=str(path)))
    return Track(frames, fps, result.canonical, result.track.landmarks)


def closures_per_second(opening: np.ndarray, fps: float) -> float:
    """Closures (below 30 % of the 90th percentile after being above 50 %) per second."""
    high = np.percentile(opening, 90)
    count, is_open = 0, False
    for value in opening:
        if is_open and value < 0.3 * high:
            count, is_open = count + 1, False
        elif value > 0.5 * high:
            is_open = True
    return count * fps / len(opening)


def _polygon_area(points: np.ndarray) -> np.ndarray:
    """``(T, K, 2)`` closed polygons → ``(T,)`` unsigned areas."""
    x, y = points[..., 0], points[..., 1]
    return 0.5 * np.abs((x * np.roll(y, -1, axis=-1) - y * np.roll(x, -1, axis=-1)).sum(axis=-1))


def lower_lip_ratio(canonical: np.ndarray) -> float:
    """Lower-lip area on the most open quarter of frames over that on the most closed quarter."""
    geometry = FaceGeometry(canonical.mean(axis=0))
    outer = geometry.lip_arcs("outer_lips").lower
    inner = geometry.lip_arcs("inner_lips").lower
    x = geometry.points[:, 0]
    ring = np.concatenate([outer[np.argsort(x[outer])], inner[np.argsort(-x[inner])]])
    area = _polygon_area(canonical[:, ring, :2])
    opening = inner_mouth_opening(canonical)
    low, high = np.percentile(opening, [25, 75])
    return float(area[opening >= high].mean() / area[opening <= low].mean())


def compare(real: Track, generated: Track) -> dict[str, float]:
    times = (np.arange(len(real.canonical)) + 0.5) / real.fps
    ours = generated.on(times)
    sync = lagged_correlation(ours, real.opening, MAX_LAG)
    return {"r": sync.correlation, "lag ms": sync.lag_ms(real.fps),
            "mean ratio": float(ours.mean() / real.opening.mean()),
            "closures/s": closures_per_second(generated.opening, generated.fps),
            "lower lip": lower_lip_ratio(generated.canonical)}


def sheet(path: Path, region: str, real: Track, results: dict[str, Track]) -> Path:
    """Crops of the face or mouth of the real clip and of each result at the same
    instants, one row each (the box follows the face)."""
    instants = np.linspace(0.3, len(real.canonical) / real.fps - 0.3, SHEET_FRAMES)
    rows, labels = [], []
    for label, video in {"real": real, **results}.items():
        indices = np.minimum((instants * video.fps).astype(int), len(video.frames) - 1)
        rows.append([crop(video.frames[i], region_box(video.landmarks[i], region, margin=0.02), 224)
                     for i in indices])
        labels.append([f"{label} {t:.1f}s" for t in instants])
    return write_sheet(path, rows, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--out", type=Path, default=Path("realism"))
    args = parser.parse_args()
    clips = [args.media / clip for clip in CLIPS if (args.media / clip).is_file()]
    if not clips:
        sys.exit(f"no real talking clips under {args.media}; pass --media")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for clip in clips:
            real = read_track(clip)
            portrait = folder / f"{clip.stem}.png"
            media.write_image(portrait, real.frames[0])
            results, notes = {}, ""
            for mode, target in (("still", portrait), ("video", clip)):
                output = folder / f"{clip.stem}_{mode}.mp4"
                try:
                    summary = generate(clip, EmotionSpec({}), target, output)
                except EmoportraitError as exc:
                    print(f"{clip.name} {mode}: {exc}")
                    continue
                notes = summary.notes
                results[mode] = read_track(output)
                rows.append((clip.stem, mode, compare(real, results[mode]),
                             closures_per_second(real.opening, real.fps)))
            for region in ("face", "mouth"):
                path = sheet(args.out / f"{clip.stem}_{region}.png", region, real, results)
            print(f"{clip.stem}: {notes}; sheets {path.parent}/{clip.stem}_*.png")
    columns = ("r", "lag ms", "mean ratio", "closures/s", "lower lip")
    print(f"\n{'clip':<28}{'target':<7}" + "".join(f"{c:>12}" for c in columns) + f"{'real cl/s':>11}")
    for name, mode, values, real_closures in rows:
        cells = "".join(f"{values[c]:>12.2f}" if not math.isnan(values[c]) else f"{'-':>12}"
                        for c in columns)
        print(f"{name[:27]:<28}{mode:<7}{cells}{real_closures:>11.2f}")
    for name, reason in NOT_THE_SPEAKER.items():
        if any(row[0] == name for row in rows):
            print(f"left out of the means: {name} ({reason})")
    for mode in ("still", "video"):
        chosen = [values["r"] for name, m, values, _ in rows if m == mode and name not in NOT_THE_SPEAKER]
        if chosen:
            print(f"mean r, {mode}: {np.nanmean(chosen):.2f}")


if __name__ == "__main__":
    main()
