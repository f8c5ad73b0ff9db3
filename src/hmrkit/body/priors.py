"""Priors over a body model's parameters: a pose GMM learned from mocap, hinge joint limits,
and a shape prior. Each works through the BodyModel metadata only.

The pose GMM (SMPLify's choice: 8 full-covariance Gaussians) lives in the body model's own
joint space: the axis-angle vectors of the body joints of the regression skeleton (fingers
excluded), concatenated. ``scripts/build_pose_prior.py`` learns it from the CMU mocap
retargeted onto the body model; the small result ships in ``hmrkit/weights``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from hmrkit.geometry.rotation import rotmat_to_aa

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

_FINGER_WORDS = ("thumb", "index", "middle", "ring", "pinky")


def body_joint_indices(body) -> list[int]:
    """Indices into ``BodyParams.pose`` of the body joints (fingers, jaw and eyes excluded)."""
    out = []
    for i, n in enumerate(body.pose_joint_names):
        if any(w in n for w in _FINGER_WORDS) or n in ("jaw",) or n.endswith("_eye_smplx"):
            continue
        out.append(i)
    return out


def hand_joint_indices(body, side: str) -> list[int]:
    """Indices into ``BodyParams.pose`` of one hand's finger joints (side: left|right)."""
    return [i for i, n in enumerate(body.pose_joint_names)
            if n.startswith(side + "_") and any(w in n for w in _FINGER_WORDS)]


class PoseGMM(nn.Module):
    """Gaussian mixture over concatenated axis-angle body-joint rotations.

    Buffers: means (M, D), precisions (M, D, D), log_weights (M,) including the
    normalising constant of each component. ``forward(pose)`` returns the SMPLify-style
    energy: the minimum over components of 0.5 * Mahalanobis^2 - log weight (B,)."""

    def __init__(self, means: Tensor, covariances: Tensor, weights: Tensor, joint_names):
        super().__init__()
        M, D = means.shape
        prec = torch.linalg.inv(covariances)
        _, logdet = torch.linalg.slogdet(covariances)
        log_w = torch.log(weights) - 0.5 * logdet - 0.5 * D * math.log(2 * math.pi)
        self.register_buffer("means", means.float(), persistent=False)
        self.register_buffer("precisions", prec.float(), persistent=False)
        self.register_buffer("log_weights", log_w.float(), persistent=False)
        self.joint_names = tuple(joint_names)

    @staticmethod
    def load(path) -> "PoseGMM":
        z = np.load(path, allow_pickle=False)
        return PoseGMM(torch.from_numpy(z["means"]), torch.from_numpy(z["covariances"]),
                       torch.from_numpy(z["weights"]), [str(n) for n in z["joint_names"]])

    def save(self, path, covariances: Tensor, weights: Tensor):
        np.savez(path, means=self.means.numpy(), covariances=covariances.numpy(),
                 weights=weights.numpy(), joint_names=np.array(self.joint_names))

    def energy_aa(self, x: Tensor) -> Tensor:
        """x (B, D) concatenated axis-angle -> (B,) min over components of
        0.5 * (x - mu)^T P (x - mu) - log w_m (log w_m includes the normaliser)."""
        d = x[:, None, :] - self.means[None].to(x.dtype)  # (B, M, D)
        maha = torch.einsum("bmi,mij,bmj->bm", d, self.precisions.to(x.dtype), d)
        e = 0.5 * maha - self.log_weights.to(x.dtype)[None]
        return e.min(dim=1).values

    def forward(self, body_pose: Tensor) -> Tensor:
        """body_pose (B, Jb, 3, 3) rotations of the body joints, in ``joint_names`` order -> (B,)."""
        x = rotmat_to_aa(body_pose).reshape(body_pose.shape[0], -1)
        return self.energy_aa(x)


def load_pose_prior(body) -> PoseGMM | None:
    """The shipped GMM of ``body.pose_library`` (smpl/smplh/smplx share the SMPL one), or
    None when none ships or its joints are not the body's."""
    path = WEIGHTS_DIR / f"pose_prior_{body.pose_library}.npz"
    if not path.exists():
        return None
    gmm = PoseGMM.load(path)
    names = [body.pose_joint_names[i] for i in body_joint_indices(body)]
    if list(gmm.joint_names) != names:
        return None
    return gmm


# Hinge joints: which way they bend, in the body frame at rest (y up, facing +z, left +x).
# The flexion axis is computed from the rest skeleton: the limb below the joint must turn
# towards ``bend_towards`` (knees backwards, elbows forwards).
HINGES = {
    "left_knee": ("left_ankle", (0.0, 0.0, -1.0)),
    "right_knee": ("right_ankle", (0.0, 0.0, -1.0)),
    "left_elbow": ("left_wrist", (0.0, 0.0, 1.0)),
    "right_elbow": ("right_wrist", (0.0, 0.0, 1.0)),
}


class HingePrior(nn.Module):
    """Penalises bending hinge joints (knees, elbows) the wrong way and off their axis.

    For each hinge, the flexion axis a is (limb direction at rest) x (bend direction); the
    joint's axis-angle vector w splits into flexion f = w.a and the rest w - f a.
    energy = sum exp(-f) - 1 + f for f < 0 (SMPLify's exponential bend prior, zero at rest)
    plus off_axis_weight * |w - f a|^2 (B,)."""

    def __init__(self, body, off_axis_weight: float = 0.1):
        super().__init__()
        rest = body(body.mean_params(1))
        names = body.joint_names
        idx, axes = [], []
        for joint, (child, towards) in HINGES.items():
            if joint not in names or child not in names:
                continue
            d = rest.joints[0, names.index(child)] - rest.joints[0, names.index(joint)]
            d = d / d.norm()
            a = torch.linalg.cross(d, torch.tensor(towards, dtype=d.dtype))
            axes.append(a / a.norm())
            idx.append(names.index(joint) - 1)
        self.register_buffer("index", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.register_buffer("axes", torch.stack(axes).detach(), persistent=False)
        self.off_axis_weight = off_axis_weight

    def flexion(self, pose: Tensor) -> Tensor:
        """(B, J, 3, 3) -> (B, H) flexion angles (radians, positive = natural bend)."""
        w = rotmat_to_aa(pose[:, self.index])
        return (w * self.axes.to(w.dtype)).sum(-1)

    def forward(self, pose: Tensor) -> Tensor:
        w = rotmat_to_aa(pose[:, self.index])
        a = self.axes.to(w.dtype)
        f = (w * a).sum(-1)
        neg = torch.clamp(f, max=0.0)
        bend = torch.exp(-neg) - 1.0 + neg  # 0 for f >= 0, grows fast for hyperextension
        off = ((w - f[..., None] * a) ** 2).sum(-1)
        return (bend + self.off_axis_weight * off).sum(-1)


@dataclass(frozen=True)
class ShapePrior:
    """Gaussian shape prior: ((shape - mean) / std)^2 summed, (B,).

    ``for_body``: mean the shape of ``body.mean_params`` (Anny: a young adult; SMPL: zero
    betas), std ``body.shape_prior_std`` (Anny 0.3, SMPL betas 1 as in SMPLify)."""

    mean: tuple
    std: float

    @staticmethod
    def for_body(body) -> "ShapePrior":
        mean = tuple(body.mean_params(1).shape[0].tolist())
        return ShapePrior(mean, body.shape_prior_std)

    def __call__(self, shape: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, dtype=shape.dtype, device=shape.device)
        return (((shape - mean) / self.std) ** 2).sum(-1)


GENDERS = ("male", "female", "neutral")


class GenderShapePrior(nn.Module):
    """PIXIE's gender-aware shape prior: a Gaussian over the shape per gender and a neutral
    one, as a mixture; ``forward(shape)`` -> (B,) energy, -log sum_k pi_k N(shape; mu_k,
    Sigma_k) up to a constant; ``gender(shape)`` -> (B, 3) the posterior over
    ``GENDERS``: the inferred gender, never asked for.

    Anny (``hmrkit/weights/shape_prior_anny.json``, scripts/build_shape_prior.py): the
    components are fitted to Anny bodies over all phenotypes, each adult weighted by how
    likely its stature is for its gender in adult populations, so the other phenotypes
    (height above all) are conditioned on the ``gender`` phenotype. A body with no such
    file (SMPL-family: one model file per gender, betas N(0, I) under each, as the paper)
    gets one standard Gaussian around its mean shape (``ShapePrior``'s) for all three."""

    def __init__(self, means: Tensor, covariances: Tensor, weights: Tensor, source: str = ""):
        super().__init__()
        prec = torch.linalg.inv(covariances)
        _, logdet = torch.linalg.slogdet(covariances)
        self.register_buffer("means", means.float(), persistent=False)
        self.register_buffer("precisions", prec.float(), persistent=False)
        self.register_buffer("log_norm", (torch.log(weights) - 0.5 * logdet).float(), persistent=False)
        self.source = source

    @staticmethod
    def path_for(body_name: str):
        from pathlib import Path

        return Path(__file__).resolve().parent.parent / "weights" / f"shape_prior_{body_name}.json"

    @staticmethod
    def for_body(body) -> "GenderShapePrior":
        import json

        path = GenderShapePrior.path_for(body.name)
        if path.exists():
            z = json.loads(path.read_text())
            comps = [z["components"][g] for g in GENDERS]
            return GenderShapePrior(torch.tensor([c["mean"] for c in comps], dtype=torch.float64),
                                    torch.tensor([c["cov"] for c in comps], dtype=torch.float64),
                                    torch.tensor([c["weight"] for c in comps], dtype=torch.float64), str(path.name))
        base = ShapePrior.for_body(body)
        S = body.num_shape
        mean = torch.tensor(base.mean, dtype=torch.float64).expand(3, S)
        cov = (base.std ** 2) * torch.eye(S, dtype=torch.float64).expand(3, S, S)
        return GenderShapePrior(mean, cov, torch.full((3,), 1 / 3, dtype=torch.float64), "isotropic")

    def log_terms(self, shape: Tensor) -> Tensor:
        """(B, 3): log pi_k - 0.5 log|Sigma_k| - 0.5 Mahalanobis^2 per component."""
        d = shape[:, None, :] - self.means.to(shape.dtype)
        m = torch.einsum("bki,kij,bkj->bk", d, self.precisions.to(shape.dtype), d)
        return self.log_norm.to(shape.dtype) - 0.5 * m

    def forward(self, shape: Tensor) -> Tensor:
        return -torch.logsumexp(self.log_terms(shape), -1)

    def gender(self, shape: Tensor) -> Tensor:
        return torch.softmax(self.log_terms(shape), -1)
