"""``emoportrait track``: dense 3D face landmarks and head pose of one face, written as ``.npz``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .settings import add_config_option, configured


def _cmd_track(args: argparse.Namespace) -> None:
    from .. import media, tracking
    from ..face import TrackerConfig

    media.check_output(args.output, {".npz"}, [args.input])
    if args.overlay is not None:
        media.check_output(args.overlay, media.WRITTEN_VIDEO_SUFFIXES | media.IMAGE_SUFFIXES, [args.input, args.output])
    config = configured(TrackerConfig(), args.config, {"smooth": False if args.no_smooth else None})
    started = time.perf_counter()
    result = tracking.track_and_analyse(args.input, config, progress=True)
    tracking.save(args.output, result)
    if args.overlay is not None:
        _write_overlay(args.input, args.overlay, result)
    _print_track_summary(args, result, time.perf_counter() - started)


def _write_overlay(source: Path, path: Path, result) -> None:
    from .. import media
    from ..overlay import draw_overlay

    track, euler = result.track, result.pose.euler_degrees
    frames = (
        draw_overlay(frame, track.landmarks[i], result.pose.rotation[i], euler[i], bool(track.found[i]))
        for i, frame in enumerate(media.iter_frames(source))
        if i < len(track)
    )
    if media.is_image(path):
        media.write_image(path, next(frames))
    else:
        media.write_video(path, frames, track.fps or media.STILL_FPS)


def _print_track_summary(args: argparse.Namespace, result, seconds: float) -> None:
    from .. import media

    track, euler = result.track, result.pose.euler_degrees
    frames = len(track)
    fps = track.fps or media.STILL_FPS
    print(f"{args.input}: {frames} frame(s) {track.size[0]}x{track.size[1]}, "
          f"face found in {track.found.sum()} ({100 * track.found.mean():.0f}%), "
          f"{track.interpolated.sum()} interpolated, mean confidence "
          f"{track.confidence[track.found].mean():.2f}")
    for start, end in track.long_gaps:
        print(f"  face lost {start / fps:.2f}-{end / fps:.2f} s (frames {start}-{end - 1}); "
              "landmarks there hold the nearest found frame")
    for name, column in zip(("yaw", "pitch", "roll"), euler.T):
        print(f"  {name:<5} {column.min():+6.1f} .. {column.max():+6.1f} deg")
    print(f"wrote {args.output}" + (f" and {args.overlay}" if args.overlay else "")
          + f" in {seconds:.1f} s ({frames / seconds:.0f} frames/s)")


def register(commands) -> None:
    track = commands.add_parser(
        "track", help="track dense 3D face landmarks and head pose in a video or image")
    track.add_argument("input", type=Path, help="video (mp4, mov, avi, mkv, webm) or image")
    track.add_argument("-o", "--output", type=Path, required=True, help="track file to write (.npz)")
    track.add_argument("--overlay", type=Path, help="also write the landmarks drawn over the frames "
                       "(.mp4, or an image for an image input)")
    add_config_option(track, "TrackerConfig's settings (max_faces, smooth, ...)")
    track.add_argument("--no-smooth", action="store_true", help="keep the raw per-frame landmarks")
    track.set_defaults(handler=_cmd_track)
