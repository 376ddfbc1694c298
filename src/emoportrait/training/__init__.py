"""Training of every learned model of emoportrait through one engine (:mod:`.engine`)."""

from .engine import (CONFIG_FILE, STATE_FILE, WEIGHTS_SUFFIX, EngineConfig, FitResult, Monitor, Stage, StepContext,
                     fit, load_weights, read_run_config, write_checkpoint)

__all__ = ["CONFIG_FILE", "STATE_FILE", "WEIGHTS_SUFFIX", "EngineConfig", "FitResult", "Monitor", "Stage",
           "StepContext", "fit", "load_weights", "read_run_config", "write_checkpoint"]
