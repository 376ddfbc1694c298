"""EVP's 106-point 2-D landmarks, and how a move of them moves the 478-point mesh.

EVP's released audio-to-landmark models predict the 106 points of the JD-106 /
Face++ layout (2-D, ``pixel / 255`` of a 256² face crop, y down, x and y
interleaved). By index:

=========  ==============================================================
0–32       face contour, image-left jaw top → chin (16) → image-right
33–37      image-left brow, upper edge, outer → inner (64–67: lower edge)
38–42      image-right brow, upper edge, inner → outer (68–71: lower edge)
43–46      nose bridge, top → tip; 47–51 nostril base, left → right
52–57,72,73  image-left eye: outer corner 52, upper 53 72 54, inner 55, lower 56 73 57
58–63,75,76  image-right eye: inner corner 58, upper 59 75 60, outer 61, lower 62 76 63
74, 77     eye centres; 78–83 nose wings; 104, 105 pupils
84–95      outer lips: left corner 84, upper 85–89, right corner 90, lower 91–95
96–103     inner lips: left corner 96, upper 97–99, right corner 100, lower 101–103
=========  ==============================================================

(checked on EVP's released M030 mean shape: point 0 left of 32, 52 left of 58,
98 above 102). :data:`MESH_POINTS` names the mesh vertex at 72 of them: the
contour's even points, the upper brow edges, the nose, the eye contours and the
lips (the iBUG-68 subset, :data:`~emoportrait.face.landmarks.IBUG68`, plus the
eyes' extra points). The others (odd contour points, lower brow edges, nose wings,
eye centres, pupils: gaze is not speech) drive nothing.

:func:`mesh_transfer` spreads a move of those 72 points over the whole mesh by
harmonic interpolation on the mesh graph: every other vertex moves as the mean of
its neighbours, the forehead and temples stay put. The mesh has holes at the mouth
and the eyes, so the upper lip follows the upper lip's points only and the lower
lip the lower one's; an opening mouth does not drag its other lip with it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from .landmarks import IBUG68, MESH_TRIANGLES, N_LANDMARKS

N_POINTS = 106

_CONTOUR = {2 * k: int(IBUG68[k]) for k in range(17)}
_BROWS = {33 + k: int(IBUG68[17 + k]) for k in range(10)}
_NOSE = {43 + k: int(IBUG68[27 + k]) for k in range(9)}
_LEFT_EYE = {52: 33, 53: 160, 72: 159, 54: 158, 55: 133, 56: 153, 73: 145, 57: 144}
_RIGHT_EYE = {58: 362, 59: 385, 75: 386, 60: 387, 61: 263, 62: 373, 76: 374, 63: 380}
_LIPS = {84 + k: int(IBUG68[48 + k]) for k in range(20)}

MESH_POINTS: dict[int, int] = {**_CONTOUR, **_BROWS, **_NOSE, **_LEFT_EYE, **_RIGHT_EYE, **_LIPS}
"""106-layout index → the mesh vertex at the same place on the face."""

_STILL = (10, 338, 297, 332, 284, 251, 389, 109, 67, 103, 54, 21, 162)
"""Mesh vertices of the forehead and temples: held still by :func:`mesh_transfer`."""

_IRISES = ((range(468, 473), _LEFT_EYE), (range(473, 478), _RIGHT_EYE))
"""The iris points (not in the triangulation) follow the mean of their eye's contour."""

RIGID_POINTS = (0, 32, 43, 44, 45, 46, 52, 55, 58, 61)
"""106-layout points that speech and expression barely move (jaw tops, nose bridge, eye corners)."""

CANONICAL_EYE_SPAN = 1.53
"""Outer eye-corner distance (vertices 33–263) of a tracked face in canonical units: the
mean over the five real portraits of ``shared/media`` and the astronaut (1.46–1.65)."""


def _graph_laplacian() -> scipy.sparse.csr_matrix:
    """``(478, 478)`` uniform graph Laplacian of the mesh triangulation."""
    edges = np.concatenate([MESH_TRIANGLES[:, [0, 1]], MESH_TRIANGLES[:, [1, 2]], MESH_TRIANGLES[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    rows, cols = np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]])
    adjacency = scipy.sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(N_LANDMARKS, N_LANDMARKS)).tocsr()
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return (scipy.sparse.diags(degree) - adjacency).tocsr()


def mesh_transfer() -> np.ndarray:
    """``(478, 106)`` weights ``W``: a move ``d (106, 2)`` of the 106 points moves the mesh by ``W @ d``.

    Vertices of :data:`MESH_POINTS` copy their point's move; the forehead is still;
    every other triangulated vertex is the mean of its neighbours (a harmonic
    field); each iris follows its eye contour's mean. Rows sum to 1 or less.
    """
    known = {**{vertex: point for point, vertex in MESH_POINTS.items()}, **{vertex: None for vertex in _STILL}}
    values = np.zeros((N_LANDMARKS, N_POINTS))
    for vertex, point in known.items():
        if point is not None:
            values[vertex, point] = 1.0
    triangulated = np.unique(MESH_TRIANGLES)
    free = np.array([v for v in triangulated if v not in known])
    fixed = np.array(sorted(known))
    laplacian = _graph_laplacian()
    system = laplacian[free][:, free].tocsc()
    right = -(laplacian[free][:, fixed] @ values[fixed])
    values[free] = scipy.sparse.linalg.spsolve(system, right).reshape(len(free), N_POINTS)
    for irises, eye in _IRISES:
        values[list(irises)] = values[list(eye.values())].mean(axis=0)
    return values


def without_head_motion(moves: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``(K, 106, 2)`` moves with the small similarity motion of :data:`RIGID_POINTS` removed.

    A move fitted by a (linearised) translation, rotation and scale on the rigid
    points around ``mean (106, 2)`` is subtracted: EVP's landmarks come from face
    crops, whose jitter its PCA learned too; here the head's motion comes from the
    target instead.
    """
    rigid = mean[list(RIGID_POINTS)]
    centre = rigid.mean(axis=0)

    def basis(points: np.ndarray) -> np.ndarray:
        """``(P, 2, 4)``: a point's move per unit of (tx, ty, scale, rotation)."""
        x, y = (points - centre).T
        ones, zeros = np.ones_like(x), np.zeros_like(x)
        return np.stack([np.stack([ones, zeros, x, -y], -1), np.stack([zeros, ones, y, x], -1)], axis=1)

    fit_basis = basis(rigid).reshape(-1, 4)
    params = np.linalg.lstsq(fit_basis, moves[:, list(RIGID_POINTS)].reshape(len(moves), -1).T, rcond=None)[0]
    return moves - np.einsum("pcj,jk->kpc", basis(mean), params)


def to_canonical(mean: np.ndarray) -> np.ndarray:
    """``(2, 2)`` matrix ``A``: a move ``d`` in EVP's units (around ``mean (106, 2)``) is ``A @ d``
    in canonical units: scaled so the outer eye corners span :data:`CANONICAL_EYE_SPAN`,
    rotated so they are level (both y down)."""
    span = mean[61] - mean[52]
    angle = np.arctan2(span[1], span[0])
    cos, sin = np.cos(-angle), np.sin(-angle)
    return CANONICAL_EYE_SPAN / np.linalg.norm(span) * np.array([[cos, -sin], [sin, cos]])


def components_on_mesh(components: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """EVP's PCA components ``(K, 212)`` (x, y interleaved) → ``(K, 956)`` moves of the
    mesh in canonical units (x, y interleaved), head motion removed; ``mean (212,)``."""
    mean = mean.reshape(N_POINTS, 2)
    moves = without_head_motion(components.reshape(len(components), N_POINTS, 2), mean)
    moves = moves @ to_canonical(mean).T
    return np.einsum("vp,kpc->kvc", mesh_transfer(), moves).reshape(len(components), -1).astype(np.float32)
