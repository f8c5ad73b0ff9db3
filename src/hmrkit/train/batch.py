"""``TrainBatch``: what one training step of any learned method reads.

One frozen dataclass for every method (SPIN, and next PARE, MAED, PIXIE, DynaBOA): every
field but ``indices`` is optional, each method fills what it supervises and reads what it
needs. Shapes are checked when the batch is built, so a wrong one fails where it is made,
not deep in a loss.

Leading dims ``lead``: ``(B,)`` for single samples, ``(B, T)`` for B windows of T
consecutive frames (``time=T``; MAED's video windows, DynaBOA's stream). Per-frame fields
carry ``lead``; body parameters are flattened to ``B * T`` rows, frame-major within a
window (row ``b * T + t``), as ``Observation.flatten`` does. Pixels are full-image pixels
unless a field says otherwise; confidences are in [0, 1], 0 = missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Optional

import torch
from torch import Tensor

from hmrkit.models.inputs import CropInputs
from hmrkit.types import BodyParams, Observation


@dataclass(frozen=True)
class TrainBatch:
    """indices:     (B,) int64 rows of the training set in this batch (window starts for sequences).
    inputs:         the regressor's ``CropInputs``, (B,) or (B * T,) flattened.
    evidence:       the detections as an ``Observation`` (*lead,): what a fit in the loop or a
                    test-time adaptation step reads.
    kp2d:           (*lead, K, 2) 2D keypoint targets, px; kp2d_conf: (*lead, K) their weights.
    kp3d:           (*lead, K, 3) 3D keypoint labels, metres, camera frame (the loss decides
                    what to align, e.g. the pelvis); kp3d_conf: (*lead, K) their weights.
    labelled:       (*lead,) bool: samples with ground-truth labels (kp3d, params).
    params:         BodyParams (prod(lead),): body parameter targets (ground truth, or
                    pseudo ground truth such as SPIN's stored fits).
    params_weight:  (*lead,) float: how much each row of ``params`` supervises (0: not at all);
                    None: ``labelled``.
    part_seg:       (*lead, H, W) int64 part labels at the feature volume's resolution,
                    aligned with the crop: 0 background, 1..P body parts, -1 ignore (PARE).
    mask:           (*lead, H, W) float in [0, 1] person mask aligned with the crop.
    time:           T for sequences (then lead = (B, T)), None for single samples.
    frame_valid:    (B, T) bool: frames of a window that exist (padding is False).
    hands2d:        (*lead, 2, 21, 3) left then right hand (hand21) px + confidence.
    hand_pose:      (*lead, 2, J, 3, 3) left then right hand joint rotations (PIXIE's hand
                    expert); hand_valid: (*lead, 2) bool which of them are labels.
    face2d:         (*lead, F, 3) face landmarks px + confidence.
    expression:     (*lead, E) facial expression labels; face_valid: (*lead,) bool.
    extras:         method-specific tensors, each (B, ...) (or (*lead, ...)).
    """

    indices: Optional[Tensor] = None
    inputs: Optional[CropInputs] = None
    evidence: Optional[Observation] = None
    kp2d: Optional[Tensor] = None
    kp2d_conf: Optional[Tensor] = None
    kp3d: Optional[Tensor] = None
    kp3d_conf: Optional[Tensor] = None
    labelled: Optional[Tensor] = None
    params: Optional[BodyParams] = None
    params_weight: Optional[Tensor] = None
    part_seg: Optional[Tensor] = None
    mask: Optional[Tensor] = None
    time: Optional[int] = None
    frame_valid: Optional[Tensor] = None
    hands2d: Optional[Tensor] = None
    hand_pose: Optional[Tensor] = None
    hand_valid: Optional[Tensor] = None
    face2d: Optional[Tensor] = None
    expression: Optional[Tensor] = None
    face_valid: Optional[Tensor] = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        B = self._batch_size()
        if B is None:
            raise ValueError("TrainBatch: empty (give at least indices, inputs or evidence)")
        if self.time is not None and (not isinstance(self.time, int) or self.time < 1):
            raise ValueError(f"TrainBatch.time: expected a number of frames >= 1, got {self.time!r}")
        lead = (B,) if self.time is None else (B, self.time)
        rows = math.prod(lead)

        def check(name, value, shape, dtype=None):
            if value is None:
                return
            got = tuple(value.shape)
            ok = len(got) == len(shape) and all(s is None or s == g for s, g in zip(shape, got))
            if not ok:
                want = tuple("*" if s is None else s for s in shape)
                raise ValueError(f"TrainBatch.{name}: expected shape {want}, got {got}")
            if dtype == "bool" and value.dtype != torch.bool:
                raise ValueError(f"TrainBatch.{name}: expected a bool tensor, got {value.dtype}")
            if dtype == "int" and (value.dtype.is_floating_point or value.dtype == torch.bool):
                raise ValueError(f"TrainBatch.{name}: expected an integer tensor, got {value.dtype}")
            if dtype == "float" and not value.dtype.is_floating_point:
                raise ValueError(f"TrainBatch.{name}: expected a float tensor, got {value.dtype}")

        check("indices", self.indices, (B,), "int")
        if self.inputs is not None and self.inputs.batch_size != rows:
            raise ValueError(f"TrainBatch.inputs: expected {rows} rows, got {self.inputs.batch_size}")
        if self.evidence is not None and self.evidence.lead != lead:
            raise ValueError(f"TrainBatch.evidence: expected leading dims {lead}, got {self.evidence.lead}")
        K2 = None if self.kp2d is None else self.kp2d.shape[-2]
        check("kp2d", self.kp2d, lead + (None, 2), "float")
        check("kp2d_conf", self.kp2d_conf, lead + (K2,), "float")
        if self.kp2d_conf is not None and self.kp2d is None:
            raise ValueError("TrainBatch.kp2d_conf: given without kp2d")
        K3 = None if self.kp3d is None else self.kp3d.shape[-2]
        check("kp3d", self.kp3d, lead + (None, 3), "float")
        check("kp3d_conf", self.kp3d_conf, lead + (K3,), "float")
        if self.kp3d_conf is not None and self.kp3d is None:
            raise ValueError("TrainBatch.kp3d_conf: given without kp3d")
        check("labelled", self.labelled, lead, "bool")
        if self.params is not None and self.params.batch_size != rows:
            raise ValueError(f"TrainBatch.params: expected {rows} rows (prod of {lead}), got {self.params.batch_size}")
        check("params_weight", self.params_weight, lead, "float")
        if self.params_weight is not None and self.params is None:
            raise ValueError("TrainBatch.params_weight: given without params")
        check("part_seg", self.part_seg, lead + (None, None), "int")
        check("mask", self.mask, lead + (None, None), "float")
        if self.frame_valid is not None and self.time is None:
            raise ValueError("TrainBatch.frame_valid: given without time (a sequence batch)")
        check("frame_valid", self.frame_valid, lead, "bool")
        check("hands2d", self.hands2d, lead + (2, 21, 3), "float")
        check("hand_pose", self.hand_pose, lead + (2, None, 3, 3), "float")
        check("hand_valid", self.hand_valid, lead + (2,), "bool")
        check("face2d", self.face2d, lead + (None, 3), "float")
        check("expression", self.expression, lead + (None,), "float")
        check("face_valid", self.face_valid, lead, "bool")
        for name, value in self.extras.items():
            if not isinstance(value, Tensor) or value.ndim == 0 or value.shape[0] != B:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"TrainBatch.extras[{name!r}]: expected a ({B}, ...) tensor, got {got}")

    def _batch_size(self) -> Optional[int]:
        if self.indices is not None:
            if self.indices.ndim != 1:
                raise ValueError(f"TrainBatch.indices: expected shape (B,), got {tuple(self.indices.shape)}")
            return int(self.indices.shape[0])
        if self.evidence is not None:
            return self.evidence.batch_size
        if self.inputs is not None:
            return self.inputs.batch_size // (self.time or 1)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Tensor) and v.ndim > 0:
                return int(v.shape[0])
        return None

    @property
    def batch_size(self) -> int:
        return self._batch_size()

    @property
    def lead(self) -> tuple:
        B = self.batch_size
        return (B,) if self.time is None else (B, self.time)

    @property
    def target_weight(self) -> Optional[Tensor]:
        """params_weight, or labelled as 0/1 where it is not given."""
        if self.params_weight is not None:
            return self.params_weight
        return None if self.labelled is None else self.labelled.to(torch.get_default_dtype())
