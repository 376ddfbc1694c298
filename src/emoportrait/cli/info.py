"""``emoportrait info``: versions, processors, codecs and the models available."""

from __future__ import annotations

import argparse


def _cmd_info(args: argparse.Namespace) -> None:
    from ..info import report

    print(report())


def register(commands) -> None:
    info = commands.add_parser("info", help="versions, processors, codecs and models available")
    info.set_defaults(handler=_cmd_info)
