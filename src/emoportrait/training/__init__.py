"""Training of every learned model of emoportrait through one engine.

- :mod:`.engine`       the loop: epochs, checkpoints, resume, logs, AMP, torchrun DDP
- :mod:`.evp`          EVP's four stages (content, emotion, disentangle, audio2lm)
- :mod:`.renderer`     the neural renderer of one subject
- :mod:`.recognizers`  DAN, Emotion-FAN and MicroExpSTCNN on their datasets

The run folders they write, and how to read them, are :mod:`emoportrait.runs`: no
inference module imports this package.
"""

from .engine import EngineConfig, FitResult, Monitor, Stage, StepContext, fit

__all__ = ["EngineConfig", "FitResult", "Monitor", "Stage", "StepContext", "fit"]
