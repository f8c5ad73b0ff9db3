"""Build the pose library and the pose GMM prior of a body model from CMU motion capture.

    .venv/bin/python scripts/build_pose_prior.py [--mocap ../shared/data/mocap] [--fps 2]

Steps: read every ASF/AMC and BVH clip (four skeletons: CMU ASF, CMU BVH, the Poser-style
salsa BVH, the Reallusion CC BVH; hmrkit.data.mocap.skeletons); subsample to --fps;
retarget each clip onto the body model by fitting its joints to the mocap joints in 3D
(hmrkit.fit.fit3d: bone directions plus positions, one shape per clip, so bone-length
differences are absorbed by the fit); mirror every pose (left/right swapped in joint
space); deduplicate within each split (hmrkit.data.splits: by subject and motion type; a
pose is dropped when every body joint is within --dedup-deg degrees of a kept pose of its
split); fit an 8-component full-covariance GMM (SMPLify's choice) to the body-joint
axis-angles of the *train* split only by EM, so the fitter's prior has seen no test motion.
--figure draws, per skeleton, the fitted body over the mocap joints (front and side).

Writes (small, shipped in the package):
  src/hmrkit/weights/pose_library_<body>.npz  body_pose_aa (N, Jb, 3), global_orient_aa (N, 3)
                                               with the heading removed, source clip and
                                               split per pose
  src/hmrkit/weights/pose_prior_<body>.npz     the GMM (means, covariances, weights, joint names)
and prints the figures (distinct poses and retarget error per source).

Data: "The data used in this project was obtained from mocap.cs.cmu.edu. The database was
created with funding from NSF EIA-0196217."
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import roma
import torch

import hmrkit.body
from hmrkit.body.priors import WEIGHTS_DIR, body_joint_indices
from hmrkit.conventions import SMPL24
from hmrkit.data.mocap import list_mocap_files, load_mocap, subsample
from hmrkit.data.splits import MOTIONS, SPLITS, split_of, subject_take
from hmrkit.fit.fit3d import RETARGET_NAMES, Fit3DConfig, fit_keypoints3d
from hmrkit.geometry.rotation import rotmat_to_aa

NAMES = list(RETARGET_NAMES)  # see hmrkit.fit.fit3d


def mirror_pose(body, go: torch.Tensor, pose: torch.Tensor):
    """Mirror a pose left/right (x -> -x in the body frame): R' = M R M, joints swapped."""
    M = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=pose.dtype))
    names = body.pose_joint_names
    perm = []
    for n in names:
        m = n.replace("left", "#").replace("right", "left").replace("#", "right")
        perm.append(names.index(m))
    return M @ go @ M, M @ pose[:, perm] @ M


def remove_heading(go: torch.Tensor) -> torch.Tensor:
    """Rotate each global orientation about the vertical (y) so the body faces +z."""
    fwd = go[:, :, 2]  # where the body's +z axis points
    yaw = torch.atan2(fwd[:, 0], fwd[:, 2])
    R = roma.rotvec_to_rotmat(torch.stack([torch.zeros_like(yaw), -yaw, torch.zeros_like(yaw)], -1))
    return R @ go


def dedup(aa: np.ndarray, deg: float) -> np.ndarray:
    """Greedy: keep a pose unless every joint is within deg of an already kept pose."""
    R = roma.rotvec_to_rotmat(torch.from_numpy(aa).float())  # (N, J, 3, 3)
    keep: list[int] = []
    thr = np.radians(deg)
    for i in range(len(aa)):
        if keep:
            k = torch.tensor(keep)
            ang = roma.rotmat_geodesic_distance(R[k], R[i][None].expand(len(keep), -1, -1, -1))
            if bool((ang.max(-1).values < thr).any()):
                continue
        keep.append(i)
    return np.array(keep)


def fit_gmm(x: np.ndarray, k: int = 8, iters: int = 200, seed: int = 0, reg: float = 1e-4):
    """EM for a full-covariance Gaussian mixture; k-means++ style init."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    means = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min([((x - m) ** 2).sum(1) for m in means], axis=0)
        means.append(x[rng.choice(n, p=d2 / d2.sum())])
    means = np.array(means)
    covs = np.array([np.cov(x.T) + reg * np.eye(d)] * k)
    weights = np.full(k, 1.0 / k)
    prev = -np.inf
    for it in range(iters):
        logp = np.zeros((n, k))
        for j in range(k):
            L = np.linalg.cholesky(covs[j])
            z = np.linalg.solve(L, (x - means[j]).T)
            logp[:, j] = np.log(weights[j]) - 0.5 * (z ** 2).sum(0) - np.log(np.diag(L)).sum() \
                - 0.5 * d * np.log(2 * np.pi)
        mx = logp.max(1, keepdims=True)
        ll = (mx[:, 0] + np.log(np.exp(logp - mx).sum(1))).mean()
        resp = np.exp(logp - mx)
        resp /= resp.sum(1, keepdims=True)
        nk = resp.sum(0) + 1e-9
        weights = nk / n
        means = (resp.T @ x) / nk[:, None]
        for j in range(k):
            xc = x - means[j]
            covs[j] = (resp[:, j, None] * xc).T @ xc / nk[j] + reg * np.eye(d)
        if ll - prev < 1e-5:
            break
        prev = ll
    return means, covs, weights, ll


def retarget_figure(body, examples, path):
    """Per skeleton: the fitted body (its mesh, grey, and its joints, blue) over the mocap
    joints (red), front and side view, one frame each (the retargeting check)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hmrkit.conventions import SMPL24

    ours = [SMPL24.index(n) for n in NAMES]
    fig, axes = plt.subplots(2, len(examples), figsize=(3.2 * len(examples), 7.5), squeeze=False)
    for c, (label, target, mask, params) in enumerate(examples):
        with torch.no_grad():
            out = body(params)
            J = body.keypoints(out, "smpl24")[0, ours].numpy()
        V = out.vertices[0].numpy()[::7]
        T = target.numpy()
        for r, (axis, view) in enumerate(((0, "front"), (2, "side"))):
            ax = axes[r, c]
            ax.scatter(V[:, axis], V[:, 1], s=0.3, c="0.75")
            ax.scatter(J[:, axis], J[:, 1], s=14, c="tab:blue", label="fitted body joints")
            ax.scatter(T[mask, axis], T[mask, 1], s=14, c="tab:red", marker="x", label="mocap joints")
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label}\n{view}", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mocap", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mocap"))
    ap.add_argument("--body", default="anny")
    ap.add_argument("--model-path", default=None, help="your SMPL-family model file (for --body smpl/smplh/smplx)")
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--dedup-deg", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit-files", type=int, default=None)
    ap.add_argument("--figure", default=None, help="write the retargeting check picture here (PNG)")
    ap.add_argument("--figure-only", action="store_true",
                    help="retarget the first clip of each skeleton, draw --figure and stop (writes no library)")
    args = ap.parse_args()
    if args.figure_only and not args.figure:
        ap.error("--figure-only needs --figure PATH")
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)

    body = hmrkit.body.load(args.body, **({"expression": False} if args.body == "anny" else
                                          {"model_path": args.model_path}))
    files = list_mocap_files(args.mocap)[: args.limit_files]
    gos, poses, errs, sources = [], [], [], []
    examples = {}  # skeleton -> (label, target frame, mask, fitted params of that frame)
    frames_per = {}
    t0 = time.time()
    total_frames = 0
    for f in files:
        clip = subsample(load_mocap(f), args.fps)
        if args.figure_only and clip.skeleton in examples:
            continue
        pos, mask = clip.semantic(NAMES)
        total_frames += len(pos)
        frames_per[Path(f).name] = len(pos)
        for s in range(0, len(pos), args.batch):
            target = torch.from_numpy(pos[s:s + args.batch]).float()
            p, err = fit_keypoints3d(body, target, NAMES, Fit3DConfig(iters=args.iters),
                                     mask=torch.from_numpy(mask))
            gos.append(p.global_orient)
            poses.append(p.pose)
            errs.append(err)
            sources += [Path(f).name] * len(target)
            if clip.skeleton not in examples and s == 0:
                k = len(target) // 2
                examples[clip.skeleton] = (f"{clip.skeleton}: {Path(f).name}", target[k], mask, p[k:k + 1])
        print(f"{Path(f).name}: {len(pos)} frames, retarget error {torch.cat(errs).mean() * 1000:.1f} mm "
              f"(running), {time.time() - t0:.0f} s", flush=True)
    if args.figure:
        retarget_figure(body, list(examples.values()), args.figure)
        print(f"wrote {args.figure}")
    if args.figure_only:
        return
    go = torch.cat(gos)
    pose = torch.cat(poses)
    err = torch.cat(errs)
    mgo, mpose = mirror_pose(body, go, pose)
    go = torch.cat([go, mgo])
    pose = torch.cat([pose, mpose])
    sources = sources + [s + ":mirrored" for s in sources]
    go = remove_heading(go)
    bidx = body_joint_indices(body)
    aa = rotmat_to_aa(pose[:, bidx]).numpy().astype(np.float32)
    split = np.array([split_of(s) for s in sources])
    keep = np.concatenate([np.flatnonzero(split == sp)[dedup(aa[split == sp], args.dedup_deg)]
                           for sp in SPLITS if (split == sp).any()])
    keep.sort()
    aa = aa[keep]
    go_aa = rotmat_to_aa(go[keep]).numpy().astype(np.float32)
    names = [body.pose_joint_names[i] for i in bidx]
    kept_sources = np.array([sources[i] for i in keep])
    kept_split = split[keep]
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        WEIGHTS_DIR / f"pose_library_{body.pose_library}.npz", body_pose_aa=aa, global_orient_aa=go_aa,
        joint_names=np.array(names), source=kept_sources, split=kept_split,
        attribution=np.array("The data used in this project was obtained from mocap.cs.cmu.edu. "
                             "The database was created with funding from NSF EIA-0196217."),
    )
    train = kept_split == "train"
    means, covs, weights, ll = fit_gmm(aa[train].reshape(int(train.sum()), -1).astype(np.float64), seed=args.seed)
    np.savez(WEIGHTS_DIR / f"pose_prior_{body.pose_library}.npz", means=means.astype(np.float32),
             covariances=covs.astype(np.float32), weights=weights.astype(np.float32), joint_names=np.array(names))
    # per source (CMU subject): frames, distinct poses (mirrors included), retarget error
    n_orig = len(err)
    subj = [subject_take(s)[0] for s in sources[:n_orig]]
    kept_subj = [subject_take(s)[0] for s in kept_sources]
    per_source = []
    for sj in sorted(set(subj), key=lambda x: (len(x), x)):
        e = err[torch.tensor([x == sj for x in subj])]
        per_source.append({
            "subject": sj, "motion": MOTIONS.get(sj, "?"),
            "split": "/".join(sp for sp in SPLITS if any(split_of(f) == sp for f in frames_per
                                                          if subject_take(f)[0] == sj)),
            "clips": sum(1 for f in frames_per if subject_take(f)[0] == sj),
            "frames": int(len(e)), "distinct_poses": int(sum(x == sj for x in kept_subj)),
            "retarget_error_mm_mean": round(float(e.mean()) * 1000, 1),
            "retarget_error_mm_median": round(float(e.median()) * 1000, 1)})
    report = {
        "files": len(files), "frames_retargeted": int(total_frames), "fps": args.fps,
        "poses_with_mirrors": int(len(go)), "distinct_poses": int(len(keep)),
        "distinct_poses_per_split": {sp: int((kept_split == sp).sum()) for sp in SPLITS},
        "retarget_error_mm_mean": round(float(err.mean()) * 1000, 1),
        "retarget_error_mm_median": round(float(err.median()) * 1000, 1),
        "per_source": per_source,
        "gmm_fit_on": "train split", "gmm_components": 8, "gmm_mean_loglik": round(float(ll), 2),
        "seconds": round(time.time() - t0), "iters": args.iters, "seed": args.seed, "dedup_deg": args.dedup_deg,
    }
    (WEIGHTS_DIR / f"pose_prior_{body.pose_library}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print("| subject | motion | split | clips | frames | distinct poses | retarget error mean / median (mm) |")
    print("|---|---|---|---:|---:|---:|---|")
    for r in per_source:
        print(f"| {r['subject']} | {r['motion']} | {r['split']} | {r['clips']} | {r['frames']} | "
              f"{r['distinct_poses']} | {r['retarget_error_mm_mean']} / {r['retarget_error_mm_median']} |")


if __name__ == "__main__":
    main()
