"""The SMPL-family backend: agreement with the smplx package on synthetic files in the
official formats, batch vs loop, gradients of the LBS functions, file errors, keypoints."""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest
import torch

import hmrkit.body
from hmrkit.body import lbs
from hmrkit.body.base import BodyModel
from hmrkit.body.smpl import JOINT_NAMES, PARENTS, SMPLBody, read_model_file
from hmrkit.body.synthetic import fake_chumpy, write_synthetic_model
from hmrkit.errors import InputError
from hmrkit.geometry import rotmat_from_aa
from hmrkit.types import BodyParams

smplx = pytest.importorskip("smplx")

# pkl for SMPL (as the official files), npz for SMPL-H and SMPL-X (faster to write)
FORMATS = {"smpl": "pkl", "smplh": "npz", "smplx": "npz"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("smpl_models")
    out = {kind: write_synthetic_model(root / f"{kind}.{fmt}", kind, fmt, seed=1) for kind, fmt in FORMATS.items()}
    out["smpl_chumpy"] = write_synthetic_model(root / "smpl_chumpy.pkl", "smpl", "pkl", seed=1, chumpy_style=True)
    return out


@pytest.fixture(scope="module")
def bodies(files):
    return {kind: SMPLBody.from_file(kind, files[kind]) for kind in FORMATS}


def random_params(body, batch_size, seed, scale=0.6):
    g = torch.Generator().manual_seed(seed)
    J = body.num_pose_joints
    R = rotmat_from_aa(torch.randn(batch_size, J + 1, 3, generator=g) * scale)
    expression = None
    if body.num_expression:
        expression = torch.randn(batch_size, body.num_expression, generator=g)
    return BodyParams(
        global_orient=R[:, 0],
        pose=R[:, 1:],
        shape=torch.randn(batch_size, body.num_shape, generator=g) * 1.5,
        transl=torch.randn(batch_size, 3, generator=g),
        expression=expression,
    )


def smplx_reference(kind, path, num_betas, batch_size, num_expression=10):
    """The smplx package's layer (rotation-matrix input) for the same file."""
    kw = dict(model_path=str(path), num_betas=num_betas)
    if kind != "smpl":
        kw.update(use_pca=False, flat_hand_mean=True, ext=str(path).rsplit(".", 1)[1])
    if kind == "smplx":
        kw.update(num_expression_coeffs=num_expression, batch_size=batch_size)
    layer = {"smpl": smplx.SMPLLayer, "smplh": smplx.SMPLHLayer, "smplx": smplx.SMPLXLayer}[kind]
    return layer(**kw)


def smplx_forward(ref, kind, params):
    R = params.pose
    kw = dict(betas=params.shape, global_orient=params.global_orient, transl=params.transl)
    if kind == "smpl":
        kw["body_pose"] = R
    elif kind == "smplh":
        kw.update(body_pose=R[:, :21], left_hand_pose=R[:, 21:36], right_hand_pose=R[:, 36:])
    else:
        kw.update(body_pose=R[:, :21], jaw_pose=R[:, 21], leye_pose=R[:, 22], reye_pose=R[:, 23],
                  left_hand_pose=R[:, 24:39], right_hand_pose=R[:, 39:], expression=params.expression)
    return ref(**kw)


# ----------------------------------------------------------------------------------------
# Agreement with the smplx package


@pytest.mark.parametrize("kind", ["smpl", "smplh", "smplx"])
def test_matches_smplx_package(kind, files, bodies):
    body = bodies[kind]
    B = 4
    ref = smplx_reference(kind, files[kind], body.num_shape, B)
    assert body.faces.shape == ref.faces_tensor.shape and torch.equal(body.faces, ref.faces_tensor)
    for seed in range(3):
        params = random_params(body, B, seed)
        ours = body(params)
        theirs = smplx_forward(ref, kind, params)
        J = len(body.joint_names)
        assert ours.vertices.shape == (B, body.num_vertices, 3)
        assert ours.joints.shape == (B, J, 3)
        assert (ours.vertices - theirs.vertices).abs().max() < 1e-5
        assert (ours.joints - theirs.joints[:, :J]).abs().max() < 1e-5


def test_chumpy_pickle_reads_without_chumpy(files, bodies):
    assert "chumpy" not in sys.modules
    with open(files["smpl_chumpy"], "rb") as fh:  # the file really pickles chumpy classes
        assert b"chumpy.ch" in fh.read()
    body = SMPLBody.from_file("smpl", files["smpl_chumpy"])
    assert "chumpy" not in sys.modules
    params = random_params(body, 3, seed=7)
    a, b = body(params), bodies["smpl"](params)
    assert torch.equal(a.vertices, b.vertices) and torch.equal(a.joints, b.joints)
    with fake_chumpy():  # the smplx package unpickles the stub classes themselves
        ref = smplx_reference("smpl", files["smpl_chumpy"], body.num_shape, 3)
    assert "chumpy" not in sys.modules
    assert (a.vertices - smplx_forward(ref, "smpl", params).vertices).abs().max() < 1e-5


def test_smplx_v11_layout_300_betas_100_expression(tmp_path):
    """SMPL-X v1.1 files hold 300 betas then 100 expression components."""
    path = write_synthetic_model(tmp_path / "SMPLX_NEUTRAL.npz", "smplx", "npz", seed=3, num_shape=400)
    body = SMPLBody.from_file("smplx", tmp_path, num_betas=16, num_expression=12)
    assert (body.num_shape, body.num_expression) == (16, 12)
    ref = smplx_reference("smplx", path, 16, 2, num_expression=12)
    params = random_params(body, 2, seed=4)
    ours, theirs = body(params), smplx_forward(ref, "smplx", params)
    assert (ours.vertices - theirs.vertices).abs().max() < 1e-5


def test_synthetic_files_have_the_official_layout(files):
    import scipy.sparse

    with open(files["smpl"], "rb") as fh:
        raw = pickle.load(fh, encoding="latin1")  # plain pickle: numpy and scipy only
    assert scipy.sparse.issparse(raw["J_regressor"]) and raw["f"].dtype == np.uint32
    assert raw["kintree_table"][0, 0] == 4294967295
    layout = {"smpl": (6890, 24, 10), "smplh": (6890, 52, 16), "smplx": (10475, 55, 20)}
    for kind, (V, N, S) in layout.items():
        data = read_model_file(files[kind])
        assert data["v_template"].shape == (V, 3) and data["shapedirs"].shape == (V, 3, S)
        assert data["posedirs"].shape == (V, 3, (N - 1) * 9)
        assert tuple(data["kintree_table"][0, 1:]) == PARENTS[kind][1:]
        for key in ("weights", "J_regressor"):
            assert np.allclose(data[key].sum(1), 1.0, atol=1e-6) and data[key].min() >= 0
        assert data["f"].min() >= 0 and data["f"].max() < V


def test_global_orient_turns_about_the_rest_pelvis(bodies):
    """Convention pin: with only global_orient R and transl t,
    v = R (v_rest - pelvis_rest) + pelvis_rest + t (the smplx package's frame)."""
    body = bodies["smpl"]
    rest = body(body.mean_params())
    pelvis = rest.joints[0, 0]
    R = rotmat_from_aa(torch.tensor([[0.0, np.pi / 2, 0.0]]))  # 90 degrees about +y
    t = torch.tensor([[0.1, -0.2, 3.0]])
    p = body.mean_params()
    out = body(BodyParams(R, p.pose, p.shape, t))
    expected = (rest.vertices[0] - pelvis) @ R[0].T + pelvis + t
    assert (out.vertices[0] - expected).abs().max() < 1e-5
    assert torch.allclose(out.joints[0, 0], pelvis + t[0], atol=1e-6)
    # +90 degrees about y takes the left side (+x) to the back (-z)
    i = body.joint_names.index("left_shoulder")
    assert out.joints[0, i, 2] - out.joints[0, 0, 2] < -0.1


# ----------------------------------------------------------------------------------------
# Batch vs loop, dtypes, gradients


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
def test_batch_equals_loop(kind, bodies):
    body = bodies[kind]
    params = random_params(body, 5, seed=11)
    batch = body(params)
    for i in range(5):
        one = body(params[i])
        assert torch.allclose(batch.vertices[i], one.vertices[0], atol=1e-6)
        assert torch.allclose(batch.joints[i], one.joints[0], atol=1e-6)


def test_float64_model_and_dtype_check(files, bodies):
    body64 = SMPLBody.from_file("smpl", files["smpl"], dtype=torch.float64)
    assert body64.dtype == torch.float64 and body64.regressors["coco17"].weights.dtype == torch.float64
    params = random_params(bodies["smpl"], 2, seed=5)
    a = body64(params.to(torch.float64)).vertices
    b = bodies["smpl"](params).vertices
    assert (a - b.double()).abs().max() < 1e-5
    with pytest.raises(ValueError, match="float32"):
        body64(params)


def test_gradients_flow_to_all_parameters(bodies):
    body = bodies["smplx"]
    params = random_params(body, 2, seed=2).map(lambda t: t.clone().requires_grad_(True))
    out = body(params)
    (out.vertices.square().sum() + body.keypoints(out, "coco17").sum()).backward()
    for name in ("global_orient", "pose", "shape", "transl", "expression"):
        grad = getattr(params, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def tiny_model(seed=0):
    """A random 5-joint, 8-vertex model, float64."""
    g = torch.Generator().manual_seed(seed)
    parents = (-1, 0, 1, 1, 3)
    N, V, S = len(parents), 8, 3
    weights = torch.rand(V, N, generator=g, dtype=torch.float64)
    regressor = torch.rand(N, V, generator=g, dtype=torch.float64)
    return dict(
        template=torch.randn(V, 3, generator=g, dtype=torch.float64),
        shape_dirs=torch.randn(S, V, 3, generator=g, dtype=torch.float64) * 0.1,
        pose_dirs=torch.randn((N - 1) * 9, V, 3, generator=g, dtype=torch.float64) * 0.1,
        joint_regressor=regressor / regressor.sum(1, keepdim=True),
        parents=parents,
        weights=weights / weights.sum(1, keepdim=True),
    )


def test_lbs_gradcheck():
    m = tiny_model()
    g = torch.Generator().manual_seed(1)
    B, N = 1, len(m["parents"])
    coeffs = torch.randn(B, 3, generator=g, dtype=torch.float64, requires_grad=True)
    rotmats = rotmat_from_aa(torch.randn(B, N, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    template = m["template"].clone().requires_grad_(True)

    def full(c, r, t):
        return lbs.lbs(c, r, t, m["shape_dirs"], m["pose_dirs"], m["joint_regressor"], m["parents"], m["weights"])

    assert torch.autograd.gradcheck(full, (coeffs, rotmats, template))

    joints = torch.randn(B, N, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r, j: lbs.forward_kinematics(r, j, m["parents"]), (rotmats, joints))
    verts = torch.randn(B, m["template"].shape[0], 3, generator=g, dtype=torch.float64, requires_grad=True)
    R, t = lbs.forward_kinematics(rotmats, joints, m["parents"])
    R, t = R.detach().requires_grad_(True), t.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v, a, b, j: lbs.skin(v, m["weights"], a, b, j), (verts, R, t, joints))


def test_lbs_matches_slow_reference():
    """The level-batched kinematics and blended skinning against a per-joint,
    per-vertex loop written from the textbook formula."""
    m = tiny_model(seed=3)
    g = torch.Generator().manual_seed(2)
    B, N = 2, len(m["parents"])
    coeffs = torch.randn(B, 3, generator=g, dtype=torch.float64)
    rotmats = rotmat_from_aa(torch.randn(B, N, 3, generator=g, dtype=torch.float64))
    verts, joints = lbs.lbs(coeffs, rotmats, m["template"], m["shape_dirs"], m["pose_dirs"],
                            m["joint_regressor"], m["parents"], m["weights"])
    for b in range(B):
        v_shaped = m["template"] + torch.einsum("s,svc->vc", coeffs[b], m["shape_dirs"])
        J = m["joint_regressor"] @ v_shaped
        feat = torch.cat([(rotmats[b, k] - torch.eye(3, dtype=torch.float64)).reshape(-1) for k in range(1, N)])
        v_posed = v_shaped + torch.einsum("p,pvc->vc", feat, m["pose_dirs"])
        G = []
        for k, p in enumerate(m["parents"]):
            local = torch.eye(4, dtype=torch.float64)
            local[:3, :3] = rotmats[b, k]
            local[:3, 3] = J[k] - (J[p] if p >= 0 else 0)
            G.append(local if p < 0 else G[p] @ local)
        for k in range(N):
            assert torch.allclose(joints[b, k], G[k][:3, 3], atol=1e-12)
        for v in range(v_posed.shape[0]):
            x = torch.zeros(3, dtype=torch.float64)
            for k in range(N):
                x = x + m["weights"][v, k] * (G[k][:3, :3] @ (v_posed[v] - J[k]) + G[k][:3, 3])
            assert torch.allclose(verts[b, v], x, atol=1e-12)


def test_forward_kinematics_pin():
    """A chain root (0,0,0) -> (1,0,0) -> (2,0,0); turning joint 1 by +90 degrees about z
    takes joint 2 to (1,1,0) and leaves joints 0, 1 in place."""
    rest = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]])
    R = torch.eye(3).repeat(1, 3, 1, 1)
    R[0, 1] = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    world_R, world_t = lbs.forward_kinematics(R, rest, (-1, 0, 1))
    assert torch.allclose(world_t[0], torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]]), atol=1e-7)
    assert torch.allclose(world_R[0, 2], R[0, 1])


# ----------------------------------------------------------------------------------------
# Files: discovery and errors


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def test_folder_discovery_and_load_entry_point(files, tmp_path, monkeypatch):
    (tmp_path / "smplx").mkdir()
    os.symlink(files["smplx"], tmp_path / "smplx" / "SMPLX_NEUTRAL.npz")
    os.symlink(files["smpl"], tmp_path / "basicmodel_m_lbs_10_207_0_v1.1.0.pkl")
    body = hmrkit.body.load("smplx", model_path=tmp_path)
    assert body.name == "smplx" and len(body.joint_names) == 55 and body.num_expression == 10
    male = hmrkit.body.load("smpl", model_path=str(tmp_path), gender="male", num_betas=5)
    assert male.num_shape == 5 and male.joint_names == JOINT_NAMES["smpl"]
    monkeypatch.setenv("HMRKIT_SMPL_DIR", str(tmp_path))
    assert hmrkit.body.load("smplx").num_vertices == 10475


def test_missing_files_say_where_and_how_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(InputError) as err:
        SMPLBody.from_file("smpl", tmp_path)
    msg = one_line(err)
    assert str(tmp_path / "SMPL_NEUTRAL.pkl") in msg and "https://smpl.is.tue.mpg.de" in msg
    with pytest.raises(InputError) as err:
        hmrkit.body.load("smplx", model_path=tmp_path / "nowhere" / "SMPLX_MALE.npz")
    msg = one_line(err)
    assert "nowhere/SMPLX_MALE.npz" in msg and "https://smpl-x.is.tue.mpg.de" in msg
    monkeypatch.delenv("HMRKIT_SMPL_DIR", raising=False)
    with pytest.raises(InputError) as err:
        hmrkit.body.load("smplh")
    msg = one_line(err)
    assert "HMRKIT_SMPL_DIR" in msg and "SMPLH_NEUTRAL.pkl" in msg and "mano.is.tue.mpg.de" in msg


def test_wrong_files_give_one_line(files, tmp_path):
    text = tmp_path / "SMPL_NEUTRAL.pkl"
    text.write_text("not a model\n")
    with pytest.raises(InputError) as err:
        SMPLBody.from_file("smpl", text)
    assert one_line(err).startswith(str(text)) and "not a SMPL-family model file" in str(err.value)

    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(files["smpl"].read_bytes()[:5000])
    with pytest.raises(InputError) as err:
        SMPLBody.from_file("smpl", truncated)
    assert one_line(err).startswith(str(truncated))

    listing = tmp_path / "list.pkl"
    listing.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(InputError, match="expected a dict of arrays"):
        SMPLBody.from_file("smpl", listing)

    partial = tmp_path / "partial.npz"
    np.savez(partial, v_template=np.zeros((6890, 3)))
    with pytest.raises(InputError) as err:
        SMPLBody.from_file("smpl", partial)
    assert "missing f, shapedirs" in one_line(err) and str(partial) in str(err.value)

    with pytest.raises(InputError) as err:  # a SMPL-X file given as SMPL
        SMPLBody.from_file("smpl", files["smplx"])
    msg = one_line(err)
    assert str(files["smplx"]) in msg and "10475 vertices" in msg and "'smplx'" in msg


# ----------------------------------------------------------------------------------------
# Interface, keypoints


@pytest.mark.parametrize("kind", ["smpl", "smplh", "smplx"])
def test_interface_and_keypoints(kind, bodies):
    body = bodies[kind]
    J = {"smpl": 23, "smplh": 51, "smplx": 54}[kind]
    assert body.num_pose_joints == J and len(body.parents) == J + 1 and body.parents == PARENTS[kind]
    assert all(p < k for k, p in enumerate(body.parents) if k)
    assert body.shape_range is None
    mean = body.mean_params(2)
    assert torch.equal(mean.pose, torch.eye(3).expand(2, J, 3, 3)) and not mean.shape.any()
    assert (mean.expression is None) == (kind != "smplx")

    expected = {"coco17": 17, "mediapipe33": 33, "smpl24": 24}
    if kind != "smpl":
        expected.update(hand21_left=21, hand21_right=21)
    assert sorted(body.keypoint_conventions) == sorted(expected)
    out = body(random_params(body, 3, seed=3))
    for name, K in expected.items():
        kp = body.keypoints(out, name)
        assert kp.shape == (3, K, 3) and torch.isfinite(kp).all()
        valid = body.keypoint_valid(name)
        assert not kp[:, ~valid].any()
    invalid = {n for n, v in zip(body.regressors["mediapipe33"].names, body.keypoint_valid("mediapipe33")) if not v}
    if kind == "smplx":  # eye corners and mouth corners from the file's face landmarks
        assert not invalid
    else:
        assert invalid == {"left_eye_inner", "left_eye_outer", "right_eye_inner", "right_eye_outer",
                           "mouth_left", "mouth_right"}

    rest = body(body.mean_params())
    names = body.joint_names
    for side, sign in (("left", 1), ("right", -1)):
        for joint in ("shoulder", "hip", "wrist"):
            assert sign * rest.joints[0, names.index(f"{side}_{joint}"), 0] > 0.03
    coco = body.keypoints(rest, "coco17")[0]
    assert coco[5, 0] > 0 > coco[6, 0]  # left_shoulder at +x, right at -x
    hand = body.keypoints(rest, "hand21_left")[0] if kind != "smpl" else None
    if hand is not None:  # fingers point away from the body along +x on the left
        assert (hand[[8, 12, 16, 20], 0] > hand[0, 0]).all()
    labels = body.vertex_part_labels()
    assert labels.shape == (body.num_vertices,) and labels.max() < J + 1


# ----------------------------------------------------------------------------------------
# forward_keypoints: keypoints without the whole mesh


@pytest.mark.parametrize("kind", ["smpl", "smplh", "smplx"])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_forward_keypoints_equals_keypoints_of_forward(kind, batch_size, bodies):
    body = bodies[kind]
    params = random_params(body, batch_size, seed=batch_size)
    conventions = tuple(body.keypoint_conventions)
    out = body(params)
    generic = BodyModel.forward_keypoints(body, params, conventions)  # the interface's: forward + regressors
    fast = body.forward_keypoints(params, conventions)
    assert set(fast) == set(generic) == set(conventions) | {"joints"}
    assert torch.equal(generic["joints"], out.joints)
    for c in conventions:
        assert torch.equal(generic[c], body.keypoints(out, c))
        assert (fast[c] - generic[c]).abs().max() < 1e-5, c  # metres
    assert (fast["joints"] - out.joints).abs().max() < 1e-5
    loop = [body.forward_keypoints(params[i], conventions) for i in range(batch_size)]
    for c in fast:
        assert torch.allclose(fast[c], torch.cat([x[c] for x in loop]), atol=1e-6), c


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
def test_forward_keypoints_gradients_equal_the_full_path(kind, files):
    body = SMPLBody.from_file(kind, files[kind], dtype=torch.float64)
    params = random_params(body, 3, seed=4).to(torch.float64)
    conventions = tuple(body.keypoint_conventions)
    g = torch.Generator().manual_seed(0)
    out = body(params)
    w = {c: torch.randn(body.keypoints(out, c).shape, generator=g, dtype=torch.float64) for c in conventions}
    w["joints"] = torch.randn(out.joints.shape, generator=g, dtype=torch.float64)
    names = ("pose", "shape", "global_orient", "transl") + (("expression",) if body.num_expression else ())

    def grads(fn):
        q = params.map(lambda t: t.clone().requires_grad_(True))
        kp = fn(q)
        sum((kp[c] * w[c]).sum() for c in w).backward()
        return {n: getattr(q, n).grad for n in names}

    fast = grads(lambda q: body.forward_keypoints(q, conventions))
    full = grads(lambda q: BodyModel.forward_keypoints(body, q, conventions))
    for n in names:
        assert full[n].abs().max() > 0, n
        assert torch.allclose(fast[n], full[n], rtol=1e-9, atol=1e-9), n
