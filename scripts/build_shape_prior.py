"""Build Anny's gender-aware shape prior (hmrkit.body.priors.GenderShapePrior) and print
what it says.

    .venv/bin/python scripts/build_shape_prior.py [--n 6000] [--out src/hmrkit/weights/shape_prior_anny.json]

Anny's six phenotypes (gender, age, muscle, weight, height, proportions) are each in [0, 1]
and the body sampler draws them independently: nothing ties a body's height phenotype to
its gender. People are not like that. Bodies are drawn over every phenotype (age from a
child to an elder, as ``SceneConfig(phenotypes="all")``), their stature measured on Anny's
rest mesh, and each adult (age >= 2/3, Anny's young-adult anchor) weighted by the density
of its stature under its gender's adult stature distribution -- men about 1.76 m, women
about 1.63 m, both with a standard deviation of about 7 cm (rounded figures of adult
anthropometric surveys; mixed genders interpolate linearly) -- children keep weight 1.
The weighted bodies with gender < 0.3 give the male Gaussian, > 0.7 the female one, all
the neutral one (its gender spread over the whole range).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

STATURE = {"male": (1.76, 0.07), "female": (1.63, 0.07)}  # metres: mean, std of adults


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="src/hmrkit/weights/shape_prior_anny.json")
    args = ap.parse_args()

    import hmrkit.body
    from hmrkit.body.anny import SHAPE_NAMES
    from hmrkit.data.synthetic import SceneConfig, sample_scenes

    body = hmrkit.body.load("anny")
    shape = sample_scenes(body, args.n, seed=args.seed, config=SceneConfig(phenotypes="all")).params.shape
    stature = []
    with torch.no_grad():
        for s in range(0, args.n, 256):
            v = body.rest_output(shape[s:s + 256]).vertices
            stature.append(v[..., 1].amax(1) - v[..., 1].amin(1))
    stature = torch.cat(stature).double().numpy()
    S = shape.double().numpy()
    g, age = S[:, SHAPE_NAMES.index("gender")], S[:, SHAPE_NAMES.index("age")]
    mu = (1 - g) * STATURE["male"][0] + g * STATURE["female"][0]  # 0 male, 1 female
    sd = (1 - g) * STATURE["male"][1] + g * STATURE["female"][1]
    w = np.where(age >= 2 / 3, np.exp(-0.5 * ((stature - mu) / sd) ** 2), 1.0)
    comps = {}
    for name, sel in (("male", g < 0.3), ("female", g > 0.7), ("neutral", np.ones_like(g, bool))):
        ww = w[sel] / w[sel].sum()
        m = (ww[:, None] * S[sel]).sum(0)
        d = S[sel] - m
        cov = (ww[:, None, None] * d[:, :, None] * d[:, None, :]).sum(0) + 1e-4 * np.eye(S.shape[1])
        comps[name] = {"mean": m.round(5).tolist(), "cov": cov.round(6).tolist(), "weight": 1 / 3,
                       "effective_samples": round(float(1 / (ww ** 2).sum()), 1)}
    adult = age >= 2 / 3
    out = {"format": "hmrkit-shape-prior-1", "body": "anny", "shape_names": list(SHAPE_NAMES),
           "source": "scripts/build_shape_prior.py", "n": args.n, "seed": args.seed, "stature_m": STATURE,
           "components": comps}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    print(f"{'component':10s} " + " ".join(f"{n:>11s}" for n in SHAPE_NAMES) + "   eff. samples")
    for name, c in comps.items():
        sd_ = np.sqrt(np.diag(np.array(c["cov"])))
        print(f"{name:10s} " + " ".join(f"{m:5.2f}+-{s:4.2f}" for m, s in zip(c["mean"], sd_))
              + f"   {c['effective_samples']:.0f}")
    for name, sel in (("male", (g < 0.3) & adult), ("female", (g > 0.7) & adult)):
        ww = w[sel] / w[sel].sum()
        print(f"adult {name} stature: sampler {stature[sel].mean():.3f} m, prior-weighted {(ww * stature[sel]).sum():.3f} m")


if __name__ == "__main__":
    main()
