"""Importing the recognizers' released weights: DAN, Emotion-FAN and MicroExpSTCNN.

Each test writes a file in the authors' layout (module names and shapes from their
code) with random values, imports it, and compares the imported network with the
authors' forward pass written here from their code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch
from torch import nn
from torch.nn import functional as F

from emoportrait.analysis.labels import label_set
from emoportrait.analysis.recognizers.checkpoints import read_checkpoint
from emoportrait.analysis.recognizers.resnet import ResNet18
from emoportrait.errors import InputError
from emoportrait.importing.recognizers import FAN_CKPLUS_ORDER, import_recognizer

GENERATOR = torch.Generator().manual_seed(0)


def _randomise(module: nn.Module) -> nn.Module:
    """Random weights and batch-norm statistics (variances positive), in eval mode."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.dtype.is_floating_point:
                values = torch.rand(tensor.shape, generator=GENERATOR) + 0.5 if "running_var" in name else \
                    torch.randn(tensor.shape, generator=GENERATOR) * 0.05
                tensor.copy_(values)
    return module.eval()


def _conv_bn(in_channels: int, out_channels: int, kernel: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, padding=(kernel[0] // 2, kernel[1] // 2)),
                         nn.BatchNorm2d(out_channels))


class _DanSpatial(nn.Module):  # yaoing/DAN networks/dan.py: SpatialAttention
    def __init__(self):
        super().__init__()
        self.conv1x1 = _conv_bn(512, 256, (1, 1))
        self.conv_3x3, self.conv_1x3, self.conv_3x1 = (_conv_bn(256, 512, k) for k in ((3, 3), (1, 3), (3, 1)))

    def forward(self, x):
        y = self.conv1x1(x)
        return x * F.relu(self.conv_3x3(y) + self.conv_1x3(y) + self.conv_3x1(y)).sum(dim=1, keepdim=True)


class _DanChannel(nn.Module):  # ChannelAttention
    def __init__(self):
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(512, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 512),
                                       nn.Sigmoid())

    def forward(self, x):
        pooled = x.mean(dim=(2, 3))
        return pooled * self.attention(pooled)


class _DanHead(nn.Module):  # CrossAttentionHead
    def __init__(self):
        super().__init__()
        self.sa, self.ca = _DanSpatial(), _DanChannel()

    def forward(self, x):
        return self.ca(self.sa(x))


class _OriginalDan(nn.Module):
    """DAN as its authors built it: ``features`` is torchvision ResNet-18's children but the last two."""

    def __init__(self, classes: int = 7):
        super().__init__()
        self.features = nn.Sequential(*ResNet18().children())
        for index in range(4):
            setattr(self, f"cat_head{index}", _DanHead())
        self.fc, self.bn = nn.Linear(512, classes), nn.BatchNorm1d(classes)

    def forward(self, x):
        x = self.features(x)
        heads = F.log_softmax(torch.stack([getattr(self, f"cat_head{i}")(x) for i in range(4)], dim=1), dim=1)
        return self.bn(self.fc(heads.sum(dim=1)))


def test_dans_released_layout_imports_and_predicts_as_the_original(tmp_path):
    original = _randomise(_OriginalDan())
    path = tmp_path / "rafdb_epoch21_acc0.897_bacc0.8532.pth"
    torch.save({"iter": 21, "model_state_dict": original.state_dict(), "optimizer_state_dict": {}}, path)
    result = import_recognizer("dan", path, tmp_path / "dan")
    assert result.tensors == len(original.state_dict()) and result.config.label_set == "rafdb"
    model, config = read_checkpoint(tmp_path / "dan")
    faces = torch.randn(2, 3, 64, 64, generator=GENERATOR)
    with torch.no_grad():
        assert torch.allclose(model.eval()(faces), original(faces), atol=1e-5)
    assert config.published_accuracy == pytest.approx(0.897) and "89.70%" in config.source


def _original_fan_state(classes: int = 7) -> dict[str, torch.Tensor]:
    """Open-Debin/Emotion-FAN's ``ResNet_AT`` under DataParallel: torchvision trunk names,
    ``alpha.0`` / ``beta.0`` (Linear + Sigmoid), ``pred_fc1`` (unused) and ``pred_fc2``."""
    state = dict(_randomise(ResNet18()).state_dict())
    for name, shape in (("alpha.0", (1, 512)), ("beta.0", (1, 1024)), ("pred_fc1", (classes, 512)),
                        ("pred_fc2", (classes, 1024))):
        state[f"{name}.weight"] = torch.randn(shape, generator=GENERATOR) * 0.1
        state[f"{name}.bias"] = torch.randn(shape[0], generator=GENERATOR) * 0.1
    return {f"module.{name}": value for name, value in state.items()}


def _original_fan_logits(state: dict[str, torch.Tensor], frames: torch.Tensor) -> torch.Tensor:
    """The original's relation-attention logits of one clip (αβ-weighted, as it trains) → ``(1, 7)``."""
    state = {name.removeprefix("module."): value for name, value in state.items()}
    trunk = ResNet18().eval()
    trunk.load_state_dict({name: value for name, value in state.items() if name.startswith(("conv1", "bn1", "layer"))})
    features = trunk(frames).mean(dim=(2, 3))
    alpha = torch.sigmoid(F.linear(features, state["alpha.0.weight"], state["alpha.0.bias"]))
    clip = (alpha * features).sum(dim=0, keepdim=True) / alpha.sum()
    paired = torch.cat([features, clip.expand_as(features)], dim=1)
    weight = alpha * torch.sigmoid(F.linear(paired, state["beta.0.weight"], state["beta.0.bias"]))
    pooled = (weight * paired).sum(dim=0, keepdim=True) / weight.sum()
    return F.linear(pooled, state["pred_fc2.weight"], state["pred_fc2.bias"])


def test_emotion_fans_layout_imports_with_its_ckplus_classes_in_our_order(tmp_path):
    state = _original_fan_state()
    path = tmp_path / "self_relation-attention_ckplus.pth.tar"
    torch.save({"epoch": 60, "state_dict": state, "prec1": 99.0}, path)
    import_recognizer("fan", path, tmp_path / "fan")
    model, config = read_checkpoint(tmp_path / "fan")
    assert config.label_set == "ckplus" and config.mean == [0.0, 0.0, 0.0]
    frames = torch.rand(4, 3, 64, 64, generator=GENERATOR)
    with torch.no_grad():
        ours, theirs = model.eval()(frames[None]), _original_fan_logits(state, frames)
    for index, name in enumerate(label_set("ckplus")):
        assert torch.allclose(ours[0, index], theirs[0, FAN_CKPLUS_ORDER.index(name)], atol=1e-5)
    assert FAN_CKPLUS_ORDER[0] == "happy" and label_set("ckplus")[4] == "happy"  # so rows were reordered


def _keras_stcnn(path, version: str, backend: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A whole-model Keras file of MicroExpSTCNN for SMIC (``model_weights/<layer>/<layer>/<w>:0``)."""
    import h5py

    weights = {"conv3d_1": [rng.normal(0, 0.1, (3, 3, 15, 1, 32)), rng.normal(0, 0.1, 32)],
               "dense_1": [rng.normal(0, 0.01, (12800, 128)), rng.normal(0, 0.1, 128)],
               "dense_2": [rng.normal(0, 0.1, (128, 3)), rng.normal(0, 0.1, 3)]}
    weights = {layer: [array.astype(np.float32) for array in pair] for layer, pair in weights.items()}
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"], handle.attrs["backend"] = version.encode(), backend.encode()
        handle.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": [
            {"class_name": "Conv3D", "config": {"name": "conv3d_1"}}]}).encode()
        group = handle.create_group("model_weights")
        group.attrs["layer_names"] = [b"conv3d_1", b"max_pooling3d_1", b"dropout_1", b"flatten_1", b"dense_1",
                                      b"dropout_2", b"dense_2"]
        for layer in ("max_pooling3d_1", "dropout_1", "flatten_1", "dropout_2"):
            group.create_group(layer).attrs["weight_names"] = []
        for layer, (kernel, bias) in weights.items():
            layer_group = group.create_group(layer)
            layer_group.attrs["weight_names"] = [f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()]
            layer_group.create_dataset(f"{layer}/kernel:0", data=kernel)
            layer_group.create_dataset(f"{layer}/bias:0", data=bias)
    return {name: value for layer, pair in weights.items() for name, value in zip((f"{layer}/k", f"{layer}/b"), pair)}


def _keras_logits(weights: dict[str, np.ndarray], clips: torch.Tensor, channels_last: bool,
                  theano: bool) -> torch.Tensor:
    """What Keras computes on ``(B, T, H, W)`` clips fed as its 'th' ``(B, 1, H, W, T)``."""
    inputs = clips.permute(0, 2, 3, 1)[:, None]
    kernel = torch.from_numpy(weights["conv3d_1/k"]).permute(4, 3, 0, 1, 2)  # (out, in, kH, kW, kT)
    if theano:  # Theano convolves: the kernel runs flipped
        kernel = kernel.flip(2, 3, 4)
    x = F.max_pool3d(F.relu(F.conv3d(inputs, kernel, torch.from_numpy(weights["conv3d_1/b"]))), 3)
    if channels_last:  # Flatten(data_format='channels_first') of Keras >= 2.1.6
        x = x.permute(0, 2, 3, 4, 1)
    x = F.relu(x.flatten(1) @ torch.from_numpy(weights["dense_1/k"]) + torch.from_numpy(weights["dense_1/b"]))
    return x @ torch.from_numpy(weights["dense_2/k"]) + torch.from_numpy(weights["dense_2/b"])


@pytest.mark.parametrize(("version", "backend"), [("2.0.0", "theano"), ("2.2.4", "tensorflow")])
def test_microexpstcnns_keras_file_imports_for_either_flatten_order_and_backend(tmp_path, version, backend):
    pytest.importorskip("h5py")
    path = tmp_path / "MicroExpSTCNN_weights.hdf5"
    weights = _keras_stcnn(path, version, backend, np.random.default_rng(0))
    result = import_recognizer("stcnn", path, tmp_path / "stcnn", pixel_mean=0.4)
    assert result.config.mean == [0.4] and result.config.std == [pytest.approx(0.6)]
    model, _ = read_checkpoint(tmp_path / "stcnn")
    clips = torch.randn(2, 18, 64, 64, generator=GENERATOR)
    with torch.no_grad():
        expected = _keras_logits(weights, clips, channels_last=version >= "2.1.6", theano=backend == "theano")
        assert torch.allclose(model.eval()(clips[:, None]), expected, atol=1e-4)


def test_files_of_another_model_are_refused_by_name(tmp_path):
    path = tmp_path / "fan.pth.tar"
    torch.save({"state_dict": _original_fan_state()}, path)
    with pytest.raises(InputError, match="lacks 'fc.weight'"):
        import_recognizer("dan", path, tmp_path / "dan")
    state = _randomise(_OriginalDan()).state_dict()
    state["cat_head4.sa.conv1x1.0.weight"] = torch.zeros(256, 512, 1, 1)  # a fifth head
    torch.save({"model_state_dict": state}, path)
    with pytest.raises(InputError, match="cat_head4"):
        import_recognizer("dan", path, tmp_path / "dan")
    torch.save({"model_state_dict": _randomise(_OriginalDan(classes=6)).state_dict()}, path)
    with pytest.raises(InputError, match="6 classes.*--label-set"):
        import_recognizer("dan", path, tmp_path / "dan")
    assert not (tmp_path / "dan").exists()


def test_import_weights_then_analyze_names_the_released_recognizers(tmp_path, capsys, close_portrait):
    from emoportrait import media
    from emoportrait.cli import main
    from emoportrait.emotions import parse_emotion
    from emoportrait.pipeline import generate

    from .test_generate import RATE, speechlike

    torch.save({"iter": 21, "model_state_dict": _randomise(_OriginalDan()).state_dict()}, tmp_path / "dan.pth")
    torch.save({"epoch": 60, "state_dict": _original_fan_state()}, tmp_path / "fan.pth.tar")
    for model, file in (("dan", "dan.pth"), ("fan", "fan.pth.tar")):
        assert main(["import-weights", model, str(tmp_path / file), "--out", str(tmp_path / model)]) == 0
    printed = capsys.readouterr().out
    assert f"--fer {tmp_path / 'dan'}" in printed and "published accuracy 89.70%" in printed
    soundfile.write(tmp_path / "speech.wav", speechlike(1.0, active=((0.1, 0.9),)), RATE)
    media.write_image(tmp_path / "portrait.png", close_portrait)
    generate(tmp_path / "speech.wav", parse_emotion("happy"), tmp_path / "portrait.png",
             tmp_path / "videos" / "happy_001.mp4")
    report = tmp_path / "report"
    assert main(["analyze", str(tmp_path / "videos"), "--no-default-fer", "--fer", str(tmp_path / "dan"),
                 "--fer", str(tmp_path / "fan"), "--protocol", "last3", "--report", str(report)]) == 0
    page = (report / "index.html").read_text()
    assert "published accuracy 89.70% on RAF-DB" in page and "published accuracy 99.69% on CK+" in page
