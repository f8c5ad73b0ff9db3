"""hmrkit.train.trainer: the shared loop on a toy objective (a noisy linear regression with
dropout): exact resume, checkpoints keyed by method, refusals; TrainBatch's shape checks;
the shipped-weights format (hmrkit.models.weights)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from hmrkit.errors import InputError
from hmrkit.models.weights import FORMAT as WEIGHTS_FORMAT
from hmrkit.models.weights import load_weights, make_weights, save_weights, upgrade
from hmrkit.train.batch import TrainBatch
from hmrkit.train.trainer import FORMAT, Objective, Trainer, TrainerConfig, lr_factor


@dataclass(frozen=True)
class ToyConfig:
    n: int = 40
    batch: int = 8
    noise: float = 0.1


class Toy(Objective):
    """y = x @ w_true + noise (fresh each step, from a registered generator); a linear model
    behind dropout (so torch's global RNG matters too)."""

    method = "toy"

    def __init__(self, config: ToyConfig = ToyConfig()):
        self.config = config
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(config.n, 3, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]])
        self.seen = 0  # extra state the objective checkpoints
        self.validated_in_eval = []

    def build(self, ctx):
        self.order = ctx.order(self.config.n, self.config.batch)
        self.noise = ctx.generator("noise", ctx.seed + 5)
        return nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 1))

    def batch(self, step):
        idx = self.order.next()
        y = self.y[idx] + self.config.noise * torch.randn(len(idx), 1, generator=self.noise)
        return TrainBatch(indices=idx, extras={"x": self.x[idx], "y": y})

    def losses(self, model, b, step):
        pred = model(b.extras["x"])
        return {"loss": ((pred - b.extras["y"]) ** 2).mean(), "abs": (pred - b.extras["y"]).abs().mean()}, pred

    def after_step(self, model, b, outputs, step):
        assert outputs.shape == (self.config.batch, 1)
        self.seen += len(b.indices)
        return {"seen": float(self.seen)}

    def validate(self, model):
        self.validated_in_eval.append((not model.training) and not torch.is_grad_enabled())
        return {"val mse": float(((model(self.x) - self.y) ** 2).mean())}

    def state(self):
        return {"seen": self.seen}

    def load_state(self, state):
        self.seen = state["seen"]

    def card(self, record):
        return {"body": "none", "val": {k: v for k, v in record.items() if k.startswith("val")}}

    def export(self, model):
        return make_weights("toy", "none", {"in": 3}, [], model.state_dict())


def _trainer(out, steps=6, **kw):
    return Trainer(Toy(kw.pop("toy", ToyConfig())), TrainerConfig(steps=steps, lr=0.05, warmup=2, val_every=3, **kw),
                   out)


def _equal_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_toy_trains_logs_and_is_deterministic(tmp_path):
    a = _trainer(tmp_path / "a", steps=30)
    logs = []
    rec = a.train(progress=logs.append)
    assert a.step == 30 and len(logs) == 30 and logs[-1]["seen"] == 240.0
    assert rec["step"] == 30 and rec["val mse"] < 0.5 * logs[0]["loss"]
    lines = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(3, 31, 3))
    assert {"time_s", "lr", "train loss", "train abs", "train seen", "val mse"} <= set(lines[0])
    assert all(a.objective.validated_in_eval) and a.model.training
    b = _trainer(tmp_path / "b", steps=30)
    b.train()
    assert _equal_weights(a, b)
    c = _trainer(tmp_path / "c", steps=30, seed=1)
    c.train()
    assert not _equal_weights(a, c)


def test_toy_resumes_exactly_and_checkpoint_is_keyed_by_method(tmp_path):
    a = _trainer(tmp_path / "a", steps=7)
    la = []
    a.train(progress=la.append)
    c = _trainer(tmp_path / "c", steps=7)
    lc = []
    c.train(progress=lc.append, stop_at=4)  # mid-epoch (5 batches of 8 per epoch of 40)
    ck = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    assert ck["format"] == FORMAT == "hmrkit-train-1" and ck["method"] == "toy" and ck["step"] == 4
    assert {"model", "opt", "sched", "rng", "objective", "config", "elapsed"} <= set(ck)
    assert ck["objective"] == {"seen": 32} and set(ck["rng"]["generators"]) == {"noise"}
    assert ck["rng"]["orders"]["batches"].numel() == 40 - 32  # the rest of the epoch
    d = _trainer(tmp_path / "c", steps=7)
    d.begin(resume=True)
    assert d.step == 4 and d.objective.seen == 32
    d.train(progress=lc.append)
    assert lc == la  # every logged value of every step, bit for bit
    assert _equal_weights(a, d)
    assert d.sched.get_last_lr() == a.sched.get_last_lr()
    # the log continues; a fresh start drops it
    steps = [json.loads(x)["step"] for x in (tmp_path / "c" / "log.jsonl").read_text().splitlines()]
    assert steps == [3, 4, 6, 7]
    _trainer(tmp_path / "c", steps=7).begin(resume=False)
    assert not (tmp_path / "c" / "log.jsonl").exists()


def test_resume_refusals_are_one_line(tmp_path):
    t = _trainer(tmp_path, steps=3)
    t.train()
    last = tmp_path / "last.pt"
    with pytest.raises(InputError, match="another configuration") as e:
        _trainer(tmp_path, steps=3, clip_grad=1.0).load(last)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="another configuration"):
        _trainer(tmp_path, steps=3, toy=ToyConfig(noise=0.2)).load(last)

    class Other(Toy):
        method = "other"

    with pytest.raises(InputError, match="'toy' training, not 'other'"):
        Trainer(Other(), TrainerConfig(steps=3, lr=0.05, warmup=2, val_every=3), tmp_path).load(last)
    torch.save({"model": {}, "step": 3}, tmp_path / "old.pt")  # e.g. a SpinTrainer checkpoint of before
    with pytest.raises(InputError, match="not an hmrkit training checkpoint"):
        t.load(tmp_path / "old.pt")
    (tmp_path / "junk.pt").write_bytes(b"nope")
    with pytest.raises(InputError, match="junk.pt"):
        t.load(tmp_path / "junk.pt")


def test_lr_schedule_and_clipping(tmp_path):
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(0.5 * (1 + torch.cos(torch.tensor(0.09 * torch.pi)).item()))
    assert lr_factor(100, 100, 10) == pytest.approx(0.0) and lr_factor(500, 100, 10) == pytest.approx(0.0)
    for clip in (1e-3, None):
        t = _trainer(tmp_path, steps=3, clip_grad=clip)
        t.train_step()  # the gradients stay on the parameters until the next step
        norm = float(torch.cat([p.grad.flatten() for p in t.model.parameters()]).norm())
        assert (norm <= 1e-3 * (1 + 1e-5)) if clip else norm > 1e-2
    assert t.sched.get_last_lr()[0] == pytest.approx(0.05 * lr_factor(1, 3, 2))


def test_trainer_writes_shipped_weights(tmp_path):
    t = _trainer(tmp_path, steps=3)
    rec = t.train()
    path = t.save_weights(tmp_path / "toy.pt", rec)
    w = load_weights(path, "toy", "none")
    assert w["format"] == WEIGHTS_FORMAT and w["method"] == "toy" and w["config"] == {"in": 3}
    card = w["card"]
    assert card["method"] == "toy" and card["steps"] == 3 and card["seed"] == 0 and "val mse" in card["val"]
    assert all(torch.equal(w["state_dict"][k], v) for k, v in t.model.state_dict().items())
    with pytest.raises(InputError, match="'toy' weights, not 'spin'"):
        load_weights(path, "spin")
    with pytest.raises(InputError, match="for the 'none' body model, not 'anny'"):
        load_weights(path, "toy", "anny")


def test_weights_format_and_legacy_spin(tmp_path):
    sd = {"a": torch.arange(3.0)}
    legacy = {"format": "hmrkit-spin-1", "body": "anny", "encoder": {"width": 8}, "head": {"iterations": 3},
              "joint_names": ["x"], "state_dict": sd, "card": {"seed": 0}}
    w = upgrade(legacy)
    assert w["format"] == WEIGHTS_FORMAT and w["method"] == "spin" and w["config"] == {"encoder": {"width": 8},
                                                                                      "head": {"iterations": 3}}
    assert w["state_dict"]["a"] is sd["a"] and w["card"] == {"seed": 0}
    torch.save(legacy, tmp_path / "old.pt")
    assert load_weights(tmp_path / "old.pt", "spin", "anny")["joint_names"] == ["x"]
    with pytest.raises(ValueError, match="make_weights"):
        save_weights(legacy, tmp_path / "x.pt")  # writes the current format only
    with pytest.raises(InputError, match="not an hmrkit weights file"):
        upgrade({"format": "other"}, "f.pt")
    with pytest.raises(InputError, match="no state_dict"):
        upgrade({k: v for k, v in make_weights("m", "b", {}, [], sd).items() if k != "state_dict"})
    (tmp_path / "junk.pt").write_bytes(b"nope")
    with pytest.raises(InputError, match="junk.pt: cannot read weights"):
        load_weights(tmp_path / "junk.pt")
    with pytest.raises(InputError, match="missing.pt"):
        load_weights(tmp_path / "missing.pt")


def test_train_batch_checks_shapes():
    from hmrkit.types import BodyParams

    B, T, K = 2, 3, 33
    ok = TrainBatch(indices=torch.arange(B), kp2d=torch.zeros(B, K, 2), kp2d_conf=torch.ones(B, K),
                    labelled=torch.tensor([True, False]), part_seg=torch.zeros(B, 8, 8, dtype=torch.long),
                    mask=torch.zeros(B, 8, 8))
    assert ok.batch_size == B and ok.lead == (B,) and torch.equal(ok.target_weight, torch.tensor([1.0, 0.0]))
    seq = TrainBatch(indices=torch.arange(B), time=T, kp2d=torch.zeros(B, T, K, 2),
                     frame_valid=torch.ones(B, T, dtype=torch.bool), hands2d=torch.zeros(B, T, 2, 21, 3),
                     params=BodyParams(torch.eye(3).expand(B * T, 3, 3), torch.eye(3).expand(B * T, 4, 3, 3),
                                       torch.zeros(B * T, 6), torch.zeros(B * T, 3)))
    assert seq.lead == (B, T)
    bad = [
        dict(kp2d=torch.zeros(B, K, 3)),
        dict(kp2d=torch.zeros(B, K, 2), kp2d_conf=torch.ones(B, K + 1)),
        dict(kp2d_conf=torch.ones(B, K)),
        dict(labelled=torch.ones(B)),  # not bool
        dict(part_seg=torch.zeros(B, 8, 8)),  # not int
        dict(part_seg=torch.zeros(B + 1, 8, 8, dtype=torch.long)),
        dict(frame_valid=torch.ones(B, T, dtype=torch.bool)),  # no time axis
        dict(time=T, kp2d=torch.zeros(B, K, 2)),
        dict(hands2d=torch.zeros(B, 2, 20, 3)),
        dict(extras={"x": torch.zeros(B + 1, 4)}),
    ]
    for kw in bad:
        with pytest.raises(ValueError, match="TrainBatch"):
            TrainBatch(indices=torch.arange(B), **kw)
    with pytest.raises(ValueError, match="empty"):
        TrainBatch()
