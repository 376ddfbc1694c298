"""The local web page: ``emoportrait ui`` (needs ``pip install 'emoportrait[ui]'``, Gradio).

Two tabs, both running on this machine (nothing is uploaded anywhere else):

* **Generate**: a portrait or a video of the person, speech (uploaded or recorded in
  the browser), an emotion with its intensity or a mixture (``angry:0.6,sad:0.4``),
  and, when ``ui`` was given trained runs, the learned driver (with an optional
  reference emotional speech clip) and the neural renderer. It shows the progress
  of each stage, then the video to watch and download, and the summary line.
* **Analyze**: uploaded videos are judged by the expression recognizers
  (:func:`emoportrait.analysis.analyze.analyze`); the page shows the per-video
  verdicts, the confusion matrices and emotion curves, and the whole report as a zip.

Problems with the inputs are shown as messages on the page, never as tracebacks; an
unexpected failure says so in one line and leaves its traceback in the terminal.
The handlers (:func:`make_video`, :func:`analyze_uploads`) are plain functions.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path

from .emotions import EMOTIONS, EmotionSpec, parse_emotion
from .errors import EmoportraitError, InputError

PROCEDURAL = "procedural (training-free)"
WARP = "warp (training-free)"

_log = logging.getLogger(__name__)


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no usage reports, no version check
    try:
        import gradio
    except ImportError:
        raise InputError("the web page needs Gradio: pip install 'emoportrait[ui]'") from None
    return gradio


@dataclass(frozen=True)
class Runs:
    """Trained runs the page offers, by the name shown (their folder's name).

    Attributes:
        drivers: audio2lm runs for the learned driver (``emoportrait train audio2lm``).
        renderers: renderer runs (``emoportrait train renderer``).
        recognizers: FER/MER checkpoints judged beside the bundled FER in the analysis tab.
    """

    drivers: dict[str, Path] = field(default_factory=dict)
    renderers: dict[str, Path] = field(default_factory=dict)
    recognizers: list[Path] = field(default_factory=list)

    @classmethod
    def named(cls, drivers: Sequence[Path] = (), renderers: Sequence[Path] = (),
              recognizers: Sequence[Path] = ()) -> Runs:
        """Runs named by their folders (a missing folder is refused now, not on first use)."""
        for path in [*drivers, *renderers, *recognizers]:
            if not Path(path).exists():
                raise InputError(f"run '{path}' does not exist; pass the --out folder of a training run")
        return cls({Path(p).name: Path(p) for p in drivers}, {Path(p).name: Path(p) for p in renderers},
                   [Path(p) for p in recognizers])


def emotion_spec(emotion: str, intensity: float, mixture: str = "") -> EmotionSpec:
    """The ``mixture`` text when given (``'angry:0.6,sad:0.4'``), else ``emotion`` at ``intensity``."""
    if mixture and mixture.strip():
        return parse_emotion(mixture.strip())
    return parse_emotion(emotion, None if emotion == "neutral" else intensity)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_") or "video"


def make_video(
    target: str | Path | None,
    speech: str | Path | None,
    emotion: EmotionSpec,
    out_folder: Path,
    runs: Runs = Runs(),
    driver: str = PROCEDURAL,
    renderer: str = WARP,
    emotion_audio: str | Path | None = None,
    size: int | None = None,
    keep_expression: bool = False,
    seed: int = 0,
) -> tuple[Path, str]:
    """Generate a video as the page's button does; return its path and the summary line.

    ``driver`` and ``renderer`` are :data:`PROCEDURAL` / :data:`WARP` or names of ``runs``.

    Raises:
        InputError: a missing upload or any input :func:`emoportrait.pipeline.generate` refuses.
    """
    from .pipeline import GenerateConfig, generate

    if not target:
        raise InputError("upload a portrait or a video of the person first")
    if not speech:
        raise InputError("upload or record the speech first")
    if driver == PROCEDURAL and emotion_audio:
        raise InputError("a reference emotional speech clip drives the learned driver: choose one, or remove the clip")
    from .audio import load_audio
    from .drivers import make_driver
    from .render import make_renderer

    reference = load_audio(emotion_audio) if emotion_audio else None
    learned = driver != PROCEDURAL
    chosen_driver = make_driver("learned", runs.drivers[driver], reference) if learned else make_driver("procedural")
    chosen_renderer = make_renderer("neural", runs.renderers[renderer]) if renderer != WARP else make_renderer("warp")
    described = f"the emotion of '{Path(emotion_audio).name}'" if learned and emotion_audio else emotion.describe()
    folder = Path(tempfile.mkdtemp(dir=out_folder))  # one per video: two requests never collide
    output = folder / f"{_slug(Path(target).stem)}_{_slug(described)}.mp4"
    summary = generate(speech, emotion, target, output, driver=chosen_driver, renderer=chosen_renderer,
                       config=GenerateConfig(size=size or None, seed=seed, keep_expression=keep_expression),
                       progress=True)
    summary.emotion = described
    return output, summary.describe()


def analyze_uploads(videos: Sequence[str | Path] | None, out_folder: Path, recognizers: Sequence
                    ) -> tuple[str, list[str], Path]:
    """Judge uploaded videos as the analysis tab does.

    Returns:
        Markdown with the ground-truth sources, each recognizer's accuracy and each
        video's verdicts; the report's plots (PNG paths); the report folder as a zip.
    """
    from .analysis.analyze import analyze

    if not videos:
        raise InputError("upload one or more videos first")
    folder = Path(tempfile.mkdtemp(dir=out_folder))
    outcome = analyze([Path(v) for v in videos], folder / "report", recognizers)
    lines = [outcome.sources, ""]
    lines += [f"- **{s.info.name}**: accuracy {s.accuracy:.2f} over {s.videos} labelled video(s)"
              for s in outcome.summaries if s.videos]
    names = [recognizer.info.name for recognizer in recognizers]
    lines += ["", "| video | truth | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for result in outcome.results:
        cells = [result.predictions[n].label if n in result.predictions else "-" for n in names]
        verdict = " | ".join(cells) if not result.error else f"skipped: {result.error}"
        lines.append(f"| {result.path.name} | {result.truth or 'unlabelled'} | {verdict} |")
    lines += [f"- {note}" for note in outcome.notes]
    plots = sorted(str(p) for p in (folder / "report").glob("*.png"))
    archive = Path(shutil.make_archive(str(folder / "report"), "zip", folder / "report"))
    return "\n".join(lines), plots, archive


def _shown(handler: Callable) -> Callable:
    """``handler`` with its errors turned into messages on the page."""
    gr = _gradio()

    @wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except EmoportraitError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:
            _log.exception("internal error in the web page")
            first_line = (str(exc).strip().splitlines() or [""])[0]
            raise gr.Error(f"internal error: {type(exc).__name__}: {first_line} (the traceback is in the "
                           "terminal; please report it)", print_exception=False) from None
    return wrapper


def build_app(runs: Runs, out_folder: Path):
    """The page as a ``gradio.Blocks``; its videos and reports are written under ``out_folder``."""
    from .media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    gr = _gradio()
    loaded: dict[str, list] = {}

    def on_generate(target, speech, emotion, intensity, mixture, driver, renderer, emotion_audio, size,
                    keep_expression, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc="starting")
        video, summary = make_video(target, speech, emotion_spec(emotion, intensity, mixture), out_folder, runs,
                                    driver, renderer, emotion_audio, int(size or 0), keep_expression)
        return str(video), str(video), summary

    def on_analyze(videos, progress=gr.Progress(track_tqdm=True)):
        from .analysis.analyze import recognizers

        progress(0, desc="loading the recognizers")
        if "recognizers" not in loaded:
            loaded["recognizers"] = recognizers(runs.recognizers)
        text, plots, archive = analyze_uploads(videos, out_folder, loaded["recognizers"])
        return text, plots, str(archive)

    with gr.Blocks(title="emoportrait", analytics_enabled=False) as app:
        gr.Markdown("# emoportrait\nAudio-driven emotional video portraits, made on this machine.")
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column():
                    target = gr.File(label="Portrait or video of the person",
                                     file_types=sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES), elem_id="target")
                    speech = gr.Audio(label="Speech", sources=["upload", "microphone"], type="filepath",
                                      elem_id="speech")
                    emotion = gr.Dropdown(list(EMOTIONS), value="happy", label="Emotion", elem_id="emotion")
                    intensity = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Intensity", elem_id="intensity")
                    mixture = gr.Textbox(label="Mixture (instead of the emotion above)",
                                         placeholder="angry:0.6,sad:0.4", elem_id="mixture")
                    with gr.Accordion("More", open=False):
                        driver = gr.Dropdown([PROCEDURAL, *runs.drivers], value=PROCEDURAL, label="Driver",
                                             interactive=bool(runs.drivers))
                        emotion_audio = gr.Audio(label="Reference emotional speech (learned driver)",
                                                 sources=["upload"], type="filepath", visible=bool(runs.drivers))
                        renderer = gr.Dropdown([WARP, *runs.renderers], value=WARP, label="Renderer",
                                               interactive=bool(runs.renderers))
                        size = gr.Number(value=0, precision=0, minimum=0, label="Output height in px (0: automatic)")
                        keep_expression = gr.Checkbox(label="Keep the target's own expression")
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column():
                    video = gr.Video(label="Result", elem_id="result", interactive=False)
                    download = gr.File(label="Download", elem_id="download", interactive=False)
                    summary = gr.Textbox(label="Summary", lines=3, interactive=False, elem_id="summary")
            go.click(_shown(on_generate),
                     [target, speech, emotion, intensity, mixture, driver, renderer, emotion_audio, size,
                      keep_expression], [video, download, summary])
        with gr.Tab("Analyze"):
            gr.Markdown("Videos named the MEAD way (e.g. `M003_angry_level_3_001.mp4`) are scored against "
                        "the emotion in their name.")
            videos = gr.File(label="Videos", file_count="multiple", file_types=["video"], elem_id="videos")
            judge = gr.Button("Analyze", variant="primary", elem_id="analyze")
            verdicts = gr.Markdown(elem_id="verdicts")
            plots = gr.Gallery(label="Confusion matrices and emotion curves", columns=2, object_fit="contain",
                               height=520, elem_id="plots")
            report = gr.File(label="Report (zip)", interactive=False, elem_id="report")
            judge.click(_shown(on_analyze), [videos], [verdicts, plots, report])
    return app


def serve(runs: Runs = Runs(), host: str = "127.0.0.1", port: int = 7860, open_browser: bool = False,
          block: bool = True):
    """Serve the page on ``http://host:port``, say where, and (when ``block``) keep serving
    until Ctrl-C; return the app (``app.close()`` stops a non-blocking one)."""
    gr = _gradio()
    out_folder = Path(tempfile.mkdtemp(prefix="emoportrait-ui-"))
    app = build_app(runs, out_folder)
    weakref.finalize(app, shutil.rmtree, out_folder, True)  # the page's videos go with it (or at exit)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts
    app.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, inbrowser=open_browser, prevent_thread_lock=True, quiet=True,
        allowed_paths=[str(out_folder)], theme=theme, ssr_mode=False, footer_links=[])
    if block:
        print(f"emoportrait: the web page is on {app.local_url} (Ctrl-C stops it)", flush=True)
        app.block_thread()
    return app
