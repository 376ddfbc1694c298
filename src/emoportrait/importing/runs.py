"""Where an import writes: a new run folder, never over an existing run."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def new_run_folder(out: str | Path) -> Path:
    """``out`` as a path, after checking it does not hold a run (or anything else) already.

    Raises:
        InputError: ``out`` is a file, or a folder that is not empty.
    """
    out = Path(out)
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise InputError(f"'{out}' already exists; import into a new folder (or remove it first)")
    return out
