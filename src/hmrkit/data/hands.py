"""Samplers of hand poses and facial expressions (CMU mocap has neither).

Hand poses (``sample_hand_angles``, ``sample_hand_pose``): per hand, a gesture of
``GESTURES`` (fist, point, open, pinch, hold, ...) given as a curl per finger (0 = straight,
1 = fully curled) and a spread; the curl sets every segment's flexion to that fraction of
its range (``hmrkit.body.hands.LIMITS_DEG``), then per-joint jitter, all clipped to the
joint limits. ``random`` draws each finger's curl at random. The two hands of a person draw
their gestures independently.

Expressions (``sample_expressions``): Anny's facial actions (ARKit blendshape names) come
in ``EXPRESSIONS``, groups that move together (a smile is both mouth corners and a cheek
squint); a face shows 0-3 groups at a time, each at 0.3-1 of its full strength. For a body
whose expression is a PCA (SMPL-X), coefficients ~ N(0, 1) clipped at +-2 for the first 10.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from hmrkit.body.hands import FINGERS, SIDES, finger_axes

# Gestures: (curl per finger thumb..pinky, spread of the knuckles as a fraction of its range,
# thumb spread: its CMC's sideways angle as a fraction of its range, + towards the palm).
GESTURES = {
    "open": ((0.0, 0.0, 0.0, 0.0, 0.0), 0.6, -0.6),
    "relaxed": ((0.2, 0.2, 0.25, 0.3, 0.35), 0.1, 0.0),
    "fist": ((0.7, 0.95, 0.95, 0.95, 0.95), 0.0, 0.6),
    "point": ((0.6, 0.0, 0.9, 0.95, 0.95), 0.0, 0.6),
    "pinch": ((0.45, 0.5, 0.2, 0.15, 0.1), 0.0, 0.5),
    "hold": ((0.4, 0.55, 0.6, 0.6, 0.65), 0.0, 0.4),
    "victory": ((0.7, 0.0, 0.0, 0.9, 0.95), 0.7, 0.6),
    "thumbs_up": ((0.0, 0.95, 0.95, 0.95, 0.95), 0.0, -0.4),
    "random": None,
}
GESTURE_NAMES = tuple(GESTURES)
JITTER_DEG = 6.0  # per-joint jitter of flexion (spread and twist: half of it)

# Facial action groups of Anny (ARKit names), each moved together.
EXPRESSIONS = {
    "smile": ("mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft", "cheekSquintRight"),
    "open_mouth": ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight"),
    "surprise": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight", "eyeWideLeft", "eyeWideRight"),
    "frown": ("browDownLeft", "browDownRight", "mouthFrownLeft", "mouthFrownRight"),
    "blink": ("eyeBlinkLeft", "eyeBlinkRight"),
    "pucker": ("mouthPucker", "mouthFunnel"),
    "sneer": ("noseSneerLeft", "noseSneerRight", "mouthUpperUpLeft", "mouthUpperUpRight"),
    "wink": ("eyeBlinkLeft",),
    "mouth_side": ("mouthLeft",),
    "press": ("mouthPressLeft", "mouthPressRight", "mouthRollLower"),
}


def sample_hand_angles(body, n: int, seed: int = 0, gestures=GESTURE_NAMES) -> tuple[Tensor, np.ndarray]:
    """n people's finger joint angles (n, F, 3) radians (flex, spread, twist; the joints of
    ``finger_axes(body)``) and the gesture name of each hand (n, 2) (left, right), drawn
    uniformly from ``gestures``. A body without fingers gives (n, 0, 3)."""
    axes = finger_axes(body)
    g = np.random.default_rng(seed)
    F = len(axes)
    names = np.array(gestures)[g.integers(0, len(gestures), (n, 2))]
    out = np.zeros((n, F, 3))
    if F == 0:
        return torch.zeros(n, 0, 3, dtype=body.dtype), names
    lo, hi = axes.low.double().numpy(), axes.high.double().numpy()
    side, finger, seg = axes.side.numpy(), axes.finger.numpy(), axes.segment.numpy()
    for b in range(n):
        for s in range(len(SIDES)):
            spec = GESTURES[names[b, s]]
            if spec is None:
                curls = g.uniform(0.0, 1.0, len(FINGERS))
                spread, thumb_spread = g.uniform(-0.3, 0.7), g.uniform(-0.6, 0.6)
            else:
                curls, spread, thumb_spread = np.asarray(spec[0]), spec[1], spec[2]
                curls = np.clip(curls + g.normal(0, 0.05, len(FINGERS)), 0, 1)
            for f in np.nonzero(side == s)[0]:
                c = curls[finger[f]]
                flex = c * hi[f, 0] if c >= 0 else -c * lo[f, 0]
                if finger[f] == 0:
                    spr = thumb_spread * (hi[f, 1] if thumb_spread > 0 else -lo[f, 1]) if seg[f] == 1 else 0.0
                else:
                    # spread fans the fingers out from the middle finger: index and pinky most
                    fan = {1: -1.0, 2: -0.3, 3: 0.5, 4: 1.0}[int(finger[f])]
                    spr = spread * fan * hi[f, 1] if seg[f] == 1 else 0.0
                    if side[f] == 0:
                        spr = -spr  # the left hand is the mirror image: its spread axis points the other way
                j = np.radians(JITTER_DEG)
                out[b, f] = (flex + g.normal(0, j), spr + g.normal(0, j / 2), g.normal(0, j / 2))
    out = np.clip(out, lo, hi)
    return torch.as_tensor(out, dtype=body.dtype), names


def sample_hand_pose(body, n: int, seed: int = 0, gestures=GESTURE_NAMES) -> tuple[Tensor, np.ndarray]:
    """(n, F, 3, 3) rotations of the joints ``finger_axes(body).index`` and the gestures
    (n, 2): ``sample_hand_angles`` turned into rotation matrices."""
    angles, names = sample_hand_angles(body, n, seed, gestures)
    return finger_axes(body).rotations(angles), names


def with_hands(body, pose: Tensor, seed: int = 0, gestures=GESTURE_NAMES) -> tuple[Tensor, np.ndarray]:
    """pose (B, J, 3, 3) of ``BodyParams.pose`` with its finger joints replaced by sampled
    hands -> (new pose (B, J, 3, 3), gestures (B, 2))."""
    axes = finger_axes(body)
    R, names = sample_hand_pose(body, pose.shape[0], seed, gestures)
    if len(axes) == 0:
        return pose, names
    out = pose.clone()
    out[:, axes.index] = R.to(pose.dtype)
    return out, names


def sample_expressions(body, n: int, seed: int = 0, max_groups: int = 3) -> tuple[Tensor | None, list]:
    """(n, E) expressions of ``body`` (None without any) and, per face, the names of the
    groups it shows. Anny: 0..max_groups groups of ``EXPRESSIONS`` at 0.3-1 each; a PCA
    expression space (names not ARKit's): N(0, 1) clipped at +-2 on the first 10."""
    E = int(getattr(body, "num_expression", 0) or 0)
    if E == 0:
        return None, [[] for _ in range(n)]
    g = np.random.default_rng(seed)
    names = list(getattr(body, "facial_action_names", ()) or ())
    out = np.zeros((n, E))
    shown = []
    if not all(a in names for grp in EXPRESSIONS.values() for a in grp):
        k = min(10, E)
        out[:, :k] = np.clip(g.normal(0, 1, (n, k)), -2, 2)
        return torch.as_tensor(out, dtype=body.dtype), [["pca"]] * n
    keys = list(EXPRESSIONS)
    for b in range(n):
        m = int(g.integers(0, max_groups + 1))
        pick = [keys[i] for i in g.choice(len(keys), m, replace=False)] if m else []
        for grp in pick:
            a = g.uniform(0.3, 1.0)
            for action in EXPRESSIONS[grp]:
                i = names.index(action)
                out[b, i] = max(out[b, i], a)
        shown.append(pick)
    return torch.as_tensor(out, dtype=body.dtype), shown
