"""Readers for SPIN's preprocessed evaluation files (when the user has them).

The data sets are licensed and are not shipped; users who have them use the ``.npz``
files that SPIN's ``datasets/preprocess`` scripts write (https://github.com/nkolot/SPIN):

  3dpw_test.npz                 3DPW test split: imgname, center, scale, pose (N, 72),
                                shape (N, 10), gender ('m' | 'f'); no 3D joints (ground
                                truth comes from SMPL with the subject's gender).
  h36m_valid_protocol1.npz      Human3.6M S9 and S11, every 5th frame, all cameras (P1) or
  h36m_valid_protocol2.npz      camera 60457274 only (P2): imgname, center, scale,
                                S (N, 24, 4); SPIN's validation files have no ``part``.

Joint tables (from SPIN's ``constants.py``, ``datasets/preprocess/h36m.py`` and
``eval.py``; the H36M-17 order of SPIN's ``J_regressor_h36m.npy`` agrees with mmhuman3d's
``h36m`` convention):

- ``SPIN_J24``: SPIN's 24 ground-truth joints (the superset of LSP, MPII, H36M and COCO
  face points) in which ``S`` and ``part`` are stored.
- ``SPIN_H36M17``: the joint order of SPIN's H36M regressor and of its H36M extraction.
  It lists the LEFT leg (1-3) before the right (4-6); hmrkit's ``h36m17`` convention
  (VideoPose3D / Martinez order) lists the right leg first. Both have the left arm at
  11-13. The readers convert by name, so hmrkit code only ever sees ``h36m17``.
- ``H36M_TO_J17`` / ``H36M_TO_J14`` index ``SPIN_H36M17``; ``J24_TO_J17`` / ``J24_TO_J14``
  index ``SPIN_J24``; position k of both names the same joint. J14 (the set SPIN, VIBE,
  PARE and MAED report) = the 12 limb joints + H36M thorax (stored in J24's "Neck (LSP)"
  slot) + H36M head (J24's "Head (H36M)", not "Top of Head (LSP)").
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from hmrkit.conventions import H36M17
from hmrkit.errors import InputError
from hmrkit.eval.metrics import J14

# SPIN's 24 ground-truth joints, in order (snake-case names; labels as SPIN spells them).
SPIN_J24 = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck_lsp", "head_top_lsp", "pelvis_mpii", "thorax_mpii", "spine_h36m", "jaw_h36m", "head_h36m",
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
)
SPIN_J24_LABELS = (
    "Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle",
    "Right Wrist", "Right Elbow", "Right Shoulder", "Left Shoulder", "Left Elbow", "Left Wrist",
    "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)",
    "Head (H36M)", "Nose", "Left Eye", "Right Eye", "Left Ear", "Right Ear",
)

# SPIN's H36M 17-joint order (its J_regressor_h36m.npy rows), named as hmrkit's h36m17.
SPIN_H36M17 = (
    "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle",
    "spine", "thorax", "neck_nose", "head_top",
    "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)

H36M_TO_J17 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
H36M_TO_J14 = H36M_TO_J17[:14]
J24_TO_J17 = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17)
J24_TO_J14 = J24_TO_J17[:14]

# Which SPIN_J24 slot holds each H36M joint in SPIN's H36M files (by h36m17 name).
_H36M_SLOT = {"pelvis": "pelvis_mpii", "spine": "spine_h36m", "thorax": "neck_lsp",
              "neck_nose": "jaw_h36m", "head_top": "head_h36m"}
# hmrkit h36m17 joint k is SPIN_J24[J24_TO_H36M17[k]] in an H36M file.
J24_TO_H36M17 = tuple(SPIN_J24.index(_H36M_SLOT.get(n, n)) for n in H36M17)
# hmrkit h36m17 joint k is row SPIN_H36M_TO_H36M17[k] of SPIN's H36M regressor.
SPIN_H36M_TO_H36M17 = tuple(SPIN_H36M17.index(n) for n in H36M17)

GENDERS = {"m": "male", "f": "female"}


# ----------------------------------------------------------------------------------------
# Reading npz files without running pickles


_NUMPY_GLOBALS = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}
_BASIC_GLOBALS = {("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"),
                  ("builtins", "object"), ("__builtin__", "object"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    """Object arrays of strings (how Python 2 / older numpy wrote ``imgname``): builds only
    numpy arrays and basic values; any other class is refused."""

    def find_class(self, module, name):
        if (module.split(".")[0] == "numpy" and name in _NUMPY_GLOBALS) or (module, name) in _BASIC_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_object_member(path: Path, key: str) -> np.ndarray:
    with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        read_header(fh)
        try:
            array = _ArrayUnpickler(fh, encoding="latin1").load()
        except Exception as err:
            raise InputError(path, f"key '{key}' holds pickled objects hmrkit will not load ({err}); "
                                   "re-save it as a plain string array") from None
    return np.asarray(array)


def _load_npz(path, what: str, required: tuple, optional: tuple = ()) -> dict:
    """{key: array} of a SPIN-style npz; InputError (one line) for a missing, unreadable
    or incomplete file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(path, f"file not found; expected SPIN's preprocessed {what} file "
                               "(made by SPIN's datasets/preprocess scripts)")
    if path.is_dir():
        raise InputError(path, f"is a folder; pass SPIN's preprocessed {what} .npz file")
    if not zipfile.is_zipfile(path):
        raise InputError(path, f"not an npz archive; expected SPIN's preprocessed {what} file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = [k for k in required if k not in keys]
            if missing:
                raise InputError(path, f"not a SPIN-style {what} file: missing key(s) {', '.join(missing)} "
                                       f"(it has {', '.join(sorted(keys)) or 'no arrays'})")
            out = {}
            for key in required + tuple(k for k in optional if k in keys):
                try:
                    out[key] = npz[key]
                except ValueError as err:
                    if "allow_pickle" not in str(err):
                        raise
                    out[key] = _read_object_member(path, key)
    except InputError:
        raise
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(path, f"not a readable npz archive ({reason}); download or regenerate it") from None
    return out


def _strings(path, key: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise InputError(path, f"key '{key}' has shape {a.shape}, expected (N,) strings")
    return np.array([x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in a.tolist()], dtype=str)


def _floats(path, key: str, a, shape: tuple, expected: str) -> np.ndarray:
    """a as float64 of ``shape`` (None entries free); (N, 1) is accepted for (N,)."""
    a = np.asarray(a)
    if len(shape) == 1 and a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    ok = a.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, a.shape))
    if not ok or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise InputError(path, f"key '{key}' has shape {a.shape} ({a.dtype}), expected {expected} numbers")
    return a.astype(np.float64)


def _same_length(path, arrays: dict) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    n = next(iter(lengths.values()))
    bad = {k: m for k, m in lengths.items() if m != n}
    if bad:
        raise InputError(path, "keys have different numbers of rows: "
                               + ", ".join(f"{k} {m}" for k, m in lengths.items()))
    if n == 0:
        raise InputError(path, "holds no rows")
    return n


# ----------------------------------------------------------------------------------------
# 3DPW


@dataclass(frozen=True)
class SMPLGroundTruth:
    """Ground truth meshes of SMPL parameters (one row per sample).

    vertices: (n, 6890, 3) metres: the gendered SMPL mesh, global orientation applied
              about SMPL's rest pelvis, no translation (camera axes for 3DPW, whose
              orientation SPIN turned into the camera frame).
    joints:   (n, 24, 3) SMPL's own joints (``smpl24`` convention), same frame.
    h36m17:   (n, 17, 3) or None: H36M joints from a regressor (SPIN's
              ``J_regressor_h36m.npy``) in hmrkit's ``h36m17`` order, same frame.
    """

    vertices: Tensor
    joints: Tensor
    h36m17: Optional[Tensor] = None


@dataclass(frozen=True, eq=False)
class PW3DTest:
    """SPIN's ``3dpw_test.npz`` (one row per person and frame with a valid camera pose).

    path:     the file read.
    imgname:  (N,) str image path relative to the 3DPW root,
              ``imageFiles/<sequence>/image_<frame>.jpg``.
    center:   (N, 2) float64 pixels, centre of the person box.
    scale:    (N,) float64: box side / 200 px (SPIN: 1.2 x the larger side of the 2D
              keypoints' box).
    pose_aa:  (N, 72) float64 SMPL axis-angle, radians (npz key ``pose``): global
              orientation in the camera frame (3), then the 23 body joints (69).
    betas:    (N, S) float64 SMPL shape (npz key ``shape``; S = 10).
    gender:   (N,) str, ``m`` or ``f``: the subject's SMPL model for ground truth.
    """

    path: str
    imgname: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    pose_aa: np.ndarray
    betas: np.ndarray
    gender: np.ndarray

    def __len__(self) -> int:
        return len(self.imgname)

    @property
    def sequence(self) -> np.ndarray:
        """(N,) str: the sequence folder of each image."""
        return np.array([Path(n).parent.name for n in self.imgname], dtype=str)

    @property
    def frame(self) -> np.ndarray:
        """(N,) int64: the frame number in the image name (-1 where it has none)."""
        out = []
        for n in self.imgname:
            m = re.search(r"(\d+)\D*$", Path(n).stem)
            out.append(int(m.group(1)) if m else -1)
        return np.asarray(out, dtype=np.int64)

    @property
    def bbox_xyxy(self) -> np.ndarray:
        """(N, 4) float64 pixels: the square box centre ± 100 * scale."""
        half = 100.0 * self.scale[:, None]
        return np.concatenate([self.center - half, self.center + half], axis=1)

    def tracks(self) -> list:
        """Row indices of each person track: runs of rows in one sequence with increasing
        frame numbers (the file stores person 0's frames, then person 1's, ...; it has no
        person id). Frames without a valid camera pose are missing from a track: pass
        ``np.diff(frame[track]) == 1`` based validity to ``accel_error`` to skip them."""
        seq, frame = self.sequence, self.frame
        cuts = [0] + [i for i in range(1, len(seq)) if seq[i] != seq[i - 1] or frame[i] <= frame[i - 1]]
        cuts.append(len(seq))
        return [np.arange(a, b) for a, b in zip(cuts[:-1], cuts[1:])]

    def params(self, index=None, dtype: torch.dtype = torch.float32):
        """BodyParams of rows ``index`` (None: all; an int, slice or index array): rotation
        matrices from ``pose_aa``, betas, zero translation."""
        from hmrkit.geometry import rotmat_from_aa
        from hmrkit.types import BodyParams

        rows = _rows(len(self), index)
        aa = torch.as_tensor(self.pose_aa[rows], dtype=dtype).reshape(len(rows), 24, 3)
        R = rotmat_from_aa(aa)
        return BodyParams(
            global_orient=R[:, 0],
            pose=R[:, 1:],
            shape=torch.as_tensor(self.betas[rows], dtype=dtype),
            transl=torch.zeros(len(rows), 3, dtype=dtype),
        )

    def ground_truth(self, models, index=None, h36m_regressor=None, batch_size: int = 256,
                     dtype: torch.dtype = torch.float32) -> SMPLGroundTruth:
        """Ground truth meshes and joints of rows ``index`` (None: all), each row with its
        subject's gendered SMPL model, as SPIN's evaluation.

        models: the user's SMPL files (a folder or file passed to
        ``hmrkit.body.load("smpl", model_path=...)``, or None for $HMRKIT_SMPL_DIR), or a
        mapping {"male": BodyModel, "female": BodyModel} (see ``load_gendered_smpl``).
        h36m_regressor: None, or SPIN's ``J_regressor_h36m.npy`` (a path or a (17, 6890)
        array) for the H36M joints SPIN and its successors evaluate on.
        A full test split is about 35,000 rows (2.9 GB of vertices in float32): pass
        ``index`` chunks. Raises InputError (one line) for missing or wrong model files."""
        rows = _rows(len(self), index)
        if len(rows) == 0:
            raise ValueError("ground_truth: index selects no rows")
        if models is None or isinstance(models, (str, Path)):
            models = load_gendered_smpl(models, num_betas=self.betas.shape[1], dtype=dtype)
        regressor = None
        if h36m_regressor is not None:
            regressor = _h36m_regressor(h36m_regressor, dtype)
        n = len(rows)
        vertices = joints = h36m = None
        for code, gender in GENDERS.items():
            sel = np.nonzero(self.gender[rows] == code)[0]
            if len(sel) == 0:
                continue
            if gender not in models:
                raise ValueError(f"ground_truth: models has no {gender!r} body model (rows of gender {code!r})")
            body = models[gender]
            if body.num_shape != self.betas.shape[1]:
                raise ValueError(f"ground_truth: the {gender} model takes {body.num_shape} betas, "
                                 f"the file has {self.betas.shape[1]}")
            for start in range(0, len(sel), batch_size):
                part = sel[start:start + batch_size]
                params = self.params(rows[part], dtype=body.dtype).to(body.device)
                with torch.no_grad():
                    out = body(params)
                if vertices is None:
                    vertices = out.vertices.new_zeros((n,) + tuple(out.vertices.shape[1:]))
                    joints = out.joints.new_zeros((n,) + tuple(out.joints.shape[1:]))
                    if regressor is not None:
                        h36m = out.vertices.new_zeros((n, 17, 3))
                idx = torch.as_tensor(part, device=out.vertices.device)
                vertices[idx] = out.vertices
                joints[idx] = out.joints
                if regressor is not None:
                    if regressor.shape[1] != out.vertices.shape[1]:
                        raise ValueError(f"h36m_regressor has {regressor.shape[1]} columns, the mesh "
                                         f"{out.vertices.shape[1]} vertices")
                    spin = torch.einsum("kv,bvc->bkc", regressor.to(out.vertices), out.vertices)
                    h36m[idx] = spin[:, list(SPIN_H36M_TO_H36M17)]
        return SMPLGroundTruth(vertices=vertices, joints=joints, h36m17=h36m)


def _rows(n: int, index) -> np.ndarray:
    if index is None:
        return np.arange(n)
    if isinstance(index, int):
        return np.array([np.arange(n)[index]])
    return np.arange(n)[index].reshape(-1)


def _h36m_regressor(regressor, dtype) -> Tensor:
    if isinstance(regressor, (str, Path)):
        p = Path(regressor).expanduser()
        if not p.is_file():
            raise InputError(p, "H36M joint regressor not found; it is SPIN's data/J_regressor_h36m.npy")
        try:
            regressor = np.load(p, allow_pickle=False)
        except Exception as err:
            raise InputError(p, f"not a readable .npy regressor ({str(err).splitlines()[0] if str(err) else err})") from None
        where = p
    else:
        where = None
    r = torch.as_tensor(np.asarray(regressor), dtype=dtype)
    if r.ndim != 2 or r.shape[0] != 17:
        raise InputError(where, f"H36M joint regressor has shape {tuple(r.shape)}, expected (17, V)")
    return r


def load_gendered_smpl(model_path=None, num_betas: int = 10, dtype: torch.dtype = torch.float32) -> dict:
    """{"male": SMPL, "female": SMPL} from the user's files: model_path a folder holding the
    official male and female files (or None for $HMRKIT_SMPL_DIR). InputError (one line)
    when either is missing."""
    import hmrkit.body

    return {g: hmrkit.body.load("smpl", model_path=model_path, gender=g, num_betas=num_betas, dtype=dtype)
            for g in ("male", "female")}


def read_3dpw_test(path) -> PW3DTest:
    """SPIN's ``3dpw_test.npz`` -> PW3DTest. InputError (one line) for a missing file,
    missing keys, wrong shapes or genders other than 'm'/'f'."""
    raw = _load_npz(path, "3DPW test (3dpw_test.npz)", ("imgname", "center", "scale", "pose", "shape", "gender"))
    data = {
        "imgname": _strings(path, "imgname", raw["imgname"]),
        "center": _floats(path, "center", raw["center"], (None, 2), "(N, 2)"),
        "scale": _floats(path, "scale", raw["scale"], (None,), "(N,)"),
        "pose": _floats(path, "pose", raw["pose"], (None, 72), "(N, 72)"),
        "shape": _floats(path, "shape", raw["shape"], (None, None), "(N, 10)"),
        "gender": _strings(path, "gender", raw["gender"]),
    }
    _same_length(path, data)
    gender = np.char.lower(np.char.strip(data["gender"]))
    bad = sorted(set(gender.tolist()) - set(GENDERS))
    if bad:
        raise InputError(path, f"key 'gender' holds {bad[:3]}, expected 'm' or 'f'")
    return PW3DTest(path=str(path), imgname=data["imgname"], center=data["center"], scale=data["scale"],
                    pose_aa=data["pose"], betas=data["shape"], gender=gender)


# ----------------------------------------------------------------------------------------
# Human3.6M


@dataclass(frozen=True, eq=False)
class H36MValid:
    """SPIN's ``h36m_valid_protocol{1,2}.npz`` (S9 and S11, every 5th frame).

    path:      the file read.
    protocol:  1 (all four cameras) or 2 (camera 60457274), from the file name; None if
               the name does not say.
    imgname:   (N,) str image path, ``images/S9_<action>.<camera>_<frame>.jpg``.
    center:    (N, 2) float64 pixels; scale (N,) float64: box side / 200 px (SPIN: 0.9 x
               the larger side of the mask's box).
    S:         (N, 24, 4) float64: ``SPIN_J24`` joints x, y, z in metres, camera frame
               (Human3.6M's D3_Positions_mono), pelvis at the origin, and a confidence
               (1 for the 17 H36M joints, 0 for the other slots).
    part:      (N, 24, 3) float64 or None: 2D ``SPIN_J24`` keypoints x, y in pixels and
               visibility (absent from SPIN's validation files).
    """

    path: str
    protocol: Optional[int]
    imgname: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    S: np.ndarray
    part: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.imgname)

    def h36m17(self, dtype: torch.dtype = torch.float32):
        """(joints (N, 17, 3) metres in hmrkit's ``h36m17`` order, confidence (N, 17))."""
        S = torch.as_tensor(self.S[:, list(J24_TO_H36M17)], dtype=dtype)
        return S[..., :3], S[..., 3]

    def j14(self, dtype: torch.dtype = torch.float32):
        """(joints (N, 14, 3) metres, confidence (N, 14)): SPIN's ``J24_TO_J14`` selection,
        the ground truth of SPIN's H36M evaluation, in ``metrics.J14`` order."""
        S = torch.as_tensor(self.S[:, list(J24_TO_J14)], dtype=dtype)
        return S[..., :3], S[..., 3]


def read_h36m_valid(path) -> H36MValid:
    """SPIN's ``h36m_valid_protocol1.npz`` / ``h36m_valid_protocol2.npz`` -> H36MValid.
    InputError (one line) for a missing file, missing keys or wrong shapes."""
    raw = _load_npz(path, "Human3.6M validation (h36m_valid_protocol1.npz)",
                    ("imgname", "center", "scale", "S"), ("part",))
    data = {
        "imgname": _strings(path, "imgname", raw["imgname"]),
        "center": _floats(path, "center", raw["center"], (None, 2), "(N, 2)"),
        "scale": _floats(path, "scale", raw["scale"], (None,), "(N,)"),
        "S": _floats(path, "S", raw["S"], (None, 24, 4), "(N, 24, 4)"),
    }
    if "part" in raw:
        data["part"] = _floats(path, "part", raw["part"], (None, 24, 3), "(N, 24, 3)")
    _same_length(path, data)
    m = re.search(r"protocol_?(\d)", Path(path).name)
    return H36MValid(path=str(path), protocol=int(m.group(1)) if m else None, imgname=data["imgname"],
                     center=data["center"], scale=data["scale"], S=data["S"], part=data.get("part"))


def read_spin_npz(path):
    """A SPIN-style evaluation file, told apart by its keys: PW3DTest (``pose`` and
    ``gender``) or H36MValid (``S``)."""
    p = Path(path).expanduser()
    if p.is_file() and zipfile.is_zipfile(p):
        try:
            with np.load(p, allow_pickle=False) as npz:
                keys = set(npz.files)
        except Exception:
            keys = set()
        if "S" in keys and "pose" not in keys:
            return read_h36m_valid(p)
    return read_3dpw_test(p)


__all__ = [
    "SPIN_J24", "SPIN_J24_LABELS", "SPIN_H36M17", "H36M_TO_J17", "H36M_TO_J14", "J24_TO_J17", "J24_TO_J14",
    "J24_TO_H36M17", "SPIN_H36M_TO_H36M17", "J14", "SMPLGroundTruth", "PW3DTest", "H36MValid",
    "read_3dpw_test", "read_h36m_valid", "read_spin_npz", "load_gendered_smpl",
]
