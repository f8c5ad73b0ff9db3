"""Odd inputs, end to end: every one gets a clear answer from ``hmrkit run``.

The rule: a failure a user can cause is an ``InputError`` shown as ONE stderr line
(``hmrkit: <file>: <problem>; <what to do>``), exit code 1, and no output file for that
input; an unexpected exception is one line with its type and the input ("a bug in
hmrkit"). Nothing is fitted to nonsense:

- keypoints: NaN / infinite / null values are missing keypoints (a file works while a
  keypoint is left); coordinates beyond 1e6 px are missing too; a person whose every
  keypoint lies outside the image is dropped; an image size guessed from keypoints beyond
  20000 px is refused; JSON nested thousands deep is refused;
- cam_K in an evidence npz must be a camera matrix (not zeros, singular, negative focal);
- --focal / --fov must be possible (refused before anything loads);
- images: each side at least 8 px and at most 32:1 for the person detector; a person is
  estimated only above the pipeline's floor (``hmrkit.pipeline.not_a_person``: >= 6
  confident body keypoints, most inside the image, spanning >= 24 px) and the detector's
  (boxes >= 40 px high): a 16 px thumbnail of a person is "nobody found", not a fit.

Runs use ``--method spin`` (one forward pass) and ``--no-overlay`` to stay fast.
"""

from __future__ import annotations

import functools
import json
import struct

import numpy as np
import pytest
from PIL import Image

from conftest import data_path, one_line_error, run_cli
from hmrkit.conventions import convert_with_confidence

FAST = ("--method", "spin", "--no-overlay", "--fit-iters", "5")
H, W = 599, 400  # tests/data/images/lunge_pexels.jpg


# ----------------------------------------------------------------------------- helpers


one_line_error = functools.partial(one_line_error, forbid_internal=True)


def outputs(out):
    """The files an input left in the output folder (summary.json aside)."""
    return sorted(p.name for p in out.iterdir() if p.name != "summary.json") if out.exists() else []


def assert_fails(capfd, tmp_path, src, *needles, args=(), names_file=True):
    """One input that must fail: exit 1, one line naming it (and the needles), no output."""
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, *args, "--out", out, *FAST)
    assert code == 1, (code, err)
    one_line_error(err, *((src,) if names_file else ()), *needles)
    assert stdout == []
    assert outputs(out) == [], f"a failed input left files behind: {outputs(out)}"
    return err[0]


# The person of lunge_pexels.jpg as MediaPipe Holistic sees it, recorded once (116 x 3
# holistic: x, y px, confidence) so that these tests need no detector run.
@pytest.fixture(scope="module")
def person(lunge_keypoints):
    return lunge_keypoints


def coco(person):
    return convert_with_confidence(person, "holistic", "coco17")


def write_coco_results(path, *people):
    path.write_text(json.dumps([{"image_id": 1, "category_id": 1, "keypoints": k.ravel().tolist(), "score": 0.9}
                                for k in people]))
    return path


def write_coco_annotations(path, *people, size=(H, W)):
    anns = []
    for k in people:
        k = k.copy()
        k[:, 2] = np.where(k[:, 2] > 0.5, 2, 0)
        anns.append({"image_id": 1, "category_id": 1, "keypoints": k.ravel().tolist(), "iscrowd": 0})
    path.write_text(json.dumps({"images": [{"id": 1, "width": size[1], "height": size[0], "file_name": "x.jpg"}],
                                "annotations": anns}))
    return path


def write_openpose(path, person):
    body = convert_with_confidence(person, "holistic", "openpose25")
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": body.ravel().tolist()}]}))
    return path


def write_npz(path, kp_holistic, cam_K=None, size=(H, W)):
    arrays = dict(keypoints2d=np.asarray(kp_holistic, np.float32)[None, None], convention=np.array("holistic"),
                  image_size=np.array(size))
    if cam_K is not None:
        arrays["cam_K"] = np.asarray(cam_K, np.float64)[None]
    with open(path, "wb") as f:  # np.savez itself: write_evidence_npz refuses NaN on purpose
        np.savez(f, **arrays)
    return path


def shifted(kp, scale=1.0, dx=0.0, dy=0.0):
    k = np.array(kp, np.float64)
    k[:, 0] = k[:, 0] * scale + dx
    k[:, 1] = k[:, 1] * scale + dy
    return k


# ----------------------------------------------------------------------------- nonsense coordinates


@pytest.mark.parametrize("case", ["huge", "all-negative", "outside-annotations", "outside-npz", "guessed-too-large"])
def test_nonsense_coordinates_are_not_fitted(case, person, tmp_path, capfd):
    if case == "huge":  # COCO results, no image size: 1e9 times the pixel coordinates
        src, words = write_coco_results(tmp_path / "huge.json", shifted(coco(person), 1e9)), "beyond 1,000,000 px"
    elif case == "all-negative":
        src = write_coco_results(tmp_path / "neg.json", shifted(coco(person), 1.0, -1e4, -1e4))
        words = "negative x or y"
    elif case == "outside-annotations":  # COCO annotations give the image size; the person is far outside
        src = write_coco_annotations(tmp_path / "far.json", shifted(coco(person), 1.0, 5000, 5000))
        words = f"outside the image (H, W) = ({H}, {W})"
    elif case == "outside-npz":
        src, words = write_npz(tmp_path / "far.npz", shifted(person, 1.0, -3000, 0)), "outside the image"
    else:  # within 1e6 px but beyond any photo, and no image size to say otherwise
        src, words = write_coco_results(tmp_path / "big.json", shifted(coco(person), 100.0)), "pass the image size"
    assert_fails(capfd, tmp_path, src, words, args=("--keypoints", src))


def test_a_person_outside_is_dropped_the_other_estimated(person, tmp_path, capfd):
    src = write_coco_annotations(tmp_path / "two.json", coco(person), shifted(coco(person), 1.0, 5000, 0))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, "--keypoints", src, "--out", out, *FAST)
    assert code == 0, err
    assert len(err) == 1 and err[0].startswith("hmrkit: warning: ") and "1 person(s) dropped" in err[0], err
    with np.load(out / "two.npz", allow_pickle=False) as z:
        assert z["valid"].tolist() == [[True]]


def test_a_few_huge_coordinates_are_missing_keypoints(person, tmp_path, capfd):
    kp = person.copy()
    kp[[0, 5], 0] = 3e9
    src = write_npz(tmp_path / "glitch.npz", kp)
    out = tmp_path / "out"
    code, _, err = run_cli(capfd, "--keypoints", src, "--out", out, *FAST)
    assert code == 0, err
    assert len(err) == 1 and "2 keypoint(s) beyond 1,000,000 px" in err[0] and "warning" in err[0], err
    with np.load(out / "glitch.npz", allow_pickle=False) as z:
        assert z["valid"].tolist() == [[True]]
        assert (z["evidence_keypoints2d"][0, 0, [0, 5]] == 0).all()


def test_a_person_below_the_floor_is_not_estimated(person, tmp_path, capfd):
    """The pipeline's floor (not_a_person): keypoints spanning 16 px are no person to fit."""
    src = write_npz(tmp_path / "tiny_person.npz", shifted(person, 16 / 400, 10, 10))
    out = tmp_path / "out"
    code, _, err = run_cli(capfd, "--keypoints", src, "--out", out, *FAST)
    assert code == 0
    assert len(err) == 1 and "1 detection(s) not estimated (person smaller than 24 px)" in err[0], err
    with np.load(out / "tiny_person.npz", allow_pickle=False) as z:
        assert not z["valid"].any()


# ----------------------------------------------------------------------------- cameras


@pytest.mark.parametrize("name, K, words", [
    ("zeros", np.zeros((3, 3)), "all zeros"),
    ("singular", [[500, 0, 200], [0, 500, 300], [0, 0, 0]], "singular"),
    ("rank-one", [[500, 500, 200], [500, 500, 300], [0, 0, 1]], "singular"),
    ("negative-focal", [[-500, 0, 200], [0, -500, 300], [0, 0, 1]], "focal lengths must be positive"),
    ("nan", np.full((3, 3), np.nan), "NaN"),
])
def test_cam_K_that_is_no_camera(name, K, words, person, tmp_path, capfd):
    src = write_npz(tmp_path / f"cam_{name}.npz", person, cam_K=K)
    line = assert_fails(capfd, tmp_path, src, "cam_K of frame 0 is not a camera matrix", words,
                        args=("--keypoints", src))
    assert "without cam_K" in line  # what to do


@pytest.mark.parametrize("flag, words", [
    (("--focal", "-5"), "--focal must be a positive number of pixels, got -5"),
    (("--focal", "nan"), "--focal must be a positive number"),
    (("--fov", "400"), "--fov must be between 0 and 180 degrees (exclusive), got 400"),
    (("--fov", "0"), "--fov must be between 0 and 180 degrees (exclusive), got 0"),
])
def test_impossible_camera_flags(flag, words, tmp_path, capfd):
    img = tmp_path / "gray.png"
    Image.new("RGB", (64, 48), (128, 128, 128)).save(img)
    assert_fails(capfd, tmp_path, img, words, args=(img, *flag), names_file=False)


# ----------------------------------------------------------------------------- images


@pytest.mark.parametrize("size, words", [
    ((1, 1), "image too small for the person detector (1x1 px"),
    ((1, 4000), "image too thin for the person detector (1x4000 px"),
    ((4000, 8), "image too thin for the person detector (4000x8 px, beyond 32:1)"),
])
def test_image_too_small_or_thin_for_the_detector(size, words, tmp_path, capfd):
    img = tmp_path / "strip.png"
    Image.new("RGB", size, (128, 128, 128)).save(img)
    assert_fails(capfd, tmp_path, img, words, args=(img,))


def test_image_too_small_names_the_file(tmp_path, capfd):
    img = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (128, 128, 128)).save(img)
    assert_fails(capfd, tmp_path, img, "too small", args=(img,))


def test_read_image_for_the_detector_names_the_file(tmp_path):
    from hmrkit.errors import InputError
    from hmrkit.io.images import read_image

    img = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (128, 128, 128)).save(img)
    assert read_image(img).shape == (1, 1, 3)  # decoding alone takes any size
    with pytest.raises(InputError, match=r"dot.png: image too small for the person detector \(1x1 px"):
        read_image(img, for_detector=True)


def test_a_16_px_image_has_nobody(tmp_path, capfd):
    img = tmp_path / "small.png"
    Image.new("RGB", (16, 16), (128, 128, 128)).save(img)
    out = tmp_path / "out"
    code, _, err = run_cli(capfd, img, "--out", out, *FAST)
    assert code == 0
    one_line_error(err, "warning", img, "nobody found")


def test_a_16_px_thumbnail_of_a_person_is_not_fitted(tmp_path, capfd):
    """The detector sees something in a 16 px thumbnail of the lunge photo, but a box of a
    few px is below its 40 px floor: nobody is estimated."""
    with Image.open(data_path("images", "lunge_pexels.jpg")) as im:
        thumb = im.convert("RGB").resize((11, 16), Image.LANCZOS)
    img = tmp_path / "thumb.png"
    thumb.save(img)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, img, "--out", out, *FAST)
    assert code == 0
    # what the detector saw is reported, not silently dropped; then the verdict
    assert len(err) == 2, err
    assert "person(s) found but not estimated (too small, e.g. box" in err[0] and str(img) in err[0]
    one_line_error(err[1:], "warning", img, "nobody found")
    assert stdout == [f"hmrkit: 1 input(s), 1 frame(s) (1 without a person), 0 people -> {out}/"]
    with np.load(out / "thumb.npz", allow_pickle=False) as z:
        assert z["valid"].size == 0 or not z["valid"].any()


# ----------------------------------------------------------------------------- pathological files


@pytest.mark.parametrize("layout", ["list", "openpose"])
def test_json_nested_5000_deep(layout, tmp_path, capfd):
    src = tmp_path / "deep.json"
    deep = "[" * 5000 + "]" * 5000
    src.write_text(deep if layout == "list" else '{"people": ' + deep + "}")
    assert_fails(capfd, tmp_path, src, "JSON nested too deep", args=("--keypoints", src))


def test_npz_that_unpacks_to_gigabytes(tmp_path, capfd):
    """A zip whose members say they unpack to 12 GiB is refused before anything unpacks."""
    src = write_npz(tmp_path / "bomb.npz", np.zeros((116, 3)))
    data = bytearray(src.read_bytes())
    i = 0
    while (i := data.find(b"PK\x01\x02", i)) >= 0:  # central directory: uncompressed size at +24
        struct.pack_into("<I", data, i + 24, 0xFFFFFFF0)
        i += 4
    src.write_bytes(bytes(data))
    assert_fails(capfd, tmp_path, src, "GiB", args=("--keypoints", src))


# ----------------------------------------------------------------------------- missing keypoints


@pytest.mark.parametrize("kind", ["npz", "coco", "openpose"])
def test_one_nan_keypoint_is_a_missing_keypoint(kind, person, tmp_path, capfd):
    kp = person.copy()
    if kind == "npz":
        kp[3, 0] = np.nan
        src = write_npz(tmp_path / "nan.npz", kp)
    elif kind == "coco":
        c = coco(person)
        c[5, 0] = np.nan  # json writes NaN, which Python's json (and hmrkit) reads
        src = write_coco_results(tmp_path / "nan.json", c)
    else:
        kp[0, 1] = np.inf
        src = write_openpose(tmp_path / "nan.json", kp)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, "--keypoints", src, "--out", out, *FAST)
    assert code == 0, err
    if kind == "npz":
        assert err == []
    else:  # COCO results and OpenPose carry no image size: that warning only
        assert len(err) == 1 and "gives no image size" in err[0], err
    with np.load(out / "nan.npz", allow_pickle=False) as z:
        assert z["valid"].tolist() == [[True]]
        assert np.isfinite(z["evidence_keypoints2d"]).all() and np.isfinite(z["vertices"]).all()


def test_all_nan_keypoints_is_nobody(person, tmp_path, capfd):
    src = write_npz(tmp_path / "allnan.npz", np.full_like(person, np.nan))
    assert_fails(capfd, tmp_path, src, "no person with a keypoint of confidence > 0", "NaN or infinite",
                 args=("--keypoints", src))


# ----------------------------------------------------------------------------- unexpected errors


def test_an_unexpected_error_is_one_line_with_its_type_and_input(person, tmp_path, capfd, monkeypatch):
    import hmrkit.detect

    def broken(path, image_size=None):
        raise IndexError("injected\nsecond line")

    monkeypatch.setattr(hmrkit.detect, "read_keypoint_file", broken)
    src = write_npz(tmp_path / "fine.npz", person)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, "--keypoints", src, "--out", out, *FAST)
    assert code == 1
    assert len(err) == 1, err
    assert err[0].startswith(f"hmrkit: {src}: IndexError: injected") and "(a bug in hmrkit;" in err[0], err
    assert "second line" not in err[0]
    assert outputs(out) == []
