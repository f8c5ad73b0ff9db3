"""Finger anatomy of a body model: per finger joint its flexion, spread and twist axes,
joint limits over them, and a prior that keeps fingers inside those limits.

A finger joint's rotation (``BodyParams.pose``) is a rotation in the rest skeleton's axes
(as every joint of hmrkit's body models; ``HingePrior`` reads knees and elbows the same
way). Its axis-angle vector w splits into three angles along axes computed from the rest
skeleton (``finger_axes``):

- twist:  the bone's own direction d (joint to child joint, or to the fingertip);
- spread: the hand's volar normal v (out of the palm) made orthogonal to d; turning about
  it moves the finger sideways in the palm's plane;
- flex:   d x v, so that a positive angle turns the child towards the palm (a curl).

The volar normal comes from the rest hand: cross(index1 - wrist, pinky1 - wrist) for the
right hand, the opposite for the left (for a right hand held up, palm to the viewer, the
index knuckle is on the thumb's side). The thumb's flexion curls it across the palm: its
"palm" direction is v tilted towards the little finger (``THUMB_ACROSS``).

Works with any body whose skeleton names its finger joints ``{side}_{finger}{k}`` (k = 1,
2, 3 from the palm), its wrists ``{side}_wrist``, and has ``hand21_{side}`` keypoints
(Anny, SMPL-H, SMPL-X). A body without fingers gets empty tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor, nn

from hmrkit.geometry.rotation import rotmat_to_aa

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
SIDES = ("left", "right")
THUMB_ACROSS = 0.7  # the thumb's curl direction: volar normal + this x (index -> pinky knuckle direction)

# Joint limits in degrees, (low, high) per angle, by finger kind and segment k (1 = knuckle).
# Flexion from hand anatomy tables (MCP -20..90, PIP 0..110, DIP 0..80; thumb CMC, MCP,
# IP), with a small allowance for hyperextension; spread only at the knuckles; a few
# degrees of twist (the finger's skin cannot twist).
LIMITS_DEG = {
    ("finger", 1): {"flex": (-20.0, 90.0), "spread": (-20.0, 20.0), "twist": (-10.0, 10.0)},
    ("finger", 2): {"flex": (-5.0, 110.0), "spread": (-5.0, 5.0), "twist": (-5.0, 5.0)},
    ("finger", 3): {"flex": (-10.0, 80.0), "spread": (-5.0, 5.0), "twist": (-5.0, 5.0)},
    ("thumb", 1): {"flex": (-20.0, 50.0), "spread": (-30.0, 30.0), "twist": (-20.0, 20.0)},
    ("thumb", 2): {"flex": (-10.0, 60.0), "spread": (-10.0, 10.0), "twist": (-10.0, 10.0)},
    ("thumb", 3): {"flex": (-15.0, 80.0), "spread": (-5.0, 5.0), "twist": (-5.0, 5.0)},
}
ANGLES = ("flex", "spread", "twist")


@dataclass(frozen=True)
class FingerAxes:
    """The finger joints of a body and their anatomical axes.

    index (F,) int64: indices into ``BodyParams.pose``; names (F,) their joint names;
    side (F,) 0 left / 1 right; finger (F,) 0..4 thumb to pinky; segment (F,) 1..3;
    axes (F, 3, 3): rows flex, spread, twist, unit vectors in the rest skeleton's axes;
    low, high (F, 3) radians: the limits of (flex, spread, twist)."""

    index: Tensor
    names: tuple
    side: Tensor
    finger: Tensor
    segment: Tensor
    axes: Tensor
    low: Tensor
    high: Tensor

    def __len__(self) -> int:
        return len(self.names)

    def angles(self, pose: Tensor) -> Tensor:
        """pose (B, J, 3, 3) all of ``BodyParams.pose`` -> (B, F, 3) radians: the finger
        joints' axis-angle vectors projected on (flex, spread, twist)."""
        w = rotmat_to_aa(pose[:, self.index])
        return torch.einsum("bfk,fak->bfa", w, self.axes.to(w.dtype))

    def rotations(self, angles: Tensor) -> Tensor:
        """angles (B, F, 3) radians (flex, spread, twist) -> (B, F, 3, 3): the rotation about
        the axis-angle vector sum_a angle_a * axis_a (the inverse of ``angles``)."""
        import roma

        w = torch.einsum("bfa,fak->bfk", angles, self.axes.to(angles.dtype))
        return roma.rotvec_to_rotmat(w)

    def side_of(self, side: str) -> Tensor:
        """(F,) bool: the joints of one hand (left | right)."""
        return self.side == SIDES.index(side)


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)


@lru_cache(maxsize=8)
def _finger_axes_cached(body_id: int, body) -> FingerAxes:
    names = list(body.joint_names)
    pose_names = list(body.pose_joint_names)
    index, jnames, side, finger, segment, axes, low, high = [], [], [], [], [], [], [], []
    dtype = body.dtype
    if not any(f"hand21_{s}" in body.regressors for s in SIDES):
        z = torch.zeros(0, dtype=torch.long)
        return FingerAxes(z, (), z, z, z, torch.zeros(0, 3, 3, dtype=dtype), torch.zeros(0, 3, dtype=dtype),
                          torch.zeros(0, 3, dtype=dtype))
    with torch.no_grad():
        rest_params = body.mean_params(1)
        rest_params = type(rest_params)(torch.eye(3, dtype=body.dtype)[None], rest_params.pose,
                                        rest_params.shape, torch.zeros(1, 3, dtype=body.dtype),
                                        rest_params.expression)
        kps = body.forward_keypoints(rest_params, tuple(f"hand21_{s}" for s in SIDES
                                                        if f"hand21_{s}" in body.regressors))
        J = kps["joints"][0]
    for s, sname in enumerate(SIDES):
        needed = [f"{sname}_wrist", f"{sname}_index1", f"{sname}_pinky1"]
        if f"hand21_{sname}" not in kps or any(n not in names for n in needed):
            continue
        wrist, idx1, pinky1 = (J[names.index(n)] for n in needed)
        v = torch.linalg.cross(idx1 - wrist, pinky1 - wrist)
        v = _unit(v if sname == "right" else -v)
        across = _unit(pinky1 - idx1)
        tips = kps[f"hand21_{sname}"][0]
        for f, fname in enumerate(FINGERS):
            for k in (1, 2, 3):
                jn = f"{sname}_{fname}{k}"
                if jn not in names or jn not in pose_names:
                    continue
                here = J[names.index(jn)]
                child = J[names.index(f"{sname}_{fname}{k + 1}")] if k < 3 else tips[4 * f + 4]
                d = _unit(child - here)
                vol = _unit(v + THUMB_ACROSS * across) if fname == "thumb" else v
                vol = _unit(vol - (vol @ d) * d)
                flex = torch.linalg.cross(d, vol)
                axes.append(torch.stack([flex, vol, d]))
                lim = LIMITS_DEG[("thumb" if fname == "thumb" else "finger", k)]
                low.append([lim[a][0] for a in ANGLES])
                high.append([lim[a][1] for a in ANGLES])
                index.append(pose_names.index(jn))
                jnames.append(jn)
                side.append(s)
                finger.append(f)
                segment.append(k)
    deg = torch.pi / 180
    if not index:
        z = torch.zeros(0, dtype=torch.long)
        return FingerAxes(z, (), z, z, z, torch.zeros(0, 3, 3, dtype=dtype), torch.zeros(0, 3, dtype=dtype),
                          torch.zeros(0, 3, dtype=dtype))
    return FingerAxes(torch.tensor(index), tuple(jnames), torch.tensor(side), torch.tensor(finger),
                      torch.tensor(segment), torch.stack(axes).to(dtype),
                      torch.tensor(low, dtype=dtype) * deg, torch.tensor(high, dtype=dtype) * deg)


def finger_axes(body) -> FingerAxes:
    """The finger joints of ``body`` with their anatomical axes and limits (module
    docstring); computed once per body object from its mean-shape rest skeleton."""
    return _finger_axes_cached(id(body), body)


class FingerPrior(nn.Module):
    """Keeps fingers anatomical: energy (B,) = sum over finger joints of
    ``outside`` * (distance outside the joint limits, radians)^2 per angle, plus
    ``twist`` * twist^2 and ``rest`` * |angles|^2 (a weak pull to the open hand).

    Replaces the plain |axis-angle|^2 of a fit's finger stage: that term lets a finger
    bend backwards, sideways or twist about its own bone as cheaply as it curls, and from
    2D keypoints those poses are often as good a match as the true curl."""

    def __init__(self, body, outside: float = 10.0, twist: float = 1.0, rest: float = 0.05):
        super().__init__()
        self.axes = finger_axes(body)
        self.outside, self.twist, self.rest = outside, twist, rest

    def forward(self, pose: Tensor) -> Tensor:
        """pose (B, J, 3, 3) all of ``BodyParams.pose`` -> (B,)."""
        if len(self.axes) == 0:
            return pose.new_zeros(pose.shape[0])
        a = self.axes.angles(pose)
        lo, hi = self.axes.low.to(a.dtype), self.axes.high.to(a.dtype)
        out = torch.clamp(lo - a, min=0) + torch.clamp(a - hi, min=0)
        e = self.outside * (out ** 2).sum((-1, -2)) + self.twist * (a[..., 2] ** 2).sum(-1)
        return e + self.rest * (a ** 2).sum((-1, -2))
