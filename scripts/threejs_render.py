"""Render animated glTF files (``hmrkit run --export anim.glb``) with three.js in headless
chromium: a picture of what a web page shows of them (docs/anim_threejs.png).

    .venv/bin/python scripts/threejs_render.py A_anim.glb [B_anim.glb ...] [--t 0.5] [--out docs/anim_threejs.png]

The page is tests/data/threejs/render.html (GLTFLoader, AnimationMixer, WebGLRenderer);
three.js comes from .venv/share/three (scripts/fetch_threejs.py).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


THREE = REPO / ".venv" / "share" / "three"


def chromium():
    """Debian's chromium (or chromium-browser) on the PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def serve_site(site):
    """Serve the folder ``site`` over http on a free local port; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def render(glbs, out, t: float = 0.5, size=(800, 600), three=THREE) -> Path:
    if chromium() is None or not (Path(three) / "build" / "three.module.js").exists():
        raise SystemExit("needs Debian's chromium and three.js (bash scripts/setup.sh installs both)")
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        shutil.copy(REPO / "tests" / "data" / "threejs" / "render.html", site / "index.html")
        (site / "three").symlink_to(Path(three).resolve(), target_is_directory=True)
        names = []
        for i, g in enumerate(glbs):
            shutil.copy(g, site / f"m{i}.glb")
            names.append(f"m{i}.glb")
        with serve_site(site) as base:
            url = f"{base}/index.html?glb={','.join(names)}&t={t}"
            subprocess.run([chromium(), "--headless", "--no-sandbox", "--use-angle=swiftshader",
                            "--enable-unsafe-swiftshader", f"--window-size={size[0]},{size[1]}",
                            "--virtual-time-budget=15000", f"--user-data-dir={site / 'profile'}",
                            f"--screenshot={Path(out).resolve()}", url],
                           capture_output=True, text=True, timeout=120, check=True)
    return Path(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("glbs", nargs="+")
    ap.add_argument("--t", type=float, default=0.5, help="the fraction of the animation to show")
    ap.add_argument("--out", default="docs/anim_threejs.png")
    args = ap.parse_args(argv)
    print(render(args.glbs, args.out, args.t), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
