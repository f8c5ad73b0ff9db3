"""PIXIE: part crops and their mirror, the moderators, the part heads' conventions, batch
equals loop, weights round trip, the frozen body expert, SMPL-X, the gender-aware shape
prior, the training's degradations and exact resume, and the shipped weights at work."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from hmrkit.geometry.rotation import mirror_rotmat, rotmat_from_aa, rotmat_to_6d
from hmrkit.models.pixie import (SIDES, Moderator, PixieConfig, PixieRegressor, default_weights, load_regressor,
                                 part_tokens)
from hmrkit.train.pixie import (N_BODY, N_FACE, N_HAND, PixieSetConfig, PixieTrainConfig, build_pixie_set,
                                degrade_parts, pixie_trainer)

SMALL = PixieConfig(width=16, hand_layers=1, heads=2, face_hidden=32, moderator_hidden=8)


@pytest.fixture(scope="module")
def tiny_set(anny_body):
    return build_pixie_set(anny_body, PixieSetConfig(n=24, seed=3))


def _inputs(ts, idx):
    from hmrkit.models.inputs import crop_inputs

    det = ts.det[idx]
    hands = torch.stack([det[:, N_BODY:N_BODY + N_HAND], det[:, N_BODY + N_HAND:N_BODY + 2 * N_HAND]], 1)
    return crop_inputs(det[:, :N_BODY], ts.K[idx], "mediapipe33"), hands, det[:, N_BODY + 2 * N_HAND:]


def test_part_tokens_mirror_and_missing_parts():
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([100 + 40 * torch.rand(3, 21, 2, generator=g), torch.ones(3, 21, 1)], -1)
    c = 0.5 * (pts[..., 0].amin(1) + pts[..., 0].amax(1))
    flipped = pts.clone()
    flipped[..., 0] = 2 * c[:, None] - pts[..., 0]  # the hand mirrored about its box's centre
    a, ia = part_tokens(pts, torch.full((3,), 400.0), mirror=True)
    b, ib = part_tokens(flipped, torch.full((3,), 400.0), mirror=False)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ia, ib)
    assert (a[..., :2].abs() <= 1 / 1.2 + 1e-5).all()  # the box has a 20 % margin
    none, info = part_tokens(torch.zeros(2, 21, 3), torch.full((2,), 400.0))
    assert (none == 0).all() and torch.equal(info, torch.tensor([[0.0, 0.0, -4.0]] * 2))


def test_moderator_is_a_softmax_at_its_temperature():
    torch.manual_seed(0)
    m = Moderator(8, 4, temperature=1.0)
    torch.nn.init.normal_(m.net[-1].weight)
    x, y, i = torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 3)
    w = m(x, y, i)
    assert torch.allclose(w.sum(-1), torch.ones(5)) and (w > 0).all()
    m.temperature = 100.0
    assert (m(x, y, i) - 0.5).abs().max() < (w - 0.5).abs().max()
    fresh = Moderator(8, 4, 1.0)
    assert torch.allclose(fresh(x, y, i), torch.full((5, 2), 0.5))  # starts even


def test_one_hand_head_serves_both_hands_through_the_mirror(anny_body, tiny_set):
    """The hand head predicts right hands; the left hand's rotations are its mirror image."""
    model = PixieRegressor(anny_body, SMALL).eval()
    R = rotmat_from_aa(torch.tensor([[0.3, -0.2, 0.5]]))[0]
    last = model.hand_head[-1]
    nf = model.num_fingers
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_((rotmat_to_6d(R) - rotmat_to_6d(torch.eye(3))).repeat(nf + 1))
        inputs, hands, face = _inputs(tiny_set, torch.arange(4))
        out = model(inputs, hands, face, anny_body)
        body = model.body_expert.params(anny_body, inputs)
    for side in SIDES:
        want = mirror_rotmat(R) if side == "left" else R
        got = out.params.pose[:, model.hand_index[side]]
        assert torch.allclose(got, want.expand_as(got), atol=1e-5), side
        w = model.wrist_index[side]
        assert torch.allclose(out.params.pose[:, w], body.pose[:, w] @ want, atol=1e-5), side
    # the body joints are the body expert's
    others = [i for i in range(len(anny_body.pose_joint_names))
              if i not in sum(model.hand_index.values(), []) + list(model.wrist_index.values()) + [model.head_index]]
    assert torch.equal(out.params.pose[:, others], body.pose[:, others])
    assert torch.equal(out.params.global_orient, body.global_orient) and torch.equal(out.params.transl, body.transl)


def test_batch_equals_loop_and_weights_round_trip(anny_body, tiny_set, tmp_path):
    from hmrkit.models.weights import save_weights

    torch.manual_seed(1)
    model = PixieRegressor(anny_body, SMALL)
    for h in (model.hand_head, model.face_head):
        torch.nn.init.normal_(h[-1].weight, std=0.05)
    model.eval()
    idx = torch.arange(5)
    with torch.no_grad():
        inputs, hands, face = _inputs(tiny_set, idx)
        batch = model(inputs, hands, face, anny_body)
        for i in range(5):
            one = model(*_inputs(tiny_set, idx[i:i + 1]), anny_body)
            assert torch.allclose(one.params.pose[0], batch.params.pose[i], atol=1e-5)
            assert torch.allclose(one.params.expression[0], batch.params.expression[i], atol=1e-5)
            assert torch.allclose(one.weights["left_hand"][0], batch.weights["left_hand"][i], atol=1e-6)
    path = save_weights(model.checkpoint({"note": "test"}), tmp_path / "pixie_anny.pt")
    back = load_regressor(anny_body, path)
    with torch.no_grad():
        again = back(inputs, hands, face, anny_body)
    assert torch.equal(again.params.pose, batch.params.pose) and back.card == {"note": "test"}
    assert (batch.params.expression >= 0).all() and (batch.params.expression <= 1).all()  # Anny's facial actions


def test_training_moves_the_experts_not_the_frozen_body(anny_body, tiny_set, tmp_path):
    import hmrkit.train.pixie as tp

    small_val = tp.validation_closeups(anny_body, 4)
    orig = tp.validation_closeups
    tp.validation_closeups = lambda body, n, **kw: small_val
    try:
        cfg = PixieTrainConfig(steps=2, batch=4, val_every=1, model=SMALL, data=PixieSetConfig(n=24, seed=3))
        a = pixie_trainer(anny_body, tiny_set, cfg, tmp_path / "a")
        a.begin()
        before = {k: v.clone() for k, v in a.model.state_dict().items()}
        rec = a.train()
        assert np.isfinite(rec["val hand PA"]) and 0 < rec["val w_part left_hand"] < 1
        after = a.model.state_dict()
        for k, v in before.items():
            if k.startswith("body_expert."):
                assert torch.equal(v, after[k]), k
        moved = [k for k in before if not k.startswith("body_expert.") and not torch.equal(before[k], after[k])]
        assert any(k.startswith("hand_expert.") for k in moved) and any(k.startswith("face_expert.") for k in moved)
        assert any(k.startswith("hand_moderator.") for k in moved)
        b = pixie_trainer(anny_body, tiny_set, cfg, tmp_path / "b")
        b.begin()
        b.train(stop_at=1)
        c = pixie_trainer(anny_body, tiny_set, cfg, tmp_path / "b")
        c.begin(resume=True)
        c.train()
    finally:
        tp.validation_closeups = orig
    for k, v in after.items():
        assert torch.equal(v, c.model.state_dict()[k]), k


def test_degradations_remove_swap_and_jitter(tiny_set):
    det = tiny_set.det[:8]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    gone = degrade_parts(det, g(), 1.0, 0.0, 0.0)
    assert (gone[:, N_BODY:, 2] == 0).all() and torch.equal(gone[:, :N_BODY], det[:, :N_BODY])
    sw = degrade_parts(det, g(), 0.0, 0.0, 1.0)
    assert torch.equal(sw[:, N_BODY:N_BODY + N_HAND], det[:, N_BODY + N_HAND:N_BODY + 2 * N_HAND])
    assert torch.equal(sw[:, N_BODY + 2 * N_HAND:], det[:, N_BODY + 2 * N_HAND:])
    bad = degrade_parts(det, g(), 0.0, 1.0, 0.0)
    found = det[:, N_BODY:, 2] > 0
    assert ((bad[:, N_BODY:, :2] - det[:, N_BODY:, :2]).norm(dim=-1)[found] > 0).float().mean() > 0.99
    assert (bad[:, N_BODY:, 2] <= det[:, N_BODY:, 2]).all() and (bad[:, N_BODY:, 2][~found] == 0).all()
    assert bad.shape == det.shape == (8, N_BODY + 2 * N_HAND + N_FACE, 3)


def test_training_set_has_posed_hands_and_faces(tiny_set, anny_body):
    from hmrkit.body.hands import finger_axes

    ax = finger_axes(anny_body)
    angles = ax.angles(tiny_set.params.pose)
    assert angles[..., 0].abs().mean() > 0.2  # fingers curl (radians)
    assert (tiny_set.params.expression > 0.2).any(-1).float().mean() > 0.4
    assert 0 < tiny_set.closeup.float().mean() < 1


@pytest.mark.parametrize("kind", ["smplx", "smplh", "smpl"])
def test_pixie_on_smpl_family_bodies(kind, tmp_path):
    """SMPL-X: fingers and a PCA expression (linear); SMPL-H: fingers; SMPL: wrists, head, shape."""
    from hmrkit.body.smpl import SMPLBody
    from hmrkit.body.synthetic import write_synthetic_model
    from hmrkit.models.inputs import crop_inputs

    body = SMPLBody.from_file(kind, write_synthetic_model(tmp_path / f"{kind}.npz", kind, "npz", seed=1))
    model = PixieRegressor(body, SMALL).eval()
    assert model.num_fingers == (0 if kind == "smpl" else 15) and not model.bounded_expression
    assert model.num_expression == (body.num_expression if kind == "smplx" else 0)
    g = torch.Generator().manual_seed(0)
    kp = torch.cat([200 + 300 * torch.rand(2, 33, 2, generator=g), torch.ones(2, 33, 1)], -1)
    K = torch.tensor([[600.0, 0, 360], [0, 600.0, 360], [0, 0, 1]]).expand(2, 3, 3)
    hands = torch.cat([300 + 40 * torch.rand(2, 2, 21, 2, generator=g), torch.ones(2, 2, 21, 1)], -1)
    face = torch.cat([300 + 30 * torch.rand(2, 41, 2, generator=g), torch.ones(2, 41, 1)], -1)
    with torch.no_grad():
        out = model(crop_inputs(kp, K), hands, face, body)
    assert out.params.pose.shape[1] == len(body.pose_joint_names)
    if kind == "smplx":
        assert out.params.expression.shape == (2, body.num_expression)
    assert torch.isfinite(body.forward_keypoints(out.params, ("coco17",))["coco17"]).all()


def test_gender_shape_prior_is_a_gaussian_mixture(anny_body):
    from scipy.stats import multivariate_normal

    from hmrkit.body.priors import GENDERS, GenderShapePrior

    prior = GenderShapePrior.for_body(anny_body)
    assert prior.source == "shape_prior_anny.json"
    mu, P = prior.means.double(), prior.precisions.double()
    cov = torch.linalg.inv(P).numpy()
    shapes = torch.tensor([[0.1, 0.6, 0.5, 0.5, 0.4, 0.5], [0.9, 0.7, 0.3, 0.6, 0.5, 0.5], [0.5, 0.3, 0.5, 0.5, 0.5, 0.5]])
    ref = np.array([-np.log(sum(np.exp(prior.log_norm[k].item() + 0.5 * np.linalg.slogdet(cov[k])[1])
                                * multivariate_normal(mu[k].numpy(), cov[k]).pdf(s.numpy()) for k in range(3)))
                    for s in shapes.double()])
    got = prior(shapes.double()).numpy()
    # equal up to the constant (2 pi)^(D/2)
    assert np.allclose(got - got[0], ref - ref[0], atol=1e-6)
    post = prior.gender(shapes)
    assert GENDERS[int(post[0].argmax())] == "male" and GENDERS[int(post[1].argmax())] == "female"
    assert torch.allclose(post.sum(-1), torch.ones(3))
    # a body with no fitted prior: one isotropic Gaussian around its mean shape
    class Fake:
        name, num_shape, shape_prior_std = "nobody", 3, 1.0

        def mean_params(self, n):
            from types import SimpleNamespace

            return SimpleNamespace(shape=torch.zeros(n, 3))

    iso = GenderShapePrior.for_body(Fake())
    x = torch.tensor([[1.0, 2.0, 0.0]])
    assert iso.source == "isotropic" and torch.allclose(iso(x) - iso(torch.zeros(1, 3)), torch.tensor([2.5]))


needs_weights = pytest.mark.skipif(not default_weights("anny").exists(), reason="no shipped PIXIE weights")


@needs_weights
def test_shipped_weights_card_and_check_figure(anny_body):
    from hmrkit.train.pixie import CHECK_SET, validate, validation_closeups

    path = default_weights("anny")
    assert path.stat().st_size < 8 * 2 ** 20
    model = load_regressor(anny_body)
    card = model.card
    for key in ("seed", "steps", "train_time_s", "val", "check", "samples", "data", "model", "body_expert"):
        assert key in card, key
    got = validate(model, anny_body, validation_closeups(anny_body, **CHECK_SET))
    assert abs(got["val hand PA"] - card["check"]["hand PA"]) < 0.5, (got, card["check"])
    assert abs(got["val face PA"] - card["check"]["face PA"]) < 0.2, (got, card["check"])


@needs_weights
def test_shipped_weights_beat_rest_hands_and_the_moderator_turns_to_the_body(anny_body):
    """On unseen close-ups PIXIE's hands and faces beat rest hands and a neutral face; with
    the hand evidence removed the fusion weight moves to the body expert."""
    from dataclasses import replace as dreplace

    from hmrkit.eval.metrics import pa_mpjpe
    from hmrkit.train.pixie import holistic_keypoints, validation_closeups

    model = load_regressor(anny_body)
    inputs, hands, face, X, params = validation_closeups(anny_body, 48, seed=77)
    with torch.no_grad():
        out = model(inputs, hands, face, anny_body)
        gone = model(inputs, torch.zeros_like(hands), face, anny_body)
        rest = model.body_expert.params(anny_body, inputs)
        P, R = holistic_keypoints(anny_body, out.params), holistic_keypoints(anny_body, rest)
        G = holistic_keypoints(anny_body, gone.params)
    h = slice(N_BODY, N_BODY + N_HAND)
    f = slice(N_BODY + 2 * N_HAND, None)
    mine, base, without = (float(pa_mpjpe(Y[:, h], X[:, h]).mean()) for Y in (P, R, G))
    assert mine < 0.9 * base, (mine, base)
    assert without < 1.3 * base, (without, base)  # degrades gracefully: no worse than a rest hand by much
    assert float(pa_mpjpe(P[:, f], X[:, f]).mean()) < float(pa_mpjpe(R[:, f], X[:, f]).mean())
    # the moderators start even (0.5, 0.5); trained, they trust a hand's evidence less when it is gone
    for side in ("left_hand", "right_hand"):
        assert gone.weights[side][:, 1].mean() < out.weights[side][:, 1].mean() - 0.05, side


def test_pixie_fit_is_anchored_and_uses_the_gender_prior(anny_body):
    """pixie+fit's refinement: free fingers anchored to PIXIE's, no pull to a neutral face,
    the gender-aware shape prior (docs/pixie.md); the other refinements keep theirs."""
    from hmrkit.estimate import build
    from hmrkit.estimate.registry import REFINE_DETAIL

    if not default_weights("anny").exists():
        pytest.skip("no shipped PIXIE weights")
    cfg = build("pixie+fit", anny_body).fitter.config
    assert cfg.shape_prior == "gender" and cfg.detail_anchor == REFINE_DETAIL["pixie"]["detail_anchor"] > 0
    assert cfg.finger_model == "free" and cfg.w_expression_prior == 0.0
    other = build("spin+fit", anny_body).fitter.config
    assert other.shape_prior is None and other.detail_anchor == 0.0 and other.finger_model == "coupled"


def test_detail_anchor_keeps_the_starting_fingers(anny_body):
    """Known ground truth: from the true body with the fingers at rest, clean keypoints pull
    the fingers to the truth; with a strong anchor they stay (nearly) where they started."""
    from hmrkit.body.hands import finger_axes
    from hmrkit.data.synthetic import NoiseConfig, keypoints2d
    from hmrkit.eval.sets import closeup_scenes
    from hmrkit.fit import FitConfig
    from hmrkit.fit.fitter import Fitter

    scenes, _, _ = closeup_scenes(anny_body, 4, seed=31, split="val")
    kp = keypoints2d(anny_body, scenes, "holistic", NoiseConfig.clean(), seed=32)
    ax = finger_axes(anny_body)
    pose = scenes.params.pose.clone()
    pose[:, ax.index] = torch.eye(3)
    start = replace(scenes.params, pose=pose)
    moved = {}
    for anchor in (0.0, 1e4):
        cfg = replace(FitConfig(), camera_iters=0, body_iters=0, finger_model="free", detail_anchor=anchor)
        out = Fitter(anny_body, cfg).fit(kp, "holistic", scenes.K, init=start)
        moved[anchor] = float(((out.params.pose[:, ax.index] - pose[:, ax.index]) ** 2).sum((-2, -1)).mean())
    assert moved[0.0] > 0.02 and moved[1e4] < 0.05 * moved[0.0], moved


@needs_weights
def test_shipped_weights_name_their_body_expert(anny_body, tmp_path):
    """The shipped file leaves SPIN's tensors out and names them by a fingerprint; weights
    trained with another SPIN are a one-line error, not a silently wrong body."""
    from hmrkit.errors import InputError
    from hmrkit.models.weights import load_weights, save_weights

    ck = load_weights(default_weights("anny"))
    assert not any(k.startswith("body_expert.") for k in ck["state_dict"])
    bad = {**ck, "config": {**ck["config"], "body_expert": {"fingerprint": "0" * 64}}}
    path = save_weights(bad, tmp_path / "pixie_anny.pt")
    with pytest.raises(InputError, match="trained with other SPIN weights"):
        load_regressor(anny_body, path)
