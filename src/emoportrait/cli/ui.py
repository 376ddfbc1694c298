"""``emoportrait ui``: the local web page (:mod:`emoportrait.ui`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError


def _cmd_ui(args: argparse.Namespace) -> None:
    from ..ui import Runs, serve

    runs = Runs.named(args.weights, args.renderer_weights, [*args.fer, *args.mer])
    try:
        serve(runs, args.host, args.port, open_browser=args.open)
    except OSError as exc:
        if "port" not in str(exc).lower():
            raise
        raise InputError(f"port {args.port} on {args.host} is taken; pass another with --port") from None


def register(commands) -> None:
    ui = commands.add_parser("ui", help="a local web page to generate and analyze videos "
                             "(needs: pip install 'emoportrait[ui]')")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to serve on (default: %(default)s, this machine only; 0.0.0.0 for the network)")
    ui.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    ui.add_argument("--weights", type=Path, action="append", default=[],
                    help="an audio2lm run offered as the learned driver; repeatable")
    ui.add_argument("--renderer-weights", type=Path, action="append", default=[],
                    help="a renderer run offered as the neural renderer; repeatable")
    ui.add_argument("--fer", type=Path, action="append", default=[],
                    help="a FER checkpoint the analysis tab runs beside the bundled one; repeatable")
    ui.add_argument("--mer", type=Path, action="append", default=[], help="likewise, a MER checkpoint")
    ui.add_argument("--open", action="store_true", help="open the page in the default browser")
    ui.set_defaults(handler=_cmd_ui)
