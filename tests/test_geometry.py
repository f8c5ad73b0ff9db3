import math

import pytest
import roma
import torch

from hmrkit.geometry import (
    crop_to_full_translation,
    default_intrinsics,
    procrustes_align,
    project,
    rotmat_from_6d,
    rotmat_power,
    rotmat_to_6d,
    similarity_procrustes,
)

DTYPES = [torch.float32, torch.float64]


def tol(dtype):
    return 1e-5 if dtype == torch.float32 else 1e-10


@pytest.mark.parametrize("dtype", DTYPES)
def test_6d_round_trip(dtype):
    R = roma.random_rotmat((5, 7), dtype=dtype)
    assert torch.allclose(rotmat_from_6d(rotmat_to_6d(R)), R, atol=tol(dtype))


def test_6d_layout_pin():
    # The 6D vector holds the first two COLUMNS of R, column-major.
    R = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 deg about z
    assert rotmat_to_6d(R).tolist() == [0.0, 1.0, 0.0, -1.0, 0.0, 0.0]
    x = torch.tensor([2.0, 0.0, 0.0, 0.0, 3.0, 0.0])  # unnormalised columns e1, e2
    assert torch.allclose(rotmat_from_6d(x), torch.eye(3))


def test_6d_gradcheck():
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rotmat_from_6d, (x,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotmat_power(dtype):
    R = roma.random_rotmat(10, dtype=dtype)
    half = rotmat_power(R, 0.5)
    assert torch.allclose(half @ half, R, atol=10 * tol(dtype))
    third = rotmat_power(R, 1 / 3)
    assert torch.allclose(third @ third @ third, R, atol=10 * tol(dtype))


def test_rotmat_power_gradient_at_identity_is_finite():
    R = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1).requires_grad_(True)
    rotmat_power(R, 0.5).sum().backward()
    assert torch.isfinite(R.grad).all()


def test_project_pin():
    K = torch.tensor([[100.0, 0, 50], [0, 200.0, 60], [0, 0, 1]])
    p = torch.tensor([[[1.0, 2.0, 4.0]]])
    # u = 100 * 1/4 + 50 = 75; v = 200 * 2/4 + 60 = 160
    assert project(p, K).tolist() == [[[75.0, 160.0]]]


def test_default_intrinsics_fov():
    K = default_intrinsics(480, 640, fov_deg=90.0)
    assert math.isclose(K[0, 0].item(), 320.0, rel_tol=1e-6)  # half-width / tan(45 deg)
    assert K[0, 2].item() == 320.0 and K[1, 2].item() == 240.0
    assert default_intrinsics(480, 640, focal=500.0)[1, 1].item() == 500.0
    with pytest.raises(ValueError):
        default_intrinsics(480, 640, focal=-1.0)


def test_crop_to_full_translation_projects_to_box_centre():
    K = default_intrinsics(1000, 1500, focal=1200.0)
    center = torch.tensor([[900.0, 300.0]])
    size = torch.tensor([250.0])
    cam = torch.tensor([[0.8, 0.0, 0.0]])  # no offset: the body origin lands on the box centre
    t = crop_to_full_translation(cam, center, size, K)
    uv = project(t[:, None], K)[:, 0]
    assert torch.allclose(uv, center, atol=1e-3)
    # depth from the weak-perspective scale: tz = 2 f / (s * b)
    assert math.isclose(t[0, 2].item(), 2 * 1200.0 / (0.8 * 250.0), rel_tol=1e-6)
    # an offset of tx (normalised crop units) moves the projection by tx * s * b / 2 px
    t2 = crop_to_full_translation(torch.tensor([[0.8, 0.1, 0.0]]), center, size, K)
    uv2 = project(t2[:, None], K)[:, 0]
    assert math.isclose((uv2 - uv)[0, 0].item(), 0.1 * 0.8 * 250 / 2, rel_tol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_similarity_procrustes_recovers_transform(dtype):
    torch.manual_seed(0)
    X = torch.randn(3, 20, 3, dtype=dtype)
    R = roma.random_rotmat(3, dtype=dtype)
    s = torch.tensor([0.5, 1.0, 2.0], dtype=dtype)
    t = torch.randn(3, 3, dtype=dtype)
    Y = s[:, None, None] * X @ R.transpose(-1, -2) + t[:, None]
    s2, R2, t2 = similarity_procrustes(X, Y)
    assert torch.allclose(s2, s, atol=100 * tol(dtype))
    assert torch.allclose(R2, R, atol=100 * tol(dtype))
    assert torch.allclose(procrustes_align(X, Y), Y, atol=100 * tol(dtype))


def test_procrustes_excludes_reflection():
    X = torch.randn(30, 3, dtype=torch.float64)
    Y = X * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # a mirror image
    _, R, _ = similarity_procrustes(X, Y)
    assert torch.det(R).item() > 0


def test_procrustes_batch_equals_loop():
    X, Y = torch.randn(4, 10, 3), torch.randn(4, 10, 3)
    batch = procrustes_align(X, Y)
    loop = torch.stack([procrustes_align(x, y) for x, y in zip(X, Y)])
    assert torch.allclose(batch, loop, atol=1e-5)
