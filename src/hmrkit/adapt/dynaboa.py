"""DynaBOA: online adaptation of a regressor to the video it is reading (METHODS.md, seed 000).

``Adapted(base)`` is a stream estimator (``hmrkit.estimate.base``): ``step(obs)`` takes the
next frame of one track, adapts a private copy of the base regressor's network on it and
returns the adapted network's estimate; ``reset()`` puts the shipped weights back (the
schedulers give every track its own copy and reset it; the shipped file is never
written). Per frame, from the 2D evidence alone:

1. **Bilevel update.** The lower level probes: one SGD step on the frame's own losses
   (2D reprojection, pose prior, shape prior) gives temporary weights. The upper level
   evaluates, at those weights, the frame's losses plus the temporal ones -- a *motion*
   loss (the predicted 2D displacement of every keypoint between this frame and the one
   ``motion_gap`` frames back against the observed one) and a *teacher* loss (the
   estimate against that of an exponential moving average of the network) -- and, with
   exemplars, a supervised loss on 3D exemplars of the training set. Its gradient, first
   order as in MAML, updates the network's real weights (Adam); the teacher follows.
2. **3D exemplar guidance** (``hmrkit.adapt.exemplars``): the exemplars of the training
   feature cluster nearest (cosine) to the frame's feature.
3. **Dynamic steps.** After an update, while the frame's feature moved by more than
   ``dynamic_threshold`` (1 - cosine) in that update, another update, up to
   ``max_extra_steps``.

A frame is not learned from (the estimate is still returned) when it has too few confident
keypoints, when the *shipped* network's 2D error on it is over ``max_px_error`` of the
box side (evidence the body cannot explain; the shipped network's, so that an adapted
network gone wrong cannot lock itself out of learning), or when the box jumps from the
track's last learned frame by more than ``max_jump`` box sides per frame or changes size
by more than ``max_scale_jump`` (a wrong-person detection); ``skipped`` counts them.

The network: ``spin`` and ``pare`` adapt on single frames; ``maed`` on causal windows, the
window of up to ``window_size`` frames that ends at the current frame (online: nothing
after it exists yet), its last frame's estimate being the frame's.
"""

from __future__ import annotations

import copy
import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import Tensor

from hmrkit.body.priors import ShapePrior, load_pose_prior
from hmrkit.errors import InputError
from hmrkit.estimate.base import Timer, body_px_error, evidence_used
from hmrkit.geometry.camera import project
from hmrkit.models.hmr_head import HeadOutput
from hmrkit.models.inputs import INPUT_CONVENTION, CropInputs, crop_inputs, to_crop, to_input_convention
from hmrkit.types import BodyParams, Camera, Observation, Prediction

ADAPTABLE = ("spin", "pare", "maed")


@dataclass(frozen=True)
class AdaptConfig:
    """DynaBOA's values (METHODS.md, from the authors' code) except lr, max_extra_steps,
    w_exemplar and replay, tuned on the val streams (docs/dynaboa.md says why)."""

    lr: float = 2e-4  # upper level: Adam, betas (0.5, 0.9) (paper 3e-6)
    lr_probe: float = 8e-6  # lower level: plain SGD
    probe_steps: int = 1
    probe_every_update: bool = True  # False: only a frame's first update probes; its dynamic extra updates do not
    w_2d: float = 10.0
    w_shape_prior: float = 2e-6
    w_pose_prior: float = 1e-4
    w_exemplar: float = 0.02  # (paper 0.1)
    w_teacher: float = 0.1
    w_motion: float = 0.8
    motion_gap: int = 5  # r: the motion loss's frame, this many frames back
    teacher_keep: float = 0.1  # teacher = keep * teacher + (1 - keep) * network, after each update
    exemplars_per_step: int = 1
    replay: bool = True  # the upper level's 2D and prior terms also on the motion frame, r back (paper: no)
    replay_frames: int = 0  # and on this many older learned frames, drawn from the last replay_span (paper: no)
    replay_span: int = 120
    w_replay: float = 1.0  # the older frames' mean own loss, next to the current frame's
    dynamic_threshold: float = 3.1e-4  # 1 - cosine of the frame's feature before and after an update
    max_extra_steps: int = 1  # (paper 7): at most 2 updates a frame, for 5 fps on 2 cores
    # the ablations
    exemplars: bool = True
    teacher: bool = True
    dynamic: bool = True
    # which frames are learned from
    min_confidence: float = 0.2
    min_keypoints: int = 6
    max_px_error: float = 0.25  # x the box side: the network's 2D error before the update
    max_jump: float = 0.5  # box sides per frame between this frame's box centre and the last learned one's
    max_scale_jump: float = 1.5  # box side ratio to the last learned frame
    seed: int = 0  # the exemplar draws (per reset)


def _head_select(h: HeadOutput, idx) -> HeadOutput:
    return HeadOutput(h.global_orient[idx], h.pose[idx], h.shape[idx], h.cam[idx], tuple(s[idx] for s in h.states))


def _head_cat(hs: list) -> HeadOutput:
    return HeadOutput(torch.cat([h.global_orient for h in hs]), torch.cat([h.pose for h in hs]),
                      torch.cat([h.shape for h in hs]), torch.cat([h.cam for h in hs]), ())


def _inputs_select(x: CropInputs, idx) -> CropInputs:
    return CropInputs(x.kp[idx], None if x.kp3d is None else x.kp3d[idx], x.center[idx], x.size[idx], x.K[idx],
                      x.bbox_info[idx])


def _inputs_cat(xs: list) -> CropInputs:
    k3 = None if any(x.kp3d is None for x in xs) else torch.cat([x.kp3d for x in xs])
    return CropInputs(torch.cat([x.kp for x in xs]), k3, torch.cat([x.center for x in xs]),
                      torch.cat([x.size for x in xs]), torch.cat([x.K for x in xs]),
                      torch.cat([x.bbox_info for x in xs]))


class Network:
    """The adaptable part of a regressor estimator (spin, pare, maed): its network, how
    to build its inputs and how to run it on frames or causal windows, with any copy of
    the network (the teacher)."""

    def __init__(self, estimator):
        name = getattr(estimator, "name", "")
        if name not in ADAPTABLE:
            raise InputError(None, f"--adapt adapts a regressor ({', '.join(ADAPTABLE)}), not {name!r}")
        self.estimator = estimator
        self.name = name
        self.body = estimator.body
        self.module = estimator.model
        self.joint_index = list(self.module.joint_index)
        self.window = int(getattr(estimator, "window_size", 0) or 0) if name == "maed" else 0

    def inputs(self, obs: Observation) -> CropInputs:
        return self.estimator.crop_inputs(obs)

    def exemplar_inputs(self, kp: Tensor, K: Tensor, image_size: tuple) -> CropInputs:
        dtype = self.body.dtype
        wh = torch.tensor([image_size[1], image_size[0]], dtype=dtype).expand(kp.shape[0], 2)
        return crop_inputs(kp.to(dtype), K.to(dtype), INPUT_CONVENTION, None, 0.2, image_wh=wh)

    def encode_frames(self, module, inputs: CropInputs, obs: Optional[Observation] = None) -> tuple:
        """Independent frames (B,) -> (pooled features (B, D), HeadOutput (B,))."""
        if self.name == "maed":
            f, head = module.encode(inputs, 1)
            return f.pooled, head
        f, head = self.estimator.encode(inputs, obs, model=module)  # no obs (an exemplar): no person mask
        return f.pooled, head

    def encode_ending(self, module, frames: list) -> tuple:
        """The estimate of the last frame of each of ``frames`` (a list of runs of consecutive
        single-frame Observations of one track; one run per requested frame): (pooled
        features (R, D), HeadOutput (R,), CropInputs (R,) of those last frames)."""
        if not self.window:
            obs = Observation.cat([run[-1] for run in frames])
            inputs = self.inputs(obs)
            f, head = self.encode_frames(module, inputs, obs)
            return f, head, inputs
        runs = [run[-self.window:] for run in frames]
        out = [None] * len(runs)
        for n in sorted({len(r) for r in runs}):  # windows of one length in one call
            which = [i for i, r in enumerate(runs) if len(r) == n]
            obs = Observation.cat([o for i in which for o in runs[i]])
            inputs = self.inputs(obs)
            f, head = module.encode(inputs, n)
            for j, i in enumerate(which):
                last = [j * n + n - 1]
                out[i] = (f.pooled[last], _head_select(head, last), _inputs_select(inputs, last))
        return (torch.cat([o[0] for o in out]), _head_cat([o[1] for o in out]),
                _inputs_cat([o[2] for o in out]))

    def params(self, inputs: CropInputs, head: HeadOutput) -> BodyParams:
        return self.module.params(self.body, inputs, head)


class Adapted:
    """``NAME+adapt``: the base regressor adapted online to each track (a stream estimator;
    ``predict`` on independent frames is the base's, unadapted: a photo is no stream)."""

    def __init__(self, base, config: AdaptConfig = AdaptConfig(), bank=None):
        self.base = base
        self.config = config
        self.net = Network(base)
        self.body = base.body
        self.name = f"{base.name}+adapt"
        self.evidence = evidence_used(base)
        if config.exemplars and bank is None:
            from hmrkit.adapt.exemplars import load_bank
            from hmrkit.models.weights import state_fingerprint

            bank = load_bank(base.name, self.body, state_fingerprint(self.net.module.state_dict()))
        self.bank = bank if config.exemplars else None
        self.shipped = copy.deepcopy(self.net.module.state_dict())
        self.teacher = copy.deepcopy(self.net.module)
        self.source = copy.deepcopy(self.net.module).eval()  # the shipped network, never updated
        for p in list(self.teacher.parameters()) + list(self.source.parameters()):
            p.requires_grad_(False)
        self.pose_prior = load_pose_prior(self.body)
        self.shape_prior = ShapePrior.for_body(self.body)
        self.valid_kp = self.body.keypoint_valid(INPUT_CONVENTION).bool()
        # diagnostics over every track this copy has seen (reset() keeps them)
        self.frames, self.updates, self.skipped = 0, 0, Counter()
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """The shipped weights, a fresh optimiser and teacher, no history."""
        c = self.config
        m = self.net.module
        m.load_state_dict(self.shipped)
        m.eval()  # no dropout: an update must see the network that predicts
        self.teacher.load_state_dict(self.shipped)
        self.teacher.eval()
        self.params_list = [p for p in m.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params_list, lr=c.lr, betas=(0.5, 0.9))
        self.history: OrderedDict = OrderedDict()  # frame index -> Observation (1,), the frames that may be learned from
        self.last_learned = None  # (frame index, box centre (2,), side)
        self.past: deque = deque(maxlen=max(1, c.replay_span))  # (frame index, run) of the last learned frames
        self.generator = torch.Generator().manual_seed(c.seed)

    def predict(self, obs: Observation, init: Optional[BodyParams] = None) -> Prediction:
        return replace(self.base.predict(obs, init), method=self.name)

    # ------------------------------------------------------------------ losses
    def _frame_terms(self, inputs: CropInputs, head: HeadOutput, extra: Optional[BodyParams] = None) -> dict:
        """Per-frame (R,) 2D and prior terms, and the projections (R, 33, 2) px; with
        ``extra`` params (the exemplars'), their keypoints too ("extra X"), in the same
        body-model call."""
        params = self.net.params(inputs, head)
        R = params.batch_size
        both = params if extra is None else BodyParams.cat([params, extra])
        X_all = self.body.forward_keypoints(both, (INPUT_CONVENTION,))[INPUT_CONVENTION]
        X = X_all[:R]
        uv = project(X, inputs.K.to(X.dtype))
        conf = inputs.kp[..., 2] * self.valid_kp.to(X.dtype)
        l2d = (conf[..., None] * (to_crop(uv, inputs) - inputs.kp[..., :2]) ** 2).mean((1, 2))
        pose = self.pose_prior(head.pose) if self.pose_prior is not None else l2d.new_zeros(l2d.shape)
        shape = self.shape_prior(head.shape)
        return {"2d": l2d, "pose": pose, "shape": shape, "uv": uv, "conf": conf, "extra X": X_all[R:]}

    def _own_loss(self, terms: dict, i: int = 0) -> Tensor:
        c = self.config
        return c.w_2d * terms["2d"][i] + c.w_pose_prior * terms["pose"][i] + c.w_shape_prior * terms["shape"][i]

    def _motion_loss(self, inputs: CropInputs, terms: dict) -> Tensor:
        """Frame 0 (now) against frame 1 (motion_gap back): predicted vs observed 2D motion,
        in the current box's half side."""
        obs_px = inputs.kp[..., :2] * (0.5 * inputs.size[:, None, None]) + inputs.center[:, None]
        d_pred = terms["uv"][0] - terms["uv"][1]
        d_obs = obs_px[0] - obs_px[1]
        w = terms["conf"][0] * terms["conf"][1]
        return (w[:, None] * ((d_pred - d_obs) / (0.5 * inputs.size[0])) ** 2).mean()

    def _teacher_loss(self, head: HeadOutput, teacher: HeadOutput) -> Tensor:
        return (((head.global_orient[:1] - teacher.global_orient) ** 2).mean() + ((head.pose[:1] - teacher.pose) ** 2).mean()
                + ((head.shape[:1] - teacher.shape) ** 2).mean())

    def _exemplar_head(self, idx: Tensor) -> tuple:
        """(CropInputs, HeadOutput, BodyParams) of the network on exemplars ``idx``."""
        b = self.bank
        inputs = self.net.exemplar_inputs(b.kp[idx], b.K[idx], b.image_size)
        _, head = self.net.encode_frames(self.net.module, inputs)
        return inputs, head, self.net.params(inputs, head)

    def _exemplar_loss(self, idx: Tensor, inputs: CropInputs, head: HeadOutput, X: Tensor) -> Tensor:
        """SPIN's supervised losses on exemplars ``idx`` (the network's head output and
        mediapipe33 keypoints X on them): 2D against their exact projections, root-relative
        3D keypoints, pose and shape (SPIN's relative weights)."""
        from hmrkit.train.data import root_relative

        b = self.bank
        uv_true = project(b.X[idx].to(X.dtype), inputs.K)
        conf = self.valid_kp.to(X.dtype).expand(len(idx), -1)
        l2d = (conf[..., None] * (to_crop(project(X, inputs.K), inputs) - to_crop(uv_true, inputs)) ** 2).mean()
        l3d = ((root_relative(X) - root_relative(b.X[idx].to(X.dtype))) ** 2).sum(-1).mean()
        lpose = ((head.global_orient - b.global_orient[idx]) ** 2).mean() + ((head.pose - b.pose[idx]) ** 2).mean()
        lshape = ((head.shape - b.shape[idx]) ** 2).mean()
        return 5.0 * l2d + 5.0 * l3d + lpose + 0.001 / 0.2 ** 2 * lshape

    # ------------------------------------------------------------------ the update
    def _runs(self, frames: list) -> list:
        """For each frame index: the run of consecutive history frames ending at it."""
        out = []
        for fi in frames:
            run = [self.history[fi]]
            j = fi - 1
            while self.net.window and j in self.history and len(run) < self.net.window:
                run.insert(0, self.history[j])
                j -= 1
            out.append(run)
        return out

    def _bilevel(self, fi: int, feat_before: Tensor, probe: bool = True) -> tuple:
        """One bilevel update on frame ``fi`` (``probe`` False: the upper level alone, at
        the current weights); returns the network's (feature, HeadOutput, CropInputs) on
        the frame after it."""
        c = self.config
        m = self.net.module
        ps = self.params_list
        # lower level: a probe step on the frame's own losses
        saved = [p.detach().clone() for p in ps]
        for _ in range(max(0, c.probe_steps) if probe else 0):
            _, head, inputs = self.net.encode_ending(m, self._runs([fi]))
            loss = self._own_loss(self._frame_terms(inputs, head))
            grads = torch.autograd.grad(loss, ps, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(ps, grads):
                    if g is not None:
                        p.sub_(c.lr_probe * g)
        # upper level, at the probed weights
        back = fi - c.motion_gap
        frames = [fi] + ([back] if back in self.history else [])
        runs = self._runs(frames)
        older = [run for f, run in self.past if f < back] if c.replay_frames else []
        if older:
            pick = torch.randperm(len(older), generator=self.generator)[:c.replay_frames]
            runs = runs + [older[int(i)] for i in pick]
        _, head, inputs = self.net.encode_ending(m, runs)
        ex = None
        if self.bank is not None and c.w_exemplar:
            idx = self.bank.draw(self.bank.nearest(feat_before), c.exemplars_per_step, self.generator)
            ex = self._exemplar_head(idx)
        terms = self._frame_terms(inputs, head, None if ex is None else ex[2])
        loss = self._own_loss(terms)
        if c.replay and len(frames) > 1:
            loss = 0.5 * (loss + self._own_loss(terms, 1))
        if len(runs) > len(frames) and c.w_replay:
            loss = loss + c.w_replay * torch.stack([self._own_loss(terms, i)
                                                    for i in range(len(frames), len(runs))]).mean()
        if len(frames) > 1 and c.w_motion:
            loss = loss + c.w_motion * self._motion_loss(inputs, terms)
        if c.teacher and c.w_teacher:
            with torch.no_grad():
                _, th, _ = self.net.encode_ending(self.teacher, self._runs([fi]))
            loss = loss + c.w_teacher * self._teacher_loss(head, th)
        if ex is not None:
            loss = loss + c.w_exemplar * self._exemplar_loss(idx, ex[0], ex[1], terms["extra X"])
        grads = torch.autograd.grad(loss, ps, allow_unused=True)
        with torch.no_grad():  # first order: the probed weights' gradient updates the real ones
            for p, s, g in zip(ps, saved, grads):
                p.copy_(s)
                p.grad = None if g is None else g.detach()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            k = c.teacher_keep
            for t, p in zip(self.teacher.parameters(), m.parameters()):
                t.mul_(k).add_(p.detach(), alpha=1 - k)
        self.updates += 1
        with torch.no_grad():
            return self.net.encode_ending(m, self._runs([fi]))

    def _why_not_learn(self, obs: Observation, inputs: CropInputs, source_err: float, valid: bool) -> Optional[str]:
        c = self.config
        if not valid:
            return "too few confident keypoints"
        side = float(inputs.size[0])
        if not math.isfinite(source_err) or source_err > c.max_px_error * side:
            return "2D error over max_px_error"
        if self.last_learned is not None:
            lf, centre, lside = self.last_learned
            gap = max(1, int(obs.frame_index[0]) - lf)
            if float((inputs.center[0] - centre).norm()) > c.max_jump * gap * max(side, lside):
                return "box jumped"
            ratio = max(side, lside) / max(1e-6, min(side, lside))
            if ratio > c.max_scale_jump ** min(gap, 4):
                return "box size jumped"
        return None

    # ------------------------------------------------------------------ the stream
    def step(self, obs: Observation) -> Prediction:
        """The next frame (1,) of the current track -> the adapted estimate (1,)."""
        obs = obs.flatten()
        if obs.batch_size != 1:
            raise ValueError(f"{self.name}.step: one frame at a time, got {obs.batch_size}")
        c = self.config
        timings: dict = {}
        fi = int(obs.frame_index[0])
        self.frames += 1
        if self.history and fi <= next(reversed(self.history)):
            raise ValueError(f"{self.name}.step: frame {fi} after frame {next(reversed(self.history))}: "
                             "frames must come in order (reset() between tracks)")
        self.history[fi] = obs
        keep = max(c.motion_gap, self.net.window) + self.net.window + 1
        while len(self.history) > keep or (self.history and next(iter(self.history)) < fi - keep):
            self.history.popitem(last=False)
        m = self.net.module
        with Timer(timings, "regress"), torch.no_grad():
            feat, head, inputs = self.net.encode_ending(m, self._runs([fi]))
            params = self.net.params(inputs, head)
        kp, _ = to_input_convention(obs.body.to(params.transl.dtype), obs.body_convention)
        flat = replace(obs, body=kp, body_convention=INPUT_CONVENTION, body3d=None)
        valid = bool((kp[0, :, 2] >= c.min_confidence).sum() >= c.min_keypoints)
        src_err = math.nan
        if valid:
            with torch.no_grad():
                _, sh, _ = self.net.encode_ending(self.source, self._runs([fi]))
                src_err = float(body_px_error(self.body, self.net.params(inputs, sh), flat, c.min_confidence)[0])
        why = self._why_not_learn(obs, inputs, src_err, valid)
        if why is not None:
            self.skipped[why] += 1
            del self.history[fi]  # never a motion-loss or window frame later
        else:
            with Timer(timings, "adapt"):
                before = feat
                for k in range(1 + (c.max_extra_steps if c.dynamic else 0)):
                    after, head, inputs = self._bilevel(fi, before, probe=k == 0 or c.probe_every_update)
                    moved = 1 - float(torch.nn.functional.cosine_similarity(before, after, dim=-1)[0])
                    before = after
                    if moved <= c.dynamic_threshold:
                        break
                with torch.no_grad():
                    params = self.net.params(inputs, head)
            self.last_learned = (fi, inputs.center[0].detach().clone(), float(inputs.size[0]))
            if c.replay_frames:
                self.past.append((fi, self._runs([fi])[0]))
        err = float(body_px_error(self.body, params, flat, c.min_confidence)[0]) if valid else math.nan
        px = torch.tensor([err if valid else math.nan], dtype=params.transl.dtype)
        return Prediction(params=params.detach(), camera=Camera(K=obs.K.to(params.transl.dtype)),
                          valid=torch.tensor([valid]), px_error=px, method=self.name, timings=timings,
                          features=None)
