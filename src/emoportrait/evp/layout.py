"""Dataset discovery for EVP training: MEAD's folder layout or a plain CSV manifest.

**MEAD layout** (``root`` holds one folder per subject)::

    <subject>/video/front/<emotion>/level_<n>/<clip>.mp4
    <subject>/audio/<emotion>/level_<n>/<clip>.m4a    (optional: else the video's own track)

with the emotion folders named as MEAD names them (``angry``, ``contempt``,
``disgusted``, ``fear``, ``happy``, ``neutral``, ``sad``, ``surprised``). Only the
frontal camera is used.

**Sentences.** In the real MEAD, a clip number is not a sentence: one subject's
``angry/001`` and ``disgusted/001`` may say different things (EVP lists, per subject,
which clip of each emotion says each shared sentence). So the sentence of a MEAD clip
comes from a *sentence map*, a CSV in EVP's layout: columns ``subject,sentence`` and
one column per emotion, each cell the clip that says that row's sentence in that
emotion (empty where it does not)::

    subject,sentence,angry,contempt,disgusted,fear,happy,neutral,sad,surprised
    M003,s01,001,001,028,001,001,001,001,001

It is read from ``<root>/sentence_map.csv`` (``make-dataset`` writes one) or passed in
(``--sentence-map``). Clips the map does not list say a sentence of their own (they
are never paired). Without a map, clips are paired by clip number only when asked
(``--sentences-by-number``); otherwise every clip is its own sentence and a warning
says how to pair them.

**Plain layout**: a CSV file (``root`` itself, or ``root/dataset.csv``) with the
columns ``video,audio,subject,emotion,level,sentence``; paths are relative to the
CSV's folder, an empty ``audio`` means the video's own track, and ``emotion``
accepts the aliases of :func:`emoportrait.emotions.canonical_emotion`. A
``dataset.csv`` takes precedence over MEAD folders beside it.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..emotions import EMOTIONS, canonical_emotion
from ..errors import InputError
from ..media import is_hidden

PLAIN_MANIFEST = "dataset.csv"
"""File name of the plain layout's CSV when ``root`` is a folder."""

SENTENCE_MAP = "sentence_map.csv"
"""File name of a MEAD root's sentence map (see the module docstring)."""

PLAIN_COLUMNS = ("video", "audio", "subject", "emotion", "level", "sentence")
"""Columns the plain layout's CSV must have."""

MEAD_VIDEO_GLOB = "*/video/front/*/level_*/*.mp4"
"""Where MEAD keeps the frontal videos, relative to the data root."""

MEAD_AUDIO_SUFFIX = ".m4a"
"""Suffix of MEAD's separate audio files."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LEVEL = re.compile(r"level_(\d+)")

logger = logging.getLogger(__name__)

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


def read_sentence_map(path: Path) -> dict[tuple[str, str, str], str]:
    """``(subject, emotion, clip) -> sentence`` from a sentence map (see the module docstring).

    Raises:
        InputError: the file is missing, lacks ``subject`` or ``sentence``, names an
            unknown emotion column, or gives one clip two sentences.
    """
    if not path.is_file():
        raise InputError(f"sentence map '{path}' does not exist; give a CSV with columns "
                         "subject,sentence and one column per emotion")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if not {"subject", "sentence"} <= set(columns):
            raise InputError(f"sentence map '{path}' needs the columns subject,sentence and one per emotion")
        unknown = [column for column in columns if column not in ("subject", "sentence", *EMOTIONS)]
        if unknown:
            raise InputError(f"sentence map '{path}' has unknown emotion column(s) {', '.join(unknown)}; "
                             f"use {', '.join(EMOTIONS)}")
        sentences: dict[tuple[str, str, str], str] = {}
        for row in reader:
            where = f"'{path}' line {reader.line_num}"
            subject = _checked_name((row["subject"] or "").strip(), "subject", where)
            sentence = _checked_name((row["sentence"] or "").strip(), "sentence", where)
            for emotion in (column for column in columns if column in EMOTIONS):
                clip = (row[emotion] or "").strip()
                if not clip:
                    continue
                key = (subject, emotion, clip)
                if sentences.setdefault(key, sentence) != sentence:
                    raise InputError(f"{where}: clip {emotion}/{clip} of {subject} is given two sentences "
                                     f"({sentences[key]} and {sentence})")
    return sentences


def _mead_sentence(key: tuple[str, str, str], sentences: dict | None, by_number: bool) -> str:
    """The sentence id of MEAD clip ``(subject, emotion, clip)``: by the map, by its number
    when asked, else its own (``<clip>-<emotion>``, never paired)."""
    if by_number:
        return key[2]
    if sentences is not None and key in sentences:
        return sentences[key]
    return f"{key[2]}-{key[1]}"


def _discover_mead(root: Path, sentences: dict | None, by_number: bool) -> list[ClipSource]:
    """The clips of MEAD's folder layout under ``root`` (empty if there are none)."""
    clips = []
    for video in sorted(path for path in root.glob(MEAD_VIDEO_GLOB) if not is_hidden(path, root)):
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
        number = _checked_name(video.stem, "clip name", str(level_dir))
        audio = (root / subject / "audio" / emotion_dir.name / level_dir.name
                 / f"{video.stem}{MEAD_AUDIO_SUFFIX}")
        clips.append(ClipSource(
            clip_id=make_clip_id(subject, emotion_dir.name, level, number),
            subject=subject,
            emotion=emotion_dir.name,
            level=level,
            sentence=_mead_sentence((subject, emotion_dir.name, number), sentences, by_number),
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


def discover(root: str | Path, sentence_map: str | Path | None = None,
             sentences_by_number: bool = False) -> list[ClipSource]:
    """Find the clips of a dataset in either layout.

    Args:
        root: The MEAD data root (a folder of subject folders), a plain-layout CSV
            file, or a folder holding ``dataset.csv``.
        sentence_map: MEAD layout: the sentence map (default ``<root>/sentence_map.csv``
            when it exists; see the module docstring).
        sentences_by_number: MEAD layout: take clip numbers as sentence ids instead.

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
        if sentence_map is None and (root / SENTENCE_MAP).is_file():
            sentence_map = root / SENTENCE_MAP
        sentences = read_sentence_map(Path(sentence_map)) if sentence_map is not None else None
        clips = _discover_mead(root, sentences, sentences_by_number)
        if clips and sentences is None and not sentences_by_number:
            logger.warning("'%s' has no %s: in MEAD a clip number is not a sentence, so no two clips are "
                           "paired; give --sentence-map FILE (EVP's lists, see the README) or "
                           "--sentences-by-number", root, SENTENCE_MAP)
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
