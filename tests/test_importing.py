"""Importing the authors' weights: safe reading, key maps, and EVP's released files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from emoportrait.errors import InputError
from emoportrait.importing.keymap import Source, apply_key_map
from emoportrait.importing.reading import read_keras_h5, read_torch_tensors

from .conftest import SHARED_MEDIA

EVP_M030 = SHARED_MEDIA / "mead" / "evp_M030"


class _RunsCode:
    """A pickle that would create ``marker`` when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _RunsCode(str(marker))}, path)
    with pytest.raises(InputError, match="refused unread"):
        read_torch_tensors(path, "checkpoint")
    assert not marker.exists()


def test_training_wrappers_and_data_parallel_prefixes_are_unwrapped(tmp_path):
    path = tmp_path / "wrapped.pth.tar"
    torch.save({"epoch": 3, "prec1": 0.9, "state_dict": {"module.fc.weight": torch.ones(2, 3)}}, path)
    assert list(read_torch_tensors(path, "checkpoint")) == ["fc.weight"]
    torch.save({"model_state_dict": {"fc.bias": torch.ones(2)}, "optimizer_state_dict": {}}, path)
    assert list(read_torch_tensors(path, "checkpoint")) == ["fc.bias"]


def test_unreadable_and_empty_checkpoints_fail_in_one_line(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a PyTorch checkpoint"):
        read_torch_tensors(tmp_path / "junk.pth", "checkpoint")
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(InputError, match="holds no tensors"):
        read_torch_tensors(tmp_path / "empty.pth", "checkpoint")
    with pytest.raises(InputError, match="does not exist"):
        read_torch_tensors(tmp_path / "absent.pth", "checkpoint")


def test_keras_weights_are_read_in_layer_order(tmp_path):
    import h5py

    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["backend"] = b"theano"
        handle.attrs["layer_names"] = [b"conv3d_1", b"dense_1"]
        for layer, names in (("conv3d_1", ["kernel:0", "bias:0"]), ("dense_1", ["kernel:0"])):
            group = handle.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/{n}".encode() for n in names]
            for name in names:
                group.create_dataset(f"{layer}/{name}", data=np.full(2, len(name), np.float32))
    keras = read_keras_h5(path, "weights")
    assert list(keras.weights) == ["conv3d_1/kernel", "conv3d_1/bias", "dense_1/kernel"]
    assert keras.backend == "theano" and keras.keras_version == "" and keras.model_config is None
    (tmp_path / "text.h5").write_text("no")
    with pytest.raises(InputError, match="not an HDF5"):
        read_keras_h5(tmp_path / "text.h5", "weights")


def test_a_key_map_names_the_first_missing_extra_or_misshapen_tensor():
    expected = {"a.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2)}
    key_map = {"a.weight": Source("x.w", lambda t: t.T), "a.bias": Source("x.b")}
    good = {"x.w": torch.ones(3, 2), "x.b": torch.ones(2)}
    assert apply_key_map(good, key_map, expected, "file")["a.weight"].shape == (2, 3)
    with pytest.raises(InputError, match="lacks 'x.b'"):
        apply_key_map({"x.w": torch.ones(3, 2)}, key_map, expected, "file")
    with pytest.raises(InputError, match="'x.extra'"):
        apply_key_map({**good, "x.extra": torch.ones(1)}, key_map, expected, "file")
    assert "a.bias" in apply_key_map({**good, "x.extra": torch.ones(1)}, key_map, expected, "file", unused={"x.extra"})
    with pytest.raises(InputError, match="'x.w' is \\(2, 3\\)"):
        apply_key_map({"x.w": torch.ones(2, 3), "x.b": torch.ones(2)}, key_map, expected, "file")


# --- EVP ---------------------------------------------------------------------------------------------------
# The released AT_emoiton state dict as EVP's audio2lm/models.py defines it: names and shapes.

def _evp_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(prefix: str, out: int, inp: int) -> None:
        shapes[f"{prefix}.0.weight"] = (out, inp, 3, 3)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.1.{name}"] = (out,)
        shapes[f"{prefix}.1.num_batches_tracked"] = ()

    for index, (out, inp) in zip((0, 1, 3, 4, 5), ((64, 1), (128, 64), (256, 128), (256, 256), (512, 256))):
        conv_bn(f"con_encoder.audio_eocder.{index}", out, inp)
    shapes |= {"con_encoder.audio_eocder_fc.0.weight": (2048, 12288), "con_encoder.audio_eocder_fc.0.bias": (2048,),
               "con_encoder.audio_eocder_fc.2.weight": (256, 2048), "con_encoder.audio_eocder_fc.2.bias": (256,)}
    for index, (out, inp) in zip((0, 2, 3, 5), ((64, 1), (128, 64), (256, 128), (512, 256))):
        conv_bn(f"emo_encoder.emotion_eocder.{index}", out, inp)
    shapes |= {"emo_encoder.emotion_eocder_fc.0.weight": (2048, 3072), "emo_encoder.emotion_eocder_fc.0.bias": (2048,),
               "emo_encoder.emotion_eocder_fc.2.weight": (128, 2048), "emo_encoder.emotion_eocder_fc.2.bias": (128,),
               "emo_encoder.last_fc.weight": (8, 128), "emo_encoder.last_fc.bias": (8,)}
    for layer in range(3):
        inputs = 896 if layer == 0 else 256
        shapes |= {f"decoder.lstm.weight_ih_l{layer}": (1024, inputs), f"decoder.lstm.weight_hh_l{layer}": (1024, 256),
                   f"decoder.lstm.bias_ih_l{layer}": (1024,), f"decoder.lstm.bias_hh_l{layer}": (1024,)}
    shapes |= {"decoder.lstm_fc.0.weight": (16, 256), "decoder.lstm_fc.0.bias": (16,),
               "lm_encoder.lmark_encoder.0.weight": (256, 16), "lm_encoder.lmark_encoder.0.bias": (256,),
               "lm_encoder.lmark_encoder.2.weight": (512, 256), "lm_encoder.lmark_encoder.2.bias": (512,)}
    return shapes


def _evp_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in _evp_shapes().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(100)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[name] = torch.randn(shape, generator=generator) * 0.05
    return state


def _conv_bn_relu(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    x = F.conv2d(x, state[f"{prefix}.0.weight"], padding=1)
    x = F.batch_norm(x, state[f"{prefix}.1.running_mean"], state[f"{prefix}.1.running_var"],
                     state[f"{prefix}.1.weight"], state[f"{prefix}.1.bias"])
    return F.relu(x)


def _mlp(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    for index in (0, 2):
        x = F.relu(F.linear(x, state[f"{prefix}.{index}.weight"], state[f"{prefix}.{index}.bias"]))
    return x


def _evp_content(state: dict, windows: torch.Tensor) -> torch.Tensor:
    """EVP's content encoder: the (time, cepstra) window as is."""
    x = windows[:, None]
    for index in (0, 1):
        x = _conv_bn_relu(x, state, f"con_encoder.audio_eocder.{index}")
    x = F.max_pool2d(x, 3, stride=(1, 2))
    for index in (3, 4, 5):
        x = _conv_bn_relu(x, state, f"con_encoder.audio_eocder.{index}")
    x = F.max_pool2d(x, 3, stride=2)
    return _mlp(x.flatten(1), state, "con_encoder.audio_eocder_fc")


def _evp_emotion(state: dict, windows: torch.Tensor) -> torch.Tensor:
    """EVP's emotion encoder: it convolves the window transposed, (cepstra, time)."""
    x = windows.transpose(1, 2)[:, None]
    x = _conv_bn_relu(x, state, "emo_encoder.emotion_eocder.0")
    x = F.max_pool2d(x, (1, 3), stride=(1, 2))
    x = _conv_bn_relu(_conv_bn_relu(x, state, "emo_encoder.emotion_eocder.2"), state, "emo_encoder.emotion_eocder.3")
    x = F.max_pool2d(x, (12, 1), stride=(12, 1))
    x = F.max_pool2d(_conv_bn_relu(x, state, "emo_encoder.emotion_eocder.5"), (1, 2), stride=(1, 2))
    return _mlp(x.flatten(1), state, "emo_encoder.emotion_eocder_fc")


def _evp_landmarks(state: dict, content: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
    """EVP's LSTM: [landmark code of the zero example | content | emotion] per frame → 16 PCA coefficients."""
    lstm = torch.nn.LSTM(896, 256, 3, batch_first=True)
    lstm.load_state_dict({k.removeprefix("decoder.lstm."): v for k, v in state.items() if k.startswith("decoder.lstm.")})
    example = _mlp(torch.zeros(1, 16), state, "lm_encoder.lmark_encoder")
    steps = torch.cat([example.expand(len(content), -1), content, emotion], dim=1)[None]
    return F.linear(lstm(steps)[0], state["decoder.lstm_fc.0.weight"], state["decoder.lstm_fc.0.bias"])[0]


def _evp_files(tmp_path, state: dict) -> list:
    checkpoint = tmp_path / "M030_20.pth"
    torch.save(state, checkpoint)
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(212, 212)))[0].astype(np.float32)
    mean = np.load(EVP_M030 / "M030_mean_106.npy") if EVP_M030.is_dir() else np.tile([0.5, 0.5], 106) + \
        rng.normal(0, 0.2, 212)
    np.save(tmp_path / "M030_U_106.npy", basis)
    np.save(tmp_path / "M030_mean_106.npy", mean.astype(np.float32))
    features = tmp_path / "features"
    features.mkdir(exist_ok=True)
    for index, name in enumerate(("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")):
        np.save(features / f"{name}.npy", np.full(128, float(index), np.float32))
    return [checkpoint, tmp_path / "M030_U_106.npy", tmp_path / "M030_mean_106.npy", features]


def test_imported_evp_networks_compute_what_evps_layout_computes(tmp_path):
    from emoportrait.evp.models import Audio2Landmark, Disentangler
    from emoportrait.importing.evp import import_evp
    from emoportrait.runs import load_weights

    state = _evp_checkpoint()
    result = import_evp(_evp_files(tmp_path, state), tmp_path / "run", "M030")
    assert result.tensors == len(state) and len(result.emotions) == 8
    encoders, network = Disentangler().eval(), Audio2Landmark().eval()
    load_weights(tmp_path / "run", {"disentangler": encoders, "audio2lm": network})
    windows = torch.randn(6, 28, 12, generator=torch.Generator().manual_seed(1)) * 10
    with torch.no_grad():
        content, emotion = encoders.encode(windows)
        assert torch.allclose(content, _evp_content(state, windows), atol=1e-5)
        assert torch.allclose(emotion, _evp_emotion(state, windows), atol=1e-5)
        assert torch.allclose(network(torch.zeros(1, 16), content[None], emotion[None])[0],
                              _evp_landmarks(state, content, emotion), atol=1e-5)
        logits = encoders.classifier(emotion)
        evp_logits = F.linear(emotion, state["emo_encoder.last_fc.weight"], state["emo_encoder.last_fc.bias"])
        # ours in EMOTIONS order (neutral, happy, ...), EVP's alphabetical (angry, contempt, ...)
        assert torch.allclose(logits[:, 0], evp_logits[:, 5]) and torch.allclose(logits[:, 3], evp_logits[:, 0])


def test_imported_evp_features_become_the_centroids_in_our_order(tmp_path):
    from emoportrait.emotions import EMOTIONS
    from emoportrait.evp.models import SubjectBuffers
    from emoportrait.importing.evp import import_evp
    from emoportrait.runs import load_weights, read_run_config

    import_evp(_evp_files(tmp_path, _evp_checkpoint()), tmp_path / "run", "M030")
    buffers = SubjectBuffers(__import__("emoportrait.evp.models", fromlist=["EvpModelConfig"]).EvpModelConfig())
    load_weights(tmp_path / "run", {"subject": buffers})
    alphabetical = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
    assert buffers.centroids[:, 0].tolist() == [float(alphabetical.index(name)) for name in EMOTIONS]
    assert buffers.centroid_counts.tolist() == [1.0] * 8
    assert buffers.example_code.abs().max() == 0
    settings = read_run_config(tmp_path / "run")
    assert settings["stage"] == "audio2lm" and settings["subject"] == "M030" and "not released" in settings["source"]


def test_a_checkpoint_with_other_tensors_is_refused_by_name(tmp_path):
    from emoportrait.importing.evp import import_evp

    state = _evp_checkpoint()
    state["emo_encoder.re_id.0.0.weight"] = torch.zeros(1)
    with pytest.raises(InputError, match="re_id"):
        import_evp(_evp_files(tmp_path, state), tmp_path / "run", "M030")
    state = _evp_checkpoint()
    state["decoder.lstm_fc.0.weight"] = torch.zeros(20, 256)
    with pytest.raises(InputError, match="decoder.lstm_fc.0.weight"):
        import_evp(_evp_files(tmp_path, state), tmp_path / "run", "M030")
    assert not (tmp_path / "run").exists()


def test_evp_files_are_sorted_by_kind_and_required(tmp_path):
    from emoportrait.importing.evp import sort_files

    paths = _evp_files(tmp_path, _evp_checkpoint())
    files = sort_files(paths)
    assert files.checkpoint.name == "M030_20.pth" and files.basis.name == "M030_U_106.npy"
    assert set(files.features) == {"angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised"}
    with pytest.raises(InputError, match="exactly one PCA mean"):
        sort_files([paths[0], paths[1], paths[3]])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not one of EVP's files"):
        sort_files([*paths, tmp_path / "notes.txt"])


def test_the_106_point_move_reaches_the_mesh_and_opens_its_mouth():
    from emoportrait.face import layout106
    from emoportrait.face.landmarks import inner_mouth_opening

    weights = layout106.mesh_transfer()
    for point, vertex in layout106.MESH_POINTS.items():
        assert weights[vertex, point] == 1.0
    assert np.allclose(weights[10], 0)                         # the forehead stays
    assert np.all(weights >= -1e-9) and np.all(weights.sum(axis=1) <= 1 + 1e-9)
    move = np.zeros((106, 2))
    move[101:104, 1] = 0.1                                      # the lower inner lip drops by 0.1
    mesh = weights @ move
    assert mesh[14, 1] == pytest.approx(0.1) and mesh[13, 1] == pytest.approx(0.0)   # the upper lip stays
    assert inner_mouth_opening(mesh[None])[0] == pytest.approx(0.1)


def test_head_motion_is_removed_from_evp_components():
    from emoportrait.face import layout106

    rng = np.random.default_rng(0)
    mean = rng.uniform(0.2, 0.8, (106, 2))
    shift = np.tile([0.01, -0.02], (106, 1)) + 0.05 * (mean - mean[list(layout106.RIGID_POINTS)].mean(axis=0))
    mouth = np.zeros((106, 2))
    mouth[96:104, 1] = 0.03
    cleaned = layout106.without_head_motion(np.stack([shift, shift + mouth]), mean)
    assert np.abs(cleaned[0]).max() < 1e-9
    assert np.allclose(cleaned[1], mouth, atol=1e-9)           # the mouth's own move survives untouched


@pytest.mark.skipif(not EVP_M030.is_dir(), reason="EVP's released M030 features are not in ../shared/media")
def test_evps_released_m030_files_import_and_drive(tmp_path):
    from emoportrait.drivers.learned import LearnedDriver
    from emoportrait.emotions import EmotionSpec
    from emoportrait.importing.evp import import_evp

    checkpoint = tmp_path / "M030_20.pth"
    torch.save(_evp_checkpoint(), checkpoint)
    result = import_evp([checkpoint, EVP_M030], tmp_path / "run", "M030")
    assert len(result.emotions) == 8
    checks = dict(line.split(": ", 1) for line in result.mixture_checks)
    assert checks["happy4_neutral6"] == "matches its name"
    assert checks["angry4_neutral6"].endswith("it is 0.4 angry + 0.6 surprised")
    driver = LearnedDriver(tmp_path / "run")
    speech = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    identity = np.zeros((478, 3), np.float32)
    expression = driver.drive(speech, EmotionSpec({"angry": 1.0}), identity, 25, 25.0)
    assert expression.shape == (25, 478, 3) and np.isfinite(expression).all()


def test_import_weights_command_writes_a_run_once_and_says_how_to_use_it(tmp_path, capsys):
    from emoportrait.cli import main

    files = [str(path) for path in _evp_files(tmp_path, _evp_checkpoint())]
    out = tmp_path / "run"
    assert main(["import-weights", "evp", "--subject", "M030", *files, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "82 tensors and 8 emotion features" in printed and f"--weights {out}" in printed
    assert "72 of its 106 landmark points move the mesh" in printed
    assert main(["import-weights", "evp", "--subject", "M030", *files, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    torch.save({"payload": _RunsCode(str(tmp_path / "ran"))}, files[0])
    assert main(["import-weights", "evp", "--subject", "M030", *files, "--out", str(tmp_path / "other")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "refused unread" in error and not (tmp_path / "ran").exists()
    assert not (tmp_path / "other").exists()
