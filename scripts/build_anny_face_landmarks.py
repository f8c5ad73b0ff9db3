"""Derive the ``face`` keypoints (a subset of MediaPipe FaceMesh) on the Anny mesh.

Method ("derive from a render"):
1. Render Anny's head (800 px images, camera 0.7 m in front of the nose, the head filling
   most of the image) for five phenotypes (the mean body, a woman, a man, a child, an
   elder), each at yaw -15, 0 and +15 degrees with a neutral face, and once more frontally
   with the mouth open (``jawOpen``) so that the inner lips separate: 20 renders.
2. Run MediaPipe FaceMesh (``static_image_mode=True, refine_landmarks=False``; the model
   ships in the mediapipe wheel) on each render; keep the landmarks of
   ``hmrkit.conventions.FACE_MESH_INDICES``.
3. Back-project each landmark: cast the camera ray through its pixel against the mesh;
   the first triangle hit is the 3D point under the landmark. ``render_mesh`` returns no
   depth, so visibility is computed here too: a ray is cast to each candidate vertex, which
   is hidden when a triangle lies more than 2 mm in front of it.
4. Per landmark, score every candidate vertex by its mean distance over the renders to
   the back-projected points, each render compared with its own mesh (all phenotypes and
   expressions share Anny's topology); a vertex hidden in a render pays 20 mm there.
   - The jaw contour (``jaw_*``, ``chin``) is a silhouette in MediaPipe, not a surface
     point: the distance is to the landmark's camera ray instead (so the vertex on the side
     of the face that best matches the contour across views wins), a hidden vertex pays
     only 5 mm, and a tenth of the offset along the ray from the depth MediaPipe's own
     landmark z gives (calibrated per render on the surface landmarks) breaks the ties
     along the rim.
   - The inner lips are the rim of the mouth's opening, through which the ray reaches
     the inside of the mouth: the distance is to the ray.
5. Left/right pairs are chosen together as mirror images (Anny's mesh is symmetric): the
   right landmark's score of a vertex plus the left landmark's score of its mirror image;
   a midline landmark takes the midpoint of a point and its mirror image.
6. Refine the chosen vertex into a barycentric blend of one of its triangles (weights on a
   0.05 grid) when that lowers the mean distance.

Prints, per landmark, the consistency over the renders (distance of the chosen point to the
back-projected point, or to the ray for the contour and inner lips, in mm: mean and max)
and the reprojection error of the chosen points against MediaPipe's 2D landmarks (px).
Writes src/hmrkit/body/anny_face_landmarks.json and docs/anny_face_landmarks.png.

Deterministic (fixed renders; MediaPipe in static image mode). About 40 s on a CPU:
    .venv/bin/python scripts/build_anny_face_landmarks.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("WARP_LOG_LEVEL", "error")
os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT_JSON = REPO / "src" / "hmrkit" / "body" / "anny_face_landmarks.json"
OUT_PNG = REPO / "docs" / "anny_face_landmarks.png"

IMAGE = 800  # px, square
DISTANCE = 0.7  # m, camera to the nose's depth
NOSE_TO_TOP_PX = 330  # the nose-tip-to-top-of-head height in the image sets the focal length
YAWS = (0.0, -15.0, 15.0)
JAW_OPEN = 0.35
PHENOTYPES = {
    "mean": {},
    "female": {"gender": 0.0},
    "male": {"gender": 1.0},
    "child": {"age": 1.0 / 3.0},
    "elder": {"age": 1.0},
}
HIDDEN_PENALTY = 0.020  # m, added for a vertex hidden in a render
CANDIDATE_RADIUS = 0.030  # m, vertices this close to a landmark's ray are candidates
OCCLUSION_TOL = 0.002  # m
# The jaw contour: a hidden vertex pays only 5 mm (MediaPipe draws the contour of the side
# turned away on the silhouette, in front of the point it stands for), and the offset in
# depth from MediaPipe's own landmark z counts for a tenth (a tie-breaker along the rim,
# where the rays leave the depth free: it keeps the contour smooth; MediaPipe's z disagrees
# with its 2D contour across views by 1-3 cm, so a larger weight costs 2D agreement).
CONTOUR_HIDDEN_PENALTY = 0.005  # m
DEPTH_WEIGHT = 0.1
SKIN = (0.87, 0.72, 0.62)


def landmark_kind(name: str) -> str:
    """How a landmark is matched to the mesh in a render:
    - "contour": the jaw contour (``jaw_*``, ``chin``), a silhouette in MediaPipe: the
      distance to the landmark's camera ray, plus (weighted by DEPTH_WEIGHT) the offset
      along the ray from the depth MediaPipe's landmark z gives;
    - "edge": the inner lips, the rim of the mouth's opening, through which the ray may
      reach the inside of the mouth: the distance to the ray;
    - "surface": the distance to the back-projected point (the ray's first hit), or to the
      ray when that is not a front face."""
    if name.startswith("jaw_") or name == "chin":
        return "contour"
    if name in ("upper_lip_inner", "lower_lip_inner"):
        return "edge"
    return "surface"


# ----------------------------------------------------------------------------------------
# Views


def views():
    """(label, phenotype name, yaw degrees, jawOpen) for every render, in a fixed order."""
    out = []
    for p in PHENOTYPES:
        for yaw in YAWS:
            out.append((f"{p} yaw {yaw:+.0f}", p, yaw, 0.0))
        out.append((f"{p} jawOpen", p, 0.0, JAW_OPEN))
    return out


def body_vertices(body, phenotype: dict, jaw_open: float = 0.0) -> np.ndarray:
    """(V, 3) float64 rest-pose vertices, body frame (y up, facing +z, left +x)."""
    from hmrkit.body.anny import SHAPE_NAMES

    params = body.mean_params(1)
    shape = params.shape.clone()
    for k, value in phenotype.items():
        shape[0, SHAPE_NAMES.index(k)] = value
    expression = params.expression.clone()
    if jaw_open:
        expression[0, body.facial_action_names.index("jawOpen")] = jaw_open
    params = type(params)(params.global_orient, params.pose, shape, params.transl, expression)
    with torch.no_grad():
        return body(params).vertices[0].double().numpy()


def face_camera(v: np.ndarray, nose: int, top: int, yaw_deg: float):
    """Vertices in the OpenCV camera frame and K for a view of the face: the head turned by
    yaw_deg about the vertical axis (positive turns the face towards its left, the image's
    right), the nose tip DISTANCE in front of the camera, the image centred a little above
    the nose, the focal length set so the nose-to-top-of-head height spans NOSE_TO_TOP_PX."""
    a = np.radians(yaw_deg)
    Ry = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    pivot = np.array([0.0, v[nose, 1], v[nose, 2] - 0.10])  # about the middle of the head
    vr = (v - pivot) @ Ry.T + pivot
    s = v[top, 1] - v[nose, 1]
    centre = np.array([0.0, v[nose, 1] + 0.25 * s, v[nose, 2]])
    cv_from_body = np.diag([1.0, -1.0, -1.0])
    vc = (vr - centre) @ cv_from_body.T + np.array([0.0, 0.0, DISTANCE])
    f = NOSE_TO_TOP_PX * DISTANCE / s
    c = (IMAGE - 1) / 2.0
    K = np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])
    return vc, K


def anchor_vertices(v_mean: np.ndarray, head_vertices: np.ndarray):
    """(nose tip, top of head) vertex indices picked on the mean body, for framing only."""
    hv = head_vertices
    nose = int(hv[np.argmax(v_mean[hv, 2])])
    top = int(hv[np.argmax(v_mean[hv, 1])])
    return nose, top


def project(p: np.ndarray, K: np.ndarray) -> np.ndarray:
    z = np.maximum(p[..., 2:3], 1e-6)
    return (p[..., :2] / z) * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])


# ----------------------------------------------------------------------------------------
# Ray casting (camera at the origin)


def raycast(dirs: np.ndarray, tri: np.ndarray, tri_uv: np.ndarray, K: np.ndarray,
            exclude: np.ndarray | None = None):
    """First hits of rays from the origin along dirs (N, 3) with triangles tri (F, 3, 3).

    tri_uv (F, 3, 2) are the triangles' projections (for a cheap 2D box test); exclude
    (N, F) bool marks triangles a ray must ignore. Returns t (N,) (inf: no hit; the hit is
    t * dirs), face (N,) (-1: none) and barycentrics (N, 3)."""
    N = len(dirs)
    t_best = np.full(N, np.inf)
    f_best = np.full(N, -1, dtype=np.int64)
    b_best = np.zeros((N, 3))
    lo, hi = tri_uv.min(1), tri_uv.max(1)
    pix = project(dirs, K)
    for s in range(0, N, 256):
        d = dirs[s:s + 256]
        p = pix[s:s + 256]
        inside = ((p[:, None, 0] >= lo[None, :, 0] - 1) & (p[:, None, 0] <= hi[None, :, 0] + 1)
                  & (p[:, None, 1] >= lo[None, :, 1] - 1) & (p[:, None, 1] <= hi[None, :, 1] + 1))
        if exclude is not None:
            inside &= ~exclude[s:s + 256]
        ri, fi = np.nonzero(inside)
        if len(ri) == 0:
            continue
        a, b, c = tri[fi, 0], tri[fi, 1], tri[fi, 2]
        e1, e2 = b - a, c - a
        dd = d[ri]
        pv = np.cross(dd, e2)
        det = (e1 * pv).sum(1)
        ok = np.abs(det) > 1e-14
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        tv = -a  # origin - a
        u = (tv * pv).sum(1) * inv
        qv = np.cross(tv, e1)
        w = (dd * qv).sum(1) * inv
        t = (e2 * qv).sum(1) * inv
        hit = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 1e-9)
        ri, fi, t, u, w = ri[hit], fi[hit], t[hit], u[hit], w[hit]
        order = np.lexsort((fi, t, ri))  # per ray, nearest first (ties: lower face index)
        ri, fi, t, u, w = ri[order], fi[order], t[order], u[order], w[order]
        first = np.ones(len(ri), dtype=bool)
        first[1:] = ri[1:] != ri[:-1]
        ri, fi, t, u, w = ri[first], fi[first], t[first], u[first], w[first]
        t_best[s + ri] = t
        f_best[s + ri] = fi
        b_best[s + ri] = np.stack([1 - u - w, u, w], 1)
    return t_best, f_best, b_best


def point_ray_distance(p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Distance of points p (..., 3) to the rays from the origin along unit d (..., 3)."""
    along = (p * d).sum(-1, keepdims=True)
    return np.linalg.norm(p - along * d, axis=-1)


# ----------------------------------------------------------------------------------------
# MediaPipe


class FaceMesh:
    def __init__(self):
        import mediapipe as mp

        self._fm = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, refine_landmarks=False, max_num_faces=1, min_detection_confidence=0.5
        )

    def __call__(self, rgb: np.ndarray):
        """(468, 2) landmark pixels, or None when no face is found."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = self._fm.process(rgb)
        if not res.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        return np.array([(p.x * w, p.y * h, p.z * w) for p in res.multi_face_landmarks[0].landmark])

    def close(self):
        self._fm.close()


# ----------------------------------------------------------------------------------------
# Fitting one landmark


def barycentric_grid(step: float = 0.05) -> np.ndarray:
    n = int(round(1 / step))
    g = [(i / n, j / n, (n - i - j) / n) for i in range(n + 1) for j in range(n + 1 - i)]
    return np.array(g)


def landmark_error(rec: dict, k: int, kind: str, P: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """(...) metres: how far points P (..., 3) (camera frame of render rec) are from landmark
    k there; hidden (...) in [0, 1] is the hidden fraction of each point's vertices."""
    ray = rec["rays"][k]
    d_ray = point_ray_distance(P, ray)
    if kind == "surface" and rec["surface"][k]:
        d = np.linalg.norm(P - rec["hits"][k], axis=-1)
    elif kind == "contour":
        along = (P * ray).sum(-1)
        d = np.sqrt(d_ray**2 + (DEPTH_WEIGHT * (along - rec["along"][k])) ** 2)
    else:
        d = d_ray
    return d + (CONTOUR_HIDDEN_PENALTY if kind == "contour" else HIDDEN_PENALTY) * hidden


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=OUT_JSON)
    ap.add_argument("--png", type=Path, default=OUT_PNG)
    args = ap.parse_args()

    import hmrkit.body
    from anny.face_segmentation import get_face_segmentation_mask
    from scipy.spatial import cKDTree

    from hmrkit.conventions import FACE, FACE_MESH_INDICES
    from hmrkit.conventions import get as get_convention
    from hmrkit.render import render_mesh

    t0 = time.time()
    body = hmrkit.body.load("anny")
    faces = body.faces.numpy()
    V = body.num_vertices
    head_mask = get_face_segmentation_mask(body.anny, ["head"]).numpy()
    head_vertices = np.unique(faces[head_mask].reshape(-1))
    v_mean = body_vertices(body, {})
    nose, top = anchor_vertices(v_mean, head_vertices)
    # the triangles that can occlude or be hit: everything above the shoulders
    in_region = (v_mean[faces, 1] > v_mean[nose, 1] - 0.20).all(1)
    region_index = np.nonzero(in_region)[0]
    region = faces[region_index]
    region_pos = np.full(len(faces), -1)
    region_pos[region_index] = np.arange(len(region_index))
    # candidate vertices: the head part (face, scalp, ears, upper neck), the eyes' fronts,
    # the eyelids and the mouth (lips)
    cand_mask = get_face_segmentation_mask(
        body.anny, ["head", "eye_front.L", "eye_front.R", "eye_cavity.L", "eye_cavity.R", "mouth_cavity"]
    ).numpy()
    candidates = np.unique(faces[cand_mask].reshape(-1))
    incident = [[] for _ in range(V)]  # vertex -> its triangles
    for k, fce in enumerate(faces):
        for i in fce:
            incident[i].append(k)
    # Anny's mesh is left/right symmetric: each vertex's mirror image (x -> -x) on the mean
    # body (within 0.4 mm)
    mirror = cKDTree(v_mean).query(v_mean * np.array([-1.0, 1.0, 1.0]))[1]

    names = list(FACE)
    L = len(names)
    mp_index = np.array([FACE_MESH_INDICES[n] for n in names])
    kinds = [landmark_kind(n) for n in names]
    surface_kind = np.array([k == "surface" for k in kinds])
    flip = get_convention("face").flip
    fm = FaceMesh()

    records = []
    for label, pheno, yaw, jaw in views():
        v = v_mean if (pheno == "mean" and jaw == 0.0) else body_vertices(body, PHENOTYPES[pheno], jaw)
        vc, K = face_camera(v, nose, top, yaw)
        rgb, _ = render_mesh(vc, faces, K, (IMAGE, IMAGE), colors=SKIN, supersample=2)
        found = fm(rgb)
        if found is None:
            print(f"  {label:16s} no face found by MediaPipe: skipped")
            continue
        lm, lm_z = found[mp_index, :2], found[mp_index, 2]
        rays = np.concatenate([(lm - K[:2, 2]) / np.array([K[0, 0], K[1, 1]]), np.ones((L, 1))], 1)
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        # back-projection: the first triangle each landmark's ray hits
        tri = vc[region]
        tri_uv = project(tri, K)
        t, fhit, _ = raycast(rays, tri, tri_uv, K)
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        front = np.zeros(L, dtype=bool)
        ok = fhit >= 0
        front[ok] = (normals[fhit[ok]] * rays[ok]).sum(1) < 0
        hits = np.where(ok[:, None], t[:, None] * rays, np.nan)
        surface = front & surface_kind
        # MediaPipe's relative depths (landmark z, px), calibrated against the back-projected
        # surface landmarks, place the contour landmarks in depth along their rays
        A = np.stack([np.ones(int(surface.sum())), lm_z[surface]], 1)
        coef, *_ = np.linalg.lstsq(A, hits[surface, 2], rcond=None)
        depth_resid = np.abs(hits[surface, 2] - A @ coef)
        along = (coef[0] + coef[1] * lm_z) / rays[:, 2]
        # visibility of the candidate vertices near a ray: a ray cast to each
        d_ray = point_ray_distance(vc[candidates][None], rays[:, None])  # (L, C)
        near = candidates[(d_ray < CANDIDATE_RADIUS).any(0)]
        exclude = np.zeros((len(near), len(region)), dtype=bool)
        for r, i in enumerate(near):
            own = region_pos[incident[i]]
            exclude[r, own[own >= 0]] = True
        tv, _, _ = raycast(vc[near], tri, tri_uv, K, exclude=exclude)
        dist = np.linalg.norm(vc[near], axis=1)
        visible = np.zeros(V, dtype=bool)
        visible[near] = tv * dist > dist - OCCLUSION_TOL
        records.append(dict(label=label, v=vc, K=K, rgb=rgb, lm=lm, rays=rays, hits=hits, surface=surface,
                            along=along, visible=visible, near=near))
        print(f"  {label:16s} face found: {int(surface.sum())}/{int(surface_kind.sum())} surface landmarks on a "
              f"front face; MediaPipe depth vs back-projection {1000 * depth_resid.mean():.1f} mm mean "
              f"({1000 * depth_resid.max():.1f} max); {int(visible.sum())}/{len(near)} candidates visible")
    fm.close()
    R = len(records)
    if R < 3:
        raise SystemExit(f"MediaPipe found the face in only {R} renders")

    # 1. score every candidate vertex for every landmark: the mean error over the renders
    score = np.full((L, V), np.inf)
    for k in range(L):
        s = np.zeros(len(candidates))
        for rec in records:
            s += landmark_error(rec, k, kinds[k], rec["v"][candidates], ~rec["visible"][candidates]) / R
        score[k, candidates] = s

    # 2. choose, left/right symmetrically: a pair's right landmark takes vertex c and its left
    # one c's mirror image, scored together (the renders and their mirror images); a midline
    # landmark takes the midpoint of a point and its mirror image. Then refine the vertex
    # into a barycentric blend of one of its triangles.
    grid = barycentric_grid(0.05)
    entries: list = [None] * L
    chosen_vertex = np.zeros(L, dtype=np.int64)

    def blend_error(k, tri, mtri, w):
        """mean error over the renders of landmark k at the blend w (G, 3) of tri, or, when
        mtri is given (midline), of the midpoint of the blends of tri and mtri."""
        e = 0.0
        for rec in records:
            P, hid = w @ rec["v"][tri], w @ (~rec["visible"][tri])
            if mtri is not None:
                P = 0.5 * (P + w @ rec["v"][mtri])
                hid = 0.5 * (hid + w @ (~rec["visible"][mtri]))
            e = e + landmark_error(rec, k, kinds[k], P, hid) / R
        return e

    for k in range(L):
        m = flip[k]
        if m < k:
            continue
        pair = m != k
        S = score[k] + score[m][mirror]
        c = int(np.argmin(S))
        chosen_vertex[k], chosen_vertex[m] = c, mirror[c]
        best_e, best = S[c], (np.array([c, c, c]), np.array([1.0, 0.0, 0.0]))
        for f_ in incident[c]:
            tri, mtri = faces[f_], mirror[faces[f_]]
            if pair:
                e = blend_error(k, tri, None, grid) + blend_error(m, mtri, None, grid)
            else:
                e = 2 * blend_error(k, tri, mtri, grid)
            g = int(np.argmin(e))
            if e[g] < best_e - 1e-7:
                best_e, best = e[g], (tri, grid[g])
        tri, w = best
        if pair:
            entries[k], entries[m] = merge(tri, w), merge(mirror[tri], w)
        else:
            entries[k] = merge(np.concatenate([tri, mirror[tri]]), np.concatenate([w, w]) / 2)

    def blend(rec, entries=entries):
        return np.stack([sum(w * rec["v"][i] for i, w in e) for e in entries])

    def errors_of(points_fn, kinds_override=None):
        """(R, L) mm: each render's error of the points, the ray distance for the contour."""
        E = np.zeros((R, L))
        for r, rec in enumerate(records):
            P = points_fn(rec)
            for k in range(L):
                kind = "edge" if kinds[k] == "contour" else kinds[k]
                E[r, k] = 1000 * landmark_error(rec, k, kind, P[k], np.zeros(()))
        return E

    E = errors_of(blend)
    E_vertex = errors_of(lambda rec: rec["v"][chosen_vertex])
    depth_dev = np.stack([1000 * ((blend(rec) * rec["rays"]).sum(1) - rec["along"]) for rec in records])
    reproj = np.stack([np.linalg.norm(project(blend(rec), rec["K"]) - rec["lm"], axis=1) for rec in records])
    hidden = np.stack([[sum(w * (~rec["visible"][i]) for i, w in e) > 0.5 for e in entries] for rec in records])

    print(f"\n{R} renders with a face. Consistency: the distance of the chosen point to the back-projected "
          "point (surface landmarks) or to the landmark's ray (jaw contour, inner lips) in each render [mm], "
          "mean and max over the renders; '(vtx)': the same for the vertex before refinement. Reprojection: "
          "the distance of the projected point to MediaPipe's landmark [px]. For the contour, 'depth': the "
          "mean offset along the ray from MediaPipe's own (calibrated) depth [mm], positive = deeper.")
    print(f"{'landmark':23s} {'mp':>3s}  {'entry (vertex:weight)':44s} {'mean':>5s} {'max':>5s} {'(vtx)':>5s}"
          f"  {'px':>5s} {'max':>5s}")
    for k, n in enumerate(names):
        ent = " ".join(f"{i}:{w:.3g}" for i, w in entries[k])
        extra = ""
        if kinds[k] == "contour":
            extra = f"  contour, depth {depth_dev[:, k].mean():+.0f}"
        elif kinds[k] == "edge":
            extra = "  ray"
        if hidden[:, k].any():
            extra += f"  hidden in {int(hidden[:, k].sum())}"
        print(f"{n:23s} {mp_index[k]:3d}  {ent:44s} {E[:, k].mean():5.1f} {E[:, k].max():5.1f} "
              f"{E_vertex[:, k].mean():5.1f}  {reproj[:, k].mean():5.1f} {reproj[:, k].max():5.1f}{extra}")
    c_ = np.array([k == "contour" for k in kinds])
    s_ = ~c_
    print(f"\nface (all but the jaw contour, {int(s_.sum())}): consistency mean {E[:, s_].mean():.2f} mm "
          f"(vertex only {E_vertex[:, s_].mean():.2f}), worst landmark {E[:, s_].mean(0).max():.2f} mm mean, "
          f"{E[:, s_].max():.1f} mm max; reprojection mean {reproj[:, s_].mean():.2f} px, median "
          f"{np.median(reproj[:, s_]):.2f} px, max {reproj[:, s_].max():.1f} px")
    print(f"jaw contour ({int(c_.sum())}): consistency mean {E[:, c_].mean():.2f} mm "
          f"(vertex only {E_vertex[:, c_].mean():.2f}), worst landmark {E[:, c_].mean(0).max():.2f} mm mean, "
          f"{E[:, c_].max():.1f} mm max; reprojection mean {reproj[:, c_].mean():.2f} px, median "
          f"{np.median(reproj[:, c_]):.2f} px, max {reproj[:, c_].max():.1f} px")
    f0 = records[0]["K"][0, 0]
    print(f"(mean body's renders: f = {f0:.0f} px at {DISTANCE} m, so 1 mm ~ {f0 / DISTANCE / 1000:.1f} px)")
    print("per render (reprojection, px):")
    for r, rec in enumerate(records):
        print(f"  {rec['label']:16s} face mean {reproj[r, s_].mean():5.2f} max {reproj[r, s_].max():5.1f} "
              f"({names[int(np.argmax(np.where(s_, reproj[r], -1)))]}); contour mean {reproj[r, c_].mean():5.2f} "
              f"max {reproj[r, c_].max():5.1f} ({names[int(np.argmax(np.where(c_, reproj[r], -1)))]})")
    frontal = [r for r, rec in enumerate(records) if rec["label"].endswith("yaw +0")]
    print(f"frontal renders only: face {reproj[frontal][:, s_].mean():.2f} px mean, "
          f"{reproj[frontal][:, s_].max():.1f} max; contour {reproj[frontal][:, c_].mean():.2f} mean, "
          f"{reproj[frontal][:, c_].max():.1f} max")

    source = (
        f"scripts/build_anny_face_landmarks.py, on Anny's mesh of {V} vertices: the head rendered (800 px, camera "
        f"0.7 m in front of the nose) for the phenotypes {', '.join(PHENOTYPES)} at yaw "
        f"{', '.join(f'{y:+.0f}' for y in YAWS)} degrees, plus each frontally with jawOpen={JAW_OPEN}; MediaPipe "
        "FaceMesh (mediapipe 0.10.14, static_image_mode, refine_landmarks=False) run on each render; each "
        "landmark back-projected onto the mesh by ray casting and the vertex with the smallest mean 3D distance "
        "to the back-projected points over the renders chosen (the jaw contour, a silhouette in MediaPipe: the "
        "vertex nearest to the landmark rays across the views, MediaPipe's landmark depth breaking ties along "
        "the rim; the inner lips: the visible vertex nearest to the rays), left/right pairs chosen together as "
        "mirror images, then refined into a barycentric blend of one of its triangles. Over "
        f"{R} renders: face landmarks {E[:, s_].mean():.1f} mm mean consistency, {reproj[:, s_].mean():.1f} px "
        f"mean reprojection; jaw contour {E[:, c_].mean():.1f} mm, {reproj[:, c_].mean():.1f} px "
        f"(1 mm ~ {f0 / DISTANCE / 1000:.1f} px)."
    )
    # one landmark per line
    lines = [f"  {json.dumps(n)}: {json.dumps([[int(i), float(w)] for i, w in entries[k]])}"
             for k, n in enumerate(names)]
    text = "{\n \"source\": " + json.dumps(source) + ",\n \"landmarks\": {\n" + ",\n".join(lines) + "\n }\n}\n"
    assert json.loads(text)["landmarks"].keys() == set(names)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text)
    print(f"\nwrote {args.json}")
    args.png.parent.mkdir(parents=True, exist_ok=True)
    save_picture(args.png, records, blend)
    print(f"wrote {args.png} ({time.time() - t0:.0f} s)")


def merge(index, weights) -> list:
    """[(vertex, weight), ...]: duplicates summed, zero weights dropped, weights rounded to
    4 decimals and summing to 1, sorted by vertex."""
    acc: dict = {}
    for i, w in zip(np.asarray(index).tolist(), np.asarray(weights).tolist()):
        acc[int(i)] = acc.get(int(i), 0.0) + float(w)
    items = sorted((i, w) for i, w in acc.items() if w > 1e-6)
    total = sum(w for _, w in items)
    items = [(i, round(w / total, 4)) for i, w in items]
    items[-1] = (items[-1][0], round(1.0 - sum(w for _, w in items[:-1]), 4))
    return items


def save_picture(path: Path, records, blend, panels=("mean yaw +0", "male yaw +15", "child jawOpen",
                                                           "elder yaw -15")):
    """Renders with MediaPipe's landmarks (red) and the regressed ones (blue), cropped to the face."""
    from PIL import Image, ImageDraw, ImageFont

    by_label = {r["label"]: r for r in records}
    tiles = []
    for label in panels:
        rec = by_label.get(label)
        if rec is None:
            continue
        img = Image.fromarray(rec["rgb"])
        d = ImageDraw.Draw(img)
        ours = project(blend(rec), rec["K"])
        for a, b in zip(rec["lm"], ours):
            d.line([tuple(a), tuple(b)], fill=(60, 60, 60), width=1)
        for x, y in rec["lm"]:
            d.ellipse([x - 4, y - 4, x + 4, y + 4], outline=(220, 30, 30), width=2)
        for x, y in ours:
            d.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=(30, 90, 230))
        pts = np.concatenate([rec["lm"], ours])
        x0, y0 = pts.min(0) - 40
        x1, y1 = pts.max(0) + 40
        side = max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        crop = img.crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
        crop = crop.resize((560, 560), Image.LANCZOS)
        try:
            font = ImageFont.load_default(size=18)
        except TypeError:  # Pillow < 10.1
            font = ImageFont.load_default()
        draw = ImageDraw.Draw(crop)
        draw.text((10, 8), label, fill=(0, 0, 0), font=font)
        draw.text((10, 32), "MediaPipe FaceMesh", fill=(220, 30, 30), font=font)
        draw.text((10, 56), "Anny face keypoints", fill=(30, 90, 230), font=font)
        tiles.append(np.asarray(crop))
    Image.fromarray(np.concatenate(tiles, axis=1)).save(path)


if __name__ == "__main__":
    main()
