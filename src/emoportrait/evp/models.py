"""EVP's networks (Ji et al., CVPR 2021): audio disentanglement and audio-to-landmark.

The audio input of one video frame is an MFCC "image" of ``28 × 12``: 28 MFCC steps
of 10 ms (0.28 s) by 12 cepstra (c1..c12, in the units of :func:`emoportrait.audio.mfcc`,
python_speech_features' natural-log MFCC, EVP's own), as cut by :func:`emoportrait.audio.mfcc_windows`. Tensors
keep that layout, ``(B, 28, 12)``: time on the height axis, cepstra on the width axis.

Cross-reconstructed disentanglement (paper Sec. 3.1), as in EVP's public code:

- :class:`ContentEncoder`: 3×3 conv + BatchNorm + ReLU layers ``1→64→128``, max-pool 3×3
  stride (1, 2) (``28×12 → 26×5``), ``→256→256→512``, max-pool 3×3 stride 2
  (``→ 12×2``); flattened (12 288) through ``→2048→256`` fully connected layers, each
  followed by a ReLU: the 256-d content code.
- :class:`EmotionEncoder`: ``1→64``, max-pool (3, 1) stride (2, 1) over time
  (``28×12 → 13×12``), ``→128→256``, max-pool over all 12 cepstra (``→ 13×1``),
  ``→512``, max-pool (2, 1) over time (``→ 6×1``); flattened (3 072) through
  ``→2048→128`` (ReLU after each): the 128-d emotion code. EVP's code transposes the
  window to (cepstra, time) first; the pools here are the same pools written for our
  (time, cepstra) layout.
- :class:`EmotionClassifier`: one linear layer from the emotion code to the 8 MEAD
  emotions, in the order of :data:`emoportrait.emotions.EMOTIONS`.
- :class:`MfccDecoder`: the concatenated codes (384 channels at 1×1) through five
  transposed convolutions (``→4×4 →8×6 →16×12 →28×12 →28×12``, BatchNorm + ReLU
  between them) and ``90 · tanh``: a ``28 × 12`` window in MFCC units, bounded to ±90.

Audio-to-landmark (paper Sec. 3.2), :class:`Audio2Landmark`: landmarks are 16 PCA
coefficients of a per-subject PCA. The example (identity) landmarks' coefficients go
through ``16→256→512`` (Linear + ReLU); per frame the 512-d landmark code, 256-d
content code and 128-d emotion code are concatenated (896-d) and fed to a 3-layer
LSTM (hidden 256); a linear layer gives 16 PCA coefficients of the displacement from
the example landmarks, so predicted landmarks are ``example + displacement``.

Every size is in :class:`EvpModelConfig`, whose defaults are EVP's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..emotions import EMOTIONS
from ..errors import InputError

if TYPE_CHECKING:
    from .cache import SubjectModel

ConvStage = tuple[tuple[int, ...], tuple[int, int], tuple[int, int]]
"""One encoder stage: (output channels of its 3×3 convs, max-pool kernel, max-pool stride),
kernel and stride as (time steps, cepstra)."""

Deconv = tuple[int, tuple[int, int], tuple[int, int], tuple[int, int]]
"""One transposed convolution: (output channels, kernel, stride, padding), each as
(time steps, cepstra)."""


@dataclass(frozen=True)
class EvpModelConfig:
    """Sizes of EVP's networks (EVP's public code as defaults).

    Attributes:
        mfcc_steps: MFCC steps (10 ms each) in one frame's audio window.
        mfcc_coeffs: Cepstra per MFCC step (c1..c12).
        conv_kernel: Side of the encoders' square conv kernels (odd; padding keeps the size).
        content_stages: Content encoder conv stages (see :data:`ConvStage`).
        content_hidden: Width of the content encoder's hidden fully connected layer.
        content_dim: Length of the content code.
        emotion_stages: Emotion encoder conv stages (see :data:`ConvStage`).
        emotion_hidden: Width of the emotion encoder's hidden fully connected layer.
        emotion_dim: Length of the emotion code.
        n_emotions: Emotion classes (MEAD's eight).
        decoder_layers: The MFCC decoder's transposed convolutions, from the 1×1 codes
            to a ``mfcc_steps × mfcc_coeffs`` window; the last has one output channel.
        decoder_scale: The decoder's output is ``decoder_scale · tanh(·)``, in MFCC units.
        pca_dim: PCA coefficients per landmark set.
        landmark_hidden: Widths of the landmark encoder's Linear + ReLU layers.
        lstm_hidden: Hidden size of the audio-to-landmark LSTM.
        lstm_layers: Stacked LSTM layers.
        dropout: Dropout between the LSTM layers (EVP: none).
    """

    mfcc_steps: int = 28
    mfcc_coeffs: int = 12
    conv_kernel: int = 3
    content_stages: tuple[ConvStage, ...] = (
        ((64, 128), (3, 3), (1, 2)),
        ((256, 256, 512), (3, 3), (2, 2)),
    )
    content_hidden: int = 2048
    content_dim: int = 256
    emotion_stages: tuple[ConvStage, ...] = (
        ((64,), (3, 1), (2, 1)),
        ((128, 256), (1, 12), (1, 12)),
        ((512,), (2, 1), (2, 1)),
    )
    emotion_hidden: int = 2048
    emotion_dim: int = 128
    n_emotions: int = len(EMOTIONS)
    decoder_layers: tuple[Deconv, ...] = (
        (256, (6, 6), (2, 2), (1, 1)),
        (128, (4, 2), (2, 2), (1, 1)),
        (64, (4, 4), (2, 2), (1, 1)),
        (32, (4, 3), (2, 1), (3, 1)),
        (1, (3, 3), (1, 1), (1, 1)),
    )
    decoder_scale: float = 90.0
    pca_dim: int = 16
    landmark_hidden: tuple[int, ...] = (256, 512)
    lstm_hidden: int = 256
    lstm_layers: int = 3
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):     # YAML gives lists where tuples were saved
            object.__setattr__(self, field.name, _as_tuples(getattr(self, field.name)))
        if self.conv_kernel % 2 == 0:
            raise InputError(f"EVP model setting conv_kernel={self.conv_kernel} must be odd")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"EVP model setting dropout={self.dropout} must be in [0, 1)")
        self.encoder_output(self.content_stages)
        self.encoder_output(self.emotion_stages)
        if self.decoder_layers[-1][0] != 1 or self.decoder_output() != (self.mfcc_steps, self.mfcc_coeffs):
            raise InputError(
                f"EVP model setting decoder_layers gives {self.decoder_layers[-1][0]} channel(s) of "
                f"{self.decoder_output()}, not 1 channel of {(self.mfcc_steps, self.mfcc_coeffs)}")

    def encoder_output(self, stages: Sequence[ConvStage]) -> tuple[int, int, int]:
        """(channels, time, cepstra) after an encoder's conv stages (12 × 2 × 512 for content)."""
        channels, size = 1, (self.mfcc_steps, self.mfcc_coeffs)
        for convs, kernel, stride in stages:
            channels = convs[-1] if convs else channels
            size = tuple((n - k) // s + 1 for n, k, s in zip(size, kernel, stride))
            if min(size) < 1:
                raise InputError(f"EVP model conv stages {tuple(stages)} pool a "
                                 f"{self.mfcc_steps}x{self.mfcc_coeffs} window down to nothing")
        return channels, size[0], size[1]

    def encoder_features(self, stages: Sequence[ConvStage]) -> int:
        """Length of an encoder's flattened conv output (12 288 content, 3 072 emotion)."""
        channels, steps, coeffs = self.encoder_output(stages)
        return channels * steps * coeffs

    def decoder_output(self) -> tuple[int, int]:
        """(time steps, cepstra) the decoder's layers make from the 1 × 1 codes."""
        size = (1, 1)
        for _, kernel, stride, padding in self.decoder_layers:
            size = tuple((n - 1) * s - 2 * p + k for n, k, s, p in zip(size, kernel, stride, padding))
        return size[0], size[1]


def _as_tuples(value: Any) -> Any:
    """``value`` with every list or tuple, at any depth, made a tuple."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(item) for item in value)
    return value


def _conv_stack(stages: Sequence[ConvStage], kernel: int) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU layers with a max-pool after each stage, from 1 channel."""
    layers: list[nn.Module] = []
    channels_in = 1
    for convs, pool_kernel, pool_stride in stages:
        for channels_out in convs:
            layers += [nn.Conv2d(channels_in, channels_out, kernel, padding=kernel // 2, bias=False),
                       nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True)]
            channels_in = channels_out
        layers.append(nn.MaxPool2d(pool_kernel, pool_stride))
    return nn.Sequential(*layers)


def _relu_mlp(widths: Sequence[int]) -> nn.Sequential:
    """Linear layers ``widths[0] → widths[1] → …``, each followed by a ReLU (the last too)."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(width_in, width_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class _MfccEncoder(nn.Module):
    """MFCC windows ``(B, steps, coeffs)`` or ``(B, 1, steps, coeffs)`` → codes ``(B, dim)`` (≥ 0)."""

    def __init__(self, config: EvpModelConfig, stages: Sequence[ConvStage], hidden: int, dim: int) -> None:
        super().__init__()
        self.window = (config.mfcc_steps, config.mfcc_coeffs)
        self.convs = _conv_stack(stages, config.conv_kernel)
        self.fc = _relu_mlp((config.encoder_features(stages), hidden, dim))

    def forward(self, windows: Tensor) -> Tensor:
        if windows.dim() == 3:
            windows = windows.unsqueeze(1)
        if windows.dim() != 4 or windows.shape[1] != 1 or tuple(windows.shape[2:]) != self.window:
            raise ValueError(f"expected MFCC windows of shape (B, {self.window[0]}, {self.window[1]}) "
                             f"or (B, 1, {self.window[0]}, {self.window[1]}), got {tuple(windows.shape)}")
        return self.fc(self.convs(windows).flatten(1))


class ContentEncoder(_MfccEncoder):
    """MFCC windows ``(B, 28, 12)`` (or ``(B, 1, 28, 12)``) → content codes ``(B, 256)``."""

    def __init__(self, config: EvpModelConfig = EvpModelConfig()) -> None:
        super().__init__(config, config.content_stages, config.content_hidden, config.content_dim)


class EmotionEncoder(_MfccEncoder):
    """MFCC windows ``(B, 28, 12)`` (or ``(B, 1, 28, 12)``) → emotion codes ``(B, 128)``."""

    def __init__(self, config: EvpModelConfig = EvpModelConfig()) -> None:
        super().__init__(config, config.emotion_stages, config.emotion_hidden, config.emotion_dim)


class EmotionClassifier(nn.Module):
    """Emotion codes ``(B, 128)`` → logits ``(B, 8)`` over :data:`emoportrait.emotions.EMOTIONS`."""

    def __init__(self, config: EvpModelConfig = EvpModelConfig()) -> None:
        super().__init__()
        self.fc = nn.Linear(config.emotion_dim, config.n_emotions)

    def forward(self, codes: Tensor) -> Tensor:
        return self.fc(codes)


class MfccDecoder(nn.Module):
    """Content ``(B, 256)`` + emotion ``(B, 128)`` codes → MFCC windows ``(B, 28, 12)`` in (−90, 90)."""

    def __init__(self, config: EvpModelConfig = EvpModelConfig()) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels_in = config.content_dim + config.emotion_dim
        for channels_out, kernel, stride, padding in config.decoder_layers:
            layers += [nn.ConvTranspose2d(channels_in, channels_out, kernel, stride, padding),
                       nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True)]
            channels_in = channels_out
        self.deconvs = nn.Sequential(*layers[:-2], nn.Tanh())    # no BatchNorm + ReLU on the output
        self.scale = config.decoder_scale

    def forward(self, content: Tensor, emotion: Tensor) -> Tensor:
        codes = torch.cat([content, emotion], dim=1)[:, :, None, None]
        return self.scale * self.deconvs(codes).squeeze(1)


class Disentangler(nn.Module):
    """EVP's cross-reconstructed emotion disentanglement: the two encoders, classifier and decoder."""

    def __init__(self, config: EvpModelConfig = EvpModelConfig()) -> None:
        super().__init__()
        self.content_encoder = ContentEncoder(config)
        self.emotion_encoder = EmotionEncoder(config)
        self.classifier = EmotionClassifier(config)
        self.decoder = MfccDecoder(config)

    def encode(self, windows: Tensor) -> tuple[Tensor, Tensor]:
        """MFCC windows ``(B, 28, 12)`` → (content ``(B, 256)``, emotion ``(B, 128)``) codes."""
        return self.content_encoder(windows), self.emotion_encoder(windows)

    def decode(self, content: Tensor, emotion: Tensor) -> Tensor:
        """Content ``(B, 256)`` + emotion ``(B, 128)`` codes → MFCC windows ``(B, 28, 12)``."""
        return self.decoder(content, emotion)


class Audio2Landmark(nn.Module):
    """Example landmarks + per-frame audio codes → per-frame landmark displacements (PCA coefficients).

    The LSTM runs forward in time only, so frames padded at the end of a shorter clip
    do not change the outputs of its real frames (mask them out of the loss).
    """

    def __init__(self, config: EvpModelConfig = EvpModelConfig()) -> None:
        super().__init__()
        self.landmark_encoder = _relu_mlp((config.pca_dim, *config.landmark_hidden))
        features = config.landmark_hidden[-1] + config.content_dim + config.emotion_dim
        self.lstm = nn.LSTM(features, config.lstm_hidden, config.lstm_layers,
                            batch_first=True, dropout=config.dropout)
        self.head = nn.Linear(config.lstm_hidden, config.pca_dim)

    def forward(self, example: Tensor, content: Tensor, emotion: Tensor) -> Tensor:
        """Displacements ``(B, T, 16)`` of the PCA coefficients from ``example``.

        Args:
            example: ``(B, 16)`` PCA coefficients of the subject's example (identity) landmarks.
            content: ``(B, T, 256)`` content codes, one per video frame.
            emotion: ``(B, T, 128)`` emotion codes, or ``(B, 128)`` for one emotion over all frames.

        Returns:
            ``(B, T, 16)``; the predicted landmarks' coefficients are ``example[:, None] + output``.
        """
        steps = content.shape[1]
        if emotion.dim() == 2:
            emotion = emotion[:, None].expand(-1, steps, -1)
        identity = self.landmark_encoder(example)[:, None].expand(-1, steps, -1)
        hidden, _ = self.lstm(torch.cat([identity, content, emotion], dim=-1))
        return self.head(hidden)


class SubjectBuffers(nn.Module):
    """A subject's landmark PCA and the emotion-code centroids, saved with the audio2lm weights.

    Buffers: ``mean (D,)``, ``components (16, D)``, ``example_code (16,)``,
    ``identity (478, 3)`` (canonical units), ``centroids (8, 128)`` (mean emotion code
    of each MEAD emotion over the training windows, in :data:`EMOTIONS` order) and
    ``centroid_counts (8,)`` (windows behind each; 0 = that emotion was never seen).
    """

    def __init__(self, model: EvpModelConfig, points: int = 478) -> None:
        super().__init__()
        dims = points * 2
        self.register_buffer("mean", torch.zeros(dims))
        self.register_buffer("components", torch.zeros(model.pca_dim, dims))
        self.register_buffer("example_code", torch.zeros(model.pca_dim))
        self.register_buffer("identity", torch.zeros(points, 3))
        self.register_buffer("centroids", torch.zeros(model.n_emotions, model.emotion_dim))
        self.register_buffer("centroid_counts", torch.zeros(model.n_emotions))

    def fill(self, subject: SubjectModel, centroids: Tensor, counts: Tensor) -> None:
        """Copy in a subject model (from the cache) and the centroids."""
        for name in ("mean", "components", "example_code", "identity"):
            getattr(self, name).copy_(torch.as_tensor(getattr(subject, name)))
        self.centroids.copy_(centroids)
        self.centroid_counts.copy_(counts)
