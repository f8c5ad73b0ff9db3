"""Synthetic bodies with known ground truth: poses from the shipped mocap pose library,
sampled shapes and cameras, projected to 2D keypoints, with a detector-like noise model.

Everything is seeded: the same seed gives the same samples on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import roma
import torch
from torch import Tensor

from hmrkit.body.priors import WEIGHTS_DIR, body_joint_indices
from hmrkit.geometry.camera import project
from hmrkit.types import BodyParams


@lru_cache(maxsize=4)
def load_pose_library(name: str = "anny"):
    """(body_pose_aa (N, Jb, 3), global_orient_aa (N, 3), joint_names) of the shipped library
    ``name`` (a body model's ``pose_library``)."""
    z = np.load(_library_path(name))
    return z["body_pose_aa"], z["global_orient_aa"], [str(n) for n in z["joint_names"]]


@lru_cache(maxsize=4)
def pose_library_sources(name: str = "anny") -> tuple[np.ndarray, np.ndarray]:
    """(source (N,) clip names, ':mirrored' for mirrored poses; split (N,) 'train' | 'val' |
    'test', ``hmrkit.data.splits``) of the shipped library ``name``. A library built before
    the splits (no ``split`` array) counts as all 'train'."""
    z = np.load(_library_path(name))
    source = z["source"].astype(str) if "source" in z.files else np.full(len(z["body_pose_aa"]), "?")
    split = z["split"].astype(str) if "split" in z.files else np.full(len(source), "train")
    return source, split


@lru_cache(maxsize=4)
def library_fingerprint(name: str = "anny") -> str:
    """A short hash of the shipped library file (caches built from it name it)."""
    import hashlib

    return hashlib.sha1(_library_path(name).read_bytes()).hexdigest()[:12]


def library_indices(name: str, split: str = "all", mirror: bool = True) -> np.ndarray:
    """Indices of the library poses of ``split`` ('all' for every split); ``mirror=False``
    leaves the mirrored copies out."""
    from hmrkit.data.splits import check_split

    source, sp = pose_library_sources(name)
    keep = np.ones(len(source), dtype=bool) if check_split(split) == "all" else sp == split
    if not mirror:
        keep &= ~np.char.endswith(source, ":mirrored")
    return np.flatnonzero(keep)


def _library_path(name: str):
    path = WEIGHTS_DIR / f"pose_library_{name}.npz"
    if not path.exists():
        from hmrkit.errors import InputError

        raise InputError(path, f"no pose library for the {name!r} body model; build it from the CMU mocap "
                               f"with `python scripts/build_pose_prior.py --body {name} --model-path YOUR_MODEL`")
    return path


@dataclass(frozen=True)
class PoseAugment:
    """New plausible poses made from the library's (the augmentation ablation of
    docs/synthetic_data.md says which help). Probabilities are per sample; each draws
    from its own random stream, so switching one on leaves every other draw unchanged.

    mirror:          include the library's mirrored poses (left/right swapped);
    perturb:         probability of a per-joint perturbation: the body joints' axis-angles
                     moved by a Gaussian step shaped like the pose GMM component the pose
                     belongs to, ``perturb_scale`` times its spread (so each joint moves
                     as far as the library shows it can), kept when the hinge prior (knees, elbows) does not
                     grow and the pose GMM stays within the library's own range (else the
                     pose is left as it was);
    combine:         probability of the upper body (spine, neck, head, arms) of one pose
                     on the lower body (hips and legs, and its global orientation) of
                     another, kept when the pose GMM accepts the result (same rule);
    any_orientation: probability that the body's orientation is uniform over the whole
                     sphere (lying, upside down, leaning) instead of the library's upright
                     one with a random heading."""

    mirror: bool = True
    perturb: float = 0.0
    perturb_scale: float = 0.6
    combine: float = 0.0
    any_orientation: float = 0.0


NO_AUGMENT = PoseAugment()
# Anny phenotype ranges of ``SceneConfig.phenotypes="all"``: every value over its whole
# range, except age from 0.2 (a child of about 1.1 m) to 1 (an elder); 0 is a baby.
ALL_PHENOTYPES_AGE = (0.2, 1.0)


@dataclass(frozen=True)
class SceneConfig:
    """Camera and placement of a synthetic person."""

    image_size: tuple = (720, 720)  # (H, W)
    fov_deg: tuple = (40.0, 70.0)  # field of view range over the larger side
    distance: tuple = (2.5, 6.0)  # metres from the camera to the pelvis
    yaw_deg: float = 180.0  # body heading spread around facing the camera (+-)
    pitch_deg: float = 10.0  # camera elevation spread (+-)
    roll_deg: float = 5.0
    offset: float = 0.25  # pelvis off the optical axis, as a fraction of the distance
    shape_spread: float = 0.35  # Anny phenotypes sampled in 0.5 +- spread (clipped to [0, 1])
    phenotypes: str = "central"  # "central": 0.5 +- shape_spread; "all": ALL_PHENOTYPES_AGE and [0, 1]
    split: str = "all"  # library poses of this split (hmrkit.data.splits): train | val | test | all
    augment: PoseAugment = NO_AUGMENT


GROUPS = ("face", "torso", "limbs", "extremities", "hands", "face_mesh")
GROSS = 0.1  # an error larger than this fraction of the person's height is "gross"
STATES = ("visible", "back", "hidden", "boxed")
CONF_SPREAD = 1.5  # log-normal spread of 1 - confidence of confident keypoints (MediaPipe: 1.2 to 1.8)


@dataclass(frozen=True)
class KeypointNoise:
    """Noise of one keypoint group in one visibility state. Lengths are fractions of the
    person's height in px (``person_height``).

    jitter:        std per axis of the Gaussian error of a keypoint (the "fine" error);
    tail:          spread of a log-normal scale on that std, drawn per keypoint (0: plain
                   Gaussian; larger: heavier tails). Fine errors never exceed ``GROSS``;
    part_spread:   hands and face mesh only: when > 0 the fine error is drawn once per
                   part (hand, face) and each point adds Gaussian noise of this std
                   (times its own log-normal scale of spread ``tail``);
    gross:         probability of a gross error (> ``GROSS``): the keypoint lands on the
                   mirrored keypoint (``NoiseConfig.gross_mirror`` of them) or
                   ``GROSS + Exponential(gross_scale)`` away in a random direction;
    low_conf:      probability that a keypoint with a fine error gets a low confidence
                   (uniform in ``NoiseConfig.low_conf_range``);
    gross_low_conf: the same for a keypoint with a gross error (detectors are less sure
                   of what they get wrong);
    conf_gap:      the other keypoints get a confidence of 1 - conf_gap exp(CONF_SPREAD z),
                   z standard normal, at least 0.5 (0: always 1);
    drop:          probability that the keypoint (for hands and the face mesh: the whole
                   part) is missing: confidence 0."""

    jitter: float = 0.0
    tail: float = 0.0
    part_spread: float = 0.0
    gross: float = 0.0
    gross_scale: float = 0.15
    low_conf: float = 0.0
    gross_low_conf: float = 0.0
    conf_gap: float = 0.0
    drop: float = 0.0


@dataclass(frozen=True)
class GroupNoise:
    """Noise of one keypoint group (see ``GROUPS``) per visibility state (``STATES``):
    ``visible``; ``back``: visible, on a person whose torso faces away from the camera;
    ``hidden`` behind the torso (``self_occluded``) or, for face points, on a head turned
    away (``NoiseConfig.face_turn``); ``boxed``: under an occluding box. A state left None
    takes another: back -> visible, boxed -> hidden -> visible."""

    visible: KeypointNoise = KeypointNoise()
    back: KeypointNoise | None = None
    hidden: KeypointNoise | None = None
    boxed: KeypointNoise | None = None

    def state(self, s: str) -> KeypointNoise:
        """The KeypointNoise of state ``s`` (one of ``STATES``), after the fallbacks."""
        if s not in STATES:
            raise ValueError(f"unknown state {s!r}; choose from {STATES}")
        for name in {"visible": ("visible",), "back": ("back", "visible"), "hidden": ("hidden", "visible"),
                     "boxed": ("boxed", "hidden", "visible")}[s]:
            k = getattr(self, name)
            if k is not None:
                return k
        return self.visible


@dataclass(frozen=True)
class NoiseConfig:
    """A detector-like noise model on 2D keypoints (px + confidence). Lengths are
    fractions of the person's height in px (``person_height``).

    The simple model (used for every group left None below):
    jitter:   Gaussian std per axis;
    drop:     probability that a keypoint is missing (confidence 0);
    low_conf: probability that a kept keypoint gets a low confidence (in ``low_conf_range``).

    Per keypoint group (``GROUPS``: face, torso, limbs, extremities, hands, face_mesh), a
    ``GroupNoise`` gives the noise in each visibility state (visible; visible on a person
    facing away; hidden behind the torso or on a turned-away head; under an occluding
    box), see ``KeypointNoise``.

    Whole-person and pairwise effects:
    swap:         probability that the person's left and right are exchanged (every
                  left/right pair: body, hands, face);
    swap_legs:    probability that the legs (knees, ankles, heels, toes) are exchanged;
    hand_swap:    probability, per hand, that its keypoints are those of the other hand;
    face_swap:    probability that the face of a turned-away head (cosine below
                  face_turn[0]) is mirrored: its left and right points exchanged;
    gross_mirror: fraction of gross errors that land on the mirrored keypoint;
    face_turn:    (a, b) cosines between the head's forward direction and the direction to
                  the camera: below a, face points are in the hidden state; the face mesh's
                  detection probability rises linearly from 0 at a to its visible value at
                  b. None: no such effect;
    occluder:     probability that a random box (sides ``occluder_size`` x the person's
                  box) covers part of the person; the keypoints inside are ``boxed``;
    miss:         probability that the person is not detected at all (every confidence 0).
    Keypoints outside the image always get confidence 0.

    ``realistic()`` is calibrated against MediaPipe Holistic on Anny renders
    (scripts/calibrate_noise.py, docs/noise_calibration.md); ``clean()`` adds nothing."""

    jitter: float = 0.0
    drop: float = 0.0
    low_conf: float = 0.0
    swap: float = 0.0
    face: GroupNoise | None = None
    torso: GroupNoise | None = None
    limbs: GroupNoise | None = None
    extremities: GroupNoise | None = None
    hands: GroupNoise | None = None
    face_mesh: GroupNoise | None = None
    swap_legs: float = 0.0
    hand_swap: float = 0.0
    face_swap: float = 0.0
    gross_mirror: float = 0.0
    low_conf_range: tuple = (0.2, 0.5)
    face_turn: tuple | None = None
    occluder: float = 0.0
    occluder_size: tuple = (0.25, 0.6)
    miss: float = 0.0

    def group(self, name: str) -> GroupNoise:
        """The GroupNoise of group ``name``: its own, or the simple model's."""
        if name not in GROUPS:
            raise ValueError(f"unknown keypoint group {name!r}; choose from {GROUPS}")
        g = getattr(self, name)
        if g is None:
            return GroupNoise(KeypointNoise(jitter=self.jitter, low_conf=self.low_conf, drop=self.drop))
        return g

    @staticmethod
    def clean() -> "NoiseConfig":
        return NoiseConfig()

    @staticmethod
    def realistic() -> "NoiseConfig":
        """MediaPipe Holistic's noise, calibrated on 300 Anny renders by
        scripts/calibrate_noise.py (--n 300 --seed 0; tables in docs/noise_calibration.md).
        No random occluding boxes: how often a box covers part of a person is a property of
        the data, not of the detector (what a box does is calibrated); add them with
        ``dataclasses.replace(NoiseConfig.realistic(), occluder=0.2)``. Systematic offsets
        between MediaPipe's landmarks and the body model's keypoints are not included."""
        # fitted by scripts/calibrate_noise.py --n 300 --seed 0 (mediapipe 0.10.14); every
        # value is measured (no random occluding boxes: occluder stays 0)
        return NoiseConfig(
            face=GroupNoise(
                visible=KeypointNoise(jitter=0.0093, tail=0.33, gross=0.013, gross_scale=0.32, conf_gap=0.0003),
                hidden=KeypointNoise(jitter=0.0177, tail=0.43, gross=0.035,
                    gross_scale=0.303, low_conf=0.002, conf_gap=0.0006),
                boxed=KeypointNoise(jitter=0.0303, tail=0.23, gross=0.488, gross_scale=0.262, conf_gap=0.0032)),
            torso=GroupNoise(
                visible=KeypointNoise(jitter=0.0127, tail=0.43, gross=0.014, gross_scale=0.172, conf_gap=0.0004),
                back=KeypointNoise(jitter=0.0147, tail=0.46, gross=0.041, gross_scale=0.188, conf_gap=0.0004),
                boxed=KeypointNoise(jitter=0.0297, gross=0.178, gross_scale=0.119, conf_gap=0.0007)),
            limbs=GroupNoise(
                visible=KeypointNoise(jitter=0.0127, tail=0.47, gross=0.01, gross_scale=0.143,
                    low_conf=0.063, gross_low_conf=0.607, conf_gap=0.0197),
                back=KeypointNoise(jitter=0.0143, tail=0.6, gross=0.062, gross_scale=0.169,
                    low_conf=0.113, gross_low_conf=0.519, conf_gap=0.028),
                hidden=KeypointNoise(jitter=0.0312, tail=0.83, gross=0.111, gross_scale=0.078,
                    low_conf=0.6, gross_low_conf=0.933, conf_gap=0.167),
                boxed=KeypointNoise(jitter=0.0369, tail=0.55, gross=0.3, gross_scale=0.115,
                    low_conf=0.314, gross_low_conf=0.467, conf_gap=0.0677)),
            extremities=GroupNoise(
                visible=KeypointNoise(jitter=0.0144, tail=0.47, gross=0.022, gross_scale=0.322,
                    low_conf=0.058, gross_low_conf=0.618, conf_gap=0.0619),
                back=KeypointNoise(jitter=0.017, tail=0.66, gross=0.083, gross_scale=0.166,
                    low_conf=0.202, gross_low_conf=0.512, conf_gap=0.0713),
                hidden=KeypointNoise(jitter=0.0359, tail=0.51, gross=0.157, gross_scale=0.088,
                    low_conf=0.941, gross_low_conf=0.976, conf_gap=0.4504),
                boxed=KeypointNoise(jitter=0.0584, gross=0.42, gross_scale=0.133,
                    low_conf=0.553, gross_low_conf=0.691, conf_gap=0.1697)),
            hands=GroupNoise(
                visible=KeypointNoise(jitter=0.003, tail=0.98, part_spread=0.0024,
                    gross=0.012, gross_scale=0.032, drop=0.215),
                back=KeypointNoise(jitter=0.0022, tail=1.38, part_spread=0.0024,
                    gross=0.02, gross_scale=0.03, drop=0.313),
                hidden=KeypointNoise(jitter=0.003, tail=0.98, part_spread=0.0024,
                    gross=0.054, gross_scale=0.03, drop=0.868),
                boxed=KeypointNoise(jitter=0.003, tail=0.98, part_spread=0.0024, gross_scale=0.03, drop=0.875)),
            face_mesh=GroupNoise(
                visible=KeypointNoise(jitter=0.0014, tail=1.01, part_spread=0.0023, drop=0.07),
                hidden=KeypointNoise(jitter=0.0014, tail=1.01, part_spread=0.0023, drop=1.0),
                boxed=KeypointNoise(jitter=0.0014, tail=1.01, part_spread=0.0023, drop=1.0)),
            swap=0.024,
            swap_legs=0.026,
            hand_swap=0.041,
            face_swap=0.021,
            gross_mirror=0.68,
            low_conf_range=(0.0, 0.47),
            face_turn=(0.4, 0.95),
        )

    def noisier(self, k: float = 2.0) -> "NoiseConfig":
        """This noise with every keypoint's fine jitter (each group, each visibility state)
        and every gross-error and left/right swap probability (body, legs, hands) times
        ``k``, probabilities at most 1: a detector ``k`` times as bad as this one, e.g.
        ``NoiseConfig.realistic().noisier(2)`` (the ``noisy`` domain shift of
        ``synthetic:sequences``). Confidences and dropouts are unchanged."""
        from dataclasses import fields, replace

        def kp(n: KeypointNoise | None) -> KeypointNoise | None:
            return None if n is None else replace(n, jitter=n.jitter * k, gross=min(1.0, n.gross * k))

        groups = {}
        for name in GROUPS:
            g = getattr(self, name)
            if g is not None:
                groups[name] = GroupNoise(**{f.name: kp(getattr(g, f.name)) for f in fields(GroupNoise)})
        return replace(self, jitter=self.jitter * k, swap=min(1.0, self.swap * k),
                       swap_legs=min(1.0, self.swap_legs * k), hand_swap=min(1.0, self.hand_swap * k), **groups)


@dataclass(frozen=True)
class SyntheticBatch:
    params: BodyParams  # ground truth, camera frame
    K: Tensor  # (B, 3, 3)
    image_size: tuple  # (H, W)
    library_index: np.ndarray | None = None  # (B,) the pose library row each pose came from (before augmenting)


def sample_scenes(body, n: int, seed: int = 0, config: SceneConfig = SceneConfig()) -> SyntheticBatch:
    """n people in front of n cameras: library poses of ``config.split`` (mirrored included
    unless ``config.augment.mirror`` is False), augmented per ``config.augment``, sampled
    shapes (``config.phenotypes``)."""
    g = np.random.default_rng(seed)
    pose_aa, go_aa, names = load_pose_library(body.pose_library)
    bidx = body_joint_indices(body)
    if [body.pose_joint_names[i] for i in bidx] != names:
        raise ValueError("the pose library does not match this body model's joints")
    aug = config.augment
    pool = library_indices(body.pose_library, config.split, aug.mirror)
    if len(pool) == 0:
        raise ValueError(f"the {body.pose_library} pose library has no poses of split {config.split!r}; rebuild it "
                         "with scripts/build_pose_prior.py")
    pick = pool[g.integers(0, len(pool), n)]
    dtype = body.dtype
    body_aa = torch.as_tensor(pose_aa[pick], dtype=dtype)
    go_lib = roma.rotvec_to_rotmat(torch.as_tensor(go_aa[pick], dtype=dtype))
    if aug != NO_AUGMENT and aug != PoseAugment(mirror=aug.mirror):
        body_aa, go_lib = _augment(body, body_aa, go_lib, pose_aa, go_aa, pool, aug, seed, names)
    aa = torch.zeros(n, body.num_pose_joints, 3, dtype=dtype)
    aa[:, bidx] = body_aa
    pose = roma.rotvec_to_rotmat(aa)
    # body orientation: library orientation (heading removed), a random heading, then the
    # camera's pitch/roll, then into the OpenCV camera frame (y down, facing the camera)
    yaw = np.radians(g.uniform(-config.yaw_deg, config.yaw_deg, n))
    pitch = np.radians(g.uniform(-config.pitch_deg, config.pitch_deg, n))
    roll = np.radians(g.uniform(-config.roll_deg, config.roll_deg, n))
    R_yaw = roma.rotvec_to_rotmat(torch.tensor(np.stack([0 * yaw, yaw, 0 * yaw], -1), dtype=dtype))
    R_cam = roma.rotvec_to_rotmat(torch.tensor(np.stack([pitch, 0 * pitch, roll], -1), dtype=dtype))
    to_cv = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]], dtype=dtype)
    go = R_cam @ to_cv @ R_yaw @ go_lib
    u = g.uniform(-1, 1, (n, body.num_shape))
    if body.shape_range is None:
        shape = g.normal(0, 1, (n, body.num_shape))
    elif config.phenotypes == "all":
        shape = 0.5 * (u + 1)
        if "age" in getattr(body, "shape_names", ()):
            a = body.shape_names.index("age")
            lo, hi = ALL_PHENOTYPES_AGE
            shape[:, a] = lo + (hi - lo) * shape[:, a]
    elif config.phenotypes == "central":
        shape = np.clip(0.5 + u * config.shape_spread, 0, 1)
    else:
        raise ValueError(f"unknown phenotypes {config.phenotypes!r}; choose central or all")
    shape = torch.as_tensor(shape, dtype=dtype)
    dist = g.uniform(*config.distance, n)
    off = g.uniform(-config.offset, config.offset, (n, 2)) * dist[:, None]
    transl = torch.tensor(np.concatenate([off, dist[:, None]], -1), dtype=dtype)
    expr = torch.zeros(n, body.num_expression, dtype=dtype) if body.num_expression else None
    params = BodyParams(go, pose, shape, transl, expr)
    H, W = config.image_size
    fov = np.radians(g.uniform(*config.fov_deg, n))
    f = 0.5 * max(H, W) / np.tan(fov / 2)
    K = torch.zeros(n, 3, 3, dtype=dtype)
    K[:, 0, 0] = torch.as_tensor(f, dtype=dtype)
    K[:, 1, 1] = torch.as_tensor(f, dtype=dtype)
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = W / 2, H / 2, 1.0
    return SyntheticBatch(params=params, K=K, image_size=(H, W), library_index=pick)


@lru_cache(maxsize=4)
def _prior_limits(name: str):
    """(the pose GMM, its energy bound, the Cholesky factors of its covariances): the bound
    is the 99th percentile of the GMM energy over the library's train poses, the range an
    augmented pose must stay within; the factors shape the perturbation steps."""
    from hmrkit.body.priors import PoseGMM

    gmm = PoseGMM.load(WEIGHTS_DIR / f"pose_prior_{name}.npz")
    pose_aa, _, _ = load_pose_library(name)
    idx = library_indices(name, "train")
    x = torch.as_tensor(pose_aa[idx], dtype=torch.float32)
    e_gmm = gmm.energy_aa(x.reshape(len(x), -1))
    L = torch.linalg.cholesky(torch.linalg.inv(gmm.precisions.double())).float()
    return gmm, float(torch.quantile(e_gmm, 0.99)), L


def _augment(body, body_aa, go_lib, pose_aa, go_aa, pool, aug: PoseAugment, seed: int, names):
    """``PoseAugment``'s perturbation, upper/lower combination and any-orientation on the
    picked poses body_aa (n, Jb, 3) and orientations go_lib (n, 3, 3)."""
    n, dtype = body_aa.shape[0], body_aa.dtype
    gmm, e_max, L = _prior_limits(body.pose_library)
    hinge = _hinge(body)
    bidx = body_joint_indices(body)

    def hinge_energy(x):
        aa = torch.zeros(x.shape[0], body.num_pose_joints, 3, dtype=dtype)
        aa[:, bidx] = x
        return hinge(roma.rotvec_to_rotmat(aa))

    def accept(new, old, extra=None):
        ok = gmm.energy_aa(new.reshape(len(new), -1).float()) <= e_max
        if extra is not None:
            ok &= extra
        return torch.where(ok[:, None, None], new, old), ok

    lower = torch.tensor([any(k in nm for k in ("hip", "knee", "ankle", "foot")) for nm in names])
    g = np.random.default_rng(np.random.SeedSequence([seed, 0xA46]))
    u_comb, u_pert, u_orient = g.random(n), g.random(n), g.random(n)
    other = pool[g.integers(0, len(pool), n)]
    noise = torch.as_tensor(g.normal(0, 1, (n, body_aa[0].numel(), 1)), dtype=torch.float32)
    rand_R = torch.as_tensor(_uniform_rotations(g, n), dtype=dtype)
    if aug.combine > 0:
        c = torch.as_tensor(u_comb < aug.combine)
        mixed = torch.where(lower[None, :, None], torch.as_tensor(pose_aa[other], dtype=dtype), body_aa)
        mixed, ok = accept(mixed, body_aa)
        body_aa = torch.where(c[:, None, None], mixed, body_aa)
        go_o = roma.rotvec_to_rotmat(torch.as_tensor(go_aa[other], dtype=dtype))
        go_lib = torch.where((c & ok)[:, None, None], go_o, go_lib)
    if aug.perturb > 0:
        p = torch.as_tensor(u_pert < aug.perturb)
        x = body_aa.reshape(n, -1).float()
        d = x[:, None] - gmm.means[None]
        maha = torch.einsum("bmi,mij,bmj->bm", d, gmm.precisions, d)
        k = (0.5 * maha - gmm.log_weights[None]).argmin(1)  # the component each pose belongs to
        step = aug.perturb_scale * (L[k] @ noise)[..., 0]
        new = (x + step).reshape(body_aa.shape).to(dtype)
        new, _ = accept(new, body_aa, hinge_energy(new) <= hinge_energy(body_aa) + 0.05)
        body_aa = torch.where(p[:, None, None], new, body_aa)
    if aug.any_orientation > 0:
        o = torch.as_tensor(u_orient < aug.any_orientation)
        go_lib = torch.where(o[:, None, None], rand_R, go_lib)
    return body_aa, go_lib


_HINGES: dict = {}  # id(body) -> its HingePrior


def _hinge(body):
    from hmrkit.body.priors import HingePrior

    key = id(body)
    if key not in _HINGES:
        _HINGES[key] = HingePrior(body)
    return _HINGES[key]


def _uniform_rotations(g: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3, 3) rotations uniform over SO(3) (unit quaternions from 4 normals)."""
    q = g.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return roma.unitquat_to_rotmat(torch.as_tensor(q)).numpy()


# The body conventions users bring (docs/evidence_format.md); the regressors are trained
# with each (hmrkit.train.spin) and evaluated on each (``input=`` of the synthetic sets).
INPUT_CONVENTIONS = ("mediapipe33", "coco17", "openpose25")


def openpose25_keypoints(body, kps: dict) -> tuple[Tensor, Tensor]:
    """OpenPose BODY_25 keypoints (B, 25, 3) and (25,) validity of a body model without a
    BODY_25 regressor, from its ``coco17`` and ``mediapipe33`` keypoints ``kps`` ({name:
    (B, K, 3)}): the COCO-17 points (OpenPose's body points are COCO's), neck and mid-hip as
    the midpoints of COCO's shoulders and hips (as OpenPose's are), heels and big toes from
    mediapipe33 (heel, foot index); the small toes are not valid."""
    from hmrkit import conventions as C

    X, mask = C.convert(kps["coco17"], "coco17", "openpose25")
    feet, fmask = C.convert(kps["mediapipe33"], "mediapipe33", "openpose25")
    take = [i for i, n in enumerate(C.OPENPOSE25) if n.endswith(("heel", "big_toe"))]
    X = X.clone()
    X[:, take] = feet[:, take]
    vc, _ = C.convert(body.keypoint_valid("coco17")[:, None].float(), "coco17", "openpose25")
    vm, _ = C.convert(body.keypoint_valid("mediapipe33")[:, None].float(), "mediapipe33", "openpose25")
    valid = torch.as_tensor(mask) & (vc[:, 0] > 0.99)  # a midpoint is valid when both ends are
    valid[take] = torch.as_tensor(fmask)[take] & (vm[take, 0] > 0.99)
    return X, valid


def convention_keypoints(body, kps: dict, convention: str) -> tuple[Tensor, Tensor]:
    """(B, K, 3) keypoints of an input convention (``INPUT_CONVENTIONS``) and (K,) validity,
    from the body model's keypoints ``kps`` ({name: (B, K, 3)}, e.g. ``forward_keypoints``
    of coco17 and mediapipe33)."""
    if convention == "openpose25" and convention not in body.keypoint_conventions:
        return openpose25_keypoints(body, kps)
    return kps[convention], body.keypoint_valid(convention).bool()


def input_layout(body, kps: dict, convention: str) -> tuple[Tensor, Tensor]:
    """(B, 33, 3) keypoints of ``convention`` placed in the regressors' input layout
    (``models.inputs.INPUT_CONVENTION``, mediapipe33) as ``to_input_convention`` places a
    user's keypoints, and (33,) bool: the slots that convention fills. ``kps`` as for
    ``convention_keypoints``."""
    from hmrkit import conventions as C
    from hmrkit.models.inputs import INPUT_CONVENTION

    X, valid = convention_keypoints(body, kps, convention)
    if convention == INPUT_CONVENTION:
        return X, valid
    Y, mask = C.convert(X, convention, INPUT_CONVENTION)
    vy, _ = C.convert(valid[:, None].to(X.dtype), convention, INPUT_CONVENTION)
    return Y, torch.as_tensor(mask) & (vy[:, 0] > 0.99)


def body_keypoints(body, output, convention: str) -> tuple[Tensor, Tensor]:
    """(B, K, 3) keypoints of ``convention`` (frame of ``output``) and (K,) bool validity.

    ``holistic`` is assembled from the body model's ``mediapipe33``, ``hand21_left``,
    ``hand21_right`` and ``face`` regressors; a part the model lacks is zeros, not valid.
    ``openpose25`` of a model without its regressor: ``openpose25_keypoints``."""
    from hmrkit import conventions as C

    if convention == "openpose25" and convention not in body.keypoint_conventions:
        return openpose25_keypoints(body, {c: body.keypoints(output, c) for c in ("coco17", "mediapipe33")})
    if convention != "holistic":
        return body.keypoints(output, convention), body.keypoint_valid(convention).bool()
    B = output.vertices.shape[0]
    parts, valid = [], []
    for reg, n in (("mediapipe33", len(C.MEDIAPIPE33)), ("hand21_left", len(C.HAND21)),
                   ("hand21_right", len(C.HAND21)), ("face", len(C.FACE))):
        if reg in body.keypoint_conventions:
            parts.append(body.keypoints(output, reg))
            valid.append(body.keypoint_valid(reg).bool())
        else:
            parts.append(output.vertices.new_zeros(B, n, 3))
            valid.append(torch.zeros(n, dtype=torch.bool))
    return torch.cat(parts, 1), torch.cat(valid)


# ----------------------------------------------------------------------------------------
# Keypoint groups and geometry used by the noise model

_FACE_NAMES = {"nose", "left_eye", "right_eye", "left_eye_inner", "left_eye_outer", "right_eye_inner",
               "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "neck_nose",
               "head_top", "head"}
_TORSO_NAMES = {"left_shoulder", "right_shoulder", "left_hip", "right_hip", "neck", "thorax", "spine",
                "spine1", "spine2", "spine3", "pelvis", "mid_hip", "left_collar", "right_collar"}
_LIMB_NAMES = {"left_elbow", "right_elbow", "left_knee", "right_knee"}


def keypoint_groups(convention: str) -> np.ndarray:
    """(K,) int: the index in ``GROUPS`` of each keypoint of ``convention``.

    face: the body's face points (nose, eyes, ears, mouth); torso: shoulders, hips and the
    spine; limbs: elbows and knees; extremities: wrists, ankles, the body's hand and foot
    points; hands: the 21-point hands; face_mesh: the FaceMesh subset (``face``)."""
    from hmrkit import conventions as C

    out = []
    for n in C.get(convention).names:
        if convention == "hand21" or n.startswith(("left_hand.", "right_hand.")):
            g = "hands"
        elif convention == "face" or n.startswith("face."):
            g = "face_mesh"
        elif n in _FACE_NAMES:
            g = "face"
        elif n in _TORSO_NAMES:
            g = "torso"
        elif n in _LIMB_NAMES:
            g = "limbs"
        else:
            g = "extremities"
        out.append(GROUPS.index(g))
    return np.array(out, dtype=np.int64)


def person_height(uv: Tensor, valid: Tensor | None = None) -> Tensor:
    """(B,) the person's height in px: the vertical extent of the keypoints uv (B, K, 2)
    (those marked in ``valid`` (K,) bool when given), at least 10 px. Noise scales with it."""
    y = uv[..., 1]
    if valid is not None:
        y = y[:, valid.bool()]
    if y.shape[1] == 0:
        return uv.new_full(uv.shape[:1], 10.0)
    return (y.max(1).values - y.min(1).values).clamp(min=10.0)


def _index(names, name):
    return names.index(name) if name in names else None


def facing(X: Tensor, convention: str) -> tuple[Tensor, Tensor]:
    """How much the person faces the camera: (torso (B,), head (B,)) cosines in [-1, 1]
    between the forward direction and the direction to the camera (1: facing it, -1:
    facing away), from camera-frame keypoints X (B, K, 3) metres.

    torso forward: (left - right, shoulders + hips) x (mid-hips -> mid-shoulders) (the
    body frame's +z); head forward: mid-ears -> nose (falls back to the torso). 1 where
    the convention lacks the points."""
    from hmrkit import conventions as C

    names = C.get(convention).names
    B = X.shape[0]
    idx = [_index(names, n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    if any(i is None for i in idx):
        one = X.new_ones(B)
        return one, one
    ls, rs, lh, rh = (X[:, i] for i in idx)
    lateral = (ls - rs) + (lh - rh)
    up = 0.5 * (ls + rs) - 0.5 * (lh + rh)
    # body frame (y up, left +x, facing +z): x cross y = z, so lateral x up = forward in any
    # right-handed frame (the OpenCV camera frame included)
    fwd = torch.linalg.cross(lateral, up)
    centre = 0.25 * (ls + rs + lh + rh)
    to_cam = -centre
    torso = torch.nn.functional.cosine_similarity(fwd, to_cam, dim=-1)
    ie = [_index(names, n) for n in ("nose", "left_ear", "right_ear")]
    if any(i is None for i in ie):
        return torso, torso
    nose, le, re = (X[:, i] for i in ie)
    ears = 0.5 * (le + re)
    head = torch.nn.functional.cosine_similarity(nose - ears, -ears, dim=-1)
    return torso, head


def _dist_to_triangles(p: Tensor, tri: Tensor) -> Tensor:
    """p (B, K, 2), tri (B, T, 3, 2) -> (B, K) distance to the union of the triangles (0 inside)."""
    P = p[:, :, None, None, :]  # (B, K, 1, 1, 2)
    A = tri[:, None]  # (B, 1, T, 3, 2)
    Bv = torch.roll(A, -1, dims=3)
    e = Bv - A
    w = P - A
    cross = e[..., 0] * w[..., 1] - e[..., 1] * w[..., 0]  # (B, K, T, 3)
    inside = (cross >= 0).all(-1) | (cross <= 0).all(-1)
    t = ((w * e).sum(-1) / (e * e).sum(-1).clamp(min=1e-9)).clamp(0, 1)
    d = (w - t[..., None] * e).norm(dim=-1).min(-1).values  # (B, K, T)
    d = torch.where(inside, torch.zeros_like(d), d)
    return d.min(-1).values


def self_occluded(X: Tensor, uv: Tensor, convention: str, height: Tensor, margin: float = 0.06,
                  depth: float = 0.05) -> Tensor:
    """(B, K) bool: keypoints hidden behind the torso. X (B, K, 3) camera frame, metres;
    uv (B, K, 2) px; height (B,) px.

    A keypoint is hidden when its depth is more than ``depth`` metres behind the mean
    depth of the shoulders and hips, and its 2D position lies in the convex hull of the
    projected shoulders and hips grown by ``margin`` x height (the torso's own width, for
    a person seen from the side). The shoulders and hips themselves are never hidden.
    All False where the convention lacks them."""
    from hmrkit import conventions as C

    names = C.get(convention).names
    idx = [_index(names, n) for n in ("left_shoulder", "right_shoulder", "right_hip", "left_hip")]
    B, Kn = uv.shape[:2]
    if any(i is None for i in idx):
        return torch.zeros(B, Kn, dtype=torch.bool)
    q = uv[:, idx]  # (B, 4, 2)
    tri = torch.stack([q[:, [0, 1, 2]], q[:, [0, 2, 3]], q[:, [0, 1, 3]], q[:, [1, 2, 3]]], 1)
    near = _dist_to_triangles(uv, tri) <= margin * height[:, None]
    behind = X[..., 2] > X[:, idx, 2].mean(1, keepdim=True) + depth
    hidden = near & behind
    hidden[:, idx] = False
    return hidden


def true_keypoints(body, batch: SyntheticBatch, convention: str) -> tuple[Tensor, Tensor, Tensor]:
    """The exact keypoints of the batch's people: X (B, K, 3) camera frame, metres;
    uv (B, K, 2) their projections, px; valid (K,) bool, the keypoints the body model has."""
    with torch.no_grad():
        out = body(batch.params)
        X, valid = body_keypoints(body, out, convention)
        uv = project(X, batch.K)
    return X, uv, valid


def random_occluders(uv: Tensor, valid: Tensor, size: tuple, generator: torch.Generator) -> Tensor:
    """(B, 4) boxes x0, y0, x1, y1 px, one per person: each side ``size`` (a range) times
    the side of the box around the valid keypoints uv (B, K, 2), centred anywhere in it."""
    p = uv[:, valid.bool()] if valid.any() else uv
    lo, hi = p.min(1).values, p.max(1).values
    side = (hi - lo).clamp(min=20.0)
    u = torch.rand(uv.shape[0], 4, generator=generator, dtype=uv.dtype)
    s = (size[0] + (size[1] - size[0]) * u[:, :2]) * side
    c = lo + u[:, 2:] * side
    return torch.cat([c - s / 2, c + s / 2], 1)


OCCLUDER_KINDS = ("box", "bar")


def sample_occluders(uv: Tensor, valid: Tensor, generator: torch.Generator, p: float = 1.0,
                     kinds: tuple = OCCLUDER_KINDS) -> Tensor:
    """(B, 4) occluders x0, y0, x1, y1 px for the people whose keypoints are uv (B, K, 2)
    (valid (K,) bool: the body model's), one with probability ``p`` per person (NaN rows:
    none), the kind drawn uniformly from ``kinds``:

    box: each side 0.2-0.5 x the side of the person's keypoint box (a table, a bag,
         another person's back), centred anywhere in the person's box;
    bar: 0.06-0.14 thick and 0.6-1.2 long, horizontal or vertical (a pole, a railing, a
         crossed arm of someone in front), centred anywhere in the person's box.

    The keypoints an occluder covers take the noise model's ``boxed`` state (calibrated on
    MediaPipe with boxes over Anny renders; ``add_noise``'s ``occluders``). All draws come
    from ``generator`` in a fixed order, whatever ``p``."""
    B = uv.shape[0]
    dtype = uv.dtype
    pts = uv[:, valid.bool()] if valid.any() else uv
    lo, hi = pts.min(1).values, pts.max(1).values
    side = (hi - lo).max(-1).values.clamp(min=20.0)[:, None]  # (B, 1)
    u = torch.rand(B, 6, generator=generator, dtype=dtype)
    kind = (u[:, 0] * len(kinds)).long().clamp(max=len(kinds) - 1)
    centre = lo + u[:, 1:3] * (hi - lo)
    box = (0.2 + 0.3 * u[:, 3:5]) * side
    thick, long_ = (0.06 + 0.08 * u[:, 3:4]) * side, (0.6 + 0.6 * u[:, 4:5]) * side
    horizontal = u[:, 5:6] < 0.5
    bar = torch.where(horizontal, torch.cat([long_, thick], 1), torch.cat([thick, long_], 1))
    is_bar = torch.tensor([k == "bar" for k in kinds])[kind][:, None]
    wh = torch.where(is_bar, bar, box)
    out = torch.cat([centre - wh / 2, centre + wh / 2], 1)
    keep = torch.rand(B, generator=generator, dtype=dtype) < p
    return torch.where(keep[:, None], out, torch.full_like(out, float("nan")))


def sample_truncation(uv: Tensor, valid: Tensor, generator: torch.Generator, p: float = 1.0) -> Tensor:
    """(B, 3) frame edges (nx, ny, offset) for the people of uv (B, K, 2), one with
    probability ``p`` per person (NaN rows: none): a point q stays in the frame when
    n . q >= offset. The edge is axis-aligned, on a side drawn uniformly (left, right, top,
    bottom), and cuts off 20-50 % of the person's keypoint box (the bottom side most often
    in photos: it is drawn twice as often)."""
    B = uv.shape[0]
    dtype = uv.dtype
    pts = uv[:, valid.bool()] if valid.any() else uv
    lo, hi = pts.min(1).values, pts.max(1).values
    u = torch.rand(B, 3, generator=generator, dtype=dtype)
    side = (u[:, 0] * 5).long().clamp(max=4)  # 0 left, 1 right, 2 top, 3-4 bottom
    frac = 0.2 + 0.3 * u[:, 1]
    n = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, -1.0]], dtype=dtype)[side]
    x = torch.stack([lo[:, 0] + frac * (hi[:, 0] - lo[:, 0]), hi[:, 0] - frac * (hi[:, 0] - lo[:, 0]),
                     lo[:, 1] + frac * (hi[:, 1] - lo[:, 1]), hi[:, 1] - frac * (hi[:, 1] - lo[:, 1]),
                     hi[:, 1] - frac * (hi[:, 1] - lo[:, 1])], 1).gather(1, side[:, None])[:, 0]
    offset = torch.where(side < 2, n[:, 0] * x, n[:, 1] * x)
    out = torch.cat([n, offset[:, None]], 1)
    keep = torch.rand(B, generator=generator, dtype=dtype) < p
    return torch.where(keep[:, None], out, torch.full_like(out, float("nan")))


def in_frame(uv: Tensor, edges: Tensor) -> Tensor:
    """(B, N) bool: points uv (B, N, 2) on the kept side of ``sample_truncation``'s edges
    (B, 3) (a NaN row keeps everything)."""
    e = edges.to(uv.dtype)
    keep = (uv * e[:, None, :2]).sum(-1) >= e[:, None, 2]
    return keep | torch.isnan(e[:, :1])


def in_boxes(uv: Tensor, boxes: Tensor) -> Tensor:
    """(B, N) bool: points uv (B, N, 2) inside boxes (B, 4) x0, y0, x1, y1 (a NaN box holds nothing)."""
    return _in_boxes(uv, boxes)


def _in_boxes(uv: Tensor, boxes: Tensor) -> Tensor:
    """(B, K) bool: uv (B, K, 2) inside boxes (B, 4) (a NaN box holds nothing)."""
    x, y = uv[..., 0], uv[..., 1]
    b = boxes[:, None]
    return (x >= b[..., 0]) & (x <= b[..., 2]) & (y >= b[..., 1]) & (y <= b[..., 3])


def _parts(convention: str) -> list[tuple[np.ndarray, int]]:
    """The parts of a convention detected as a whole (each hand, the face mesh): (indices,
    index of the anchor keypoint whose state the part takes)."""
    from hmrkit import conventions as C

    names = C.get(convention).names
    out = []
    for prefix, anchor in (("left_hand.", "left_hand.wrist"), ("right_hand.", "right_hand.wrist"),
                           ("face.", "face.nose_tip")):
        idx = [i for i, n in enumerate(names) if n.startswith(prefix)]
        if idx:
            out.append((np.array(idx), names.index(anchor)))
    if convention == "hand21":
        out.append((np.arange(len(names)), names.index("wrist")))
    elif convention == "face":
        out.append((np.arange(len(names)), names.index("nose_tip")))
    return out


_LEG_WORDS = ("knee", "ankle", "heel", "foot", "toe")


def keypoint_states(X: Tensor, uv: Tensor, valid: Tensor, convention: str, occluders: Tensor | None = None,
                    face_turn: tuple | None = None) -> tuple[Tensor, Tensor]:
    """(B, K) int64 index in ``STATES`` of each keypoint (0 visible, 1 back, 2 hidden,
    3 boxed), and (B,) the head's facing cosine (``facing``).

    X (B, K, 3) camera frame, metres; uv (B, K, 2) px; valid (K,) bool; occluders (B, 4)
    boxes x0, y0, x1, y1 px (NaN rows: none). back: the torso faces away (cosine < 0);
    hidden: ``self_occluded``, or a face point when the head's cosine is below
    face_turn[0]; boxed: inside the person's box. The points of a hand or of the face mesh
    take the state of their anchor (wrist, nose tip)."""
    h = person_height(uv, valid)
    torso, head = facing(X, convention)
    hidden = self_occluded(X, uv, convention, h)
    groups = torch.as_tensor(keypoint_groups(convention))
    if face_turn is not None:
        face = (groups == GROUPS.index("face")) | (groups == GROUPS.index("face_mesh"))
        hidden = hidden | (face[None] & (head < face_turn[0])[:, None])
    state = torch.where(hidden, 2, (torso < 0).long()[:, None].expand_as(hidden)).clone()
    if occluders is not None:
        state = torch.where(_in_boxes(uv, occluders.to(uv.dtype)), torch.full_like(state, 3), state)
    for idx, anchor in _parts(convention):
        state[:, idx] = state[:, anchor:anchor + 1].clone()
    return state, head


# The random draws of the noise model, in the order ``add_noise`` takes them from its
# generator (``noise_draws``); shapes for B people of K keypoints: u_box (B,), box_draw
# (B, 4) px (``random_occluders``), u_swap, u_legs (B,), u_hand (B, 2), u_face, u_miss
# (B,), then (B, K) each: u_gross, u_mirror, u_gdir, u_gmag, z_scale, z_fine (B, K, 2),
# z_part (B, K, 2), u_low, u_conf, u_drop. ``u_*`` are uniform in [0, 1), ``z_*``
# standard normal.
NOISE_DRAWS = ("u_box", "box_draw", "u_swap", "u_legs", "u_hand", "u_face", "u_miss", "u_gross", "u_mirror",
               "u_gdir", "u_gmag", "z_scale", "z_fine", "z_part", "u_low", "u_conf", "u_drop")


def noise_draws(uv: Tensor, valid: Tensor, noise: NoiseConfig, generator: torch.Generator) -> dict:
    """Every random draw of ``add_noise`` for the people of uv (B, K, 2) px (valid (K,)
    bool), from ``generator``, in add_noise's fixed order: {name: tensor} (``NOISE_DRAWS``
    says what each is). ``_apply_noise`` turns them into noisy keypoints."""
    B, Kn = uv.shape[:2]
    dtype = uv.dtype

    def rand(*shape):
        return torch.rand(*shape, generator=generator, dtype=dtype)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    d = {"u_box": rand(B)}
    d["box_draw"] = random_occluders(uv, valid.bool(), noise.occluder_size, generator)
    d["u_swap"], d["u_legs"], d["u_hand"], d["u_face"], d["u_miss"] = rand(B), rand(B), rand(B, 2), rand(B), rand(B)
    d["u_gross"], d["u_mirror"], d["u_gdir"], d["u_gmag"] = rand(B, Kn), rand(B, Kn), rand(B, Kn), rand(B, Kn)
    d["z_scale"], d["z_fine"], d["z_part"] = randn(B, Kn), randn(B, Kn, 2), randn(B, Kn, 2)
    d["u_low"], d["u_conf"], d["u_drop"] = rand(B, Kn), rand(B, Kn), rand(B, Kn)
    return d


def add_noise(X: Tensor, uv: Tensor, valid: Tensor, convention: str, image_size: tuple,
              noise: NoiseConfig = NoiseConfig(), seed: int = 0, occluders: Tensor | None = None) -> Tensor:
    """Detector-like noisy keypoints (B, K, 3): x, y px and confidence, from the exact
    keypoints X (B, K, 3) camera frame, metres, their projections uv (B, K, 2) px and
    valid (K,) bool (see ``true_keypoints``), for an image of image_size (H, W).

    occluders (B, 4): boxes x0, y0, x1, y1 px covering part of each person (NaN rows:
    none); None: drawn with probability ``noise.occluder``. Invalid keypoints and keypoints
    outside the image get confidence 0. The random numbers are drawn in a fixed order, so
    the same seed gives the same draws whatever the parameters (common random numbers):
    ``noise_draws``, then (rarely) the redraws of fine errors beyond ``GROSS``. For video
    frames with noise correlated over time see ``add_temporal_noise``."""
    g = torch.Generator().manual_seed(int(seed))
    draws = noise_draws(uv, valid, noise, g)

    def redraw(*shape):
        return torch.randn(*shape, generator=g, dtype=uv.dtype)

    return _apply_noise(X, uv, valid, convention, image_size, noise, draws, occluders, redraw)


_NOISE_FIELDS = ("jitter", "tail", "part_spread", "gross", "gross_scale", "low_conf", "gross_low_conf", "conf_gap",
                 "drop")


@lru_cache(maxsize=64)
def _noise_table(noise: NoiseConfig, dtype: torch.dtype) -> Tensor:
    """(G, S, F): the ``KeypointNoise`` field F (``_NOISE_FIELDS``) of each group and state
    of ``noise`` (cached; read only)."""
    return torch.tensor([[[getattr(noise.group(gname).state(sname), f) for f in _NOISE_FIELDS] for sname in STATES]
                         for gname in GROUPS], dtype=dtype)


def _apply_noise(X: Tensor, uv: Tensor, valid: Tensor, convention: str, image_size: tuple, noise: NoiseConfig,
                 draws: dict, occluders: Tensor | None, redraw=None) -> Tensor:
    """``add_noise`` on given draws (``noise_draws``' names and shapes; the occluders
    (B, 4) used when ``occluders`` is None are ``box_draw`` where ``u_box <
    noise.occluder``).

    Fine errors are Gaussian (std ``sd`` from ``z_scale``, direction and length from
    ``z_fine``) truncated at ``GROSS``. redraw(*shape): fresh standard normals, and those
    beyond GROSS are redrawn from it (rejection, up to 30 times, then shortened onto
    GROSS: add_noise's stream); None: the length is mapped onto the truncated distribution
    through its CDF instead (the same distribution, no redraws: a continuous function of
    z_fine, so errors correlated over frames stay correlated)."""
    from hmrkit import conventions as C

    B, Kn = uv.shape[:2]
    dtype = uv.dtype
    valid = valid.bool()
    conv = C.get(convention)
    flip = torch.as_tensor(conv.flip)
    ar = torch.arange(Kn)
    u_box, box_draw = draws["u_box"], draws["box_draw"]
    u_swap, u_legs, u_hand, u_face, u_miss = (draws[k] for k in ("u_swap", "u_legs", "u_hand", "u_face", "u_miss"))
    u_gross, u_mirror, u_gdir, u_gmag = (draws[k] for k in ("u_gross", "u_mirror", "u_gdir", "u_gmag"))
    z_scale, z_fine, z_part = draws["z_scale"], draws["z_fine"], draws["z_part"]
    u_low, u_conf, u_drop = draws["u_low"], draws["u_conf"], draws["u_drop"]

    if occluders is None:
        occluders = torch.where((u_box < noise.occluder)[:, None], box_draw, torch.full_like(box_draw, float("nan")))
    h = person_height(uv, valid)
    state, head = keypoint_states(X, uv, valid, convention, occluders, noise.face_turn)

    # per keypoint parameters, gathered by (group, state)
    groups = torch.as_tensor(keypoint_groups(convention))
    try:
        table = _noise_table(noise, dtype)
    except TypeError:  # a config holding something unhashable (a list for a range): not cached
        table = _noise_table.__wrapped__(noise, dtype)
    P = dict(zip(_NOISE_FIELDS, table[groups[None].expand(B, Kn), state].unbind(-1)))  # each (B, K)

    # which true keypoint each output keypoint shows (left/right exchanges)
    src = ar.expand(B, Kn).clone()
    legs = torch.tensor([any(w in n for w in _LEG_WORDS) for n in conv.names])
    legs_perm = torch.where(legs, flip, ar)
    src = torch.where((u_legs < noise.swap_legs)[:, None], src[:, legs_perm], src)
    src = torch.where((u_swap < noise.swap)[:, None], src[:, flip], src)
    if noise.face_turn is not None and noise.face_swap > 0:
        face = torch.as_tensor(np.isin(keypoint_groups(convention), [GROUPS.index("face"), GROUPS.index("face_mesh")]))
        mirrored = (u_face < noise.face_swap) & (head < noise.face_turn[0])
        src = torch.where(mirrored[:, None], src[:, torch.where(face, flip, ar)], src)
    parts = _parts(convention)
    hands = [idx for idx, _ in parts if conv.names[idx[0]].startswith(("left_hand.", "right_hand."))]
    if len(hands) == 2:
        before = src.clone()
        for j, (mine, other) in enumerate(((hands[0], hands[1]), (hands[1], hands[0]))):
            swap_hand = (u_hand[:, j] < noise.hand_swap)[:, None]
            src[:, mine] = torch.where(swap_hand, before[:, other], before[:, mine])
    base = torch.gather(uv, 1, src[..., None].expand(B, Kn, 2))

    # fine errors: a Gaussian with a log-normal scale, never beyond GROSS (redrawn)
    sd = P["jitter"] * torch.exp(P["tail"] * z_scale)
    fine = sd[..., None] * z_fine
    if redraw is None:  # P(r <= x) = 1 - exp(-x^2 / 2 sd^2), conditioned on r <= GROSS
        n = z_fine.norm(dim=-1)
        top = -torch.expm1(-0.5 * (GROSS / sd) ** 2)
        w = (-torch.expm1(-0.5 * n * n) * top).clamp(max=1 - 1e-7)
        r = sd * torch.sqrt(-2 * torch.log1p(-w))
        fine = z_fine * (r / n.clamp(min=1e-12))[..., None]
    over = fine.norm(dim=-1) > GROSS
    for _ in range(30 if redraw is not None else 0):  # only the redrawn errors can still be beyond GROSS
        if not over.any():
            break
        z = redraw(B, Kn, 2)
        at = over.nonzero(as_tuple=True)
        again = sd[at][:, None] * z[at]
        fine[at] = again
        over[at] = again.norm(dim=-1) > GROSS
    fine = fine * (GROSS / fine.norm(dim=-1, keepdim=True).clamp(min=GROSS))
    for idx, anchor in parts:  # a hand or the face mesh: one error for the part, plus spread
        spread = P["part_spread"][:, anchor]
        shared = torch.where((spread > 0)[:, None, None], fine[:, anchor:anchor + 1].expand(B, len(idx), 2), fine[:, idx])
        own = spread[:, None] * torch.exp(P["tail"][:, idx] * z_scale[:, idx])
        fine[:, idx] = shared + own[..., None] * z_part[:, idx]

    # gross errors: onto the mirrored keypoint, or a random displacement
    gross = u_gross < P["gross"]
    far = (uv - uv[:, flip]).norm(dim=-1) > GROSS * h[:, None]  # a mirror point near by is no gross error
    mirror = gross & far & (u_mirror < noise.gross_mirror)
    ang = 2 * torch.pi * u_gdir
    mag = GROSS - P["gross_scale"] * torch.log1p(-u_gmag.clamp(max=1 - 1e-7))
    disp = torch.stack([torch.cos(ang), torch.sin(ang)], -1) * mag[..., None]
    mirror_uv = torch.gather(uv, 1, flip[src][..., None].expand(B, Kn, 2))
    err = torch.where(gross[..., None], disp, fine) * h[:, None, None]
    out_uv = torch.where(mirror[..., None], mirror_uv + fine * h[:, None, None], base + err)

    # confidence
    p_low = torch.where(gross, P["gross_low_conf"], P["low_conf"])
    lo, hi = noise.low_conf_range
    z_conf = math.sqrt(2) * torch.erfinv((2 * u_conf - 1).clamp(-1 + 1e-7, 1 - 1e-7))
    high = 1 - (P["conf_gap"] * torch.exp(CONF_SPREAD * z_conf)).clamp(max=0.5)
    conf = torch.where(u_low < p_low, lo + (hi - lo) * u_conf, high)
    keep = u_drop >= P["drop"]
    for idx, anchor in parts:  # a part is found or missed as a whole
        found = 1 - P["drop"][:, anchor]
        if noise.face_turn is not None and (convention == "face" or conv.names[idx[0]].startswith("face.")):
            a, b = noise.face_turn  # the face mesh fades out as the head turns away
            found = found * ((head - a) / max(b - a, 1e-6)).clamp(0, 1)
        keep[:, idx] = (u_drop[:, anchor] >= 1 - found)[:, None]
    conf = conf * keep * valid[None] * (u_miss >= noise.miss)[:, None]
    H, W = image_size
    inside = (out_uv[..., 0] >= 0) & (out_uv[..., 0] < W) & (out_uv[..., 1] >= 0) & (out_uv[..., 1] < H)
    conf = conf * inside
    return torch.cat([out_uv, conf[..., None]], -1)


# ----------------------------------------------------------------------------------------
# Noise over the frames of a video


@dataclass(frozen=True)
class TemporalNoiseConfig:
    """How ``add_temporal_noise``'s detector noise persists from frame to frame: each of
    ``add_noise``'s draws (``NOISE_DRAWS``) becomes a stationary AR(1) process over the
    frames in Gaussian space, z_t = rho z_(t-1) + sqrt(1 - rho^2) e_t (uniforms: Phi(z)),
    so every frame keeps exactly the per-frame marginals of the ``NoiseConfig`` (the
    calibrated MediaPipe statistics) while errors, drops and swaps last several frames.
    Each rho is the lag-1 correlation of its draws between consecutive frames
    (``TEMPORAL_DRAWS``):

    rho_jitter: the fine errors (z_scale, z_fine, z_part: the jitter's scale, direction
                and length, per keypoint and per hand / face mesh);
    rho_gross:  the gross errors: whether a keypoint has one, onto the mirrored keypoint
                or not, its direction and magnitude (u_gross, u_mirror, u_gdir, u_gmag);
    rho_conf:   the confidence: low or not, and its value (u_low, u_conf);
    rho_drop:   missing keypoints and parts (a hand, the face mesh: u_drop) and a missed
                person (u_miss);
    rho_swap:   the left/right exchanges: whole person, legs, each hand, a turned-away
                face (u_swap, u_legs, u_hand, u_face).

    An occluding box is drawn once per clip. The defaults are calibrated against
    MediaPipe Holistic in video mode (landmark smoothing on) on rendered Anny sequences,
    12 train/val clips x 64 frames at 30 fps (scripts/calibrate_temporal_noise.py;
    docs/noise_calibration.md, "Over time"): MediaPipe's fine error has a lag-1
    autocorrelation of 0.90 and decays about like an AR(1) process; gross errors last 2.6
    frames on average, whole-person swaps 1.7, lost hands 9, low visibilities (< 0.2) 16
    (the model reaches 9 there, at rho_conf = 0.998: its confidence also follows the
    per-frame gross errors and visibility states). ``independent()`` (all 0) draws every
    frame independently, as ``add_noise``."""

    # fitted by scripts/calibrate_temporal_noise.py --threads 1 (seed 0; mediapipe 0.10.14)
    rho_jitter: float = 0.93
    rho_gross: float = 0.91
    rho_conf: float = 0.998
    rho_drop: float = 0.97
    rho_swap: float = 0.8

    def __post_init__(self):
        for name in TEMPORAL_DRAWS:
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"TemporalNoiseConfig.{name} must be in [0, 1], got {v!r}")

    @staticmethod
    def independent() -> "TemporalNoiseConfig":
        """No correlation over time: each frame's noise drawn independently."""
        return TemporalNoiseConfig(**{name: 0.0 for name in TEMPORAL_DRAWS})


# Which rho of TemporalNoiseConfig drives each per-frame draw, in the order they are drawn.
TEMPORAL_DRAWS = {
    "rho_jitter": ("z_scale", "z_fine", "z_part"),
    "rho_gross": ("u_gross", "u_mirror", "u_gdir", "u_gmag"),
    "rho_conf": ("u_low", "u_conf"),
    "rho_drop": ("u_drop", "u_miss"),
    "rho_swap": ("u_swap", "u_legs", "u_hand", "u_face"),
}


def ar1_matrix(T: int, rho: float, dtype=torch.float32) -> Tensor:
    """(T, T) lower-triangular L with z = L e a stationary AR(1) process of lag-1
    correlation ``rho`` and unit variance for e (T, ...) i.i.d. standard normal:
    z_0 = e_0, z_t = rho z_(t-1) + sqrt(1 - rho^2) e_t."""
    t = torch.arange(T, dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    L = torch.where(lag >= 0, float(rho) ** lag.clamp(min=0), torch.zeros(()))
    L[:, 1:] *= math.sqrt(max(0.0, 1.0 - float(rho) ** 2))
    return L.to(dtype)


def add_temporal_noise(X: Tensor, uv: Tensor, valid: Tensor, convention: str, image_size: tuple,
                       noise: NoiseConfig = NoiseConfig(), temporal: TemporalNoiseConfig = TemporalNoiseConfig(),
                       seed: int = 0, occluders: Tensor | None = None) -> Tensor:
    """Detector-like noisy keypoints (N, T, K, 3) (x, y px, confidence) of N clips of T
    consecutive frames: ``add_noise``'s model frame by frame, with its draws correlated
    over time (``TemporalNoiseConfig``): every frame has add_noise's marginals exactly,
    while jitter, gross errors, low confidence, drops and left/right swaps persist for
    several frames.

    X (N, T, K, 3) camera frame, metres; uv (N, T, K, 2) px; valid (K,) bool (as for
    ``add_noise``); image_size (H, W). occluders (N, 4): one box x0, y0, x1, y1 px per clip,
    the same in every frame (NaN rows: none); None: one with probability
    ``noise.occluder`` per clip, drawn around the person in the clip's middle frame.
    Deterministic in ``seed``; the innovations are drawn in a fixed order whatever the
    parameters (common random numbers across rho values)."""
    if uv.ndim != 4 or X.shape[:3] != uv.shape[:3]:
        raise ValueError(f"add_temporal_noise: expected X (N, T, K, 3) and uv (N, T, K, 2), got {tuple(X.shape)} "
                         f"and {tuple(uv.shape)}")
    N, T, Kn = uv.shape[:3]
    dtype = uv.dtype
    valid = valid.bool()
    g = torch.Generator().manual_seed(int(seed))
    u_box = torch.rand(N, generator=g, dtype=dtype)
    box_draw = random_occluders(uv[:, T // 2], valid, noise.occluder_size, g)
    if occluders is None:
        occluders = torch.where((u_box < noise.occluder)[:, None], box_draw, torch.full_like(box_draw, float("nan")))
    shapes = {"u_swap": (), "u_legs": (), "u_hand": (2,), "u_face": (), "u_miss": (), "z_fine": (Kn, 2),
              "z_part": (Kn, 2)}
    top = torch.nextafter(torch.ones((), dtype=dtype), torch.zeros((), dtype=dtype))  # uniforms stay below 1
    draws = {"u_box": u_box.repeat_interleave(T), "box_draw": box_draw.repeat_interleave(T, 0)}
    for field_name, names in TEMPORAL_DRAWS.items():
        sizes = [math.prod(shapes.get(n, (Kn,))) for n in names]
        e = torch.randn(N, T, sum(sizes), generator=g, dtype=dtype)
        z = torch.einsum("ts,nsm->ntm", ar1_matrix(T, getattr(temporal, field_name), dtype), e)
        for name, part in zip(names, z.split(sizes, -1)):
            part = part.reshape(N * T, *shapes.get(name, (Kn,)))
            draws[name] = part if name.startswith("z_") else (0.5 * torch.erfc(-part / math.sqrt(2))).clamp(max=top)
    # fine errors truncated at GROSS through the CDF (no redraws, which would break the correlation)
    out = _apply_noise(X.reshape(N * T, Kn, 3), uv.reshape(N * T, Kn, 2), valid, convention, image_size, noise,
                       draws, occluders.to(dtype).repeat_interleave(T, 0), None)
    return out.reshape(N, T, Kn, 3)


def keypoints2d(body, batch: SyntheticBatch, convention: str, noise: NoiseConfig = NoiseConfig(),
                seed: int = 0, occluders: Tensor | None = None) -> Tensor:
    """(B, K, 3) projected keypoints in px with confidence, noisy per ``noise`` (see
    ``NoiseConfig`` and ``add_noise``); keypoints outside the image get confidence 0.

    convention: any the body model has a regressor for, or ``holistic`` (mediapipe33 +
    both hand21 + face). occluders: (B, 4) boxes x0, y0, x1, y1 px (NaN rows: none) whose
    keypoints are ``boxed``; None: random ones with probability ``noise.occluder``."""
    X, uv, valid = true_keypoints(body, batch, convention)
    return add_noise(X, uv, valid, convention, batch.image_size, noise, seed, occluders)
