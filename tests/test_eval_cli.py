"""hmrkit eval: the fixed synthetic sets (tiny budgets), the 3DPW path end to end with the
real detector on rendered synthetic SMPL bodies, and one-line errors for bad specs."""

import json

import pytest

from hmrkit.cli import main
from hmrkit.errors import InputError
from hmrkit.eval.protocols import SyntheticSpec
from test_eval import write_3dpw_renders


def test_spec_parsing():
    s = SyntheticSpec.parse("synthetic:frames,n=5,noise=clean,world3d=0.05")
    assert (s.kind, s.n, s.noise, s.world3d, s.seed) == ("frames", 5, "clean", 0.05, 2024)
    for bad in ("frames", "synthetic:", "synthetic:videos", "synthetic:frames,n=x", "synthetic:frames,foo=1",
                "synthetic:frames,noise=heavy"):
        with pytest.raises(InputError):
            SyntheticSpec.parse(bad)


def test_eval_cli_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "e.json"
    code = main(["eval", "--data", "synthetic:frames,n=2,noise=clean,batch=2", "--fit-iters", "30", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "synthetic:frames,n=2,seed=2024,split=test,noise=clean" in table and "PA-MPJPE" in table
    report = json.loads(out.read_text())
    r = report["results"]["synthetic:frames,n=2,seed=2024,split=test,noise=clean"]
    assert r["PA-MPJPE"]["count"] == 2 and r["PA-MPJPE"]["mean"] > 0
    assert r["valid"]["mean"] == 1.0


def test_eval_cli_sequences_report_accel(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["eval", "--data", "synthetic:sequences,n=1,frames=5,batch=5,noise=clean", "--fit-iters", "10",
                 "--json", str(out)]) == 0
    name = "synthetic:sequences,n=1,frames=5,seed=2024,split=test,noise=clean"
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if name in line)
    header = next(line for line in table.splitlines() if "accel" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    accel = cells[[c.strip() for c in header.strip("|").split("|")].index("accel")]
    assert float(accel) > 0
    report = json.loads(out.read_text())
    assert report["results"][name]["accel"]["count"] == 3  # 5 frames: 3 windows
    assert report["sets"][name]["frames"] == 5 and report["sets"][name]["joints"] == "coco17"


@pytest.mark.parametrize("spec, message", [
    ("mpii:/x.npz", "unknown data spec"),
    ("synthetic:videos", "unknown synthetic set"),
    ("3dpw:/nonexistent.npz", "add root=DIR"),
    ("h36m:/nonexistent.npz,root=/no/such/folder", "root folder not found"),
])
def test_eval_cli_bad_spec_is_one_line(spec, message, capsys):
    assert main(["eval", "--data", spec]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.fixture(scope="module")
def pw3d(tmp_path_factory):
    """SMPL files and a 3DPW test file of two renders of the synthetic male SMPL body and a
    blank image; MediaPipe finds the tube-limbed figure in both renders."""
    from hmrkit.body.synthetic import write_synthetic_model

    root = tmp_path_factory.mktemp("pw3d")
    models = root / "smpl"
    models.mkdir()
    for gender, seed in (("MALE", 11), ("FEMALE", 12), ("NEUTRAL", 13)):
        write_synthetic_model(models / f"SMPL_{gender}.pkl", "smpl", "pkl", seed=seed)
    path, _, _ = write_3dpw_renders(root, models, seeds=(0, 2), blank=True)
    return root, path, models


def test_eval_cli_3dpw_end_to_end_with_the_detector(pw3d, tmp_path, capsys):
    root, path, models = pw3d
    spec = f"3dpw:{path},root={root}"
    out = tmp_path / "pw.json"
    # SMPL predictions: PVE against the SMPL ground truth
    assert main(["eval", "--data", spec, "--body", "smpl", "--model-path", str(models), "--fit-iters", "20",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    res, notes = r["results"]["3dpw:3dpw_test.npz"], r["sets"]["3dpw:3dpw_test.npz"]
    assert notes["frames"] == 3 and notes["nobody detected"] == "1"  # the blank image
    assert res["valid"]["count"] == 3 and res["valid"]["mean"] == pytest.approx(2 / 3)
    for k in ("MPJPE", "PA-MPJPE", "PVE"):
        assert res[k]["count"] == 2 and res[k]["missing"] == 1 and 0 < res[k]["mean"] < 2000, k
    assert res["PA-MPJPE"]["mean"] < 150  # a fit to the detections of an easy pose
    # Anny predictions (--model-path then only names the ground truth's files): no PVE
    capsys.readouterr()
    assert main(["eval", "--data", spec, "--model-path", str(models), "--fit-iters", "20", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "j14 (coco17 keypoints, 13 of 14)" in table
    r = json.loads(out.read_text())
    assert "PVE" not in r["results"]["3dpw:3dpw_test.npz"] and r["body"] == "anny"
    assert r["results"]["3dpw:3dpw_test.npz"]["MPJPE"]["count"] == 2


def test_eval_cli_3dpw_errors_are_one_line(pw3d, tmp_path, capsys, monkeypatch):
    root, path, models = pw3d
    monkeypatch.delenv("HMRKIT_SMPL_DIR", raising=False)
    cases = [
        ([f"3dpw:{path},root={root}"], "SMPL model file not found"),  # no --model-path
        ([f"3dpw:{path},root={tmp_path}"], "image not found; root="),  # a wrong root
        ([f"3dpw:{tmp_path}/missing.npz,root={root}"], "file not found"),
        # the synthetic sets need a pose library of the predicting body model (only Anny's ships)
        (["synthetic:frames,n=1", "--body", "smpl", "--model-path", str(models / "SMPL_NEUTRAL.pkl")],
         "no pose library for the 'smpl' body model; build it"),
    ]
    for data, message in cases:
        assert main(["eval", "--data", *data]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (data, err)
