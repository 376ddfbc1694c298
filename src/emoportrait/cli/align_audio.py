"""``emoportrait align-audio``: EVP's DTW alignment of one clip onto another's timeline."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_align_audio(args: argparse.Namespace) -> None:
    from .. import audio, media

    media.check_output(args.output, {".wav"}, [args.reference, args.other])
    config = audio.AudioConfig()
    reference = audio.load_audio(args.reference, config)
    other = audio.load_audio(args.other, config)
    warped, result = audio.align_audio(reference, other, config, names=(str(args.reference), str(args.other)))
    audio.write_wav(args.output, warped, config.sample_rate)
    rate = config.sample_rate
    print(f"aligned {args.other} ({len(other) / rate:.2f} s) onto {args.reference} "
          f"({len(reference) / rate:.2f} s): DTW cost {result.cost:.3f} per step "
          f"over {len(result.path)} steps")
    print(f"wrote {args.output}")


def register(commands) -> None:
    align = commands.add_parser(
        "align-audio", help="DTW-warp one clip onto the timeline of another (same sentence)")
    align.add_argument("reference", type=Path, help="clip whose timeline is kept")
    align.add_argument("other", type=Path, help="clip to warp (any audio or video file)")
    align.add_argument("-o", "--output", type=Path, required=True, help="warped clip to write (.wav)")
    align.set_defaults(handler=_cmd_align_audio)
