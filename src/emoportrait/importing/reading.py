"""Reading other people's weight files without running their code.

* PyTorch files (``.pth``, ``.pt``, ``.pth.tar``) are opened with
  ``torch.load(weights_only=True)`` only: its unpickler builds tensors and plain
  containers and refuses everything else, so a file that would run code (or needs
  its authors' classes) is refused with one line and runs nothing.
* Keras ``.h5`` files are read with h5py: datasets only, no model config is evaluated.

Both give a flat ``{name: tensor}`` dict. Training scripts wrap their weights
(``{'state_dict': …, 'epoch': …}``, ``model_state_dict``, ``model``, ``net``) and
DataParallel prefixes every name with ``module.``; :func:`read_torch_tensors`
unwraps both.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import InputError

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network")
"""Keys under which training scripts nest the weights, tried in this order."""

_PREFIXES = ("module.",)


def _unwrap(value: Any) -> Any:
    """The innermost dict of tensors under :data:`WRAPPER_KEYS` (at most a few levels deep)."""
    for _ in range(4):
        if not isinstance(value, dict) or any(isinstance(v, torch.Tensor) for v in value.values()):
            return value
        nested = next((value[key] for key in WRAPPER_KEYS if isinstance(value.get(key), dict)), None)
        if nested is None:
            return value
        value = nested
    return value


def _strip_prefixes(name: str) -> str:
    for prefix in _PREFIXES:
        name = name.removeprefix(prefix)
    return name


def _blocked_global(message: str) -> str | None:
    """The line of a ``weights_only`` refusal naming the class or function it blocked, if any."""
    return next((line.strip() for line in message.splitlines() if "global" in line.lower()
                 and "weights_only" not in line), None)


def read_torch_tensors(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a PyTorch checkpoint or safetensors file, unwrapped, names without ``module.``.

    ``what`` names the file in messages (e.g. "DAN checkpoint").

    Raises:
        InputError: the file is missing, unreadable, holds more than tensors and plain
            containers (a pickle that would run code), or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} '{path}' does not exist")
    if path.suffix == ".safetensors":
        try:
            state: Any = load_file(path)
        except (SafetensorError, OSError) as exc:
            raise InputError(f"{what} '{path}' is not a readable safetensors file ({exc})") from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            blocked = _blocked_global(str(exc))
            if blocked is None:  # not a pickle stream torch understands at all
                raise InputError(f"{what} '{path}' is not a PyTorch checkpoint (unreadable pickle)") from exc
            raise InputError(f"{what} '{path}' needs more than tensors to load ({blocked}), so it was refused "
                             "unread; load it in its authors' code and save model.state_dict() alone") from exc
        except Exception as exc:  # torch raises many types for foreign or corrupt files
            raise InputError(f"{what} '{path}' is not a PyTorch checkpoint ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:120] if str(exc) else 'unreadable'})") from exc
    state = _unwrap(state)
    if not isinstance(state, dict):
        raise InputError(f"{what} '{path}' holds a {type(state).__name__}, not a dict of tensors")
    tensors = {_strip_prefixes(str(key)): value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise InputError(f"{what} '{path}' holds no tensors (keys: {', '.join(map(str, list(state)[:6]))})")
    return tensors


class KerasWeights(NamedTuple):
    """The weights of a Keras file and the backend that wrote them."""

    weights: dict[str, np.ndarray]
    """``{"<layer>/<weight>": array}``, e.g. ``"conv3d_1/kernel"``, in file order."""
    backend: str
    """"theano", "tensorflow", or "" when the file does not say. Theano convolves with
    flipped kernels, so its conv kernels must be flipped to run as cross-correlations."""
    keras_version: str
    """The Keras version that wrote the file ("" when it does not say)."""
    model_config: dict[str, Any] | None
    """The architecture of a whole-model file (its ``model_config`` JSON); None in a
    ``save_weights`` file."""


def _text_attribute(attributes: Any, name: str) -> str:
    value = attributes.get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _model_config(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def read_keras_h5(path: str | Path, what: str) -> KerasWeights:
    """The weights of a Keras ``.h5`` file (``save_weights`` or whole-model ``save``).

    Weight names lose their ``:0`` suffix. Whole-model files keep their weights under
    ``model_weights``; that group is used when present.

    Raises:
        InputError: the file is missing, not HDF5, or holds no weights.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} '{path}' does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{what} '{path}' is not an HDF5 (Keras .h5) file ({exc})") from exc
    weights: dict[str, np.ndarray] = {}
    with handle:
        root = handle["model_weights"] if "model_weights" in handle else handle
        backend = _text_attribute(root.attrs, "backend") or _text_attribute(handle.attrs, "backend")
        version = _text_attribute(root.attrs, "keras_version") or _text_attribute(handle.attrs, "keras_version")
        model_config = _model_config(_text_attribute(handle.attrs, "model_config"))
        layers = [name.decode() if isinstance(name, bytes) else str(name)
                  for name in root.attrs.get("layer_names", list(root.keys()))]
        for layer in layers:
            group = root[layer]
            names = group.attrs.get("weight_names")
            if names is None:  # no ordering attribute: every dataset below the layer
                names = []
                group.visit(lambda name, g=group, out=names: out.append(name)
                            if isinstance(g[name], h5py.Dataset) else None)
            for name in names:
                name = name.decode() if isinstance(name, bytes) else str(name)
                weights[f"{layer}/{name.split('/')[-1].removesuffix(':0')}"] = np.asarray(group[name])
    if not weights:
        raise InputError(f"{what} '{path}' holds no Keras weights")
    return KerasWeights(weights, backend, version, model_config)
