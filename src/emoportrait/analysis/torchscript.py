"""Loading user-supplied TorchScript networks (the hooks for weights that do not ship offline)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InputError


def load_torchscript(path: str | Path, expected: str, device: str = "cpu") -> torch.jit.ScriptModule:
    """Load a ``torch.jit.save`` file in eval mode; ``expected`` describes it for errors
    (e.g. "a TorchScript SyncNet with forward_lip and forward_aud")."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"'{path}' does not exist; pass {expected}")
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"'{path}' is not a TorchScript module (torch.jit.save); pass {expected}") from exc
