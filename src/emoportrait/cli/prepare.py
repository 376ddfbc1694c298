"""``emoportrait prepare`` and ``emoportrait make-dataset``: data for EVP training."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from .settings import add_config_option, configured


def _cmd_prepare(args: argparse.Namespace) -> None:
    from ..evp.prepare import PrepareConfig, parse_shard, prepare

    config = configured(PrepareConfig(), args.config, {})
    summary = prepare(args.data_root, args.out, config, shard=parse_shard(args.shard), workers=args.workers,
                      progress=True, sentence_map=args.sentence_map, sentences_by_number=args.sentences_by_number)
    print(summary.describe())
    failures = summary.failures
    if failures and len(failures) == summary.n_clips:
        clip, reason = next(iter(failures.items()))
        raise InputError(f"none of the {summary.n_clips} clip(s) could be prepared; the first, {clip}: {reason}")
    if failures and not args.keep_going:
        raise InputError(f"{len(failures)} of {summary.n_clips} clips failed (listed above and in the manifest); "
                         "fix them and run again (the rest is kept), or pass --keep-going to accept the cache "
                         "without them")


def _cmd_make_dataset(args: argparse.Namespace) -> None:
    from ..synthetic import SyntheticConfig, make_dataset

    config = SyntheticConfig(subjects=args.subjects, sentences=args.sentences, size=args.size, seed=args.seed)
    summary = make_dataset(args.out, config, progress=True)
    print(f"{args.out}: {summary.describe()}")
    print("synthetic data (espeak-ng speech, procedural faces) to exercise the pipeline; "
          "it is not a substitute for MEAD")


def register(commands) -> None:
    prepare = commands.add_parser(
        "prepare", help="features for EVP training from a MEAD-layout (or CSV-listed) data set")
    prepare.add_argument("data_root", type=Path, help="MEAD-layout folder, or a CSV manifest")
    prepare.add_argument("--out", type=Path, required=True, help="feature cache folder (resumed if it exists)")
    prepare.add_argument("--shard", default="0/1", help="i/n: prepare every n-th clip from i (job arrays)")
    prepare.add_argument("--workers", type=int, default=1, help="parallel processes")
    prepare.add_argument("--keep-going", action="store_true",
                         help="exit 0 when some clips cannot be prepared (they are left out of the cache)")
    prepare.add_argument("--sentence-map", type=Path, help="MEAD: CSV saying which clip of each emotion says "
                         "each sentence (EVP's lists; default: DATA_ROOT/sentence_map.csv)")
    prepare.add_argument("--sentences-by-number", action="store_true",
                         help="MEAD: take equal clip numbers as the same sentence (not true of the real MEAD)")
    add_config_option(prepare, "PrepareConfig's settings (n_components, fps, val_fraction, ...), which an existing "
                               "cache must have been made with")
    prepare.set_defaults(handler=_cmd_prepare)

    make_dataset = commands.add_parser(
        "make-dataset", help="write a small synthetic data set in the MEAD layout (for tests and trials)")
    make_dataset.add_argument("out", type=Path, help="folder to write (resumed if it exists)")
    make_dataset.add_argument("--subjects", type=int, default=2)
    make_dataset.add_argument("--sentences", type=int, default=6, help="clips per emotion and level")
    make_dataset.add_argument("--size", type=int, default=128, help="video size in pixels")
    make_dataset.add_argument("--seed", type=int, default=0)
    make_dataset.set_defaults(handler=_cmd_make_dataset)
