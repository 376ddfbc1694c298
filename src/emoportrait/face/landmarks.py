"""Named groups of the MediaPipe face mesh (478 points: 468 mesh + 2 × 5 iris).

"left" and "right" are the *subject's* sides, as in MediaPipe: the subject's left
eye appears on the right of an unmirrored image. Groups are ``int`` index arrays
into the 478 points; contour groups (lips, eyes, brows, face oval) are ordered along
the contour so they can be drawn as polylines. They are derived from the connection
sets that ship with MediaPipe, so they stay consistent with its mesh.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
from mediapipe.python.solutions import face_mesh_connections as _mesh

N_LANDMARKS = 478
"""Points per face: 468 mesh points + 5 per iris (``refine_landmarks=True``)."""


def _mesh_triangles() -> np.ndarray:
    """``(F, 3)`` triangles of MediaPipe's face-mesh tessellation: its 3-cliques, less the
    rims of holes (a 3-clique whose three edges all border two other triangles; two, at
    the nose wings, which drawn would fold over their neighbours). Eyes and mouth are open."""
    edges = {tuple(sorted(edge)) for edge in _mesh.FACEMESH_TESSELATION}
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    faces = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    uses = Counter(edge for a, b, c in faces for edge in ((a, b), (a, c), (b, c)))
    faces = {(a, b, c) for a, b, c in faces if min(uses[(a, b)], uses[(a, c)], uses[(b, c)]) <= 2}
    return np.array(sorted(faces), np.int64)


MESH_TRIANGLES = _mesh_triangles()
"""``(F, 3)`` triangles of the 468-point face mesh (see :func:`_mesh_triangles`)."""


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle: ``(..., N, 2+)`` points, ``(F, 3)`` → ``(..., F)``."""
    a, b, c = (points[..., triangles[:, k], :2] for k in range(3))
    return ((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
            - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0]))


def _ordered_chains(edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Split an edge set into connected chains, each ordered along its edges.

    A chain that closes on itself (a loop) is returned without repeating its first
    point. Components with branches are returned in walk order from their lowest
    end point, which is all the callers here need.
    """
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    unvisited = set(neighbours)
    chains = []
    while unvisited:
        ends = sorted(i for i in unvisited if len(neighbours[i]) == 1)
        current = ends[0] if ends else min(unvisited)
        chain = [current]
        unvisited.discard(current)
        while True:
            following = sorted(neighbours[current] & unvisited)
            if not following:
                break
            current = following[0]
            chain.append(current)
            unvisited.discard(current)
        chains.append(chain)
    return chains


def _single_loop(edges: Iterable[tuple[int, int]]) -> np.ndarray:
    (loop,) = _ordered_chains(edges)
    return np.array(loop)


def _loop_containing(edges: Iterable[tuple[int, int]], point: int) -> np.ndarray:
    return np.array(next(c for c in _ordered_chains(edges) if point in c))


def _indices(edges: Iterable[tuple[int, int]]) -> np.ndarray:
    return np.array(sorted({i for edge in edges for i in edge}))


_MOUTH_CORNER_OUTER = 61
_MOUTH_CORNER_INNER = 78
_RIGHT_IRIS_CENTRE = 468  # the iris centres are points, not part of any connection
_LEFT_IRIS_CENTRE = 473

GROUPS: dict[str, np.ndarray] = {
    "outer_lips": _loop_containing(_mesh.FACEMESH_LIPS, _MOUTH_CORNER_OUTER),
    "inner_lips": _loop_containing(_mesh.FACEMESH_LIPS, _MOUTH_CORNER_INNER),
    "left_eye": _single_loop(_mesh.FACEMESH_LEFT_EYE),
    "right_eye": _single_loop(_mesh.FACEMESH_RIGHT_EYE),
    "left_brow": _indices(_mesh.FACEMESH_LEFT_EYEBROW),
    "right_brow": _indices(_mesh.FACEMESH_RIGHT_EYEBROW),
    "left_iris": np.array([_LEFT_IRIS_CENTRE, *_indices(_mesh.FACEMESH_LEFT_IRIS)]),
    "right_iris": np.array([_RIGHT_IRIS_CENTRE, *_indices(_mesh.FACEMESH_RIGHT_IRIS)]),
    "nose": _indices(_mesh.FACEMESH_NOSE),
    "face_oval": _single_loop(_mesh.FACEMESH_FACE_OVAL),
}
GROUPS["lips"] = np.concatenate([GROUPS["outer_lips"], GROUPS["inner_lips"]])

# The upper face oval (forehead and temples down to the ears) and the eye corners:
# with the nose, points that expressions and speech barely move. Pose is fitted on
# these so that an open mouth or raised brows do not tilt the estimated head.
_UPPER_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 109, 67, 103, 54, 21, 162, 127, 234]
_EYE_CORNERS = [33, 133, 362, 263]
RIGID = np.array(sorted(set(_UPPER_OVAL) | set(_EYE_CORNERS) | set(GROUPS["nose"].tolist())))
"""Indices of landmarks that stay (nearly) rigid under expression and speech."""

SIDES = ("right", "left")
"""The subject's sides; "right" is at image left (negative canonical x)."""

# Skin regions that expressions move, per side of the subject ("right": image left).
CHEEK = {"right": (50, 101, 118, 117, 119, 100, 36, 205),
         "left": (280, 330, 347, 346, 348, 329, 266, 425)}
"""Cheek surface over the cheekbone, below the lower lid (the cheek raiser, AU6, lifts it)."""
NOSE_WING = {"right": (48, 64, 98, 102, 129, 49, 219), "left": (278, 294, 327, 331, 358, 279, 439)}
"""Nose wing (ala): the nose wrinkler (AU9) pulls it up."""
NOSE_SIDE = {"right": (209, 198, 131, 236), "left": (429, 420, 360, 456)}
"""Side of the nose above the wing, where the nose wrinkler's lines form."""
LIP_CORNER = {"right": 61, "left": 291}
"""Outer lip corner of each side."""

# The 68-point iBUG / dlib layout as MediaPipe indices, point for point (0-based):
# jaw 0-16 (image left to right), right brow 17-21, left brow 22-26, nose bridge
# 27-30, nostril base 31-35, right eye 36-41, left eye 42-47, outer lips 48-59,
# inner lips 60-67. Each was picked as the mesh vertex at the iBUG definition.
IBUG68 = np.array([
    127, 234, 93, 132, 58, 172, 136, 149, 152, 378, 365, 397, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107,
    336, 296, 334, 293, 300,
    168, 197, 5, 4,
    98, 97, 2, 326, 327,
    33, 160, 158, 133, 153, 144,
    362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
])
"""``(68,)`` MediaPipe indices of the iBUG-68 points, so metrics compare with dlib-based work."""

IBUG68_MOUTH = np.arange(48, 68)
"""Positions of the mouth points (outer + inner lips) within the 68-point layout."""


# Each closed contour's two corners (image left, then image right) and a point of its
# upper half: its halves are found by these labels, not by where the points lie, so
# crossed lips or closed lids keep their upper and lower halves.
_CONTOUR_LABELS = {
    "right_eye": ((33, 133), 159), "left_eye": ((362, 263), 386),
    "outer_lips": ((61, 291), 0), "inner_lips": ((78, 308), 13),
}


def contour_halves(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower halves of the closed contour ``name`` (an eye or the outer or
    inner lips), each from the image-left corner to the image-right one, corners included."""
    loop = GROUPS[name]
    (left, right), upper_point = _CONTOUR_LABELS[name]
    first, second = int(np.flatnonzero(loop == left)[0]), int(np.flatnonzero(loop == right)[0])
    rolled = np.roll(loop, -first)            # starts at the left corner
    split = (second - first) % len(loop)      # where the right corner now is
    one, other = rolled[:split + 1], np.append(rolled[split:], rolled[0])[::-1]
    return (one, other) if upper_point in one else (other, one)


def group(name: str) -> np.ndarray:
    """Return the indices of a named group; raise ``KeyError`` naming the valid ones."""
    try:
        return GROUPS[name]
    except KeyError:
        raise KeyError(f"unknown landmark group '{name}'; known groups: {', '.join(GROUPS)}") from None


def to_ibug68(landmarks: np.ndarray) -> np.ndarray:
    """Select the iBUG-68 points: ``(..., 478, D)`` → ``(..., 68, D)``."""
    return landmarks[..., IBUG68, :]


def face_size(landmarks: np.ndarray) -> float:
    """Diameter (pixels) of the disc with the area of the face oval of ``(478, 2+)`` landmarks
    (about the geometric mean of the oval's width and height): the size of the whole face,
    for margins and blurs that scale with it."""
    x, y = landmarks[GROUPS["face_oval"], 0], landmarks[GROUPS["face_oval"], 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))  # shoelace
    return float(np.sqrt(4.0 / np.pi * area))


def rigid_radius(landmarks: np.ndarray) -> np.ndarray:
    """RMS radius of the :data:`RIGID` points about their centre: ``(..., 478, D)`` → ``(...)``,
    in the landmarks' units. Expressions and speech barely move those points, so motion
    divided by it is in face units whatever the face does."""
    rigid = landmarks[..., RIGID, :2]
    return np.sqrt(((rigid - rigid.mean(axis=-2, keepdims=True)) ** 2).sum(-1).mean(-1))


def inner_mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the inner-lip midpoints 13 and 14: ``(..., 478, D)`` → ``(...)``.

    In the units of the landmarks (pixels for tracked landmarks).
    """
    return np.linalg.norm(landmarks[..., 13, :] - landmarks[..., 14, :], axis=-1)
