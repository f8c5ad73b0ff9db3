"""Which motion-capture subjects train, validate and test: the split is by CMU *subject and
motion type*, never by frame, so validation and test measure generalisation to motions and
people that training never saw (docs/synthetic_data.md, "Splits").

- train: subjects 01 (playground), 02 (walk, run, jump, punch, kick), 03 (uneven terrain),
  06 (basketball), 07 (walks), 131;
- val:   subject 61 (salsa, the follow) and subject 05's modern dance, takes 11-20;
- test:  subject 60 (salsa, the lead) and subject 05's modern dance, takes 01-10.

Salsa and modern dance are motion types training never sees; val and test share them but
not their takes (60 and 61 are different people; 05's takes are different dances).
``split="all"`` is every subject (the library as a whole), and ``"train"`` is the
in-distribution split: sets drawn from it overstate a regressor trained on it.
"""

from __future__ import annotations

import re
from pathlib import Path

SPLITS = ("train", "val", "test")
SPLIT_CHOICES = SPLITS + ("all",)

# CMU subject -> motion type (the CMU database's own descriptions, shortened)
MOTIONS = {
    "01": "playground", "02": "walk, run, jump, punch, kick", "03": "uneven terrain", "05": "modern dance",
    "06": "basketball", "07": "walks", "60": "salsa (lead)", "61": "salsa (follow)", "131": "CMU 131",
}
_TRAIN = ("01", "02", "03", "06", "07", "131")


def subject_take(source: str) -> tuple[str, int]:
    """'02_05.amc', 'cmu_60_01.bvh', 'cmu_05_12.bvh:mirrored' -> ('02', 5), ('60', 1), ('05', 12)."""
    name = Path(str(source).split(":", 1)[0]).name
    m = re.search(r"(\d+)_(\d+)\.(amc|bvh)$", name, re.IGNORECASE)
    if m is None:
        raise ValueError(f"{source!r}: not a CMU clip name (SUBJECT_TAKE.amc or cmu_SUBJECT_TAKE.bvh)")
    return m.group(1), int(m.group(2))


def split_of(source: str) -> str:
    """The split ('train', 'val' or 'test') of a clip, by its CMU subject and take."""
    subject, take = subject_take(source)
    if subject in _TRAIN:
        return "train"
    if subject == "61" or (subject == "05" and take > 10):
        return "val"
    if subject == "60" or subject == "05":
        return "test"
    raise ValueError(f"{source!r}: CMU subject {subject} has no split; add it to hmrkit.data.splits")


def check_split(split: str) -> str:
    if split not in SPLIT_CHOICES:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLIT_CHOICES)}")
    return split
