"""``emoportrait analyze``: judge videos with expression recognizers and metrics (:mod:`emoportrait.analysis`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError

_LISTED_VIDEOS = 20
"""``analyze`` prints each video's verdict up to this many videos; the report lists all."""


def _cmd_analyze(args: argparse.Namespace) -> None:
    from ..analysis.analyze import analyze, recognizers

    chosen = recognizers([*args.fer, *args.mer], default_fer=not args.no_default_fer)
    outcome = analyze(args.inputs, args.report, chosen, labels=args.labels, reference=args.reference,
                      protocol=args.protocol, fid_model=args.fid_model, syncnet_model=args.syncnet_model,
                      progress=True)
    print(outcome.sources)
    for note in outcome.notes:
        print(f"emoportrait: warning: {note}", file=sys.stderr)
    for name, value in outcome.dataset_metrics.items():
        print(f"{name}: {value:.3f}")
    results = outcome.results
    shown = results[:_LISTED_VIDEOS]
    for result in shown:
        verdicts = ", ".join(f"{name}: {p.label}" for name, p in result.predictions.items())
        print(f"{result.path}: {result.truth or 'unlabelled'} -> {verdicts or result.error}")
    if len(shown) < len(results):
        print(f"... and {len(results) - len(shown)} more video(s): every one is in {outcome.report}")
    for summary in outcome.summaries:
        if summary.videos:
            print(f"{summary.info.name}: accuracy {summary.accuracy:.2f} over {summary.videos} labelled video(s)")
    print(f"wrote {outcome.report}")
    if outcome.failed and not args.keep_going:
        raise InputError(f"{len(outcome.failed)} of {len(results)} videos could not be analysed (listed above and "
                         "in the report); pass --keep-going to accept a report without them")


def register(commands) -> None:
    analyze = commands.add_parser(
        "analyze", help="judge videos with expression recognizers and metrics; write a report")
    analyze.add_argument("inputs", type=Path, nargs="+", help="videos, or folders searched for videos")
    analyze.add_argument("--labels", type=Path, help="CSV with columns video,emotion "
                         "(default: emotions named in MEAD-style paths)")
    analyze.add_argument("--reference", type=Path, help="folder of ground-truth videos with the same "
                         "file names: adds landmark and image metrics")
    analyze.add_argument("--fer", type=Path, action="append", default=[], help="a trained FER checkpoint "
                         "(emoportrait train fer); repeatable")
    analyze.add_argument("--mer", type=Path, action="append", default=[], help="a trained MER checkpoint "
                         "(emoportrait train mer); repeatable")
    analyze.add_argument("--no-default-fer", action="store_true",
                         help="skip the bundled mini-Xception (FER2013) recognizer")
    analyze.add_argument("--fid-model", type=Path, help="TorchScript feature extractor (e.g. Inception-v3 "
                         "pool features) for FID against --reference; no such weights ship offline")
    analyze.add_argument("--syncnet-model", type=Path, help="TorchScript SyncNet (forward_lip, forward_aud) "
                         "for LSE-D/LSE-C; no such weights ship offline")
    analyze.add_argument("--protocol", choices=["mean", "vote", "last3"], default="mean",
                         help="how frame predictions make a video's (default: %(default)s)")
    analyze.add_argument("--report", type=Path, default=Path("report"), help="report folder (default: %(default)s)")
    analyze.add_argument("--keep-going", action="store_true",
                         help="exit 0 when some videos cannot be analysed (they are listed in the report)")
    analyze.set_defaults(handler=_cmd_analyze)
