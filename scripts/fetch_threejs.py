"""Fetch three.js from the npm registry into .venv/share/three (for the browser test of the
animated glTF export: tests/test_animation.py). No node or npm needed: the package's
tarball is downloaded, checked against the registry's sha512 integrity, and unpacked.

    .venv/bin/python scripts/fetch_threejs.py [--version 0.170.0] [--dest .venv/share/three]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", default="0.170.0")
    ap.add_argument("--dest", default=".venv/share/three")
    args = ap.parse_args()
    dest = Path(args.dest)
    stamp = dest / ".hmrkit-version"
    if stamp.exists() and stamp.read_text().strip() == args.version:
        return 0
    with urllib.request.urlopen(f"{REGISTRY}/three/{args.version}", timeout=60) as r:
        meta = json.load(r)
    dist = meta["dist"]
    with urllib.request.urlopen(dist["tarball"], timeout=300) as r:
        data = r.read()
    algo, _, want = dist["integrity"].partition("-")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != want:
        print(f"fetch_threejs: {dist['tarball']}: integrity check failed", file=sys.stderr)
        return 1
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        members = [m for m in tf.getmembers() if m.name.startswith("package/build/")
                   or m.name.startswith("package/examples/jsm/") or m.name == "package/LICENSE"]
        tf.extractall(tmp, members=members, filter="data")
    shutil.rmtree(dest, ignore_errors=True)
    (tmp / "package").rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    stamp.write_text(args.version + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
