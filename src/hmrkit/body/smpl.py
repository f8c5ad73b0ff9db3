"""SMPL, SMPL-H and SMPL-X from the user's own licensed model files.

The files are not redistributable: users register on the model's website and download
them (SMPL: https://smpl.is.tue.mpg.de, SMPL-H: https://mano.is.tue.mpg.de, SMPL-X:
https://smpl-x.is.tue.mpg.de), then pass the file or its folder (``model_path``) or set
``$HMRKIT_SMPL_DIR``. Both official formats are read: ``.pkl`` (without chumpy installed:
chumpy ``Ch`` objects become their stored arrays, scipy sparse matrices dense arrays; the
unpickler builds only numpy arrays, scipy sparse matrices and basic containers, and never
imports other classes) and ``.npz`` (read without ``allow_pickle``).

Frame. Exactly the smplx package's convention, so parameters are interchangeable with
it: y up, the body faces +z, its left is +x; ``global_orient`` turns the body about its
*rest pelvis joint* (which is not at the origin and moves with the betas), and ``transl``
is added to every vertex and joint afterwards. (Anny differs: its pelvis sits at the
origin, so its ``transl`` is the pelvis position.)

Parameters (``BodyParams``):
  global_orient (B, 3, 3)  the root's rotation (smplx ``global_orient``).
  pose (B, J, 3, 3)        J = 23 for SMPL; 51 for SMPL-H (21 body + 15 left hand + 15 right
                           hand); 54 for SMPL-X (21 body + jaw + left eye + right eye + 15
                           left hand + 15 right hand), in ``pose_joint_names`` order (the
                           files' order). Hand rotations are full rotations, no PCA, and
                           absolute: they equal smplx's with ``flat_hand_mean=True``. (smplx
                           adds ``hands_mean`` to the hand pose by default; its axis-angle is
                           in ``hand_mean_aa`` to convert.)
  shape (B, num_betas)     betas, prior N(0, 1); ``shape_range`` is None.
  expression (B, E)        SMPL-X expression coefficients (E = num_expression; 0 otherwise).
  transl (B, 3)            metres.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hmrkit.body import lbs as _lbs
from hmrkit.body.base import BodyModel, KeypointRegressor, hand21_regressors
from hmrkit.conventions import COCO17, MEDIAPIPE33, SMPL24
from hmrkit.errors import InputError
from hmrkit.types import BodyOutput, BodyParams

log = logging.getLogger(__name__)

KINDS = ("smpl", "smplh", "smplx")
GENDERS = ("neutral", "male", "female")
DISPLAY_NAME = {"smpl": "SMPL", "smplh": "SMPL-H", "smplx": "SMPL-X"}
WEBSITE = {
    "smpl": "https://smpl.is.tue.mpg.de",
    "smplh": "https://mano.is.tue.mpg.de",
    "smplx": "https://smpl-x.is.tue.mpg.de",
}
NUM_VERTICES = {"smpl": 6890, "smplh": 6890, "smplx": 10475}

# ----------------------------------------------------------------------------------------
# Kinematic trees (the official files' joint order)

_SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
HAND_FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # the files' order
_BODY22 = SMPL24[:22]  # pelvis .. right_wrist, shared by the three models
_LEFT_WRIST, _RIGHT_WRIST, _HEAD = 20, 21, 15


def _hand(side: str, wrist: int, first: int):
    names, parents = [], []
    for f, finger in enumerate(HAND_FINGERS):
        for k in (1, 2, 3):
            names.append(f"{side}_{finger}{k}")
            parents.append(wrist if k == 1 else first + 3 * f + k - 2)
    return names, parents


def _tree(kind: str):
    if kind == "smpl":
        return tuple(SMPL24), _SMPL_PARENTS
    names, parents = list(_BODY22), list(_SMPL_PARENTS[:22])
    if kind == "smplx":
        names += ["jaw", "left_eye_smplx", "right_eye_smplx"]
        parents += [_HEAD, _HEAD, _HEAD]
    for side, wrist in (("left", _LEFT_WRIST), ("right", _RIGHT_WRIST)):
        n, p = _hand(side, wrist, len(names))
        names += n
        parents += p
    return tuple(names), tuple(parents)


JOINT_NAMES = {kind: _tree(kind)[0] for kind in KINDS}
PARENTS = {kind: _tree(kind)[1] for kind in KINDS}

# Surface points as vertex ids of each topology (SMPL and SMPL-H share their mesh). The
# values are those of the smplx package's ``vertex_ids.py`` (nose, eyes, ears, toes,
# heels, fingertips) — facts about the official meshes.
VERTEX_IDS = {
    "smpl": {
        "nose": 332, "right_eye": 6260, "left_eye": 2800, "right_ear": 4071, "left_ear": 583,
        "right_thumb_tip": 6191, "right_index_tip": 5782, "right_middle_tip": 5905,
        "right_ring_tip": 6016, "right_pinky_tip": 6133,
        "left_thumb_tip": 2746, "left_index_tip": 2319, "left_middle_tip": 2445,
        "left_ring_tip": 2556, "left_pinky_tip": 2673,
        "left_big_toe": 3216, "left_small_toe": 3226, "left_heel": 3387,
        "right_big_toe": 6617, "right_small_toe": 6624, "right_heel": 6787,
    },
    "smplx": {
        "nose": 9120, "right_eye": 9929, "left_eye": 9448, "right_ear": 616, "left_ear": 6,
        "right_thumb_tip": 8079, "right_index_tip": 7669, "right_middle_tip": 7794,
        "right_ring_tip": 7905, "right_pinky_tip": 8022,
        "left_thumb_tip": 5361, "left_index_tip": 4933, "left_middle_tip": 5058,
        "left_ring_tip": 5169, "left_pinky_tip": 5286,
        "left_big_toe": 5770, "left_small_toe": 5780, "left_heel": 8846,
        "right_big_toe": 8463, "right_small_toe": 8474, "right_heel": 8635,
    },
}
VERTEX_IDS["smplh"] = VERTEX_IDS["smpl"]

# SMPL-X's 51 static face landmarks (``lmk_faces_idx``) are iBUG-68 points 17..67; those
# that MediaPipe Pose also has (subject's left/right).
_SMPLX_LANDMARKS = {
    "right_eye_outer": 36 - 17, "right_eye_inner": 39 - 17,
    "left_eye_inner": 42 - 17, "left_eye_outer": 45 - 17,
    "mouth_right": 48 - 17, "mouth_left": 54 - 17,
}

# ----------------------------------------------------------------------------------------
# Finding and reading model files


def _candidates(kind: str, gender: str) -> list[str]:
    """Official file names for kind and gender, most usual first (compared ignoring case)."""
    G = gender.upper()
    if kind == "smpl":
        short = {"neutral": "neutral", "male": "m", "female": "f"}[gender]
        return [f"SMPL_{G}.pkl", f"SMPL_{G}.npz",
                f"basicModel_{short}_lbs_10_207_0_v1.0.0.pkl",
                f"basicmodel_{short}_lbs_10_207_0_v1.1.0.pkl",
                f"basicmodel_{short}_lbs_300_207_0_v1.1.0.pkl"]
    if kind == "smplh":
        return [f"SMPLH_{G}.pkl", f"SMPLH_{G}.npz", f"{gender}/model.npz"]
    return [f"SMPLX_{G}.npz", f"SMPLX_{G}.pkl", f"SMPLX_{G}_2020.npz"]


def _find_in(folder: Path, name: str) -> Path | None:
    """folder/name, matching each path component without regard to case."""
    current = folder
    for part in Path(name).parts:
        exact = current / part
        if exact.exists():
            current = exact
            continue
        try:
            match = next((p for p in current.iterdir() if p.name.lower() == part.lower()), None)
        except OSError:
            return None
        if match is None:
            return None
        current = match
    return current if current.is_file() else None


def _not_found(kind: str, expected, gender: str = "") -> InputError:
    what = DISPLAY_NAME[kind]
    note = ""
    if kind == "smplh" and gender == "neutral":
        note = " (the MANO site's SMPL-H has male and female files only: choose a gender)"
    return InputError(
        expected,
        f"{what} model file not found; download it from {WEBSITE[kind]} after registering, "
        f"then pass --model-path or set HMRKIT_SMPL_DIR{note}",
    )


def resolve_model_file(kind: str, model_path=None, gender: str = "neutral") -> Path:
    """The model file for kind and gender: model_path itself when it is a file, else an
    official file name in the folder model_path (or its ``kind/`` subfolder); model_path
    None means ``$HMRKIT_SMPL_DIR``. Raises InputError (one line) when nothing is found."""
    if kind not in KINDS:
        raise ValueError(f"unknown SMPL-family model {kind!r}; choose from {list(KINDS)}")
    if gender not in GENDERS:
        raise InputError(None, f"unknown gender {gender!r} for {DISPLAY_NAME[kind]}; choose from {list(GENDERS)}")
    names = _candidates(kind, gender)
    if model_path is None:
        env = os.environ.get("HMRKIT_SMPL_DIR")
        if not env:
            raise _not_found(kind, f"$HMRKIT_SMPL_DIR/{names[0]}", gender)
        model_path = env
    path = Path(model_path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise _not_found(kind, path, gender)
    for folder in (path, path / kind):
        for name in names:
            hit = _find_in(folder, name)
            if hit is not None:
                return hit
    raise _not_found(kind, path / names[0], gender)


class _Opaque:
    """Stand-in for a pickled class that is not imported (chumpy's ``Ch`` and the like):
    it keeps its pickled state, nothing of the original class runs."""

    _pickled_name = "?"

    def __init__(self, *args, **kwargs):
        self._args = args

    def __setstate__(self, state):
        self._state = state


_ALLOWED = {
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
    ("__builtin__", "set"), ("builtins", "set"),
    ("__builtin__", "frozenset"), ("builtins", "frozenset"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles
}
_NUMPY_NAMES = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}


class _ModelUnpickler(pickle.Unpickler):
    """Reads official SMPL-family pickles without chumpy, importing only numpy arrays,
    scipy sparse matrices and basic containers; other classes become ``_Opaque``."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.split(".")[0] == "numpy" and name in _NUMPY_NAMES:
            return super().find_class(module, name)
        if module.startswith("scipy.sparse") and name.endswith(("_matrix", "_array")):
            try:
                import scipy.sparse
            except ImportError:
                raise ImportError("reading SMPL-family .pkl files needs scipy (their J_regressor is a "
                                  "sparse matrix): pip install 'hmrkit[smpl]'") from None

            cls = getattr(scipy.sparse, name, None)
            if cls is not None:
                return cls
        return type(name, (_Opaque,), {"_pickled_name": f"{module}.{name}"})


# The keys hmrkit reads from a model file.
_REQUIRED = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
_OPTIONAL = ("hands_meanl", "hands_meanr", "lmk_faces_idx", "lmk_bary_coords")


def _as_array(path, key, value) -> np.ndarray:
    if isinstance(value, _Opaque):
        state = getattr(value, "_state", None)
        if isinstance(state, dict) and "x" in state:
            return _as_array(path, key, state["x"])
        raise InputError(path, f"'{key}' is a pickled {value._pickled_name} object, not an array; "
                               "re-save the model with plain arrays")
    if hasattr(value, "toarray") and type(value).__module__.startswith("scipy.sparse"):
        return value.toarray()
    try:
        return np.asarray(value)
    except Exception as err:  # a value that is no array at all
        raise InputError(path, f"'{key}' is not an array ({type(value).__name__}): {err}") from None


def read_model_file(path) -> dict:
    """The arrays of an official SMPL-family model file (.pkl or .npz, told apart by
    content) -> {key: np.ndarray} for the keys hmrkit uses. Raises InputError (one line)
    for a file that is no model file or lacks a required key."""
    path = Path(path)
    wanted = _REQUIRED + _OPTIONAL
    try:
        if zipfile.is_zipfile(path):
            kind = "npz archive"
            with np.load(path, allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files if k in wanted}
        else:
            with open(path, "rb") as fh:
                head = fh.read(2)
                if head == b"PK":
                    raise InputError(path, "not a readable SMPL-family model file (a damaged npz archive: "
                                           "the zip data is incomplete; download it again)")
                if head[:1] not in (b"\x80", b"(", b"}"):  # protocol 2+ or a protocol-0/1 dict
                    raise InputError(path, "not a SMPL-family model file (neither a pickle nor an npz archive)")
                fh.seek(0)
                kind = "pickle"
                raw = _ModelUnpickler(fh, encoding="latin1").load()
    except (InputError, ImportError):
        raise
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(path, f"not a readable SMPL-family model file (a damaged or unsupported {kind}: "
                               f"{reason})") from None
    if not isinstance(raw, dict):
        raise InputError(path, f"not a SMPL-family model file (it holds a {type(raw).__name__}, "
                               "expected a dict of arrays)")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise InputError(path, f"not a SMPL-family model file (missing {', '.join(missing)})")
    return {k: _as_array(path, k, raw[k]) for k in wanted if k in raw}


def _kind_of(num_vertices: int, num_joints: int) -> str | None:
    for kind in KINDS:
        if NUM_VERTICES[kind] == num_vertices and len(PARENTS[kind]) == num_joints:
            return kind
    return None


def _check_arrays(path, kind: str, data: dict) -> None:
    """Raise InputError (one line) unless data's arrays fit the official kind."""
    what = DISPLAY_NAME[kind]
    V, N = NUM_VERTICES[kind], len(PARENTS[kind])
    v, kt = data["v_template"], data["kintree_table"]
    nv = v.shape[0] if v.ndim == 2 else -1
    nj = kt.shape[1] if kt.ndim == 2 else -1
    if (nv, nj) != (V, N):
        actual = _kind_of(nv, nj)
        hint = f"; it looks like a {DISPLAY_NAME[actual]} file, load it as {actual!r}" if actual else ""
        raise InputError(path, f"not a {what} model: it has {nv} vertices and {nj} joints, "
                               f"{what} has {V} and {N}{hint}")
    expect = {
        "v_template": (V, 3),
        "weights": (V, N),
        "J_regressor": (N, V),
        "posedirs": (V, 3, (N - 1) * 9),
    }
    for key, shape in expect.items():
        if data[key].shape != shape:
            raise InputError(path, f"not a valid {what} model: '{key}' has shape {data[key].shape}, expected {shape}")
    sd = data["shapedirs"]
    if sd.ndim != 3 or sd.shape[:2] != (V, 3):
        raise InputError(path, f"not a valid {what} model: 'shapedirs' has shape {sd.shape}, expected ({V}, 3, S)")
    f = data["f"]
    if f.ndim != 2 or f.shape[1] != 3 or f.size == 0 or f.min() < 0 or f.max() >= V:
        raise InputError(path, f"not a valid {what} model: 'f' must be (F, 3) vertex indices below {V}")
    parents = tuple(int(p) for p in kt[0][1:])
    if parents != PARENTS[kind][1:]:
        raise InputError(path, f"not a {what} model: its kinematic tree differs from the official one")


def _shape_columns(kind: str, total: int, num_betas: int, num_expression: int):
    """Which shapedirs columns hold betas and expression (as the smplx package reads them).

    SMPL-X files hold 10 betas then 10 expression components (v1.0, 20 columns) or 300
    then 100 (v1.1, 400 columns); SMPL and SMPL-H files hold betas only."""
    if kind == "smplx":
        shape_dim, expr_dim = (300, 100) if total >= 400 else (10, 10)
        if total < shape_dim + expr_dim:
            return None
    else:
        shape_dim, expr_dim = total, 0
    nb, ne = min(num_betas, shape_dim), min(num_expression, expr_dim)
    if nb < num_betas:
        log.warning("%s: the file has %d shape components; using %d betas, not %d",
                    DISPLAY_NAME[kind], shape_dim, nb, num_betas)
    if kind == "smplx" and ne < num_expression:
        log.warning("SMPL-X: the file has %d expression components; using %d, not %d", expr_dim, ne, num_expression)
    return list(range(nb)), list(range(shape_dim, shape_dim + ne))


# ----------------------------------------------------------------------------------------
# The body model


class SMPLBody(BodyModel):
    """SMPL / SMPL-H / SMPL-X as a BodyModel (see the module docstring for the frame and
    parameters). Build it with ``SMPLBody.from_file`` or ``hmrkit.body.load``."""

    shape_range = None
    shape_prior_std = 1.0  # betas: N(0, 1), as SMPLify
    pose_library = "smpl"  # the three kinds share the body skeleton

    def __init__(self, kind: str, data: dict, num_betas: int = 10, num_expression: int = 10,
                 dtype: torch.dtype = torch.float32, source: str = ""):
        """kind in KINDS; data: arrays as ``read_model_file`` returns them (checked here)."""
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown SMPL-family model {kind!r}; choose from {list(KINDS)}")
        _check_arrays(source or None, kind, data)
        columns = _shape_columns(kind, data["shapedirs"].shape[2], num_betas, num_expression)
        if columns is None:
            raise InputError(source or None, f"not a valid SMPL-X model: 'shapedirs' has {data['shapedirs'].shape[2]} "
                                             "components, expected 20 (10 betas + 10 expression) or 400")
        beta_cols, expr_cols = columns
        self.name = kind
        self.gender = ""  # set by from_file
        self.source = str(source)
        self.joint_names = JOINT_NAMES[kind]
        self.parents = PARENTS[kind]
        self.num_shape = len(beta_cols)
        self.num_expression = len(expr_cols)

        def buf(name, array, dt=dtype):
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array), dtype=dt), persistent=False)

        sd = data["shapedirs"]
        buf("v_template", data["v_template"])
        # (S, V, 3): betas first, then expression components
        buf("shape_dirs", np.moveaxis(sd[:, :, beta_cols + expr_cols], 2, 0))
        buf("pose_dirs", np.moveaxis(data["posedirs"], 2, 0))  # (J*9, V, 3)
        buf("joint_regressor", data["J_regressor"])
        buf("lbs_weights", data["weights"])
        # the rest joints' template and shape directions, J_regressor applied once (float64):
        # forward_keypoints needs the joints without the whole rest mesh
        J = np.asarray(data["J_regressor"], dtype=np.float64)
        buf("joint_template", J @ np.asarray(data["v_template"], dtype=np.float64))
        buf("joint_shape_dirs", np.einsum("nv,vds->snd", J, np.asarray(sd[:, :, beta_cols + expr_cols], np.float64)))
        self._subsets = {}  # conventions -> _VertexSubset, built on first use
        buf("faces", data["f"].astype(np.int64), torch.int64)
        # (2, 15, 3) left, right: smplx's default hand mean (flat_hand_mean=False), or None
        if kind != "smpl" and "hands_meanl" in data and "hands_meanr" in data:
            buf("hand_mean_aa", np.stack([data["hands_meanl"], data["hands_meanr"]]).reshape(2, 15, 3))
        else:
            self.register_buffer("hand_mean_aa", None, persistent=False)
        self._landmarks = None
        if kind == "smplx" and "lmk_faces_idx" in data and "lmk_bary_coords" in data:
            self._landmarks = (data["lmk_faces_idx"].astype(np.int64), data["lmk_bary_coords"])
        self.regressors = torch.nn.ModuleDict(_smpl_regressors(self, data["f"]))

    @classmethod
    def from_file(cls, name: str, model_path=None, gender: str = "neutral", num_betas: int = 10,
                  num_expression: int = 10, dtype: torch.dtype = torch.float32) -> "SMPLBody":
        """name in {"smpl", "smplh", "smplx"}; model_path a .pkl/.npz file or a folder with the
        official file names (also in a ``name/`` subfolder); None -> $HMRKIT_SMPL_DIR.
        Raises InputError (one line) for a missing or wrong file."""
        path = resolve_model_file(name, model_path, gender)
        data = read_model_file(path)
        body = cls(name, data, num_betas=num_betas, num_expression=num_expression, dtype=dtype, source=str(path))
        body.gender = gender
        return body

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def mean_params(self, batch_size: int = 1) -> BodyParams:
        """Rest pose (identity rotations, flat hands), zero betas/expression/translation."""
        return self._identity_params(batch_size, 0.0)

    def _inputs(self, params: BodyParams) -> tuple[Tensor, Tensor]:
        """(blend-shape coefficients (B, S+E): betas then expression; rotations (B, J+1, 3, 3),
        the root's first), after checking params."""
        self.check_params(params)
        dtype = self.v_template.dtype
        if params.pose.dtype != dtype:
            raise ValueError(f"{self.name}: params are {params.pose.dtype}, the model is {dtype}; "
                             f"use params.to({dtype})")
        B = params.batch_size
        coeffs = params.shape
        if self.num_expression:
            expression = params.expression
            if expression is None:
                expression = params.shape.new_zeros(B, self.num_expression)
            coeffs = torch.cat([coeffs, expression], dim=1)
        rotmats = torch.cat([params.global_orient[:, None], params.pose], dim=1)
        return coeffs, rotmats

    def forward(self, params: BodyParams) -> BodyOutput:
        """params (B, ...) -> BodyOutput: vertices (B, V, 3) and joints (B, J+1, 3) in metres,
        SMPL frame turned by global_orient about the rest pelvis joint, then shifted by
        transl (exactly as the smplx package); faces (F, 3)."""
        coeffs, rotmats = self._inputs(params)
        vertices, joints = _lbs.lbs(coeffs, rotmats, self.v_template, self.shape_dirs, self.pose_dirs,
                                    self.joint_regressor, self.parents, self.lbs_weights)
        t = params.transl[:, None]
        return BodyOutput(vertices=vertices + t, joints=joints + t, faces=self.faces)

    def forward_keypoints(self, params: BodyParams, conventions: tuple[str, ...]) -> dict[str, Tensor]:
        """{convention: (B, K, 3), ..., "joints": (B, J+1, 3)}, the frame of ``forward``:
        the same LBS (``lbs.lbs``) for only the vertices the regressors use, the rest joints
        from the joint regressor folded into the template and shape directions. Equal to
        ``keypoints(forward(params), convention)`` up to float round-off."""
        conventions = self._check_conventions(conventions)
        coeffs, rotmats = self._inputs(params)
        subset = self._vertex_subset(conventions)
        rest_joints = self.joint_template + _lbs.blend_shapes(coeffs, self.joint_shape_dirs)
        world_R, world_t = _lbs.forward_kinematics(rotmats, rest_joints, self.parents)
        if not conventions:  # joints only: no vertex to skin
            return {"joints": world_t + params.transl[:, None]}
        v = subset.template + _lbs.blend_shapes(coeffs, subset.shape_dirs)
        v = v + _lbs.pose_blend_offsets(rotmats, subset.pose_dirs)
        vertices = _lbs.skin(v, subset.weights, world_R, world_t, rest_joints)
        t = params.transl[:, None]
        vertices, joints = vertices + t, world_t + t
        result = {c: subset.regressors[c](vertices, joints) for c in conventions}
        result["joints"] = joints
        return result

    def _vertex_subset(self, conventions: tuple[str, ...]) -> "_VertexSubset":
        cached = self._subsets.get(conventions)
        regs = [self.regressors[c] for c in conventions]
        if cached is None or not cached.built_from(regs, self.v_template):
            cached = _VertexSubset(self, conventions)
            self._subsets[conventions] = cached
        return cached

    def rest_joints(self, shape: Tensor, expression: Tensor | None = None) -> Tensor:
        """shape (B, num_betas) -> (B, J+1, 3) the unposed joints, metres, SMPL frame."""
        coeffs = shape
        if self.num_expression:
            if expression is None:
                expression = shape.new_zeros(shape.shape[0], self.num_expression)
            coeffs = torch.cat([shape, expression], dim=1)
        v = self.v_template + _lbs.blend_shapes(coeffs, self.shape_dirs)
        return _lbs.regress_joints(self.joint_regressor, v)

    def vertex_part_labels(self) -> Tensor:
        """(V,) int64: the joint (index into joint_names) of largest skinning weight."""
        return self.lbs_weights.argmax(1)

    def extra_repr(self) -> str:
        return (f"{DISPLAY_NAME[self.name]}, {self.num_vertices} vertices, {len(self.joint_names)} joints, "
                f"{self.num_shape} betas, {self.num_expression} expression, from {self.source or 'arrays'}")


class _VertexSubset:
    """The vertices some regressors use: their rows of the model's arrays, and the
    regressors re-indexed into cat(these vertices, joints).

    template (U, 3); shape_dirs (S, U, 3); pose_dirs (J*9, U, 3); weights (U, N);
    regressors {convention: KeypointRegressor}."""

    def __init__(self, body: SMPLBody, conventions: tuple[str, ...]):
        V = body.num_vertices
        regs = [body.regressors[c] for c in conventions]
        self._source = ([(r.index, r.weights) for r in regs], body.v_template.dtype, body.v_template.device)
        used = torch.cat([r.index[(r.weights != 0) & (r.index < V)] for r in regs] + [body.faces.new_zeros(0)])
        verts = torch.unique(used)
        U = len(verts)
        position = torch.full((V,), -1, dtype=torch.long, device=verts.device)
        position[verts] = torch.arange(U, device=verts.device)
        self.template = body.v_template[verts]
        self.shape_dirs = body.shape_dirs[:, verts]
        self.pose_dirs = body.pose_dirs[:, verts]
        self.weights = body.lbs_weights[verts]
        self.regressors = {}
        for c, r in zip(conventions, regs):
            # vertex v -> its position in the subset; joint V + j -> U + j; unused slots
            # (weight 0) -> 0
            index = torch.where(r.index >= V, r.index - V + U, position[r.index.clamp(max=V - 1)])
            index = torch.where(r.weights != 0, index, torch.zeros_like(index))
            self.regressors[c] = KeypointRegressor(r.names, index, r.weights, r.valid)

    def built_from(self, regs, like: Tensor) -> bool:
        sources, dtype, device = self._source
        return (len(sources) == len(regs) and all(i is r.index and w is r.weights for (i, w), r in zip(sources, regs))
                and dtype == like.dtype and device == like.device)


# ----------------------------------------------------------------------------------------
# Keypoint regressors


def _smpl_regressors(body: SMPLBody, faces: np.ndarray) -> dict:
    """coco17, mediapipe33, smpl24 (+ hand21_left/right for SMPL-H and SMPL-X): joints for
    the limbs, the topology's known vertices for face, feet and fingertips."""
    kind, V, dtype = body.name, body.num_vertices, body.v_template.dtype
    jidx = {n: V + i for i, n in enumerate(body.joint_names)}
    vid = VERTEX_IDS[kind]
    has_fingers = kind != "smpl"

    def joint(name):
        return [(jidx[name], 1.0)]

    def vertex(name):
        return [(vid[name], 1.0)]

    coco = {n: joint(n) if n in jidx else vertex(n) for n in COCO17}
    regressors = {"coco17": KeypointRegressor.from_entries(COCO17, [coco[n] for n in COCO17], V, dtype)}

    landmarks = {}
    if body._landmarks is not None:
        lmk_faces, lmk_bary = body._landmarks
        for name, k in _SMPLX_LANDMARKS.items():
            if k < len(lmk_faces):
                tri = faces[lmk_faces[k]]
                landmarks[name] = [(int(tri[i]), float(lmk_bary[k][i])) for i in range(3)]

    mp = dict(coco)
    for side in ("left", "right"):
        for name in (f"{side}_eye_inner", f"{side}_eye_outer", f"mouth_{side}"):
            mp[name] = landmarks.get(name)  # None (invalid) unless SMPL-X landmarks give it
        mp[f"{side}_heel"] = vertex(f"{side}_heel")
        mp[f"{side}_foot_index"] = vertex(f"{side}_big_toe")
        if has_fingers:
            # BlazePose: pinky and index #1 knuckles, thumb #2 knuckle
            mp[f"{side}_pinky"] = joint(f"{side}_pinky1")
            mp[f"{side}_index"] = joint(f"{side}_index1")
            mp[f"{side}_thumb"] = joint(f"{side}_thumb2")
        else:
            # SMPL has no finger joints: a knuckle sits about half way from the wrist joint
            # to its fingertip on the flat rest hand.
            w = jidx[f"{side}_wrist"]
            mp[f"{side}_pinky"] = [(w, 0.45), (vid[f"{side}_pinky_tip"], 0.55)]
            mp[f"{side}_index"] = [(w, 0.5), (vid[f"{side}_index_tip"], 0.5)]
            mp[f"{side}_thumb"] = [(w, 0.5), (vid[f"{side}_thumb_tip"], 0.5)]
    regressors["mediapipe33"] = KeypointRegressor.from_entries(MEDIAPIPE33, [mp[n] for n in MEDIAPIPE33], V, dtype)

    smpl = []
    for n in SMPL24:
        if n in jidx:
            smpl.append(joint(n))
        else:  # left_hand / right_hand of SMPL: the middle finger's base
            smpl.append(joint(n.replace("_hand", "_middle1")))
    regressors["smpl24"] = KeypointRegressor.from_entries(SMPL24, smpl, V, dtype)

    if has_fingers:
        tips = {n: vertex(n) for n in vid if n.endswith("_tip")}
        regressors.update(hand21_regressors(jidx, tips, V, dtype))
    return regressors
