"""The clip every reader returns (``MocapClip``), and resampling it in time."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from hmrkit.conventions import SMPL24
from hmrkit.data.mocap.skeletons import SEMANTIC_TABLES


@dataclass(frozen=True)
class MocapClip:
    """One motion-capture take after forward kinematics.

    World frame: Y up, right-handed, metres (CMU: the rest pose faces +z, left is +x)."""

    joint_names: tuple[str, ...]  # (J,) source names (BVH End Sites as '<parent>_end')
    parents: tuple[int, ...]      # (J,) parent index, -1 for the root; parents come first
    positions: np.ndarray         # (T, J, 3) float32 metres, world (``hmrkit.data.mocap``)
    rotations: np.ndarray         # (T, J, 3, 3) float32 local rotations (``hmrkit.data.mocap``)
    rest_positions: np.ndarray    # (J, 3) float32 metres, all rotations identity, root at 0
    fps: float                    # frames per second
    source: str                   # the file read (the .amc or .bvh)
    skeleton: str = "unknown"     # key of SEMANTIC_TABLES that fits, or "unknown"
    scale: float = 1.0            # metres per length unit of the file

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Index of the source joint ``name``."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"{self.source}: no joint {name!r}; joints are {list(self.joint_names)}") from None

    def semantic(self, names: Sequence[str] = SMPL24,
                 table: Mapping[str, Sequence[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Semantic joints: ((T, len(names), 3) float32 metres, world; (len(names),) bool mask).

        ``names`` are hmrkit semantic names (default ``conventions.SMPL24``; see
        ``SEMANTIC_NAMES``). Names the skeleton lacks get zeros and mask False. ``table``
        overrides the mapping (semantic name -> source joints averaged)."""
        if table is None:
            if self.skeleton not in SEMANTIC_TABLES:
                raise ValueError(
                    f"{self.source}: skeleton not recognised for semantic joints (joints "
                    f"{list(self.joint_names)[:6]}...); pass table={{semantic: (source, ...)}}, "
                    f"known skeletons: {sorted(SEMANTIC_TABLES)}")
            table = SEMANTIC_TABLES[self.skeleton]
        index = {n: i for i, n in enumerate(self.joint_names)}
        out = np.zeros((self.num_frames, len(names), 3), dtype=np.float32)
        mask = np.zeros(len(names), dtype=bool)
        for k, name in enumerate(names):
            srcs = table.get(name)
            if not srcs:
                continue
            missing = [s for s in srcs if s not in index]
            if missing:
                raise KeyError(f"{self.source}: mapping for {name!r} names missing joints {missing}")
            out[:, k] = self.positions[:, [index[s] for s in srcs]].mean(axis=1)
            mask[k] = True
        return out, mask


def subsample(clip: MocapClip, fps: float) -> MocapClip:
    """The clip at a lower frame rate ``fps``, taking the nearest source frame for each
    output time k / fps (exact striding when fps divides clip.fps)."""
    if not fps > 0 or fps > clip.fps * (1 + 1e-9):
        raise ValueError(f"subsample: fps must be in (0, {clip.fps}], got {fps}")
    T = clip.num_frames
    n = int(math.floor((T - 1) * fps / clip.fps + 1e-9)) + 1
    idx = np.minimum(np.round(np.arange(n) * (clip.fps / fps)).astype(np.int64), T - 1)
    return replace(clip, positions=clip.positions[idx], rotations=clip.rotations[idx], fps=float(fps))
