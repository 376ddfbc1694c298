"""Key maps: the original repositories' tensor names → emoportrait's, checked.

A :data:`KeyMap` says, for every tensor of one of emoportrait's modules, which
tensor of the original checkpoint fills it and how (a transpose, a row order).
:func:`apply_key_map` enforces that the two files are the same network: every
tensor of ours is filled, every tensor of theirs is used exactly once (apart
from the ones a map declares unused), and shapes agree. The first offending
name is in the message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import torch

from ..errors import InputError

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Source:
    """Where one of our tensors comes from: the original ``name``, changed by ``transform``."""

    name: str
    transform: Transform | None = None


KeyMap = Mapping[str, Source]
"""Our tensor name → its source in the original checkpoint."""


def same_names(ours: Collection[str], rename: Callable[[str], str]) -> dict[str, Source]:
    """A map whose every tensor is copied as is from ``rename(our name)``."""
    return {name: Source(rename(name)) for name in ours}


def apply_key_map(source: Mapping[str, torch.Tensor], key_map: KeyMap, expected: Mapping[str, torch.Tensor],
                  what: str, unused: Collection[str] = ()) -> dict[str, torch.Tensor]:
    """Our state dict, filled from ``source`` through ``key_map``.

    Args:
        source: the original checkpoint's tensors.
        key_map: one entry per name of ``expected``.
        expected: our module's state dict (names and shapes to fill).
        what: the file, for messages (e.g. "DAN checkpoint 'x.pth'").
        unused: original names the map knowingly drops (heads the original never
            used in inference, a training-only branch).

    Raises:
        InputError: a tensor is missing, left over, used twice, or of the wrong shape.
    """
    uses = Counter(entry.name for entry in key_map.values())
    twice = [name for name, count in uses.items() if count > 1]
    if twice:
        raise ValueError(f"key map uses '{twice[0]}' {uses[twice[0]]} times")  # a bug in the map, not the file
    state: dict[str, torch.Tensor] = {}
    for name, reference in expected.items():
        entry = key_map[name]
        if entry.name not in source:
            if name.endswith("num_batches_tracked"):  # torch < 0.4 saved no batch-norm step counters
                state[name] = reference.clone()
                continue
            raise InputError(f"{what} lacks '{entry.name}' (for {name}); it is not the checkpoint this "
                             "import expects")
        value = source[entry.name]
        if entry.transform is not None:
            value = entry.transform(value)
        if tuple(value.shape) != tuple(reference.shape):
            raise InputError(f"{what}: '{entry.name}' is {tuple(source[entry.name].shape)}, which does not fit "
                             f"{name} {tuple(reference.shape)}; it is another variant of the network")
        state[name] = value.to(reference.dtype).contiguous()
    left = [name for name in source if name not in uses and name not in unused]
    if left:
        raise InputError(f"{what} holds {len(left)} tensor(s) this import does not know, e.g. '{left[0]}'; "
                         "it is not the checkpoint this import expects")
    return state
