"""``emoportrait train``: EVP's stages, the neural renderer and the recognizers (:mod:`emoportrait.training`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..analysis.recognizers.registry import TASKS, models_for
from ..errors import InputError
from .settings import add_config_option, configured

if TYPE_CHECKING:  # the training package is imported only when a command trains
    from ..training import EngineConfig

_ENGINE_SETTINGS = "engine (EngineConfig: epochs, batch_size, max_steps_per_epoch, device, amp, ...)"


def _add_engine_options(parser: argparse.ArgumentParser, epochs: int, batch: int) -> None:
    """The training engine's options (:class:`~emoportrait.training.EngineConfig`); each defaults
    to None, which leaves the setting to the ``--config`` file or to the default its help names."""
    parser.add_argument("--epochs", type=int, help=f"(default: {epochs})")
    parser.add_argument("--batch", type=int, help=f"(default: {batch})")
    parser.add_argument("--max-steps", type=int, help="at most this many steps per epoch")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--amp", action="store_true", default=None, help="mixed precision (CUDA)")
    parser.add_argument("--workers", type=int, help="data-loading processes (default: 0)")
    parser.add_argument("--checkpoint-every", type=int, metavar="N",
                        help="also save RUN/last every N steps (a kill then loses at most N steps, not an epoch)")
    parser.set_defaults(default_epochs=epochs, default_batch=batch)


def _engine_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The engine options given, as settings of the ``engine`` section."""
    return {"engine.epochs": args.epochs, "engine.batch_size": args.batch, "engine.device": args.device,
            "engine.amp": args.amp, "engine.max_steps_per_epoch": args.max_steps, "engine.num_workers": args.workers,
            "engine.checkpoint_every_steps": args.checkpoint_every}


def _engine_base(args: argparse.Namespace) -> EngineConfig:
    """The engine config with the command's own default epochs and batch size."""
    from ..training import EngineConfig

    return EngineConfig(epochs=args.default_epochs, batch_size=args.default_batch)


def _cmd_train_stage(args: argparse.Namespace) -> None:
    from ..training.evp import StageConfig, train_stage

    configs = configured({"engine": _engine_base(args), "stage": StageConfig(stage=args.stage)}, args.config,
                         {**_engine_flags(args), "stage.lr": args.lr, "stage.subject": args.subject})
    stage = configs["stage"]
    if stage.stage != args.stage:
        raise InputError(f"config file '{args.config}': its stage settings are for {stage.stage}, "
                         f"not {args.stage}")
    settings = {field.name: getattr(stage, field.name) for field in dataclasses.fields(stage) if field.name != "stage"}
    init = [Path(part) for part in args.init.split(",")] if args.init else []
    result = train_stage(args.stage, args.data, args.out, configs["engine"], settings, init)
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
    parser.add_argument("--lr", type=float, help="Adam learning rate (default: EVP's 2e-4)")
    _add_engine_options(parser, epochs, batch)
    add_config_option(parser, f"sections {_ENGINE_SETTINGS} and stage (StageConfig: lr, subject, margin, model, ...)")
    parser.set_defaults(handler=_cmd_train_stage)


def _cmd_train_renderer(args: argparse.Namespace) -> None:
    from ..training.renderer import DRIFT_SPAN, DRIFT_TOLERANCE_DB, RendererConfig, train_renderer

    configs = configured({"engine": _engine_base(args), "renderer": RendererConfig()}, args.config,
                         {**_engine_flags(args), "renderer.size": args.size})
    result = train_renderer(args.target, args.out, configs["renderer"], configs["engine"], progress=True)
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
    renderer.add_argument("--size", type=int, help="frame height to train at (default: 256)")
    _add_engine_options(renderer, 50, 4)
    add_config_option(renderer, f"sections {_ENGINE_SETTINGS} and renderer (RendererConfig: size, lr, unroll, ...)")
    renderer.set_defaults(handler=_cmd_train_renderer)


def _cmd_train_recognizer(args: argparse.Namespace) -> None:
    from ..training.recognizers import TrainConfig, train_recognizer

    flags = {name: getattr(args, name) for name in ("epochs", "batch", "lr", "image_size", "fold", "device")}
    config = configured(TrainConfig(), args.config, {**flags, "backbone": args.backbone and str(args.backbone)})
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
    add_config_option(parser, "TrainConfig's settings (epochs, batch, lr, image_size, frames, fold, backbone, ...)")
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
