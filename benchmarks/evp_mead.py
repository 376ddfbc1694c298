"""What the shared real MEAD clips say about expressions, against the procedural prototypes.

``shared/media/mead/video/`` has one clip per emotion (level 3; neutral level 1) for two
actors, M030 and W009, without sound. Each clip is tracked and frontalised; an emotion's
*displacement* is the median canonical face of its clip minus that of the actor's
neutral clip (the median over frames keeps the expression and drops the speech). It prints

* **measures** per emotion, in canonical units (positive = up / wider), for M030, W009
  and the procedural prototype put on each actor's neutral face (mean of the two):
  inner and outer brow height, lid gap, lip-corner height, mouth width, nose wings;
* **separation**: each actor's emotion displacements classified by the nearest (cosine)
  displacement of the other actor, over the seven emotions (how well the reference
  displacements that ``prepare`` makes separate the emotions, across people), and the
  procedural prototypes classified the same way against each actor (does the
  prototype look most like that emotion of a real actor?).

Sentence matching by content cannot be measured here: one shared MEAD clip has speech.

    .venv/bin/python benchmarks/evp_mead.py [--media ../shared/media]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from emoportrait import alignment, media, tracking
from emoportrait.drivers.action_units import FaceGeometry
from emoportrait.drivers.procedural import emotion_field
from emoportrait.emotions import EMOTIONS, EmotionSpec
from emoportrait.face import TrackerConfig, track_frames
from emoportrait.neutralise import neutralise

DEFAULT_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
ACTORS = ("M030", "W009")
EMOTIONAL = tuple(emotion for emotion in EMOTIONS if emotion != "neutral")
SIDES = {"inner brow": ((107, 55), (336, 285)), "outer brow": ((70, 46), (300, 276)),
         "nose wing": ((64,), (294,)), "lip corner": ((61,), (291,))}
"""Measures taken as the mean height of point groups, each pair (right side, left side)."""


def _height(face: np.ndarray, groups: tuple[tuple[int, ...], ...]) -> float:
    """Mean height (up positive: canonical y points down) of the points of both sides."""
    return -float(np.mean([face[list(group), 1].mean() for group in groups]))


def measures(face: np.ndarray) -> dict[str, float]:
    """The measured quantities of one ``(478, 3)`` canonical face."""
    values = {name: _height(face, groups) for name, groups in SIDES.items()}
    values["lid gap"] = float(((face[145, 1] - face[159, 1]) + (face[374, 1] - face[386, 1])) / 2)
    values["mouth width"] = float(np.linalg.norm(face[61, :2] - face[291, :2]))
    return values


def median_face(path: Path) -> tuple[np.ndarray, tracking.TrackResult]:
    """The median canonical face of a clip, and its track."""
    result = tracking.analyse(track_frames(list(media.iter_frames(path)), media.probe(path).fps,
                                           TrackerConfig(), name=str(path)))
    faces = result.canonical[result.track.found] if result.track.found.any() else result.canonical
    return np.median(faces, axis=0), result


def nearest(query: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, str]:
    """For each emotion of ``query``, the emotion of ``reference`` whose flattened xy
    displacement is the closest in cosine."""
    keys = list(reference)
    bank = np.stack([reference[key][:, :2].ravel() for key in keys])
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    found = {}
    for emotion, field in query.items():
        vector = field[:, :2].ravel()
        found[emotion] = keys[int(np.argmax(bank @ (vector / np.linalg.norm(vector))))]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    args = parser.parse_args()
    folder = args.media / "mead" / "video"
    if not folder.is_dir():
        sys.exit(f"no MEAD clips in {folder}; pass --media")
    real: dict[str, dict[str, np.ndarray]] = {}
    prototypes: dict[str, dict[str, np.ndarray]] = {}
    for actor in ACTORS:
        neutral, result = median_face(folder / f"{actor}_neutral_level1_001.mp4")
        real[actor] = {emotion: median_face(folder / f"{actor}_{emotion}_level3_001.mp4")[0] - neutral
                       for emotion in EMOTIONAL}
        identity = neutralise(alignment.rest_identity(result))
        geometry = FaceGeometry(identity)
        prototypes[actor] = {emotion: emotion_field(EmotionSpec({emotion: 1.0}), geometry) for emotion in EMOTIONAL}
        real[actor]["neutral"], prototypes[actor]["neutral"] = neutral, identity

    names = list(measures(real[ACTORS[0]]["neutral"]))
    print("change from neutral (canonical units, + = up / wider): M030 / W009 / prototype")
    print(f"{'emotion':<11}" + "".join(f"{name:>22}" for name in names))
    for emotion in EMOTIONAL:
        cells = []
        for name in names:
            changes = [measures(real[a]["neutral"] + real[a][emotion])[name] - measures(real[a]["neutral"])[name]
                       for a in ACTORS]
            ours = np.mean([measures(prototypes[a]["neutral"] + prototypes[a][emotion])[name]
                            - measures(prototypes[a]["neutral"])[name] for a in ACTORS])
            cells.append(f"{changes[0]:+.3f}/{changes[1]:+.3f}/{ours:+.3f}")
        print(f"{emotion:<11}" + "".join(f"{cell:>22}" for cell in cells))

    print("\nnearest emotion (cosine of the xy displacement), over the 7 emotions:")
    fields = {actor: {e: real[actor][e] for e in EMOTIONAL} for actor in ACTORS}
    ours = {actor: {e: prototypes[actor][e] for e in EMOTIONAL} for actor in ACTORS}
    for query, reference, label in ((fields["W009"], fields["M030"], "W009 by M030"),
                                    (fields["M030"], fields["W009"], "M030 by W009"),
                                    (ours["M030"], fields["M030"], "prototypes by M030"),
                                    (ours["W009"], fields["W009"], "prototypes by W009")):
        found = nearest(query, reference)
        hits = sum(found[e] == e for e in EMOTIONAL)
        misses = ", ".join(f"{e}→{found[e]}" for e in EMOTIONAL if found[e] != e) or "none"
        print(f"  {label:<20} {hits}/7   misses: {misses}")


if __name__ == "__main__":
    main()
