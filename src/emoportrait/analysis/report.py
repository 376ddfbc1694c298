"""Summaries, plots and the HTML/JSON/CSV report of an analysis run.

``write_report(results, recognizers, folder)`` writes into ``folder``:

- ``index.html``: accuracy and per-emotion recall per recognizer, the confusion
  matrices, examples of the commonest confusions, per-video tables and metrics;
- ``confusion_<recognizer>.png`` / ``.csv``: row-normalised confusion matrices
  (rows: true MEAD emotion, columns: the recognizer's classes);
- ``confusions_<recognizer>.png``: face crops of the commonest confusions;
- ``curve_<video>.png``: per-frame emotion probabilities of each frame recognizer;
- ``predictions.csv``: one row per video and recognizer;
- ``results.json``: every number above.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..emotions import EMOTIONS  # noqa: E402
from .labels import target_class, unreachable  # noqa: E402
from .metrics import UNAVAILABLE  # noqa: E402
from .recognizers import RecognizerInfo  # noqa: E402
from .run import VideoResult  # noqa: E402

MAX_EXAMPLES = 4
"""Example crops shown per confusion."""


@dataclass
class RecognizerSummary:
    """How one recognizer did over the labelled videos.

    Attributes:
        confusion: ``(8, C)`` counts; rows are MEAD emotions, columns the recognizer's classes.
        accuracy: share of labelled videos predicted correctly (NaN with none).
        accuracy_reachable: the same over videos whose emotion the recognizer can output.
        recall: per MEAD emotion, the share predicted correctly; None when no video has
            it or the recognizer cannot output it (see ``unreachable``).
    """

    info: RecognizerInfo
    confusion: np.ndarray
    accuracy: float
    accuracy_reachable: float
    recall: dict[str, float | None]
    unreachable: list[str]
    videos: int


def _correct(info: RecognizerInfo, truth: str, label: str) -> bool:
    return target_class(info.label_set, truth) == label


def summarize(results: Sequence[VideoResult], info: RecognizerInfo) -> RecognizerSummary:
    """Confusion matrix, accuracy and recall of one recognizer over ``results``."""
    scored = [r for r in results if r.truth and info.name in r.predictions]
    confusion = np.zeros((len(EMOTIONS), len(info.labels)), np.int64)
    for result in scored:
        confusion[EMOTIONS.index(result.truth), info.labels.index(result.predictions[info.name].label)] += 1
    blind = unreachable(info.label_set)
    hits = [_correct(info, r.truth, r.predictions[info.name].label) for r in scored]
    reachable_hits = [hit for hit, r in zip(hits, scored) if r.truth not in blind]
    recall = {}
    for emotion in EMOTIONS:
        row = [hit for hit, r in zip(hits, scored) if r.truth == emotion]
        recall[emotion] = None if not row or emotion in blind else float(np.mean(row))
    return RecognizerSummary(
        info=info,
        confusion=confusion,
        accuracy=float(np.mean(hits)) if hits else math.nan,
        accuracy_reachable=float(np.mean(reachable_hits)) if reachable_hits else math.nan,
        recall=recall,
        unreachable=blind,
        videos=len(scored),
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _plot_confusion(summary: RecognizerSummary, path: Path) -> None:
    rows = [i for i, emotion in enumerate(EMOTIONS) if summary.confusion[i].sum()]
    counts = summary.confusion[rows]
    normalised = counts / counts.sum(axis=1, keepdims=True)
    figure, axes = plt.subplots(figsize=(1.1 * len(summary.info.labels) + 2, 0.7 * len(rows) + 1.8))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(summary.info.labels)), summary.info.labels, rotation=40, ha="right")
    axes.set_yticks(range(len(rows)), [EMOTIONS[i] for i in rows])
    axes.set_xlabel(f"predicted ({summary.info.label_set})")
    axes.set_ylabel("true emotion (MEAD)")
    for (y, x), value in np.ndenumerate(normalised):
        if counts[y, x]:
            axes.text(x, y, f"{value:.2f}\n({counts[y, x]})", ha="center", va="center", fontsize=7,
                      color="white" if value > 0.6 else "black")
    axes.set_title(f"{summary.info.name}: accuracy {summary.accuracy:.2f} over {summary.videos} videos")
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _write_confusion_csv(summary: RecognizerSummary, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *summary.info.labels, "videos"])
        for emotion, row in zip(EMOTIONS, summary.confusion):
            if row.sum():
                writer.writerow([emotion, *[f"{v / row.sum():.4f}" for v in row], int(row.sum())])


def _plot_confusion_examples(results: Sequence[VideoResult], info: RecognizerInfo, path: Path) -> bool:
    """Crops of the three commonest confusions; False when there is no confusion to show."""
    wrong = [(r.truth, r.predictions[info.name].label, r) for r in results
             if r.truth and info.name in r.predictions and r.example_crop is not None
             and not _correct(info, r.truth, r.predictions[info.name].label)]
    common = Counter((truth, label) for truth, label, _ in wrong).most_common(3)
    if not common:
        return False
    figure, axes = plt.subplots(len(common), MAX_EXAMPLES, figsize=(2 * MAX_EXAMPLES, 2.2 * len(common)),
                                squeeze=False)
    for row, ((truth, label), count) in enumerate(common):
        examples = [r for t, p, r in wrong if (t, p) == (truth, label)][:MAX_EXAMPLES]
        for column in range(MAX_EXAMPLES):
            axis = axes[row, column]
            axis.axis("off")
            if column < len(examples):
                axis.imshow(examples[column].example_crop)
                axis.set_title(examples[column].path.name, fontsize=7)
        axes[row, 0].text(-0.1, 0.5, f"{truth} → {label}\n({count}×)", transform=axes[row, 0].transAxes,
                          ha="right", va="center", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def plot_emotion_curve(result: VideoResult, infos: Sequence[RecognizerInfo], path: Path) -> bool:
    """Per-frame probabilities of each frame recognizer over time; False if there are none."""
    curves = [(info, result.predictions[info.name].frame_probabilities) for info in infos
              if info.name in result.predictions and result.predictions[info.name].frame_probabilities is not None]
    if not curves:
        return False
    figure, axes = plt.subplots(len(curves), 1, figsize=(9, 2.6 * len(curves)), squeeze=False)
    for axis, (info, probabilities) in zip(axes[:, 0], curves):
        seconds = np.arange(len(probabilities)) / result.fps
        for index, label in enumerate(info.labels):
            axis.plot(seconds, probabilities[:, index], label=label, linewidth=1.2)
        axis.set_ylim(0, 1)
        axis.set_ylabel("probability")
        axis.set_title(f"{result.path.name}: {info.name} → {result.predictions[info.name].label}", fontsize=9)
        axis.legend(fontsize=7, ncol=4, loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def _number(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _video_record(result: VideoResult) -> dict:
    record = {
        "video": str(result.path), "truth": result.truth, "frames": result.frames, "fps": result.fps,
        "error": result.error, "sharpness_cpbd": _number(result.sharpness),
        "loudness_following": None if result.loudness is None else {
            "correlation": _number(result.loudness.correlation), "lag_frames": result.loudness.lag_frames},
        "predictions": {name: {"label": p.label, "probabilities": [float(v) for v in p.probabilities]}
                        for name, p in result.predictions.items()},
    }
    if result.comparison is not None:
        record["comparison"] = {k: _number(v) for k, v in vars(result.comparison).items()}
    if result.sync is not None:
        record["syncnet"] = vars(result.sync)
    return record


def _summary_record(summary: RecognizerSummary) -> dict:
    return {
        "name": summary.info.name, "label_set": summary.info.label_set, "labels": list(summary.info.labels),
        "source": summary.info.source, "videos": summary.videos, "accuracy": _number(summary.accuracy),
        "accuracy_reachable": _number(summary.accuracy_reachable), "recall": summary.recall,
        "unreachable": summary.unreachable, "confusion_counts": summary.confusion.tolist(),
    }


def _write_predictions_csv(results: Sequence[VideoResult], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "truth", "recognizer", "predicted", "confidence", "error"])
        for result in results:
            if result.error:
                writer.writerow([result.path, result.truth or "", "", "", "", result.error])
            for name, prediction in result.predictions.items():
                writer.writerow([result.path, result.truth or "", name, prediction.label,
                                 f"{prediction.probabilities.max():.4f}", ""])


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _html(results: Sequence[VideoResult], summaries: Sequence[RecognizerSummary], images: dict[str, list[str]],
          notes: Sequence[str], dataset_metrics: dict[str, float]) -> str:
    parts = ["<!doctype html><meta charset='utf-8'><title>emoportrait analysis</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;"
             "margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px}img{max-width:100%}</style>",
             f"<h1>emoportrait analysis: {len(results)} video(s)</h1>"]
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    for summary in summaries:
        info = summary.info
        parts.append(f"<h2>{html.escape(info.name)}</h2><p>label set {info.label_set}; weights: "
                     f"{html.escape(info.source)}; {summary.videos} labelled video(s); accuracy "
                     f"{_fmt(summary.accuracy)}, over emotions it can output {_fmt(summary.accuracy_reachable)}.</p>")
        if summary.unreachable:
            parts.append(f"<p>Cannot output: {', '.join(summary.unreachable)} "
                         "(videos of these emotions always count as wrong).</p>")
        parts.append(_table(["emotion", "recall"], [(e, _fmt(r)) for e, r in summary.recall.items()
                                                     if summary.confusion[EMOTIONS.index(e)].sum()]))
        parts += [f"<img src='{name}'>" for name in images.get(info.name, [])]
    rows = [(r.path.name, r.truth or "?", *(r.predictions[s.info.name].label if s.info.name in r.predictions
                                            else "–" for s in summaries),
             _fmt(r.loudness.correlation if r.loudness else None), _fmt(r.sharpness), r.error or "")
            for r in results]
    parts.append("<h2>Videos</h2>" + _table(["video", "truth", *(s.info.name for s in summaries),
                                              "loudness r", "CPBD", "problem"], rows))
    parts.append(f"<p>{html.escape(SYNC_NOTE)}</p>")
    compared = [r for r in results if r.comparison is not None]
    if compared:
        fields = list(vars(compared[0].comparison))
        parts.append("<h2>Against reference videos</h2>" + _table(
            ["video", *fields], [(r.path.name, *(_fmt(getattr(r.comparison, f)) for f in fields)) for r in compared]))
    if dataset_metrics:
        parts.append("<h2>Over all videos</h2>" + _table(["metric", "value"],
                                                          [(k, _fmt(v)) for k, v in dataset_metrics.items()]))
    parts += [f"<img src='{name}'>" for name in images.get("curves", [])]
    parts.append("<h2>Not computed</h2><ul>" + "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>"
                                                        for k, v in _not_computed(dataset_metrics).items()) + "</ul>")
    return "\n".join(parts)


SYNC_NOTE = (
    "Loudness r is how closely the mouth opening follows the speech's loudness. It is not "
    "lip sync: real speakers score 0.1-0.4 (mouths follow phones, not loudness) and a mouth "
    "driven by loudness alone scores near 1; it only tells a frozen or out-of-step mouth (near 0) "
    "from a moving one. Lip sync is judged against a reference video (mouth_r, the correlation of "
    "the mouth opening with the real person's, and M-LMD) or by SyncNet (LSE-C/LSE-D, with its "
    "weights); neither says whether the mouth looks real: look at the videos."
)
"""What the report says about its sync figures."""


def _not_computed(dataset_metrics: dict[str, float]) -> dict[str, str]:
    """The unavailable metrics (names like "LSE-C/LSE-D" cover several) that were not computed."""
    return {name: reason for name, reason in UNAVAILABLE.items()
            if not any(part in dataset_metrics for part in name.split("/"))}


def write_report(
    results: Sequence[VideoResult],
    infos: Sequence[RecognizerInfo],
    folder: Path,
    notes: Sequence[str] = (),
    dataset_metrics: dict[str, float] | None = None,
) -> list[RecognizerSummary]:
    """Write the report into ``folder`` (created); return the per-recognizer summaries.

    ``dataset_metrics`` are numbers over all videos (e.g. FID), shown in their own table.
    """
    dataset_metrics = dataset_metrics or {}
    folder.mkdir(parents=True, exist_ok=True)
    summaries = [summarize(results, info) for info in infos]
    images: dict[str, list[str]] = {}
    for summary in summaries:
        slug = _slug(summary.info.name)
        if summary.videos:
            _plot_confusion(summary, folder / f"confusion_{slug}.png")
            _write_confusion_csv(summary, folder / f"confusion_{slug}.csv")
            images.setdefault(summary.info.name, []).append(f"confusion_{slug}.png")
        if _plot_confusion_examples(results, summary.info, folder / f"confusions_{slug}.png"):
            images.setdefault(summary.info.name, []).append(f"confusions_{slug}.png")
    if len(results) <= 5:
        for result in results:
            name = f"curve_{_slug(result.path.stem)}.png"
            if plot_emotion_curve(result, infos, folder / name):
                images.setdefault("curves", []).append(name)
    _write_predictions_csv(results, folder / "predictions.csv")
    (folder / "results.json").write_text(json.dumps({
        "recognizers": [_summary_record(s) for s in summaries],
        "videos": [_video_record(r) for r in results],
        "dataset_metrics": dataset_metrics, "notes": list(notes), "not_computed": _not_computed(dataset_metrics),
    }, indent=1))
    (folder / "index.html").write_text(_html(results, summaries, images, notes, dataset_metrics))
    return summaries
