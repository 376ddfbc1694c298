"""EVP's training losses: cross-reconstructed disentanglement and audio-to-landmark.

MFCC windows are ``(…, 28, 12)`` in MFCC units (see :mod:`emoportrait.evp.models`);
reconstruction errors are mean absolute errors in those units. Landmarks are PCA
coefficients ``(…, 16)``.

The disentanglement batch (:func:`disentanglement_losses`) is a grid of clips:
sentences × emotions. ``a`` and ``b`` are one sentence in two emotions, ``c`` and ``d``
(optional) another sentence in the same two emotions::

                emotion_a   emotion_b
    sentence 1      a           b        (b DTW-aligned to a's frames)
    sentence 2      c           d        (d DTW-aligned to c's frames)

Reconstruction rule: the content code of a clip plus the emotion code of a clip
(itself or another) must decode to the clip with the first clip's sentence and the
second clip's emotion, on the first clip's timeline. That target exists for every
pair because the clips of one sentence are aligned. The pair (itself, itself) is self
reconstruction; every other pair is cross reconstruction (two pairs with ``a, b``
only, twelve with all four clips). The paper's two cross-reconstruction terms,
``D(E_c(a), E_e(d)) ≈ b`` and ``D(E_c(d), E_e(a)) ≈ c``, are among them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .models import Disentangler

Decode = Callable[[Tensor, Tensor], Tensor]
"""Content codes ``(N, Dc)`` + emotion codes ``(N, De)`` → MFCC windows ``(N, 28, 12)``."""

Swap = tuple[int, int, int]
"""(clip giving the content code, clip giving the emotion code, target clip), as clip indices."""

_ERRORS: dict[str, Callable[[Tensor], Tensor]] = {"mse": torch.square, "l1": torch.abs}


def cross_reconstruction_loss(decode: Decode, contents: Tensor, emotions: Tensor, clips: Tensor,
                              swaps: Sequence[Swap]) -> Tensor:
    """Mean absolute error of decoding swapped codes against explicit target clips.

    Every swap ``(i, j, k)`` decodes the content codes of clip ``i`` with the emotion
    codes of clip ``j`` and compares the result with clip ``k``; all swaps are decoded
    in one batch and weigh alike.

    Args:
        decode: The decoder (:meth:`Disentangler.decode`).
        contents: ``(N, B, Dc)`` content codes of N clips of B windows each.
        emotions: ``(N, B, De)`` emotion codes of the same clips.
        clips: ``(N, B, 28, 12)`` the clips' MFCC windows (the targets).
        swaps: K triples of clip indices in ``range(N)``.

    Returns:
        Scalar: mean |decoded − target| over the K · B windows, in MFCC units.
    """
    index = torch.as_tensor(swaps, dtype=torch.long, device=clips.device)
    decoded = decode(contents[index[:, 0]].flatten(0, 1), emotions[index[:, 1]].flatten(0, 1))
    return F.l1_loss(decoded, clips[index[:, 2]].flatten(0, 1))


def self_reconstruction_loss(decode: Decode, contents: Tensor, emotions: Tensor, clips: Tensor) -> Tensor:
    """Mean absolute error of decoding each clip's own codes against the clip.

    Shapes as in :func:`cross_reconstruction_loss`; the swaps are ``(n, n, n)``.
    """
    return cross_reconstruction_loss(decode, contents, emotions, clips, [(n, n, n) for n in range(len(clips))])


def classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of emotion logits ``(B, 8)`` against int64 labels ``(B,)``; scalar (nats)."""
    return F.cross_entropy(logits, labels)


def content_loss(content_a: Tensor, content_b: Tensor) -> Tensor:
    """Mean absolute difference of the content codes ``(…, Dc)`` of same-sentence clips; scalar."""
    return F.l1_loss(content_a, content_b)


def _grid_triplet(codes: Tensor, positive_axis: int, margin: float) -> Tensor:
    """Triplet margin loss on a code grid ``(S, E, B, D)``: positive along one axis, negative along the other."""
    def neighbour(axis: int) -> Tensor:
        return codes.roll(1, dims=axis).flatten(0, 2)
    return F.triplet_margin_loss(codes.flatten(0, 2), neighbour(positive_axis), neighbour(1 - positive_axis),
                                 margin=margin)


def triplet_losses(contents: Tensor, emotions: Tensor, margin: float) -> tuple[Tensor, Tensor]:
    """Triplet margin losses (Euclidean) on the content and emotion codes of a clip grid.

    For each clip: the content code's positive is the same sentence in the other
    emotion and its negative the other sentence in the same emotion; the emotion
    code's positive is the same emotion in the other sentence and its negative the
    other emotion in the same sentence.

    Args:
        contents: ``(S, E, B, Dc)`` content codes of S ≥ 2 sentences × E ≥ 2 emotions.
        emotions: ``(S, E, B, De)`` emotion codes of the same clips.
        margin: Margin of the triplet loss, in code units.

    Returns:
        (content triplet loss, emotion triplet loss), scalars.
    """
    if min(contents.shape[:2]) < 2:
        raise ValueError(f"triplet losses need at least 2 sentences × 2 emotions, got {tuple(contents.shape[:2])}")
    return _grid_triplet(contents, 1, margin), _grid_triplet(emotions, 0, margin)


def _masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``values`` ``(B, T, D)`` over the frames where ``valid`` ``(B, T)`` is true (0 if none)."""
    weights = valid.unsqueeze(-1).to(values.dtype)
    return (values * weights).sum() / (weights.sum() * values.shape[-1]).clamp_min(1.0)


def landmark_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None, smooth_weight: float = 0.0,
                  norm: Literal["mse", "l1"] = "mse") -> Tensor:
    """Per-frame error of predicted landmark PCA coefficients plus a velocity-matching term.

    ``loss = mean_frames err(pred − target) + smooth_weight · mean_pairs err(Δpred − Δtarget)``
    where ``err`` is the square (``"mse"``, EVP) or absolute value (``"l1"``) per
    coefficient and ``Δ`` the difference between consecutive frames; a pair counts when
    both its frames are valid. Displacements and absolute coefficients give the same
    loss (the example landmarks cancel). EVP also adds 10 × the MSE of the landmarks
    reconstructed through the PCA basis; with an orthonormal basis that is a constant
    multiple (16/212 for 106 points) of the PCA MSE, so it only rescales this loss.

    Args:
        pred: ``(B, T, 16)`` predicted PCA coefficients.
        target: ``(B, T, 16)`` true PCA coefficients.
        mask: ``(B, T)`` bool, true for real (unpadded) frames; None: all frames.
        smooth_weight: Weight of the velocity term (0: off).
        norm: ``"mse"`` or ``"l1"``.

    Returns:
        Scalar, in squared (mse) or plain (l1) PCA-coefficient units.
    """
    if norm not in _ERRORS:
        raise ValueError(f"landmark loss norm must be one of {', '.join(_ERRORS)}, not {norm!r}")
    error = _ERRORS[norm]
    valid = torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device) if mask is None else mask.bool()
    difference = pred - target
    loss = _masked_mean(error(difference), valid)
    if smooth_weight:
        velocity_error = torch.diff(difference, dim=1)      # Δpred − Δtarget
        loss = loss + smooth_weight * _masked_mean(error(velocity_error), valid[:, 1:] & valid[:, :-1])
    return loss


@dataclass(frozen=True)
class LossWeights:
    """Weights of the disentanglement terms in the total loss.

    The defaults are EVP's training weights, reconstruction : classification : content
    = 4 : 2 : 1 (each group here is one mean, over its clips or swaps). EVP's triplet
    losses are off by default (``use_triplet``) and, when on, weigh 10 with margin 1:
    set ``triplet`` (e.g. to 10) to turn them on.

    Attributes:
        self_rec: Self reconstruction (L1, MFCC units).
        cross_rec: Cross reconstruction (L1, MFCC units).
        classification: Emotion cross-entropy of every clip's emotion code.
        content: L1 between the content codes of same-sentence clips.
        triplet: Content and emotion triplet losses (0: not computed); needs clips c, d.
        margin: Triplet margin, in code units.
    """

    self_rec: float = 4.0
    cross_rec: float = 4.0
    classification: float = 2.0
    content: float = 1.0
    triplet: float = 0.0
    margin: float = 1.0


def grid_swaps(sentences: int, emotions: int) -> list[Swap]:
    """Cross-reconstruction swaps of a ``sentences × emotions`` clip grid.

    Clip ``(s, m)`` has index ``s · emotions + m``. Content of ``(s, m)`` + emotion of
    ``(t, n)`` ≠ ``(s, m)`` targets ``(s, n)``: ``[(0, 1, 1), (1, 0, 0)]`` for 1 × 2.
    """
    cells = list(itertools.product(range(sentences), range(emotions)))
    return [(s * emotions + m, t * emotions + n, s * emotions + n)
            for (s, m), (t, n) in itertools.product(cells, cells) if (s, m) != (t, n)]


def _clip_grid(batch: dict[str, Tensor]) -> Tensor:
    """The batch's clips as a grid ``(S, 2, B, 28, 12)``: S = 1 (a, b) or 2 (a, b; c, d)."""
    if ("c" in batch) != ("d" in batch):
        raise KeyError("a disentanglement batch needs both clips 'c' and 'd', or neither")
    rows = [("a", "b"), ("c", "d")] if "c" in batch else [("a", "b")]
    shapes = {tuple(batch[key].shape) for row in rows for key in row}
    if len(shapes) != 1:
        raise ValueError(f"the clips of a disentanglement batch differ in shape: {sorted(shapes)}")
    return torch.stack([torch.stack([batch[key] for key in row]) for row in rows])


def disentanglement_losses(model: Disentangler, batch: dict[str, Tensor],
                           weights: LossWeights = LossWeights()) -> dict[str, Tensor]:
    """Every disentanglement loss term of one batch, and their weighted sum.

    The batch (the contract with the data preparation)::

        "a"          (B, 28, 12) float  sentence 1, emotion_a
        "b"          (B, 28, 12) float  sentence 1, emotion_b, DTW-aligned to a's frames
        "c"          (B, 28, 12) float  optional: sentence 2 (≠ 1), emotion_a
        "d"          (B, 28, 12) float  optional (with c): sentence 2, emotion_b, aligned to c
        "emotion_a"  (B,) int64         index into EMOTIONS of a (and c)
        "emotion_b"  (B,) int64         index into EMOTIONS of b (and d); ≠ emotion_a

    All clips are encoded in one batch (one set of BatchNorm statistics). Terms:

    - ``self_rec``: ``D(E_c(x), E_e(x)) ≈ x`` for every clip x;
    - ``cross_rec``: the swaps of :func:`grid_swaps` (module docstring): with a, b
      only, ``D(E_c(a), E_e(b)) ≈ b`` and ``D(E_c(b), E_e(a)) ≈ a``; with c, d also
      the same for (c, d), the same-emotion swaps (e.g. ``D(E_c(c), E_e(a)) ≈ c``) and
      the paper's four-clip swaps (``D(E_c(a), E_e(d)) ≈ b``, ``D(E_c(d), E_e(a)) ≈ c``, …);
    - ``classification``: cross-entropy of the classifier on every clip's emotion code;
    - ``content``: L1 between the content codes of a and b (and of c and d);
    - ``triplet_content``, ``triplet_emotion``: only when ``weights.triplet > 0`` and
      c, d are given (:func:`triplet_losses`);
    - ``loss``: the weighted sum.

    Returns:
        Scalar tensors by name.
    """
    clips = _clip_grid(batch)
    sentences, emotions, size = clips.shape[:3]
    content, emotion = model.encode(clips.flatten(0, 2))
    contents, emotion_codes = content.view(sentences, emotions, size, -1), emotion.view(sentences, emotions, size, -1)
    flat = (contents.flatten(0, 1), emotion_codes.flatten(0, 1), clips.flatten(0, 1))
    labels = torch.stack([batch["emotion_a"], batch["emotion_b"]]).expand(sentences, -1, -1)
    terms = {
        "self_rec": self_reconstruction_loss(model.decode, *flat),
        "cross_rec": cross_reconstruction_loss(model.decode, *flat, grid_swaps(sentences, emotions)),
        "classification": classification_loss(model.classifier(emotion), labels.flatten()),
        "content": content_loss(contents[:, 0], contents[:, 1]),
    }
    term_weights = {name: getattr(weights, name) for name in terms}
    if weights.triplet > 0 and sentences > 1:
        terms["triplet_content"], terms["triplet_emotion"] = triplet_losses(contents, emotion_codes, weights.margin)
        term_weights.update(triplet_content=weights.triplet, triplet_emotion=weights.triplet)
    terms["loss"] = sum(term_weights[name] * value for name, value in terms.items())
    return terms
