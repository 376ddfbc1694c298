"""``emoportrait train``: EVP's stages, the neural renderer and the recognizers (:mod:`emoportrait.training`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..analysis.recognizers.registry import TASKS, models_for


def _cmd_train_stage(args: argparse.Namespace) -> None:
    from ..training import EngineConfig
    from ..training.evp import train_stage

    engine = EngineConfig(epochs=args.epochs, batch_size=args.batch, device=args.device, amp=args.amp,
                          max_steps_per_epoch=args.max_steps, num_workers=args.workers,
                          checkpoint_every_steps=args.checkpoint_every)
    settings = {name: value for name, value in (("lr", args.lr), ("subject", args.subject))
                if value is not None}
    init = [Path(part) for part in args.init.split(",")] if args.init else []
    result = train_stage(args.stage, args.data, args.out, engine, settings, init)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only the first process reports
        return
    final = result.history[-1] if result.history else {}
    scores = ", ".join(f"{key} {value:.4g}" for key, value in final.items()
                       if key.startswith(("train_loss", "val_")) and isinstance(value, float))
    print(f"{args.stage}: {result.epochs} epoch(s); {scores}; weights in {result.best or result.last}")


def _add_train_stage(commands, stage: str, help_text: str, epochs: int, batch: int) -> None:
    parser = commands.add_parser(stage, help=help_text)
    parser.add_argument("--data", type=Path, required=True, help="feature cache made by 'emoportrait prepare'")
    parser.add_argument("--out", type=Path, required=True, help="run folder (resumed if it exists)")
    parser.add_argument("--init", help="earlier run(s) to start from, comma-separated")
    parser.add_argument("--subject", help="audio2lm: the subject to train (e.g. M003)")
    parser.add_argument("--epochs", type=int, default=epochs, help="(default: %(default)s)")
    parser.add_argument("--batch", type=int, default=batch, help="(default: %(default)s)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default: EVP's 2e-4)")
    parser.add_argument("--max-steps", type=int, help="at most this many steps per epoch")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA)")
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes")
    parser.add_argument("--checkpoint-every", type=int, metavar="N",
                        help="also save RUN/last every N steps (a kill then loses at most N steps, not an epoch)")
    parser.set_defaults(handler=_cmd_train_stage)


def _cmd_train_renderer(args: argparse.Namespace) -> None:
    from ..training import EngineConfig
    from ..training.renderer import DRIFT_SPAN, DRIFT_TOLERANCE_DB, RendererConfig, train_renderer

    engine = EngineConfig(epochs=args.epochs, batch_size=args.batch, device=args.device, amp=args.amp,
                          max_steps_per_epoch=args.max_steps, num_workers=args.workers,
                          checkpoint_every_steps=args.checkpoint_every)
    result = train_renderer(args.target, args.out, RendererConfig(size=args.size), engine, progress=True)
    print(f"renderer: {result.epochs} epoch(s); weights in {result.best or result.last}; samples in "
          f"{args.out / 'samples'}; use with: emoportrait generate ... --renderer neural "
          f"--renderer-weights {args.out}")
    scores = result.history[-1] if result.history else {}
    if "video_psnr_first" in scores:
        first, last = scores["video_psnr_first"], scores["video_psnr_last"]
        drifts = "; it drifts over a video: train longer (--epochs)" if first - last > DRIFT_TOLERANCE_DB else ""
        print(f"  held-out frames drawn as one video: face PSNR {first:.1f} dB over the first {DRIFT_SPAN} frames, "
              f"{last:.1f} dB over the last {DRIFT_SPAN}{drifts}")


def _add_train_renderer(commands) -> None:
    renderer = commands.add_parser("renderer", help="EVP's edge-to-video renderer of one subject (from its video)")
    renderer.add_argument("--target", type=Path, required=True, help="video of the subject (at least 2 s)")
    renderer.add_argument("--out", type=Path, required=True, help="run folder (resumed if it exists)")
    renderer.add_argument("--size", type=int, default=256, help="frame height to train at (default: %(default)s)")
    renderer.add_argument("--epochs", type=int, default=50, help="(default: %(default)s)")
    renderer.add_argument("--batch", type=int, default=4, help="(default: %(default)s)")
    renderer.add_argument("--max-steps", type=int, help="at most this many steps per epoch")
    renderer.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    renderer.add_argument("--amp", action="store_true", help="mixed precision (CUDA)")
    renderer.add_argument("--workers", type=int, default=0, help="data-loading processes")
    renderer.add_argument("--checkpoint-every", type=int, metavar="N",
                          help="also save RUN/last every N steps (a kill then loses at most N steps, not an epoch)")
    renderer.set_defaults(handler=_cmd_train_renderer)


def _cmd_train_recognizer(args: argparse.Namespace) -> None:
    from ..training.recognizers import TrainConfig, train_recognizer

    overrides = {name: getattr(args, name) for name in ("epochs", "batch", "lr", "image_size", "fold",
                                                         "backbone", "device") if getattr(args, name) is not None}
    config = TrainConfig(**overrides)
    checkpoint = train_recognizer(args.model, args.dataset, args.root, args.out, config)
    print(f"wrote {checkpoint}; use it with: emoportrait analyze VIDEOS --{args.group} {checkpoint}")


def _add_train_recognizer(commands, task: str) -> None:
    models = models_for(task)
    parser = commands.add_parser(task, help=f"{TASKS[task]} ({' or '.join(model.title for model in models)})")
    parser.add_argument("--model", choices=[model.name for model in models], required=True)
    parser.add_argument("--dataset", choices=[name for model in models for name in model.label_sets], required=True,
                        help="layout of ROOT")
    parser.add_argument("root", type=Path, help="dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="run folder (resumed if it exists)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--fold", type=int, help="CK+ cross-validation fold (0-9)")
    parser.add_argument("--backbone", type=Path, help="pretrained ResNet-18 weights (else from scratch)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.set_defaults(handler=_cmd_train_recognizer, group=task)


def register(commands) -> None:
    train = commands.add_parser("train", help="train a model").add_subparsers(
        dest="stage", required=True, metavar="STAGE")
    _add_train_stage(train, "content", "EVP content encoder (pretraining)", 20, 256)
    _add_train_stage(train, "emotion", "EVP emotion encoder + classifier (pretraining)", 20, 256)
    _add_train_stage(train, "disentangle", "EVP cross-reconstructed emotion disentanglement", 30, 128)
    _add_train_stage(train, "audio2lm", "EVP audio-to-landmark network of one subject", 60, 16)
    _add_train_renderer(train)
    for task in TASKS:
        _add_train_recognizer(train, task)
