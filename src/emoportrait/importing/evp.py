"""EVP's released per-subject files → an audio2lm run the learned driver loads.

What EVP released per subject (jixinya/EVP, ``audio2lm/``):

* ``pth/M0xx_20.pth``: a plain state dict of its ``AT_emoiton`` network: the content
  encoder (``con_encoder.audio_eocder*``), the emotion encoder
  (``emo_encoder.emotion_eocder*``, with the classification head ``last_fc`` of its
  pretraining), the audio-to-landmark LSTM (``decoder.lstm*``) and the landmark
  encoder (``lm_encoder.lmark_encoder*``). The MFCC decoder of the disentanglement
  stage was not released; the run keeps it at zero and says so (``source``), and the
  driver never uses it.
* ``basics/M0xx_U_106.npy`` ``(212, 212)`` and ``M0xx_mean_106.npy`` ``(212,)``: the
  PCA of its 106-point landmarks (columns of U are the axes; EVP uses the first 16).
  The components are carried over to the toolkit's mesh by
  :func:`~emoportrait.face.layout106.components_on_mesh`.
* ``M0xx_feature/<emotion>.npy`` ``(128,)``: one emotion code per emotion; they become
  the run's centroids, so ``--emotion angry`` works. Files named as mixtures
  (``happy6_sad4.npy``) are checked against the mixture rule
  (:func:`~emoportrait.drivers.learned.mixed_code`) and reported.

Two conventions differ from emoportrait's: EVP's emotion encoder convolves the
window transposed (cepstra × time), so its conv kernels are transposed here; its
classes are in alphabetical order, ours in :data:`~emoportrait.emotions.EMOTIONS`
order, so the classifier's rows are reordered. EVP's example landmark is the
subject's mean, so the example code is zero.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..drivers.learned import mixed_code
from ..emotions import EMOTIONS, EmotionSpec, canonical_emotion
from ..errors import InputError
from ..evp.models import Audio2Landmark, Disentangler, EvpModelConfig
from ..evp.models import SubjectBuffers
from ..training.evp import StageConfig
from ..face import layout106
from ..runs import write_checkpoint
from .keymap import KeyMap, Source, apply_key_map
from .reading import read_torch_tensors
from .runs import new_run_folder

EVP_EMOTIONS = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
"""EVP's class order (MEAD's, alphabetical)."""

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".safetensors")
MIXTURE_TOLERANCE = 1e-3
"""Largest difference (code units, codes reach ~15) at which a mixture file matches a mixture."""

_CONTENT_CONVS = {0: 0, 3: 1, 7: 3, 10: 4, 13: 5}
"""Content encoder: our ``convs`` position of each conv → its position in EVP's Sequential
(the pools have no tensors; a conv's batch norm follows it: ours at +1, EVP's as ``.1``)."""
_EMOTION_CONVS = {0: 0, 4: 2, 7: 3, 11: 5}
_BATCH_NORM = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _conv_stack(ours: str, theirs: str, layers: dict[int, int], transpose: bool) -> dict[str, Source]:
    """Map conv + batch-norm pairs: our ``convs.N`` / ``convs.N+1`` ← their ``M.0`` / ``M.1``."""
    flip = (lambda w: w.transpose(2, 3)) if transpose else None
    entries: dict[str, Source] = {}
    for index, original in layers.items():
        entries[f"{ours}.convs.{index}.weight"] = Source(f"{theirs}.{original}.0.weight", flip)
        for name in _BATCH_NORM:
            entries[f"{ours}.convs.{index + 1}.{name}"] = Source(f"{theirs}.{original}.1.{name}")
    return entries


def _linear(ours: str, theirs: str, rows: list[int] | None = None) -> dict[str, Source]:
    pick = (lambda t: t[rows]) if rows is not None else None
    return {f"{ours}.weight": Source(f"{theirs}.weight", pick), f"{ours}.bias": Source(f"{theirs}.bias", pick)}


def encoder_key_map() -> KeyMap:
    """Our Disentangler's encoders and classifier ← EVP's ``AT_emoiton`` names (decoder excluded)."""
    order = [EVP_EMOTIONS.index(name) for name in EMOTIONS]
    return {
        **_conv_stack("content_encoder", "con_encoder.audio_eocder", _CONTENT_CONVS, transpose=False),
        **_linear("content_encoder.fc.0", "con_encoder.audio_eocder_fc.0"),
        **_linear("content_encoder.fc.2", "con_encoder.audio_eocder_fc.2"),
        **_conv_stack("emotion_encoder", "emo_encoder.emotion_eocder", _EMOTION_CONVS, transpose=True),
        **_linear("emotion_encoder.fc.0", "emo_encoder.emotion_eocder_fc.0"),
        **_linear("emotion_encoder.fc.2", "emo_encoder.emotion_eocder_fc.2"),
        **_linear("classifier.fc", "emo_encoder.last_fc", order),
    }


def audio2lm_key_map() -> KeyMap:
    """Our Audio2Landmark ← EVP's ``AT_emoiton`` names."""
    lstm = {f"lstm.{kind}_l{layer}": Source(f"decoder.lstm.{kind}_l{layer}")
            for layer in range(3) for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    return {**_linear("landmark_encoder.0", "lm_encoder.lmark_encoder.0"),
            **_linear("landmark_encoder.2", "lm_encoder.lmark_encoder.2"),
            **lstm, **_linear("head", "decoder.lstm_fc.0")}


@dataclass
class EvpFiles:
    """The released files of one subject, sorted by kind."""

    checkpoint: Path
    basis: Path
    mean: Path
    features: dict[str, Path] = field(default_factory=dict)
    mixtures: dict[str, Path] = field(default_factory=dict)


_MIXTURE = re.compile(r"^([a-z]+?)(\d+)_([a-z]+?)(\d+)$")


def sort_files(paths: Sequence[Path]) -> EvpFiles:
    """Sort the user's paths (files, or folders of ``.npy`` files) into an :class:`EvpFiles`.

    Raises:
        InputError: a path is missing or of an unknown kind, or a required file is absent.
    """
    checkpoints, bases, means, features, mixtures = [], [], [], {}, {}
    expanded: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            expanded += sorted(path.glob("*.npy"))
        elif path.is_file():
            expanded.append(path)
        else:
            raise InputError(f"'{path}' does not exist")
    for path in expanded:
        stem = path.stem.lower()
        if path.name.lower().endswith(CHECKPOINT_SUFFIXES):
            checkpoints.append(path)
        elif path.suffix.lower() != ".npy":
            raise InputError(f"'{path}' is not one of EVP's files (.pth checkpoint, *_U_106.npy, *_mean_106.npy, "
                             "<emotion>.npy features)")
        elif "_u_" in f"_{stem}_":
            bases.append(path)
        elif "mean" in stem:
            means.append(path)
        elif _MIXTURE.match(stem):
            mixtures[stem] = path
        else:
            features[canonical_emotion(stem)] = path
    for kind, found, example in (("checkpoint", checkpoints, "pth/M030_20.pth"),
                                 ("PCA basis", bases, "basics/M030_U_106.npy"),
                                 ("PCA mean", means, "basics/M030_mean_106.npy")):
        if len(found) != 1:
            raise InputError(f"give exactly one {kind} of EVP (e.g. {example}); got {len(found)}")
    return EvpFiles(checkpoints[0], bases[0], means[0], features, mixtures)


def _load_array(path: Path, shape: tuple[int | None, ...]) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"'{path}' is not a NumPy array file ({exc})") from exc
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        wanted = "×".join("N" if s is None else str(s) for s in shape)
        raise InputError(f"'{path}' is {'×'.join(map(str, array.shape))}, expected {wanted}")
    return array.astype(np.float32)


def _mixture_weights(name: str, partner: str | None = None) -> dict[str, float]:
    first, first_tenths, second, second_tenths = _MIXTURE.match(name).groups()
    weights = {canonical_emotion(first): int(first_tenths) / 10,
               partner or canonical_emotion(second): int(second_tenths) / 10}
    return {emotion: weight for emotion, weight in weights.items() if emotion != "neutral"}


def check_mixtures(centroids: torch.Tensor, mixtures: dict[str, Path]) -> list[str]:
    """One line per mixture file: whether :func:`mixed_code` of its name reproduces it,
    and if not, which second emotion does."""
    lines = []
    for name, path in sorted(mixtures.items()):
        code = torch.from_numpy(_load_array(path, (centroids.shape[1],)))

        def error(weights: dict[str, float]) -> float:
            return float((mixed_code(centroids, EmotionSpec(weights)) - code).abs().max())

        if error(_mixture_weights(name)) <= MIXTURE_TOLERANCE:
            lines.append(f"{name}: matches its name")
            continue
        first, tenths, _, other = _MIXTURE.match(name).groups()
        fits = [e for e in EMOTIONS if e != canonical_emotion(first) and error(_mixture_weights(name, e))
                <= MIXTURE_TOLERANCE]
        actual = f"{int(tenths) / 10:g} {canonical_emotion(first)} + {int(other) / 10:g} {fits[0]}" if fits else \
            "no mixture of two emotions"
        lines.append(f"{name}: does not match its name; it is {actual}")
    return lines


@dataclass(frozen=True)
class EvpImport:
    """What :func:`import_evp` wrote."""

    out: Path
    tensors: int
    emotions: tuple[str, ...]
    mixture_checks: tuple[str, ...]
    face: str
    """Which of EVP's landmark points reach the toolkit's face mesh."""


def import_evp(paths: Sequence[str | Path], out: str | Path, subject: str) -> EvpImport:
    """Write an audio2lm run at ``out`` from EVP's released files of ``subject``.

    Args:
        paths: the checkpoint (``M0xx_20.pth``), the PCA basis and mean, and the emotion
            feature files or their folder, in any order.
        out: the run folder to write (a checkpoint folder: ``config.yaml`` + safetensors).
        subject: the subject's name (e.g. "M030"), stored in the run.

    Raises:
        InputError: a file is missing, unreadable, unsafe, or not what EVP released, or
            ``out`` exists already.
    """
    out = new_run_folder(out)
    files = sort_files(list(map(Path, paths)))
    config = EvpModelConfig()
    tensors = read_torch_tensors(files.checkpoint, "EVP checkpoint")
    what = f"EVP checkpoint '{files.checkpoint}'"
    encoders, network, buffers = Disentangler(config), Audio2Landmark(config), SubjectBuffers(config)
    ours = {f"encoders/{k}": v for k, v in encoders.state_dict().items() if not k.startswith("decoder.")}
    ours |= {f"network/{k}": v for k, v in network.state_dict().items()}
    key_map = {f"encoders/{k}": v for k, v in encoder_key_map().items()}
    key_map |= {f"network/{k}": v for k, v in audio2lm_key_map().items()}
    state = apply_key_map(tensors, key_map, ours, what)
    for decoder_tensor in encoders.decoder.state_dict().values():
        decoder_tensor.zero_()
    encoders.load_state_dict({k.removeprefix("encoders/"): v for k, v in state.items() if k.startswith("encoders/")},
                             strict=False)
    network.load_state_dict({k.removeprefix("network/"): v for k, v in state.items() if k.startswith("network/")})

    basis = _load_array(files.basis, (2 * layout106.N_POINTS, None))
    mean = _load_array(files.mean, (2 * layout106.N_POINTS,))
    if basis.shape[1] < config.pca_dim:
        raise InputError(f"'{files.basis}' has {basis.shape[1]} components; the network needs {config.pca_dim}")
    buffers.components.copy_(torch.from_numpy(layout106.components_on_mesh(basis[:, : config.pca_dim].T, mean)))
    for name, path in files.features.items():
        index = EMOTIONS.index(name)
        buffers.centroids[index] = torch.from_numpy(_load_array(path, (config.emotion_dim,)))
        buffers.centroid_counts[index] = 1.0
    checks = check_mixtures(buffers.centroids, files.mixtures) if "neutral" in files.features else []

    face = (f"{len(layout106.MESH_POINTS)} of its {layout106.N_POINTS} landmark points move the mesh; the odd "
            "contour points, lower brow edges, nose wings, eye centres and pupils do not")
    source = (f"imported from EVP's released {subject} files: {files.checkpoint.name} ({len(tensors)} tensors; "
              f"the MFCC decoder was not released and is zero), {files.basis.name}, {files.mean.name} ({face}), "
              f"{len(files.features)} emotion features")
    settings = asdict(StageConfig(stage="audio2lm", model=config, subject=subject, source=source))
    write_checkpoint(out, {"disentangler": encoders, "audio2lm": network, "subject": buffers}, settings, "audio2lm")
    return EvpImport(out, len(tensors), tuple(files.features), tuple(checks), face)
