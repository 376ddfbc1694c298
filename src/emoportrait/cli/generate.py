"""``emoportrait generate`` and ``emoportrait demo``: a video of the target speaking with an emotion."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..drivers import DRIVERS
from ..errors import InputError
from ..render import RENDERERS


def _driver(args: argparse.Namespace):
    """The driver the generate options ask for (:func:`emoportrait.drivers.make_driver`)."""
    from ..audio import load_audio
    from ..drivers import make_driver

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
    from ..render import make_renderer

    if args.renderer == "warp" and args.renderer_weights:
        raise InputError("--renderer-weights belongs to --renderer neural")
    if args.renderer == "neural" and args.renderer_weights is None:
        raise InputError("--renderer neural needs --renderer-weights RUN (emoportrait train renderer ...)")
    return make_renderer(args.renderer, args.renderer_weights)


def _run_generate(speech: Path, target: Path, output: Path, args: argparse.Namespace) -> None:
    from ..emotions import parse_emotion
    from ..pipeline import GenerateConfig, generate

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

    from .. import media

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


def register(commands) -> None:
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
