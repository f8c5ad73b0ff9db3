"""Anny behind the BodyModel interface: conventions, batching, gradients, keypoints."""

import pytest
import roma
import torch

from hmrkit.body.anny import ANNY_SKELETON, SHAPE_NAMES
from hmrkit.geometry import rotmat_from_6d, rotmat_power, rotmat_to_6d
from hmrkit.types import BodyParams


def with_pose(params, **rot):
    pose = params.pose.clone()
    return BodyParams(params.global_orient, pose, params.shape, params.transl, params.expression), pose


def random_params(body, B, seed=0, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    dtype = body.dtype
    aa = torch.randn(B, body.num_pose_joints, 3, generator=g, dtype=dtype) * scale
    return BodyParams(
        global_orient=roma.rotvec_to_rotmat(torch.randn(B, 3, generator=g, dtype=dtype)),
        pose=roma.rotvec_to_rotmat(aa),
        shape=torch.rand(B, body.num_shape, generator=g, dtype=dtype),
        transl=torch.randn(B, 3, generator=g, dtype=dtype),
        expression=torch.rand(B, body.num_expression, generator=g, dtype=dtype) * 0.5,
    )


def joint(body, out, name):
    return out.joints[:, body.joint_names.index(name)]


def test_metadata(anny_body):
    b = anny_body
    assert b.num_pose_joints == 51 and len(b.joint_names) == len(b.parents) == 52
    assert b.num_shape == 6 and tuple(b.shape_names) == SHAPE_NAMES
    assert b.num_expression == 52 and b.num_vertices == 13718
    assert all(p < i for i, p in enumerate(b.parents))
    assert b.faces.shape[1] == 3 and int(b.faces.max()) < b.num_vertices
    # every Anny bone is driven by at most one joint
    driven = [bone for _, _, _, bones in ANNY_SKELETON for bone, _ in bones]
    assert len(driven) == len(set(driven))


def test_mean_body_upright_facing_z_left_is_plus_x(anny_body):
    b = anny_body
    out = b(b.mean_params(1))
    v = out.vertices[0]
    assert torch.allclose(joint(b, out, "pelvis"), torch.zeros(1, 3), atol=1e-6)
    assert joint(b, out, "head")[0, 1] > 0.4  # y up
    assert joint(b, out, "left_ankle")[0, 1] < -0.6
    assert joint(b, out, "left_shoulder")[0, 0] > 0.1 and joint(b, out, "right_shoulder")[0, 0] < -0.1
    nose = b.keypoints(out, "coco17")[0, 0]
    assert nose[2] > 0.08  # the face looks towards +z
    height = (v[:, 1].max() - v[:, 1].min()).item()
    assert 1.5 < height < 1.9


@pytest.mark.parametrize("age,lo,hi", [(0.1, 0.5, 1.1), (0.67, 1.6, 1.95), (1.0, 1.6, 1.95)])
def test_heights_across_ages(anny_body, age, lo, hi):
    b = anny_body
    shape = torch.full((1, 6), 0.5)
    shape[0, SHAPE_NAMES.index("age")] = age
    v = b.rest_output(shape).vertices[0]
    assert lo < (v[:, 1].max() - v[:, 1].min()).item() < hi


def test_batch_equals_loop(anny_body):
    b = anny_body
    p = random_params(b, 4)
    out = b(p)
    for i in range(4):
        single = b(p[i])
        assert torch.allclose(out.vertices[i], single.vertices[0], atol=1e-5)
        assert torch.allclose(out.joints[i], single.joints[0], atol=1e-5)


def test_global_orient_and_transl(anny_body):
    b = anny_body
    p = random_params(b, 2)
    base = b(BodyParams(torch.eye(3).expand(2, 3, 3), p.pose, p.shape, torch.zeros(2, 3), p.expression))
    out = b(p)
    expect = base.vertices @ p.global_orient.transpose(-1, -2) + p.transl[:, None]
    assert torch.allclose(out.vertices, expect, atol=1e-5)
    assert torch.allclose(joint(b, out, "pelvis"), p.transl, atol=1e-5)


def test_local_rotation_convention_pin(anny_body64):
    """A joint's rotation turns its subtree about the joint, in the body frame's axes."""
    b = anny_body64
    p = b.mean_params(1)
    rest = b(p)
    R = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, 1.2], dtype=torch.float64))
    pose = p.pose.clone()
    pose[0, b.joint_names.index("left_elbow") - 1] = R
    out = b(BodyParams(p.global_orient, pose, p.shape, p.transl, p.expression))
    E, W = joint(b, rest, "left_elbow"), joint(b, rest, "left_wrist")
    assert torch.allclose(joint(b, out, "left_wrist"), E + (W - E) @ R.T, atol=1e-6)
    assert torch.allclose(joint(b, out, "left_shoulder"), joint(b, rest, "left_shoulder"), atol=1e-9)


def test_split_joint_composes_to_full_rotation(anny_body64):
    """spine1 drives two chained Anny bones with R^(1/2) each."""
    b = anny_body64
    p = b.mean_params(1)
    rest = b(p)
    R = roma.rotvec_to_rotmat(torch.tensor([0.5, 0.3, -0.2], dtype=torch.float64))
    pose = p.pose.clone()
    pose[0, b.joint_names.index("spine1") - 1] = R
    out = b(BodyParams(p.global_orient, pose, p.shape, p.transl, p.expression))
    bones = b.anny.bone_labels
    heads = b.anny(phenotype_kwargs=p.shape)["bone_poses"][0, :, :3, 3] @ b.body_from_anny.T
    S4 = heads[bones.index("spine04")]
    N = joint(b, rest, "neck")[0]
    half = rotmat_power(R, 0.5)
    expect = half @ S4 + R @ (N - S4)
    assert torch.allclose(joint(b, out, "neck")[0], expect, atol=1e-6)


def test_gradients_recover_pose_from_joints(anny_body):
    """A small optimisation from the rest pose recovers a known pose from its joints."""
    b = anny_body
    torch.manual_seed(0)
    target = b.mean_params(1)
    idx = [b.joint_names.index(n) - 1 for n in ("left_shoulder", "left_elbow", "right_knee", "right_hip")]
    pose = target.pose.clone()
    for i in idx:
        pose[0, i] = roma.rotvec_to_rotmat(torch.randn(3) * 0.5)
    target = BodyParams(target.global_orient, pose, target.shape, target.transl, target.expression)
    goal = b(target).joints.detach()

    # optimise the four perturbed joints (6D), the others held at rest
    init = b.mean_params(1)
    x6 = rotmat_to_6d(init.pose[:, idx]).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x6], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def make():
        pose = init.pose.clone()
        pose[:, idx] = rotmat_from_6d(x6)
        return BodyParams(init.global_orient, pose, init.shape, init.transl, init.expression)

    def closure():
        opt.zero_grad()
        loss = ((b(make()).joints - goal) ** 2).sum(-1).mean()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    params = make()
    assert x6.grad is not None and torch.isfinite(x6.grad).all()
    err = (b(params).joints - goal).norm(dim=-1).max().item()
    assert err < 0.01, f"max joint error {err:.4f} m"


def test_gradients_flow_to_shape(anny_body):
    b = anny_body
    p = b.mean_params(1)
    shape = p.shape.clone().requires_grad_(True)
    out = b(BodyParams(p.global_orient, p.pose, shape, p.transl, p.expression))
    out.vertices[..., 1].max().backward()  # the top of the head moves with height/age
    g = shape.grad[0]
    assert torch.isfinite(g).all() and g[SHAPE_NAMES.index("height")] > 0


def test_expression_moves_only_the_head(anny_body):
    b = anny_body
    p = b.mean_params(1)
    e = torch.zeros(1, b.num_expression)
    e[0, b.facial_action_names.index("jawOpen")] = 1.0
    out0 = b(p)
    out1 = b(BodyParams(p.global_orient, p.pose, p.shape, p.transl, e))
    moved = (out1.vertices - out0.vertices).norm(dim=-1)[0]
    assert moved.max() > 0.005
    assert out0.vertices[0, moved > 1e-4, 1].min() > 0.4  # every moved vertex is on the head


def test_coco_regressor_matches_anny(anny_body):
    import anny

    b = anny_body
    p = random_params(b, 2)
    p = BodyParams(torch.eye(3).expand(2, 3, 3), p.pose, p.shape, torch.zeros(2, 3), None)
    out = b(p)
    ours = b.keypoints(out, "coco17")
    anny_v = out.vertices @ b.body_from_anny  # back to Anny's frame (C is orthonormal)
    theirs = anny.KeypointsRegressor.coco(b.anny)({"vertices": anny_v})[:, :17] @ b.body_from_anny.T
    # weights below 1e-6 are dropped (sparse form): agreement to 0.1 mm
    assert (ours - theirs).abs().max() < 1e-4


def test_keypoints_follow_the_hand(anny_body):
    b = anny_body
    p = b.mean_params(1)
    rest = b(p)
    pose = p.pose.clone()
    pose[0, b.joint_names.index("left_wrist") - 1] = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, 1.0]))
    out = b(BodyParams(p.global_orient, pose, p.shape, p.transl, p.expression))
    hand0 = b.keypoints(rest, "hand21_left")[0]
    hand1 = b.keypoints(out, "hand21_left")[0]
    j = b.joint_names.index("left_wrist")
    assert torch.allclose(rest.joints[0, j], out.joints[0, j], atol=1e-6)  # the wrist joint itself stays
    # hand21's wrist sits on the palm, 8.5 % of the way to the middle knuckle (ANNY_HAND21_PALM):
    # it turns with the hand, a little
    assert 0.0005 < float((hand0[0] - hand1[0]).norm()) < 0.01
    assert (hand1[8] - hand0[8]).norm() > 0.05  # the index tip moves
    assert torch.allclose(b.keypoints(out, "hand21_right"), b.keypoints(rest, "hand21_right"), atol=1e-6)
    # tips lie beyond the distal joints
    for tip, dip in ((4, 3), (8, 7), (12, 11), (16, 15), (20, 19)):
        assert (hand0[tip] - hand0[0]).norm() > (hand0[dip] - hand0[0]).norm()


def test_wrong_shapes_raise_clear_errors(anny_body):
    b = anny_body
    p = b.mean_params(1)
    with pytest.raises(ValueError, match="expected 51"):
        b(BodyParams(p.global_orient, p.pose[:, :23], p.shape, p.transl))
    with pytest.raises(ValueError, match="float64"):
        b(p.to(torch.float64))


def test_forward_joints_matches_forward(anny_body):
    b = anny_body
    p = random_params(b, 3)
    assert torch.allclose(b.forward_joints(p), b(p).joints, atol=1e-5)
    shared = BodyParams(p.global_orient, p.pose, p.shape[:1].expand(3, -1), p.transl, p.expression)
    assert torch.allclose(b.forward_joints(shared), b(shared).joints, atol=1e-5)
    loop = torch.cat([b(shared[i]).vertices for i in range(3)])
    assert torch.allclose(b(shared).vertices, loop, atol=1e-5)


# ----------------------------------------------------------------------------------------
# forward_keypoints: keypoints without the mesh


def _full_keypoints(b, params, conventions):
    out = b(params)
    result = {c: b.keypoints(out, c) for c in conventions}
    result["joints"] = out.joints
    return result


@pytest.mark.parametrize("B,expression,shared", [(1, True, False), (3, True, False), (4, False, False),
                                                  (3, True, True), (3, False, True)])
def test_forward_keypoints_equals_keypoints_of_forward(anny_body, B, expression, shared):
    b = anny_body
    p = random_params(b, B, seed=B, scale=0.6)
    shape = p.shape[:1].expand(B, -1) if shared else p.shape  # stride 0: the rest bones built once
    p = BodyParams(p.global_orient, p.pose, shape, p.transl, p.expression if expression else None)
    conventions = tuple(b.keypoint_conventions)
    fast, full = b.forward_keypoints(p, conventions), _full_keypoints(b, p, conventions)
    assert set(fast) == set(conventions) | {"joints"}
    for c in full:
        assert fast[c].shape == full[c].shape
        assert (fast[c] - full[c]).abs().max() < 1e-5, c  # metres
    # the keypoints the model cannot produce stay at zero, whatever transl
    for c in conventions:
        assert not fast[c][:, ~b.keypoint_valid(c)].any()


def test_forward_keypoints_expression_moves_the_face(anny_body):
    """The face regressor's vertices follow the facial blend shapes (the test above checks
    the values; this one that the expression is not ignored)."""
    b = anny_body
    p = b.mean_params(1)
    e = torch.zeros(1, b.num_expression)
    e[0, b.facial_action_names.index("jawOpen")] = 1.0
    open_ = BodyParams(p.global_orient, p.pose, p.shape, p.transl, e)
    moved = (b.forward_keypoints(open_, ("face",))["face"] - b.forward_keypoints(p, ("face",))["face"]).norm(dim=-1)
    assert moved.max() > 0.005
    assert (moved - (b.keypoints(b(open_), "face") - b.keypoints(b(p), "face")).norm(dim=-1)).abs().max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_keypoints_gradients_equal_the_full_path(anny_body, anny_body64, dtype):
    b = anny_body if dtype == torch.float32 else anny_body64
    p = random_params(b, 3, seed=5, scale=0.6)
    conventions = tuple(b.keypoint_conventions)
    g = torch.Generator().manual_seed(1)
    sizes = {c: len(b.regressors[c].names) for c in conventions} | {"joints": len(b.joint_names)}
    w = {c: torch.randn(3, k, 3, generator=g, dtype=dtype) for c, k in sizes.items()}

    def grads(fn):
        q = p.map(lambda t: t.clone().requires_grad_(True))
        kp = fn(q, conventions)
        sum((kp[c] * w[c]).sum() for c in w).backward()
        return {"pose": q.pose.grad, "shape": q.shape.grad, "global_orient": q.global_orient.grad,
                "transl": q.transl.grad, "expression": q.expression.grad}

    fast, full = grads(b.forward_keypoints), grads(lambda q, cs: _full_keypoints(b, q, cs))
    rtol, atol = (1e-4, 1e-4) if dtype == torch.float32 else (1e-10, 1e-10)
    for name in full:
        assert full[name].abs().max() > 0, name
        assert torch.allclose(fast[name], full[name], rtol=rtol, atol=atol), \
            f"{name}: {(fast[name] - full[name]).abs().max().item():.2e}"


def test_forward_keypoints_batch_equals_loop(anny_body):
    b = anny_body
    p = random_params(b, 4, seed=9)
    conventions = ("mediapipe33", "hand21_left", "face")
    batch = b.forward_keypoints(p, conventions)
    for i in range(4):
        single = b.forward_keypoints(p[i], conventions)
        for c in batch:
            assert torch.allclose(batch[c][i], single[c][0], atol=1e-5), c


def test_rest_bone_poses_equal_annys(anny_body):
    """The rest bones built without the rest mesh are Anny's own."""
    b = anny_body
    a = b.anny
    g = torch.Generator().manual_seed(2)
    coeffs = a._get_phenotype_blendshape_coefficients(
        torch.rand(3, 6, generator=g), torch.zeros(1, 0), torch.rand(3, b.num_expression, generator=g))
    assert torch.allclose(b._rest_bone_poses(coeffs), a.get_rest_model(coeffs)["rest_bone_poses"], atol=1e-6)


def test_forward_keypoints_names_unknown_conventions(anny_body):
    p = anny_body.mean_params(1)
    with pytest.raises(ValueError, match="no regressor for 'openpose25'.*coco17"):
        anny_body.forward_keypoints(p, ("coco17", "openpose25"))
    # a single name is one convention, not its letters
    assert set(anny_body.forward_keypoints(p, "coco17")) == {"coco17", "joints"}
