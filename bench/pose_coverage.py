"""How far the unseen motions are from the training poses, and what that does to spin.

    .venv/bin/python bench/pose_coverage.py [--n 256] [--pool 6000] [--weights PATH] [--threads 1]

For each person of the fixed validation people (``hmrkit.train.spin.validation_set``:
bodies over all phenotypes, realistic detector noise, COCO-17 input) of the train, val
and test splits: the *nearest training pose*, the smallest PA-MPJPE (COCO-17 joints, mm)
between the person's body pose and any pose of the train split's library (mirrored
included), both on the mean body with no global orientation. Then spin's PA-MPJPE on the
same people, per quartile of that distance. A second table: the same distance for the
test people against ``--pool`` poses drawn as training draws them, with each
``PoseAugment`` (does an augmentation reach the unseen poses?), and against a limb-wise
mix (each arm, each leg and the torso from a different library pose).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help="people per split")
    ap.add_argument("--pool", type=int, default=6000, help="poses per augmentation arm (second table)")
    ap.add_argument("--weights", default=None, help="spin weights (default: the shipped ones)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import roma

    import hmrkit.body
    import hmrkit.data.synthetic as S
    from hmrkit.body.priors import body_joint_indices
    from hmrkit.eval.metrics import format_table, pa_mpjpe
    from hmrkit.models.inputs import crop_inputs
    from hmrkit.models.spin import load_regressor
    from hmrkit.train.spin import validation_set
    from hmrkit.types import BodyParams

    t0 = time.perf_counter()
    body = hmrkit.body.load("anny")
    bidx = body_joint_indices(body)
    mean = body.mean_params(1)
    pose_aa, _, names = S.load_pose_library(body.pose_library)

    def joints(rot):  # (n, Jb, 3, 3) body pose -> (n, 17, 3) coco17 on the mean body, no orientation
        out = []
        for s in range(0, rot.shape[0], 512):
            r = rot[s:s + 512]
            m = r.shape[0]
            pose = torch.eye(3, dtype=r.dtype).repeat(m, body.num_pose_joints, 1, 1)
            pose[:, bidx] = r
            p = BodyParams(torch.eye(3).expand(m, 3, 3), pose, mean.shape.expand(m, -1), torch.zeros(m, 3),
                           None if mean.expression is None else mean.expression.expand(m, -1))
            with torch.no_grad():
                out.append(body.forward_keypoints(p, ("coco17",))["coco17"])
        return torch.cat(out)

    def nearest(J, pool):  # (n,) min PA-MPJPE of each of J to the pool, mm
        return np.array([float(pa_mpjpe(pool, j.expand_as(pool)).min()) for j in J])

    train = S.library_indices(body.pose_library, "train")
    Jtrain = joints(roma.rotvec_to_rotmat(torch.as_tensor(pose_aa[train], dtype=torch.float32)))
    model = load_regressor(body, args.weights).eval()
    rows, people = [], {}
    for split in ("train", "val", "test"):
        scenes, kps, gt = validation_set(body, args.n, split=split)
        J = joints(scenes.params.pose[:, bidx])
        people[split] = J
        d = nearest(J, Jtrain)
        x = crop_inputs(kps["coco17"], scenes.K, "coco17")
        with torch.no_grad():
            pred = body.forward_keypoints(model.params(body, x), ("coco17",))["coco17"]
        err = pa_mpjpe(pred, gt).double().numpy()
        row = {"split": split + (" (in-distribution)" if split == "train" else ""),
               "nearest train pose, mean": float(d.mean()), "median": float(np.median(d)),
               "spin PA-MPJPE": float(err.mean()),
               "correlation": np.corrcoef(d, err)[0, 1] if d.std() > 1 else float("nan")}
        if d.std() > 1:  # the train people are library poses: distance 0, no quartiles
            q = np.digitize(d, np.quantile(d, [0.25, 0.5, 0.75]))
            for k in range(4):
                row[f"spin, quartile {k + 1}"] = float(err[q == k].mean())
        rows.append(row)
        print(f"  {split}: done", file=sys.stderr, flush=True)
    cols = ["split", "nearest train pose, mean", "median", "spin PA-MPJPE", "correlation"] + \
        [f"spin, quartile {k + 1}" for k in range(4)]
    print(f"\nPose coverage of the unseen motions ({args.n} people per split, COCO-17 input, spin "
          f"{args.weights or 'shipped'}; torch {torch.__version__}, {torch.get_num_threads()} thread(s))\n")
    print(format_table(rows, cols, digits=1))

    groups = [[n for n in names if n.startswith(side) and any(k in n for k in part)]
              for side in ("left", "right") for part in (("collar", "shoulder", "elbow", "wrist"),
                                                          ("hip", "knee", "ankle", "foot"))]
    groups.append([n for n in names if not any(n in g for g in groups)])
    gmm, e_max, _ = S._prior_limits(body.pose_library)
    arms = {"library poses (mirrored included)": S.PoseAugment(),
            "+ perturbation 0.5, combination 0.3 (shipped)": S.PoseAugment(perturb=0.5, combine=0.3),
            "+ perturbation 1.0 at 2x the scale": S.PoseAugment(perturb=1.0, perturb_scale=1.2),
            "+ combination 1.0": S.PoseAugment(combine=1.0)}
    rows = []
    for label, aug in arms.items():
        sc = S.sample_scenes(body, args.pool, seed=5, config=S.SceneConfig(split="train", augment=aug))
        d = nearest(people["test"], joints(sc.params.pose[:, bidx]))
        rows.append({"training poses drawn as": label, "poses": args.pool, "test nearest, mean": float(d.mean()),
                     "median": float(np.median(d))})
    g = np.random.default_rng(3)
    mix = torch.as_tensor(pose_aa[train[g.integers(0, len(train), args.pool)]], dtype=torch.float32)
    for grp in groups:
        m = torch.tensor([n in grp for n in names])
        src = torch.as_tensor(pose_aa[train[g.integers(0, len(train), args.pool)]], dtype=torch.float32)
        mix = torch.where(m[None, :, None], src, mix)
    ok = gmm.energy_aa(mix.reshape(len(mix), -1)) <= e_max
    d = nearest(people["test"], joints(roma.rotvec_to_rotmat(mix[ok])))
    rows.append({"training poses drawn as": f"limb-wise mix (5 parts), kept by the pose prior ({float(ok.float().mean()):.0%})",
                 "poses": int(ok.sum()), "test nearest, mean": float(d.mean()), "median": float(np.median(d))})
    print(f"\nThe test people's nearest pose among training draws ({time.perf_counter() - t0:.0f} s in all)\n")
    print(format_table(rows, ["training poses drawn as", "poses", "test nearest, mean", "median"], digits=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    sys.exit(main())
