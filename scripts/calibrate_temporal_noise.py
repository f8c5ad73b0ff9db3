"""Calibrate how hmrkit's detector noise persists over time (``hmrkit.data.synthetic.
TemporalNoiseConfig``, used by ``add_temporal_noise``) against MediaPipe Holistic in video
mode.

Method:
1. Clips: the shipped retargeted CMU sequences of the train and val splits (never test;
   ``hmrkit.data.sequences.sample_sequence``: per-frame camera-frame bodies and K of a
   slowly moving camera), ``--image`` px square. Each clip is rendered frame by frame
   with one appearance (skin tone, clothing, light, procedural background:
   ``hmrkit.eval.sets.render_clip``, the renderer of ``render_synthetic``, as the
   ``synthetic:sequences,render=1`` set renders) and run through MediaPipe Holistic in
   video mode (``static_image_mode=False``, landmark smoothing on, one detector per clip,
   frames in order: ``hmrkit.eval.sets.video_detector``). Every ``--static-every``-th
   frame also goes through a static-image detector, for the per-frame comparison.
2. Truth: the exact ``holistic`` keypoints of the same frames, projected. As in
   scripts/calibrate_noise.py (whose measurement code this reuses): errors in units of the
   person's height, MediaPipe's systematic offsets (per keypoint, body-aligned; fitted on
   these video detections) removed first, "gross" = error > ``GROSS`` (0.1).
3. Measured over time, per clip (runs are cut by the clip's ends, in MediaPipe's frames and
   in the simulations alike):
   (a) the lag-1..8 autocorrelation of the fine error vector (the 33 body keypoints;
       detected, in the image, not part of a left/right exchange, error < GROSS; per
       keypoint about 0 (the systematic offsets are removed), then averaged over
       keypoints);
   (b) dropouts: confidence < 0.2 on a keypoint in the image (body; each hand and the face
       mesh, by its anchor point): share and mean run length in frames;
   (c) whole-person left/right swaps (``calibrate_noise.swap_events``: at least 3/4 of the
       well-separated left/right body points closer to the mirrored truth), legs and hand
       exchanges: share of frames and mean run length;
   (d) gross errors (body keypoints): share and mean run length;
   plus the lag-1 autocorrelation of the confidence (limbs and extremities).
4. Fit: ``add_temporal_noise`` (``NoiseConfig.realistic()``) on the same clips' true
   keypoints (the frames MediaPipe found; several seeds), each rho over a grid in turn,
   the others held (interpolated where the simulated statistic meets MediaPipe's):
   rho_jitter matches (a)'s lag 1, rho_gross the run length of gross errors, rho_conf
   that of body dropouts (low visibility), rho_drop that of lost hands, rho_swap that of
   whole-person swaps; rho_jitter is fitted first and again last. Printed: measured vs
   simulated (independent frames and calibrated), and video vs static-image mode per
   frame.

About 10-15 minutes on one CPU thread for the default 12 clips x 64 frames (render and
detection dominate; ``--cache`` keeps the detections for a re-fit):

    OMP_NUM_THREADS=1 .venv/bin/python scripts/calibrate_temporal_noise.py --threads 1

The fitted values are pasted into ``TemporalNoiseConfig``'s defaults by hand;
docs/noise_calibration.md ("Over time") holds the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("WARP_LOG_LEVEL", "error")
os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import calibrate_noise as CN  # noqa: E402

DROP_CONF = 0.2  # a "dropout": confidence below this on a keypoint in the image
LAGS = 8
GRID = (0.0, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998)
BODY = np.arange(33)


# ----------------------------------------------------------------------------------------
# Clips, renders, detections


def pick_clips(splits=("train", "val"), n: int | None = None) -> list[int]:
    """Library indices of the clips of ``splits`` (library order), the first n."""
    from hmrkit.data.sequences import load_sequences
    from hmrkit.data.splits import split_of

    lib = load_sequences("anny")
    idx = [i for i, s in enumerate(lib.source) if split_of(s) in splits]
    return idx[:n] if n else idx


def clip_seed(seed: int, c: int) -> int:
    return int(np.random.SeedSequence([seed, c, 0x7E3]).generate_state(1)[0])


def sequences(body, clips: list[int], seed: int, image: int, frames: int):
    """Per clip: (BodyParams (T, ...), K (T, 3, 3)) of its first ``frames`` frames."""
    from hmrkit.data.sequences import SequenceCameraConfig, sample_sequence

    config = SequenceCameraConfig(image_size=(image, image))
    out = []
    for c, idx in enumerate(clips):
        s = sample_sequence(body, idx, seed=clip_seed(seed, c), config=config, conventions=())
        out.append((s.params[:frames], s.K[:frames]))
    return out


def video_detector(kind: str):
    """A fresh video-mode detector: ``holistic`` (MediaPipe Holistic, landmark smoothing on:
    ``hmrkit.eval.sets.video_detector``, the calibration's) or ``pipeline`` (``hmrkit
    run``'s on a video: ``MultiPersonDetector`` in video mode, no smoothing; hands and
    face on, no mask)."""
    if kind == "holistic":
        from hmrkit.eval.sets import video_detector as holistic

        return holistic()
    from hmrkit.detect.multi import MultiPersonConfig, MultiPersonDetector

    return MultiPersonDetector(MultiPersonConfig(static_image_mode=False, enable_segmentation=False))


def detect(body, seqs, seed: int, image: int, static_every: int, cache: Path | None, kind: str = "holistic"):
    """(C, T, K, 3) video-mode holistic keypoints (zeros where nobody was found; the
    largest person), (C, T) found; the same from the static-image detector on every
    static_every-th frame (other frames: not found)."""
    from hmrkit.conventions import HOLISTIC
    from hmrkit.detect import MediaPipeHolistic, MediaPipeHolisticConfig
    from hmrkit.eval.sets import render_clip

    C, T = len(seqs), seqs[0][1].shape[0]
    key = np.concatenate([np.concatenate([k.numpy().reshape(-1) for _, k in seqs]),
                          [seed, image, static_every, C, T, kind == "pipeline"]]).astype(np.float64)
    if cache is not None and cache.exists():
        z = np.load(cache)
        if z["key"].shape == key.shape and np.allclose(z["key"], key):
            print(f"detections from {cache}", file=sys.stderr)
            return z["kv"], z["fv"], z["ks"], z["fs"]
    kv = np.zeros((C, T, len(HOLISTIC), 3), np.float32)
    ks = np.zeros_like(kv)
    fv = np.zeros((C, T), bool)
    fs = np.zeros((C, T), bool)
    static = MediaPipeHolistic(MediaPipeHolisticConfig(static_image_mode=True, enable_segmentation=False))
    t0 = time.time()
    for c, (p, K) in enumerate(seqs):
        with torch.no_grad():
            verts = body(p).vertices
        det = video_detector(kind)  # a fresh tracker per clip
        for t, rgb in enumerate(render_clip(body, verts, K, (image, image), clip_seed(seed, c) + 3)):
            ev = det.detect(rgb)
            if ev:
                kv[c, t], fv[c, t] = ev[0].keypoints2d, True
            if static_every and t % static_every == 0:
                ev = static.detect(rgb)
                if ev:
                    ks[c, t], fs[c, t] = ev[0].keypoints2d, True
        det.close()
        print(f"  clip {c + 1}/{C}: found {fv[c].sum()}/{T} frames ({time.time() - t0:.0f} s)", file=sys.stderr)
    static.close()
    if cache is not None:
        np.savez_compressed(cache, key=key, kv=kv, fv=fv, ks=ks, fs=fs)
    return kv, fv, ks, fs


# ----------------------------------------------------------------------------------------
# Measurements over time


def runs(v: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True along axis 1 of v (C, T, ...) bool, pooled."""
    x = np.moveaxis(v, 1, -1).reshape(-1, v.shape[1]).astype(np.int8)
    d = np.diff(np.pad(x, ((0, 0), (1, 1))), axis=1)
    r, s = np.nonzero(d == 1)
    _, e = np.nonzero(d == -1)
    return (e - s).astype(np.float64)  # starts and ends come in the same row-major order


def share_and_run(v: np.ndarray, elig: np.ndarray) -> tuple[float, float, int]:
    """(share of the eligible that are v, mean run length of v within the eligible (an
    ineligible frame ends a run), number of runs)."""
    on = v & elig
    r = runs(on)
    return float(on.sum() / max(elig.sum(), 1)), float(r.mean()) if len(r) else float("nan"), len(r)


def autocorr(x: np.ndarray, m: np.ndarray, lags: int, centre: bool = False) -> np.ndarray:
    """x (C, T, K, D) with mask m (C, T, K): per lag 1..lags, the correlation of x between
    frames lag apart (both masked in), per keypoint, averaged over keypoints with at
    least 30 pairs. centre: about each keypoint's mean (pooled over clips); else about 0
    (the fine errors, whose systematic part is removed: a bias that lasts a clip counts
    as correlated error, and short clips do not bias the estimate)."""
    out = np.full(lags, np.nan)
    mu = (x * m[..., None]).sum((0, 1)) / np.maximum(m.sum((0, 1)), 1)[:, None] if centre else 0.0
    xc = (x - mu) * m[..., None]
    for L in range(1, lags + 1):
        a, b = xc[:, :-L], xc[:, L:]
        pair = m[:, :-L] & m[:, L:]
        a, b = a * pair[..., None], b * pair[..., None]
        num = (a * b).sum((0, 1, 3))
        den = np.sqrt((a * a).sum((0, 1, 3)) * (b * b).sum((0, 1, 3)))
        ok = (pair.sum((0, 1)) >= 30) & (den > 0)
        if ok.any():
            out[L - 1] = float((num[ok] / den[ok]).mean())
    return out


def measure(truth, pred: np.ndarray, found: np.ndarray, C: int, T: int) -> dict:
    """The statistics over time of keypoints pred (C * T, K, 3) (found (C * T,))."""
    from hmrkit.data.synthetic import GROSS, GROUPS

    e, _ = truth.errors(pred)
    ev = (pred[..., :2] - truth.uv) / truth.h[:, None, None]
    conf = pred[..., 2]
    flipped, legs, hands, face, elig = CN.swap_events(truth, pred, found)
    keep = CN.unswapped(truth, flipped, legs, hands, face)
    base = found[:, None] & truth.valid[None] & truth.inimg
    det = base & (conf > 0)
    fine = det & keep & (e < GROSS)

    def ct(a):
        return a.reshape(C, T, *a.shape[1:])

    s = {}
    s["acf"] = autocorr(ct(ev[:, BODY]), ct(fine[:, BODY]), LAGS)
    limbs = np.isin(truth.groups, [GROUPS.index("limbs"), GROUPS.index("extremities")])
    lim = np.nonzero(limbs & (np.arange(len(truth.groups)) < 33))[0]
    s["conf_acf1"] = autocorr(ct(conf[:, lim, None]), ct(det[:, lim]), 1, centre=True)[0]
    s["drop_body"] = share_and_run(ct((conf < DROP_CONF)[:, BODY]), ct(base[:, BODY]))
    for name, (idx, anchor) in zip(("drop_left_hand", "drop_right_hand", "drop_face_mesh"), truth.parts):
        s[name] = share_and_run(ct(conf[:, anchor] < DROP_CONF), ct(base[:, anchor]))
    s["gross_body"] = share_and_run(ct((e > GROSS)[:, BODY]), ct((det & keep)[:, BODY]))
    s["swap_body"] = share_and_run(ct(flipped), ct(elig["body"]))
    s["swap_legs"] = share_and_run(ct(legs), ct(elig["legs"]))
    s["swap_hand"] = share_and_run(ct(hands), ct(elig["hands"]))
    eb = e[:, BODY][fine[:, BODY]]
    s["fine_med"] = float(np.median(eb)) if len(eb) else float("nan")
    return s


def mean_stats(all_s: list[dict]) -> dict:
    """The mean of several simulations' statistics (runs: mean of the mean run lengths)."""
    out = {}
    for k in all_s[0]:
        v = [s[k] for s in all_s]
        if isinstance(v[0], tuple):
            out[k] = (float(np.mean([x[0] for x in v])), float(np.nanmean([x[1] for x in v])),
                      int(np.sum([x[2] for x in v])))
        else:
            out[k] = np.nanmean(np.stack([np.asarray(x, np.float64) for x in v]), 0)
    return out


# ----------------------------------------------------------------------------------------
# Simulation and fit


def simulate(truth, found: np.ndarray, C: int, T: int, temporal, seeds) -> dict:
    from hmrkit.data.synthetic import NoiseConfig, add_temporal_noise

    X = truth.X_t.reshape(C, T, *truth.X_t.shape[1:])
    uv = truth.uv_t.reshape(C, T, *truth.uv_t.shape[1:])
    res = []
    for s in seeds:
        kp = add_temporal_noise(X, uv, truth.valid_t, "holistic", truth.image_size, NoiseConfig.realistic(), temporal,
                                seed=int(s)).reshape(C * T, -1, 3).numpy().astype(np.float64)
        res.append(measure(truth, kp, found, C, T))
    return mean_stats(res)


def fit_one(values: list[float], target: float, grid) -> float:
    """The rho where the simulated curve ``values`` (over ``grid``, increasing) meets
    ``target``, linearly interpolated (clipped to the grid's ends)."""
    v = np.asarray(values, np.float64)
    g = np.asarray(grid, np.float64)
    ok = np.isfinite(v)
    v, g = v[ok], g[ok]
    if not len(v) or not np.isfinite(target):
        return 0.0  # nothing measured (too few frames)
    v = np.maximum.accumulate(v)  # monotone against simulation noise
    if target <= v[0]:
        return float(g[0])
    if target >= v[-1]:
        return float(g[-1])
    return float(np.interp(target, v, g))


def pct(v, digits: int = 1) -> str:
    return "–" if not np.isfinite(v) else f"{100 * v:.{digits}f}"


def fmt_run(x):
    share, run, n = x
    return f"{100 * share:.1f} | {run:.2f} ({n})" if np.isfinite(run) else f"{100 * share:.1f} | – (0)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=None, help="at most this many clips (default: all train+val clips)")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--image", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--static-every", type=int, default=4, help="static-image detector on every n-th frame (0: none)")
    ap.add_argument("--sim-seeds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=None, help="npz: detections kept for a re-fit")
    ap.add_argument("--detector", choices=("holistic", "pipeline"), default="holistic",
                    help="holistic: MediaPipe Holistic in video mode (the calibration); pipeline: hmrkit run's "
                         "video detector (MultiPersonDetector, no smoothing), for comparison")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import hmrkit.body
    from hmrkit.data.synthetic import NoiseConfig, SyntheticBatch, TemporalNoiseConfig
    from hmrkit.data.sequences import load_sequences
    from hmrkit.types import BodyParams

    t_start = time.time()
    body = hmrkit.body.load("anny")
    clips = pick_clips(n=args.clips)
    lib = load_sequences("anny")
    print(f"{len(clips)} clips (train + val): {', '.join(lib.source[i] for i in clips)}; {args.frames} frames, "
          f"{args.image} px, seed {args.seed}", file=sys.stderr)
    seqs = sequences(body, clips, args.seed, args.image, args.frames)
    kv, fv, ks, fs = detect(body, seqs, args.seed, args.image, args.static_every, args.cache, args.detector)
    C, T = kv.shape[:2]
    t_det = time.time() - t_start

    batch = SyntheticBatch(params=BodyParams.cat([p for p, _ in seqs]), K=torch.cat([k for _, k in seqs]),
                           image_size=(args.image, args.image))
    noise = NoiseConfig.realistic()
    truth = CN.Truth(body, batch, np.full((C * T, 4), np.nan), face_turn=noise.face_turn)
    found = fv.reshape(-1)
    kv = kv.reshape(C * T, -1, 3).astype(np.float64)
    off = CN.systematic_offsets(truth, kv, found)
    pv = CN.remove_offsets(truth, kv, off)
    meas = measure(truth, pv, found, C, T)

    seeds = list(range(1000, 1000 + args.sim_seeds))
    indep = simulate(truth, found, C, T, TemporalNoiseConfig.independent(), seeds)
    # Each rho against its own statistic, the others held (coordinate-wise, in this order;
    # rho_jitter first provisionally, then again with the others fitted: persistent
    # exchanges of near-by points (a mirrored face, legs close together) add correlated
    # errors below GROSS).
    stats = {
        "rho_jitter": ("fine error lag-1 autocorrelation", lambda m: float(m["acf"][0])),
        "rho_gross": ("gross error run (body)", lambda m: m["gross_body"][1]),
        "rho_conf": ("low-confidence (conf < 0.2) run (body)", lambda m: m["drop_body"][1]),
        "rho_drop": ("hand dropout run (both hands)",
                     lambda m: float(np.nanmean([m["drop_left_hand"][1], m["drop_right_hand"][1]]))),
        "rho_swap": ("whole-person swap run", lambda m: m["swap_body"][1]),
    }
    current = TemporalNoiseConfig.independent()
    curves = []
    for name in ("rho_jitter", "rho_gross", "rho_conf", "rho_drop", "rho_swap", "rho_jitter"):
        label, stat = stats[name]
        target = stat(meas)
        sims = [stat(simulate(truth, found, C, T, replace(current, **{name: r}), seeds)) for r in GRID]
        r = fit_one(sims, target, GRID)
        r = round(r, 3 if r >= 0.99 else 2)
        curves.append((name, label, target, sims, r))
        current = replace(current, **{name: r})
        print(f"  {name} = {r} ({label}: MediaPipe {target:.3f}; {time.time() - t_start:.0f} s)", file=sys.stderr)
    calibrated = current
    cal = simulate(truth, found, C, T, calibrated, seeds)

    # ---- report
    P = print
    P(f"{C} clips x {T} frames ({C * T} frames; train + val splits), {args.image} px, seed {args.seed}; "
      f"{'MediaPipe Holistic (video mode)' if args.detector == 'holistic' else 'MultiPersonDetector (video mode)'} "
      f"found the person in {found.sum()} ({100 * found.mean():.1f}%); "
      f"detection {t_det:.0f} s")
    P(f"simulations: NoiseConfig.realistic() on the same frames' true keypoints, {len(seeds)} seeds each\n")
    P("| statistic | MediaPipe (video) | independent | calibrated |")
    P("| --- | ---: | ---: | ---: |")
    for L in range(LAGS):
        P(f"| fine error autocorrelation, lag {L + 1} | {meas['acf'][L]:.3f} | {indep['acf'][L]:.3f} | "
          f"{cal['acf'][L]:.3f} |")
    P(f"| confidence autocorrelation, lag 1 (limbs, extremities) | {meas['conf_acf1']:.3f} | "
      f"{float(indep['conf_acf1']):.3f} | {float(cal['conf_acf1']):.3f} |")
    P(f"| median fine error (body, % of height) | {100 * meas['fine_med']:.2f} | "
      f"{100 * float(indep['fine_med']):.2f} | {100 * float(cal['fine_med']):.2f} |")
    P("\n| event | MediaPipe (video) % \\| mean run (runs) | independent % \\| mean run (runs) | "
      "calibrated % \\| mean run (runs) |")
    P("| --- | ---: | ---: | ---: |")
    labels = {"drop_body": "dropout, body keypoint (conf < 0.2)", "drop_left_hand": "dropout, left hand",
              "drop_right_hand": "dropout, right hand", "drop_face_mesh": "dropout, face mesh",
              "gross_body": "gross error, body keypoint", "swap_body": "whole-person left/right swap",
              "swap_legs": "legs exchanged", "swap_hand": "hand slot holding the other hand"}
    for k, lab in labels.items():
        P(f"| {lab} | {fmt_run(meas[k])} | {fmt_run(indep[k])} | {fmt_run(cal[k])} |")
    P(f"\nfit, each rho in turn over {list(GRID)} (the others as fitted before it):")
    for name, label, target, sims, r in curves:
        P(f"  {name}: {label} {' '.join(f'{v:.2f}' for v in sims)}; MediaPipe {target:.3f} -> {r}")
    P(f"\n{calibrated}")

    if args.static_every:
        sub = fs.reshape(-1) & found  # frames both detectors saw (and found the person)
        ks = ks.reshape(C * T, -1, 3).astype(np.float64)
        ps = CN.remove_offsets(truth, ks, off)
        sv = CN.statistics(truth, pv, sub)
        ss = CN.statistics(truth, ps, sub)
        fl_v = CN.swap_events(truth, pv, sub)
        fl_s = CN.swap_events(truth, ps, sub)
        P(f"\nPer frame, video vs static-image mode on the same {sub.sum()} frames (every {args.static_every}th; "
          f"static found {fs.reshape(-1)[np.arange(C * T) % args.static_every == 0].mean() * 100:.1f}%, video "
          f"{found[np.arange(C * T) % args.static_every == 0].mean() * 100:.1f}% of them; the video mode's "
          f"offsets removed from both):\n")
        P("| group | mode | n | detected % | conf < 0.5 % | median err % | p90 err % | gross % | swap % |")
        P("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for g in sv:
            for mode, st in (("video", sv[g]), ("static", ss[g])):
                P(f"| {g} | {mode} | {st['n']} | {100 * st['det']:.1f} | {pct(st['low'])} | {pct(st['med'], 2)} "
                  f"| {pct(st['p90'], 2)} | {pct(st['gross'])} | {pct(st['swap'])} |")
        P(f"\nwhole-person swaps on those frames: video {fl_v[0].sum()}/{fl_v[4]['body'].sum()}, "
          f"static {fl_s[0].sum()}/{fl_s[4]['body'].sum()}")
    P(f"\ntotal {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
