"""EVP's four training stages, each a :class:`~.engine.Stage` of the one engine.

=============  ===============================================  ==============================
stage          trains                                           from
=============  ===============================================  ==============================
content        content encoder: same sentence → same code       aligned pairs (PairDataset)
emotion        emotion encoder + classifier: emotion labels     windows (WindowDataset)
disentangle    all four: self/cross reconstruction, classes,    aligned pairs; ``--init`` the
               content loss                                     content and emotion runs
audio2lm       audio-to-landmark LSTM of one subject            runs of frames; ``--init`` the
               (encoders frozen)                                disentangle run
=============  ===============================================  ==============================

Saved module names are shared between stages (``content_encoder``,
``emotion_encoder``, ``classifier``, ``disentangler``, ``audio2lm``, ``subject``)
so a later stage loads what an earlier one trained. EVP pretrains the content
encoder on LRW (lip reading), which is not available here: the content stage
uses a triplet loss on same-sentence pairs instead (the aligned window of the
other emotion is the positive, another sentence in the batch the negative); the
disentangle stage then refines both encoders.

An audio2lm run holds everything the learned driver needs: the frozen encoders,
the LSTM, the subject's landmark PCA, and per-emotion centroids of the emotion
code over the training windows (for ``--emotion LABEL`` at inference).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..config import check_learning_rate
from ..emotions import EMOTIONS
from ..errors import InputError
from ..evp.cache import FeatureCache
from ..evp.datasets import PairDataset, WindowDataset, subject_sequences
from ..evp.losses import LossWeights, classification_loss, content_loss, disentanglement_losses, landmark_loss
from ..evp.models import (Audio2Landmark, ContentEncoder, Disentangler, EmotionClassifier, EmotionEncoder,
                          EvpModelConfig, SubjectBuffers)
from ..runs import checkpoint_dir, load_weights, read_run_config
from .engine import EngineConfig, FitResult, Monitor, Stage, StepContext, fit

logger = logging.getLogger(__name__)

STAGES = ("content", "emotion", "disentangle", "audio2lm")


@dataclass(frozen=True)
class StageConfig:
    """Settings of one EVP training stage (saved as ``config.yaml`` with its weights).

    Attributes:
        stage: which stage (one of :data:`STAGES`).
        model: the networks' sizes (EVP's values).
        lr: Adam learning rate; EVP uses 2e-4 with betas (0.5, 0.999).
        betas: Adam betas.
        margin: triplet margin of the content stage (canonical code units).
        weights: loss weights of the disentangle stage.
        subject: the subject an audio2lm run is for.
        sequence_frames: frames per audio2lm training run (2 s at 25 fps).
        smooth_weight: weight of the audio2lm velocity term (measured: see the docs).
        source: where the weights came from when they were imported, not trained
            (``emoportrait import-weights evp``); empty for trained runs.
    """

    stage: str
    model: EvpModelConfig = field(default_factory=EvpModelConfig)
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    margin: float = 1.0
    weights: LossWeights = field(default_factory=LossWeights)
    subject: str = ""
    sequence_frames: int = 50
    smooth_weight: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        check_learning_rate(self.lr, f"{self.stage} stage")


def _scalars(values: dict[str, Tensor]) -> dict[str, float]:
    return {name: value.item() for name, value in values.items()}


def _adam(config: StageConfig, *modules: nn.Module) -> torch.optim.Optimizer:
    parameters = [p for module in modules for p in module.parameters() if p.requires_grad]
    return torch.optim.Adam(parameters, lr=config.lr, betas=config.betas)


class ContentStage(Stage):
    """Content-encoder pretraining: aligned same-sentence windows get the same code."""

    name = "content"
    monitor = Monitor("val_loss")

    def __init__(self, config: StageConfig) -> None:
        self.settings = config
        self.encoder = ContentEncoder(config.model)

    def modules(self) -> dict[str, nn.Module]:
        return {"content_encoder": self.encoder}

    def configure_optimizers(self):
        return {"adam": _adam(self.settings, self.encoder)}, {}

    def _losses(self, codes: Tensor) -> dict[str, Tensor]:
        code_a, code_b = codes.chunk(2)
        negative = code_a.roll(1, dims=0)  # another item of the batch: mostly another sentence
        triplet = F.triplet_margin_loss(code_a, code_b, negative, margin=self.settings.margin)
        same = content_loss(code_a, code_b)
        return {"loss": triplet + same, "content": same, "triplet": triplet}

    def training_step(self, batch: dict[str, Tensor], context: StepContext) -> dict[str, float]:
        with context.autocast():
            losses = self._losses(context.forward("content_encoder", torch.cat([batch["a"], batch["b"]])))
        context.backward(losses["loss"], "adam")
        return _scalars(losses)

    def validation_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        losses = self._losses(self.encoder(torch.cat([batch["a"], batch["b"]])))
        return _scalars(losses)

    def config(self) -> StageConfig:
        return self.settings


class _EmotionNetworks(nn.Module):
    def __init__(self, model: EvpModelConfig) -> None:
        super().__init__()
        self.emotion_encoder = EmotionEncoder(model)
        self.classifier = EmotionClassifier(model)

    def forward(self, windows: Tensor) -> Tensor:
        return self.classifier(self.emotion_encoder(windows))


class EmotionStage(Stage):
    """Emotion-encoder pretraining: classify each window's emotion."""

    name = "emotion"
    monitor = Monitor("val_accuracy", "max")

    def __init__(self, config: StageConfig) -> None:
        self.settings = config
        self.networks = _EmotionNetworks(config.model)

    def modules(self) -> dict[str, nn.Module]:
        return {"emotion_encoder": self.networks.emotion_encoder, "classifier": self.networks.classifier}

    def configure_optimizers(self):
        return {"adam": _adam(self.settings, self.networks)}, {}

    @staticmethod
    def _scores(logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        loss = classification_loss(logits, labels)
        return {"loss": loss, "accuracy": (logits.argmax(1) == labels).float().mean()}

    def training_step(self, batch: dict[str, Tensor], context: StepContext) -> dict[str, float]:
        with context.autocast():
            codes = context.forward("emotion_encoder", batch["x"])
            scores = self._scores(context.forward("classifier", codes), batch["emotion"])
        context.backward(scores["loss"], "adam")
        return _scalars(scores)

    def validation_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        scores = self._scores(self.networks(batch["x"]), batch["emotion"])
        return _scalars(scores)

    def config(self) -> StageConfig:
        return self.settings


class TrainableDisentangler(Disentangler):
    """The disentangler with its losses as a method, so one DDP call computes them all."""

    def losses(self, batch: dict[str, Tensor], weights: LossWeights) -> dict[str, Tensor]:
        return disentanglement_losses(self, batch, weights)


class DisentangleStage(Stage):
    """Cross-reconstructed emotion disentanglement (all four networks)."""

    name = "disentangle"
    monitor = Monitor("val_loss")

    def __init__(self, config: StageConfig, content_run: Path | None = None, emotion_run: Path | None = None) -> None:
        self.settings = config
        self.model = TrainableDisentangler(config.model)
        if content_run is not None:
            load_weights(checkpoint_dir(content_run), {"content_encoder": self.model.content_encoder})
        if emotion_run is not None:
            load_weights(checkpoint_dir(emotion_run), {"emotion_encoder": self.model.emotion_encoder,
                                                       "classifier": self.model.classifier})

    def modules(self) -> dict[str, nn.Module]:
        return {"disentangler": self.model}

    def configure_optimizers(self):
        return {"adam": _adam(self.settings, self.model)}, {}

    def training_step(self, batch: dict[str, Tensor], context: StepContext) -> dict[str, float]:
        with context.autocast():
            losses = context.call("disentangler", "losses", batch, self.settings.weights)
        context.backward(losses["loss"], "adam")
        return _scalars(losses)

    def validation_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        return _scalars(self.model.losses(batch, self.settings.weights))

    def config(self) -> StageConfig:
        return self.settings


@torch.no_grad()
def emotion_centroids(encoder: EmotionEncoder, windows: WindowDataset, batch: int = 512) -> tuple[Tensor, Tensor]:
    """Mean emotion code per MEAD emotion: ``((8, 128) centroids, (8,) window counts)``."""
    encoder.eval()
    sums = torch.zeros(len(EMOTIONS), encoder_dim(encoder))
    counts = torch.zeros(len(EMOTIONS))
    loader = torch.utils.data.DataLoader(windows, batch_size=batch)
    for item in loader:
        codes = encoder(item["x"])
        sums.index_add_(0, item["emotion"], codes)
        counts += torch.bincount(item["emotion"], minlength=len(EMOTIONS))
    return sums / counts.clamp(min=1)[:, None], counts


def encoder_dim(encoder: nn.Module) -> int:
    """Size of an encoder's code (its last linear layer's outputs)."""
    return [m for m in encoder.modules() if isinstance(m, nn.Linear)][-1].out_features


class Audio2LandmarkStage(Stage):
    """Audio-to-landmark of one subject over its landmark PCA, encoders frozen."""

    name = "audio2lm"
    monitor = Monitor("val_loss")

    def __init__(self, config: StageConfig, cache: FeatureCache, disentangle_run: Path) -> None:
        if not config.subject:
            raise InputError("audio2lm trains one subject: give --subject (e.g. M003)")
        self.settings = config
        subject = cache.subject(config.subject)
        if not subject.has_neutral:
            raise InputError(f"subject '{config.subject}' has no neutral clips in '{cache.root}'; audio2lm needs "
                             "them for the identity face: add the subject's neutral clips and prepare again")
        self.encoders = Disentangler(config.model)
        load_weights(checkpoint_dir(disentangle_run), {"disentangler": self.encoders})
        self.encoders.requires_grad_(False)
        self.network = Audio2Landmark(config.model)
        self.subject = SubjectBuffers(config.model)
        self.subject.fill(subject, *emotion_centroids(self.encoders.emotion_encoder, WindowDataset(cache, "train")))

    def modules(self) -> dict[str, nn.Module]:
        return {"audio2lm": self.network, "disentangler": self.encoders, "subject": self.subject}

    def configure_optimizers(self):
        return {"adam": _adam(self.settings, self.network)}, {}

    def _codes(self, windows: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, L, 28, 12)`` → content ``(B, L, 256)`` and emotion ``(B, L, 128)`` codes (frozen)."""
        self.encoders.eval()
        with torch.no_grad():
            content, emotion = self.encoders.encode(windows.flatten(0, 1))
        return content.unflatten(0, windows.shape[:2]), emotion.unflatten(0, windows.shape[:2])

    def _loss(self, prediction: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        loss = landmark_loss(prediction, batch["target"], batch["mask"], self.settings.smooth_weight)
        error = landmark_loss(prediction, batch["target"], batch["mask"])
        return {"loss": loss, "mse": error}

    def training_step(self, batch: dict[str, Tensor], context: StepContext) -> dict[str, float]:
        content, emotion = self._codes(batch["x"])
        example = self.subject.example_code.expand(len(content), -1)
        with context.autocast():
            losses = self._loss(context.forward("audio2lm", example, content, emotion), batch)
        context.backward(losses["loss"], "adam")
        return _scalars(losses)

    def validation_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        content, emotion = self._codes(batch["x"])
        example = self.subject.example_code.expand(len(content), -1)
        return _scalars(self._loss(self.network(example, content, emotion), batch))

    def config(self) -> StageConfig:
        return self.settings


def train_stage(stage_name: str, cache_dir: Path, out: Path, engine: EngineConfig, settings: dict[str, Any],
                init: list[Path] = ()) -> FitResult:
    """Train one EVP stage on a prepared cache (the ``emoportrait train STAGE`` command).

    Args:
        stage_name: one of :data:`STAGES`.
        settings: overrides of :class:`StageConfig` (e.g. ``lr``, ``subject``).
        init: earlier runs to start from: none for content/emotion; the content and
            emotion runs (either may be omitted) for disentangle; the disentangle run
            for audio2lm.
    """
    if stage_name not in STAGES:
        raise InputError(f"unknown stage '{stage_name}'; choose from {', '.join(STAGES)}")
    cache = FeatureCache(cache_dir)
    config = StageConfig(stage=stage_name, **settings)
    val_split = "val" if cache.speech("val") else "train"
    torch.manual_seed(engine.seed)  # the stage's initial weights: same seed, same run
    if init and stage_name in ("content", "emotion"):
        raise InputError(f"{stage_name} is pretrained from scratch; --init is for disentangle "
                         "(runs/content,runs/emotion) and audio2lm (runs/dis)")
    if stage_name == "content":
        stage, train, val = ContentStage(config), PairDataset(cache, "train"), PairDataset(cache, val_split)
    elif stage_name == "emotion":
        stage, train, val = EmotionStage(config), WindowDataset(cache, "train"), WindowDataset(cache, val_split)
    elif stage_name == "disentangle":
        runs: dict[str, Path] = {}
        for run in init:
            kind = read_stage(run)
            if kind not in ("content", "emotion") or kind in runs:
                raise InputError(f"'{run}' is a{' second' if kind in runs else 'n'} {kind} run; disentangle "
                                 "starts from one content and one emotion run: give --init runs/content,runs/emotion")
            runs[kind] = Path(run)
        missing = [name for name in ("content", "emotion") if name not in runs]
        if missing:
            logger.warning("disentangle starts its %s encoder(s) from scratch; EVP starts from the pretrained "
                           "ones: give --init runs/content,runs/emotion (emoportrait train content / "
                           "train emotion)", " and ".join(missing))
        stage = DisentangleStage(config, runs.get("content"), runs.get("emotion"))
        train, val = PairDataset(cache, "train", four_clips=True), PairDataset(cache, val_split, four_clips=True)
    else:
        if len(init) != 1 or read_stage(init[0]) != "disentangle":
            raise InputError("audio2lm starts from a disentangle run: give --init runs/dis")
        stage = Audio2LandmarkStage(config, cache, init[0])
        train, val = subject_sequences(cache, val_split, config.subject, config.sequence_frames)
    if len(train) == 0:
        raise InputError(f"no {stage_name} training data in '{cache_dir}': "
                         + ("no same-sentence pairs (each sentence needs two emotions)"
                            if stage_name in ("content", "disentangle") else "no prepared clips"))
    return fit(stage, train, val, out, engine)


def read_stage(run: str | Path) -> str:
    """The stage name of a run (from its checkpoint's config.yaml)."""
    values = read_run_config(checkpoint_dir(run))
    stage = values.get("stage")
    if stage not in STAGES:
        raise InputError(f"'{run}' is not an EVP training run (stage {stage!r}); "
                         f"expected one of {', '.join(STAGES)}")
    return stage
