"""Training of every learned model of emoportrait through one engine (:mod:`.engine`).

The run folders it writes, and how to read them, are :mod:`emoportrait.runs`.
"""

from .engine import EngineConfig, FitResult, Monitor, Stage, StepContext, fit

__all__ = ["EngineConfig", "FitResult", "Monitor", "Stage", "StepContext", "fit"]
