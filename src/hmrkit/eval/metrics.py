"""The standard 3D human pose and shape metrics, batched, in torch.

Units: inputs in metres (3D) or pixels (2D); 3D errors come out in millimetres, PCK as a
fraction in [0, 1]. Every function takes any number of leading batch dimensions ``...``
and reduces only the joint (and, for sequences, the time) dimension, so a batch of B
samples gives (B,) per-sample values; ``summarize`` pools them into data-set figures.

Root alignment (MPJPE, PVE, acceleration error) subtracts the mean of the joints named by
``root_indices`` from every joint, in prediction and ground truth separately. The literature
aligns "the pelvis"; ``pelvis_indices(convention)`` gives that choice per keypoint set:

  smpl24   (0,)       SMPL's pelvis joint.
  h36m17   (0,)       the H36M pelvis joint, as SPIN's evaluation code (it subtracts
                      joint 0 of the H36M regressor, which lies close to the hip midpoint;
                      when h36m17 comes from a set without a pelvis, hmrkit.conventions
                      derives joint 0 as that midpoint).
  j14      (3, 2)     midpoint of left and right hip: the 14 LSP joints have no pelvis; VIBE's
                      and TCMR's evaluation code align 3DPW this way.
  coco17 / others     midpoint of ``left_hip`` and ``right_hip`` (or the set's own ``pelvis``
                      / ``mid_hip`` when it has one).

Joint validity masks (``joint_mask``) are bool or {0, 1} float, shaped (J,) or (..., J): a
masked-out joint is left out of the average (and, for PA-MPJPE, of the alignment). A sample
with no valid joint gives NaN, which ``summarize`` drops and counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from hmrkit import conventions as _conventions
from hmrkit.geometry.procrustes import procrustes_align

M_TO_MM = 1000.0

# The 14 LSP joints on which SPIN, VIBE, PARE, MAED and DynaBOA report 3DPW and H36M
# (SPIN's H36M_TO_J14 / J24_TO_J14), named as in hmrkit.conventions' h36m17: ``thorax`` is
# H36M's thorax (SPIN's "Neck (LSP)" slot), ``head_top`` H36M's head joint ("Head (H36M)").
J14 = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "thorax", "head_top",
)

# Joint sets for evaluation: the keypoint conventions plus "j14" (a subset of h36m17).
EVAL_SETS = ("h36m17", "coco17", "smpl24", "j14")


# ----------------------------------------------------------------------------------------
# Checks and helpers


def _check_points(name: str, x: Tensor, dim: int = 3) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[-1] != dim:
        raise ValueError(f"{name}: expected shape (..., N, {dim}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating point tensor, got {x.dtype}")


def _check_pair(names: tuple, a: Tensor, b: Tensor, dim: int = 3) -> None:
    _check_points(names[0], a, dim)
    _check_points(names[1], b, dim)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"{names[0]} and {names[1]} must have the same dtype, got {a.dtype} and {b.dtype}")


def _weights(mask, batch_shape: tuple, n: int, like: Tensor, name: str = "joint_mask") -> Tensor:
    """mask None | (n,) | (..., n) -> float weights broadcast to (*batch_shape, n)."""
    if mask is None:
        return torch.ones(batch_shape + (n,), dtype=like.dtype, device=like.device)
    m = torch.as_tensor(mask, device=like.device)
    if m.ndim == 0 or m.shape[-1] != n:
        raise ValueError(f"{name}: expected shape ({n},) or (..., {n}), got {tuple(m.shape)}")
    m = m.to(like.dtype)
    try:
        return m.expand(batch_shape + (n,))
    except RuntimeError:
        raise ValueError(f"{name}: shape {tuple(m.shape)} does not broadcast to "
                         f"{batch_shape + (n,)}") from None


def _masked_mean(values: Tensor, weights: Tensor) -> Tensor:
    """(..., n) values and weights -> (...) weighted mean; NaN where all weights are 0."""
    total = weights.sum(-1)
    out = (values * weights).sum(-1) / total.clamp(min=torch.finfo(values.dtype).tiny)
    return torch.where(total > 0, out, torch.full_like(out, math.nan))


def root_of(joints: Tensor, root_indices: Sequence[int]) -> Tensor:
    """(..., J, 3) -> (..., 3): the mean of the joints ``root_indices`` (same frame, unit)."""
    _check_points("joints", joints)
    idx = tuple(int(i) for i in root_indices)
    if not idx:
        raise ValueError("root_indices is empty; pass None for no root alignment")
    J = joints.shape[-2]
    if any(i < -J or i >= J for i in idx):
        raise ValueError(f"root_indices {idx} out of range for {J} joints")
    return joints[..., list(idx), :].mean(-2)


def root_align(joints: Tensor, root_indices: Sequence[int] | None) -> Tensor:
    """(..., J, 3) -> (..., J, 3) with the root (mean of ``root_indices``) subtracted;
    unchanged when root_indices is None."""
    if root_indices is None:
        return joints
    return joints - root_of(joints, root_indices)[..., None, :]


def pelvis_indices(convention: str) -> tuple:
    """The literature's root ("pelvis") of a joint set, as indices to average.

    A ``pelvis`` or ``mid_hip`` keypoint when the set has one (smpl24, h36m17: ``(0,)``;
    openpose25: ``(8,)``), else the midpoint of ``left_hip`` and ``right_hip`` (coco17:
    ``(11, 12)``; j14: ``(3, 2)``, which averages to the same point as ``(2, 3)``)."""
    names = J14 if convention == "j14" else _conventions.get(convention).names
    for root in ("pelvis", "mid_hip"):
        if root in names:
            return (names.index(root),)
    if "left_hip" in names and "right_hip" in names:
        return (names.index("left_hip"), names.index("right_hip"))
    raise ValueError(f"joint set {convention!r} has neither a pelvis nor both hips; pass root_indices explicitly")


def to_joint_set(joints: Tensor, src_convention: str, dst: str):
    """Joints of one keypoint set in another, by joint name (hmrkit.conventions).

    joints (..., K_src, D) any unit and frame; dst one of EVAL_SETS (or any convention name).
    Returns (joints (..., K_dst, D), mask (K_dst,) bool): False where src lacks the joint
    (its values are zeros). Derived joints (``pelvis``/``mid_hip`` as the hip midpoint,
    ``thorax``/``neck`` as the shoulder midpoint) count as present. Names are semantic:
    the SMPL hip joint and the COCO hip keypoint are both ``left_hip``, but they are not
    the same point, so compare predictions and ground truth in the set both came from."""
    if dst == "j14":
        out, mask = to_joint_set(joints, src_convention, "h36m17")
        idx = [_conventions.get("h36m17").index(n) for n in J14]
        return out[..., idx, :], mask[idx]
    out, mask = _conventions.convert(joints, src_convention, dst)
    if isinstance(joints, Tensor):
        mask = torch.as_tensor(mask, device=joints.device)
    return out, mask


# ----------------------------------------------------------------------------------------
# Joint and vertex errors


def mpjpe(pred: Tensor, gt: Tensor, root_indices: Sequence[int] | None, joint_mask=None) -> Tensor:
    """Mean per-joint position error after root alignment.

    pred, gt (..., J, 3) metres, same frame; root_indices: joints whose mean is each
    skeleton's root (see ``pelvis_indices(convention)``), None for no alignment;
    joint_mask None | (J,) | (..., J). Returns (...) millimetres: mean over valid joints of
    ||(pred_j - pred_root) - (gt_j - gt_root)||."""
    _check_pair(("pred", "gt"), pred, gt)
    err = (root_align(pred, root_indices) - root_align(gt, root_indices)).norm(dim=-1)
    w = _weights(joint_mask, tuple(err.shape[:-1]), err.shape[-1], err)
    return _masked_mean(err, w) * M_TO_MM


def pa_mpjpe(pred: Tensor, gt: Tensor, joint_mask=None) -> Tensor:
    """Procrustes-aligned MPJPE ("reconstruction error"): pred is mapped onto gt by the
    similarity transform (scale, rotation, translation) that best fits the valid joints,
    then the mean per-joint error is taken.

    pred, gt (..., J, 3) metres; joint_mask None | (J,) | (..., J). Returns (...) mm."""
    _check_pair(("pred", "gt"), pred, gt)
    w = _weights(joint_mask, tuple(pred.shape[:-2]), pred.shape[-2], pred)
    aligned = procrustes_align(pred, gt, w)
    return _masked_mean((aligned - gt).norm(dim=-1), w) * M_TO_MM


def pve(pred_verts: Tensor, gt_verts: Tensor, pred_root: Tensor | None = None, gt_root: Tensor | None = None,
        vertex_mask=None) -> Tensor:
    """Per-vertex error (also called MPVE / V2V) after root alignment.

    pred_verts, gt_verts (..., V, 3) metres, same topology; pred_root, gt_root (..., 3)
    metres, each mesh's root (usually its pelvis: ``root_of(joints, root_indices)`` of the
    joints used for MPJPE), subtracted from its own vertices; both None for no alignment.
    vertex_mask None | (V,) | (..., V). Returns (...) mm."""
    _check_pair(("pred_verts", "gt_verts"), pred_verts, gt_verts)
    if (pred_root is None) != (gt_root is None):
        raise ValueError("pve: give both pred_root and gt_root, or neither")
    if pred_root is not None:
        for name, root in (("pred_root", pred_root), ("gt_root", gt_root)):
            if root.shape != pred_verts.shape[:-2] + (3,):
                raise ValueError(f"{name}: expected shape {tuple(pred_verts.shape[:-2]) + (3,)}, "
                                 f"got {tuple(root.shape)}")
        pred_verts = pred_verts - pred_root[..., None, :]
        gt_verts = gt_verts - gt_root[..., None, :]
    err = (pred_verts - gt_verts).norm(dim=-1)
    w = _weights(vertex_mask, tuple(err.shape[:-1]), err.shape[-1], err, "vertex_mask")
    return _masked_mean(err, w) * M_TO_MM


def pa_pve(pred_verts: Tensor, gt_verts: Tensor, vertex_mask=None) -> Tensor:
    """Per-vertex error after similarity Procrustes of pred onto gt over the (valid)
    vertices. pred_verts, gt_verts (..., V, 3) metres. Returns (...) mm."""
    _check_pair(("pred_verts", "gt_verts"), pred_verts, gt_verts)
    w = _weights(vertex_mask, tuple(pred_verts.shape[:-2]), pred_verts.shape[-2], pred_verts, "vertex_mask")
    aligned = procrustes_align(pred_verts, gt_verts, w)
    return _masked_mean((aligned - gt_verts).norm(dim=-1), w) * M_TO_MM


# ----------------------------------------------------------------------------------------
# Temporal


def _second_difference(x: Tensor) -> Tensor:
    """(..., T, J, 3) -> (..., T-2, J, 3): x[t-1] - 2 x[t] + x[t+1] for t = 1 .. T-2."""
    return x[..., :-2, :, :] - 2.0 * x[..., 1:-1, :, :] + x[..., 2:, :, :]


def _check_sequence(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim < 3 or x.shape[-1] != 3:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected shape (..., T, J, 3), got {got}")
    if x.shape[-3] < 3:
        raise ValueError(f"{name}: a sequence needs at least 3 frames for an acceleration, got {x.shape[-3]}")


def accel_error_per_window(pred_seq: Tensor, gt_seq: Tensor, root_indices: Sequence[int] | None,
                           valid: Tensor | None = None, joint_mask=None):
    """Acceleration error of every 3-frame window, as HMMR and VIBE.

    pred_seq, gt_seq (..., T, J, 3) metres, frames evenly spaced; each frame is first root
    aligned (``root_indices``, None for none). valid (..., T) bool or None: frames with
    ground truth. joint_mask None | (J,) | (..., J), shared by all frames.
    Returns (errors (..., T-2) mm/frame², kept (..., T-2) bool): errors[t] is the mean over
    joints of ||a_pred - a_gt|| with a = x[t] - 2 x[t+1] + x[t+2] (the window centred on frame
    t+1); kept[t] is False when any of the three frames is invalid (HMMR's
    ``compute_error_accel`` with ``vis``), and such errors are NaN."""
    _check_sequence("pred_seq", pred_seq)
    _check_sequence("gt_seq", gt_seq)
    _check_pair(("pred_seq", "gt_seq"), pred_seq, gt_seq)
    a_pred = _second_difference(root_align(pred_seq, root_indices))
    a_gt = _second_difference(root_align(gt_seq, root_indices))
    norms = (a_pred - a_gt).norm(dim=-1)  # (..., T-2, J)
    batch, J = tuple(pred_seq.shape[:-3]), pred_seq.shape[-2]
    w = _weights(joint_mask, batch, J, norms)[..., None, :]
    errors = _masked_mean(norms, w.expand(norms.shape)) * M_TO_MM
    T = pred_seq.shape[-3]
    if valid is None:
        kept = torch.ones(errors.shape, dtype=torch.bool, device=errors.device)
    else:
        v = torch.as_tensor(valid, device=errors.device).bool()
        if v.shape[-1:] != (T,):
            raise ValueError(f"valid: expected shape (..., {T}), got {tuple(v.shape)}")
        v = v.expand(batch + (T,))
        kept = v[..., :-2] & v[..., 1:-1] & v[..., 2:]
    errors = torch.where(kept, errors, torch.full_like(errors, math.nan))
    return errors, kept


def accel_error(pred_seq: Tensor, gt_seq: Tensor, root_indices: Sequence[int] | None,
                valid: Tensor | None = None, joint_mask=None) -> Tensor:
    """Acceleration error of sequences: the mean over kept 3-frame windows of
    ``accel_error_per_window`` (see there for shapes). Returns (...) mm/frame², NaN for a
    sequence with no kept window. To pool a data set of sequences as VIBE does (every
    window weighs the same), use ``accel_error_per_window`` and average the kept errors."""
    errors, kept = accel_error_per_window(pred_seq, gt_seq, root_indices, valid, joint_mask)
    return _masked_mean(torch.nan_to_num(errors), kept.to(errors.dtype))


def acceleration(seq: Tensor, root_indices: Sequence[int] | None, joint_mask=None) -> Tensor:
    """Mean acceleration magnitude of a sequence (VIBE's "ACCEL", a smoothness measure of
    the prediction alone): seq (..., T, J, 3) metres -> (..., T-2) mm/frame², the mean over
    joints of ||x[t] - 2 x[t+1] + x[t+2]|| after root alignment."""
    _check_sequence("seq", seq)
    _check_points("seq", seq)
    norms = _second_difference(root_align(seq, root_indices)).norm(dim=-1)
    w = _weights(joint_mask, tuple(seq.shape[:-3]), seq.shape[-2], norms)[..., None, :]
    return _masked_mean(norms, w.expand(norms.shape)) * M_TO_MM


# ----------------------------------------------------------------------------------------
# 2D


def pck2d(pred_px: Tensor, gt_px: Tensor, threshold: float, normalize=1.0, visible=None) -> Tensor:
    """Percentage of correct keypoints, as a fraction.

    pred_px, gt_px (..., K, 2) pixels; a keypoint is correct when
    ||pred - gt|| <= threshold * normalize (a point exactly at the threshold counts).
    normalize: the reference length in pixels, a float or a (...) tensor per sample, e.g.
    ``bbox_size(gt_px)`` (PCK@0.1 of the box) or ``torso_size(gt_px, convention)``;
    the default 1.0 makes ``threshold`` a pixel distance. visible None | (K,) | (..., K):
    keypoints with ground truth (others are not counted). Returns (...) in [0, 1], NaN
    when a sample has no visible keypoint."""
    _check_pair(("pred_px", "gt_px"), pred_px, gt_px, dim=2)
    dist = (pred_px - gt_px).norm(dim=-1)
    norm = torch.as_tensor(normalize, dtype=dist.dtype, device=dist.device)
    if norm.ndim and norm.shape != dist.shape[:-1]:
        raise ValueError(f"normalize: expected a float or shape {tuple(dist.shape[:-1])}, got {tuple(norm.shape)}")
    correct = (dist <= threshold * norm[..., None]).to(dist.dtype)
    w = _weights(visible, tuple(dist.shape[:-1]), dist.shape[-1], dist, "visible")
    return _masked_mean(correct, w)


def bbox_size(kp_px: Tensor, visible=None) -> Tensor:
    """(..., K, 2) pixels -> (...) the longer side of the tight box around the visible
    keypoints, pixels (a PCK normaliser)."""
    _check_points("kp_px", kp_px, 2)
    w = _weights(visible, tuple(kp_px.shape[:-2]), kp_px.shape[-2], kp_px, "visible").bool()
    inf = torch.full_like(kp_px, math.inf)
    lo = torch.where(w[..., None], kp_px, inf).amin(-2)
    hi = torch.where(w[..., None], kp_px, -inf).amax(-2)
    return (hi - lo).amax(-1)


def torso_size(kp_px: Tensor, convention: str) -> Tensor:
    """(..., K, 2 or 3) keypoints of ``convention`` -> (...) the torso diameter, the distance
    from the left shoulder to the right hip (PCK's torso normaliser), same unit."""
    names = _conventions.get(convention).names
    try:
        a, b = names.index("left_shoulder"), names.index("right_hip")
    except ValueError:
        raise ValueError(f"convention {convention!r} has no left_shoulder/right_hip for a torso size") from None
    return (kp_px[..., a, :] - kp_px[..., b, :]).norm(dim=-1)


# ----------------------------------------------------------------------------------------
# Summaries


@dataclass(frozen=True)
class MetricSummary:
    """One metric pooled over a data set (NaN entries left out and counted).

    mean, median, std, min, max: in the metric's unit; count: values pooled;
    missing: NaN values left out (samples without valid joints or windows)."""

    mean: float
    median: float
    std: float
    min: float
    max: float
    count: int
    missing: int = 0


def summarize(results: Mapping[str, Tensor]) -> dict:
    """{name: per-sample values (any shape)} -> {name: MetricSummary}, pooling all values
    of each metric (NaNs dropped and counted as ``missing``). std is the population std."""
    out = {}
    for name, values in results.items():
        v = torch.as_tensor(values).detach().reshape(-1).to(torch.float64).cpu()
        nan = torch.isnan(v)
        v = v[~nan]
        if v.numel() == 0:
            out[name] = MetricSummary(math.nan, math.nan, math.nan, math.nan, math.nan, 0, int(nan.sum()))
            continue
        out[name] = MetricSummary(
            mean=float(v.mean()),
            median=float(np.median(v.numpy())),
            std=float(v.std(unbiased=False)),
            min=float(v.min()),
            max=float(v.max()),
            count=int(v.numel()),
            missing=int(nan.sum()),
        )
    return out


def _cell(value, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, MetricSummary):
        value = value.mean
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_number(value) -> bool:
    return isinstance(value, (int, float, MetricSummary)) and not isinstance(value, bool)


def format_table(rows: Sequence[Mapping], columns: Sequence[str], digits: int = 1) -> str:
    """A markdown table: one line per row (a mapping column -> value), columns in order.

    Floats get ``digits`` decimals, a MetricSummary shows its mean, missing values and NaN
    show "-"; columns holding only numbers are right-aligned. Ends without a newline."""
    columns = list(columns)
    if not columns:
        raise ValueError("format_table: no columns")
    cells = [[_cell(row.get(c), digits) for c in columns] for row in rows]
    numeric = [all(_is_number(row.get(c)) or row.get(c) is None for row in rows) and
               any(_is_number(row.get(c)) for row in rows) for c in columns]
    head = [str(c).replace("|", "\\|") for c in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells] + [3]) for i, h in enumerate(head)]

    def line(parts, numeric_flags):
        padded = [p.rjust(w) if num else p.ljust(w) for p, w, num in zip(parts, widths, numeric_flags)]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric)) + " |"
    lines = [line(head, [False] * len(head)), rule] + [line(r, numeric) for r in cells]
    return "\n".join(lines)
