"""PIXIE training: the hand and face experts, their moderators and part heads, on
synthetic people with posed fingers and facial expressions.

The training set (``PixieTrainSet``, built once and cached like SPIN's): library poses of
the train split, both hands posed by the gesture sampler (``hmrkit.data.hands``: fist,
point, open, pinch, hold, ... and random curls, within the joint limits), 0-3 facial
action groups at a time; a ``p_closeup`` fraction are upper-body close-ups (0.9-1.5 m, the
hands 60-200 px), the rest whole people 2.5-6 m away (tiny hands, as in most photos);
bodies over all phenotypes. Evidence: MediaPipe Holistic's points with the realistic noise
model (``NoiseConfig.realistic``: body, hand and face-mesh noise, dropped and swapped
hands as calibrated against MediaPipe on renders, docs/noise_calibration.md and
docs/hands.md), one fixed draw per sample; simulated world landmarks for half the samples.

Each step degrades the evidence further, so that the moderators see what they must learn
to distrust: per hand, with probability ``p_drop`` it is removed, with ``p_degrade`` its
points get jitter of 5-30 % of the hand's size and lower confidence, with ``p_swap`` the two
hands' evidence is exchanged; the face likewise (``p_drop``, ``p_degrade``).

The body expert is the shipped SPIN regressor, frozen: ``pixie``'s body is ``spin``'s.
Losses (all samples are labelled; the part heads have no other supervision): finger,
wrist and head rotations (squared Frobenius), hand keypoints (hand21, each hand relative to
its wrist in the camera frame, and after Procrustes; metres), face landmarks after
Procrustes (metres), expression and shape (squared), and
the gender-aware shape prior (``hmrkit.body.priors.GenderShapePrior``) on the shape.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from hmrkit import conventions as C
from hmrkit.geometry.camera import project
from hmrkit.geometry.procrustes import procrustes_align
from hmrkit.models.inputs import crop_inputs
from hmrkit.models.pixie import PixieConfig, PixieRegressor
from hmrkit.train.batch import TrainBatch
from hmrkit.train.data import cache_dir, world_landmarks
from hmrkit.train.trainer import Objective, TrainContext, Trainer, TrainerConfig, tqdm_hook
from hmrkit.types import BodyParams

PIXIE_SET_VERSION = 1
PARTS = (("mediapipe33", len(C.MEDIAPIPE33)), ("hand21_left", len(C.HAND21)), ("hand21_right", len(C.HAND21)),
         ("face", len(C.FACE)))
N_BODY, N_HAND, N_FACE = len(C.MEDIAPIPE33), len(C.HAND21), len(C.FACE)


@dataclass(frozen=True)
class PixieSetConfig:
    n: int = 24000
    seed: int = 0
    split: str = "train"
    p_closeup: float = 0.6
    world3d_sigma: float = 0.05

    def key(self, library: str = "") -> str:
        text = json.dumps(asdict(self), sort_keys=True) + library + f"v{PIXIE_SET_VERSION}"
        return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PixieTrainSet:
    """params: ground truth (N, ...) camera frame, fingers and expression included;
    K (N, 3, 3); image_size (H, W); X (N, 116, 3) exact holistic keypoints, metres;
    det (N, 116, 3) fixed noisy holistic detections, px + confidence; det3d (N, 33, 4)
    simulated world landmarks (zeros for half the samples); closeup (N,) bool."""

    params: BodyParams
    K: Tensor
    image_size: tuple
    X: Tensor
    det: Tensor
    det3d: Tensor
    closeup: Tensor

    def __len__(self) -> int:
        return self.K.shape[0]


def holistic_keypoints(body, params: BodyParams) -> Tensor:
    """(B, 116, 3) holistic keypoints from the body's regressors (no mesh built)."""
    kps = body.forward_keypoints(params, tuple(name for name, _ in PARTS))
    return torch.cat([kps[name] for name, _ in PARTS], 1)


def pixie_scenes(body, n: int, seed: int, split: str, p_closeup: float):
    """n scenes (SyntheticBatch) with posed hands and expressions: close-ups (the
    closeups eval set's cameras) and whole people; and (n,) bool which are close-ups."""
    from hmrkit.data.hands import sample_expressions, with_hands
    from hmrkit.data.synthetic import SceneConfig, SyntheticBatch, sample_scenes
    from hmrkit.eval.sets import closeup_scenes

    g = torch.Generator().manual_seed(seed)
    closeup = torch.rand(n, generator=g) < p_closeup
    nc = int(closeup.sum())
    parts = []
    if nc:
        c, _, _ = closeup_scenes(body, nc, seed + 1, split)
        c = replace(c, params=replace(c.params, shape=_all_phenotypes(body, nc, seed + 5, c.params.shape)))
        parts.append(c)
    if n - nc:
        f = sample_scenes(body, n - nc, seed=seed + 2, config=SceneConfig(split=split, phenotypes="all"))
        pose, _ = with_hands(body, f.params.pose, seed=seed + 3)
        expr, _ = sample_expressions(body, n - nc, seed=seed + 4)
        parts.append(replace(f, params=replace(f.params, pose=pose, expression=expr)))
    params = BodyParams.cat([p.params for p in parts])
    K = torch.cat([p.K for p in parts])
    order = torch.cat([closeup.nonzero()[:, 0], (~closeup).nonzero()[:, 0]])
    inv = torch.empty_like(order)
    inv[order] = torch.arange(n)
    batch = SyntheticBatch(params[inv], K[inv], parts[0].image_size)
    return batch, closeup


def _all_phenotypes(body, n: int, seed: int, shape: Tensor) -> Tensor:
    """Close-ups' bodies over all phenotypes (the closeups set keeps its own for train)."""
    from hmrkit.data.synthetic import SceneConfig, sample_scenes

    s = sample_scenes(body, n, seed=seed, config=SceneConfig(phenotypes="all", split="all"))
    return s.params.shape.to(shape.dtype)


def build_pixie_set(body, config: PixieSetConfig = PixieSetConfig(), chunk: int = 1024, progress=None) -> PixieTrainSet:
    from hmrkit.data.synthetic import NoiseConfig, add_noise

    scenes, closeup = pixie_scenes(body, config.n, config.seed, config.split, config.p_closeup)
    Xs = []
    for s in range(0, config.n, chunk):
        with torch.no_grad():
            Xs.append(holistic_keypoints(body, scenes.params[s:s + chunk]))
        if progress is not None:
            progress(Xs[-1].shape[0] // 2)
    X = torch.cat(Xs)
    uv = project(X, scenes.K)
    valid = torch.cat([body.keypoint_valid(name).bool() for name, _ in PARTS])
    dets = []
    for s in range(0, config.n, chunk):
        dets.append(add_noise(X[s:s + chunk], uv[s:s + chunk], valid, "holistic", scenes.image_size,
                              NoiseConfig.realistic(), seed=config.seed + 11 + s))
        if progress is not None:
            progress(dets[-1].shape[0] - dets[-1].shape[0] // 2)
    det = torch.cat(dets)
    g = torch.Generator().manual_seed(config.seed + 12)
    det3d = world_landmarks(X[:, :N_BODY], det[:, :N_BODY, 2], config.world3d_sigma, g)
    give = torch.rand(config.n, generator=g) < 0.5
    det3d = det3d * give[:, None, None]
    return PixieTrainSet(scenes.params, scenes.K, scenes.image_size, X, det, det3d, closeup)


def load_or_build_pixie_set(body, config: PixieSetConfig, progress=None) -> PixieTrainSet:
    from hmrkit.data.synthetic import library_fingerprint
    from hmrkit.io.atomic import atomic_write

    path = cache_dir() / f"pixieset_{body.name}_{config.key(library_fingerprint(body.pose_library))}.pt"
    if path.exists():
        z = torch.load(path, weights_only=False)
        return PixieTrainSet(**z)
    ts = build_pixie_set(body, config, progress=progress)
    with atomic_write(path, "wb") as fh:
        torch.save({name: getattr(ts, name) for name in ts.__dataclass_fields__}, fh)
    return ts


@dataclass(frozen=True)
class PixieTrainConfig:
    steps: int = 6000
    batch: int = 128
    lr: float = 5e-4
    weight_decay: float = 1e-4
    seed: int = 0
    p_drop: float = 0.15  # per hand / face: evidence removed
    p_degrade: float = 0.15  # per hand / face: heavy jitter, low confidence
    p_swap: float = 0.05  # the two hands' evidence exchanged
    w_fingers: float = 1.0
    w_wrist: float = 1.0
    w_head: float = 1.0
    w_hand3d: float = 20.0  # on the mean distance (m) of the wrist-relative hand21 points (camera frame)
    w_hand_pa: float = 50.0  # on the mean distance (m) of the hand21 points after Procrustes
    w_face_pa: float = 200.0  # on the mean distance (m) of the face points after Procrustes
    w_expression: float = 2.0
    w_shape: float = 1.0
    w_shape_prior: float = 0.001
    val_n: int = 256
    val_every: int = 500
    model: PixieConfig = PixieConfig()
    data: PixieSetConfig = PixieSetConfig()

    def trainer(self) -> TrainerConfig:
        return TrainerConfig(steps=self.steps, lr=self.lr, weight_decay=self.weight_decay, warmup=200, clip_grad=5.0,
                             seed=self.seed, val_every=self.val_every)


def degrade_parts(det: Tensor, g: torch.Generator, p_drop: float, p_degrade: float, p_swap: float) -> Tensor:
    """(B, 116, 3) holistic detections with hands and face removed, degraded or (hands)
    swapped at random (see the module docstring); returns a new tensor."""
    det = det.clone()
    B = det.shape[0]
    h0, h1, f0 = N_BODY, N_BODY + N_HAND, N_BODY + 2 * N_HAND
    swap = torch.rand(B, generator=g) < p_swap
    if swap.any():
        L, R = det[swap, h0:h1].clone(), det[swap, h1:f0].clone()
        det[swap, h0:h1], det[swap, h1:f0] = R, L
    for a, b in ((h0, h1), (h1, f0), (f0, f0 + N_FACE)):
        part = det[:, a:b]
        u = torch.rand(B, generator=g)
        drop = u < p_drop
        bad = (u >= p_drop) & (u < p_drop + p_degrade)
        found = part[..., 2] > 0
        if bad.any():
            xy = part[..., :2]
            big = 1e9
            lo = torch.where(found[..., None], xy, torch.full_like(xy, big)).amin(1)
            hi = torch.where(found[..., None], xy, torch.full_like(xy, -big)).amax(1)
            size = (hi - lo).amax(-1).clamp(min=1.0, max=1e4)
            sigma = (0.05 + 0.25 * torch.rand(B, generator=g)) * size
            noise = torch.randn(part[..., :2].shape, generator=g) * sigma[:, None, None]
            conf = part[..., 2] * (0.3 + 0.4 * torch.rand(B, 1, generator=g))
            moved = torch.cat([xy + noise, conf[..., None]], -1) * found[..., None]
            part = torch.where(bad[:, None, None], moved, part)
        part = torch.where(drop[:, None, None], torch.zeros_like(part), part)
        det[:, a:b] = part
    return det


def _rot_loss(a: Tensor, b: Tensor) -> Tensor:
    return ((a - b) ** 2).sum((-2, -1)).mean()


class PixieObjective(Objective):
    method = "pixie"

    def __init__(self, body, data: PixieTrainSet, config: PixieTrainConfig, spin_weights=None):
        self.body, self.data, self.config = body, data, config
        self.spin_weights = spin_weights

    def build(self, ctx: TrainContext) -> PixieRegressor:
        from hmrkit.body.priors import GenderShapePrior
        from hmrkit.models.spin import load_regressor

        body, cfg = self.body, self.config
        spin = load_regressor(body, self.spin_weights)
        model = PixieRegressor.from_spin(body, spin, cfg.model).to(body.dtype)
        for p in model.body_expert.parameters():
            p.requires_grad_(False)
        self.spin_card = dict(getattr(spin, "card", {}) or {})
        self.order = ctx.order(len(self.data), cfg.batch)
        self.gen = ctx.generator("degrade", cfg.seed + 101)
        self.prior = GenderShapePrior.for_body(body)
        self.val = validation_closeups(body, cfg.val_n)
        self.model = model
        return model

    def batch(self, step: int) -> TrainBatch:
        idx = self.order.next()
        d, cfg = self.data, self.config
        det = degrade_parts(d.det[idx], self.gen, cfg.p_drop, cfg.p_degrade, cfg.p_swap)
        inputs = crop_inputs(det[:, :N_BODY], d.K[idx], "mediapipe33", d.det3d[idx])
        hands = torch.stack([det[:, N_BODY:N_BODY + N_HAND], det[:, N_BODY + N_HAND:N_BODY + 2 * N_HAND]], 1)
        face = det[:, N_BODY + 2 * N_HAND:]
        return TrainBatch(indices=idx, inputs=inputs, hands2d=hands, face2d=face, params=d.params[idx],
                          labelled=torch.ones(len(idx), dtype=torch.bool))

    def losses(self, model: PixieRegressor, batch: TrainBatch, step: int):
        cfg, body = self.config, self.body
        model.body_expert.eval()  # frozen: no dropout
        out = model(batch.inputs, batch.hands2d, batch.face2d, body)
        p, gt = out.params, batch.params
        fingers = model.hand_index["left"] + model.hand_index["right"]
        wrists = [model.wrist_index[s] for s in ("left", "right")]
        res = {"fingers": _rot_loss(p.pose[:, fingers], gt.pose[:, fingers]),
               "wrist": _rot_loss(p.pose[:, wrists], gt.pose[:, wrists])}
        total = cfg.w_fingers * res["fingers"] + cfg.w_wrist * res["wrist"]
        if model.head_index is not None:
            res["head"] = _rot_loss(p.pose[:, model.head_index], gt.pose[:, model.head_index])
            total = total + cfg.w_head * res["head"]
        X = holistic_keypoints(body, p)
        Xt = self.data.X[batch.indices]
        for k, a in enumerate((N_BODY, N_BODY + N_HAND)):
            hp, ht = X[:, a:a + N_HAND], Xt[:, a:a + N_HAND]
            e = ((hp - hp[:, :1]) - (ht - ht[:, :1])).norm(dim=-1).mean()
            pa = (procrustes_align(hp, ht) - ht).norm(dim=-1).mean()
            res[f"hand3d {'LR'[k]}"], res[f"hand PA {'LR'[k]}"] = e, pa
            total = total + 0.5 * (cfg.w_hand3d * e + cfg.w_hand_pa * pa)
        f0 = N_BODY + 2 * N_HAND
        fp, ft = X[:, f0:], Xt[:, f0:]
        # after a similarity alignment: the face's shape and expression, not where the head points
        res["face PA"] = (procrustes_align(fp, ft) - ft).norm(dim=-1).mean()
        total = total + cfg.w_face_pa * res["face PA"]
        if p.expression is not None and gt.expression is not None:
            res["expression"] = ((p.expression - gt.expression.to(p.expression)) ** 2).sum(-1).mean()
            total = total + cfg.w_expression * res["expression"]
        res["shape"] = ((p.shape - gt.shape) ** 2).sum(-1).mean()
        res["shape prior"] = self.prior(p.shape).mean()
        total = total + cfg.w_shape * res["shape"] + cfg.w_shape_prior * res["shape prior"]
        for part, w in out.weights.items():
            res[f"w_part {part}"] = w[:, 1].mean().detach()
        res["loss"] = total
        return res

    def validate(self, model: PixieRegressor) -> dict:
        return validate(model, self.body, self.val)

    def card(self, record: dict) -> dict:
        cfg = self.config
        return {"body": self.body.name, "batch": cfg.batch, "samples": len(self.data),
                "body_expert": {k: self.spin_card.get(k) for k in ("method", "steps", "check") if k in self.spin_card},
                "config": {k: v for k, v in asdict(cfg).items() if k not in ("data", "model")},
                "model": asdict(cfg.model), "data": asdict(cfg.data),
                "val": {k: v for k, v in record.items() if k.startswith("val")},
                "check": check_figure(self.model, self.body)}

    def export(self, model: PixieRegressor) -> dict:
        return model.checkpoint()


def validation_closeups(body, n: int, seed: int = 9001, split: str = "val"):
    """Fixed validation close-ups of ``split`` (val: subjects and motions training never
    sees), realistic noise: (CropInputs, hands (n, 2, 21, 3), face (n, F, 3), truth X
    (n, 116, 3), params)."""
    from hmrkit.data.synthetic import NoiseConfig, add_noise
    from hmrkit.eval.sets import closeup_scenes

    scenes, _, _ = closeup_scenes(body, n, seed, split)
    with torch.no_grad():
        X = holistic_keypoints(body, scenes.params)
    valid = torch.cat([body.keypoint_valid(name).bool() for name, _ in PARTS])
    det = add_noise(X, project(X, scenes.K), valid, "holistic", scenes.image_size, NoiseConfig.realistic(),
                    seed=seed + 1)
    inputs = crop_inputs(det[:, :N_BODY], scenes.K, "mediapipe33")
    hands = torch.stack([det[:, N_BODY:N_BODY + N_HAND], det[:, N_BODY + N_HAND:N_BODY + 2 * N_HAND]], 1)
    return inputs, hands, det[:, N_BODY + 2 * N_HAND:], X, scenes.params


@torch.no_grad()
def validate(model: PixieRegressor, body, val) -> dict:
    """Hand PA (mm, hand21 after similarity Procrustes, both hands), hand error relative to
    the wrist (mm), face PA (mm), expression RMSE, mean hand/face fusion weight of the part."""
    from hmrkit.eval.metrics import pa_mpjpe

    inputs, hands, face, X, params = val
    was = model.training
    model.eval()
    out = model(inputs, hands, face, body)
    P = holistic_keypoints(body, out.params)
    model.train(was)
    res = {}
    pa, rel = [], []
    for a in (N_BODY, N_BODY + N_HAND):
        hp, ht = P[:, a:a + N_HAND], X[:, a:a + N_HAND]
        pa.append(pa_mpjpe(hp, ht).mean())
        rel.append(((hp - hp[:, :1]) - (ht - ht[:, :1])).norm(dim=-1).mean() * 1000)
    f0 = N_BODY + 2 * N_HAND
    res["val hand PA"] = float(sum(pa) / 2)
    res["val hand rel"] = float(sum(rel) / 2)
    res["val face PA"] = float(pa_mpjpe(P[:, f0:], X[:, f0:]).mean())
    if out.params.expression is not None and params.expression is not None:
        res["val expression RMSE"] = float(((out.params.expression - params.expression) ** 2).mean().sqrt())
    for part, w in out.weights.items():
        res[f"val w_part {part}"] = float(w[:, 1].mean())
    return res


CHECK_SET = {"n": 64, "seed": 9001}
CHECK_SET_NAME = f"validation_closeups(n={CHECK_SET['n']}, seed={CHECK_SET['seed']}, split=val)"


def check_figure(model: PixieRegressor, body) -> dict:
    """The card's regression figure (tests/test_pixie.py recomputes it)."""
    res = validate(model, body, validation_closeups(body, **CHECK_SET))
    return {"set": CHECK_SET_NAME, **{k[4:]: round(v, 3) for k, v in res.items()}}


def pixie_trainer(body, data: PixieTrainSet, config: PixieTrainConfig, out_dir, spin_weights=None) -> Trainer:
    return Trainer(PixieObjective(body, data, config, spin_weights), config.trainer(), out_dir)


def train_pixie(body, config: PixieTrainConfig, out_dir, resume: bool = False, progress_factory=None,
                spin_weights=None) -> Path:
    """Build (or load) the training set, train, write ``out_dir/pixie_<body>.pt``."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    with tqdm(total=config.data.n, desc="pixie training set", unit="sample",
              disable=None if progress_factory else True) as bar:
        data = load_or_build_pixie_set(body, config.data, progress=bar.update)
    trainer = pixie_trainer(body, data, config, out_dir, spin_weights)
    trainer.begin(resume)
    bar = progress_factory(config.steps, trainer.step) if progress_factory else None
    record = trainer.train(progress=tqdm_hook(bar) if bar is not None else None)
    if bar is not None:
        bar.close()
    return trainer.save_weights(out_dir / f"pixie_{body.name}.pt", record)
