"""Neural renderer vs. warp renderer on held-out frames of a subject it was trained on.

1. Target: ``generate`` makes a talking video of the astronaut (a still portrait of
   her head and shoulders, idle head sway, the bundled demo speech: 6.1 s, 153 frames).
2. The neural renderer trains on that video on the CPU for a fixed time budget
   (the last 10 % of the frames held out), at the video's own size.
3. Each held-out frame is rendered from the *first* frame of the video, moved to the
   held-out frame's landmarks: the warp renderer warps that frame; the neural
   renderer draws from the held-out landmarks and that frame's background edges, in
   order (its state carries over), with and without ``composite_face_only``.
   "first frame, unchanged" is the baseline of doing nothing.
4. PSNR and SSIM against the real held-out frames, over the whole frame and over the
   box around the face regions, and render speed (frames per second, this CPU).
5. The subject check of ``generate --renderer neural``: how well the run redraws
   the faces of other talking videos (made like the target), as a multiple of its
   held-out error; :data:`~emoportrait.render.neural.SUBJECT_TOLERANCE` and more
   is refused.

    .venv/bin/python benchmarks/neural_renderer.py --minutes 5 [--threads 1 on a busy machine]

A comparison image (real | each renderer) of the middle held-out frame is written
to ``WORK/comparison.png`` with ``--work``.

Measured (defaults, 5 min = 1300 steps of batch 2 on 2 idle CPU cores, torch 2.13)::

    renderer                        PSNR dB   SSIM  face PSNR  face SSIM    fps
    first frame, unchanged            33.54  0.982      26.50      0.918    nan
    warp                              37.96  0.990      30.97      0.960  222.3
    neural, full frame                30.85  0.948      26.89      0.918   72.8
    neural, composite_face_only       34.12  0.983      27.20      0.926   69.1

    target of the subject check             redraw error  × held-out  refused
    the astronaut, another video                   0.026        0.98  no
    the astronaut, framed wider                    0.096        3.59  yes
    the astronaut deformed, recoloured (M003)      0.040        1.50  no
    the same, mirrored (W002)                      0.107        4.01  yes
    Grace Hopper                                   0.166        6.23  yes

``composite_face_only`` beats the full generated frame on every score (the
background is the frame's own instead of redrawn), hence the default. The warp
renderer leads, but the comparison favours it twice over: the target video was
itself made by warping the portrait, and five CPU minutes are a sliver of a real
renderer training (hours on a GPU at 256²). The speed column is at 128²; the
default generator draws 256² frames at 11-12 fps on the same cores.
"""

from __future__ import annotations

import argparse
import importlib.resources
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from matplotlib import cbook

from emoportrait import media
from emoportrait.analysis.metrics import psnr, ssim
from emoportrait.emotions import parse_emotion
from emoportrait.evp.synthetic import SyntheticConfig, base_portrait, subject_portrait
from emoportrait.face import track_frames
from emoportrait.pipeline import GenerateConfig, generate
from emoportrait.render import WarpRenderer
from emoportrait.render.edges import face_region
from emoportrait.render.neural import SUBJECT_TOLERANCE, GeneratorConfig, NeuralRenderer
from emoportrait.render.neural_training import (RendererConfig, RendererStage, SubjectVideo, load_subject,
                                                sample_batch, subject_config)
from emoportrait.training import EngineConfig, fit


def talking(folder: Path, name: str, portrait: np.ndarray, size: int, emotion: str = "happy", seed: int = 0) -> Path:
    """``folder/name.mp4``: ``portrait`` made to say the demo speech at ``size``² (6.1 s at 25 fps)."""
    image = folder / f"{name}.png"
    media.write_image(image, portrait)
    speech = importlib.resources.files("emoportrait") / "data" / "demo_speech.flac"
    video = folder / f"{name}.mp4"
    with importlib.resources.as_file(speech) as speech_path:
        generate(speech_path, parse_emotion(emotion, 0.6), image, video,
                 config=GenerateConfig(size=size, idle_motion_deg=3.0, seed=seed))
    return video


def subject_check(renderer: NeuralRenderer, folder: Path, size: int) -> None:
    """Print the redraw error of other talking faces (see the module docs, step 5)."""
    astronaut = skimage.data.astronaut()
    hopper = media.read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    base = base_portrait()
    synthetic = SyntheticConfig(size=base[0].shape[0])
    portraits = {"the astronaut, another video": astronaut[0:320, 60:380],
                 "the astronaut, framed wider": astronaut[0:400, 20:420],
                 "the astronaut deformed, recoloured (M003)": subject_portrait(2, base, synthetic),
                 "the same, mirrored (W002)": subject_portrait(1, base, synthetic),
                 "Grace Hopper": hopper[:hopper.shape[1]]}
    print(f"\n{'target of the subject check':<42}{'redraw error':>13}{'× held-out':>12}  refused")
    for index, (name, portrait) in enumerate(portraits.items()):
        frames = media.read_frames(talking(folder, f"check_{index}", portrait, size, "sad", seed=1))
        track = track_frames(frames, 25.0)
        error = renderer.redraw_error(list(frames), track.landmarks, track.found)
        ratio = error / renderer.held_out_face_error
        print(f"{name:<42}{error:>13.3f}{ratio:>12.2f}  {'yes' if ratio > SUBJECT_TOLERANCE else 'no'}")


def train(video: SubjectVideo, config: RendererConfig, run: Path, minutes: float, batch: int,
          steps_per_epoch: int) -> int:
    """Train epochs of ``steps_per_epoch`` steps until ``minutes`` have passed; the number of steps."""
    train_set, val_set = video.split(config.generator.history, config.val_fraction)
    torch.manual_seed(0)
    stage = RendererStage(config, sample_batch(val_set))
    deadline, epochs = time.perf_counter() + 60.0 * minutes, 0
    while time.perf_counter() < deadline:
        epochs += 1
        engine = EngineConfig(epochs=epochs, batch_size=batch, device="cpu", max_steps_per_epoch=steps_per_epoch,
                              log_every=steps_per_epoch)
        result = fit(stage, train_set, val_set, run, engine)
    print(f"trained {epochs} epochs x {steps_per_epoch} steps (batch {batch}); last epoch: "
          + ", ".join(f"{key} {value:.4g}" for key, value in result.history[-1].items()
                      if key in ("train_l1", "val_l1", "val_face_l1", "train_d_frame", "train_g_frame")))
    return epochs * steps_per_epoch


def face_box(video: SubjectVideo, frames: range) -> tuple[slice, slice]:
    """Rows and columns of the box around the face regions of ``frames``."""
    size = (video.frames.shape[2], video.frames.shape[1])
    union = np.any([face_region([video.landmarks[t]], size) > 0 for t in frames], axis=0)
    rows, cols = np.nonzero(union)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def render_all(renderer, video: SubjectVideo, held: range) -> tuple[np.ndarray, float]:
    """Held-out frames drawn from frame 0 by ``renderer``, and the frames rendered per second
    (the first frame, which warms up, left out)."""
    frames, seconds = [], []
    for t in held:
        started = time.perf_counter()
        frames.append(renderer.render(video.frames[0], video.landmarks[0], video.landmarks[t]))
        seconds.append(time.perf_counter() - started)
    return np.stack(frames), (len(seconds) - 1) / sum(seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget (default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="video and training size (default: %(default)s)")
    parser.add_argument("--base-width", type=int, default=16, help="generator base width (default: %(default)s)")
    parser.add_argument("--disc-width", type=int, default=32, help="discriminator width (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=2, help="(default: %(default)s)")
    parser.add_argument("--steps-per-epoch", type=int, default=25, help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 on a busy machine)")
    parser.add_argument("--work", type=Path, help="keep the video, run and comparison image here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config = RendererConfig(size=args.size, generator=GeneratorConfig(base_width=args.base_width),
                                discriminator_width=args.disc_width)
        video = load_subject(talking(work, "target", skimage.data.astronaut()[0:320, 60:380], args.size), config)
        config = subject_config(config, video)
        steps = train(video, config, work / "run", args.minutes, args.batch, args.steps_per_epoch)
        held = range(video.held_out(config.generator.history, config.val_fraction), len(video.frames))
        real = video.frames[held.start:]
        full_frame = NeuralRenderer(work / "run", composite_face_only=False)
        outputs = {"first frame, unchanged": (np.repeat(video.frames[:1], len(held), axis=0), float("nan")),
                   "warp": render_all(WarpRenderer(), video, held),
                   "neural, full frame": render_all(full_frame, video, held),
                   "neural, composite_face_only": render_all(NeuralRenderer(work / "run"), video, held)}
        rows, cols = face_box(video, held)
        print(f"\n{len(held)} held-out frames of {len(video.frames)} ({args.size}²), rendered from frame 0; "
              f"neural renderer: {steps} steps in {args.minutes:g} min on the CPU")
        print(f"{'renderer':<30}{'PSNR dB':>9}{'SSIM':>7}{'face PSNR':>11}{'face SSIM':>11}{'fps':>7}")
        for name, (frames, fps) in outputs.items():
            face, face_real = frames[:, rows, cols], real[:, rows, cols]
            print(f"{name:<30}{psnr(frames, real):>9.2f}{ssim(frames, real):>7.3f}"
                  f"{psnr(face, face_real):>11.2f}{ssim(face, face_real):>11.3f}{fps:>7.1f}")
        middle = len(held) // 2
        media.write_image(work / "comparison.png",
                          np.concatenate([real[middle]] + [frames[middle] for frames, _ in outputs.values()], axis=1))
        subject_check(NeuralRenderer(work / "run"), work, args.size)


if __name__ == "__main__":
    main()
