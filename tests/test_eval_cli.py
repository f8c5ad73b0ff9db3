"""hmrkit eval on the fixed synthetic set (a tiny budget) and its spec parsing."""

import json

import pytest

from hmrkit.cli import main
from hmrkit.errors import InputError
from hmrkit.eval.protocols import SyntheticSpec


def test_spec_parsing():
    s = SyntheticSpec.parse("synthetic:frames,n=5,noise=clean,world3d=0.05")
    assert (s.kind, s.n, s.noise, s.world3d, s.seed) == ("frames", 5, "clean", 0.05, 2024)
    for bad in ("frames", "synthetic:", "synthetic:videos", "synthetic:frames,n=x", "synthetic:frames,foo=1",
                "synthetic:frames,noise=heavy"):
        with pytest.raises(InputError):
            SyntheticSpec.parse(bad)


def test_eval_cli_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "e.json"
    code = main(["eval", "--data", "synthetic:frames,n=2,noise=clean,batch=2", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "synthetic:frames,n=2,seed=2024,noise=clean" in table and "PA-MPJPE" in table
    report = json.loads(out.read_text())
    r = report["results"]["synthetic:frames,n=2,seed=2024,noise=clean"]
    assert r["PA-MPJPE"]["count"] == 2 and r["PA-MPJPE"]["mean"] > 0
    assert r["valid"]["mean"] == 1.0


def test_eval_cli_bad_spec_is_one_line(capsys):
    assert main(["eval", "--data", "3dpw:/nonexistent"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not implemented yet" in err[0]
