"""Evaluation: the standard metrics (MPJPE, PA-MPJPE, PVE, acceleration error, PCK),
readers for SPIN's preprocessed 3DPW and Human3.6M test files, and the protocols behind
``hmrkit eval`` (fixed-seed synthetic sets, 3DPW / H36M with the user's images). See
docs/metrics.md and docs/eval.md."""

from hmrkit.eval.metrics import (
    EVAL_SETS,
    J14,
    MetricSummary,
    acceleration,
    accel_error,
    accel_error_per_window,
    bbox_size,
    format_table,
    mpjpe,
    pa_mpjpe,
    pa_pve,
    pck2d,
    pelvis_indices,
    pve,
    root_align,
    root_of,
    summarize,
    to_joint_set,
    torso_size,
)
from hmrkit.eval.datasets import (
    H36MValid,
    PW3DTest,
    SMPLGroundTruth,
    load_gendered_smpl,
    read_3dpw_test,
    read_h36m_valid,
    read_spin_npz,
)
from hmrkit.eval.protocols import (
    DatasetSpec,
    EvalResult,
    SyntheticSpec,
    evaluate,
    parse_data_spec,
)

__all__ = [
    "EVAL_SETS", "J14", "MetricSummary", "acceleration", "accel_error", "accel_error_per_window",
    "bbox_size", "format_table", "mpjpe", "pa_mpjpe", "pa_pve", "pck2d", "pelvis_indices", "pve",
    "root_align", "root_of", "summarize", "to_joint_set", "torso_size",
    "H36MValid", "PW3DTest", "SMPLGroundTruth", "load_gendered_smpl", "read_3dpw_test",
    "read_h36m_valid", "read_spin_npz",
    "DatasetSpec", "EvalResult", "SyntheticSpec", "evaluate", "parse_data_spec",
]
