"""SPIN training: the regressor supervised by its own fits (model fitting in the loop).

Each step takes a batch of the training set (``hmrkit.train.data``). Labelled samples
supervise the regressor with their ground truth: 2D and 3D keypoints, pose and shape.
Unlabelled samples only have their detections: they give a 2D keypoint loss, and with the
loop on, every ``fit_every`` steps the ``Fitter`` is initialised with the regressor's
current estimate of them and fitted to their detections; a per-sample fit is stored and
replaced only by one with a lower 2D error, and stored fits whose error is below
``fit_valid`` supervise the regressor's pose and shape as ground truth would (SPIN).
With the loop off, the same data trains the regressor with no fits (the ablation).

SPIN is a ``SpinObjective`` of the shared ``hmrkit.train.trainer.Trainer`` (optimiser,
schedule, RNG, checkpoints, logs; docs/training.md): its ``batch`` is a ``TrainBatch``
(evidence, 2D targets, 3D labels, pose/shape targets with their weights), the fits run in
its ``after_step`` hook and the ``FitStore`` is its checkpointed state. ``spin_trainer``
builds the pair; ``train_spin`` is the whole run behind ``hmrkit train spin``.

Loss weights follow SPIN's code (keypoints 5, pose 1, shape 0.001, camera prior
exp(-10 s)^2, all x 60); the shape weight is divided by 0.2^2 for Anny, whose phenotypes
spread about 0.2 where SPIN's betas spread 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from hmrkit import conventions as C
from hmrkit.data.synthetic import NoiseConfig, SceneConfig, add_noise, input_layout, keypoints2d, sample_scenes
from hmrkit.fit import FitConfig, Fitter
from hmrkit.geometry.camera import project
from hmrkit.models.encoders import EncoderConfig
from hmrkit.models.hmr_head import HeadConfig
from hmrkit.models.inputs import crop_inputs, to_crop
from hmrkit.models.spin import SpinRegressor
from hmrkit.train.batch import TrainBatch
from hmrkit.train.data import CONVENTION, KeypointTrainSet, TrainSetConfig, root_relative, world_landmarks
from hmrkit.train.trainer import Objective, TrainContext, Trainer, TrainerConfig, tqdm_hook
from hmrkit.types import BodyParams, Observation


@dataclass(frozen=True)
class SpinTrainConfig:
    steps: int = 3000
    batch: int = 64
    lr: float = 3e-4  # SPIN: 5e-5 with a pretrained backbone; a small network from scratch wants more
    weight_decay: float = 1e-4
    seed: int = 0
    loop: bool = True  # fitting in the loop (False: the ablation)
    fit_every: int = 4  # run the in-loop fit every this many steps
    fit_body_iters: int = 30
    fit_camera_iters: int = 10
    fit_valid: float = 0.04  # a stored fit supervises when its mean 2D error < this x the box side
    fit_select: str = "px"  # "px": 2D error only; "agree": also no limb or torso flipped in depth against the regressor
    fit_flip_z: float = 0.3  # "agree": a bone counts when its depth component is over this fraction of its length in both
    p_world3d: float = 0.5  # probability that a sample's 3D keypoints are given to the regressor
    w_kp2d: float = 5.0
    w_kp3d: float = 5.0
    w_pose: float = 1.0
    w_shape: float = 0.001 / 0.2 ** 2
    w_cam: float = 1.0
    w_total: float = 60.0
    val_n: int = 256
    val_every: int = 500  # steps between validations (and checkpoints)
    encoder: EncoderConfig = EncoderConfig()
    head: HeadConfig = HeadConfig()
    data: TrainSetConfig = TrainSetConfig()

    def trainer(self) -> TrainerConfig:
        """The shared trainer's part of this configuration (warm-up 200 steps, clip 5)."""
        return TrainerConfig(steps=self.steps, lr=self.lr, weight_decay=self.weight_decay, warmup=200, clip_grad=5.0,
                             seed=self.seed, val_every=self.val_every)


def _keypoints(body, params: BodyParams, conventions: tuple) -> dict:
    return body.forward_keypoints(params, conventions)


class FitStore:
    """Per-sample best fits: global orientation, regressed joints' pose, shape, and the fit's
    mean 2D error as a fraction of the box side (inf: none yet)."""

    def __init__(self, n: int, num_joints: int, num_shape: int, dtype=torch.float32):
        self.go = torch.eye(3, dtype=dtype).repeat(n, 1, 1)
        self.pose = torch.eye(3, dtype=dtype).repeat(n, num_joints, 1, 1)
        self.shape = torch.zeros(n, num_shape, dtype=dtype)
        self.err = torch.full((n,), math.inf, dtype=dtype)

    def update(self, idx: Tensor, go: Tensor, pose: Tensor, shape: Tensor, err: Tensor) -> Tensor:
        """Keep the new fits that beat the stored ones; returns (len(idx),) bool: replaced."""
        better = err < self.err[idx]
        i = idx[better]
        self.go[i], self.pose[i], self.shape[i], self.err[i] = go[better], pose[better], shape[better], err[better]
        return better

    def state(self) -> dict:
        return {"go": self.go, "pose": self.pose, "shape": self.shape, "err": self.err}

    def load(self, state: dict) -> None:
        self.go, self.pose, self.shape, self.err = (state[k].clone() for k in ("go", "pose", "shape", "err"))


VAL_CONVENTIONS = ("mediapipe33", "coco17")  # the validation's input conventions


def validation_set(body, n: int, seed: int = 9001, split: str = "val"):
    """A fixed validation set: poses of ``split`` (default the val subjects and motions,
    which training never sees; hmrkit.data.splits), bodies over all phenotypes, headings
    within +-60 degrees, realistic noise, no 3D input; the same people's evidence in each
    of ``VAL_CONVENTIONS``. Returns (scenes, {convention: (n, K, 3) keypoints}, coco17 truth)."""
    scenes = sample_scenes(body, n, seed=seed, config=SceneConfig(yaw_deg=60, split=split, phenotypes="all"))
    kp = {c: keypoints2d(body, scenes, c, NoiseConfig.realistic(), seed=seed + 1) for c in VAL_CONVENTIONS}
    with torch.no_grad():
        gt = _keypoints(body, scenes.params, ("coco17",))["coco17"]
    return scenes, kp, gt


@torch.no_grad()
def validate(model: SpinRegressor, body, val) -> dict:
    """MPJPE and PA-MPJPE (mm, coco17 joints) per input convention: 'val MPJPE' and 'val
    PA-MPJPE' with mediapipe33 input, 'val coco17 MPJPE' ... with coco17 input."""
    from hmrkit.eval.metrics import mpjpe, pa_mpjpe, pelvis_indices

    scenes, kps, gt = val
    was = model.training
    model.eval()
    res = {}
    for conv, kp in kps.items():
        preds = []
        for s in range(0, kp.shape[0], 128):
            inputs = crop_inputs(kp[s:s + 128], scenes.K[s:s + 128], conv)
            preds.append(_keypoints(body, model.params(body, inputs), ("coco17",))["coco17"])
        pred = torch.cat(preds)
        tag = "val" if conv == CONVENTION else f"val {conv}"
        res[f"{tag} MPJPE"] = float(mpjpe(pred, gt, pelvis_indices("coco17")).mean())
        res[f"{tag} PA-MPJPE"] = float(pa_mpjpe(pred, gt).mean())
    model.train(was)
    return res


CHECK_SET = {"n": 64, "seed": 9001}  # the card's regression check: validation_set(body, **CHECK_SET)
CHECK_SET_NAME = f"validation_set(n={CHECK_SET['n']}, seed={CHECK_SET['seed']}, split=val)"


def check_figure(model: SpinRegressor, body) -> dict:
    """The card's regression figure: the regressor's PA-MPJPE and MPJPE (mm, coco17) on
    the small fixed set CHECK_SET; tests/test_spin_weights.py recomputes it."""
    res = validate(model, body, validation_set(body, **CHECK_SET))
    return {"set": CHECK_SET_NAME,
            "PA-MPJPE": round(res["val PA-MPJPE"], 2), "MPJPE": round(res["val MPJPE"], 2),
            "coco17 PA-MPJPE": round(res["val coco17 PA-MPJPE"], 2)}


# coco17 limb bones (upper and lower arms and legs) and the torso's facing, for depth flips
_LIMBS = ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16))


@torch.no_grad()
def depth_flips(body, a: BodyParams, b: BodyParams, min_z: float = 0.3) -> Tensor:
    """(B,) how many parts of ``a`` point the other way in depth than in ``b`` (camera
    frame): limb bones whose depth component is over ``min_z`` of their length in both
    and of opposite sign, plus 1 when the torsos face opposite ways (the sign of the
    depth of the normal of shoulders and hips). A fit that matches the 2D evidence with a
    limb or the whole body flipped in depth shows here against the regressor's estimate,
    which learnt depth from 3D labels."""
    ja = _keypoints(body, a, ("coco17",))["coco17"]
    jb = _keypoints(body, b, ("coco17",))["coco17"]
    i, j = torch.tensor(_LIMBS).T

    def dz(x):
        v = x[:, j] - x[:, i]
        return v[..., 2] / v.norm(dim=-1).clamp(min=1e-6)

    za, zb = dz(ja), dz(jb)
    limbs = ((za * zb < 0) & (za.abs() > min_z) & (zb.abs() > min_z)).sum(-1)

    def facing(x):  # normal of the torso: (right shoulder - left shoulder) x (hips - shoulders)
        across = x[:, 6] - x[:, 5]
        down = 0.5 * (x[:, 11] + x[:, 12]) - 0.5 * (x[:, 5] + x[:, 6])
        n = torch.linalg.cross(across, down)
        return n[:, 2] / n.norm(dim=-1).clamp(min=1e-9)

    fa, fb = facing(ja), facing(jb)
    torso = (fa * fb < 0) & (fa.abs() > min_z) & (fb.abs() > min_z)
    return limbs + torso.long()


class SpinObjective(Objective):
    """SPIN as a ``Trainer`` objective: the regressor, its batches (labelled samples with
    fresh detector noise, unlabelled ones with their fixed detections), its losses, and
    the fit store that the loop (``after_step``) fills and the pose/shape losses read."""

    method = "spin"

    def __init__(self, body, data: KeypointTrainSet, config: SpinTrainConfig, real_sources=()):
        from hmrkit.body.priors import body_joint_indices

        self.body, self.data, self.config = body, data, config
        self.real_sources = [str(p) for p in real_sources]
        self.joint_index = torch.tensor(body_joint_indices(body))  # the regressed joints, as the regressors'

    def build(self, ctx: TrainContext) -> SpinRegressor:
        body, cfg = self.body, self.config
        model = SpinRegressor(body, cfg.encoder, cfg.head).to(body.dtype)
        self.order = ctx.order(len(self.data), cfg.batch)
        self.fits = FitStore(len(self.data), len(model.joint_index), body.num_shape, body.dtype)
        self.fitter = Fitter(body, FitConfig(camera_iters=2 * cfg.fit_camera_iters, body_iters=cfg.fit_body_iters,
                                             detail_iters=0, yaw_hypotheses=1, fit_hands=False, fit_face=False))
        self.val = validation_set(body, cfg.val_n)
        self.model = model  # for the card's check figure
        return model

    # ------------------------------------------------------------------ batches
    def evidence(self, idx: Tensor, step: int):
        """Evidence of the batch: labelled samples get fresh detector noise each step (an
        augmentation); unlabelled ones keep their fixed detections. 3D keypoints are given
        with probability p_world3d per sample."""
        d, cfg = self.data, self.config
        lab = d.labelled[idx]
        kp = d.det[idx].clone()
        k3 = d.det3d[idx].clone()
        occ = self.occluders(idx, step)
        if lab.any():
            li = idx[lab]
            seed = cfg.seed * 1_000_003 + step
            fresh = add_noise(d.input_keypoints(li), d.uv[li], d.valid, CONVENTION, d.image_size,
                              NoiseConfig.realistic(), seed=seed, occluders=None if occ is None else occ[lab])
            fresh[..., 2] *= d.slots(li)
            kp[lab] = fresh
            g = torch.Generator().manual_seed(seed)
            k3[lab] = world_landmarks(d.X[li], kp[lab][..., 2], cfg.data.world3d_sigma, g) * self.has_world3d(li)
        kp = self.frame(kp, idx, lab, step)
        k3 = k3 * (kp[..., 2:3] > 0)
        g = torch.Generator().manual_seed(cfg.seed * 7 + step)
        give = torch.rand(len(idx), generator=g) < cfg.p_world3d
        k3 = k3 * give[:, None, None]
        return kp, k3, lab

    def occluders(self, idx: Tensor, step: int) -> Tensor | None:
        """(B, 4) occluder boxes px over the batch's people (NaN rows: none), whose
        keypoints take the noise model's boxed state; None: no occluders (SPIN)."""
        return None

    def frame(self, kp: Tensor, idx: Tensor, lab: Tensor, step: int) -> Tensor:
        """The batch's detections (B, 33, 3) after whatever the image frame removes
        (PARE's truncation); SPIN: unchanged."""
        return kp

    def has_world3d(self, idx: Tensor) -> Tensor:
        """(len(idx), 1, 1): 1 for samples seen through MediaPipe (world landmarks), else 0."""
        d = self.data
        names = d.conventions
        mp = torch.tensor([n == CONVENTION for n in names])[d.conventions_of(idx)]
        return mp.to(d.X.dtype)[:, None, None]

    def input_keypoints(self, params: BodyParams, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Predicted keypoints of the samples ``idx``: (B, 33, 3) in the input layout of
        each sample's convention (for the 2D loss) and (B, 33, 3) mediapipe33 (3D loss)."""
        d = self.data
        convs = d.conventions
        need = ("coco17", CONVENTION) if any(n != CONVENTION for n in convs) else (CONVENTION,)
        kps = _keypoints(self.body, params, need)
        X = kps[CONVENTION]
        Xin = X
        c = d.conventions_of(idx)
        for k, name in enumerate(convs):
            if name != CONVENTION and bool((c == k).any()):
                Y, _ = input_layout(self.body, kps, name)
                Xin = torch.where((c == k)[:, None, None], Y, Xin)
        return Xin, X

    def targets(self, idx: Tensor, lab: Tensor):
        """Pose/shape targets (BodyParams, the full pose) and their weights: ground truth for
        labelled samples, valid stored fits for unlabelled ones when the loop is on."""
        d = self.data
        p = d.params[idx]
        go, pose, shape = p.global_orient.clone(), p.pose.clone(), p.shape.clone()
        w = lab.to(go.dtype)
        if self.config.loop:
            fit_ok = (~lab) & (self.fits.err[idx] < self.config.fit_valid)
            fi = idx[fit_ok]
            go[fit_ok], shape[fit_ok] = self.fits.go[fi], self.fits.shape[fi]
            pose[fit_ok.nonzero()[:, :1], self.joint_index] = self.fits.pose[fi]
            w = w + fit_ok.to(go.dtype)
        return BodyParams(go, pose, shape, p.transl, p.expression), w

    def batch(self, step: int) -> TrainBatch:
        return self.make_batch(self.order.next(), step)

    def make_batch(self, idx: Tensor, step: int) -> TrainBatch:
        """The TrainBatch of the samples ``idx`` at ``step``."""
        d = self.data
        kp, k3, lab = self.evidence(idx, step)
        K = d.K[idx]
        inputs = crop_inputs(kp, K, CONVENTION, k3)
        B = len(idx)
        H, W = d.image_size
        half = 0.5 * inputs.size[:, None]
        evidence = Observation(body=kp, body_convention=CONVENTION, K=K,
                               image_size=torch.tensor([H, W]).expand(B, 2), bbox=torch.cat(
                                   [inputs.center - half, inputs.center + half], -1),
                               frame_index=torch.zeros(B, dtype=torch.long),
                               track_id=torch.full((B,), -1, dtype=torch.long), body3d=k3)
        # 2D: labelled samples against the exact projections, unlabelled ones against their detections
        dtype = self.body.dtype
        uv = d.uv[idx]
        inside = ((uv >= 0) & (uv < torch.tensor(d.image_size[::-1], dtype=dtype))).all(-1)
        kp2d = torch.where(lab[:, None, None], uv, kp[..., :2])
        conf = torch.where(lab[:, None], (inside & d.valid & d.slots(idx)).to(dtype), kp[..., 2])
        params, w = self.targets(idx, lab)
        return TrainBatch(indices=idx, inputs=inputs, evidence=evidence, kp2d=kp2d, kp2d_conf=conf,
                          kp3d=d.X[idx], kp3d_conf=d.valid.to(dtype).expand(B, -1), labelled=lab,
                          params=params, params_weight=w)

    # ------------------------------------------------------------------ losses
    def losses(self, model: SpinRegressor, b: TrainBatch, step: int):
        out = model(b.inputs)
        params = model.params(self.body, b.inputs, out)
        return self.supervised_losses(out, params, b), params

    def supervised_losses(self, out, params: BodyParams, b: TrainBatch) -> dict:
        """SPIN's losses of a head output (``HeadOutput``) and its BodyParams on ``b``:
        2D keypoints (each sample's convention), root-relative 3D keypoints (labelled),
        pose and shape against the targets (weighted), the camera prior; "loss" their
        weighted sum."""
        cfg = self.config
        inputs = b.inputs
        Xin, X = self.input_keypoints(params, b.indices)
        uv_pred = to_crop(project(Xin, inputs.K), inputs)
        l2d = (b.kp2d_conf[..., None] * (uv_pred - to_crop(b.kp2d, inputs)) ** 2).mean()
        # 3D keypoints: labelled only, root-relative
        l3d = ((root_relative(X) - root_relative(b.kp3d)) ** 2 * b.kp3d_conf[..., None]).sum(-1).mean(-1)
        l3d = (l3d * b.labelled).mean()
        t, w = b.params, b.params_weight
        lpose = (((out.global_orient - t.global_orient) ** 2).flatten(1).mean(-1)
                 + ((out.pose - t.pose[:, self.joint_index]) ** 2).flatten(1).mean(-1))
        lpose = (lpose * w).mean()
        lshape = ((out.shape - t.shape) ** 2).mean(-1)
        lshape = (lshape * w).mean()
        lcam = torch.exp(-10 * out.cam[:, 0].exp()).pow(2).mean()
        total = cfg.w_total * (cfg.w_kp2d * l2d + cfg.w_kp3d * l3d + cfg.w_pose * lpose + cfg.w_shape * lshape
                               + cfg.w_cam * lcam)
        return {"loss": total, "kp2d": l2d, "kp3d": l3d, "pose": lpose, "shape": lshape, "cam": lcam}

    # ------------------------------------------------------------------ the loop
    def after_step(self, model, b: TrainBatch, params: BodyParams, step: int) -> dict | None:
        """Every fit_every steps with the loop on: fit the batch's unlabelled samples from
        the regressor's estimate (before this step's update); store the better fits."""
        if not (self.config.loop and step % self.config.fit_every == 0):
            return None
        return self.run_fits(b, params.detach())

    def run_fits(self, b: TrainBatch, params: BodyParams) -> dict:
        idx, size = b.indices, b.inputs.size
        u = ~self.data.labelled[idx]
        if not u.any():
            return {}
        d = self.data
        conv = d.conventions_of(idx)
        replaced, errs = 0, []
        for k, name in enumerate(d.conventions):  # the fitter reads each sample in its own convention
            m = u & (conv == k)
            if not m.any():
                continue
            ui = idx[m]
            kp = b.evidence.body[m]
            if name != CONVENTION:
                kp = torch.as_tensor(C.convert_with_confidence(kp.numpy(), CONVENTION, name), dtype=kp.dtype)
            pred = self.fitter.fit(kp, name, b.evidence.K[m], init=params[m.nonzero()[:, 0]].detach(),
                                   kp3d=d.det3d[ui] if name == CONVENTION else None)
            err = pred.px_error / size[m]
            ok = pred.valid
            if self.config.fit_select == "agree":  # a depth flip fits the 2D as well; not the regressor's 3D
                ok = ok & (depth_flips(self.body, pred.params, params[m.nonzero()[:, 0]], self.config.fit_flip_z) == 0)
            err = torch.where(ok, err, torch.full_like(err, math.inf))
            p = pred.params
            replaced += int(self.fits.update(ui, p.global_orient, p.pose[:, self.joint_index], p.shape, err).sum())
            errs.append(err)
        err = torch.cat(errs)
        return {"fits": int(u.sum()), "fits replaced": replaced, "fit err": float(err[torch.isfinite(err)].mean())}

    # ------------------------------------------------------------------ bookkeeping
    def validate(self, model: SpinRegressor) -> dict:
        res = validate(model, self.body, self.val)
        if self.config.loop:
            res.update(self.fit_quality())
        return res

    def fit_quality(self, n: int = 512) -> dict:
        """Of the stored valid fits: how many, and their PA-MPJPE against the hidden truth."""
        from hmrkit.eval.metrics import pa_mpjpe

        good = torch.isfinite(self.fits.err) & (self.fits.err < self.config.fit_valid)
        real = self.data.is_real
        res = {"valid fits": int(good.sum()), "unlabelled": int((~self.data.labelled).sum())}
        if real.any():
            res["valid fits of real detections"] = int((good & real).sum())
            res["real detections"] = int(real.sum())
        ok = torch.nonzero(good & ~real)[:, 0]  # real ones have no truth to compare with
        if ok.numel() == 0:
            return res
        ok = ok[:n]
        gt = self.data.params[ok]
        pose = gt.pose.index_copy(1, self.joint_index, self.fits.pose[ok])
        fit = BodyParams(self.fits.go[ok], pose, self.fits.shape[ok], gt.transl, gt.expression)
        with torch.no_grad():
            a = _keypoints(self.body, fit, ("coco17",))["coco17"]
            b = _keypoints(self.body, gt, ("coco17",))["coco17"]
        res["fit PA-MPJPE"] = float(pa_mpjpe(a, b).mean())
        return res

    def state(self) -> dict:
        return {"fits": self.fits.state()}

    def load_state(self, state: dict) -> None:
        self.fits.load(state["fits"])

    def card(self, record: dict) -> dict:
        cfg = self.config
        return {"body": self.body.name, "batch": cfg.batch, "loop": cfg.loop, "data": asdict(cfg.data),
                "config": {k: v for k, v in asdict(cfg).items() if k not in ("data",)},
                "val": {k: v for k, v in record.items() if k.startswith("val") or "fit" in k},
                "real_detections": {"files": list(self.real_sources), "samples": int(self.data.is_real.sum())},
                "check": check_figure(self.model, self.body)}

    def export(self, model: SpinRegressor) -> dict:
        return model.checkpoint()


def spin_trainer(body, data: KeypointTrainSet, config: SpinTrainConfig, out_dir, real_sources=()) -> Trainer:
    """The shared ``Trainer`` running SPIN on ``data``."""
    return Trainer(SpinObjective(body, data, config, real_sources), config.trainer(), out_dir)


def train_spin(body, config: SpinTrainConfig, out_dir, resume: bool = False, progress_factory=None,
               real: tuple = ()) -> Path:
    """Build (or load) the training set, add the real detections of the ``hmrkit run``
    outputs ``real`` (npz files) as unlabelled samples, train, and write
    ``out_dir/spin_<body>.pt``."""
    from tqdm import tqdm

    from hmrkit.train.data import load_or_build

    out_dir = Path(out_dir)
    with tqdm(total=config.data.n, desc="training set", unit="sample", disable=None if progress_factory else True) as b:
        data = load_or_build(body, config.data, progress=b.update)
    if real:
        from hmrkit.train.data import read_real_detections, with_real_detections

        data = with_real_detections(data, body, *read_real_detections(real))
    trainer = spin_trainer(body, data, config, out_dir, real_sources=real)
    trainer.begin(resume)
    bar = progress_factory(config.steps, trainer.step) if progress_factory else None
    record = trainer.train(progress=tqdm_hook(bar) if bar is not None else None)
    if bar is not None:
        bar.close()
    return trainer.save_weights(out_dir / f"spin_{body.name}.pt", record)
