"""End-to-end tests of ``hmrkit run`` (hmrkit.cli.main -> hmrkit.pipeline.run).

Every case checks what a user sees and keeps:
- the exit code: 0 when at least one input produced its ``NAME.npz``, 1 when nothing could
  be produced (or the run could not start), 2 for a bad flag;
- stderr: ONE line per problem, ``hmrkit: <file>: <problem>``, naming the file; no native
  log noise from MediaPipe / TFLite / absl / Warp (the CLI filters those lines);
- nothing already written is lost or half-written: a previous result of the same name and
  the user's own files in the output folder are byte-for-byte unchanged after a failed
  run, no temporary (hidden) file is left behind, and every file there loads completely.

Fits use a small budget (the hidden ``--fit-iters`` flag) to keep the file fast; the
contract case uses 30 (camera and detail stages scaled to 10 each) and checks the fit
against the detector's keypoints with a bound measured at that budget.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import data_path, one_line_error, run_cli
from hmrkit.conventions import COCO17, HAND21, HOLISTIC, OPENPOSE25, convert_with_confidence

V_ANNY = 13718  # DESIGN.md: Anny's vertex count
CONTRACT_FIT_ITERS = 30
# Mean distance (px) between the mesh's projected COCO-17 keypoints (npz keypoints2d) and
# the detector's keypoints converted to COCO-17, over those with confidence >= 0.5, on
# tests/data/images/lunge_pexels.jpg (400 x 599, the person ~350 px tall). Measured: 4.7 px
# at 30 iterations (spin+fit, the default); the bound leaves 2x margin.
CONTRACT_MAX_MEAN_PX = 10.0


# ----------------------------------------------------------------------------- helpers


def prepare_out(out, name):
    """An output folder holding a previous result for input NAME and a file of the user's."""
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"{name}.npz", marker=np.arange(3))
    (out / "notes.txt").write_text("the user's own file\n")
    return {p.name: p.read_bytes() for p in out.iterdir()}


def assert_nothing_lost(out, before):
    for name, data in before.items():
        assert (out / name).read_bytes() == data, f"{name} was changed or lost"
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".hmrkit")
    assert hidden == [], f"temporary files left behind: {hidden}"  # .hmrkit: --resume's records
    for p in out.iterdir():  # everything there is complete
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                for k in z.files:
                    z[k]
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".png":
            with Image.open(p) as im:
                im.verify()


def body_coco(kp_holistic):
    """(116, 3) holistic -> (17, 3) COCO-17 (x, y, confidence)."""
    return convert_with_confidence(kp_holistic, "holistic", "coco17")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def detected(lunge_keypoints):
    """MediaPipe Holistic's keypoints on lunge_pexels.jpg (conftest): (116, 3) holistic."""
    return lunge_keypoints


# ----------------------------------------------------------------------------- the contract


def test_contract_on_one_photo(tmp_path, capfd):
    img = tmp_path / "lunge_pexels.jpg"
    shutil.copy(data_path("images", "lunge_pexels.jpg"), img)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, img, "--out", out, "--export", "obj,ply,glb",
                                "--fit-iters", CONTRACT_FIT_ITERS)
    assert code == 0
    assert err == [], f"a clean run prints nothing on stderr, got {err}"
    assert stdout == [f"hmrkit: 1 input(s), 1 frame(s) (0 without a person), 1 people -> {out}/"]

    with np.load(out / "lunge_pexels.npz", allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    T, P = 1, 1
    assert str(d["body_model"]) == "anny" and str(d["method"]) == "spin+fit"  # the default
    assert d["valid"].shape == (T, P) and d["valid"].dtype == bool and d["valid"].all()
    assert d["vertices"].shape == (T, P, V_ANNY, 3) and d["vertices"].dtype == np.float32
    assert np.isfinite(d["vertices"]).all()
    assert d["vertices"][..., 2].min() > 0, "camera frame: the body is in front of the camera"
    assert d["faces"].ndim == 2 and d["faces"].shape[1] == 3 and np.issubdtype(d["faces"].dtype, np.integer)
    assert d["faces"].min() == 0 and d["faces"].max() == V_ANNY - 1
    J = len(d["joint_names"])
    assert d["joints3d"].shape == (T, P, J, 3)
    assert d["keypoints3d"].shape == (T, P, 17, 3)
    assert tuple(d["keypoints3d_names"]) == COCO17
    assert d["keypoints2d"].shape == (T, P, 17, 2)
    assert d["cam_K"].shape == (T, 3, 3)
    K = d["cam_K"][0]
    assert K[0, 0] > 0 and K[1, 1] > 0 and K[2, 2] == 1
    assert d["global_orient"].shape == (T, P, 3, 3)
    assert d["body_pose"].shape[:2] == (T, P) and d["body_pose"].shape[-2:] == (3, 3)
    assert d["shape"].shape[:2] == (T, P) and d["transl"].shape == (T, P, 3)
    assert d["frame_index"].tolist() == [0]
    assert d["fps"].shape == ()
    assert d["track_id"].tolist() == [0] and d["present"].all() and d["image_size"].tolist() == [[599, 400]]
    assert d["bbox"].shape == (T, P, 4)
    # transl is the root joint for every body model (model_transl the model's own parameter)
    np.testing.assert_allclose(d["transl"], d["joints3d"][:, :, 0], atol=1e-6)
    # keypoints2d is the projection of keypoints3d with cam_K
    uvw = d["keypoints3d"][0, 0] @ K.T
    np.testing.assert_allclose(uvw[:, :2] / uvw[:, 2:], d["keypoints2d"][0, 0], atol=0.05)

    # the fit matches the detection
    ev = body_coco(d["evidence_keypoints2d"][0, 0])
    ok = ev[:, 2] >= 0.5
    assert ok.sum() >= 12
    dist = np.linalg.norm(d["keypoints2d"][0, 0] - ev[:, :2], axis=-1)[ok]
    assert dist.mean() < CONTRACT_MAX_MEAN_PX, f"mean 2D distance {dist.mean():.1f} px"
    assert np.isfinite(d["fit_px_error"]).all()

    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"] == [str(img)]
    assert summary["failed"] == [] and summary["warnings"] == []
    assert summary["frames"] == 1 and summary["frames_without_person"] == 0
    assert {"decode", "detect", "estimate", "write", "render", "total"} <= set(summary["timings_s"])
    assert summary["people"] == 1 and summary["per_input"][0]["kind"] == "image"

    png = out / "lunge_pexels_overlay.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im, Image.open(img) as src:
        assert im.format == "PNG" and im.height == src.height and im.width >= src.width

    import trimesh

    for fmt in ("obj", "ply", "glb"):
        mesh = trimesh.load(out / f"lunge_pexels_f000000_p0.{fmt}", force="mesh", process=False)
        assert mesh.vertices.shape == (V_ANNY, 3), fmt
        assert len(mesh.faces) == len(d["faces"]), fmt
    obj = trimesh.load(out / "lunge_pexels_f000000_p0.obj", force="mesh", process=False)
    # exported for other tools: +Y up (the camera frame turned 180 degrees about x; docs/outputs.md)
    np.testing.assert_allclose(obj.vertices, d["vertices"][0, 0] * np.array([1, -1, -1]), atol=1e-5)
    # no temporary files left; .hmrkit/done holds the records --resume reads (hmrkit.distributed)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".hmrkit"]
    assert all(p.suffix == ".json" for p in (out / ".hmrkit" / "done").iterdir())


# ----------------------------------------------------------------------------- bad inputs


def _half_jpeg(tmp_path):
    data = data_path("images", "lunge_pexels.jpg").read_bytes()
    p = tmp_path / "half.jpg"
    p.write_bytes(data[: len(data) // 2])
    return p


def _text_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is a text file renamed .png\n")
    return p


def _xyz(tmp_path):
    p = tmp_path / "points.xyz"
    p.write_text("0 0 0\n")
    return p


def _missing(tmp_path):
    return tmp_path / "no_such_photo.jpg"


def _empty_video(tmp_path):
    p = tmp_path / "clip.mp4"
    p.write_bytes(b"")
    return p


BAD_INPUTS = {
    "truncated-jpeg": (_half_jpeg, "truncated image data"),
    "text-renamed-png": (_text_png, "not a valid PNG file"),
    "unsupported-suffix": (_xyz, "unsupported file type '.xyz'"),
    "missing-path": (_missing, "no such file"),
    "empty-video": (_empty_video, "empty file (0 bytes)"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_single_input(case, tmp_path, capfd):
    make, problem = BAD_INPUTS[case]
    src = make(tmp_path)
    out = tmp_path / "out"
    before = prepare_out(out, src.stem)
    code, stdout, err = run_cli(capfd, src, "--out", out, "--fit-iters", 5)
    assert code == 1
    one_line_error(err, src, problem)
    assert stdout == []
    assert_nothing_lost(out, before)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"] == [] and [f["input"] for f in summary["failed"]] == [str(src)]
    assert problem in summary["failed"][0]["error"]


def test_image_with_nobody(tmp_path, capfd):
    """A uniform gray image: nobody in it.

    Decision: the input is *produced*. Its NAME.npz is written with no person (P = 0:
    ``valid`` of shape (1, 0); the answer for that photo is "no person", which tools reading
    the output folder need to see, e.g. to keep frame counts aligned), with the overlay (the photo itself) and a
    summary warning. DESIGN.md asks for a non-zero exit only when NOTHING could be produced,
    so the exit code is 0 even when it is the only input; stderr carries one warning line
    naming the file."""
    img = tmp_path / "gray.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(img)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, img, "--out", out, "--fit-iters", 5)
    assert code == 0
    one_line_error(err, "warning", img, "nobody found")
    assert stdout == [f"hmrkit: 1 input(s), 1 frame(s) (1 without a person), 0 people -> {out}/"]
    with np.load(out / "gray.npz", allow_pickle=False) as z:
        assert z["valid"].shape == (1, 0) and z["track_id"].shape == (0,)  # nobody: no person axis
        assert z["vertices"].shape == (1, 0, V_ANNY, 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 1 and summary["frames_without_person"] == 1 and summary["failed"] == []
    assert (out / "gray_overlay.png").exists()


@pytest.mark.parametrize("how", ["under-a-file", "is-a-file", "read-only-dir"])
def test_unwritable_output_folder(how, tmp_path, capfd):
    img = tmp_path / "gray.png"
    Image.new("RGB", (64, 48), (128, 128, 128)).save(img)
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file in the way\n")
    if how == "under-a-file":
        out = blocker / "sub"
    elif how == "is-a-file":
        out = blocker
    else:
        if os.geteuid() == 0:
            pytest.skip("running as root: chmod 500 does not stop root from writing "
                        "(the other two cases cover an unwritable output folder)")
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    try:
        code, stdout, err = run_cli(capfd, img, "--out", out)
    finally:
        if how == "read-only-dir":
            out.chmod(0o700)
    assert code == 1
    one_line_error(err, out, "cannot write to the output folder")
    assert blocker.read_text() == "a file in the way\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["gray.png", "file.txt"] + (
        ["ro"] if how == "read-only-dir" else []))


def test_wrong_smpl_file(tmp_path, capfd):
    model = tmp_path / "SMPL_NEUTRAL.pkl"
    model.write_text("not a body model\n")
    img = tmp_path / "gray.png"
    Image.new("RGB", (64, 48), (128, 128, 128)).save(img)
    out = tmp_path / "out"
    before = prepare_out(out, "gray")
    code, stdout, err = run_cli(capfd, img, "--body", "smpl", "--model-path", model, "--out", out)
    assert code == 1
    line = one_line_error(err, model, "not a SMPL-family model file")
    assert line.count(str(model)) == 1
    assert_nothing_lost(out, before)


def test_smpl_body_defaults_to_fit(tmp_path, capfd):
    """No SPIN weights ship for SMPL-family bodies: with no --method, an SMPL run fits;
    asking for spin names what is missing."""
    from hmrkit.body.synthetic import write_synthetic_model

    model = write_synthetic_model(tmp_path / "SMPL_NEUTRAL.pkl", "smpl")
    img = tmp_path / "lunge_pexels.jpg"
    shutil.copy(data_path("images", "lunge_pexels.jpg"), img)
    out = tmp_path / "out"
    code, _, err = run_cli(capfd, img, "--body", "smpl", "--model-path", model, "--out", out, "--no-overlay",
                           "--fit-iters", 5)
    assert code == 0 and err == []
    with np.load(out / "lunge_pexels.npz", allow_pickle=False) as z:
        assert str(z["method"]) == "fit" and str(z["body_model"]) == "smpl"
    assert json.loads((out / "summary.json").read_text())["method"] == "fit"
    code, _, err = run_cli(capfd, img, "--body", "smpl", "--model-path", model, "--out", out, "--method", "spin")
    assert code == 1
    one_line_error(err, "no SPIN weights for the 'smpl' body model")


def test_model_path_for_anny_is_one_line(tmp_path, capfd):
    img = tmp_path / "gray.png"
    Image.new("RGB", (64, 48), (128, 128, 128)).save(img)
    code, _, err = run_cli(capfd, img, "--model-path", tmp_path / "x.pkl", "--out", tmp_path / "out")
    assert code == 1
    one_line_error(err, "x.pkl", "anny")


# ----------------------------------------------------------------------------- folders


def test_folder_carries_on_past_bad_files(tmp_path, capfd):
    folder = tmp_path / "photos"
    folder.mkdir()
    with Image.open(data_path("images", "lunge_pexels.jpg")) as im:
        im.thumbnail((400, 400))
        im.save(folder / "good.jpg", quality=92)
    bad = folder / "bad.jpg"
    bad.write_bytes((folder / "good.jpg").read_bytes()[:3000])
    odd = folder / "readme.xyz"
    odd.write_text("not an input\n")
    out = tmp_path / "out"
    before = prepare_out(out, "bad")
    code, stdout, err = run_cli(capfd, folder, "--out", out, "--fit-iters", 5)
    assert code == 0
    assert len(err) == 2, err
    assert all(ln.startswith("hmrkit: skipped ") for ln in err)
    assert any(str(bad) in ln and "truncated" in ln for ln in err)
    assert any(str(odd) in ln and "unsupported file type '.xyz'" in ln for ln in err)
    assert stdout == [f"hmrkit: 1 input(s), 1 frame(s) (0 without a person), 1 people -> {out}/"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"] == [str(folder / "good.jpg")]
    assert sorted(f["input"] for f in summary["failed"]) == sorted([str(bad), str(odd)])
    with np.load(out / "good.npz", allow_pickle=False) as z:
        assert z["valid"].tolist() == [[True]]
    assert_nothing_lost(out, before)  # bad.npz from an earlier run is still the old one


def test_same_name_inputs_do_not_overwrite_each_other(tmp_path, capfd):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (64, 48), (100, 100, 100)).save(folder / "a.jpg")
    Image.new("RGB", (64, 48), (200, 200, 200)).save(folder / "a.png")
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, folder, "--out", out)
    assert code == 0
    assert (out / "a.npz").exists() and (out / "a_png.npz").exists()
    assert any("a.png" in ln and "a_png" in ln for ln in err)


def test_all_inputs_bad_lists_each_then_fails(tmp_path, capfd):
    a, b = _half_jpeg(tmp_path), _xyz(tmp_path)
    code, stdout, err = run_cli(capfd, a, b, "--out", tmp_path / "out")
    assert code == 1
    assert len(err) == 3, err
    assert any(str(a) in ln and "truncated" in ln for ln in err[:2])
    assert any(str(b) in ln and "unsupported" in ln for ln in err[:2])
    assert "nothing could be produced" in err[2] and "summary.json" in err[2]


def test_empty_folder(tmp_path, capfd):
    folder = tmp_path / "nothing_here"
    folder.mkdir()
    code, stdout, err = run_cli(capfd, folder, "--out", tmp_path / "out")
    assert code == 1
    one_line_error(err, folder, "no image, video or keypoint file")


def test_unexpected_error_in_one_input_does_not_stop_the_folder(tmp_path, capfd, monkeypatch):
    """A bug hit by one input (here a RuntimeError injected into the image path) is reported
    as one line for that file; the other inputs are still processed."""
    import hmrkit.pipeline

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("boom", "fine"):
        Image.new("RGB", (64, 48), (128, 128, 128)).save(folder / f"{name}.png")
    real = hmrkit.pipeline._Job.run_image

    def run_image(self):
        if self.path.stem == "boom":
            raise RuntimeError("injected failure\nsecond line")
        return real(self)

    monkeypatch.setattr(hmrkit.pipeline._Job, "run_image", run_image)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, folder, "--out", out)
    assert code == 0
    skipped = [ln for ln in err if ln.startswith("hmrkit: skipped ")]
    assert len(skipped) == 1 and "boom.png: RuntimeError: injected failure (a bug in hmrkit" in skipped[0]
    assert "second line" not in skipped[0]
    assert (out / "fine.npz").exists() and not (out / "boom.npz").exists()
    # --debug adds the traceback
    code, stdout, err = run_cli(capfd, folder, "--out", out, "--debug")
    assert code == 0 and any("Traceback (most recent call last)" in ln for ln in err)


def test_bad_fit_iters_flag(tmp_path, capfd):
    code, _, err = run_cli(capfd, tmp_path / "x.png", "--fit-iters", 0, "--out", tmp_path / "out")
    assert code == 2
    one_line_error(err, "--fit-iters")


def test_method_spin_on_a_photo(tmp_path, capfd):
    """The regressor alone: one forward pass, the same contract, a mesh on the person."""
    img = tmp_path / "lunge_pexels.jpg"
    shutil.copy(data_path("images", "lunge_pexels.jpg"), img)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, img, "--out", out, "--method", "spin", "--no-overlay")
    assert code == 0 and err == []
    with np.load(out / "lunge_pexels.npz", allow_pickle=False) as z:
        assert str(z["method"]) == "spin" and z["valid"].all()
        assert z["vertices"][..., 2].min() > 0
        height = np.ptp(z["evidence_keypoints2d"][0, 0, :33, 1][z["evidence_keypoints2d"][0, 0, :33, 2] > 0.5])
        assert float(z["fit_px_error"][0, 0]) < 0.1 * height  # on the person, if less tightly than a fit


@pytest.mark.parametrize("args, words", [
    (("--method", "spun"), "unknown method 'spun'"),
    (("--method", "spin", "--weights", "missing.pt"), "no SPIN weights"),
])
def test_bad_method_or_weights(args, words, tmp_path, capfd):
    img = tmp_path / "lunge_pexels.jpg"
    shutil.copy(data_path("images", "lunge_pexels.jpg"), img)
    code, _, err = run_cli(capfd, img, "--out", tmp_path / "out", *args)
    assert code != 0
    one_line_error(err, words)


# ----------------------------------------------------------------------------- video


def test_short_video_two_people_tracked(tmp_path, capfd):
    """tests/data's cut of two_people.mp4 (270x480, 8 frames): both people, each a track
    with a stable id, estimated per track, one overlay video."""
    from hmrkit.io import VideoReader

    clip = tmp_path / "two.mp4"
    shutil.copy(data_path("videos", "two_people_small.mp4"), clip)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, clip, "--out", out, "--max-frames", 6, "--fit-iters", 10)
    assert code == 0
    assert err == []
    assert stdout == [f"hmrkit: 1 input(s), 6 frame(s) (0 without a person), 2 people -> {out}/"]
    with np.load(out / "two.npz", allow_pickle=False) as z:
        assert z["track_id"].tolist() == [0, 1]
        assert z["valid"].shape == (6, 2) and z["valid"].all()
        assert z["vertices"].shape == (6, 2, V_ANNY, 3)
        assert z["keypoints2d"].shape == (6, 2, 17, 2)
        assert z["cam_K"].shape == (6, 3, 3)
        assert z["frame_index"].tolist() == list(range(6))
        # stable identities: each track's box moves little from frame to frame
        c = 0.5 * (z["bbox"][..., :2] + z["bbox"][..., 2:])
        assert float(np.linalg.norm(np.diff(c, axis=0), axis=-1).max()) < 20.0
        # the two people stand apart, and each track keeps one shape (one window per chunk)
        assert float(np.linalg.norm(c[:, 0] - c[:, 1], axis=-1).min()) > 40.0
        np.testing.assert_allclose(z["shape"][:, 0], np.repeat(z["shape"][:1, 0], 6, 0), atol=1e-6)
    with VideoReader(out / "two_overlay.mp4") as r:
        frames = [f.shape for _, f in r]
    assert frames == [(480, 270, 3)] * 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["frames_without_person"] == 0 and summary["people"] == 2
    # no temporary files left; .hmrkit/done holds the records --resume reads (hmrkit.distributed)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".hmrkit"]
    assert all(p.suffix == ".json" for p in (out / ".hmrkit" / "done").iterdir())


# ----------------------------------------------------------------------------- keypoint files


def test_openpose_json(detected, tmp_path, capfd):
    hol = detected
    idx = {n: i for i, n in enumerate(HOLISTIC)}
    body = convert_with_confidence(hol, "holistic", "openpose25")
    for side in ("left", "right"):  # OpenPose's big toe is MediaPipe's foot index
        body[OPENPOSE25.index(f"{side}_big_toe")] = hol[idx[f"{side}_foot_index"]]
    hands = {s: hol[[idx[f"{s}_hand.{n}"] for n in HAND21]] for s in ("left", "right")}
    person = {
        "person_id": [-1],
        "pose_keypoints_2d": body.ravel().round(3).tolist(),
        "hand_left_keypoints_2d": hands["left"].ravel().round(3).tolist(),
        "hand_right_keypoints_2d": hands["right"].ravel().round(3).tolist(),
        "face_keypoints_2d": [],
    }
    path = tmp_path / "lunge_keypoints.json"
    path.write_text(json.dumps({"version": 1.3, "people": [person]}))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, "--keypoints", path, "--out", out, "--fit-iters", 10)
    assert code == 0
    # OpenPose files carry no image size: one warning line naming the file
    assert len(err) == 1 and err[0].startswith("hmrkit: warning: ") and str(path) in err[0], err
    with np.load(out / "lunge_keypoints.npz", allow_pickle=False) as z:
        assert z["valid"].tolist() == [[True]]
        assert z["vertices"].shape == (1, 1, V_ANNY, 3)
        assert str(z["evidence_convention"]) == "holistic"
        ev = body_coco(z["evidence_keypoints2d"][0, 0])
        ok = ev[:, 2] >= 0.5
        dist = np.linalg.norm(z["keypoints2d"][0, 0] - ev[:, :2], axis=-1)[ok]
        assert ok.sum() >= 12 and dist.mean() < 60.0, dist.mean()


def test_coco_json(detected, tmp_path, capfd):
    coco = body_coco(detected)
    entry = {"image_id": 1, "category_id": 1, "keypoints": coco.ravel().round(3).tolist(), "score": 0.9}
    path = tmp_path / "lunge_coco.json"
    path.write_text(json.dumps([entry]))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, "--keypoints", path, "--out", out, "--fit-iters", 10)
    assert code == 0
    assert len(err) == 1 and "warning" in err[0] and str(path) in err[0], err
    with np.load(out / "lunge_coco.npz", allow_pickle=False) as z:
        assert z["valid"].tolist() == [[True]]
        assert str(z["evidence_convention"]) == "coco17"
        ok = coco[:, 2] >= 0.5
        dist = np.linalg.norm(z["keypoints2d"][0, 0] - coco[:, :2], axis=-1)[ok]
        assert ok.sum() >= 12 and dist.mean() < 60.0, dist.mean()


def _coco_person(kp17, scale=1.0, shift=(0.0, 0.0)):
    k = kp17.copy()
    k[:, 0] = k[:, 0] * scale + shift[0]
    k[:, 1] = k[:, 1] * scale + shift[1]
    return k


def test_coco_json_keeps_every_person_and_max_people(detected, tmp_path, capfd):
    """Several people in a keypoint file are all estimated (not the first only), largest
    first; --max-people keeps the largest N."""
    coco = body_coco(detected)
    small = _coco_person(coco, 0.5, (200.0, 10.0))
    entries = [{"image_id": 1, "category_id": 1, "keypoints": k.ravel().round(3).tolist(), "score": 0.9}
               for k in (small, coco)]
    path = tmp_path / "two_coco.json"
    path.write_text(json.dumps(entries))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, "--keypoints", path, "--out", out, "--method", "spin", "--no-overlay")
    assert code == 0, err
    with np.load(out / "two_coco.npz", allow_pickle=False) as z:
        assert z["valid"].shape == (1, 2) and z["valid"].all() and z["track_id"].tolist() == [0, 1]
        h = z["bbox"][0, :, 3] - z["bbox"][0, :, 1]
        assert h[0] > 1.5 * h[1]  # person 0 is the larger one
        np.testing.assert_allclose(z["evidence_keypoints2d"][0, 0], coco, atol=1e-3)
    code, stdout, err = run_cli(capfd, "--keypoints", path, "--out", out, "--method", "spin", "--no-overlay",
                                "--max-people", 1)
    assert code == 0
    with np.load(out / "two_coco.npz", allow_pickle=False) as z:
        assert z["valid"].shape == (1, 1)
        np.testing.assert_allclose(z["evidence_keypoints2d"][0, 0], coco, atol=1e-3)


def test_keypoints_folder_npz_one_input_each_openpose_one_video(detected, tmp_path, capfd):
    """--keypoints DIR: each evidence npz in the folder is an input of its own; a folder of
    OpenPose JSON frames is one video."""
    from hmrkit.detect.readers import write_evidence_npz

    folder = tmp_path / "evidence"
    for name, shift in (("a", 0.0), ("b", 15.0)):
        kp = detected.copy()
        kp[:, 0] += shift * (kp[:, 2] > 0)
        write_evidence_npz(folder / f"{name}.npz", kp[None, None], "holistic", (599, 400))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, "--keypoints", folder, "--out", out, "--method", "spin", "--no-overlay")
    assert code == 0, err
    assert stdout == [f"hmrkit: 2 input(s), 2 frame(s) (0 without a person), 2 people -> {out}/"]
    for name in ("a", "b"):
        with np.load(out / f"{name}.npz", allow_pickle=False) as z:
            assert z["valid"].tolist() == [[True]]

    frames = tmp_path / "openpose"
    frames.mkdir()
    body = convert_with_confidence(detected, "holistic", "openpose25")
    for t in range(3):
        b = body.copy()
        b[:, 0] += 4.0 * t * (b[:, 2] > 0)
        person = {"person_id": [-1], "pose_keypoints_2d": b.ravel().round(3).tolist()}
        (frames / f"clip_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": [person]}))
    code, stdout, err = run_cli(capfd, "--keypoints", frames, "--out", out, "--method", "spin", "--no-overlay")
    assert code == 0, err
    with np.load(out / "openpose.npz", allow_pickle=False) as z:
        assert z["valid"].shape == (3, 1) and z["valid"].all()  # one video, one track


class _LoggingStream:
    """A stream estimator (the kind online adaptation is): spin, one frame at a time; every
    step is logged in the class-wide ``log`` as (copy id, resets so far, frame, track)."""

    name = "stream"
    log: list = []

    def __init__(self, body):
        from hmrkit.estimate import build

        self.inner = build("spin", body)
        self.body = body
        self.resets = 0

    def step(self, obs):
        assert obs.batch_size == 1
        _LoggingStream.log.append((id(self), self.resets, int(obs.frame_index[0]), int(obs.track_id[0])))
        return self.inner.predict(obs)

    def reset(self):
        self.resets += 1


def test_stream_estimator_runs_each_track_in_order_on_its_own_copy(detected, tmp_path, anny_body):
    """The scheduler gives a stream estimator each track's frames in order, on one fresh
    (reset) copy per track; the prototype itself is never stepped."""
    import hmrkit.pipeline as P

    from hmrkit.detect.readers import write_evidence_npz

    T = 4
    small = detected.copy()
    ok = small[:, 2] > 0
    small[ok, :2] = small[ok, :2] * 0.5 + np.array([200.0, 0.0])
    kp = np.stack([np.stack([detected, small]) for _ in range(T)])
    kp[..., 0] += 3.0 * np.arange(T)[:, None, None] * (kp[..., 2] > 0)
    path = tmp_path / "seq.npz"
    write_evidence_npz(path, kp, "holistic", (599, 400))
    config = P.RunConfig(out_dir=tmp_path / "out", method="spin", overlay=False, keypoints=str(path))
    (tmp_path / "out").mkdir()
    models = P.Models(config)
    proto = _LoggingStream(anny_body)
    models.estimator = proto
    _LoggingStream.log.clear()
    report = P.process_input(path, config, models)
    assert report.produced, report.error
    with np.load(tmp_path / "out" / "seq.npz", allow_pickle=False) as z:
        assert z["valid"].shape == (T, 2) and z["valid"].all()
    log = _LoggingStream.log
    assert len(log) == 2 * T and id(proto) not in {c for c, _, _, _ in log}
    copies = {}
    for c, resets, frame, track in log:
        copies.setdefault(c, []).append((resets, frame, track))
    assert len(copies) == 2  # one per track
    for steps in copies.values():
        assert [s[1] for s in steps] == list(range(T))  # in order
        assert len({s[2] for s in steps}) == 1 and all(s[0] == 1 for s in steps)  # one track, reset once


def test_process_input_touches_no_global_state(tmp_path):
    """process_input(path, config, models) is the unit a worker runs: no logging handlers,
    levels or warning filters change, and two calls give the same result."""
    import logging
    import warnings

    import hmrkit.pipeline as P

    img = tmp_path / "lunge.jpg"
    shutil.copy(data_path("images", "lunge_pexels.jpg"), img)
    config = P.RunConfig(out_dir=tmp_path / "out", method="spin", overlay=False)
    (tmp_path / "out").mkdir()
    models = P.Models(config)
    state = lambda: ([(lg, lg.level, list(lg.handlers), list(lg.filters))  # noqa: E731
                      for lg in [logging.getLogger()] + [logging.getLogger(n) for n in logging.root.manager.loggerDict]],
                     list(warnings.filters))
    before = state()
    a = P.process_input(img, config, models)
    z1 = np.load(tmp_path / "out" / "lunge.npz")["vertices"]
    b = P.process_input(img, config, models)
    z2 = np.load(tmp_path / "out" / "lunge.npz")["vertices"]
    assert state() == before
    assert a.produced and b.produced and a.people == b.people == 1
    np.testing.assert_array_equal(z1, z2)


def test_transl_is_the_root_joint_for_smpl_too(tmp_path, capfd):
    """transl means the same for every body model: the root joint in the camera frame. For
    SMPL (whose own transl is added after rotating about the rest pelvis) model_transl keeps
    the parameter, and the two differ by the rotated rest pelvis."""
    from hmrkit.body.synthetic import write_synthetic_model

    model = write_synthetic_model(tmp_path / "SMPL_NEUTRAL.pkl", "smpl")
    img = tmp_path / "lunge_pexels.jpg"
    shutil.copy(data_path("images", "lunge_pexels.jpg"), img)
    out = tmp_path / "out"
    code, _, err = run_cli(capfd, img, "--body", "smpl", "--model-path", model, "--out", out, "--no-overlay",
                           "--fit-iters", 5)
    assert code == 0, err
    with np.load(out / "lunge_pexels.npz", allow_pickle=False) as z:
        np.testing.assert_allclose(z["transl"], z["joints3d"][:, :, 0], atol=1e-6)
        assert float(np.abs(z["transl"] - z["model_transl"]).max()) > 1e-3


@pytest.mark.parametrize("args, words, code", [
    (("--device", "cuda"), "torch sees no CUDA GPU here", 1),
    (("--device", "tpu"), "use cpu or cuda", 1),
    (("--focal", "-5"), "--focal must be a positive number", 1),
    (("--fov", "400"), "--fov must be between 0 and 180", 1),
    (("--max-people", "0"), "--max-people must be >= 1", 2),
])
def test_impossible_options_are_one_line(args, words, code, tmp_path, capfd):
    img = tmp_path / "lunge_pexels.jpg"
    shutil.copy(data_path("images", "lunge_pexels.jpg"), img)
    out = tmp_path / "out"
    got, stdout, err = run_cli(capfd, img, "--out", out, *args)
    assert got == code
    one_line_error(err, words)
    assert not (out / "lunge_pexels.npz").exists()



def test_coco_images_are_independent_with_their_own_size(detected, tmp_path, capfd):
    """A COCO annotations file with two images of different sizes: not a video (no
    tracking, no shared shape), each image its own K and image size."""
    coco = body_coco(detected)
    big = _coco_person(coco, 2.0, (300.0, 100.0))
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 599, "width": 400},
                       {"id": 2, "file_name": "b.jpg", "height": 1400, "width": 1200}],
            "annotations": [{"image_id": i, "category_id": 1, "keypoints": k.ravel().round(3).tolist(),
                             "num_keypoints": 17} for i, k in ((1, coco), (2, big))],
            "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "two_images.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, "--keypoints", path, "--out", out, "--method", "spin", "--no-overlay")
    assert code == 0, err
    with np.load(out / "two_images.npz", allow_pickle=False) as z:
        assert z["image_size"].tolist() == [[599, 400], [1400, 1200]]
        np.testing.assert_allclose(z["cam_K"][:, :2, 2], [[200.0, 299.5], [600.0, 700.0]])
        assert z["valid"].shape == (2, 1) and z["valid"].all()


def test_keypoints_with_other_inputs_and_max_frames(detected, tmp_path, capfd):
    """--keypoints FILE is an input even when others are given; --max-frames cuts a
    keypoint sequence as it cuts a video."""
    from hmrkit.detect.readers import write_evidence_npz

    seq = np.repeat(detected[None, None], 5, 0)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    write_evidence_npz(a, seq, "holistic", (599, 400))
    write_evidence_npz(b, seq[:2], "holistic", (599, 400))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, b, "--keypoints", a, "--out", out, "--method", "spin", "--no-overlay",
                                "--max-frames", 3)
    assert code == 0, err
    with np.load(out / "a.npz", allow_pickle=False) as z:
        assert z["valid"].shape == (3, 1)
    with np.load(out / "b.npz", allow_pickle=False) as z:
        assert z["valid"].shape == (2, 1)


def test_keypoints_folder_mixed_json_is_one_input_per_file(detected, tmp_path, capfd):
    """A folder of OpenPose frames and a COCO file side by side: each JSON file is an input
    (the folder is one video only when every JSON in it is an OpenPose frame)."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    body = convert_with_confidence(detected, "holistic", "openpose25")
    for t in range(2):
        person = {"person_id": [-1], "pose_keypoints_2d": body.ravel().round(3).tolist()}
        (folder / f"frame_{t:04d}.json").write_text(json.dumps({"version": 1.3, "people": [person]}))
    coco = body_coco(detected)
    (folder / "gt.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "score": 1.0,
                                                  "keypoints": coco.ravel().round(3).tolist()}]))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, "--keypoints", folder, "--out", out, "--method", "spin", "--no-overlay")
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.npz")) == ["frame_0000.npz", "frame_0001.npz", "gt.npz"]
