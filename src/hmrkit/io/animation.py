"""Animation exports of tracked people: one motion per track of a results npz.

``track_motions(body, results)`` turns the arrays of ``hmrkit run``'s npz (the output
contract, docs/outputs.md) into one ``TrackMotion`` per track: the body model's
regression skeleton (``body.joint_names``, ``body.parents``) at the track's own rest shape,
its local joint rotations per frame, and the root's position. ``save_bvh`` writes one as
BVH.

Frames and units (docs/outputs.md, "Animations"):

- +Y up, x right, z towards the viewer (the meshes' frame: ``yup_from_camera``, a 180
  degree turn about x of the camera frame), the camera at the origin;
- BVH lengths in centimetres (the usual unit of BVH files; Blender's importer scales
  them, hmrkit's reader guesses it);
- the root joint carries the global orientation and the root's (pelvis's) position;
  every other joint its local rotation, in its parent's frame, exactly the body model's
  ``pose`` rotation (hmrkit's models rotate joints in the rest skeleton's axes, as BVH
  does with offsets taken from the rest pose).

The frames of a motion run from the track's first valid frame to its last; a frame in
between where the track has no valid estimate (a gap) holds the previous valid pose.

A BVH skeleton is a chain of rigid offsets. Anny's mesh moves some joints through chains
of several bones (the spine, the neck), so the regression skeleton driven by these
rotations puts its joints up to about 4 cm from the mesh's own joints (the head is the
farthest; 13 mm is the mean of the per-joint maxima over random library poses). The
export is exact for the rotations, not for those joints' positions. A track whose shape
changes from frame to frame (``spin`` estimates one per frame) is played with one shape,
the median.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmrkit.io.atomic import atomic_write

_YUP = np.diag([1.0, -1.0, -1.0])  # camera frame -> +Y up (a rotation: 180 degrees about x)
BVH_CM = 100.0  # BVH file units per metre


@dataclass(frozen=True)
class TrackMotion:
    """One tracked person's motion, +Y up, metres.

    track_id: the npz's track id; joint_names (J,), parents (J,) (-1 for the root, parents
    first); rest (J, 3): joint positions at the track's rest shape, all rotations
    identity, root at the origin; rotations (T, J, 3, 3): per frame the root's global
    orientation (index 0) and each joint's local rotation; root (T, 3): the root joint's
    position; frame_index (T,): the input's frames the motion covers; filled (T,) bool:
    True where a gap held the previous pose; fps: frames per second."""

    track_id: int
    joint_names: tuple
    parents: tuple
    rest: np.ndarray
    rotations: np.ndarray
    root: np.ndarray
    frame_index: np.ndarray
    filled: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    def joint_positions(self) -> np.ndarray:
        """(T, J, 3) forward kinematics of the skeleton: the joints this motion plays."""
        T, J = self.rotations.shape[:2]
        P = np.zeros((T, J, 3))
        G = np.zeros((T, J, 3, 3))
        for j, p in enumerate(self.parents):
            if p < 0:
                P[:, j], G[:, j] = self.root, self.rotations[:, j]
            else:
                P[:, j] = P[:, p] + np.einsum("tab,b->ta", G[:, p], self.rest[j] - self.rest[p])
                G[:, j] = G[:, p] @ self.rotations[:, j]
        return P


def track_motions(body, results) -> list[TrackMotion]:
    """The motion of every track of a results npz (a mapping of its arrays, or a path).

    body: the BodyModel the results came from (for the rest skeleton at each track's shape:
    its median over the track's valid frames). Tracks never valid give no motion."""
    import torch

    from hmrkit.types import BodyParams

    z = np.load(results, allow_pickle=False) if isinstance(results, (str, Path)) else results
    if str(z["body_model"]) != body.name:
        raise ValueError(f"the results are of body model {str(z['body_model'])!r}, not {body.name!r}")
    names = [str(n) for n in z["joint_names"]]
    pose_names = [str(n) for n in z["pose_joint_names"]]
    if names != list(body.joint_names):
        raise ValueError("the results' skeleton is not this body model's")
    parents = tuple(int(p) for p in body.parents)
    pose_col = [pose_names.index(n) if n in pose_names else -1 for n in names]
    valid = np.asarray(z["valid"])
    fps = float(z["fps"])
    motions = []
    for p, tid in enumerate(np.asarray(z["track_id"]).tolist()):
        rows = np.nonzero(valid[:, p])[0]
        if rows.size == 0:
            continue
        frames = np.arange(rows[0], rows[-1] + 1)
        # each frame takes the last valid frame at or before it
        src = rows[np.searchsorted(rows, frames, side="right") - 1]
        shape = np.median(np.asarray(z["shape"])[rows, p], axis=0)
        params = BodyParams(torch.eye(3, dtype=body.dtype)[None],
                            torch.eye(3, dtype=body.dtype).expand(1, body.num_pose_joints, 3, 3).clone(),
                            torch.as_tensor(shape, dtype=body.dtype)[None], torch.zeros(1, 3, dtype=body.dtype),
                            None if not body.num_expression else torch.zeros(1, body.num_expression, dtype=body.dtype))
        with torch.no_grad():
            rest = body(params).joints[0].double().numpy()
        rest = rest - rest[0]
        go = np.asarray(z["global_orient"], np.float64)[src, p]
        pose = np.asarray(z["body_pose"], np.float64)[src, p]
        R = np.tile(np.eye(3), (len(frames), len(names), 1, 1))
        for j, c in enumerate(pose_col):
            if c >= 0:
                R[:, j] = pose[:, c]
        R[:, 0] = _YUP @ go if pose_col[0] < 0 else _YUP @ go @ R[:, 0]
        root = np.asarray(z["transl"], np.float64)[src, p] @ _YUP.T
        motions.append(TrackMotion(int(tid), tuple(names), parents, rest, R, root, frames,
                                   ~valid[frames, p], fps))
    return motions


def _euler_zyx_deg(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) degrees (z, y, x) with R = Rz @ Ry @ Rx (BVH's ``Zrotation
    Yrotation Xrotation``, rotations about moving axes)."""
    import roma
    import torch

    return roma.rotmat_to_euler("ZYX", torch.as_tensor(R, dtype=torch.float64), degrees=True).numpy()


def _children(parents) -> list[list[int]]:
    out = [[] for _ in parents]
    for j, p in enumerate(parents):
        if p >= 0:
            out[p].append(j)
    return out


def save_bvh(path, motion: TrackMotion) -> Path:
    """Write ``motion`` as BVH (atomically): the regression skeleton with its rest offsets
    (cm), the root's position and ZYX Euler rotations per frame (degrees), an End Site
    on every leaf (a tenth of its bone along it)."""
    path = Path(path)
    kids = _children(motion.parents)
    off = motion.rest * BVH_CM
    lines = ["HIERARCHY"]

    def joint(j: int, depth: int):
        pad = "\t" * depth
        p = motion.parents[j]
        head = "ROOT" if p < 0 else "JOINT"
        o = np.zeros(3) if p < 0 else off[j] - off[p]
        lines.append(f"{pad}{head} {motion.joint_names[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}\tOFFSET {o[0]:.6f} {o[1]:.6f} {o[2]:.6f}")
        if p < 0:
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
        else:
            lines.append(f"{pad}\tCHANNELS 3 Zrotation Yrotation Xrotation")
        for c in kids[j]:
            joint(c, depth + 1)
        if not kids[j]:
            end = 0.1 * o if p >= 0 else np.array([0.0, 1.0, 0.0])
            lines.append(f"{pad}\tEnd Site")
            lines.append(pad + "\t{")
            lines.append(f"{pad}\t\tOFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}")
            lines.append(pad + "\t}")
        lines.append(pad + "}")

    roots = [j for j, p in enumerate(motion.parents) if p < 0]
    if len(roots) != 1:
        raise ValueError(f"save_bvh: the skeleton needs one root, it has {len(roots)}")
    joint(roots[0], 0)
    order = []

    def visit(j):
        order.append(j)
        for c in kids[j]:
            visit(c)

    visit(roots[0])
    eul = _euler_zyx_deg(motion.rotations[:, order])  # (T, J, 3)
    lines += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    root_cm = motion.root * BVH_CM
    for t in range(motion.num_frames):
        vals = [f"{v:.6f}" for v in root_cm[t]] + [f"{v:.6f}" for v in eul[t].reshape(-1)]
        lines.append(" ".join(vals))
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
