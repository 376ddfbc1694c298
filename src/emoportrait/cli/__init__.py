"""The ``emoportrait`` command line: the parser, and dispatch to one module per command group.

Every command prints a short summary when it succeeds; how it ends when it does not
(one line, exit status 2 or 1) is :mod:`.exits`.

- :mod:`.generate`        ``generate``, ``demo``
- :mod:`.prepare`         ``prepare``, ``make-dataset``
- :mod:`.analyze`         ``analyze``
- :mod:`.train`           ``train content|emotion|disentangle|audio2lm|renderer|fer|mer``
- :mod:`.import_weights`  ``import-weights``
- :mod:`.ui`              ``ui``
- :mod:`.info`            ``info``
- :mod:`.track`           ``track``
- :mod:`.align_audio`     ``align-audio``
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from . import align_audio, analyze, generate, import_weights, info, prepare, track, train, ui
from .exits import run

GROUPS = (generate, prepare, analyze, train, import_weights, ui, info, track, align_audio)
"""The command groups, in the order ``--help`` lists them; each has ``register(commands)``."""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: each group adds its commands, each sets its ``handler``."""
    parser = argparse.ArgumentParser(
        prog="emoportrait",
        description="Audio-driven emotional video portraits (EVP, CVPR 2021, re-implemented).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="emoportrait: warning: %(message)s")
    return run(args.handler, args)


__all__ = ["build_parser", "main"]
