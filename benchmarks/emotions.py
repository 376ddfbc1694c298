"""Do generate's emotions read on real faces? The default FER judges, sheets for people.

For each portrait (those in ``shared/media/portraits``, scikit-image's astronaut and
matplotlib's Grace Hopper photo), each of MEAD's eight emotions and each intensity
(0.3, 0.6, 1.0), ``generate`` makes a video from the first 3 s of the bundled demo
speech; the default FER (mini-Xception, FER2013) scores each video (mean of its
frames' probabilities). It prints

* per portrait and intensity: how many of FER2013's 7 emotions were recognised, and
  the mean probability FER gives the requested emotion (it should rise with intensity);
* the confusion matrix over all portraits at intensity 1.0;
* for portraits wearing glasses: how far the frames' edges move (:func:`edge_shift`: from
  the source's long edges in the band generate holds to the output's, pixels per 100 px of
  eye distance, for surprised and angry, head sway and creases off, drawn at the portrait's
  own size: at 320 px the codec blurs thin rims away), with and without ``rigid_glasses``;

* the same FER on real actors (``shared/media/mead/video``: MEAD's M030 and W009, one
  level-3 clip per emotion, level 1 for neutral), where present: what the yardstick
  itself reaches on real faces;

and writes one contact sheet per portrait to ``--out`` (rows: emotions; columns: the
source, then intensities 0.3, 0.6, 1.0; face crops at 2 s). Contempt, which FER2013
cannot output, is judged by eye on the sheets.

    .venv/bin/python benchmarks/emotions.py [--out emotions/] [--size 320]
"""

from __future__ import annotations

import argparse
import importlib.resources
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import matplotlib.cbook
import matplotlib.image
import numpy as np
import skimage.data
from scipy.ndimage import distance_transform_edt

from emoportrait import audio, media
from emoportrait.analysis import report, run
from emoportrait.analysis.labels import target_class
from emoportrait.analysis.recognizers.mini_xception import MiniXceptionRecognizer
from emoportrait.analysis.sheets import crop, region_box, write_sheet
from emoportrait.emotions import EMOTIONS, canonical_emotion, parse_emotion
from emoportrait.face import GROUPS, track_frames
from emoportrait.face.glasses import frame_weights, thin_frames, wears_glasses
from emoportrait.pipeline import GenerateConfig, generate
from emoportrait.render.creases import CreaseConfig
from emoportrait.render.warp import WarpConfig, WarpRenderer

DEFAULT_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
INTENSITIES = (0.3, 0.6, 1.0)
SPEECH_SECONDS = 3.0
SHEET_SECOND = 2.0


def portraits(media_root: Path, folder: Path) -> dict[str, Path]:
    """Portrait files by name: the shared ones, the astronaut and Grace Hopper."""
    found = {path.stem: path for path in sorted((media_root / "portraits").glob("*")) if media.is_image(path)}
    extra = {"astronaut": skimage.data.astronaut()[0:320, 60:380],
             "grace_hopper": matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))}
    for name, image in extra.items():
        found[name] = folder / f"{name}.png"
        media.write_image(found[name], np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    return found


def frame_at(video: Path, seconds: float) -> np.ndarray:
    fps = media.probe(video).fps or 25.0
    return media.read_frames(video, max_frames=int(seconds * fps) + 1)[-1]


def edge_shift(source: np.ndarray, output: np.ndarray, band: np.ndarray, span: float) -> float:
    """How far the frames moved: mean distance (pixels per 100 px of eye span) from the
    source's long Canny edges in ``band`` ``(H, W)`` bool (connected runs of at least 0.3
    eye spans: the rims, not skin texture) to the output's nearest edge. Brows that move
    into the band add edges of their own, which this direction does not count."""
    edges = [cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 60, 150) > 0 for image in (source, output)]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(edges[0].astype(np.uint8), connectivity=8)
    long = np.zeros(count, bool)
    long[1:] = stats[1:, cv2.CC_STAT_AREA] >= 0.3 * span
    chosen = long[labels] & band
    distance = distance_transform_edt(~edges[1])
    return float(distance[chosen].mean() * 100.0 / span) if chosen.any() else float("nan")


def glasses_band(image: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The frames' band of a face wearing glasses as an ``(H, W)`` mask (the skin generate
    holds, brows included unless the frames are thin), and its eye span; None without glasses."""
    landmarks = track_frames([image], fps=None).landmarks[0]
    if not wears_glasses(image, landmarks):
        return None
    weights = frame_weights(landmarks, "edge" if thin_frames(image, landmarks) else "held")
    band = np.zeros(image.shape[:2], np.uint8)
    hull = cv2.convexHull(landmarks[weights > 0.5, :2].astype(np.float32))
    cv2.fillConvexPoly(band, hull.astype(np.int32), 1)
    eyes = np.zeros_like(band)
    for side in ("right_eye", "left_eye"):
        cv2.fillPoly(eyes, [landmarks[GROUPS[side], :2].astype(np.int32)], 1)
    band &= ~cv2.dilate(eyes, np.ones((9, 9), np.uint8)).astype(bool)
    return band.astype(bool), float(np.linalg.norm(landmarks[33, :2] - landmarks[263, :2]))


def real_actors(media_root: Path, recognizer: MiniXceptionRecognizer) -> list[run.VideoResult]:
    """FER on the shared real MEAD clips (none where they are absent)."""
    clips = sorted((media_root / "mead" / "video").glob("*_level*_001.mp4"))
    truth = {clip: canonical_emotion(clip.name.split("_")[1]) for clip in clips}
    return run.analyse_videos(clips, truth, [recognizer]) if clips else []


def print_confusion(title: str, results: list[run.VideoResult], recognizer: MiniXceptionRecognizer) -> None:
    """The confusion matrix of ``results`` (rows: requested or acted; columns: FER2013) and its accuracy."""
    summary = report.summarize(results, recognizer.info)
    print(f"\n{title} (rows: requested; columns: FER2013):")
    print(f"{'':<11}" + "".join(f"{label[:8]:>9}" for label in recognizer.info.labels))
    for emotion, row in zip(EMOTIONS, summary.confusion):
        print(f"{emotion:<11}" + "".join(f"{count:>9}" for count in row))
    print(f"accuracy {summary.accuracy:.2f} ({summary.accuracy_reachable:.2f} over the emotions FER2013 has)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--out", type=Path, default=Path("emotions"))
    parser.add_argument("--size", type=int, default=320)
    args = parser.parse_args()
    recognizer = MiniXceptionRecognizer()
    labels = recognizer.info.labels
    speech_resource = importlib.resources.files("emoportrait") / "data" / "demo_speech.flac"
    started = time.perf_counter()
    table, finals, rigidity = [], [], []
    with tempfile.TemporaryDirectory() as tmp, importlib.resources.as_file(speech_resource) as speech_path:
        folder = Path(tmp)
        speech = folder / "speech.wav"
        audio.write_wav(speech, audio.load_audio(speech_path)[: int(SPEECH_SECONDS * 16000)], 16000)
        config = GenerateConfig(size=args.size)
        for name, portrait in portraits(args.media, folder).items():
            videos: dict[tuple[str, float], Path] = {}
            for emotion in EMOTIONS:
                for intensity in INTENSITIES if emotion != "neutral" else (1.0,):
                    video = folder / f"{name}_{emotion}_{intensity:g}.mp4"
                    spec = parse_emotion(emotion, None if emotion == "neutral" else intensity)
                    generate(speech, spec, portrait, video, config=config)
                    videos[(emotion, intensity)] = video
            results = run.analyse_videos(list(videos.values()), {v: k[0] for k, v in videos.items()}, [recognizer])
            by_video = {result.path: result for result in results}
            for intensity in INTENSITIES:
                hits, probabilities = 0, []
                for emotion in EMOTIONS:
                    wanted = target_class("fer2013", emotion)
                    video = videos.get((emotion, intensity if emotion != "neutral" else 1.0))
                    if wanted is None or video is None:
                        continue
                    prediction = by_video[video].predictions[recognizer.info.name]
                    hits += canonical_emotion(prediction.label) == emotion
                    if emotion != "neutral":
                        probabilities.append(float(prediction.probabilities[labels.index(wanted)]))
                table.append((name, intensity, hits, float(np.mean(probabilities))))
            finals += [by_video[videos[(e, 1.0)]] for e in EMOTIONS]
            source = media.read_image(portrait)
            landmarks = track_frames([source], None).landmarks[0]
            box = region_box(landmarks, "face", 0.0)
            rows, names = [], []
            for emotion in EMOTIONS:
                cells = [crop(source, box, 200)]
                for intensity in INTENSITIES:
                    video = videos.get((emotion, intensity if emotion != "neutral" else 1.0))
                    frame = frame_at(video, SHEET_SECOND)
                    cells.append(crop(frame, box * frame.shape[0] / source.shape[0], 200))
                rows.append(cells)
                names.append([f"{name[:10]} source", *(f"{emotion} {i:g}" for i in INTENSITIES)])
            sheet = write_sheet(args.out / f"{name}.png", rows, names)
            print(f"{name}: sheet {sheet}")
            band = glasses_band(source)
            if band is not None:
                shifts = {}
                for rigid in (True, False):
                    values = []
                    for emotion in ("surprised", "angry"):
                        video = folder / f"{name}_{emotion}_rigid{rigid}.mp4"
                        generate(speech, parse_emotion(emotion), portrait, video,
                                 config=replace(config, idle_motion_deg=0.0, rigid_glasses=rigid,
                                                size=min(source.shape[0], 640)),  # thin rims vanish at 320
                                 renderer=WarpRenderer(WarpConfig(creases=CreaseConfig(depth=0.0))))
                        output = frame_at(video, SHEET_SECOND)
                        scaled = cv2.resize(source, output.shape[1::-1], interpolation=cv2.INTER_AREA)
                        mask = cv2.resize(band[0].astype(np.uint8), output.shape[1::-1]) > 0
                        values.append(edge_shift(scaled, output, mask, band[1] * output.shape[0] / source.shape[0]))
                    shifts[rigid] = values
                rigidity.append((name, shifts[True], shifts[False]))
    print(f"\ndefault FER on generate's output ({args.size} px high, {SPEECH_SECONDS:g} s of demo speech):")
    print(f"{'portrait':<16}{'intensity':>10}{'recognised':>12}{'p(requested)':>14}")
    for name, intensity, hits, probability in table:
        print(f"{name[:15]:<16}{intensity:>10.1f}{f'{hits}/7':>12}{probability:>14.2f}")
    print_confusion("confusion at intensity 1.0, all portraits", finals, recognizer)
    actors = real_actors(args.media, recognizer)
    if actors:
        print_confusion(f"the same FER on {len(actors)} real MEAD clips (M030, W009)", actors, recognizer)
    for name, rigid, bent in rigidity:
        print(f"glasses of {name}: frame edges move {rigid[0]:.2f} (surprised) and {rigid[1]:.2f} (angry) px per "
              f"100 px of eye span with rigid glasses, {bent[0]:.2f} and {bent[1]:.2f} without")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
