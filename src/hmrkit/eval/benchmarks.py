"""3DPW and Human3.6M (SPIN's preprocessed files with the user's images): the rows a spec
selects, the ground-truth models, the intrinsics stored in the file, and the J14 joints
of a body output."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from hmrkit.errors import InputError
from hmrkit.eval.specs import ROOT_HINT, DatasetSpec


def read_dataset(spec: DatasetSpec):
    """(the npz read by ``datasets.read_3dpw_test`` / ``read_h36m_valid``, the selected row
    indices). InputError (one line) for a bad file or when the first selected image is
    not under ``root`` (a wrong root)."""
    from hmrkit.eval.datasets import read_3dpw_test, read_h36m_valid

    data = read_3dpw_test(spec.path) if spec.kind == "3dpw" else read_h36m_valid(spec.path)
    rows = np.arange(len(data))[::spec.step]
    if spec.n is not None:
        rows = rows[:spec.n]
    first = Path(spec.root).expanduser() / str(data.imgname[rows[0]])
    if not first.is_file():
        raise InputError(first, f"image not found; root={spec.root} must be the folder that {ROOT_HINT[spec.kind]}")
    return data, rows


def load_ground_truth_models(model_path=None, num_betas: int = 10) -> dict:
    """{"male": SMPL, "female": SMPL} for 3DPW's ground truth from the user's files
    (``datasets.load_gendered_smpl``); InputError (one line) naming what is missing."""
    from hmrkit.eval.datasets import load_gendered_smpl

    try:
        return load_gendered_smpl(model_path, num_betas=num_betas)
    except InputError as e:
        raise InputError(e.path, f"{e.problem} (3DPW's ground truth is built with the male and female "
                                 "SMPL models)") from None


def h36m_joints(body, out, regressor: Optional[Tensor]):
    """(h36m17 joints (B, 17, 3), mask (17,) bool, source str) of a body output: SPIN's
    H36M regressor on the mesh when given and of the mesh's topology, else the body's
    coco17 keypoints converted by name (pelvis, thorax derived as midpoints)."""
    from hmrkit.eval.datasets import SPIN_H36M_TO_H36M17
    from hmrkit.eval.metrics import to_joint_set

    v = out.vertices
    if regressor is not None and regressor.shape[1] == v.shape[1]:
        spin = torch.einsum("kv,bvc->bkc", regressor.to(v), v)
        return spin[:, list(SPIN_H36M_TO_H36M17)], torch.ones(17, dtype=torch.bool), "H36M regressor"
    coco = body.keypoints(out, "coco17")
    joints, mask = to_joint_set(coco, "coco17", "h36m17")
    return joints, torch.as_tensor(mask, dtype=torch.bool).cpu(), "coco17 keypoints"


def j14(joints: Tensor, mask: Tensor):
    """h36m17 (B, 17, 3) rooted at the pelvis (joint 0) -> (B, 14, 3), (14,) mask."""
    from hmrkit.conventions import H36M17
    from hmrkit.eval.metrics import J14

    idx = [H36M17.index(n) for n in J14]
    rooted = joints - joints[:, :1]
    return rooted[:, idx], mask[idx]


def dataset_intrinsics(path) -> Optional[np.ndarray]:
    """(N, 3, 3) intrinsics stored in a SPIN-style npz (``cam_K`` or ``cam_int``), or None."""
    try:
        with np.load(Path(path).expanduser(), allow_pickle=False) as z:
            for key in ("cam_K", "cam_int"):
                if key in z.files:
                    K = np.asarray(z[key], np.float64)
                    if K.ndim == 3 and K.shape[1:] == (3, 3):
                        return K
                    raise InputError(path, f"key '{key}' has shape {K.shape}, expected (N, 3, 3) intrinsics")
    except InputError:
        raise
    except Exception:
        return None
    return None
