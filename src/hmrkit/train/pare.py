"""PARE training: SPIN's losses, a part segmentation loss on the attention maps, and occlusion.

PARE is a ``PareObjective`` of the shared ``Trainer``, built on SPIN's (``hmrkit.train.spin``):
the same training set, batches, keypoint / pose / shape / camera losses and validation,
with

- **part segmentation**: the part-map logits (P + 1 channels, 0 the background) are
  trained with a cross-entropy against the body model's part segmentation in the crop at
  the feature volume's resolution, for the first ``seg_steps`` steps (weight ``w_seg``),
  then that loss is switched off so the attention may spread to context (the paper).
  The labels are splatted from the projected vertices (``splat_part_labels``) once per
  training sample into a reference box around the whole body (``ref_resolution`` cells),
  and resampled each step into that step's crop (which truncation changes);
- **occlusion** on the samples with fresh noise (the labelled ones): with probability
  ``p_occluder`` a box or a bar over the person (``sample_occluders``), whose keypoints
  take the noise model's calibrated ``boxed`` state and whose cells leave the mask; with
  probability ``p_truncate`` the frame cuts off 20-50 % of the person
  (``sample_truncation``): those keypoints are missing and the crop is the visible part's;
  self-occlusion is the noise model's own (keypoints behind the torso);
- **the person mask** as evidence with probability ``p_mask`` (MediaPipe gives one in
  ``hmrkit run``; keypoint files do not): the splatted silhouette in the crop, cut by the
  occluder and the frame.

``train_pare`` is the run behind ``hmrkit train pare``; it also writes the weights at the
step the segmentation loss stops (``pare_<body>_seg.pt``), for the attention figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from hmrkit.data.synthetic import NoiseConfig, add_noise, in_boxes, in_frame, sample_occluders, sample_truncation
from hmrkit.geometry.camera import project
from hmrkit.models.pare import PareConfig, PareOutput, PareRegressor
from hmrkit.train.batch import TrainBatch
from hmrkit.train.data import CONVENTION, KeypointTrainSet
from hmrkit.train.spin import SpinObjective, SpinTrainConfig, validate, validation_set
from hmrkit.train.trainer import TrainContext, Trainer, tqdm_hook

PARTS_VERSION = 1  # bumped when the reference part maps are made differently (cache key)


@dataclass(frozen=True)
class PareTrainConfig:
    spin: SpinTrainConfig = SpinTrainConfig(loop=False)  # steps, lr, batch, loss weights, data
    model: PareConfig = PareConfig()
    w_seg: float = 1.0  # the paper's weight (before SPIN's x60 total)
    seg_steps: int = 1000  # the part segmentation loss is on for steps < this, then off
    p_occluder: float = 0.5
    p_truncate: float = 0.2
    p_mask: float = 0.5
    ref_resolution: int = 64
    ref_margin: float = 1.3  # the reference box: this x the keypoints' extent (hands, head top)


def reference_part_maps(body, data: KeypointTrainSet, resolution: int, margin: float, chunk: int = 256,
                        progress=None) -> tuple[Tensor, Tensor, Tensor]:
    """Per training sample: (N, R, R) uint8 part maps (0 none, 1 + part) splatted in a
    square reference box around the whole body, its centre (N, 2) px and side (N,) px."""
    from hmrkit.data.render_synthetic import splat_part_labels

    N = len(data)
    uv = project(data.X, data.K)  # exact mediapipe33, px
    pts = uv[:, data.valid]
    lo, hi = pts.min(1).values, pts.max(1).values
    center = 0.5 * (lo + hi)
    side = (hi - lo).max(-1).values * margin
    maps = torch.zeros(N, resolution, resolution, dtype=torch.uint8)
    for s in range(0, N, chunk):
        with torch.no_grad():
            v = body(data.params[s:s + chunk]).vertices
        maps[s:s + chunk] = splat_part_labels(body, v, data.K[s:s + chunk], center[s:s + chunk], side[s:s + chunk],
                                              resolution).to(torch.uint8)
        if progress is not None:
            progress(v.shape[0])
    return maps, center, side


def crop_labels(ref: Tensor, ref_center: Tensor, ref_side: Tensor, center: Tensor, size: Tensor, R: int) -> Tensor:
    """(B, R, R) int64 labels in the square crops (centre (B, 2), side (B,) px) sampled
    (nearest cell) from reference maps (B, Rr, Rr) in their boxes; 0 outside them."""
    B, Rr = ref.shape[0], ref.shape[-1]
    g = (torch.arange(R, dtype=center.dtype) + 0.5) / R - 0.5
    px = center[:, None, 0] + g[None] * size[:, None]  # (B, R) x of the cell centres
    py = center[:, None, 1] + g[None] * size[:, None]
    x0 = ref_center[:, None, 0] - 0.5 * ref_side[:, None]
    y0 = ref_center[:, None, 1] - 0.5 * ref_side[:, None]
    ix = ((px - x0) / ref_side[:, None] * Rr).floor().long()
    iy = ((py - y0) / ref_side[:, None] * Rr).floor().long()
    okx, oky = (ix >= 0) & (ix < Rr), (iy >= 0) & (iy < Rr)
    flat = iy.clamp(0, Rr - 1)[:, :, None] * Rr + ix.clamp(0, Rr - 1)[:, None, :]  # (B, R, R)
    lab = ref.reshape(B, -1).long().gather(1, flat.reshape(B, -1)).reshape(B, R, R)
    return lab * (oky[:, :, None] & okx[:, None, :])


def crop_points(center: Tensor, size: Tensor, R: int) -> Tensor:
    """(B, R, R, 2) px centres of the crop cells."""
    g = (torch.arange(R, dtype=center.dtype) + 0.5) / R - 0.5
    gy, gx = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([center[:, None, None, 0] + gx * size[:, None, None],
                        center[:, None, None, 1] + gy * size[:, None, None]], -1)


class PareObjective(SpinObjective):
    """PARE as a ``Trainer`` objective (module docstring)."""

    method = "pare"

    def __init__(self, body, data: KeypointTrainSet, config: PareTrainConfig, parts=None):
        super().__init__(body, data, config.spin)  # self.config: SPIN's part (losses, data, steps)
        self.pare = config
        self.parts = parts  # (maps, center, side) from reference_part_maps

    def key(self) -> str:
        return repr(self.pare)

    def build(self, ctx: TrainContext) -> PareRegressor:
        body = self.body
        cfg = self.pare.spin
        model = PareRegressor(body, self.pare.model).to(body.dtype)
        self.order = ctx.order(len(self.data), cfg.batch)
        self.val = validation_set(body, cfg.val_n)
        self.val_occluded = occluded_validation_set(body, cfg.val_n)
        self.joint_index = torch.tensor(model.joint_index)
        self.model = model
        if self.parts is None:
            self.parts = reference_part_maps(body, self.data, self.pare.ref_resolution, self.pare.ref_margin)
        return model

    # ------------------------------------------------------------------ augmentation
    def _generator(self, step: int, k: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.pare.spin.seed * 1_000_033 + step * 7 + k)

    def occluders(self, idx: Tensor, step: int) -> Tensor:
        d = self.data
        occ = sample_occluders(d.uv[idx], d.valid, self._generator(step, 1), self.pare.p_occluder)
        self._occ = torch.where(d.labelled[idx][:, None], occ, torch.full_like(occ, float("nan")))
        return self._occ

    def frame(self, kp: Tensor, idx: Tensor, lab: Tensor, step: int) -> Tensor:
        d = self.data
        edge = sample_truncation(d.uv[idx], d.valid, self._generator(step, 2), self.pare.p_truncate)
        edge = torch.where(lab[:, None], edge, torch.full_like(edge, float("nan")))
        keep = in_frame(kp[..., :2], edge)
        # a person needs enough of them left to be detected at all: keep the cut only then
        enough = (keep & (kp[..., 2] > 0)).sum(-1) >= 8
        edge = torch.where(enough[:, None], edge, torch.full_like(edge, float("nan")))
        self._edge = edge
        return torch.cat([kp[..., :2], kp[..., 2:] * in_frame(kp[..., :2], edge)[..., None]], -1)

    def make_batch(self, idx: Tensor, step: int) -> TrainBatch:
        b = super().make_batch(idx, step)
        maps, rc, rs = self.parts
        inp = b.inputs
        V = self.pare.model.volume
        seg = crop_labels(maps[idx], rc[idx], rs[idx], inp.center, inp.size, V)
        R = self.pare.model.map_resolution
        sil = crop_labels(maps[idx], rc[idx], rs[idx], inp.center, inp.size, R) > 0
        pts = crop_points(inp.center, inp.size, R).reshape(len(idx), -1, 2)
        seen = ~in_boxes(pts, self._occ) & in_frame(pts, self._edge)
        mask = (sil.reshape(len(idx), -1) & seen).to(inp.kp.dtype).reshape(len(idx), R, R)
        g = self._generator(step, 3)
        give = torch.rand(len(idx), generator=g) < self.pare.p_mask
        return replace(b, part_seg=seg, mask=mask, extras={"has_mask": give})

    # ------------------------------------------------------------------ losses
    def forward(self, model: PareRegressor, b: TrainBatch) -> PareOutput:
        give = b.extras["has_mask"]
        if bool(give.all()):
            return model(b.inputs, b.mask)
        if not bool(give.any()):
            return model(b.inputs)
        # mixed: only the last two channels (the mask and the has-mask flag) depend on the
        # mask; samples without one get zeros there, as evidence_maps(mask=None) gives
        maps = model.maps(b.inputs, b.mask)
        keep = torch.ones_like(maps[:1, :, :1, :1]).repeat(maps.shape[0], 1, 1, 1)
        keep[:, -2:] = give[:, None, None, None].to(maps.dtype)
        return model.forward_maps(maps * keep, b.inputs)

    def losses(self, model: PareRegressor, b: TrainBatch, step: int):
        out = self.forward(model, b)
        params = model.params(self.body, b.inputs, out)
        res = self.supervised_losses(out.head, params, b)
        seg = F.cross_entropy(out.parts, b.part_seg)
        on = step < self.pare.seg_steps
        if on:
            res["loss"] = res["loss"] + self.pare.spin.w_total * self.pare.w_seg * seg
        res["seg"] = seg.detach()
        res["seg on"] = torch.tensor(float(on))
        return res, params

    def after_step(self, model, b, params, step):
        return None  # no fitting in the loop for PARE

    # ------------------------------------------------------------------ bookkeeping
    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def validate(self, model: PareRegressor) -> dict:
        res = validate(model, self.body, self.val)
        occ = validate(model, self.body, self.val_occluded)
        res.update({k.replace("val", "val occluded", 1): v for k, v in occ.items()})
        return res

    def card(self, record: dict) -> dict:
        from hmrkit.train.spin import check_figure

        cfg = self.pare
        return {"body": self.body.name, "batch": cfg.spin.batch, "data": asdict(cfg.spin.data),
                "config": {k: v for k, v in asdict(cfg).items() if k != "spin"},
                "spin_config": {k: v for k, v in asdict(cfg.spin).items() if k != "data"},
                "val": {k: v for k, v in record.items() if k.startswith("val")},
                "check": check_figure(self.model, self.body)}

    def export(self, model: PareRegressor) -> dict:
        return model.checkpoint()


def occluded_validation_set(body, n: int, seed: int = 9002, split: str = "val"):
    """``validation_set`` with an occluder over every person (``sample_occluders``, p = 1)."""
    from hmrkit.data.synthetic import SceneConfig, keypoints2d, sample_scenes, true_keypoints
    from hmrkit.train.spin import VAL_CONVENTIONS, _keypoints

    scenes = sample_scenes(body, n, seed=seed, config=SceneConfig(yaw_deg=60, split=split, phenotypes="all"))
    _, uv, valid = true_keypoints(body, scenes, "mediapipe33")
    occ = sample_occluders(uv, valid, torch.Generator().manual_seed(seed + 5), 1.0)
    kp = {c: keypoints2d(body, scenes, c, NoiseConfig.realistic(), seed=seed + 1, occluders=occ)
          for c in VAL_CONVENTIONS}
    with torch.no_grad():
        gt = _keypoints(body, scenes.params, ("coco17",))["coco17"]
    return scenes, kp, gt


def pare_trainer(body, data: KeypointTrainSet, config: PareTrainConfig, out_dir, parts=None) -> Trainer:
    return Trainer(PareObjective(body, data, config, parts), config.spin.trainer(), out_dir)


def parts_cache(body, data_config, config: PareTrainConfig) -> Path:
    from hmrkit.data.synthetic import library_fingerprint
    from hmrkit.train.data import cache_dir

    key = data_config.key(library_fingerprint(body.pose_library))
    return cache_dir() / f"parts_{body.name}_{key}_r{config.ref_resolution}_m{config.ref_margin}_v{PARTS_VERSION}.pt"


def train_pare(body, config: PareTrainConfig, out_dir, resume: bool = False, progress_factory=None) -> Path:
    """Build (or load) the training set and its reference part maps, train, and write
    ``out_dir/pare_<body>.pt`` (and ``pare_<body>_seg.pt`` at the step the segmentation
    loss stops)."""
    from tqdm import tqdm

    from hmrkit.io.atomic import atomic_write
    from hmrkit.train.data import load_or_build

    out_dir = Path(out_dir)
    quiet = None if progress_factory else True
    with tqdm(total=config.spin.data.n, desc="training set", unit="sample", disable=quiet) as b:
        data = load_or_build(body, config.spin.data, progress=b.update)
    path = parts_cache(body, config.spin.data, config)
    if path.exists():
        parts = tuple(torch.load(path, weights_only=True))
    else:
        with tqdm(total=len(data), desc="part maps", unit="sample", disable=quiet) as b:
            parts = reference_part_maps(body, data, config.ref_resolution, config.ref_margin, progress=b.update)
        with atomic_write(path, "wb") as fh:
            torch.save(list(parts), fh)
    trainer = pare_trainer(body, data, config, out_dir, parts)
    trainer.begin(resume)
    bar = progress_factory(config.spin.steps, trainer.step) if progress_factory else None
    hook = tqdm_hook(bar) if bar is not None else None
    seg_at = min(config.seg_steps, config.spin.steps)
    if trainer.step < seg_at:
        record = trainer.train(progress=hook, stop_at=seg_at)
        trainer.save_weights(out_dir / f"pare_{body.name}_seg.pt", record)
    record = trainer.train(progress=hook)
    if bar is not None:
        bar.close()
    return trainer.save_weights(out_dir / f"pare_{body.name}.pt", record)
