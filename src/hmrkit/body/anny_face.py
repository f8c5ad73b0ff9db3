"""Anny's ``face`` keypoints: the MediaPipe FaceMesh landmarks of ``hmrkit.conventions.FACE``
located on the Anny mesh.

Each keypoint is a vertex or a barycentric blend of a triangle's vertices (or, on the
midline, of a triangle and its mirror image), so it follows the mesh under pose, shape and
facial expression. They were derived by rendering Anny's head for several phenotypes, yaws
and mouth openings, running MediaPipe FaceMesh on the renders and back-projecting its
landmarks onto the mesh: ``scripts/build_anny_face_landmarks.py`` writes
``anny_face_landmarks.json`` (its ``source`` field says how, with the agreement measured).

Agreement with MediaPipe over the 20 renders (yaw within 15 degrees): the inner face
(brows, eyes, nose, lips) 1.6 mm mean; the jaw contour (``jaw_*``, ``chin``), which is a
silhouette in MediaPipe rather than a fixed point of the face, 2.2 mm mean to the
landmarks' rays, reprojecting about 1.7 times as far as the inner face (4.5 px vs 2.7 px
with the head, crown to chin, about 470 px tall): a fit may give the contour a lower weight.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from hmrkit.conventions import FACE

LANDMARKS_FILE = Path(__file__).with_name("anny_face_landmarks.json")


@lru_cache(maxsize=1)
def _load() -> dict:
    try:
        data = json.loads(LANDMARKS_FILE.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{LANDMARKS_FILE} is missing: it ships with hmrkit; rebuild it with "
            "scripts/build_anny_face_landmarks.py"
        ) from None
    landmarks = data.get("landmarks", {})
    missing = [n for n in FACE if not landmarks.get(n)]
    if missing:
        raise ValueError(f"{LANDMARKS_FILE.name} lacks the face keypoints {missing}")
    return data


def anny_face_entries(num_vertices: int | None = None) -> list[list[tuple[int, float]]]:
    """One entry per keypoint of ``FACE`` (in that order): [(vertex index, weight), ...],
    weights summing to 1, for ``KeypointRegressor.from_entries(FACE, entries, V)``. The
    indices are vertices of Anny's mesh (all < V, so they index cat(vertices, joints)
    directly). With ``num_vertices``, raises a ValueError when an index is out of range
    (a mesh other than the one the file was made for)."""
    landmarks = _load()["landmarks"]
    entries = [[(int(i), float(w)) for i, w in landmarks[n]] for n in FACE]
    if num_vertices is not None:
        bad = sorted({i for e in entries for i, _ in e if not 0 <= i < num_vertices})
        if bad:
            raise ValueError(
                f"{LANDMARKS_FILE.name}: vertex indices {bad[:5]} are out of range for a mesh of "
                f"{num_vertices} vertices"
            )
    return entries
