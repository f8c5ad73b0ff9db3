"""Evaluation protocols: the fixed-seed synthetic test sets every method is evaluated on,
and SPIN's preprocessed 3DPW / Human3.6M files with the user's images. See docs/eval.md.

The code lives by concern; this module gathers its public names:

- ``specs``: data specs (``parse_data_spec``; the grammar is in its docstring).
- ``sets``: building the synthetic sets (``build_synthetic``).
- ``benchmarks``: the 3DPW / H36M pieces (rows, ground-truth models, J14 joints).
- ``detection``: the default detector and matching a detection to a person's box.
- ``runner``: running an estimator on a set's inputs (``run_estimator``).
- ``loop``: ``evaluate_synthetic``, ``evaluate_dataset``, ``evaluate`` (the metrics are
  in its docstring).
"""

from hmrkit.eval.benchmarks import load_ground_truth_models, read_dataset
from hmrkit.eval.detection import default_detector, detect_in_box, match_detection
from hmrkit.eval.loop import EvalResult, evaluate, evaluate_dataset, evaluate_synthetic
from hmrkit.eval.runner import EvalInputs, Estimates, run_estimator
from hmrkit.eval.sets import SyntheticSet, build_synthetic, rendered_scene
from hmrkit.eval.specs import DATASET_KINDS, SYNTHETIC_KINDS, DatasetSpec, SyntheticSpec, parse_data_spec, spec_frames

__all__ = [
    "SYNTHETIC_KINDS", "DATASET_KINDS", "SyntheticSpec", "DatasetSpec", "parse_data_spec", "EvalInputs",
    "Estimates", "EvalResult", "SyntheticSet", "run_estimator", "build_synthetic", "evaluate_synthetic",
    "evaluate_dataset", "evaluate", "read_dataset", "match_detection", "detect_in_box", "default_detector",
    "rendered_scene", "spec_frames", "load_ground_truth_models",
]
