"""``emoportrait generate`` and ``emoportrait demo``: a video of the target speaking with an emotion."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..drivers import DRIVERS
from ..errors import InputError
from ..render import RENDERERS
from .settings import add_config_option, configured


@dataclass(frozen=True)
class EmotionOptions:
    """The emotion to show: ``name`` one of MEAD's eight or a mixture such as
    ``"angry:0.6,sad:0.4"``; ``intensity`` of a single emotion, 0 to 1 (None: 1)."""

    name: str = "neutral"
    intensity: float | None = None


@dataclass(frozen=True)
class DriverOptions:
    """The driver by its name in :data:`emoportrait.drivers.DRIVERS`; ``weights``: the learned
    driver's audio2lm run; ``emotion_audio``: its reference emotional speech clip."""

    name: str = "procedural"
    weights: Path | None = None
    emotion_audio: Path | None = None


@dataclass(frozen=True)
class RendererOptions:
    """The renderer by its name in :data:`emoportrait.render.RENDERERS`; ``weights``: the neural
    renderer's run."""

    name: str = "warp"
    weights: Path | None = None


def _configs(args: argparse.Namespace) -> dict[str, Any]:
    """The sections of a generate config (``emotion``, ``generate``: the pipeline's
    :class:`~emoportrait.pipeline.GenerateConfig`, ``driver``, ``renderer``, and the stage
    configs that tune the training-free driver and renderer: ``procedural``
    (:class:`~emoportrait.drivers.procedural.ProceduralConfig`), ``action_units``
    (:class:`~emoportrait.drivers.action_units.ActionUnitConfig`) and ``warp``
    (:class:`~emoportrait.render.warp.WarpConfig`, its creases and mouth nested)): the
    command's defaults, then ``--config``, then the flags given."""
    from ..drivers.action_units import ActionUnitConfig
    from ..drivers.procedural import ProceduralConfig
    from ..pipeline import GenerateConfig
    from ..render.warp import WarpConfig

    base = {"emotion": EmotionOptions(name=args.default_emotion), "generate": GenerateConfig(),
            "driver": DriverOptions(), "renderer": RendererOptions(), "procedural": ProceduralConfig(),
            "action_units": ActionUnitConfig(), "warp": WarpConfig()}
    return configured(base, args.config, {
        "emotion.name": args.emotion, "emotion.intensity": args.intensity, "generate.size": args.size,
        "generate.seed": args.seed, "generate.keep_expression": args.keep_expression, "driver.name": args.driver,
        "driver.weights": args.weights, "driver.emotion_audio": args.emotion_audio, "renderer.name": args.renderer,
        "renderer.weights": args.renderer_weights})


def _tuned(configs: dict[str, Any], sections: dict[str, str], chosen: str, owner: str) -> dict[str, Any]:
    """The constructor settings of the ``owner`` (``"procedural"``, ``"warp"``) from the config
    ``sections`` (section → constructor argument), when it is the ``chosen`` one; a section set
    for another is an error (it would be ignored)."""
    if chosen == owner:
        return {argument: configs[section] for section, argument in sections.items()}
    tuned = [section for section in sections if configs[section] != type(configs[section])()]
    if tuned:
        raise InputError(f"the config file's {' and '.join(tuned)} section(s) tune the {owner} one, not "
                         f"'{chosen}': leave them out or choose {owner}")
    return {}


def _driver(options: DriverOptions, emotion: EmotionOptions, configs: dict[str, Any]):
    """The driver the generate options ask for (:func:`emoportrait.drivers.make_driver`)."""
    from ..audio import load_audio
    from ..drivers import make_driver

    if options.name == "procedural" and (options.weights or options.emotion_audio):
        raise InputError("--weights and --emotion-audio belong to --driver learned")
    if options.name == "learned" and options.weights is None:
        raise InputError("--driver learned needs --weights RUN (an audio2lm run: emoportrait train audio2lm ...)")
    if options.emotion_audio and (emotion.name != "neutral" or emotion.intensity is not None):
        raise InputError("--emotion-audio gives the emotion, so --emotion and --intensity would be ignored: "
                         "give one or the other")
    settings = _tuned(configs, {"procedural": "config", "action_units": "action_units"}, options.name, "procedural")
    reference = load_audio(options.emotion_audio) if options.emotion_audio else None
    return make_driver(options.name, options.weights, reference, settings)


def _renderer(options: RendererOptions, configs: dict[str, Any]):
    """The renderer the generate options ask for (:func:`emoportrait.render.make_renderer`)."""
    from ..render import make_renderer

    if options.name == "warp" and options.weights:
        raise InputError("--renderer-weights belongs to --renderer neural")
    if options.name == "neural" and options.weights is None:
        raise InputError("--renderer neural needs --renderer-weights RUN (emoportrait train renderer ...)")
    return make_renderer(options.name, options.weights, _tuned(configs, {"warp": "config"}, options.name, "warp"))


def _run_generate(speech: Path, target: Path, output: Path, args: argparse.Namespace) -> None:
    from ..emotions import parse_emotion
    from ..pipeline import generate

    configs = _configs(args)
    emotion, driver = configs["emotion"], configs["driver"]
    spec = parse_emotion(emotion.name, emotion.intensity)
    summary = generate(speech, spec, target, output, driver=_driver(driver, emotion, configs),
                       renderer=_renderer(configs["renderer"], configs), config=configs["generate"], progress=True)
    if driver.emotion_audio:
        summary.emotion = f"the emotion of '{driver.emotion_audio.name}'"
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
    """The options of ``generate`` and ``demo``; each defaults to None, which leaves the
    setting to the ``--config`` file or, without one, to the default its help names."""
    add_config_option(parser, "sections emotion (name, intensity), generate (GenerateConfig: size, seed, "
                              "keep_expression, ...), driver (name, weights, emotion_audio), renderer (name, weights), "
                              "and the training-free stages' own: procedural (ProceduralConfig), action_units "
                              "(ActionUnitConfig), warp (WarpConfig: creases, mouth, ...)")
    parser.set_defaults(default_emotion=emotion)
    parser.add_argument("--emotion",
                        help="neutral, happy, sad, angry, fear, disgusted, surprised or contempt; "
                             f"or a mixture such as 'angry:0.6,sad:0.4' (default: {emotion})")
    parser.add_argument("--intensity", type=float,
                        help="intensity of a single emotion, 0 to 1 (default: 1)")
    parser.add_argument("--size", type=int,
                        help="output height in pixels (default: the target's, its long side at most 1024 for a "
                             "still and 1920 for a video; a neural renderer's trained height)")
    parser.add_argument("--seed", type=int, help="seed of idle motion and blinks (default: 0)")
    parser.add_argument("--keep-expression", action="store_true", default=None,
                        help="keep the target's own expression (e.g. its smile) under the driven one")
    parser.add_argument("--driver", choices=list(DRIVERS),
                        help="procedural (training-free, default) or learned (EVP networks, needs --weights)")
    parser.add_argument("--weights", type=Path, help="audio2lm run of the learned driver")
    parser.add_argument("--emotion-audio", type=Path,
                        help="learned driver: take the emotion from this reference emotional speech clip")
    parser.add_argument("--renderer", choices=list(RENDERERS),
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
