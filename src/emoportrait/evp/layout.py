"""Dataset discovery for EVP training: MEAD's folder layout or a plain CSV manifest.

**MEAD layout** (``root`` holds one folder per subject)::

    <subject>/video/front/<emotion>/level_<n>/<clip>.mp4
    <subject>/audio/<emotion>/level_<n>/<clip>.m4a    (optional: else the video's own track)

with the emotion folders named as MEAD names them (``angry``, ``contempt``,
``disgusted``, ``fear``, ``happy``, ``neutral``, ``sad``, ``surprised``). Only the
frontal camera is used.

*Assumption:* the clip number (``001`` …) is taken as the sentence id, so clips of
one subject with the same number are taken to say the same sentence. That holds for
the synthetic dataset of ``emoportrait make-dataset``; in the real MEAD only some
sentences are shared across emotions (each emotion also has sentences of its own),
so there cross-emotion pairs of equal numbers are not always the same text.

**Plain layout**: a CSV file (``root`` itself, or ``root/dataset.csv``) with the
columns ``video,audio,subject,emotion,level,sentence``; paths are relative to the
CSV's folder, an empty ``audio`` means the video's own track, and ``emotion``
accepts the aliases of :func:`emoportrait.emotions.canonical_emotion`. A
``dataset.csv`` takes precedence over MEAD folders beside it.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..emotions import EMOTIONS, canonical_emotion
from ..errors import InputError

PLAIN_MANIFEST = "dataset.csv"
"""File name of the plain layout's CSV when ``root`` is a folder."""

PLAIN_COLUMNS = ("video", "audio", "subject", "emotion", "level", "sentence")
"""Columns the plain layout's CSV must have."""

MEAD_VIDEO_GLOB = "*/video/front/*/level_*/*.mp4"
"""Where MEAD keeps the frontal videos, relative to the data root."""

MEAD_AUDIO_SUFFIX = ".m4a"
"""Suffix of MEAD's separate audio files."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LEVEL = re.compile(r"level_(\d+)")

EXPECTED_LAYOUTS = (
    "MEAD's <subject>/video/front/<emotion>/level_<n>/<clip>.mp4 (audio optional in "
    "<subject>/audio/<emotion>/level_<n>/<clip>.m4a) or a CSV file "
    f"(or <root>/{PLAIN_MANIFEST}) with columns {','.join(PLAIN_COLUMNS)}"
)
"""One-line description of the accepted layouts, for error messages."""


@dataclass(frozen=True)
class ClipSource:
    """One clip of the dataset, before preparation.

    Attributes:
        clip_id: ``<subject>_<emotion>_<level>_<sentence>``, e.g. ``M003_angry_3_001``.
        subject: Speaker id (a file-name-safe word).
        emotion: MEAD emotion name (one of :data:`emoportrait.emotions.EMOTIONS`).
        level: Emotion intensity level (MEAD: 1-3; neutral has level 1).
        sentence: Sentence id; clips of one subject with the same id say the same words.
        video: Absolute path of the video file.
        audio: Absolute path of the file whose audio track is the speech (the video
            itself when there is no separate audio file).
    """

    clip_id: str
    subject: str
    emotion: str
    level: int
    sentence: str
    video: Path
    audio: Path


def make_clip_id(subject: str, emotion: str, level: int, sentence: str) -> str:
    """``<subject>_<emotion>_<level>_<sentence>``, e.g. ``M003_angry_3_001``."""
    return f"{subject}_{emotion}_{level}_{sentence}"


def _checked_name(value: str, what: str, where: str) -> str:
    """``value`` if it is safe as part of a file name, else an :class:`InputError`."""
    if not _NAME.fullmatch(value):
        raise InputError(
            f"{what} '{value}' in {where} must be letters, digits, '.', '_' or '-' "
            "(it becomes part of file names)"
        )
    return value


def _absolute(path: Path) -> Path:
    """``path`` made absolute and normalised (``..`` removed), symlinks kept."""
    return Path(os.path.abspath(path))


def _discover_mead(root: Path) -> list[ClipSource]:
    """The clips of MEAD's folder layout under ``root`` (empty if there are none)."""
    clips = []
    for video in sorted(root.glob(MEAD_VIDEO_GLOB)):
        level_dir, emotion_dir = video.parent, video.parent.parent
        subject = _checked_name(emotion_dir.parents[2].name, "subject folder", str(root))
        if emotion_dir.name not in EMOTIONS:
            raise InputError(
                f"unknown emotion folder '{emotion_dir}'; MEAD emotion folders are named "
                f"{', '.join(sorted(EMOTIONS))}"
            )
        match = _LEVEL.fullmatch(level_dir.name)
        if match is None:
            raise InputError(f"level folder '{level_dir}' must be named level_<n>, e.g. level_1")
        level = int(match.group(1))
        sentence = _checked_name(video.stem, "clip name", str(level_dir))
        audio = (root / subject / "audio" / emotion_dir.name / level_dir.name
                 / f"{video.stem}{MEAD_AUDIO_SUFFIX}")
        clips.append(ClipSource(
            clip_id=make_clip_id(subject, emotion_dir.name, level, sentence),
            subject=subject,
            emotion=emotion_dir.name,
            level=level,
            sentence=sentence,
            video=_absolute(video),
            audio=_absolute(audio if audio.is_file() else video),
        ))
    return clips


def _plain_row(row: dict[str, str], base: Path, where: str) -> ClipSource:
    """One CSV row as a :class:`ClipSource`; ``where`` names the file and line."""
    values = {key: (row.get(key) or "").strip() for key in PLAIN_COLUMNS}
    if not values["video"]:
        raise InputError(f"{where}: the video column is empty")
    try:
        emotion = canonical_emotion(values["emotion"])
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    try:
        level = int(values["level"])
    except ValueError:
        raise InputError(f"{where}: level '{values['level']}' is not a whole number") from None
    subject = _checked_name(values["subject"], "subject", where)
    sentence = _checked_name(values["sentence"], "sentence", where)
    video = _absolute(base / values["video"])
    return ClipSource(
        clip_id=make_clip_id(subject, emotion, level, sentence),
        subject=subject,
        emotion=emotion,
        level=level,
        sentence=sentence,
        video=video,
        audio=_absolute(base / values["audio"]) if values["audio"] else video,
    )


def _discover_plain(manifest: Path) -> list[ClipSource]:
    """The clips listed in a plain-layout CSV file."""
    with open(manifest, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in PLAIN_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"'{manifest}' lacks the column(s) {', '.join(missing)}; a dataset CSV needs "
                f"{','.join(PLAIN_COLUMNS)}"
            )
        clips = [_plain_row(row, manifest.parent, f"'{manifest}' line {reader.line_num}")
                 for row in reader]
    if not clips:
        raise InputError(f"'{manifest}' lists no clips")
    return clips


def discover(root: str | Path) -> list[ClipSource]:
    """Find the clips of a dataset in either layout.

    Args:
        root: The MEAD data root (a folder of subject folders), a plain-layout CSV
            file, or a folder holding ``dataset.csv``.

    Returns:
        The clips, sorted by ``clip_id``.

    Raises:
        InputError: If ``root`` is missing or holds no clips, an emotion or level
            folder is misnamed, a CSV row is invalid, or two clips share an id.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"data root '{root}' does not exist")
    if root.is_file():
        clips = _discover_plain(root)
    elif (root / PLAIN_MANIFEST).is_file():
        clips = _discover_plain(root / PLAIN_MANIFEST)
    else:
        clips = _discover_mead(root)
    if not clips:
        raise InputError(f"no clips found in '{root}'; expected {EXPECTED_LAYOUTS}")
    clips.sort(key=lambda clip: clip.clip_id)
    for first, second in zip(clips, clips[1:]):
        if first.clip_id == second.clip_id:
            raise InputError(
                f"two clips have the id {first.clip_id} ('{first.video}' and '{second.video}'); "
                "each subject, emotion, level and sentence may appear once"
            )
    return clips
