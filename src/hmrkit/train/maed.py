"""MAED training: windows of synthetic video through the shared trainer.

The data (``build_video_set``): the train split's mocap clips retargeted at 30 fps
(``scripts/build_sequences.py --train-library``), each placed in front of several moving
cameras (``hmrkit.data.sequences.sample_sequence``: orbit, dolly, pan to follow, and a
handheld shake), half of them mirrored, bodies over all phenotypes, cut into windows of
``window`` frames; per window one input convention (MediaPipe 33, COCO-17 or OpenPose
BODY_25, placed in the input layout as a user's keypoints are). The exact keypoints are
built once; the detector noise is drawn fresh every step, correlated over the window's
frames (``temporal_noise``: ``hmrkit.data.synthetic.add_temporal_noise``, calibrated
against MediaPipe in video mode) or independent per frame (``temporal_noise=False``).

Losses (MAED's code, in SPIN's units: 2D 300 = 60 x 5, 3D 600 = 60 x 10, pose 60, shape
0.06, divided by 0.2^2 for Anny's phenotype scale as SPIN's), the camera prior, and
optionally an acceleration term on the root-relative 3D keypoints (``w_accel``).
Validation: windows of the *val* split's sequences (salsa, modern dance) with realistic
noise: PA-MPJPE and MPJPE (coco17, mm) and the acceleration error (mm/frame^2).

Single images (``image_batch`` > 0): each step also takes that many people of SPIN's
training set (``hmrkit.train.data``, the same synthetic people, augmentations and fresh
detector noise as ``hmrkit train spin``) as windows of one frame, with SPIN's losses at
MAED's weights, added to the video loss. MAED's authors train on image data sets next to
the videos for the same reason: the mocap clips hold far fewer distinct poses than the
pose library with its augmentations.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import roma
import torch
from torch import Tensor

from hmrkit.data.synthetic import NoiseConfig, add_noise, input_layout
from hmrkit.geometry.camera import project
from hmrkit.models.inputs import INPUT_CONVENTION, CropInputs, crop_inputs, to_crop
from hmrkit.models.maed import MaedConfig, MaedRegressor
from hmrkit.train.data import TrainSetConfig, cache_dir, root_relative, world_landmarks
from hmrkit.train.trainer import Objective, TrainContext, Trainer, TrainerConfig, tqdm_hook
from hmrkit.types import BodyParams

VIDEO_SET_VERSION = 1
CONVENTIONS = ("mediapipe33", "coco17", "openpose25")


@dataclass(frozen=True)
class VideoSetConfig:
    draws: int = 6  # cameras (and bodies) per clip
    window: int = 16
    seed: int = 0
    mirror: float = 0.5  # fraction of draws mirrored left/right
    shake_deg: tuple = (0.0, 1.0)
    conventions: tuple = CONVENTIONS
    max_retarget_mm: float = 50.0  # clips retargeted worse than this are left out (hanging, climbing)

    def key(self, library: str) -> str:
        text = json.dumps(asdict(self), sort_keys=True) + library + f"v{VIDEO_SET_VERSION}"
        return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class VideoSet:
    """N windows of T frames: go (N, T, 3, 3), pose (N, T, J, 3, 3) of the regressed joints,
    shape (N, S), transl (N, T, 3), K (N, 3, 3), X (N, T, 33, 3) exact mediapipe33 (3D
    labels), Xin (N, T, 33, 3) the window's convention in the input layout, present
    (N, 33) its slots, convention (N,) index into ``conventions``, valid (33,)."""

    go: Tensor
    pose: Tensor
    shape: Tensor
    transl: Tensor
    K: Tensor
    X: Tensor
    Xin: Tensor
    present: Tensor
    convention: Tensor
    valid: Tensor
    image_size: tuple
    conventions: tuple

    def __len__(self) -> int:
        return self.go.shape[0]


def mirrored_library(body, lib):
    """The sequence library mirrored left/right (x -> -x in the mocap world): rotations
    R -> M R M with M = diag(-1, 1, 1), i.e. axis-angle (x, y, z) -> (x, -y, -z), and the
    left and right joints exchanged."""
    from dataclasses import replace

    names = list(lib.joint_names)

    def other(n):
        return n.replace("left", "#").replace("right", "left").replace("#", "right")

    perm = [names.index(other(n)) for n in names]
    flip = np.array([1.0, -1.0, -1.0], np.float32)
    return replace(lib, body_pose_aa=lib.body_pose_aa[:, :, perm] * flip, global_orient_aa=lib.global_orient_aa * flip,
                   transl=lib.transl * np.array([-1.0, 1.0, 1.0], np.float32),
                   source=tuple(s + ":mirrored" for s in lib.source))


def build_video_set(body, lib, config: VideoSetConfig = VideoSetConfig(), progress=None) -> VideoSet:
    from hmrkit.body.priors import body_joint_indices
    from hmrkit.data.sequences import SequenceCameraConfig, sample_sequence

    cam = SequenceCameraConfig(shake_deg=config.shake_deg)
    mir = mirrored_library(body, lib)
    jidx = torch.tensor(body_joint_indices(body))
    g = np.random.default_rng(np.random.SeedSequence([config.seed, 0x7AED]))
    T = config.window
    out = {k: [] for k in ("go", "pose", "shape", "transl", "K", "X", "Xin", "present", "convention")}
    valid = body.keypoint_valid(INPUT_CONVENTION).bool()
    for c in range(len(lib)):
        if float(lib.retarget_error_mm[c]) > config.max_retarget_mm:
            continue
        for d in range(config.draws):
            src = mir if g.random() < config.mirror else lib
            seed = int(g.integers(0, 2 ** 31))
            seq = sample_sequence(body, c, seed=seed, config=cam, shape="random", conventions=(), library=src)
            L = seq.num_frames
            off = int(g.integers(0, T))
            starts = list(range(off, L - T + 1, T))
            if not starts:
                continue
            idx = torch.tensor([s + i for s in starts for i in range(T)])
            p = seq.params[idx]
            with torch.no_grad():
                kps = body.forward_keypoints(p, ("mediapipe33", "coco17"))
            n = len(starts)
            conv = torch.as_tensor(g.integers(0, len(config.conventions), n))
            Xin = kps["mediapipe33"].clone()
            present = torch.ones(n, len(valid), dtype=torch.bool)
            for k, name in enumerate(config.conventions):
                if name == INPUT_CONVENTION or not bool((conv == k).any()):
                    continue
                Y, slots = input_layout(body, kps, name)
                sel = (conv == k).repeat_interleave(T)
                Xin[sel] = Y[sel].to(Xin.dtype)
                present[conv == k] = slots
            out["go"].append(p.global_orient.reshape(n, T, 3, 3))
            out["pose"].append(p.pose[:, jidx].reshape(n, T, len(jidx), 3, 3))
            out["shape"].append(p.shape.reshape(n, T, -1)[:, 0])
            out["transl"].append(p.transl.reshape(n, T, 3))
            out["K"].append(seq.K[:n])
            out["X"].append(kps["mediapipe33"].reshape(n, T, -1, 3))
            out["Xin"].append(Xin.reshape(n, T, -1, 3))
            out["present"].append(present)
            out["convention"].append(conv)
        if progress is not None:
            progress(1)
    cat = {k: torch.cat(v) for k, v in out.items()}
    return VideoSet(valid=valid, image_size=tuple(cam.image_size), conventions=tuple(config.conventions), **cat)


def load_or_build_video_set(body, config: VideoSetConfig, library_path=None, progress=None) -> VideoSet:
    """The video training set from the cache (``~/.cache/hmrkit``), built when missing."""
    from hmrkit.data.sequences import load_sequences
    from hmrkit.errors import InputError

    path = Path(library_path) if library_path else cache_dir() / f"sequences_train_{body.name}.npz"
    if not path.exists():
        raise InputError(path, "no video training library; build it with "
                               "scripts/build_sequences.py --train-library (about 20 minutes on one core)")
    lib = load_sequences(body.name, str(path))
    fp = hashlib.sha1(path.read_bytes()).hexdigest()[:12]
    cache = cache_dir() / f"videoset_{body.name}_{config.key(fp)}.pt"
    if cache.exists():
        return VideoSet(**torch.load(cache, weights_only=True))
    vs = build_video_set(body, lib, config, progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: getattr(vs, k) for k in vs.__dataclass_fields__}, cache)
    return vs


@dataclass(frozen=True)
class MaedTrainConfig:
    steps: int = 4000
    batch: int = 8  # windows per step
    lr: float = 3e-4
    weight_decay: float = 1e-4
    seed: int = 0
    init_spin: bool = True  # start the embedding and the spatial branch from the shipped SPIN encoder
    init_spin_head: bool = False  # also start the decoder from SPIN's head (needs model hidden 512, decoder_act relu)
    temporal_noise: bool = True  # detector noise correlated over time (add_temporal_noise)
    p_world3d: float = 0.5
    world3d_sigma: float = 0.05
    w_kp2d: float = 5.0
    w_kp3d: float = 10.0
    w_pose: float = 1.0
    w_shape: float = 0.001 / 0.2 ** 2
    w_cam: float = 1.0
    w_accel: float = 0.0  # acceleration of root-relative 3D keypoints against the truth's
    w_total: float = 60.0
    image_batch: int = 0  # single-frame people of SPIN's training set per step (windows of T = 1)
    init_weights: str | None = None  # start every weight from these MAED weights (a fine-tuning); else from SPIN's
    w_image: float = 1.0  # their loss's weight against the video loss
    val_every: int = 500
    model: MaedConfig = MaedConfig()
    data: VideoSetConfig = VideoSetConfig()
    image_data: TrainSetConfig = TrainSetConfig()

    def trainer(self) -> TrainerConfig:
        return TrainerConfig(steps=self.steps, lr=self.lr, weight_decay=self.weight_decay, warmup=200, clip_grad=5.0,
                             seed=self.seed, val_every=self.val_every)


@dataclass(frozen=True)
class VideoBatch:
    idx: Tensor
    inputs: CropInputs  # (B * T) frames, window-major
    T: int
    uv: Tensor  # (B * T, 33, 2) exact projections of the input keypoints
    conf: Tensor  # (B * T, 33) their weights (in the image, present, valid)
    X: Tensor  # (B * T, 33, 3) exact mediapipe33
    go: Tensor
    pose: Tensor
    shape: Tensor


def temporal_noise(X: Tensor, uv: Tensor, valid: Tensor, image_size, seed: int, temporal: bool) -> Tensor:
    """(N, T, 33, 3) detector-like keypoints of windows: correlated over time when
    ``temporal`` (``add_temporal_noise``), else independent per frame."""
    N, T = uv.shape[:2]
    noise = NoiseConfig.realistic()
    if temporal:
        from hmrkit.data.synthetic import TemporalNoiseConfig, add_temporal_noise

        return add_temporal_noise(X, uv, valid, INPUT_CONVENTION, image_size, noise, TemporalNoiseConfig(), seed)
    out = add_noise(X.flatten(0, 1), uv.flatten(0, 1), valid, INPUT_CONVENTION, image_size, noise, seed)
    return out.reshape(N, T, *out.shape[1:])


class MaedObjective(Objective):
    method = "maed"

    def __init__(self, body, data: VideoSet, config: MaedTrainConfig, images=None):
        self.body, self.data, self.config = body, data, config
        self.images = images  # a KeypointTrainSet when config.image_batch > 0
        if config.image_batch > 0 and images is None:
            raise ValueError("MaedObjective: image_batch > 0 needs the images (a KeypointTrainSet)")

    def build(self, ctx: TrainContext) -> MaedRegressor:
        cfg = self.config
        model = MaedRegressor(self.body, cfg.model).to(self.body.dtype)
        self.copied, self.init_card = 0, None
        if cfg.init_weights is not None:
            from hmrkit.models.maed import load_regressor

            start = load_regressor(self.body, cfg.init_weights)
            if start.config != cfg.model:
                raise ValueError(f"--init {cfg.init_weights}: its model ({start.config}) is not the one trained ({cfg.model})")
            model.load_state_dict(start.state_dict())
            self.init_card = start.card  # the card of the weights this fine-tuning starts from
        elif cfg.init_spin:
            from hmrkit.models.spin import default_weights, load_regressor

            if default_weights(self.body.name).exists():
                spin = load_regressor(self.body)
                self.copied = model.init_from_spin(spin)
                if cfg.init_spin_head:
                    n = model.init_decoder_from_spin(spin)
                    if n == 0:
                        raise ValueError("init_spin_head: the decoder does not match SPIN's head "
                                         f"(hidden {cfg.model.hidden}, {cfg.model.decoder_act}; SPIN's: "
                                         f"{spin.head.config.hidden}, relu)")
                    self.copied += n
        self.order = ctx.order(len(self.data), cfg.batch)
        self.image_order = self.image_objective = None
        if cfg.image_batch > 0:
            from hmrkit.train.spin import SpinObjective, SpinTrainConfig

            # SPIN's batches and losses for the single frames, at MAED's loss weights; its
            # noise seeds are offset so that they are not the video windows' seeds
            spin_cfg = SpinTrainConfig(seed=cfg.seed + 7919, loop=False, p_world3d=cfg.p_world3d, w_kp2d=cfg.w_kp2d,
                                       w_kp3d=cfg.w_kp3d, w_pose=cfg.w_pose, w_shape=cfg.w_shape, w_cam=cfg.w_cam,
                                       w_total=cfg.w_total, data=cfg.image_data)
            self.image_objective = SpinObjective(self.body, self.images, spin_cfg)
            self.image_order = ctx.order(len(self.images), cfg.image_batch, name="images")
        self.val = validation_windows(self.body, cfg.model.window)
        self.model = model
        return model

    def batch(self, step: int):
        video = self.make_batch(self.order.next(), step)
        if self.image_order is None:
            return video
        return video, self.image_objective.make_batch(self.image_order.next(), step)

    def make_batch(self, idx: Tensor, step: int) -> VideoBatch:
        d, cfg = self.data, self.config
        B, T = len(idx), d.X.shape[1]
        K = d.K[idx][:, None].expand(B, T, 3, 3)
        Xin = d.Xin[idx]
        uv = project(Xin, K)
        seed = cfg.seed * 1_000_003 + step
        kp = temporal_noise(Xin, uv, d.valid, d.image_size, seed, cfg.temporal_noise)
        kp = torch.cat([kp[..., :2], kp[..., 2:] * d.present[idx][:, None, :, None]], -1)
        g = torch.Generator().manual_seed(seed)
        mp = (d.convention[idx] == d.conventions.index(INPUT_CONVENTION))
        give = (torch.rand(B, generator=g) < cfg.p_world3d) & mp
        X = d.X[idx]
        k3 = world_landmarks(X.flatten(0, 1), kp.flatten(0, 1)[..., 2], cfg.world3d_sigma, g)
        k3 = k3 * give.repeat_interleave(T)[:, None, None]
        flat_K = K.reshape(-1, 3, 3)
        inputs = crop_inputs(kp.flatten(0, 1), flat_K, INPUT_CONVENTION, k3)
        H, W = d.image_size
        u = uv.flatten(0, 1)
        inside = ((u >= 0) & (u < torch.tensor([W, H], dtype=u.dtype))).all(-1)
        conf = (inside & d.valid & d.present[idx].repeat_interleave(T, 0)).to(u.dtype)
        return VideoBatch(idx, inputs, T, u, conf, X.flatten(0, 1), d.go[idx].flatten(0, 1),
                          d.pose[idx].flatten(0, 1), d.shape[idx].repeat_interleave(T, 0))

    def losses(self, model: MaedRegressor, b, step: int):
        if isinstance(b, tuple):  # video windows and single images
            b, ib = b
            res = self.video_losses(model, b, step)
            out = model(ib.inputs, 1)
            img = self.image_objective.supervised_losses(out, model.params(self.body, ib.inputs, out), ib)
            res.update({f"image {k}": v for k, v in img.items()})
            res["loss"] = res["loss"] + self.config.w_image * img["loss"]
            return res
        return self.video_losses(model, b, step)

    def video_losses(self, model: MaedRegressor, b: VideoBatch, step: int):
        cfg = self.config
        out = model(b.inputs, b.T)
        params = model.params(self.body, b.inputs, out)
        kps = self.body.forward_keypoints(params, ("mediapipe33", "coco17"))
        Xp = kps["mediapipe33"]
        d = self.data
        conv = d.convention[b.idx].repeat_interleave(b.T)
        Xin = Xp
        for k, name in enumerate(d.conventions):
            if name != INPUT_CONVENTION and bool((conv == k).any()):
                Y, _ = input_layout(self.body, kps, name)
                Xin = torch.where((conv == k)[:, None, None], Y, Xin)
        inputs = b.inputs
        uv_pred = to_crop(project(Xin, inputs.K), inputs)
        l2d = (b.conf[..., None] * (uv_pred - to_crop(b.uv, inputs)) ** 2).mean()
        valid = d.valid.to(Xp.dtype)
        rel_p, rel_t = root_relative(Xp), root_relative(b.X)
        l3d = (((rel_p - rel_t) ** 2).sum(-1) * valid).mean()
        lpose = ((out.global_orient - b.go) ** 2).flatten(1).mean(-1).mean() + \
            ((out.pose - b.pose) ** 2).flatten(1).mean(-1).mean()
        lshape = ((out.shape - b.shape) ** 2).mean()
        lcam = torch.exp(-10 * out.cam[:, 0].exp()).pow(2).mean()
        total = cfg.w_kp2d * l2d + cfg.w_kp3d * l3d + cfg.w_pose * lpose + cfg.w_shape * lshape + cfg.w_cam * lcam
        res = {"kp2d": l2d, "kp3d": l3d, "pose": lpose, "shape": lshape, "cam": lcam}
        if cfg.w_accel > 0:
            B = b.idx.numel()
            ap = rel_p.reshape(B, b.T, -1, 3)
            at = rel_t.reshape(B, b.T, -1, 3)
            acc = lambda x: x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]  # noqa: E731
            laccel = (((acc(ap) - acc(at)) ** 2).sum(-1) * valid).mean()
            total = total + cfg.w_accel * laccel
            res["accel"] = laccel
        res["loss"] = cfg.w_total * total
        return res

    def validate(self, model: MaedRegressor) -> dict:
        return validate(model, self.body, self.val)

    def card(self, record: dict) -> dict:
        cfg = self.config
        return {"body": self.body.name, "batch": cfg.batch, "windows": len(self.data), "init_spin_tensors": self.copied,
                "config": {k: v for k, v in asdict(cfg).items() if k not in ("data", "model", "image_data")},
                "model": asdict(cfg.model), "data": asdict(cfg.data),
                "image_data": asdict(cfg.image_data) if cfg.image_batch > 0 else None,
                "init_card": self.init_card,
                "val": {k: v for k, v in record.items() if k.startswith("val")},
                "check": validate(self.model, self.body, validation_windows(self.body, cfg.model.window, **CHECK_SET))}

    def export(self, model: MaedRegressor) -> dict:
        return model.checkpoint()


CHECK_SET = {"clips": 2, "seed": 9001}


def validation_windows(body, window: int, clips: int = 8, seed: int = 9001, frames: int = 64):
    """Fixed validation windows: ``clips`` sequences of the val split's shipped clips
    (salsa, modern dance: motions training never sees), random bodies, realistic noise
    independent per frame, mediapipe33 input; (CropInputs (n * frames), coco17 truth
    (n, frames, 17, 3), frames)."""
    from hmrkit.data.render_synthetic import keypoints_from_output
    from hmrkit.data.sequences import load_sequences, sample_sequence
    from hmrkit.data.splits import split_of

    lib = load_sequences(body.name)
    pool = [i for i, s in enumerate(lib.source) if split_of(s) == "val"]
    inputs, gts = [], []
    for c in range(clips):
        seq = sample_sequence(body, pool[c % len(pool)], seed=seed + c, shape="random", conventions=(), library=lib)
        p = seq.params[:frames]
        with torch.no_grad():
            out = body(p)
            gts.append(body.keypoints(out, "coco17"))
        kp = keypoints_from_output(body, out, seq.K[:frames], seq.image_size, INPUT_CONVENTION,
                                   NoiseConfig.realistic(), seed + 100 + c)
        inputs.append((kp, seq.K[:frames]))
    kp = torch.cat([k for k, _ in inputs])
    K = torch.cat([k for _, k in inputs])
    return crop_inputs(kp, K, INPUT_CONVENTION), torch.stack(gts), frames


@torch.no_grad()
def validate(model: MaedRegressor, body, val) -> dict:
    """PA-MPJPE, MPJPE (coco17, mm) and acceleration error (mm/frame^2) of ``model`` on the
    validation windows, run as the estimator runs (sliding windows, half overlap)."""
    from hmrkit.eval.metrics import accel_error, mpjpe, pa_mpjpe, pelvis_indices
    from hmrkit.models.maed import blend_weights, window_starts, _select
    from hmrkit.geometry.rotation import rotmat_from_6d, rotmat_to_6d
    from hmrkit.models.hmr_head import HeadOutput

    inputs, gt, F = val
    was = model.training
    model.eval()
    n = gt.shape[0]
    W = model.config.window
    acc = torch.zeros(n * F, 6 + 6 * len(model.joint_index) + model.decoder.num_shape + 3)
    wsum = torch.zeros(n * F, 1)
    for s in window_starts(F, W, W // 2):
        m = min(W, F - s)
        sel = (torch.arange(n)[:, None] * F + s + torch.arange(m)[None]).reshape(-1)
        out = model(_select(inputs, sel), m)
        vec = torch.cat([rotmat_to_6d(out.global_orient), rotmat_to_6d(out.pose).flatten(1), out.shape, out.cam], -1)
        w = blend_weights(m).repeat(n)[:, None]
        acc.index_add_(0, sel, vec * w)
        wsum.index_add_(0, sel, w)
    vec = acc / wsum
    J, S = len(model.joint_index), model.decoder.num_shape
    head = HeadOutput(rotmat_from_6d(vec[:, :6]), rotmat_from_6d(vec[:, 6:6 + 6 * J].reshape(-1, J, 6)),
                      vec[:, 6 + 6 * J:6 + 6 * J + S], vec[:, -3:], (vec,))
    params = model.params(body, inputs, head)
    pred = body.forward_keypoints(params, ("coco17",))["coco17"].reshape(n, F, 17, 3)
    model.train(was)
    root = pelvis_indices("coco17")
    return {"val MPJPE": float(mpjpe(pred, gt, root).mean()), "val PA-MPJPE": float(pa_mpjpe(pred, gt).mean()),
            "val accel": float(accel_error(pred, gt, root).mean())}


def maed_trainer(body, data: VideoSet, config: MaedTrainConfig, out_dir, images=None) -> Trainer:
    return Trainer(MaedObjective(body, data, config, images), config.trainer(), out_dir)


def train_maed(body, config: MaedTrainConfig, out_dir, resume: bool = False, progress_factory=None,
               library_path=None, export: bool = False) -> Path:
    """Build (or load) the video training set, train, write ``out_dir/maed_<body>.pt``
    (``export``: train nothing, write the weights of the stopped run in ``out_dir``)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    with tqdm(desc="video training set", unit="clip", disable=None if progress_factory else True) as bar:
        data = load_or_build_video_set(body, config.data, library_path, progress=bar.update)
    images = None
    if config.image_batch > 0:
        from hmrkit.train.data import load_or_build

        with tqdm(total=config.image_data.n, desc="image training set", unit="sample",
                  disable=None if progress_factory else True) as bar:
            images = load_or_build(body, config.image_data, progress=bar.update)
    trainer = maed_trainer(body, data, config, out_dir, images)
    if export:
        return trainer.export_weights(out_dir / f"maed_{body.name}.pt")
    trainer.begin(resume)
    bar = progress_factory(config.steps, trainer.step) if progress_factory else None
    record = trainer.train(progress=tqdm_hook(bar) if bar is not None else None)
    if bar is not None:
        bar.close()
    return trainer.save_weights(out_dir / f"maed_{body.name}.pt", record)
