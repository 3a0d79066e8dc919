"""The shared battery: every registered geometry is checked here with no per-geometry test code."""

import math

import pytest
import torch

from latentatlas.errors import LatentAtlasError
from latentatlas.geometries import GEOMETRIES, Posterior, get_geometry


def geometries():
    for name, cls in GEOMETRIES.items():
        for dim in cls.test_dims:  # each geometry says which dimensions to try
            yield pytest.param(name, dim, id=f"{name}-{dim}")


@pytest.mark.parametrize("name,dim", list(geometries()))
class TestBattery:
    def test_output_contract(self, name, dim):
        g = get_geometry(name, dim)
        h = torch.randn(64, g.encoder_features, generator=torch.Generator().manual_seed(0))
        post = g(h)
        assert isinstance(post, Posterior)
        for z in (post.rsample(), post.mode):
            assert z.shape == (64, g.dim)
            assert g.contains(z).all()
        kl = post.kl()
        assert kl.shape == (64,)
        assert torch.isfinite(kl).all() and (kl >= 0).all()
        if not g.variational:  # a point mass: the sample is the mode, and there is no KL
            assert torch.equal(post.rsample(), post.mode) and not kl.any()

    def test_gradients_flow(self, name, dim):
        g = get_geometry(name, dim)
        h = torch.randn(8, g.encoder_features, requires_grad=True)
        post = g(h)
        (post.rsample().square().sum() + post.kl().sum()).backward()
        assert h.grad is not None and torch.isfinite(h.grad).all()

    def test_prior_samples_are_in_the_space_or_refused(self, name, dim):
        g = get_geometry(name, dim)
        if g.has_prior:
            z = g.sample_prior(300, generator=torch.Generator().manual_seed(5))
            assert z.shape == (300, g.dim) and g.contains(z).all()
        else:
            with pytest.raises(LatentAtlasError, match="no prior"):
                g.sample_prior(3)

    def test_3d_embedding(self, name, dim):
        g = get_geometry(name, dim)
        emb = g.embedding_3d()
        if emb is None:
            return
        z = g(torch.randn(50, g.encoder_features, generator=torch.Generator().manual_seed(6))).mode
        p = emb.to_3d(z)
        assert p.shape == (50, 3) and torch.isfinite(p).all()
        if emb.radius is not None:  # a surface drawn at a fixed size holds every point inside it
            assert (p.norm(dim=1) <= emb.radius + 1e-5).all()
        for line in emb.wireframe:
            assert all(len(q) == 3 for q in line)
        assert emb.is_surface == (emb.js_pick is not None)

    def test_charts_round_trip(self, name, dim):
        g = get_geometry(name, dim)
        z = g(torch.randn(500, g.encoder_features, generator=torch.Generator().manual_seed(1))).mode
        for chart in g.charts():
            uv = chart.to_map(z)
            assert uv.shape == (500, 2)
            assert torch.allclose(chart.from_map(uv), z, atol=1e-5)
            if chart.extent is not None:
                (u0, u1), (v0, v1) = chart.extent
                assert (uv[:, 0] >= u0 - 1e-5).all() and (uv[:, 0] <= u1 + 1e-5).all()
                assert (uv[:, 1] >= v0 - 1e-5).all() and (uv[:, 1] <= v1 + 1e-5).all()
            if chart.inside is not None:
                assert chart.inside(uv * (1 - 1e-5)).all()
            assert len(chart.labels) == 2 and all(chart.labels)

    def test_chart_points_are_in_the_space(self, name, dim):
        g = get_geometry(name, dim)
        for chart in g.charts():
            uv = torch.rand(200, 2, dtype=torch.float64).float()
            if chart.extent is not None:
                (u0, u1), (v0, v1) = chart.extent
                uv = torch.stack([u0 + uv[:, 0] * (u1 - u0), v0 + uv[:, 1] * (v1 - v0)], 1)
            if chart.inside is not None:
                uv = uv[chart.inside(uv)]
            assert len(uv) > 50
            assert g.contains(chart.from_map(uv)).all()


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_rejects_impossible_dimension(name):
    cls = GEOMETRIES[name]
    for bad in (cls.min_dim - 1, -1, 2.5, "3"):
        with pytest.raises(LatentAtlasError, match="latent_dim"):
            get_geometry(name, bad)


def test_unknown_geometry_lists_valid_names():
    with pytest.raises(LatentAtlasError) as e:
        get_geometry("torus-9", 2)
    for name in GEOMETRIES:
        assert name in str(e.value)


def test_sphere_points_have_unit_norm():
    z = get_geometry("sphere", 3)(torch.randn(1000, 3) * 100).mode
    torch.testing.assert_close(z.norm(dim=1), torch.ones(1000))


def test_sphere_chart_convention():
    """theta is the polar angle from +z, phi the azimuth from +x towards +y, in (-pi, pi]."""
    chart = get_geometry("sphere", 3).charts()[0]
    z = torch.tensor([[0, 0, 1.0], [0, 0, -1.0], [1.0, 0, 0], [0, 1.0, 0], [-1.0, 0.0, 0], [-1.0, -0.0, 0]])
    phi, theta = chart.to_map(z).T
    torch.testing.assert_close(theta, torch.tensor([0, math.pi, math.pi / 2, math.pi / 2, math.pi / 2, math.pi / 2]))
    torch.testing.assert_close(phi[2:], torch.tensor([0, math.pi / 2, math.pi, math.pi]))
    assert "phi" in chart.labels[0] and "theta" in chart.labels[1]


def test_angular_and_euclidean_neighbours_agree_on_the_sphere():
    """kNN on the sphere is by angle; Euclidean ranks on unit vectors are the same ranks (chord is monotone)."""
    z = get_geometry("sphere", 3)(torch.randn(300, 3, generator=torch.Generator().manual_seed(2))).mode.double()
    angle = torch.arccos((z @ z.T).clamp(-1, 1))
    chord = torch.cdist(z, z)
    assert torch.equal(angle.argsort(dim=1)[:, :6], chord.argsort(dim=1)[:, :6])


def test_sphere_equal_area_chart_is_equal_area():
    """Uniform points on S2 land uniformly on the Hammer ellipse: equal areas of map hold equal shares of points."""
    (_, hammer) = get_geometry("sphere", 3).charts()
    z = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=torch.Generator().manual_seed(3)), dim=1)
    xy = hammer.to_map(z)
    assert hammer.inside(xy * (1 - 1e-6)).all()
    # A 4 x 4 grid of the bounding box: each cell's share of points = its share of the ellipse's area (pi * sqrt 8 * sqrt 2).
    rng = torch.Generator().manual_seed(4)
    box = torch.rand(400_000, 2, generator=rng) * torch.tensor([4 * 2**0.5, 2 * 2**0.5]) - torch.tensor([2 * 2**0.5, 2**0.5])
    box = box[hammer.inside(box)]
    edges_x, edges_y = torch.linspace(-2 * 2**0.5, 2 * 2**0.5, 5), torch.linspace(-(2**0.5), 2**0.5, 5)
    for i in range(4):
        for j in range(4):
            def share(p):
                m = (p[:, 0] >= edges_x[i]) & (p[:, 0] < edges_x[i + 1]) & (p[:, 1] >= edges_y[j]) & (p[:, 1] < edges_y[j + 1])
                return m.float().mean().item()
            assert abs(share(xy) - share(box)) < 0.004


def test_sphere_hammer_poles_and_meridian():
    (_, hammer) = get_geometry("sphere", 3).charts()
    xy = hammer.to_map(torch.tensor([[0, 0, 1.0], [0, 0, -1.0], [1.0, 0, 0], [0, 1.0, 0]]))
    torch.testing.assert_close(xy, torch.tensor([[0, 2**0.5], [0, -(2**0.5)], [0.0, 0.0], [2 * 2**0.5 * 0.5**0.5 / (1 + 0.5**0.5) ** 0.5, 0.0]]),
                               atol=1e-5, rtol=0)
