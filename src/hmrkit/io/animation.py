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
rotations puts its joints a few centimetres from the mesh's own joints, the head
farthest (scripts/animation_check.py prints how far: 16-69 mm on random library poses). The
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
    True where a gap held the previous pose; fps: frames per second; shape (S,): the
    body model's shape of ``rest``."""

    track_id: int
    joint_names: tuple
    parents: tuple
    rest: np.ndarray
    rotations: np.ndarray
    root: np.ndarray
    frame_index: np.ndarray
    filled: np.ndarray
    fps: float
    shape: np.ndarray = None  # (S,) the body model's shape of the rest skeleton (the track's median)

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


def _rest_output(body, shape: np.ndarray):
    """The body at rest (identity rotations and orientation, no translation) with ``shape``
    (S,): its BodyOutput, body frame (+Y up)."""
    from dataclasses import replace

    import torch

    params = replace(body.mean_params(1), shape=torch.as_tensor(shape, dtype=body.dtype)[None])
    with torch.no_grad():
        return body(params)


def track_motions(body, results) -> list[TrackMotion]:
    """The motion of every track of a results npz (a mapping of its arrays, or a path).

    body: the BodyModel the results came from (for the rest skeleton at each track's shape:
    its median over the track's valid frames). Tracks never valid give no motion."""
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
        rest = _rest_output(body, shape).joints[0].double().numpy()
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
                                   ~valid[frames, p], fps, shape))
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


def rest_mesh(body, motion: TrackMotion):
    """The track's rest mesh: (vertices (V, 3) +Y up metres with the root at the origin,
    faces (F, 3)) at the track's rest shape (the one ``motion.rest`` was built from)."""
    out = _rest_output(body, motion.shape)
    v = (out.vertices[0] - out.joints[0, 0]).double().numpy()
    return v, body.faces.numpy()


def skin_weights(body) -> np.ndarray:
    """(V, J) the mesh's weights onto the regression skeleton: Anny's bones folded into
    their joints (``AnnyBody.skeleton_weights``), the SMPL family's own LBS weights."""
    if hasattr(body, "skeleton_weights"):
        return body.skeleton_weights().double().numpy()
    w = getattr(body, "lbs_weights", None)
    if w is None or w.shape[1] != len(body.joint_names):
        raise ValueError(f"{body.name}: no skinning weights onto its regression skeleton")
    return w.double().numpy()


def _quat_xyzw(R: np.ndarray) -> np.ndarray:
    import roma
    import torch

    return roma.rotmat_to_unitquat(torch.as_tensor(R, dtype=torch.float64)).numpy()  # roma: (x, y, z, w)


def save_anim_glb(path, motion: TrackMotion, body) -> Path:
    """Write ``motion`` as an animated glTF 2.0 binary (atomically), with pygltflib: one
    skinned mesh (the track's rest mesh, 4 weights a vertex onto the regression skeleton,
    inverse bind matrices of the rest joints) and one animation (a rotation channel per
    joint, the root's translation; linear, at the motion's fps). +Y up, metres."""
    try:
        import pygltflib as g
    except ImportError:
        raise ImportError('the animated glTF export needs pygltflib: pip install "hmrkit[io]"') from None
    path = Path(path)
    V, F = rest_mesh(body, motion)
    W = skin_weights(body)
    top = np.argsort(-W, axis=1)[:, :4]
    tw = np.take_along_axis(W, top, 1)
    tw = tw / np.maximum(tw.sum(1, keepdims=True), 1e-12)
    top = np.where(tw > 0, top, 0)  # glTF: a joint of zero weight is written as joint 0
    J = len(motion.joint_names)
    T = motion.num_frames
    blobs: list[bytes] = []
    views, accessors = [], []

    def add(array: np.ndarray, ctype: int, kind: str, target=None, minmax: bool = False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        offset = sum(len(b) for b in blobs)
        pad = (-len(data)) % 4
        blobs.append(data + b"\0" * pad)
        views.append(g.BufferView(buffer=0, byteOffset=offset, byteLength=len(data), target=target))
        count = array.shape[0]
        acc = g.Accessor(bufferView=len(views) - 1, componentType=ctype, count=count, type=kind)
        if minmax:
            acc.min = array.min(0).reshape(-1).tolist() if array.ndim > 1 else [float(array.min())]
            acc.max = array.max(0).reshape(-1).tolist() if array.ndim > 1 else [float(array.max())]
        accessors.append(acc)
        return len(accessors) - 1

    pos = add(V.astype(np.float32), g.FLOAT, g.VEC3, g.ARRAY_BUFFER, minmax=True)
    idx = add(F.astype(np.uint32).reshape(-1), g.UNSIGNED_INT, g.SCALAR, g.ELEMENT_ARRAY_BUFFER)
    joints0 = add(top.astype(np.uint16), g.UNSIGNED_SHORT, g.VEC4, g.ARRAY_BUFFER)
    weights0 = add(tw.astype(np.float32), g.FLOAT, g.VEC4, g.ARRAY_BUFFER)
    ibm = np.tile(np.eye(4), (J, 1, 1))
    ibm[:, :3, 3] = -motion.rest  # the bind pose: every joint at its rest position, unrotated
    ibm_acc = add(ibm.transpose(0, 2, 1).reshape(J, 16).astype(np.float32), g.FLOAT, g.MAT4)  # column-major
    times = (np.arange(T) / motion.fps).astype(np.float32)
    t_acc = add(times, g.FLOAT, g.SCALAR, minmax=True)
    q = _quat_xyzw(motion.rotations).astype(np.float32)  # (T, J, 4)
    rot_acc = [add(np.ascontiguousarray(q[:, j]), g.FLOAT, g.VEC4) for j in range(J)]
    tr_acc = add(motion.root.astype(np.float32), g.FLOAT, g.VEC3)

    kids = _children(motion.parents)
    nodes = []
    for j in range(J):
        p = motion.parents[j]
        tr = motion.root[0] if p < 0 else motion.rest[j] - motion.rest[p]
        nodes.append(g.Node(name=motion.joint_names[j], translation=[float(x) for x in tr],
                            rotation=[float(x) for x in q[0, j]], children=kids[j] or None))
    mesh_node = len(nodes)
    nodes.append(g.Node(name=f"person_{motion.track_id}", mesh=0, skin=0))
    root = [j for j, p in enumerate(motion.parents) if p < 0][0]
    samplers, channels = [], []
    for j in range(J):
        samplers.append(g.AnimationSampler(input=t_acc, output=rot_acc[j], interpolation="LINEAR"))
        channels.append(g.AnimationChannel(sampler=len(samplers) - 1,
                                           target=g.AnimationChannelTarget(node=j, path="rotation")))
    samplers.append(g.AnimationSampler(input=t_acc, output=tr_acc, interpolation="LINEAR"))
    channels.append(g.AnimationChannel(sampler=len(samplers) - 1,
                                       target=g.AnimationChannelTarget(node=root, path="translation")))
    blob = b"".join(blobs)
    gltf = g.GLTF2(
        asset=g.Asset(generator="hmrkit", version="2.0"),
        scene=0, scenes=[g.Scene(nodes=[root, mesh_node])], nodes=nodes,
        meshes=[g.Mesh(name="body", primitives=[g.Primitive(
            attributes=g.Attributes(POSITION=pos, JOINTS_0=joints0, WEIGHTS_0=weights0), indices=idx,
            material=0)])],
        materials=[g.Material(name="skin", pbrMetallicRoughness=g.PbrMetallicRoughness(
            baseColorFactor=[0.7, 0.78, 0.9, 1.0], metallicFactor=0.0, roughnessFactor=0.7), doubleSided=True)],
        skins=[g.Skin(joints=list(range(J)), inverseBindMatrices=ibm_acc, skeleton=root)],
        animations=[g.Animation(name=f"track_{motion.track_id}", samplers=samplers, channels=channels)],
        accessors=accessors, bufferViews=views, buffers=[g.Buffer(byteLength=len(blob))],
    )
    gltf.set_binary_blob(blob)
    data = b"".join(gltf.save_to_bytes())
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path
