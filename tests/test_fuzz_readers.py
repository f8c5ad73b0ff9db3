"""Property-based fuzzing of the keypoint readers (hmrkit.detect.read_keypoint_file).

The property, for the COCO (results and annotations) and OpenPose JSON readers and the
hmrkit evidence npz reader: whatever the bytes, the reader either returns a
KeypointSequence every frame of which converts, with ``Observation.from_evidence``, into a
valid Observation (finite keypoints, confidences in [0, 1], a box inside a positive image
size, a camera matrix), or raises ``InputError`` with one line naming the file. Nothing
else: no other exception, no multi-line message.

Inputs: arbitrary bytes; real files with bytes flipped or cut; JSON documents of the right
layout filled with random values (NaN, infinities, nulls, huge integers, strings, nested
lists, wrong lengths); npz archives of random arrays (dtypes, shapes, conventions, image
sizes, cam_K, fps).

The budget is small for CI (``HMRKIT_FUZZ_EXAMPLES``, default 50 examples a test,
derandomized so that every run tries the same inputs); ``HMRKIT_FUZZ_EXAMPLES=2000``
searches further, with a fresh random seed each run.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from hmrkit import conventions  # noqa: E402
from hmrkit.detect import KeypointSequence, read_keypoint_file  # noqa: E402
from hmrkit.errors import InputError  # noqa: E402
from hmrkit.geometry.camera import default_intrinsics, intrinsics_problem  # noqa: E402
from hmrkit.types import Observation  # noqa: E402

_N = int(os.environ.get("HMRKIT_FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=_N, deadline=None, derandomize=_N <= 50, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_TMP: list = []  # the module's scratch folder (hypothesis reuses it for every example)


@pytest.fixture(scope="module", autouse=True)
def _scratch():
    _TMP.append(Path(tempfile.mkdtemp(prefix="hmrkit-fuzz-")))
    yield
    shutil.rmtree(_TMP.pop(), ignore_errors=True)


def _file(name: str, data: bytes) -> Path:
    p = _TMP[-1] / name
    p.write_bytes(data)
    return p


# ----------------------------------------------------------------------------- the property


def check_reader(path: Path, image_size=None) -> None:
    """read_keypoint_file(path) is a valid KeypointSequence or a one-line InputError."""
    try:
        seq = read_keypoint_file(path, image_size=image_size)
    except InputError as e:
        msg = str(e)
        assert msg and "\n" not in msg, repr(msg)
        assert path.name in msg, msg
        return
    for w in seq.warnings:
        assert "\n" not in w, w
    check_sequence(seq)


def check_sequence(seq) -> None:
    assert isinstance(seq, KeypointSequence)
    assert len(seq.frames) >= 1 and any(seq.frames), "a sequence holds somebody"
    k = len(conventions.get(seq.convention))
    if seq.cam_K is not None:
        assert seq.cam_K.shape == (len(seq.frames), 3, 3)
    for t, people in enumerate(seq.frames):
        if not people:
            continue
        for ev in people:
            kp = np.asarray(ev.keypoints2d)
            assert kp.shape == (k, 3) and ev.convention == seq.convention
            assert np.isfinite(kp).all(), "keypoints are finite (NaN / inf are missing)"
            assert ((kp[:, 2] >= 0) & (kp[:, 2] <= 1)).all()
            assert (kp[kp[:, 2] == 0] == 0).all(), "missing keypoints are zeros"
            h, w = ev.image_size
            assert isinstance(h, int) and isinstance(w, int) and h >= 1 and w >= 1
            ok = kp[:, 2] > 0
            assert ok.any()
            x, y = kp[ok, 0], kp[ok, 1]
            assert ((x >= 0) & (x <= w) & (y >= 0) & (y <= h)).any(), "somebody inside the image"
            b = np.asarray(ev.bbox, np.float64)
            assert np.isfinite(b).all() and b[0] <= b[2] and b[1] <= b[3]
            assert b.min() >= 0 and b[2] <= w - 1 + 1e-3 and b[3] <= h - 1 + 1e-3
        if seq.cam_K is not None:
            K = np.asarray(seq.cam_K[t])
            assert intrinsics_problem(K) is None, intrinsics_problem(K)
        else:
            K = np.stack([default_intrinsics(*ev.image_size).numpy() for ev in people])
        obs = Observation.from_evidence(people, K)
        assert obs.batch_size == len(people)
        assert bool(obs.body.isfinite().all()) and bool(obs.bbox.isfinite().all())
        assert bool((obs.image_size >= 1).all())


# ----------------------------------------------------------------------------- strategies

_odd_numbers = st.sampled_from([0, -1, 1, 2, 0.5, 1e6 + 1, -1e7, 1e300, -1e300, 10 ** 400, -(10 ** 30), 20001,
                                float("nan"), float("inf"), float("-inf")])
_number = st.one_of(
    st.floats(0, 2000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10 ** 6), 10 ** 6),
    _odd_numbers,
)
_value = st.one_of(_number, st.none(), st.booleans(), st.text(max_size=3))
_json_any = st.recursive(_value, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=4),
                         max_leaves=20)


def _chance(k: int):
    """True about once in k + 1 draws (False first: hypothesis favours and shrinks towards
    the first choice, so a failing example keeps only the oddities it needs)."""
    return st.sampled_from([False] * k + [True])


def _mostly(good, odd, k: int = 4):
    """``good`` about k times in k + 1, else ``odd``."""
    return _chance(k).flatmap(lambda is_odd: odd if is_odd else good)


def _numbers(n: int):
    """A list of n numbers (mostly), with odd values, nulls, strings, wrong lengths."""
    return st.one_of(
        st.lists(st.floats(0, 1000), min_size=n, max_size=n),
        st.lists(st.one_of(st.floats(0, 1000), _number, st.none()), min_size=n, max_size=n),
        st.lists(_number, min_size=n, max_size=n),
        _mostly(st.lists(_value, min_size=n, max_size=n),
                st.one_of(st.lists(_number, min_size=max(0, n - 2), max_size=n + 2), _json_any), k=1),
    )


_ids = st.one_of(st.integers(0, 3), st.text(max_size=2), st.sampled_from([None, 1.5, True, [1], {"a": 1}, 10 ** 40]))

_coco_entry = st.fixed_dictionaries(
    {"image_id": _ids, "keypoints": _numbers(51)},
    optional={"score": _value, "bbox": _numbers(4), "category_id": st.just(1)},
)
coco_results = _mostly(st.lists(_mostly(_coco_entry, _json_any, k=6), min_size=1, max_size=4), st.just([]))

_image = st.fixed_dictionaries({"id": st.integers(0, 3), "width": st.integers(1, 2000), "height": st.integers(1, 2000)},
                                optional={"file_name": st.text(max_size=4)})
_odd_image = st.one_of(st.fixed_dictionaries({"id": _ids, "width": _value, "height": _value}), _json_any)
coco_annotations = st.fixed_dictionaries({
    "images": _mostly(st.lists(_mostly(_image, _odd_image, k=8), min_size=1, max_size=3), st.just([])),
    "annotations": _mostly(st.lists(min_size=1, max_size=4, elements=_mostly(
        st.fixed_dictionaries({"image_id": _mostly(st.integers(0, 3), _ids), "keypoints": _numbers(51)},
                              optional={"iscrowd": _mostly(st.sampled_from([0, 1, False]), _value),
                                        "bbox": _numbers(4)}),
        _json_any, k=8)), st.just([])),
})

_openpose_person = st.fixed_dictionaries({"pose_keypoints_2d": _mostly(_numbers(75), st.just([]))}, optional={
    "hand_left_keypoints_2d": st.one_of(_numbers(63), st.just([])),
    "hand_right_keypoints_2d": st.one_of(_numbers(63), st.just([])),
    "face_keypoints_2d": st.one_of(_numbers(210), st.just([])),
    "person_id": st.just([-1]),
})
openpose = st.fixed_dictionaries({"people": _mostly(st.lists(_mostly(_openpose_person, _json_any, k=6), min_size=1,
                                                              max_size=3), st.just([]))},
                                 optional={"version": st.just(1.3)})

image_sizes = st.one_of(st.none(), st.tuples(st.integers(1, 3000), st.integers(1, 3000)))


def _dumps(doc) -> bytes:
    try:
        return json.dumps(doc).encode()
    except ValueError:  # an integer too long for Python's int -> str
        return b"[]"


# a valid file of each kind, to be damaged
_KP = np.zeros((2, 1, 17, 3), np.float32)
_KP[..., 0], _KP[..., 1], _KP[..., 2] = 100.0, 150.0, 0.9
_KP[:, :, ::2, :2] += 40.0


def _good_npz(compressed: bool) -> bytes:
    buf = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(buf, keypoints2d=_KP, convention=np.array("coco17"), image_size=np.array([480, 640]),
         cam_K=np.tile(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), (2, 1, 1)), fps=np.array(25.0))
    return buf.getvalue()


_GOOD = {
    "coco.json": _dumps([{"image_id": 1, "category_id": 1, "keypoints": _KP[0, 0].ravel().tolist(), "score": 0.9}]),
    "openpose.json": _dumps({"people": [{"pose_keypoints_2d": [100.0, 150.0, 0.9] * 25}]}),
    "ann.json": _dumps({"images": [{"id": 1, "width": 640, "height": 480}],
                        "annotations": [{"image_id": 1, "keypoints": [100, 150, 2] * 17}]}),
    "ev.npz": _good_npz(False),
    "evz.npz": _good_npz(True),
}


@st.composite
def damaged(draw):
    """(name, bytes): a valid file with some bytes replaced, cut short, or both."""
    name = draw(st.sampled_from(sorted(_GOOD)))
    data = bytearray(_GOOD[name])
    for _ in range(draw(st.integers(0, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return name, bytes(data)


_CONVENTIONS = ["coco17", "holistic", "mediapipe33", "openpose25"]
_K_OF = {c: len(conventions.get(c)) for c in _CONVENTIONS}


@st.composite
def npz_files(draw) -> bytes:
    """An npz of random arrays under the evidence keys; each key is odd (dtype, shape,
    values, left out) now and then, so that many files are also valid."""
    def odd(k: int = 6) -> bool:
        return draw(_chance(k))

    conv = draw(st.sampled_from(_CONVENTIONS)) if not odd() else draw(st.sampled_from(["coco18", ""]))
    T, P = draw(st.integers(1, 3)) if not odd() else 0, draw(st.integers(1, 2)) if not odd() else 0
    K = _K_OF.get(conv, 17) if not odd(12) else draw(st.integers(1, 40))
    arrays = {}
    kp_dtype = np.float32 if not odd() else draw(st.sampled_from([np.float64, np.int16, np.uint8, np.bool_,
                                                                   np.complex64, "<U3"]))
    kp_shape = (T, P, K, 3) if not odd(12) else draw(hnp.array_shapes(min_dims=0, max_dims=5, max_side=3))
    kp_elems = None
    if np.dtype(kp_dtype).kind == "f":
        kp_elems = st.one_of(st.floats(0, 800, width=32), st.floats(0, 1, width=32),
                             st.floats(width=32, allow_nan=True, allow_infinity=True),
                             st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2e6, -3e7, 1e30, float("nan")]))
    arrays["keypoints2d"] = draw(hnp.arrays(kp_dtype, kp_shape, elements=kp_elems))
    arrays["convention"] = np.array(conv) if not odd(12) else draw(st.sampled_from(
        [np.array([conv, conv]), np.array(3.0), np.array(conv.encode())]))
    if not odd():
        size = np.array([draw(st.integers(1, 3000)), draw(st.integers(1, 3000))])
    else:
        size = draw(st.sampled_from([np.array([0, 5]), np.array([np.nan, 5.0]), np.array([np.inf, 4.0]),
                                     np.array([1e12, 10.0]), np.array([-3, 4]), np.array([5, 5, 5]), np.array(7),
                                     np.array([True, True]), np.array([3 + 1j, 4]), np.array([480.7, 640.2])]))
    arrays["image_size"] = size
    if draw(st.booleans()):
        base = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
        variants = [base, base, base, np.zeros((3, 3)), base * [[-1], [-1], [1]], np.eye(3) * [1, 1, 0],
                    base * 2, np.full((3, 3), np.nan), np.ones((3, 3))]
        if not odd():
            cam = np.stack([variants[draw(st.integers(0, len(variants) - 1))] for _ in range(T)]) \
                if T else np.zeros((0, 3, 3))
        else:
            cam = draw(hnp.arrays(np.float64, draw(st.sampled_from([(T + 1, 3, 3), (3, 3), (T, 3, 4)]))))
        arrays["cam_K"] = cam
    if draw(st.booleans()):
        arrays["fps"] = draw(st.sampled_from([np.array(25.0), np.array(30), np.array(0.0), np.array(-3),
                                              np.array(np.inf), np.array([25.0]), np.array(30 + 1j),
                                              np.array(np.nan)]))
    for key in list(arrays):
        if odd(20):
            del arrays[key]
    buf = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buf, **arrays)
    return buf.getvalue()


# ----------------------------------------------------------------------------- the tests


@FUZZ
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".json", ".npz"]))
def test_arbitrary_bytes(data, suffix):
    check_reader(_file(f"bytes{suffix}", data))


@FUZZ
@given(file=damaged())
def test_damaged_files(file):
    name, data = file
    check_reader(_file(f"damaged_{name}", data))


@FUZZ
@given(doc=st.one_of(coco_results, _json_any), image_size=image_sizes)
def test_coco_results_json(doc, image_size):
    check_reader(_file("coco_results.json", _dumps(doc)), image_size)


@FUZZ
@given(doc=coco_annotations)
def test_coco_annotations_json(doc):
    check_reader(_file("coco_annotations.json", _dumps(doc)))


@FUZZ
@given(doc=openpose, image_size=image_sizes)
def test_openpose_json(doc, image_size):
    check_reader(_file("openpose.json", _dumps(doc)), image_size)


@FUZZ
@given(data=npz_files())
def test_evidence_npz(data):
    check_reader(_file("evidence.npz", data))


def test_the_good_files_are_read():
    """The undamaged seeds are valid (so the damaged ones start from something real)."""
    for name, data in _GOOD.items():
        seq = read_keypoint_file(_file(name, data), image_size=None if name.endswith(".npz") or name == "ann.json"
                                 else (480, 640))
        check_sequence(seq)
        assert not math.isnan(float(seq.frames[0][0].keypoints2d[0, 0]))
