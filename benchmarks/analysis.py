"""The toolkit judging itself: generate one video per emotion, analyse them, time it.

Generates a video for each of MEAD's eight emotions from the bundled demo inputs
(astronaut portrait, espeak-ng speech; procedural driver + warp renderer), runs
``analyze`` with the default FER (mini-Xception, FER2013), and prints the
confusion of intended emotion vs. prediction, plus the analysis speed in frames
per second (tracking, crops, FER, loudness following and sharpness included).

    .venv/bin/python benchmarks/analysis.py [--size 256] [--portrait face.png] [--report report_self/]
"""

from __future__ import annotations

import argparse
import importlib.resources
import tempfile
import time
from pathlib import Path

import skimage.data

from emoportrait import media
from emoportrait.analysis import report, run
from emoportrait.analysis.recognizers.mini_xception import MiniXceptionRecognizer
from emoportrait.emotions import EMOTIONS, parse_emotion
from emoportrait.pipeline import GenerateConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--portrait", type=Path, help="animate this portrait (default: the astronaut's head and "
                                                         "shoulders)")
    parser.add_argument("--report", type=Path, default=None, help="also write the HTML report here")
    args = parser.parse_args()
    speech = importlib.resources.files("emoportrait") / "data" / "demo_speech.flac"
    with tempfile.TemporaryDirectory() as tmp, importlib.resources.as_file(speech) as speech_path:
        folder = Path(tmp)
        portrait = args.portrait or folder / "astronaut.png"
        if not args.portrait:
            media.write_image(portrait, skimage.data.astronaut()[0:320, 60:380])
        videos = []
        for emotion in EMOTIONS:
            videos.append(folder / f"{emotion}.mp4")
            generate(speech_path, parse_emotion(emotion), portrait, videos[-1], config=GenerateConfig(size=args.size))
        recognizer = MiniXceptionRecognizer()
        truths = {video: video.stem for video in videos}
        start = time.perf_counter()
        results = run.analyse_videos(videos, truths, [recognizer])
        seconds = time.perf_counter() - start
        summary = report.summarize(results, recognizer.info)
        if args.report:
            report.write_report(results, [recognizer.info], args.report)
    frames = sum(result.frames for result in results)
    print(f"default FER on generate's output ({args.size}², intensity 1, {args.portrait or 'astronaut portrait'}):")
    print(f"{'intended':<11}" + "".join(f"{label[:8]:>9}" for label in recognizer.info.labels))
    for emotion, row in zip(EMOTIONS, summary.confusion):
        print(f"{emotion:<11}" + "".join(f"{count:>9}" for count in row))
    print(f"accuracy {summary.accuracy:.2f} ({summary.accuracy_reachable:.2f} over emotions FER2013 has)")
    print(f"analysis speed: {frames / seconds:.0f} frames/s ({frames} frames, {seconds:.1f} s)")


if __name__ == "__main__":
    main()
