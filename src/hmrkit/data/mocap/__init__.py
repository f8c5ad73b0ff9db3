"""Motion-capture readers (BVH, Acclaim ASF/AMC) and forward kinematics, in numpy.

Written from the format descriptions; no third-party mocap package.

- ``bvh``: the BVH reader and its forward kinematics (conventions in its docstring).
- ``asf_amc``: the Acclaim ASF/AMC readers and Acclaim forward kinematics.
- ``load``: ``load_mocap`` (either format by suffix), ``list_mocap_files``.
- ``clip``: ``MocapClip``, what every reader returns, and ``subsample``.
- ``skeletons``: the tables from source joints to hmrkit's semantic joints.
- ``canonical``: ``canonicalize`` (no translation, no heading), ``mirror``.
- ``rotations``, ``reading``: helpers the readers share.

World frame of every clip: Y up, right-handed, metres. CMU data (ASF/AMC and the CMU BVH
conversions) is already Y up with the rest pose facing +z, so the subject's left is +x
in the rest pose; no axis change is applied (other BVH files are read as they are).

Joints. ``MocapClip.joint_names`` are the source's names. Where a joint *is* differs: in
BVH a joint is where its bone starts; in ASF/AMC every joint but the root is a bone and
sits at the bone's END. ``MocapClip.semantic`` maps either to hmrkit's semantic names
(``conventions.SMPL24`` and a few extras), where a joint's position is where its body part
starts (the knee is where the shin starts), through the explicit tables of ``skeletons``.

``rotations[:, j]`` is joint j's rotation relative to its parent, expressed in the
world-aligned rest axes: G_j = G_parent(j) @ rotations[:, j] (world rotation for the root).

Reading errors a user can cause raise ``hmrkit.errors.InputError`` naming the file.
"""

from hmrkit.data.mocap.asf_amc import AsfSkeleton, _parse_amc, load_amc, load_asf  # noqa: F401 (_parse_amc: tests)
from hmrkit.data.mocap.bvh import load_bvh
from hmrkit.data.mocap.canonical import canonicalize, mirror, mirror_names
from hmrkit.data.mocap.clip import MocapClip, subsample
from hmrkit.data.mocap.load import list_mocap_files, load_mocap
from hmrkit.data.mocap.reading import CMU_UNIT_M
from hmrkit.data.mocap.skeletons import SEMANTIC_NAMES, SEMANTIC_TABLES

__all__ = [
    "MocapClip", "AsfSkeleton", "load_mocap", "load_bvh", "load_amc", "load_asf",
    "subsample", "list_mocap_files", "canonicalize", "mirror", "mirror_names",
    "SEMANTIC_TABLES", "SEMANTIC_NAMES", "CMU_UNIT_M",
]
