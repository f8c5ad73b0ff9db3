"""One training loop for every learned method.

A method is an ``Objective``: it builds its network, makes each step's ``TrainBatch``,
computes its losses, and may run a hook after each optimiser step (SPIN's fits in the
loop), validate, keep extra state (SPIN's fit store), describe the run (the card) and
export the shipped weights. The ``Trainer`` owns everything else, the same for all:

- the optimiser (AdamW) and the LR schedule (linear warm-up, then cosine to 0 at ``steps``);
- gradient clipping (global norm ``clip_grad``);
- the random state: torch's global RNG (seeded with ``seed`` before the objective builds
  its network, so initialisation and dropout follow the seed), the batch-order generator
  (``seed + 17``) behind every ``BatchOrder`` the objective asks for, and any generator
  the objective registers with ``TrainContext.generator``;
- every ``val_every`` steps (and at the end): a ``log.jsonl`` record (step, time, LR, the
  mean of each logged value since the last record, the objective's validation) and the
  checkpoint ``last.pt``, from which ``load`` resumes exactly: a run stopped and resumed
  gives bit-identical weights to one run straight through;
- a progress hook called after each step with its log (``tqdm_hook`` adapts a tqdm bar).

Training checkpoints (``last.pt``) are one format for all methods, plain types and
tensors only::

    {"format": "hmrkit-train-1", "method": "spin", "step": int, "elapsed": float,
     "model": state_dict, "opt": ..., "sched": ...,
     "rng": {"torch": ..., "batches": ..., "orders": {...}, "generators": {...}},
     "objective": objective.state(),
     "config": {"trainer": repr(TrainerConfig), "objective": repr(objective.config)}}

Resuming with another method or configuration is a one-line ``InputError``. The shipped
weights are another format (``hmrkit.models.weights``), written by ``save_weights``.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from hmrkit.errors import InputError
from hmrkit.train.batch import TrainBatch

FORMAT = "hmrkit-train-1"
BATCH_SEED_OFFSET = 17  # the batch-order generator is seeded with seed + this


@dataclass(frozen=True)
class TrainerConfig:
    steps: int = 3000
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup: int = 200  # steps of linear LR warm-up
    clip_grad: Optional[float] = 5.0  # max global gradient norm (None: no clipping)
    seed: int = 0
    val_every: int = 500  # steps between validations, log records and checkpoints


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """The LR multiplier at ``step``: linear warm-up over ``warmup`` steps times a cosine
    from 1 to 0 at ``steps``."""
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


class BatchOrder:
    """Sample indices in shuffled epochs: each ``next()`` takes the next ``batch`` of a
    concatenation of random permutations of range(n) drawn from ``generator``."""

    def __init__(self, n: int, batch: int, generator: torch.Generator):
        if n < 1 or batch < 1:
            raise ValueError(f"BatchOrder: need n >= 1 and batch >= 1, got n={n}, batch={batch}")
        self.n, self.batch, self.generator = n, batch, generator
        self.pending = torch.empty(0, dtype=torch.long)

    def next(self) -> Tensor:
        while self.pending.numel() < self.batch:
            self.pending = torch.cat([self.pending, torch.randperm(self.n, generator=self.generator)])
        idx, self.pending = self.pending[:self.batch], self.pending[self.batch:]
        return idx


class TrainContext:
    """What an objective gets from the trainer when it builds: the seed, the batch orders
    and the generators whose state the checkpoint keeps."""

    def __init__(self, seed: int):
        self.seed = seed
        self.batches = torch.Generator().manual_seed(seed + BATCH_SEED_OFFSET)
        self.orders: dict = {}
        self.generators: dict = {}

    def order(self, n: int, batch: int, name: str = "batches") -> BatchOrder:
        """A ``BatchOrder`` over n samples drawn from the batch-order generator, checkpointed."""
        if name in self.orders:
            raise ValueError(f"TrainContext.order: {name!r} is taken")
        self.orders[name] = BatchOrder(n, batch, self.batches)
        return self.orders[name]

    def generator(self, name: str, seed: int) -> torch.Generator:
        """A torch.Generator seeded with ``seed`` whose state the checkpoint keeps."""
        if name in self.generators:
            raise ValueError(f"TrainContext.generator: {name!r} is taken")
        self.generators[name] = torch.Generator().manual_seed(seed)
        return self.generators[name]

    def state(self) -> dict:
        s = {"torch": torch.get_rng_state(), "batches": self.batches.get_state(),
             "orders": {k: o.pending.clone() for k, o in self.orders.items()},
             "generators": {k: g.get_state() for k, g in self.generators.items()}}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            s["cuda"] = torch.cuda.get_rng_state_all()
        return s

    def load_state(self, s: dict) -> None:
        torch.set_rng_state(s["torch"])
        self.batches.set_state(s["batches"])
        for k, o in self.orders.items():
            o.pending = s["orders"][k].clone()
        for k, g in self.generators.items():
            g.set_state(s["generators"][k])
        if "cuda" in s and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda"])


class Objective(ABC):
    """One learned method's part of training. ``method`` names it (checkpoints and weights
    are keyed by it); ``config`` is anything with a faithful ``repr`` (a frozen dataclass):
    a checkpoint resumes only under an equal one."""

    method: str = ""
    config: Any = None

    @abstractmethod
    def build(self, ctx: TrainContext) -> nn.Module:
        """Build the network (the trainer has seeded torch's RNG just before) and whatever
        the objective needs (data, batch order ``ctx.order(...)``, validation set, ...).
        The objective may keep a reference to the network (e.g. for its card)."""

    @abstractmethod
    def batch(self, step: int) -> TrainBatch:
        """The training batch of ``step``."""

    @abstractmethod
    def losses(self, model: nn.Module, batch: TrainBatch, step: int):
        """The losses on ``batch``: a dict of scalar tensors with ``"loss"`` (what is
        minimised; every entry is logged), or ``(that dict, outputs)`` to hand the forward's
        outputs to ``after_step``."""

    def after_step(self, model: nn.Module, batch: TrainBatch, outputs, step: int) -> Optional[dict]:
        """Called after the optimiser step of ``step``; may return more floats to log."""
        return None

    def key(self) -> str:
        """What a checkpoint must match to resume (default: ``repr(config)``)."""
        return repr(self.config)

    def validate(self, model: nn.Module) -> dict:
        """Validation figures (floats), run in eval mode without gradients."""
        return {}

    def state(self) -> dict:
        """Extra state to checkpoint (plain types and tensors)."""
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def card(self, record: dict) -> dict:
        """The weights' card (the trainer adds method, seed, steps, time, torch, threads)."""
        return {}

    @abstractmethod
    def export(self, model: nn.Module) -> dict:
        """The shipped-weights dict of ``model`` (``hmrkit.models.weights.make_weights``);
        its card is filled in by the trainer."""


class Trainer:
    """``Trainer(objective, config, out_dir)``: build, then ``begin(resume)`` and
    ``train()``; ``save_weights(path, record)`` writes the shipped weights."""

    def __init__(self, objective: Objective, config: TrainerConfig, out_dir):
        if not objective.method:
            raise ValueError("Trainer: the objective has no method name")
        self.objective, self.config = objective, config
        self.out_dir = Path(out_dir)
        torch.manual_seed(config.seed)
        self.ctx = TrainContext(config.seed)
        self.model = objective.build(self.ctx)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps, warmup = config.steps, config.warmup
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, steps, warmup))
        self.step = 0
        self.elapsed = 0.0  # seconds of training so far, across resumes

    @property
    def method(self) -> str:
        return self.objective.method

    @property
    def log_path(self) -> Path:
        return self.out_dir / "log.jsonl"

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    # ------------------------------------------------------------------ the loop
    def train_step(self) -> dict:
        """One step: batch, losses, backward, clip, optimiser and LR steps, the objective's
        hook. Returns its log (floats)."""
        step = self.step
        batch = self.objective.batch(step)
        self.model.train()
        res = self.objective.losses(self.model, batch, step)
        losses, outputs = res if isinstance(res, tuple) else (res, None)
        self.opt.zero_grad()
        losses["loss"].backward()
        if self.config.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.opt.step()
        self.sched.step()
        log = {k: float(v.detach()) for k, v in losses.items()}
        more = self.objective.after_step(self.model, batch, outputs, step)
        if more:
            log.update(more)
        self.step += 1
        return log

    def validate(self) -> dict:
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return dict(self.objective.validate(self.model))
        finally:
            self.model.train(was)

    def train(self, progress: Optional[Callable[[dict], None]] = None, stop_at: Optional[int] = None) -> dict:
        """Train to config.steps (from where a resumed run stopped; or stop early at step
        ``stop_at``); every val_every steps and at the end, validate, append a record to
        log.jsonl and write last.pt. Returns the last record ({} if no step was left)."""
        cfg = self.config
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
                record = {"step": self.step, "time_s": round(self.elapsed, 1), "lr": self.sched.get_last_lr()[0]}
                record.update({f"train {k}": v / max(1, n_acc) for k, v in acc.items()})
                record.update(self.validate())
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                self.save()
                acc, n_acc = {}, 0
        return record

    # ------------------------------------------------------------------ checkpoints
    def config_key(self) -> dict:
        return {"trainer": repr(self.config), "objective": self.objective.key()}

    def checkpoint(self) -> dict:
        return {"format": FORMAT, "method": self.method, "step": self.step, "elapsed": self.elapsed,
                "model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "rng": self.ctx.state(), "objective": self.objective.state(), "config": self.config_key()}

    def save(self, path=None) -> Path:
        from hmrkit.io.atomic import atomic_write

        path = Path(path) if path is not None else self.last_path
        with atomic_write(path) as f:
            torch.save(self.checkpoint(), f)
        return path

    def load(self, path=None) -> None:
        """Resume from a checkpoint of this method and configuration (InputError otherwise)."""
        path = Path(path) if path is not None else self.last_path
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(path, f"cannot read this training checkpoint ({msg}); start a new run") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise InputError(path, f"not an hmrkit training checkpoint (expected format {FORMAT!r}); start a new run")
        if state["method"] != self.method:
            raise InputError(path, f"a checkpoint of {state['method']!r} training, not {self.method!r}; "
                                   "choose another output folder")
        if state["config"] != self.config_key():
            raise InputError(path, "saved with another configuration; resume with the same flags or start a new run")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.objective.load_state(state["objective"])
        self.ctx.load_state(state["rng"])

    def begin(self, resume: bool = False) -> None:
        """Resume from last.pt when asked and it exists; a fresh run drops an old log.jsonl."""
        if resume and self.last_path.exists():
            self.load()
        elif not resume and self.log_path.exists():
            self.log_path.unlink()

    # ------------------------------------------------------------------ weights
    def card(self, record: dict) -> dict:
        base = {"method": self.method, "seed": self.config.seed, "steps": self.config.steps, "trained_steps": self.step,
                "train_time_s": round(self.elapsed, 1), "torch": str(torch.__version__),
                "threads": torch.get_num_threads()}
        return {**base, **self.objective.card(record)}

    def weights(self, record: dict) -> dict:
        """The shipped-weights dict (``hmrkit.models.weights``) with its card."""
        w = self.objective.export(self.model)
        if w.get("method") != self.method:
            raise ValueError(f"Trainer.weights: the objective exported {w.get('method')!r} weights, not {self.method!r}")
        return {**w, "card": self.card(record)}

    def save_weights(self, path, record: dict) -> Path:
        from hmrkit.models.weights import save_weights

        return save_weights(self.weights(record), path)

    def export_weights(self, path) -> Path:
        """The weights of a stopped run (its last.pt, which must match this configuration),
        with the card of its last logged record."""
        self.load()
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        records = [r for r in (json.loads(x) for x in lines if x.strip()) if r.get("step") == self.step]
        if not records:
            raise InputError(self.log_path, f"no record of step {self.step} in this run's log; cannot write its card")
        return self.save_weights(path, records[-1])


def tqdm_hook(bar) -> Callable[[dict], None]:
    """A progress hook for ``Trainer.train``: one tick per step, the step's loss shown."""

    def hook(log: dict) -> None:
        bar.update(1)
        if "loss" in log:
            bar.set_postfix(loss=f"{log['loss']:.3g}", refresh=False)

    return hook
