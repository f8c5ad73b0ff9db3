"""Detector noise over time (``hmrkit.data.synthetic.add_temporal_noise``,
``TemporalNoiseConfig``) and the refactoring of ``add_noise`` it rests on (its draws come
from ``noise_draws``; the noisy keypoints from ``_apply_noise``): add_noise's output for
a seed is pinned against a copy of the function as it was before (kept here only), and
the temporal model keeps the per-frame marginals while its draws persist over frames."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import Tensor

from hmrkit import conventions as C
from hmrkit.data.synthetic import (
    CONF_SPREAD,
    GROSS,
    GROUPS,
    STATES,
    _LEG_WORDS,
    GroupNoise,
    KeypointNoise,
    NoiseConfig,
    SceneConfig,
    TemporalNoiseConfig,
    _parts,
    add_noise,
    add_temporal_noise,
    ar1_matrix,
    keypoint_groups,
    keypoint_states,
    noise_draws,
    person_height,
    random_occluders,
    sample_scenes,
    true_keypoints,
)

BIG = (100_000, 100_000)  # an image no keypoint leaves


# ----------------------------------------------------------------------------------------
# add_noise before the refactoring (verbatim, renamed): the reference its output must equal


def _add_noise_before(X: Tensor, uv: Tensor, valid: Tensor, convention: str, image_size: tuple,
              noise: NoiseConfig = NoiseConfig(), seed: int = 0, occluders: Tensor | None = None) -> Tensor:
    """Detector-like noisy keypoints (B, K, 3): x, y px and confidence, from the exact
    keypoints X (B, K, 3) camera frame, metres, their projections uv (B, K, 2) px and
    valid (K,) bool (see ``true_keypoints``), for an image of image_size (H, W).

    occluders (B, 4): boxes x0, y0, x1, y1 px covering part of each person (NaN rows:
    none); None: drawn with probability ``noise.occluder``. Invalid keypoints and keypoints
    outside the image get confidence 0. The random numbers are drawn in a fixed order, so
    the same seed gives the same draws whatever the parameters (common random numbers)."""
    B, Kn = uv.shape[:2]
    dtype = uv.dtype
    valid = valid.bool()
    g = torch.Generator().manual_seed(int(seed))
    conv = C.get(convention)
    flip = torch.as_tensor(conv.flip)
    ar = torch.arange(Kn)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    # every draw, in a fixed order
    u_box = rand(B)
    box_draw = random_occluders(uv, valid, noise.occluder_size, g)
    u_swap, u_legs, u_hand, u_face, u_miss = rand(B), rand(B), rand(B, 2), rand(B), rand(B)
    u_gross, u_mirror, u_gdir, u_gmag = rand(B, Kn), rand(B, Kn), rand(B, Kn), rand(B, Kn)
    z_scale, z_fine, z_part = randn(B, Kn), randn(B, Kn, 2), randn(B, Kn, 2)
    u_low, u_conf, u_drop = rand(B, Kn), rand(B, Kn), rand(B, Kn)

    if occluders is None:
        occluders = torch.where((u_box < noise.occluder)[:, None], box_draw, torch.full_like(box_draw, float("nan")))
    h = person_height(uv, valid)
    state, head = keypoint_states(X, uv, valid, convention, occluders, noise.face_turn)

    # per keypoint parameters, gathered by (group, state)
    groups = torch.as_tensor(keypoint_groups(convention))
    fields = ("jitter", "tail", "part_spread", "gross", "gross_scale", "low_conf", "gross_low_conf", "conf_gap", "drop")
    table = torch.tensor([[[getattr(noise.group(gname).state(sname), f) for f in fields] for sname in STATES]
                          for gname in GROUPS], dtype=dtype)  # (G, S, F)
    P = dict(zip(fields, table[groups[None].expand(B, Kn), state].unbind(-1)))  # each (B, K)

    # which true keypoint each output keypoint shows (left/right exchanges)
    src = ar.expand(B, Kn).clone()
    legs = torch.tensor([any(w in n for w in _LEG_WORDS) for n in conv.names])
    legs_perm = torch.where(legs, flip, ar)
    src = torch.where((u_legs < noise.swap_legs)[:, None], src[:, legs_perm], src)
    src = torch.where((u_swap < noise.swap)[:, None], src[:, flip], src)
    if noise.face_turn is not None and noise.face_swap > 0:
        face = torch.as_tensor(np.isin(keypoint_groups(convention), [GROUPS.index("face"), GROUPS.index("face_mesh")]))
        mirrored = (u_face < noise.face_swap) & (head < noise.face_turn[0])
        src = torch.where(mirrored[:, None], src[:, torch.where(face, flip, ar)], src)
    parts = _parts(convention)
    hands = [idx for idx, _ in parts if conv.names[idx[0]].startswith(("left_hand.", "right_hand."))]
    if len(hands) == 2:
        before = src.clone()
        for j, (mine, other) in enumerate(((hands[0], hands[1]), (hands[1], hands[0]))):
            swap_hand = (u_hand[:, j] < noise.hand_swap)[:, None]
            src[:, mine] = torch.where(swap_hand, before[:, other], before[:, mine])
    base = torch.gather(uv, 1, src[..., None].expand(B, Kn, 2))

    # fine errors: a Gaussian with a log-normal scale, never beyond GROSS (redrawn)
    sd = P["jitter"] * torch.exp(P["tail"] * z_scale)
    fine = sd[..., None] * z_fine
    for _ in range(30):
        over = fine.norm(dim=-1) > GROSS
        if not over.any():
            break
        fine = torch.where(over[..., None], sd[..., None] * randn(B, Kn, 2), fine)
    fine = fine * (GROSS / fine.norm(dim=-1, keepdim=True).clamp(min=GROSS))
    for idx, anchor in parts:  # a hand or the face mesh: one error for the part, plus spread
        spread = P["part_spread"][:, anchor]
        shared = torch.where((spread > 0)[:, None, None], fine[:, anchor:anchor + 1].expand(B, len(idx), 2), fine[:, idx])
        own = spread[:, None] * torch.exp(P["tail"][:, idx] * z_scale[:, idx])
        fine[:, idx] = shared + own[..., None] * z_part[:, idx]

    # gross errors: onto the mirrored keypoint, or a random displacement
    gross = u_gross < P["gross"]
    far = (uv - uv[:, flip]).norm(dim=-1) > GROSS * h[:, None]  # a mirror point near by is no gross error
    mirror = gross & far & (u_mirror < noise.gross_mirror)
    ang = 2 * torch.pi * u_gdir
    mag = GROSS - P["gross_scale"] * torch.log1p(-u_gmag.clamp(max=1 - 1e-7))
    disp = torch.stack([torch.cos(ang), torch.sin(ang)], -1) * mag[..., None]
    mirror_uv = torch.gather(uv, 1, flip[src][..., None].expand(B, Kn, 2))
    err = torch.where(gross[..., None], disp, fine) * h[:, None, None]
    out_uv = torch.where(mirror[..., None], mirror_uv + fine * h[:, None, None], base + err)

    # confidence
    p_low = torch.where(gross, P["gross_low_conf"], P["low_conf"])
    lo, hi = noise.low_conf_range
    z_conf = math.sqrt(2) * torch.erfinv((2 * u_conf - 1).clamp(-1 + 1e-7, 1 - 1e-7))
    high = 1 - (P["conf_gap"] * torch.exp(CONF_SPREAD * z_conf)).clamp(max=0.5)
    conf = torch.where(u_low < p_low, lo + (hi - lo) * u_conf, high)
    keep = u_drop >= P["drop"]
    for idx, anchor in parts:  # a part is found or missed as a whole
        found = 1 - P["drop"][:, anchor]
        if noise.face_turn is not None and (convention == "face" or conv.names[idx[0]].startswith("face.")):
            a, b = noise.face_turn  # the face mesh fades out as the head turns away
            found = found * ((head - a) / max(b - a, 1e-6)).clamp(0, 1)
        keep[:, idx] = (u_drop[:, anchor] >= 1 - found)[:, None]
    conf = conf * keep * valid[None] * (u_miss >= noise.miss)[:, None]
    H, W = image_size
    inside = (out_uv[..., 0] >= 0) & (out_uv[..., 0] < W) & (out_uv[..., 1] >= 0) & (out_uv[..., 1] < H)
    conf = conf * inside
    return torch.cat([out_uv, conf[..., None]], -1)


# ----------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def scenes(anny_body):
    return sample_scenes(anny_body, 12, seed=4, config=SceneConfig(image_size=(640, 640), distance=(3.0, 5.0)))


@pytest.fixture(scope="module")
def truth(anny_body, scenes):
    return true_keypoints(anny_body, scenes, "holistic")


def _all_groups(k: KeypointNoise, **kw) -> NoiseConfig:
    g = GroupNoise(visible=k)
    return NoiseConfig(**{name: g for name in GROUPS}, **kw)


def _clips(X: Tensor, uv: Tensor, n: int, T: int, drift: float = 0.0):
    """n clips of T frames of the people X (B, K, 3), uv (B, K, 2), person i % B in clip i,
    moving right by ``drift`` px a frame."""
    B = X.shape[0]
    idx = torch.arange(n) % B
    Xc = X[idx][:, None].expand(n, T, *X.shape[1:]).clone()
    uvc = uv[idx][:, None].expand(n, T, *uv.shape[1:]).clone()
    uvc[..., 0] += drift * torch.arange(T, dtype=uv.dtype)[None, :, None]
    return Xc, uvc


def _mediapipe33(truth):
    X, uv, valid = truth
    return X[:, :33], uv[:, :33], valid[:33]


# ----------------------------------------------------------------------------------------
# add_noise: the same output for a seed as before the refactoring


NOISES = {
    "realistic": NoiseConfig.realistic(),
    "realistic+boxes": NoiseConfig(**{**NoiseConfig.realistic().__dict__, "occluder": 0.6, "miss": 0.2}),
    "simple": NoiseConfig(jitter=0.03, drop=0.1, low_conf=0.3, swap=0.4),
    # fine errors often beyond GROSS: the redraw loop runs
    "heavy": _all_groups(KeypointNoise(jitter=0.06, tail=0.8, gross=0.2, gross_scale=0.1, low_conf=0.3,
                                       gross_low_conf=0.7, conf_gap=0.05, drop=0.1, part_spread=0.01),
                         swap=0.3, swap_legs=0.3, hand_swap=0.3, face_swap=0.5, gross_mirror=0.5,
                         face_turn=(0.4, 0.9)),
}


@pytest.mark.parametrize("name", sorted(NOISES))
@pytest.mark.parametrize("convention", ["holistic", "mediapipe33", "coco17"])
def test_add_noise_unchanged_by_the_refactoring(anny_body, scenes, name, convention):
    X, uv, valid = true_keypoints(anny_body, scenes, convention)
    noise = NOISES[name]
    for seed in (0, 1, 12345):
        new = add_noise(X, uv, valid, convention, scenes.image_size, noise, seed)
        old = _add_noise_before(X, uv, valid, convention, scenes.image_size, noise, seed)
        assert torch.equal(new, old), (name, convention, seed)
    boxes = random_occluders(uv, valid, (0.3, 0.6), torch.Generator().manual_seed(3))
    boxes[::3] = float("nan")
    assert torch.equal(add_noise(X, uv, valid, convention, scenes.image_size, noise, 4, boxes),
                       _add_noise_before(X, uv, valid, convention, scenes.image_size, noise, 4, boxes))


def test_add_noise_pinned_numbers():
    """A few outputs of add_noise on fixed keypoints (no body model), as literal numbers
    computed before the refactoring."""
    g = torch.Generator().manual_seed(0)
    uv = 200 + 200 * torch.rand(3, 33, 2, generator=g)
    X = torch.cat([(uv - 320) / 800 * 4.0, torch.full((3, 33, 1), 4.0)], -1) + 0.1 * torch.rand(3, 33, 3, generator=g)
    valid = torch.ones(33, dtype=torch.bool)
    out = add_noise(X, uv, valid, "mediapipe33", (640, 640), NOISES["heavy"], seed=9)
    got = out[:, [0, 11, 15, 27]].reshape(-1)
    assert torch.allclose(got, PINNED, atol=1e-4), got.tolist()


# filled in from the function before the refactoring (see test_add_noise_pinned_numbers)
PINNED = torch.tensor([
    283.6158, 355.0956, 0.3022, 307.8589, 387.9939, 0.3041,
    256.8473, 391.6172, 0.5, 378.6529, 250.7888, 0.9869,
    301.7874, 325.2772, 0.9886, 383.798, 271.9331, 0.0,
    350.5552, 317.6713, 0.2714, 338.1226, 304.2769, 0.0,
    236.4553, 300.9366, 0.948, 355.4807, 209.5535, 0.9881,
    203.4154, 200.5849, 0.9023, 275.7037, 282.8571, 0.9323,
])


def test_noise_draws_feed_apply_noise(truth):
    """add_noise = _apply_noise on noise_draws from the same generator (the names and
    order of NOISE_DRAWS)."""
    from hmrkit.data.synthetic import NOISE_DRAWS, _apply_noise

    X, uv, valid = _mediapipe33(truth)
    noise = NoiseConfig.realistic()
    g = torch.Generator().manual_seed(5)
    d = noise_draws(uv, valid, noise, g)
    assert tuple(d) == NOISE_DRAWS
    assert d["z_fine"].shape == (12, 33, 2) and d["u_hand"].shape == (12, 2) and d["box_draw"].shape == (12, 4)
    out = _apply_noise(X, uv, valid, "mediapipe33", (640, 640), noise, d, None,
                       lambda *s: torch.randn(*s, generator=g, dtype=uv.dtype))
    assert torch.equal(out, add_noise(X, uv, valid, "mediapipe33", (640, 640), noise, 5))


# ----------------------------------------------------------------------------------------
# add_temporal_noise


def test_ar1_matrix_is_stationary_with_lag1_rho():
    for rho in (0.0, 0.5, 0.9, 1.0):
        L = ar1_matrix(16, rho, torch.float64)
        cov = L @ L.T
        assert torch.allclose(cov.diagonal(), torch.ones(16, dtype=torch.float64))
        assert torch.allclose(cov.diagonal(1), torch.full((15,), rho, dtype=torch.float64))
        assert torch.allclose(cov.diagonal(3), torch.full((13,), rho ** 3, dtype=torch.float64))
    assert torch.equal(ar1_matrix(4, 0.0), torch.eye(4))


def test_temporal_config():
    from hmrkit.data.synthetic import NOISE_DRAWS, TEMPORAL_DRAWS

    assert TemporalNoiseConfig.independent() == TemporalNoiseConfig(0.0, 0.0, 0.0, 0.0, 0.0)
    d = TemporalNoiseConfig()
    assert all(0.0 < getattr(d, f) < 1.0 for f in TEMPORAL_DRAWS)
    # every per-frame draw has its rho; the occluder's (u_box, box_draw) is drawn once per clip
    assert sorted(sum(TEMPORAL_DRAWS.values(), ())) == sorted(set(NOISE_DRAWS) - {"u_box", "box_draw"})
    with pytest.raises(ValueError, match="rho_swap"):
        TemporalNoiseConfig(rho_swap=1.5)


def test_temporal_shapes_and_seeds(truth):
    X, uv, valid = _mediapipe33(truth)
    Xc, uvc = _clips(X, uv, 5, 7, drift=2.0)
    noise = NoiseConfig.realistic()
    a = add_temporal_noise(Xc, uvc, valid, "mediapipe33", (640, 640), noise, TemporalNoiseConfig(), seed=3)
    assert a.shape == (5, 7, 33, 3) and torch.isfinite(a).all()
    assert ((a[..., 2] >= 0) & (a[..., 2] <= 1)).all()
    assert torch.equal(a, add_temporal_noise(Xc, uvc, valid, "mediapipe33", (640, 640), noise,
                                             TemporalNoiseConfig(), seed=3))
    assert not torch.equal(a, add_temporal_noise(Xc, uvc, valid, "mediapipe33", (640, 640), noise,
                                                 TemporalNoiseConfig(), seed=4))
    # holistic too (hands and face mesh as parts); clean noise is exact
    Xh, uvh, vh = truth
    Xc, uvc = _clips(Xh, uvh, 3, 4)
    b = add_temporal_noise(Xc, uvc, vh, "holistic", (640, 640), noise, TemporalNoiseConfig(), seed=1)
    assert b.shape == (3, 4, len(C.HOLISTIC), 3)
    c = add_temporal_noise(Xc, uvc, vh, "holistic", (640, 640), NoiseConfig.clean(), TemporalNoiseConfig(), seed=1)
    assert torch.equal(c[..., :2], uvc)
    with pytest.raises(ValueError, match="N, T, K"):
        add_temporal_noise(X, uv, valid, "mediapipe33", (640, 640), noise, TemporalNoiseConfig(), seed=1)


def _lag_corr(err: Tensor, lag: int) -> float:
    """err (N, T, K, 2): the correlation of the error vectors lag frames apart."""
    a, b = err[:, :-lag], err[:, lag:]
    return float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))


def test_jitter_lag1_correlation_is_rho(truth):
    X, uv, valid = _mediapipe33(truth)
    Xc, uvc = _clips(X, uv, 240, 16, drift=1.5)
    h = person_height(uvc.flatten(0, 1), valid).reshape(240, 16)
    noise = _all_groups(KeypointNoise(jitter=0.01))  # plain Gaussian, far below GROSS
    for rho in (0.0, 0.6, 0.9):
        t = replace(TemporalNoiseConfig.independent(), rho_jitter=rho)
        out = add_temporal_noise(Xc, uvc, valid, "mediapipe33", BIG, noise, t, seed=11)
        err = (out[..., :2] - uvc) / h[..., None, None]
        assert abs(float(err.std()) - 0.01) < 0.0005  # the per-frame marginal
        assert abs(_lag_corr(err, 1) - rho) < 0.02, rho
        assert abs(_lag_corr(err, 2) - rho ** 2) < 0.02, rho


def _runs(x: Tensor) -> Tensor:
    """Lengths of the runs of True along dim 1 of x (N, T, ...) bool, all pooled."""
    a = x.movedim(1, -1).reshape(-1, x.shape[1]).numpy()
    out = []
    for row in a:
        d = np.diff(np.concatenate([[0], row.astype(np.int8), [0]]))
        out.extend((np.flatnonzero(d == -1) - np.flatnonzero(d == 1)).tolist())
    return torch.tensor(out, dtype=torch.float64)


def test_marginals_kept_and_events_persist(truth):
    """Drop, low-confidence and whole-person swap rates per frame are add_noise's whatever
    rho; with rho > 0 the events last longer (runs), with rho = 0 they are independent."""
    X, uv, valid = _mediapipe33(truth)
    N, T = 480, 16
    Xc, uvc = _clips(X, uv, N, T)
    noise = NoiseConfig(drop=0.2, low_conf=0.25, swap=0.3)  # no jitter: a swap is exact
    ls, rs = C.MEDIAPIPE33.index("left_shoulder"), C.MEDIAPIPE33.index("right_shoulder")
    ref = add_noise(Xc.flatten(0, 1), uvc.flatten(0, 1), valid, "mediapipe33", BIG, noise, seed=2)

    def rates(out):
        conf = out[..., 2]
        swapped = (out[..., ls, :2] - uvc.reshape(out.shape[:-2] + (33, 2))[..., rs, :]).norm(dim=-1) < 1e-3
        return float((conf == 0).double().mean()), float(((conf > 0) & (conf < 0.5)).double().mean()), \
            float(swapped.double().mean())

    r0 = rates(ref)
    assert abs(r0[0] - 0.2) < 0.01 and abs(r0[2] - 0.3) < 0.02
    runs = {}
    for rho in (0.0, 0.9):
        t = TemporalNoiseConfig(rho, rho, rho, rho, rho)
        out = add_temporal_noise(Xc, uvc, valid, "mediapipe33", BIG, noise, t, seed=5)
        r = rates(out)
        assert abs(r[0] - r0[0]) < 0.02 and abs(r[1] - r0[1]) < 0.02 and abs(r[2] - r0[2]) < 0.05, (rho, r, r0)
        dropped = out[..., 2] == 0
        swapped = (out[..., ls, :2] - uvc[..., rs, :]).norm(dim=-1) < 1e-3
        runs[rho] = float(_runs(dropped).mean()), float(_runs(swapped[..., None]).mean())
    # independent frames: geometric runs of mean 1 / (1 - p) (truncated by the clip's ends)
    assert abs(runs[0.0][0] - 1 / 0.8) < 0.05 and abs(runs[0.0][1] - 1 / 0.7) < 0.1
    assert runs[0.9][0] > 2.0 * runs[0.0][0] and runs[0.9][1] > 2.0 * runs[0.0][1], runs


def test_independent_matches_add_noise_statistically(truth):
    X, uv, valid = truth
    N, T = 96, 8
    Xc, uvc = _clips(X, uv, N, T, drift=1.0)
    noise = NoiseConfig.realistic()
    a = add_temporal_noise(Xc, uvc, valid, "holistic", (640, 640), noise, TemporalNoiseConfig.independent(), seed=1)
    b = add_noise(Xc.flatten(0, 1), uvc.flatten(0, 1), valid, "holistic", (640, 640), noise, seed=1).reshape(a.shape)
    h = person_height(uvc.flatten(0, 1), valid).reshape(N, T)[..., None]
    groups = torch.as_tensor(keypoint_groups("holistic"))
    for out in (a,):
        for gi, g in enumerate(GROUPS):
            m = groups == gi
            det_a, det_b = float((a[..., m, 2] > 0).double().mean()), float((b[..., m, 2] > 0).double().mean())
            assert abs(det_a - det_b) < 0.03, (g, det_a, det_b)
            ea = ((a[..., m, :2] - uvc[..., m, :]).norm(dim=-1) / h)[a[..., m, 2] > 0]
            eb = ((b[..., m, :2] - uvc[..., m, :]).norm(dim=-1) / h)[b[..., m, 2] > 0]
            assert abs(float(ea.median()) - float(eb.median())) < 0.15 * float(eb.median()), g
    err = (a[..., :33, :2] - uvc[..., :33, :]) / h[..., None]
    fine = (err.norm(dim=-1) < GROSS)[..., None] & (a[..., :33, 2:] > 0)
    err = err * fine
    assert abs(_lag_corr(err, 1)) < 0.03


def test_one_occluder_per_clip(truth):
    X, uv, valid = _mediapipe33(truth)
    N, T = 12, 6
    Xc, uvc = _clips(X, uv, N, T, drift=4.0)
    hidden = KeypointNoise(drop=1.0)
    noise = _all_groups(KeypointNoise(jitter=0.0), occluder=1.0)
    noise = NoiseConfig(**{**noise.__dict__, **{g: GroupNoise(visible=KeypointNoise(), boxed=hidden) for g in GROUPS}})
    out = add_temporal_noise(Xc, uvc, valid, "mediapipe33", BIG, noise, TemporalNoiseConfig(), seed=3)
    dropped = out[..., 2] == 0
    assert dropped.any(-1).double().mean() > 0.8  # a box over part of the person (who moves under it)
    # the same box in every frame: the keypoints dropped are those inside one fixed box
    for i in range(N):
        pts = uvc[i][dropped[i]]
        kept = uvc[i][~dropped[i]]
        lo, hi = pts.min(0).values, pts.max(0).values
        inside = ((kept >= lo) & (kept <= hi)).all(-1)
        assert not inside.any()
    boxes = torch.tensor([[0.0, 0.0, 1e6, 1e6]]).repeat(N, 1)
    boxes[1::2] = float("nan")
    out = add_temporal_noise(Xc, uvc, valid, "mediapipe33", BIG, noise, TemporalNoiseConfig(), seed=3,
                             occluders=boxes)
    assert (out[0::2, ..., 2] == 0).all() and (out[1::2, ..., 2] > 0).all()


def test_fast_enough_for_training(truth):
    """8 clips x 16 frames x 33 keypoints in a few ms (one thread)."""
    X, uv, valid = _mediapipe33(truth)
    Xc, uvc = _clips(X, uv, 8, 16, drift=1.0)
    noise, t = NoiseConfig.realistic(), TemporalNoiseConfig()
    add_temporal_noise(Xc, uvc, valid, "mediapipe33", (640, 640), noise, t, seed=0)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        for s in range(10):
            add_temporal_noise(Xc, uvc, valid, "mediapipe33", (640, 640), noise, t, seed=s)
        ms = (time.perf_counter() - t0) / 10 * 1e3
    finally:
        torch.set_num_threads(n_threads)
    assert ms < 40, f"{ms:.1f} ms per call"
