"""SPIN training: the regressor supervised by its own fits (model fitting in the loop).

Each step takes a batch of the training set (``hmrkit.train.data``). Labelled samples
supervise the regressor with their ground truth: 2D and 3D keypoints, pose and shape.
Unlabelled samples only have their detections: they give a 2D keypoint loss, and with the
loop on, every ``fit_every`` steps the ``Fitter`` is initialised with the regressor's
current estimate of them and fitted to their detections; a per-sample fit is stored and
replaced only by one with a lower 2D error, and stored fits whose error is below
``fit_valid`` supervise the regressor's pose and shape as ground truth would (SPIN).
With the loop off, the same data trains the regressor with no fits (the ablation).

Loss weights follow SPIN's code (keypoints 5, pose 1, shape 0.001, camera prior
exp(-10 s)^2, all x 60); the shape weight is divided by 0.2^2 for Anny, whose phenotypes
spread about 0.2 where SPIN's betas spread 1.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from hmrkit.data.synthetic import NoiseConfig, SceneConfig, add_noise, sample_scenes
from hmrkit.fit import FitConfig, Fitter
from hmrkit.geometry.camera import project
from hmrkit.models.encoders import EncoderConfig
from hmrkit.models.hmr_head import HeadConfig
from hmrkit.models.inputs import crop_inputs, to_crop
from hmrkit.models.spin import SpinRegressor
from hmrkit.train.data import CONVENTION, KeypointTrainSet, TrainSetConfig, root_relative, world_landmarks
from hmrkit.types import BodyParams


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


def validation_set(body, n: int, seed: int = 9001):
    """A fixed validation set (headings within +-60 degrees, realistic noise, no 3D input),
    drawn like the synthetic test sets but from another seed."""
    from hmrkit.data.synthetic import keypoints2d

    scenes = sample_scenes(body, n, seed=seed, config=SceneConfig(yaw_deg=60))
    kp = keypoints2d(body, scenes, CONVENTION, NoiseConfig.realistic(), seed=seed + 1)
    with torch.no_grad():
        gt = _keypoints(body, scenes.params, ("coco17",))["coco17"]
    return scenes, kp, gt


@torch.no_grad()
def validate(model: SpinRegressor, body, val) -> dict:
    from hmrkit.eval.metrics import mpjpe, pa_mpjpe, pelvis_indices

    scenes, kp, gt = val
    was = model.training
    model.eval()
    preds = []
    for s in range(0, kp.shape[0], 128):
        inputs = crop_inputs(kp[s:s + 128], scenes.K[s:s + 128], CONVENTION)
        preds.append(_keypoints(body, model.params(body, inputs), ("coco17",))["coco17"])
    model.train(was)
    pred = torch.cat(preds)
    return {"val MPJPE": float(mpjpe(pred, gt, pelvis_indices("coco17")).mean()),
            "val PA-MPJPE": float(pa_mpjpe(pred, gt).mean())}


CHECK_SET = {"n": 64, "seed": 9001}  # the card's regression check: validation_set(body, **CHECK_SET)


def check_figure(model: SpinRegressor, body) -> dict:
    """The card's regression figure: the regressor's PA-MPJPE and MPJPE (mm, coco17) on
    the small fixed set CHECK_SET; tests/test_spin_weights.py recomputes it."""
    res = validate(model, body, validation_set(body, **CHECK_SET))
    return {"set": f"validation_set(n={CHECK_SET['n']}, seed={CHECK_SET['seed']})",
            "PA-MPJPE": round(res["val PA-MPJPE"], 2), "MPJPE": round(res["val MPJPE"], 2)}


class SpinTrainer:
    def __init__(self, body, data: KeypointTrainSet, config: SpinTrainConfig, out_dir: Path):
        self.body, self.data, self.config = body, data, config
        self.out_dir = Path(out_dir)
        torch.manual_seed(config.seed)
        self.model = SpinRegressor(body, config.encoder, config.head).to(body.dtype)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(s, config.steps) / config.steps)))
        self.batches = torch.Generator().manual_seed(config.seed + 17)
        self.fits = FitStore(len(data), len(self.model.joint_index), body.num_shape, body.dtype)
        self.fitter = Fitter(body, FitConfig(camera_iters=2 * config.fit_camera_iters, body_iters=config.fit_body_iters,
                                             detail_iters=0, yaw_hypotheses=1, fit_hands=False, fit_face=False))
        self.step = 0
        self.elapsed = 0.0
        self.val = validation_set(body, config.val_n)
        self.joint_index = torch.tensor(self.model.joint_index)
        self._order = torch.empty(0, dtype=torch.long)

    # ------------------------------------------------------------------ batches
    def next_indices(self) -> Tensor:
        B = self.config.batch
        if self._order.numel() < B:
            self._order = torch.cat([self._order, torch.randperm(len(self.data), generator=self.batches)])
        idx, self._order = self._order[:B], self._order[B:]
        return idx

    def inputs(self, idx: Tensor):
        """Evidence of the batch: labelled samples get fresh detector noise each step (an
        augmentation); unlabelled ones keep their fixed detections. 3D keypoints are given
        with probability p_world3d per sample."""
        d, cfg = self.data, self.config
        lab = d.labelled[idx]
        kp = d.det[idx].clone()
        k3 = d.det3d[idx].clone()
        if lab.any():
            li = idx[lab]
            seed = cfg.seed * 1_000_003 + self.step
            kp[lab] = add_noise(d.X[li], d.uv[li], d.valid, CONVENTION, d.image_size, NoiseConfig.realistic(), seed=seed)
            g = torch.Generator().manual_seed(seed)
            k3[lab] = world_landmarks(d.X[li], kp[lab][..., 2], cfg.data.world3d_sigma, g)
        g = torch.Generator().manual_seed(cfg.seed * 7 + self.step)
        give = torch.rand(len(idx), generator=g) < cfg.p_world3d
        k3 = k3 * give[:, None, None]
        return kp, k3, lab

    # ------------------------------------------------------------------ the loop
    def run_fits(self, idx: Tensor, kp: Tensor, k3: Tensor, params: BodyParams, size: Tensor) -> dict:
        """Fit the batch's unlabelled samples from the regressor's estimate; store better fits."""
        u = ~self.data.labelled[idx]
        if not u.any():
            return {}
        ui = idx[u]
        pred = self.fitter.fit(kp[u], CONVENTION, self.data.K[ui], init=params[u.nonzero()[:, 0]].detach(),
                               kp3d=self.data.det3d[ui])
        err = pred.info["mean_px_error"] / size[u]
        err = torch.where(pred.valid, err, torch.full_like(err, math.inf))
        p = pred.params
        better = self.fits.update(ui, p.global_orient, p.pose[:, self.joint_index], p.shape, err)
        return {"fits": int(u.sum()), "fits replaced": int(better.sum()), "fit err": float(err[torch.isfinite(err)].mean())}

    def targets(self, idx: Tensor, lab: Tensor):
        """Pose/shape targets and their weights: ground truth for labelled samples, valid
        stored fits for unlabelled ones when the loop is on."""
        d = self.data
        go = d.params.global_orient[idx].clone()
        pose = d.params.pose[idx][:, self.joint_index].clone()
        shape = d.params.shape[idx].clone()
        w = lab.to(go.dtype)
        if self.config.loop:
            fit_ok = (~lab) & (self.fits.err[idx] < self.config.fit_valid)
            go[fit_ok], pose[fit_ok], shape[fit_ok] = self.fits.go[idx[fit_ok]], self.fits.pose[idx[fit_ok]], \
                self.fits.shape[idx[fit_ok]]
            w = w + fit_ok.to(go.dtype)
        return go, pose, shape, w

    def losses(self, idx: Tensor, kp: Tensor, k3: Tensor, lab: Tensor):
        cfg, d = self.config, self.data
        K = d.K[idx]
        inputs = crop_inputs(kp, K, CONVENTION, k3)
        out = self.model(inputs)
        params = self.model.params(self.body, inputs, out)
        X = _keypoints(self.body, params, (CONVENTION,))[CONVENTION]
        # 2D: labelled samples against the exact projections, unlabelled ones against their detections
        uv_pred = to_crop(project(X, K), inputs)
        inside = ((d.uv[idx] >= 0) & (d.uv[idx] < torch.tensor(d.image_size[::-1], dtype=X.dtype))).all(-1)
        tgt_px = torch.where(lab[:, None, None], d.uv[idx], kp[..., :2])
        conf = torch.where(lab[:, None], (inside & d.valid).to(X.dtype), kp[..., 2])
        tgt = to_crop(tgt_px, inputs)
        l2d = (conf[..., None] * (uv_pred - tgt) ** 2).mean()
        # 3D keypoints: labelled only, root-relative
        l3d = ((root_relative(X) - root_relative(d.X[idx])) ** 2 * d.valid[:, None]).sum(-1).mean(-1)
        l3d = (l3d * lab).mean()
        go, pose, shape, w = self.targets(idx, lab)
        lpose = (((out.global_orient - go) ** 2).flatten(1).mean(-1) + ((out.pose - pose) ** 2).flatten(1).mean(-1))
        lpose = (lpose * w).mean()
        lshape = ((out.shape - shape) ** 2).mean(-1)
        lshape = (lshape * w).mean()
        lcam = torch.exp(-10 * out.cam[:, 0].exp()).pow(2).mean()
        total = cfg.w_total * (cfg.w_kp2d * l2d + cfg.w_kp3d * l3d + cfg.w_pose * lpose + cfg.w_shape * lshape
                               + cfg.w_cam * lcam)
        parts = {"loss": total, "kp2d": l2d, "kp3d": l3d, "pose": lpose, "shape": lshape, "cam": lcam}
        return total, parts, params, inputs

    def train_step(self) -> dict:
        idx = self.next_indices()
        kp, k3, lab = self.inputs(idx)
        self.model.train()
        total, parts, params, inputs = self.losses(idx, kp, k3, lab)
        self.opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.opt.step()
        self.sched.step()
        log = {k: float(v.detach()) for k, v in parts.items()}
        if self.config.loop and self.step % self.config.fit_every == 0:
            log.update(self.run_fits(idx, kp, k3, params.detach(), inputs.size))
        self.step += 1
        return log

    # ------------------------------------------------------------------ bookkeeping
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

    def save(self, path: Path) -> None:
        from hmrkit.io.atomic import atomic_write

        state = {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                 "step": self.step, "elapsed": self.elapsed, "fits": self.fits.state(),
                 "batches": self.batches.get_state(), "order": self._order, "rng": torch.get_rng_state(),
                 "config": repr(self.config)}
        with atomic_write(path) as f:
            torch.save(state, f)

    def load(self, path: Path) -> None:
        state = torch.load(path, weights_only=False)
        if state["config"] != repr(self.config):
            from hmrkit.errors import InputError

            raise InputError(path, "saved with another configuration; resume with the same flags or start a new run")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.fits.load(state["fits"])
        self.batches.set_state(state["batches"])
        self._order = state["order"]
        torch.set_rng_state(state["rng"])

    def train(self, progress=None, log_path: Path | None = None, stop_at: int | None = None) -> dict:
        """Train to config.steps (from where a resumed run stopped; or stop early at step
        ``stop_at``); validate, log and checkpoint every val_every steps. Returns the last
        log record."""
        cfg = self.config
        log_path = log_path or self.out_dir / "log.jsonl"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        acc, n_acc, record = {}, 0, {}
        t0 = time.perf_counter() - self.elapsed
        while self.step < min(cfg.steps, stop_at or cfg.steps):
            log = self.train_step()
            for k, v in log.items():
                acc[k] = acc.get(k, 0.0) + v
            n_acc += 1
            if progress is not None:
                progress(log)
            if self.step % cfg.val_every == 0 or self.step in (cfg.steps, stop_at):
                self.elapsed = time.perf_counter() - t0
                record = {"step": self.step, "time_s": round(self.elapsed, 1),
                          "lr": self.sched.get_last_lr()[0]}
                record.update({f"train {k}": v / max(1, n_acc) for k, v in acc.items()})
                record.update(validate(self.model, self.body, self.val))
                if cfg.loop:
                    record.update(self.fit_quality())
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                self.save(self.out_dir / "last.pt")
                acc, n_acc = {}, 0
        return record

    def card(self, record: dict) -> dict:
        cfg = self.config
        return {"method": "spin", "body": self.body.name, "seed": cfg.seed, "steps": cfg.steps, "batch": cfg.batch,
                "loop": cfg.loop, "train_time_s": round(self.elapsed, 1), "torch": str(torch.__version__),
                "threads": torch.get_num_threads(), "data": asdict(cfg.data),
                "config": {k: v for k, v in asdict(cfg).items() if k not in ("data",)},
                "val": {k: v for k, v in record.items() if k.startswith("val") or "fit" in k},
                "real_detections": {"files": getattr(self, "real_sources", []), "samples": int(self.data.is_real.sum())},
                "check": check_figure(self.model, self.body)}


def train_spin(body, config: SpinTrainConfig, out_dir, resume: bool = False, progress_factory=None,
               real: tuple = ()) -> Path:
    """Build (or load) the training set, add the real detections of the ``hmrkit run``
    outputs ``real`` (npz files) as unlabelled samples, train, and write
    ``out_dir/spin_<body>.pt``."""
    from hmrkit.train.data import load_or_build

    out_dir = Path(out_dir)
    from tqdm import tqdm

    with tqdm(total=config.data.n, desc="training set", unit="sample", disable=None if progress_factory else True) as b:
        data = load_or_build(body, config.data, progress=b.update)
    if real:
        from hmrkit.train.data import read_real_detections, with_real_detections

        data = with_real_detections(data, body, *read_real_detections(real))
    trainer = SpinTrainer(body, data, config, out_dir)
    trainer.real_sources = [str(p) for p in real]
    last = out_dir / "last.pt"
    if resume and last.exists():
        trainer.load(last)
    elif (out_dir / "log.jsonl").exists() and not resume:
        (out_dir / "log.jsonl").unlink()
    bar = progress_factory(config.steps, trainer.step) if progress_factory else None
    record = trainer.train(progress=(lambda log: bar.update(1) if bar else None))
    if bar is not None:
        bar.close()
    weights = out_dir / f"spin_{body.name}.pt"
    from hmrkit.io.atomic import atomic_write

    with atomic_write(weights) as f:
        torch.save(trainer.model.checkpoint(trainer.card(record)), f)
    return weights
