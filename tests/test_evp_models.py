"""EVP's networks and losses: shapes, sizes, the losses' zeros, gradient flow, a short fit."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from emoportrait.config import config_from_dict, config_to_dict
from emoportrait.errors import InputError
from emoportrait.evp.losses import (LossWeights, classification_loss, content_loss, cross_reconstruction_loss,
                                    disentanglement_losses, grid_swaps, landmark_loss, self_reconstruction_loss,
                                    triplet_losses)
from emoportrait.evp.models import (Audio2Landmark, ContentEncoder, Disentangler, EmotionClassifier,
                                    EmotionEncoder, EvpModelConfig, MfccDecoder)

SMALL = EvpModelConfig(
    content_stages=(((8, 8), (3, 3), (1, 2)), ((16,), (3, 3), (2, 2))), content_hidden=32, content_dim=16,
    emotion_stages=(((8,), (3, 1), (2, 1)), ((16,), (1, 12), (1, 12))), emotion_hidden=32, emotion_dim=8,
    decoder_layers=((16, (6, 6), (2, 2), (1, 1)), (8, (4, 2), (2, 2), (1, 1)), (8, (4, 4), (2, 2), (1, 1)),
                    (8, (4, 3), (2, 1), (3, 1)), (1, (3, 3), (1, 1), (1, 1))),
    landmark_hidden=(16, 32), lstm_hidden=16, lstm_layers=2,
)
"""A narrow configuration for the quick optimisation test."""


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def disentangler() -> Disentangler:
    torch.manual_seed(0)
    return Disentangler()


def _four_clips(size: int = 3) -> dict[str, torch.Tensor]:
    return {"a": torch.randn(size, 28, 12), "b": torch.randn(size, 28, 12), "c": torch.randn(size, 28, 12),
            "d": torch.randn(size, 28, 12), "emotion_a": torch.full((size,), 1), "emotion_b": torch.full((size,), 3)}


def test_config_defaults_sizes_and_yaml_round_trip():
    config = EvpModelConfig()
    assert config.encoder_output(config.content_stages) == (512, 12, 2)
    assert config.encoder_output(config.emotion_stages) == (512, 6, 1)
    assert config.decoder_output() == (28, 12)
    loaded = config_from_dict(EvpModelConfig, yaml.safe_load(yaml.safe_dump(config_to_dict(config))))
    assert loaded == config and hash(loaded) == hash(config)
    with pytest.raises(InputError):
        dataclasses.replace(config, mfcc_coeffs=11)       # the emotion encoder pools exactly 12 cepstra
    with pytest.raises(InputError):
        dataclasses.replace(config, mfcc_steps=30)        # the decoder makes 28 steps


def test_output_shapes_and_parameter_counts(disentangler):
    windows = torch.randn(4, 28, 12)
    content, emotion = disentangler.encode(windows)
    assert content.shape == (4, 256) and emotion.shape == (4, 128)
    assert disentangler.content_encoder(windows[:, None]).shape == (4, 256)
    assert disentangler.classifier(emotion).shape == (4, 8)
    assert disentangler.decode(content, emotion).shape == (4, 28, 12)
    with pytest.raises(ValueError):
        disentangler.emotion_encoder(torch.randn(4, 12, 28))
    landmarks = Audio2Landmark()
    assert landmarks(torch.randn(2, 16), torch.randn(2, 5, 256), torch.randn(2, 5, 128)).shape == (2, 5, 16)
    counts = {name: _parameters(module(EvpModelConfig())) for name, module in [
        ("ContentEncoder", ContentEncoder), ("EmotionEncoder", EmotionEncoder),
        ("EmotionClassifier", EmotionClassifier), ("MfccDecoder", MfccDecoder), ("Audio2Landmark", Audio2Landmark)]}
    print(counts, "Disentangler", _parameters(disentangler))
    assert counts["EmotionClassifier"] == 128 * 8 + 8
    assert _parameters(disentangler) == sum(counts[name] for name in list(counts)[:4])
    assert counts["Audio2Landmark"] == (16 * 256 + 256 + 256 * 512 + 512
                                        + 4 * 256 * (896 + 256 + 2) + 2 * 4 * 256 * (256 + 256 + 2)
                                        + 256 * 16 + 16)


def test_emotion_broadcast_equals_repeating_it_over_time():
    torch.manual_seed(1)
    model = Audio2Landmark().eval()
    example, content, emotion = torch.randn(2, 16), torch.randn(2, 7, 256), torch.randn(2, 128)
    with torch.no_grad():
        torch.testing.assert_close(model(example, content, emotion),
                                   model(example, content, emotion[:, None].repeat(1, 7, 1)))


def test_reconstruction_losses_vanish_for_disentangled_codes():
    # clip (s, m) = sentence pattern s × emotion gain m; the content code is the pattern, the emotion code the gain
    patterns, gains = torch.randn(2, 1, 336), torch.tensor([1.0, -2.0]).view(1, 2, 1, 1)
    clips = (patterns[:, None] * gains).view(4, 1, 28, 12)
    contents = patterns[:, None].expand(2, 2, 1, 336).reshape(4, 1, 336)
    emotions = gains.expand(2, 2, 1, 1).reshape(4, 1, 1)

    def decode(content, emotion):
        return (content * emotion).view(-1, 28, 12)

    assert self_reconstruction_loss(decode, contents, emotions, clips) == 0.0
    assert cross_reconstruction_loss(decode, contents, emotions, clips, grid_swaps(2, 2)) == 0.0
    swapped = contents[[2, 3, 0, 1]]                      # each clip carries the other sentence's content
    assert self_reconstruction_loss(decode, swapped, emotions, clips) > 0.0
    assert cross_reconstruction_loss(decode, swapped, emotions, clips, grid_swaps(2, 2)) > 0.0
    assert grid_swaps(1, 2) == [(0, 1, 1), (1, 0, 0)]
    assert len(grid_swaps(2, 2)) == 12 and (0, 3, 1) in grid_swaps(2, 2) and (3, 0, 2) in grid_swaps(2, 2)


def test_code_losses_are_zero_only_where_they_should_be():
    codes = torch.randn(3, 16)
    assert content_loss(codes, codes) == 0.0 and content_loss(codes, codes + 0.1) > 0.0
    labels = torch.tensor([0, 5, 7])
    confident = torch.nn.functional.one_hot(labels, 8).float() * 100.0
    assert classification_loss(confident, labels) < 1e-6 and classification_loss(-confident, labels) > 1.0
    # content codes depend on the sentence only and emotion codes on the emotion only: zero triplet losses
    sentence, emotion = torch.randn(2, 1, 1, 16) * 10, torch.randn(1, 2, 1, 8) * 10
    contents, emotions = sentence.expand(2, 2, 3, 16), emotion.expand(2, 2, 3, 8)
    assert triplet_losses(contents, emotions, margin=1.0) == (0.0, 0.0)
    content_triplet, emotion_triplet = triplet_losses(emotions.repeat(1, 1, 1, 2), contents[..., :8], margin=1.0)
    assert content_triplet > 0.0 and emotion_triplet > 0.0
    with pytest.raises(ValueError):
        triplet_losses(contents[:1], emotions[:1], margin=1.0)


def test_landmark_loss_zero_mask_and_smoothness():
    torch.manual_seed(2)
    target = torch.cumsum(torch.randn(2, 10, 16) * 0.1, dim=1)
    assert landmark_loss(target, target, smooth_weight=1.0) == 0.0
    signs = (-1.0) ** torch.arange(10).view(1, 10, 1)
    smooth, jittery = target + 0.1, target + 0.1 * signs          # the same |error| on every frame
    for norm in ("mse", "l1"):
        assert landmark_loss(smooth, target, norm=norm) == pytest.approx(landmark_loss(jittery, target, norm=norm).item())
        assert landmark_loss(jittery, target, smooth_weight=0.5, norm=norm) > landmark_loss(
            smooth, target, smooth_weight=0.5, norm=norm) + 1e-3
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    padded = target.clone()
    padded[1, 6:] += 100.0                                   # padding frames do not count
    assert landmark_loss(padded, target, mask, smooth_weight=1.0) == 0.0
    with pytest.raises(ValueError):
        landmark_loss(target, target, norm="huber")


def test_disentanglement_losses_terms_and_gradients(disentangler):
    disentangler.train()
    pair = {key: value for key, value in _four_clips().items() if key not in "cd"}
    terms = disentanglement_losses(disentangler, pair, LossWeights(triplet=10.0))
    assert set(terms) == {"self_rec", "cross_rec", "classification", "content", "loss"}
    terms = disentanglement_losses(disentangler, _four_clips(), LossWeights(triplet=10.0))
    assert set(terms) == {"self_rec", "cross_rec", "classification", "content", "triplet_content",
                          "triplet_emotion", "loss"}
    assert all(value.ndim == 0 and torch.isfinite(value) for value in terms.values())
    disentangler.zero_grad()
    terms["loss"].backward()
    for network in (disentangler.content_encoder, disentangler.emotion_encoder, disentangler.classifier,
                    disentangler.decoder):
        grads = [p.grad for p in network.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    with pytest.raises(KeyError):
        disentanglement_losses(disentangler, {**pair, "c": pair["a"]})


def _synthetic_batch(patterns: torch.Tensor, size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """2 sentences × 2 emotions: clip (s, m) = sentence pattern s + emotion pattern m + noise."""
    sentences, emotions = patterns[:2], patterns[2:]

    def clip(s: int, m: int) -> torch.Tensor:
        return sentences[s] + emotions[m] + torch.randn(size, 28, 12, generator=generator)

    return {"a": clip(0, 0), "b": clip(0, 1), "c": clip(1, 0), "d": clip(1, 1),
            "emotion_a": torch.full((size,), 2), "emotion_b": torch.full((size,), 6)}


def test_a_few_adam_steps_reduce_the_loss():
    torch.manual_seed(3)
    generator = torch.Generator().manual_seed(3)
    patterns = torch.randn(4, 28, 12) * 10.0
    model = Disentangler(SMALL)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(30):
        loss = disentanglement_losses(model, _synthetic_batch(patterns, 8, generator), LossWeights(triplet=1.0))["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * losses[0]
