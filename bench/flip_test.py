"""Test-time flipping for spin: the input mirrored, the mirrored estimate mirrored back and
averaged with the plain one. Does it pay on unseen motions?

    .venv/bin/python bench/flip_test.py [--n 256] [--weights PATH] [--threads 1]

People: ``hmrkit.train.spin.validation_set`` of the val and test splits (bodies over all
phenotypes, realistic noise), MediaPipe 33 and COCO-17 input. The mirror is about the
principal point's column (keypoints x -> -x in the crop, left and right swapped, the box
centre mirrored), so the mirrored people are exact images of mirrored 3D bodies; the
estimate comes back as R -> M R M (M = diag(-1, 1, 1)) with left and right joints
swapped, as ``hmrkit.train.maed.mirrored_library`` mirrors poses; rotations averaged by
projecting their sum onto SO(3), shape and camera averaged. mm, COCO-17 joints.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import hmrkit.body
    from hmrkit import conventions as C
    from hmrkit.eval.metrics import format_table, mpjpe, pa_mpjpe, pelvis_indices
    from hmrkit.models.hmr_head import HeadOutput
    from hmrkit.models.inputs import INPUT_CONVENTION, crop_inputs
    from hmrkit.models.spin import load_regressor
    from hmrkit.train.spin import validation_set

    body = hmrkit.body.load("anny")
    model = load_regressor(body, args.weights).eval()
    perm = list(C.get(INPUT_CONVENTION).flip)
    names = list(model.joint_names)
    jperm = [names.index(C._mirror_name(n)) for n in names]
    M = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    cam_flip = torch.tensor([1.0, -1.0, 1.0])

    def mirrored(x):
        kp = x.kp[:, perm].clone()
        kp[..., 0] = -kp[..., 0]
        kp3d = None
        if x.kp3d is not None:
            kp3d = x.kp3d[:, perm].clone()
            kp3d[..., 0] = -kp3d[..., 0]
        center = torch.stack([2 * x.K[:, 0, 2] - x.center[:, 0], x.center[:, 1]], -1)
        info = x.bbox_info.clone()
        info[:, 0] = -info[:, 0]
        return replace(x, kp=kp, kp3d=kp3d, center=center, bbox_info=info)

    def back(o):
        return HeadOutput(M @ o.global_orient @ M, M @ o.pose[:, jperm] @ M, o.shape, o.cam * cam_flip, o.states)

    def so3(R):
        U, _, Vt = torch.linalg.svd(R)
        d = torch.det(U @ Vt)
        D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
        return U @ D @ Vt

    def average(a, b):
        return HeadOutput(so3(a.global_orient + b.global_orient), so3(a.pose + b.pose), 0.5 * (a.shape + b.shape),
                          0.5 * (a.cam + b.cam), a.states)

    rows = []
    for split in ("val", "test"):
        scenes, kps, gt = validation_set(body, args.n, split=split)
        for conv, kp in kps.items():
            x = crop_inputs(kp, scenes.K, conv)
            with torch.no_grad():
                out = model(x)
                flipped = back(model(mirrored(x)))
                for label, o in (("plain", out), ("mirrored only", flipped), ("flip-averaged", average(out, flipped))):
                    p = body.forward_keypoints(model.params(body, x, o), ("coco17",))["coco17"]
                    rows.append({"split": split, "input": conv, "estimate": label,
                                 "PA-MPJPE": float(pa_mpjpe(p, gt).mean()),
                                 "MPJPE": float(mpjpe(p, gt, pelvis_indices("coco17")).mean())})
    print(f"\nspin with test-time flipping ({args.n} people per split; {args.weights or 'shipped weights'}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s))\n")
    print(format_table(rows, ["split", "input", "estimate", "PA-MPJPE", "MPJPE"], digits=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    sys.exit(main())
