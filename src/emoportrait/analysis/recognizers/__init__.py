"""Facial-expression (FER) and micro-expression (MER) recognizers.

Every recognizer takes aligned face crops (:mod:`emoportrait.analysis.crops`) and
returns probabilities over its own label set (:mod:`emoportrait.analysis.labels`).
Frame recognizers score each frame; clip recognizers score a whole clip.
"""

from .base import ClipRecognizer, FrameRecognizer, RecognizerInfo

__all__ = ["ClipRecognizer", "FrameRecognizer", "RecognizerInfo"]
