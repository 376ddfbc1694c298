"""Neural renderer on a real talking clip: whole-video quality (drift), beside the warp renderer.

1. Subject: a real person talking (default ``shared/media/talking/hdtf_katiehill.mp4``,
   8 s), resized to ``--size``; its last ``--held-out`` share (default 25 %: 2 s,
   50 frames) is held out.
2. The neural renderer trains on the rest on the CPU for ``--minutes``
   (``--unroll 1`` trains each frame from the real frames before it only, the
   teacher forcing of the earlier trainer).
3. Self-reenactment of the held-out frames, each drawn at its own tracked landmarks:

   - *neural, video target*: every frame drawn in order over its own background,
     its history the renderer's own earlier outputs, as ``generate --renderer
     neural`` draws a target video. This is the drift test: nothing but the
     renderer's face changes from frame to frame;
   - *neural, still target* and *warp, still target*: every frame drawn from the
     first held-out frame, moved to the frame's landmarks, as from a portrait (the
     warp of a video target onto its own landmarks is the frame itself);
   - *neural, per frame*: every frame drawn alone, its history the real frame
     itself: the per-frame number earlier versions reported, not a video;
   - *first frame, unchanged*: the baseline of doing nothing.

4. PSNR and SSIM of the face box (around all held-out face regions) against the
   real frames, over the first 10 held-out frames after the first (which the stills
   are made of) and over the last 10, and render
   speed (frames per second, this CPU).
5. The subject check of ``generate --renderer neural`` on other real people
   (``shared/media``): how well the run redraws their faces, as a multiple of its
   held-out error; :data:`~emoportrait.render.neural.SUBJECT_TOLERANCE` and more is
   refused.
6. A contact sheet ``OUT/neural_renderer.png``: the face of the first 3 and the last
   3 held-out frames, rows real | warp | neural (video target) | neural (still).

    .venv/bin/python benchmarks/neural_renderer.py [--minutes 10] [--unroll 1] [--no-reference] [--out neural_renderer/]

Measured: see the README's "The neural renderer" (10 min on 2 CPU cores, 128²).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from emoportrait import media
from emoportrait.analysis.metrics import psnr, ssim
from emoportrait.analysis.sheets import crop, region_box, write_sheet
from emoportrait.face import track_frames
from emoportrait.render import WarpRenderer
from emoportrait.render.edges import face_region, resize
from emoportrait.render.neural import SUBJECT_TOLERANCE, GeneratorConfig, NeuralRenderer
from emoportrait.training import EngineConfig, fit
from emoportrait.training.renderer import (RendererConfig, RendererStage, SubjectVideo, held_out_video,
                                           load_subject, sample_batch, subject_config)

DEFAULT_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
SPAN = 10  # held-out frames compared at the start and at the end
OTHER_PEOPLE = ("talking/glasses_man_talking.mp4", "mead/video/M030_neutral_level1_001.mp4",
                "mead/video/W009_happy_level3_001.mp4")


def train(video: SubjectVideo, config: RendererConfig, run: Path, minutes: float, batch: int,
          steps_per_epoch: int) -> tuple[int, float]:
    """Train epochs of ``steps_per_epoch`` steps until ``minutes`` have passed; the steps and seconds."""
    train_set, val_set = video.split(config)
    torch.manual_seed(0)
    stage = RendererStage(config, sample_batch(val_set), held_out_video(video, config))
    started = time.perf_counter()
    deadline, epochs = started + 60.0 * minutes, 0
    while time.perf_counter() < deadline:
        epochs += 1
        engine = EngineConfig(epochs=epochs, batch_size=batch, device="cpu", max_steps_per_epoch=steps_per_epoch,
                              log_every=steps_per_epoch)
        result = fit(stage, train_set, val_set, run, engine)
    print(f"trained {epochs} epochs x {steps_per_epoch} steps (batch {batch}, unroll {config.unroll}); last epoch: "
          + ", ".join(f"{key} {value:.4g}" for key, value in result.history[-1].items()
                      if key in ("train_l1", "val_l1", "val_face_l1", "video_psnr_first", "video_psnr_last")))
    return epochs * steps_per_epoch, time.perf_counter() - started


def face_box(video: SubjectVideo, frames: range) -> tuple[slice, slice]:
    """Rows and columns of the box around the face regions of ``frames``."""
    size = (video.frames.shape[2], video.frames.shape[1])
    union = np.any([face_region([video.landmarks[t]], size) > 0 for t in frames], axis=0)
    rows, cols = np.nonzero(union)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def render(renderer, video: SubjectVideo, held: range, still: bool, per_frame: bool = False
           ) -> tuple[np.ndarray, float]:
    """The held-out frames drawn by ``renderer`` at their own landmarks, over the first held-out
    frame (``still``) or over each frame itself, in order (or each alone: ``per_frame``); and the
    frames drawn per second (the first, which warms up, left out)."""
    frames, seconds = [], []
    for t in held:
        source = held.start if still else t
        if per_frame:
            renderer.reset()
        started = time.perf_counter()
        frames.append(renderer.render(video.frames[source], video.landmarks[source], video.landmarks[t]))
        seconds.append(time.perf_counter() - started)
    return np.stack(frames), (len(seconds) - 1) / sum(seconds[1:])


def subject_check(renderer: NeuralRenderer, media_root: Path, size: tuple[int, int], own: SubjectVideo,
                  held: range) -> None:
    """Print the redraw error of the held-out frames and of other real people (module docs, step 5)."""
    print(f"\n{'target of the subject check':<46}{'redraw error':>13}{'× held-out':>12}  refused")
    clips = {"the subject, held-out frames": (own.frames[held.start:], own.landmarks[held.start:])}
    for name in OTHER_PEOPLE:
        if (media_root / name).exists():
            frames = np.stack([resize(frame, size) for frame in media.read_frames(media_root / name)[:40]])
            clips[name] = (frames, track_frames(frames, 25.0).landmarks)
    for name, (frames, landmarks) in clips.items():
        error = renderer.redraw_error(list(frames), landmarks, np.ones(len(frames), bool))
        ratio = error / renderer.held_out_face_error
        print(f"{name:<46}{error:>13.3f}{ratio:>12.2f}  {'yes' if ratio > SUBJECT_TOLERANCE else 'no'}")


def sheet(path: Path, video: SubjectVideo, held: range, outputs: dict[str, np.ndarray]) -> Path:
    """The contact sheet of step 6: face crops (192²) of the first and last 3 held-out frames."""
    picks = [0, 1, 2, len(held) - 3, len(held) - 2, len(held) - 1]
    box = region_box(video.landmarks[held.start], "face", margin=0.25)
    rows = [[crop(frames[i], box, 192) for i in picks] for frames in outputs.values()]
    labels = [[f"{name} {held.start + i}" if i == 0 else str(held.start + i) for i in picks] for name in outputs]
    return write_sheet(path, rows, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_MEDIA / "talking" / "hdtf_katiehill.mp4",
                        help="a real talking clip (default: %(default)s)")
    parser.add_argument("--minutes", type=float, default=10.0, help="CPU training budget (default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="training height (default: %(default)s)")
    parser.add_argument("--unroll", type=int, default=RendererConfig.unroll,
                        help="frames drawn in a row per training window (default: %(default)s)")
    parser.add_argument("--held-out", type=float, default=0.25,
                        help="share of the clip held out (default: %(default)s)")
    parser.add_argument("--base-width", type=int, default=16, help="generator base width (default: %(default)s)")
    parser.add_argument("--no-reference", action="store_true",
                        help="train without the reference frame (the appearance anchor), as before it was added")
    parser.add_argument("--disc-width", type=int, default=32, help="discriminator width (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=2, help="(default: %(default)s)")
    parser.add_argument("--steps-per-epoch", type=int, default=25, help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 on a busy machine)")
    parser.add_argument("--out", type=Path, default=Path("neural_renderer"),
                        help="folder for the run and the contact sheet (default: %(default)s)")
    args = parser.parse_args()
    if not args.clip.exists():
        raise SystemExit(f"benchmark: '{args.clip}' not found; give a real talking clip with --clip")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    generator = GeneratorConfig(base_width=args.base_width, reference=not args.no_reference)
    config = RendererConfig(size=args.size, generator=generator,
                            discriminator_width=args.disc_width, unroll=args.unroll, val_fraction=args.held_out)
    video = load_subject(args.clip, config)
    config = subject_config(config, video)
    run = args.out / f"run_unroll{args.unroll}{'_noref' if args.no_reference else ''}"
    steps, seconds = train(video, config, run, args.minutes, args.batch, args.steps_per_epoch)
    held = range(video.held_out(config), len(video.frames))
    real = video.frames[held.start:]
    neural = NeuralRenderer(run)
    outputs = {"first frame, unchanged": (np.repeat(real[:1], len(held), axis=0), float("nan")),
               "warp, still target": render(WarpRenderer(), video, held, still=True),
               "neural, video target": render(neural, video, held, still=False),
               "neural, still target": render(neural, video, held, still=True),
               "neural, per frame (not a video)": render(neural, video, held, still=False, per_frame=True)}
    rows, cols = face_box(video, held)
    print(f"\n{args.clip.name}: {len(held)} held-out frames of {len(video.frames)} at {video.frames.shape[2]}x"
          f"{video.frames.shape[1]}, each at its own landmarks; neural renderer: {steps} steps in "
          f"{seconds / 60:.1f} min on {torch.get_num_threads()} CPU threads (budget {args.minutes:g} min)")
    print(f"face box      {'PSNR dB':>24}{'SSIM':>21}")
    print(f"{'renderer':<32}{'first':>7}{'last':>7}{'Δ':>7}{'first':>7}{'last':>7}{'Δ':>7}{'fps':>7}")
    for name, (frames, fps) in outputs.items():
        face, face_real = frames[:, rows, cols], real[:, rows, cols]
        scores = [metric(face[part], face_real[part]) for metric in (psnr, ssim)
                  for part in (slice(1, SPAN + 1), slice(-SPAN, None))]  # frame 0 is the stills' own
        print(f"{name:<32}{scores[0]:>7.2f}{scores[1]:>7.2f}{scores[1] - scores[0]:>+7.2f}"
              f"{scores[2]:>7.3f}{scores[3]:>7.3f}{scores[3] - scores[2]:>+7.3f}{fps:>7.1f}")
    looked = {"real": real, "warp, still": outputs["warp, still target"][0],
              "neural, video": outputs["neural, video target"][0], "neural, still": outputs["neural, still target"][0]}
    print(f"\ncontact sheet: {sheet(args.out / f'neural_renderer_unroll{args.unroll}.png', video, held, looked)}")
    subject_check(neural, args.clip.parents[1], (video.frames.shape[2], video.frames.shape[1]), video, held)


if __name__ == "__main__":
    main()
