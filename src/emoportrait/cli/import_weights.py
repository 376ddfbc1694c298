"""``emoportrait import-weights``: the authors' released weights as emoportrait runs (:mod:`emoportrait.importing`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.recognizers.registry import MODELS


def _cmd_import_evp(args: argparse.Namespace) -> None:
    from ..importing.evp import import_evp

    result = import_evp(args.files, args.out, args.subject)
    print(f"evp: {result.tensors} tensors and {len(result.emotions)} emotion features "
          f"({', '.join(result.emotions)}) of {args.subject} written to {result.out}")
    print(f"  face: {result.face}")
    for line in result.mixture_checks:
        print(f"  mixture {line}")
    print(f"use it: emoportrait generate --driver learned --weights {result.out} --speech S --target T -o out.mp4")


def _cmd_import_recognizer(args: argparse.Namespace) -> None:
    from ..importing.recognizers import import_recognizer

    result = import_recognizer(args.model, args.file, args.out, args.label_set, getattr(args, "pixel_mean", None))
    config = result.config
    print(f"{args.model}: {result.tensors} tensors, {config.label_set} labels ({', '.join(config.labels)}) "
          f"written to {result.out}; {config.source}")
    print(f"use it: emoportrait analyze VIDEOS --{MODELS[args.model].task} {result.out}")


def register(commands) -> None:
    models = commands.add_parser(
        "import-weights", help="turn authors' released weights into an emoportrait run (read safely)",
        description="Convert weights released with the original papers into a run folder (safetensors + "
                    "config.yaml). PyTorch files are read with weights_only=True: a file that needs more "
                    "than tensors to load is refused unread.").add_subparsers(
        dest="model", required=True, metavar="MODEL")
    evp = models.add_parser("evp", help="EVP's released files of one subject → a learned-driver run")
    evp.add_argument("files", type=Path, nargs="+", help="the checkpoint (M0xx_20.pth), M0xx_U_106.npy, "
                     "M0xx_mean_106.npy and the emotion features (*.npy, or their folder), in any order")
    evp.add_argument("--subject", required=True, help="the subject the files are of (e.g. M030)")
    evp.add_argument("--out", type=Path, required=True, help="run folder to write (must not exist)")
    evp.set_defaults(handler=_cmd_import_evp)
    for model in MODELS.values():
        parser = models.add_parser(model.name, help=f"{model.release} → a recognizer checkpoint for analyze")
        parser.add_argument("file", type=Path, help="the released weights file")
        parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write (must not exist)")
        parser.add_argument("--label-set", help=f"the labels it was trained on (default: from its class count: "
                            f"{' or '.join(model.label_sets)})")
        if model.name == "stcnn":
            parser.add_argument("--pixel-mean", type=float, help="mean gray level (0-1) of its training clips, "
                                "which the release does not hold (default: 0.5, assumed)")
        parser.set_defaults(handler=_cmd_import_recognizer)
