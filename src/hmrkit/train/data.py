"""Training sets made from the synthetic generator (hmrkit.data.synthetic).

A ``KeypointTrainSet`` holds N synthetic people (library poses, sampled shapes and
cameras) with their ground truth and, fixed once like a real data set's detections, noisy
2D keypoints and noisy root-relative 3D keypoints (standing in for MediaPipe's world
landmarks). A fraction of the samples is "labelled": only those expose their ground-truth
parameters and 3D joints to training; the others ("unlabelled") offer nothing but their
detections, as real photos would.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from hmrkit.geometry.camera import project

from hmrkit.data.synthetic import INPUT_CONVENTIONS, NO_AUGMENT, NoiseConfig, PoseAugment, SceneConfig, add_noise, input_layout, sample_scenes
from hmrkit.io.atomic import atomic_write
from hmrkit.types import BodyParams

CONVENTION = "mediapipe33"
# Bumped whenever build_trainset makes different samples from the same configuration, so
# that no cache built by older code is read back (the cache key includes it).
TRAINSET_VERSION = 2


@dataclass(frozen=True)
class TrainSetConfig:
    """n samples of the library's ``split`` poses (``augment``ed), ``phenotypes`` bodies
    (``SceneConfig``), each seen through one input convention of ``conventions`` (drawn
    uniformly per sample: the keypoints a user's detector gives, in the regressors' input
    layout; world landmarks only with mediapipe33)."""

    n: int = 24000
    seed: int = 0
    labelled: float = 0.25  # fraction of samples whose 3D labels training may use
    world3d_sigma: float = 0.05  # m, noise of the simulated world landmarks
    yaw_deg: float = 180.0
    image_size: tuple = (720, 720)
    split: str = "train"
    phenotypes: str = "all"
    augment: PoseAugment = NO_AUGMENT
    conventions: tuple = INPUT_CONVENTIONS

    def key(self, library: str = "") -> str:
        """Cache key: the configuration and ``library``, a fingerprint of the pose library."""
        text = json.dumps(asdict(self), sort_keys=True) + library + f"v{TRAINSET_VERSION}"
        return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class KeypointTrainSet:
    """params:   ground truth BodyParams (N, ...) in the camera frame;
    K:           (N, 3, 3) px; image_size (H, W);
    X:           (N, 33, 3) exact mediapipe33 keypoints, camera frame metres (3D labels);
    uv:          (N, 33, 2) px, projections of each sample's input keypoints (its convention's
                 keypoints in the input layout, ``Xin``);
    valid:       (33,) bool, keypoints the body model has;
    det:         (N, 33, 3) fixed noisy detections, px + confidence, in the input layout
                 (confidence 0 in the slots the sample's convention lacks);
    det3d:       (N, 33, 4) fixed noisy root-relative 3D keypoints + confidence (mediapipe33
                 samples only: other detectors give no world landmarks);
    labelled:    (N,) bool;
    real:        (N,) bool or None: detections from real images (no ground truth at all:
                 params, X and uv are placeholders), see ``with_real_detections``;
    Xin:         (N, 33, 3) exact input keypoints (None: X, all mediapipe33);
    present:     (N, 33) bool, the slots each sample's convention fills (None: all);
    convention:  (N,) long, index into ``conventions`` (None: all mediapipe33)."""

    params: BodyParams
    K: Tensor
    image_size: tuple
    X: Tensor
    uv: Tensor
    valid: Tensor
    det: Tensor
    det3d: Tensor
    labelled: Tensor
    real: Optional[Tensor] = None
    Xin: Optional[Tensor] = None
    present: Optional[Tensor] = None
    convention: Optional[Tensor] = None
    conventions: tuple = (CONVENTION,)

    def __len__(self) -> int:
        return self.K.shape[0]

    def input_keypoints(self, idx: Tensor) -> Tensor:
        """(len(idx), 33, 3) exact input keypoints of the samples ``idx``."""
        return (self.X if self.Xin is None else self.Xin)[idx]

    def slots(self, idx: Tensor) -> Tensor:
        """(len(idx), 33) bool: the input slots the samples' conventions fill."""
        if self.present is None:
            return torch.ones(len(idx), self.X.shape[1], dtype=torch.bool)
        return self.present[idx]

    def conventions_of(self, idx: Tensor) -> Tensor:
        """(len(idx),) long index into ``conventions``."""
        if self.convention is None:
            return torch.zeros(len(idx), dtype=torch.long)
        return self.convention[idx]

    @property
    def is_real(self) -> Tensor:
        return self.real if self.real is not None else torch.zeros(len(self), dtype=torch.bool)


def root_relative(X: Tensor) -> Tensor:
    """(..., 33, 3) mediapipe33 -> relative to the mid-hips."""
    return X - 0.5 * (X[..., 23:24, :] + X[..., 24:25, :])


def world_landmarks(X: Tensor, conf2d: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    """Simulated world landmarks (N, 33, 4): root-relative X + N(0, sigma) noise, confidence
    1 where the 2D keypoint was detected."""
    noisy = root_relative(X) + sigma * torch.randn(X.shape, generator=generator, dtype=X.dtype)
    c = (conf2d > 0).to(X.dtype)[..., None]
    return torch.cat([noisy * c, c], -1)


def build_trainset(body, config: TrainSetConfig = TrainSetConfig(), chunk: int = 512, progress=None) -> KeypointTrainSet:
    scenes = sample_scenes(body, config.n, seed=config.seed, config=SceneConfig(
        image_size=config.image_size, yaw_deg=config.yaw_deg, split=config.split, phenotypes=config.phenotypes,
        augment=config.augment))
    g = torch.Generator().manual_seed(config.seed + 3)
    conv = torch.randint(0, len(config.conventions), (config.n,), generator=g)
    Xs, Xins, pres = [], [], []
    valid = body.keypoint_valid(CONVENTION).bool()
    for s in range(0, config.n, chunk):
        with torch.no_grad():
            kps = body.forward_keypoints(scenes.params[s:s + chunk], ("coco17", CONVENTION))
        Xin = kps[CONVENTION].clone()
        pre = valid.expand(Xin.shape[0], -1).clone()
        c = conv[s:s + chunk]
        for k, name in enumerate(config.conventions):
            if name == CONVENTION or not (c == k).any():
                continue
            Y, slots = input_layout(body, kps, name)
            # slots the convention lacks keep the mediapipe33 point (confidence 0 below), so
            # the noise model's geometry (the person's height, facing) stays the person's
            Xin[c == k] = torch.where(slots[:, None], Y, Xin)[c == k]
            pre[c == k] = slots & valid
        Xs.append(kps[CONVENTION])
        Xins.append(Xin)
        pres.append(pre)
        if progress is not None:
            progress(Xin.shape[0])
    X, Xin, present = torch.cat(Xs), torch.cat(Xins), torch.cat(pres)
    uv = project(Xin, scenes.K)
    det = add_noise(Xin, uv, valid, CONVENTION, scenes.image_size, NoiseConfig.realistic(), seed=config.seed + 1)
    det[..., 2] *= present
    g = torch.Generator().manual_seed(config.seed + 2)
    det3d = world_landmarks(X, det[..., 2], config.world3d_sigma, g)
    mp = torch.tensor([config.conventions[int(k)] == CONVENTION for k in conv])
    det3d = det3d * mp[:, None, None]
    labelled = torch.rand(config.n, generator=g) < config.labelled
    return KeypointTrainSet(scenes.params, scenes.K, scenes.image_size, X, uv, valid, det, det3d, labelled,
                            None, Xin, present, conv, tuple(config.conventions))


def cache_dir() -> Path:
    return Path(os.environ.get("HMRKIT_CACHE", Path.home() / ".cache" / "hmrkit"))


def load_or_build(body, config: TrainSetConfig, progress=None) -> KeypointTrainSet:
    """The training set for ``config``, cached under ``cache_dir()`` (rebuilt when absent)."""
    from hmrkit.data.synthetic import library_fingerprint
    from hmrkit.errors import InputError

    try:  # the key names the library, so a rebuilt library never meets an old cache
        library = library_fingerprint(body.pose_library)
    except (AttributeError, InputError):  # no library: build_trainset says so
        library = ""
    path = cache_dir() / f"trainset_{body.name}_{config.key(library)}.pt"
    if path.exists():
        z = torch.load(path, weights_only=False)
        return KeypointTrainSet(**z)
    ts = build_trainset(body, config, progress=progress)
    with atomic_write(path, "wb") as fh:  # a failed or interrupted save leaves no half file
        torch.save({name: getattr(ts, name) for name in ts.__dataclass_fields__}, fh)
    return ts


def read_real_detections(paths) -> tuple[Tensor, Tensor]:
    """Detections of real people from ``hmrkit run`` outputs (NAME.npz: evidence_keypoints2d,
    evidence_convention, cam_K, valid) -> det (M, 33, 3) px + confidence in mediapipe33 and
    K (M, 3, 3), one row per valid frame and person."""
    import numpy as np

    from hmrkit.errors import InputError
    from hmrkit.models.inputs import to_input_convention

    dets, Ks = [], []
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as z:
                kp, conv, K, valid = (z["evidence_keypoints2d"], str(z["evidence_convention"]), z["cam_K"],
                                      z["valid"])
        except (OSError, KeyError, ValueError) as e:
            raise InputError(path, f"not an hmrkit run output with evidence ({str(e).splitlines()[0]})") from None
        t, p = np.nonzero(valid)
        if len(t) == 0:
            continue
        det, _ = to_input_convention(torch.as_tensor(kp[t, p], dtype=torch.float32), conv)
        dets.append(det)
        Ks.append(torch.as_tensor(K[t], dtype=torch.float32))
    if not dets:
        return torch.zeros(0, 33, 3), torch.zeros(0, 3, 3)
    return torch.cat(dets), torch.cat(Ks)


def with_real_detections(ts: KeypointTrainSet, body, det: Tensor, K: Tensor) -> KeypointTrainSet:
    """``ts`` plus M unlabelled samples that are nothing but real detections (det (M, 33, 3),
    K (M, 3, 3)); they take part in the 2D loss and in the fitting loop only."""
    M = det.shape[0]
    if M == 0:
        return ts
    from hmrkit.types import BodyParams

    dtype = ts.K.dtype
    mean = body.mean_params(M)
    params = BodyParams.cat([ts.params, BodyParams(mean.global_orient, mean.pose, mean.shape,
                                                   torch.zeros(M, 3, dtype=dtype), mean.expression)])
    zeros = lambda *shape: torch.zeros(*shape, dtype=dtype)  # noqa: E731
    real = torch.cat([ts.is_real, torch.ones(M, dtype=torch.bool)])
    idx = torch.arange(len(ts))
    mp = ts.conventions.index(CONVENTION) if CONVENTION in ts.conventions else 0
    return KeypointTrainSet(params, torch.cat([ts.K, K.to(dtype)]), ts.image_size,
                            torch.cat([ts.X, zeros(M, *ts.X.shape[1:])]), torch.cat([ts.uv, zeros(M, *ts.uv.shape[1:])]),
                            ts.valid, torch.cat([ts.det, det.to(dtype)]), torch.cat([ts.det3d, zeros(M, *ts.det3d.shape[1:])]),
                            torch.cat([ts.labelled, torch.zeros(M, dtype=torch.bool)]), real,
                            torch.cat([ts.input_keypoints(idx), zeros(M, *ts.X.shape[1:])]),
                            torch.cat([ts.slots(idx), torch.ones(M, ts.X.shape[1], dtype=torch.bool)]),
                            torch.cat([ts.conventions_of(idx), torch.full((M,), mp, dtype=torch.long)]), ts.conventions)
