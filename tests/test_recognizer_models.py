"""The recognizer networks (ResNet-18, DAN, Emotion-FAN, MicroExpSTCNN): shapes, sizes, losses,
backbone loading, the input pipeline and the recognizers' windowing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from emoportrait.analysis.recognizers import RecognizerInfo, datasets, resnet
from emoportrait.analysis.recognizers.dan import DAN, affinity_loss, partition_loss
from emoportrait.analysis.recognizers.fan import APEX_PART, FAN, segment_indices
from emoportrait.analysis.recognizers.stcnn import STCNN, StcnnRecognizer, clip_indices, flat_features
from emoportrait.errors import InputError


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def dan() -> DAN:
    torch.manual_seed(0)
    return DAN(7)


def test_resnet18_trunk_size_and_shape():
    trunk = resnet.ResNet18()
    assert _parameters(trunk) == pytest.approx(11.18e6, rel=0.01)
    assert trunk(torch.randn(2, 3, 64, 64)).shape == (2, 512, 2, 2)


def test_dan_size_shapes_and_losses(dan):
    assert _parameters(dan) == pytest.approx(19.7e6, rel=0.05)
    dan.train()
    x, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 3, 6, 3])
    logits, trunk, heads = dan.features(x)
    assert logits.shape == (4, 7) and trunk.shape == (4, 512, 2, 2) and heads.shape == (4, 4, 512)
    loss, logits = dan.training_loss(x, labels)
    assert loss.ndim == 0 and torch.isfinite(loss) and logits.shape == (4, 7)
    loss.backward()
    assert dan.centres.grad is not None and torch.isfinite(dan.trunk.conv1.weight.grad).all()
    dan.eval()
    assert dan(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_partition_loss_is_zero_for_one_head_and_falls_as_heads_differ():
    assert partition_loss(torch.randn(3, 1, 512)).item() == 0.0
    assert DAN(3, heads=1).training_loss(torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))[0].isfinite()
    alike, apart = torch.zeros(3, 4, 512), torch.randn(3, 4, 512) * 10
    assert partition_loss(apart) < partition_loss(alike + 0.01 * torch.randn(3, 4, 512))


def test_affinity_loss_is_zero_at_the_centres_and_scaled_by_their_spread():
    centres = torch.randn(5, 512)
    labels = torch.tensor([4, 0, 2])
    assert affinity_loss(centres[labels], labels, centres).item() == pytest.approx(0.0, abs=1e-6)
    features = centres[labels] + 1.0
    assert affinity_loss(features, labels, centres).item() == pytest.approx(512 / centres.var(dim=0).sum().item())
    assert affinity_loss(features * 2, labels, centres * 2) == pytest.approx(affinity_loss(features, labels, centres))


def test_fan_shapes_and_attention_pools_frames():
    torch.manual_seed(0)
    model = FAN(7)
    assert _parameters(model) - _parameters(model.trunk) == (512 + 1) + (1024 + 1) + (1024 * 7 + 7)
    assert model(torch.randn(2, 3, 3, 64, 64)).shape == (2, 7)
    model.eval()
    features = torch.randn(1, 5, 512)
    with torch.no_grad():                              # an attention-weighted mean: repeating every
        once = model.classify(features)                # frame leaves the clip's score unchanged
        twice = model.classify(features.repeat(1, 2, 1))
        single = model.classify(features[:, :1])
    torch.testing.assert_close(once, twice)
    assert single.shape == (1, 7)


def test_fan_training_frames_come_from_the_apex_end_in_order():
    rng = np.random.default_rng(0)
    for count in (1, 2, 10, 37):
        for _ in range(20):
            indices = segment_indices(count, 3, rng)
            assert indices.shape == (3,) and np.all(np.diff(indices) >= 0)
            assert indices.min() >= int(count * (1 - APEX_PART)) and indices.max() < count


def test_stcnn_size_and_shape():
    model = STCNN(3)
    assert flat_features(64, 18) == 12_800
    assert _parameters(model) == pytest.approx(1.64e6, rel=0.01)
    assert model(torch.randn(2, 1, 18, 64, 64)).shape == (2, 3)
    assert STCNN(3, depth=18, size=32)(torch.randn(1, 1, 18, 32, 32)).shape == (1, 3)
    with pytest.raises(InputError, match="at least 17 frames"):
        STCNN(3, depth=12)


def test_stcnn_clip_frames_and_prediction_windows():
    np.testing.assert_array_equal(clip_indices(30, 18), np.arange(18))         # the first 18, as the original
    short = clip_indices(6, 18)
    assert short.shape == (18,) and short[0] == 0 and short[-1] == 5 and np.all(np.diff(short) >= 0)
    info = RecognizerInfo("stcnn (smic)", "smic", ("negative", "positive", "surprise"), "clip", "test")
    recognizer = StcnnRecognizer(STCNN(3, size=16), info, size=16, depth=18, mean=0.5, scale=0.5,
                                 device=torch.device("cpu"))
    windows = recognizer.windows(40)                                              # starts 0, 9, 18, then 22
    np.testing.assert_array_equal(windows[:, 0], [0, 9, 18, 22])
    np.testing.assert_array_equal(windows[1], np.arange(9, 27))
    assert recognizer.windows(5).shape == (1, 18) and recognizer.windows(5).max() == 4
    long_window = StcnnRecognizer(STCNN(3, size=16), info, 16, 18, 0.5, 0.5, torch.device("cpu"), window=36, stride=36)
    spread = long_window.windows(36)                                              # 36 frames resampled to 18
    assert spread.shape == (1, 18) and spread[0, 0] == 0 and spread[0, -1] == 35
    with pytest.raises(InputError, match="at least one frame"):
        StcnnRecognizer(STCNN(3, size=16), info, 16, 18, 0.5, 0.5, torch.device("cpu"), stride=-1)
    probabilities = recognizer.predict_clip(np.zeros((40, 20, 20, 3), np.uint8), fps=25.0)
    assert probabilities.shape == (3,) and probabilities.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("form", ["torch_wrapped", "safetensors"])
def test_backbone_loads_from_torch_and_safetensors_files(tmp_path, form):
    source = resnet.ResNet18()
    target = resnet.ResNet18()
    if form == "torch_wrapped":  # as DAN's resnet18_msceleb.pth: {'state_dict': ...}, DataParallel keys, an fc
        path = tmp_path / "resnet18.pth"
        state = {f"module.{key}": value for key, value in source.state_dict().items()}
        state["module.fc.weight"] = torch.zeros(1000, 512)
        torch.save({"state_dict": state, "epoch": 3}, path)
    else:
        path = tmp_path / "resnet18.safetensors"
        save_file({key: value.contiguous() for key, value in source.state_dict().items()}, path)
    resnet.load_backbone(target, path)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))


def test_bad_backbones_are_refused(tmp_path):
    trunk = resnet.ResNet18()
    with pytest.raises(InputError, match="does not exist"):
        resnet.load_backbone(trunk, tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(InputError, match="backbone .* is not a PyTorch checkpoint"):
        resnet.load_backbone(trunk, tmp_path / "junk.pth")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "partial.pth")
    with pytest.raises(InputError, match="is not a ResNet-18 state dict"):
        resnet.load_backbone(trunk, tmp_path / "partial.pth")
    wrong = {key: value for key, value in trunk.state_dict().items()}
    wrong["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(InputError, match="does not fit ResNet-18: 'conv1.weight'"):
        resnet.load_backbone(trunk, tmp_path / "wrong.pth")


def test_input_pipeline_and_augmentations():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 50, 50, 3), dtype=np.uint8)
    resized = datasets.resize_images(images, 32)
    assert resized.shape == (2, 32, 32, 3) and resized.dtype == np.uint8
    tensor = datasets.to_tensor(resized, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert tensor.shape == (2, 3, 32, 32)
    torch.testing.assert_close(tensor[1, 2, 3, 4], torch.tensor((resized[1, 3, 4, 2] / 255 - 0.5) / 0.25, dtype=torch.float32))
    assert datasets.to_gray(resized).shape == (2, 32, 32, 1)
    flipped = datasets.random_flip(resized, rng, p=1.0)
    np.testing.assert_array_equal(flipped[:, :, 0], resized[:, :, -1])
    assert datasets.random_rotate_crop(resized[0], rng, 20.0, 4).shape == (32, 32, 3)
    erased = datasets.random_erasing(torch.ones(3, 32, 32), rng, p=1.0)
    zero_fraction = (erased == 0).float().mean().item()
    assert 0.02 * 0.5 <= zero_fraction <= 0.25 * 1.5 and (erased[0] == 0).equal(erased[2] == 0)


def test_every_registered_model_builds_trains_and_recognises_by_its_entry():
    """One entry per model (registry) is all that loading, training and the command line need."""
    from emoportrait.analysis.recognizers.checkpoints import CheckpointConfig, build_model
    from emoportrait.analysis.recognizers.registry import MODELS, TASKS, models_for, recognizer_model
    from emoportrait.training.recognizers import RECIPES

    assert set(RECIPES) == set(MODELS)
    assert sorted(model.name for task in TASKS for model in models_for(task)) == sorted(MODELS)
    for model in MODELS.values():
        recipe = RECIPES[model.name]
        config = CheckpointConfig(model.name, model.label_sets[0], ["a", "b", "c"], recipe.image_size,
                                  recipe.frames, [0.5], [0.5], "none")
        network = build_model(config)
        info = RecognizerInfo(model.name, model.label_sets[0], ("a", "b", "c"), model.kind, "test")
        recognizer = model.recognizer(network, info, config, torch.device("cpu"), None, None)
        assert recognizer.info.kind == model.kind and model.task in TASKS
    with pytest.raises(InputError, match="unknown recognizer model 'vgg'; choose one of dan, fan, stcnn"):
        recognizer_model("vgg")
