"""The ``emoportrait`` command line.

Every command prints a short summary when it succeeds. Problems the user can fix
end with one ``emoportrait: error: ...`` line and exit status 2; unexpected
failures print one line too (``--debug`` shows the traceback) and exit with 1.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .analysis.recognizers.registry import MODELS, TASKS, models_for
from .drivers import DRIVERS
from .errors import EmoportraitError, InputError
from .render import RENDERERS


def _cmd_info(args: argparse.Namespace) -> None:
    from .info import report

    print(report())


def _cmd_track(args: argparse.Namespace) -> None:
    from . import media, tracking
    from .config import load_config
    from .face import TrackerConfig

    media.check_output(args.output, {".npz"}, [args.input])
    if args.overlay is not None:
        media.check_output(args.overlay, media.WRITTEN_VIDEO_SUFFIXES | media.IMAGE_SUFFIXES, [args.input, args.output])
    config = load_config(TrackerConfig, args.config) if args.config else TrackerConfig()
    if args.no_smooth:
        config = TrackerConfig(**{**config.__dict__, "smooth": False})
    started = time.perf_counter()
    result = tracking.track_and_analyse(args.input, config, progress=True)
    tracking.save(args.output, result)
    if args.overlay is not None:
        _write_overlay(args.input, args.overlay, result)
    _print_track_summary(args, result, time.perf_counter() - started)


def _write_overlay(source: Path, path: Path, result) -> None:
    from . import media
    from .overlay import draw_overlay

    track, euler = result.track, result.pose.euler_degrees
    frames = (
        draw_overlay(frame, track.landmarks[i], result.pose.rotation[i], euler[i], bool(track.found[i]))
        for i, frame in enumerate(media.iter_frames(source))
        if i < len(track)
    )
    if media.is_image(path):
        media.write_image(path, next(frames))
    else:
        media.write_video(path, frames, track.fps or media.STILL_FPS)


def _print_track_summary(args: argparse.Namespace, result, seconds: float) -> None:
    from . import media

    track, euler = result.track, result.pose.euler_degrees
    frames = len(track)
    fps = track.fps or media.STILL_FPS
    print(f"{args.input}: {frames} frame(s) {track.size[0]}x{track.size[1]}, "
          f"face found in {track.found.sum()} ({100 * track.found.mean():.0f}%), "
          f"{track.interpolated.sum()} interpolated, mean confidence "
          f"{track.confidence[track.found].mean():.2f}")
    for start, end in track.long_gaps:
        print(f"  face lost {start / fps:.2f}-{end / fps:.2f} s (frames {start}-{end - 1}); "
              "landmarks there hold the nearest found frame")
    for name, column in zip(("yaw", "pitch", "roll"), euler.T):
        print(f"  {name:<5} {column.min():+6.1f} .. {column.max():+6.1f} deg")
    print(f"wrote {args.output}" + (f" and {args.overlay}" if args.overlay else "")
          + f" in {seconds:.1f} s ({frames / seconds:.0f} frames/s)")


def _cmd_align_audio(args: argparse.Namespace) -> None:
    from . import audio, media

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


def _driver(args: argparse.Namespace):
    """The driver the generate options ask for (:func:`emoportrait.drivers.make_driver`)."""
    from .audio import load_audio
    from .drivers import make_driver

    if args.driver == "procedural" and (args.weights or args.emotion_audio):
        raise InputError("--weights and --emotion-audio belong to --driver learned")
    if args.driver == "learned" and args.weights is None:
        raise InputError("--driver learned needs --weights RUN (an audio2lm run: emoportrait train audio2lm ...)")
    if args.emotion_audio and (args.emotion != "neutral" or args.intensity is not None):
        raise InputError("--emotion-audio gives the emotion, so --emotion and --intensity would be ignored: "
                         "give one or the other")
    reference = load_audio(args.emotion_audio) if args.emotion_audio else None
    return make_driver(args.driver, args.weights, reference)


def _renderer(args: argparse.Namespace):
    """The renderer the generate options ask for (:func:`emoportrait.render.make_renderer`)."""
    from .render import make_renderer

    if args.renderer == "warp" and args.renderer_weights:
        raise InputError("--renderer-weights belongs to --renderer neural")
    if args.renderer == "neural" and args.renderer_weights is None:
        raise InputError("--renderer neural needs --renderer-weights RUN (emoportrait train renderer ...)")
    return make_renderer(args.renderer, args.renderer_weights)


def _run_generate(speech: Path, target: Path, output: Path, args: argparse.Namespace) -> None:
    from .emotions import parse_emotion
    from .pipeline import GenerateConfig, generate

    emotion = parse_emotion(args.emotion, args.intensity)
    config = GenerateConfig(size=args.size, seed=args.seed, keep_expression=args.keep_expression)
    summary = generate(speech, emotion, target, output, driver=_driver(args), renderer=_renderer(args),
                       config=config, progress=True)
    if getattr(args, "emotion_audio", None):
        summary.emotion = f"the emotion of '{args.emotion_audio.name}'"
    print(summary.describe())


def _cmd_generate(args: argparse.Namespace) -> None:
    _run_generate(args.speech, args.target, args.output, args)


def _cmd_demo(args: argparse.Namespace) -> None:
    import importlib.resources
    import tempfile

    import skimage.data

    from . import media

    speech = importlib.resources.files("emoportrait") / "data" / "demo_speech.flac"
    with tempfile.TemporaryDirectory() as folder, importlib.resources.as_file(speech) as speech_path:
        portrait = Path(folder) / "astronaut.png"
        media.write_image(portrait, skimage.data.astronaut())
        _run_generate(speech_path, portrait, args.output, args)
    print("made from bundled inputs: scikit-image's public-domain astronaut portrait and "
          "speech synthesised by espeak-ng (scripts/make_demo_speech.sh)")


def _add_generation_options(parser: argparse.ArgumentParser, emotion: str) -> None:
    parser.add_argument("--emotion", default=emotion,
                        help="neutral, happy, sad, angry, fear, disgusted, surprised or contempt; "
                             "or a mixture such as 'angry:0.6,sad:0.4' (default: %(default)s)")
    parser.add_argument("--intensity", type=float,
                        help="intensity of a single emotion, 0 to 1 (default: 1)")
    parser.add_argument("--size", type=int,
                        help="output height in pixels (default: the target's, its long side at most 1024 for a "
                             "still and 1920 for a video; a neural renderer's trained height)")
    parser.add_argument("--seed", type=int, default=0, help="seed of idle motion and blinks")
    parser.add_argument("--keep-expression", action="store_true",
                        help="keep the target's own expression (e.g. its smile) under the driven one")
    parser.add_argument("--driver", choices=list(DRIVERS), default="procedural",
                        help="procedural (training-free, default) or learned (EVP networks, needs --weights)")
    parser.add_argument("--weights", type=Path, help="audio2lm run of the learned driver")
    parser.add_argument("--emotion-audio", type=Path,
                        help="learned driver: take the emotion from this reference emotional speech clip")
    parser.add_argument("--renderer", choices=list(RENDERERS), default="warp",
                        help="warp (training-free, default) or neural (trained per subject, needs --renderer-weights)")
    parser.add_argument("--renderer-weights", type=Path, help="run of 'emoportrait train renderer'")


def _cmd_make_dataset(args: argparse.Namespace) -> None:
    from .synthetic import SyntheticConfig, make_dataset

    config = SyntheticConfig(subjects=args.subjects, sentences=args.sentences, size=args.size, seed=args.seed)
    summary = make_dataset(args.out, config, progress=True)
    print(f"{args.out}: {summary.describe()}")
    print("synthetic data (espeak-ng speech, procedural faces) to exercise the pipeline; "
          "it is not a substitute for MEAD")


def _cmd_prepare(args: argparse.Namespace) -> None:
    from .evp.prepare import parse_shard, prepare

    summary = prepare(args.data_root, args.out, shard=parse_shard(args.shard), workers=args.workers, progress=True,
                      sentence_map=args.sentence_map, sentences_by_number=args.sentences_by_number)
    print(summary.describe())
    failures = summary.failures
    if failures and len(failures) == summary.n_clips:
        clip, reason = next(iter(failures.items()))
        raise InputError(f"none of the {summary.n_clips} clip(s) could be prepared; the first, {clip}: {reason}")
    if failures and not args.keep_going:
        raise InputError(f"{len(failures)} of {summary.n_clips} clips failed (listed above and in the manifest); "
                         "fix them and run again (the rest is kept), or pass --keep-going to accept the cache "
                         "without them")


def _cmd_train_stage(args: argparse.Namespace) -> None:
    from .training.evp import train_stage
    from .training import EngineConfig

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
    from .training.renderer import DRIFT_SPAN, DRIFT_TOLERANCE_DB, RendererConfig, train_renderer
    from .training import EngineConfig

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


_LISTED_VIDEOS = 20
"""``analyze`` prints each video's verdict up to this many videos; the report lists all."""


def _cmd_analyze(args: argparse.Namespace) -> None:
    from .analysis.analyze import analyze, recognizers

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


def _cmd_ui(args: argparse.Namespace) -> None:
    from .ui import Runs, serve

    runs = Runs.named(args.weights, args.renderer_weights, [*args.fer, *args.mer])
    try:
        serve(runs, args.host, args.port, open_browser=args.open)
    except OSError as exc:
        if "port" not in str(exc).lower():
            raise
        raise InputError(f"port {args.port} on {args.host} is taken; pass another with --port") from None


def _cmd_train_recognizer(args: argparse.Namespace) -> None:
    from .training.recognizers import TrainConfig, train_recognizer

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


def _cmd_import_evp(args: argparse.Namespace) -> None:
    from .importing.evp import import_evp

    result = import_evp(args.files, args.out, args.subject)
    print(f"evp: {result.tensors} tensors and {len(result.emotions)} emotion features "
          f"({', '.join(result.emotions)}) of {args.subject} written to {result.out}")
    print(f"  face: {result.face}")
    for line in result.mixture_checks:
        print(f"  mixture {line}")
    print(f"use it: emoportrait generate --driver learned --weights {result.out} --speech S --target T -o out.mp4")


def _cmd_import_recognizer(args: argparse.Namespace) -> None:
    from .importing.recognizers import import_recognizer

    result = import_recognizer(args.model, args.file, args.out, args.label_set, getattr(args, "pixel_mean", None))
    config = result.config
    print(f"{args.model}: {result.tensors} tensors, {config.label_set} labels ({', '.join(config.labels)}) "
          f"written to {result.out}; {config.source}")
    print(f"use it: emoportrait analyze VIDEOS --{MODELS[args.model].task} {result.out}")


def _add_import_weights(commands) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emoportrait",
        description="Audio-driven emotional video portraits (EVP, CVPR 2021, re-implemented).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", help="make a video of the target speaking the speech with an emotion")
    generate.add_argument("--speech", type=Path, required=True, help="speech (any audio or video file)")
    generate.add_argument("--target", type=Path, required=True, help="video of the person, or a portrait")
    generate.add_argument("-o", "--output", type=Path, required=True, help="video to write (.mp4)")
    _add_generation_options(generate, "neutral")
    generate.set_defaults(handler=_cmd_generate)

    demo = commands.add_parser("demo", help="generate a video from bundled inputs (no download)")
    demo.add_argument("-o", "--output", type=Path, default=Path("demo.mp4"), help="(default: %(default)s)")
    _add_generation_options(demo, "happy:0.8")
    demo.set_defaults(handler=_cmd_demo)

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
    prepare.set_defaults(handler=_cmd_prepare)

    make_dataset = commands.add_parser(
        "make-dataset", help="write a small synthetic data set in the MEAD layout (for tests and trials)")
    make_dataset.add_argument("out", type=Path, help="folder to write (resumed if it exists)")
    make_dataset.add_argument("--subjects", type=int, default=2)
    make_dataset.add_argument("--sentences", type=int, default=6, help="clips per emotion and level")
    make_dataset.add_argument("--size", type=int, default=128, help="video size in pixels")
    make_dataset.add_argument("--seed", type=int, default=0)
    make_dataset.set_defaults(handler=_cmd_make_dataset)

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

    train = commands.add_parser("train", help="train a model").add_subparsers(
        dest="stage", required=True, metavar="STAGE")
    _add_train_stage(train, "content", "EVP content encoder (pretraining)", 20, 256)
    _add_train_stage(train, "emotion", "EVP emotion encoder + classifier (pretraining)", 20, 256)
    _add_train_stage(train, "disentangle", "EVP cross-reconstructed emotion disentanglement", 30, 128)
    _add_train_stage(train, "audio2lm", "EVP audio-to-landmark network of one subject", 60, 16)
    renderer = train.add_parser("renderer", help="EVP's edge-to-video renderer of one subject (from its video)")
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
    for task in TASKS:
        _add_train_recognizer(train, task)

    _add_import_weights(commands)

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

    info = commands.add_parser("info", help="versions, processors, codecs and models available")
    info.set_defaults(handler=_cmd_info)

    track = commands.add_parser(
        "track", help="track dense 3D face landmarks and head pose in a video or image")
    track.add_argument("input", type=Path, help="video (mp4, mov, avi, mkv, webm) or image")
    track.add_argument("-o", "--output", type=Path, required=True, help="track file to write (.npz)")
    track.add_argument("--overlay", type=Path, help="also write the landmarks drawn over the frames "
                       "(.mp4, or an image for an image input)")
    track.add_argument("--config", type=Path, help="tracker settings (YAML of TrackerConfig)")
    track.add_argument("--no-smooth", action="store_true", help="keep the raw per-frame landmarks")
    track.set_defaults(handler=_cmd_track)

    align = commands.add_parser(
        "align-audio", help="DTW-warp one clip onto the timeline of another (same sentence)")
    align.add_argument("reference", type=Path, help="clip whose timeline is kept")
    align.add_argument("other", type=Path, help="clip to warp (any audio or video file)")
    align.add_argument("-o", "--output", type=Path, required=True, help="warped clip to write (.wav)")
    align.set_defaults(handler=_cmd_align_audio)
    return parser


def _check_output_folders(args: argparse.Namespace) -> None:
    """Every command's output folder (``--out`` of runs, caches and datasets, analyze's
    ``--report``) is checked before its work starts, not found unwritable at its end."""
    from . import media

    for name in ("out", "report"):
        folder = getattr(args, name, None)
        if isinstance(folder, Path):
            media.check_output_folder(folder)


_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
"""A full disk or quota, a read-only file system, a file too large for it: the user's to fix."""


class _Terminated(BaseException):
    """SIGTERM (what ``timeout``, docker and Slurm send), raised like Ctrl-C's
    KeyboardInterrupt so every ``finally`` runs and no temporary file is left."""


def _terminate(signum: int, frame) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="emoportrait: warning: %(message)s")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _check_output_folders(args)
        args.handler(args)
    except EmoportraitError as exc:
        print(f"emoportrait: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emoportrait: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("emoportrait: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:  # the reader went away (e.g. `emoportrait info | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRORS:
            where = f" writing '{exc.filename}'" if exc.filename else ""
            print(f"emoportrait: error: {os.strerror(exc.errno).lower()}{where}; free some space or "
                  "write somewhere else (the partial output was removed)", file=sys.stderr)
            return 2
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(f"emoportrait: internal error: {type(exc).__name__}: {first_line} "
              "(run again with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
