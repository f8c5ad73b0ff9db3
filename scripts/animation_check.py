"""How exact the animation exports are (docs/outputs.md, "Animations").

    .venv/bin/python scripts/animation_check.py [--n 16] [--seeds 5] [--results out/NAME.npz]

On random library poses (``sample_scenes``, one shape per track, as
tests/test_animation.py's ``fake_results``), and on a results npz when given:

- the BVH round trip through hmrkit's reader: the largest rotation error (rad);
- the regression skeleton played with the exported rotations against the mesh's own
  joints: the largest error, the mean of the per-joint maxima, and the joint that is
  farthest (mm);
- the rest mesh skinned onto that skeleton (``skin_weights``, as the animated glTF is)
  against the body's own posed mesh: mean, 95th percentile and largest vertex error (mm).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def skinned_vertices(body, motion) -> np.ndarray:
    """(T, V, 3) the rest mesh skinned onto the skeleton with the motion's rotations."""
    from hmrkit.io.animation import rest_mesh, skin_weights

    V, _ = rest_mesh(body, motion)
    W = skin_weights(body)
    T, J = motion.rotations.shape[:2]
    G = np.zeros((T, J, 3, 3))
    for j, p in enumerate(motion.parents):
        G[:, j] = motion.rotations[:, j] if p < 0 else G[:, p] @ motion.rotations[:, j]
    P = motion.joint_positions()
    local = V[None, :, None] - motion.rest[None, None]  # (1, V, J, 3)
    return np.einsum("vj,tjab,vjb->tva", W, G, local[0]) + np.einsum("vj,tja->tva", W, P)


def check(body, z, label: str) -> None:
    from hmrkit.data.mocap.bvh import load_bvh
    from hmrkit.io.animation import save_bvh, track_motions

    import roma

    cam = np.diag([1.0, -1.0, -1.0])
    rot, joint_max, skin = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for p, m in enumerate(track_motions(body, z)):
            clip = load_bvh(save_bvh(Path(tmp) / f"p{p}.bvh", m))
            idx = [clip.joint_names.index(n) for n in m.joint_names]
            rot.append(float(roma.rotmat_geodesic_distance(torch.as_tensor(clip.rotations[:, idx], dtype=torch.float64),
                                                           torch.as_tensor(m.rotations)).max()))
            keep = ~m.filled
            J = np.asarray(z["joints3d"])[m.frame_index, p] @ cam.T
            e = np.linalg.norm(m.joint_positions() - J, axis=-1)[keep]
            for j, n in enumerate(m.joint_names):
                joint_max[n] = max(joint_max.get(n, 0.0), float(e[:, j].max()))
            V = np.asarray(z["vertices"])[m.frame_index, p] @ cam.T if "vertices" in z else None
            if V is not None:
                skin.append(np.linalg.norm(skinned_vertices(body, m) - V, axis=-1)[keep].reshape(-1))
    far = max(joint_max, key=joint_max.get)
    print(f"{label}: BVH round trip, largest rotation error {max(rot):.1e} rad")
    print(f"{label}: skeleton vs mesh joints, largest {1000 * joint_max[far]:.1f} mm ({far}), "
          f"mean of the per-joint maxima {1000 * np.mean(list(joint_max.values())):.1f} mm")
    if skin:
        s = np.concatenate(skin)
        print(f"{label}: skinned rest mesh vs the body's mesh, mean {1000 * s.mean():.1f} mm, "
              f"p95 {1000 * np.quantile(s, 0.95):.1f} mm, largest {1000 * s.max():.1f} mm")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="frames per random track")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--results", default=None)
    args = ap.parse_args(argv)
    import hmrkit.body
    from test_animation import fake_results

    body = hmrkit.body.load("anny")
    for seed in range(args.seeds):
        check(body, fake_results(body, T=args.n, seed=seed), f"random poses, seed {seed}")
    if args.results:
        check(body, dict(np.load(args.results)), Path(args.results).name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
