"""Neural renderer throughput on an accelerator: training steps/s and render fps at 256², AMP on and off.

Self-contained (no media, no download): the training windows are random tensors of
the trained shape, which costs the same as real ones; the render path draws the
astronaut (scikit-image) with its tracked landmarks, edge maps and compositing
included, as ``generate --renderer neural`` does.

    .venv/bin/python benchmarks/neural_renderer_gpu.py [--device cuda] [--size 256] [--steps 30]

On the CPU (``--device cpu --steps 3 --size 64``) it checks that the script runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import skimage.data
import torch
from torch.utils.data import Dataset

from emoportrait.face import track_frames
from emoportrait.render.edges import resize
from emoportrait.render.neural import NeuralRenderer
from emoportrait.training import EngineConfig, fit
from emoportrait.training.renderer import RendererConfig, RendererStage, sample_batch


class RandomWindows(Dataset):
    """Training windows of the shapes :class:`~emoportrait.training.renderer.RendererWindows` gives."""

    def __init__(self, config: RendererConfig, count: int) -> None:
        self.config, self.count = config, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        frames, drawn = self.config.generator.history + self.config.unroll, self.config.unroll
        shape = (self.config.size, self.config.width)
        return {"frames": torch.rand(frames, 3, *shape, generator=generator) * 2 - 1,
                "edges": torch.rand(frames, 2, *shape, generator=generator).round(),
                "region": torch.ones(drawn, 1, *shape), "mask": torch.ones(drawn, 1, *shape),
                "reference": torch.rand(3, *shape, generator=generator) * 2 - 1}


def training_speed(config: RendererConfig, device: str, amp: bool, steps: int, batch: int, out: Path) -> float:
    """Training steps per second of the second of two epochs of ``steps`` steps (the first warms up)."""
    windows = RandomWindows(config, steps * batch)
    stage = RendererStage(config, sample_batch(windows, 2))
    engine = EngineConfig(epochs=2, batch_size=batch, device=device, amp=amp, max_steps_per_epoch=steps,
                          log_every=steps)
    result = fit(stage, windows, RandomWindows(config, batch), out, engine)
    return steps / float(result.history[-1]["seconds"])


def render_speed(run: Path, device: str, size: int, frames: int) -> float:
    """Frames per second of :meth:`NeuralRenderer.render` on the astronaut at ``size``² (after 5 warm-up)."""
    portrait = resize(skimage.data.astronaut()[0:320, 60:380], (size, size))
    landmarks = track_frames(portrait[None], 25.0).landmarks[0]
    renderer = NeuralRenderer(run, device=device)
    for _ in range(5):
        renderer.render(portrait, landmarks, landmarks)
    synchronise(device)
    started = time.perf_counter()
    for _ in range(frames):
        renderer.render(portrait, landmarks, landmarks)
    synchronise(device)
    return frames / (time.perf_counter() - started)


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="(default: %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="frame side, pixels (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30,
                        help="training steps per measured epoch (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=4, help="(default: %(default)s)")
    parser.add_argument("--frames", type=int, default=100, help="frames rendered (default: %(default)s)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("benchmark: no CUDA device here; run it with --device cpu to check the script")
    config = RendererConfig(size=args.size, width=args.size, subject="random windows")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{name}, torch {torch.__version__}, {args.size}², batch {args.batch}, unroll {config.unroll}, "
          f"default generator and discriminators")
    print(f"{'amp':<6}{'train steps/s':>15}{'frames/s trained':>18}{'render fps':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for amp in (False, True) if args.device.startswith("cuda") else (False,):
            run = Path(tmp) / f"amp_{amp}"
            steps = training_speed(config, args.device, amp, args.steps, args.batch, run)
            fps = render_speed(run, args.device, args.size, args.frames)
            print(f"{'on' if amp else 'off':<6}{steps:>15.2f}{steps * args.batch * config.unroll:>18.1f}{fps:>12.1f}")


if __name__ == "__main__":
    main()
