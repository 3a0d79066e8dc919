"""Variational latents against oracles: closed forms, torch.distributions and numerical integration on S^1 and S^2;
reparameterised gradients against finite differences of exact expectations; the IWAE bound's properties."""

import math

import numpy as np
import pytest
import torch

from latentatlas.geometries import GEOMETRIES, get_geometry
from latentatlas.geometries.gaussian import DiagonalGaussian
from latentatlas.geometries.power_spherical import PowerSpherical

torch.set_default_dtype(torch.float32)
VARIATIONAL = [n for n, cls in GEOMETRIES.items() if cls.variational]


# ---- the Gaussian posterior ----------------------------------------------------------------------------------

def test_gaussian_kl_log_prob_against_closed_form_and_torch():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(50, 4, generator=g, dtype=torch.float64), torch.randn(50, 4, generator=g, dtype=torch.float64)
    q = DiagonalGaussian(mu, logvar)
    sigma2 = logvar.exp()
    closed = 0.5 * (sigma2 + mu**2 - 1 - torch.log(sigma2)).sum(-1)  # KL(N(mu, s^2) || N(0, 1)), per dimension summed
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, sigma2.sqrt()),
                                            torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    torch.testing.assert_close(q.kl(), closed)
    torch.testing.assert_close(q.kl(), ref)
    z = torch.randn(50, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(q.log_prob(z), torch.distributions.Normal(mu, sigma2.sqrt()).log_prob(z).sum(-1))
    torch.testing.assert_close(get_geometry("gaussian", 4).prior_log_prob(z),
                               torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_gaussian_reparameterised_gradient_against_finite_differences():
    """d/d(mu, logvar) E[sin z] by autograd through samples vs finite differences of the exact
    E[sin z] = sin(mu) exp(-sigma^2 / 2)."""
    mu = torch.tensor([0.3, -1.1], dtype=torch.float64, requires_grad=True)
    logvar = torch.tensor([-0.5, 0.4], dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    n = 400_000
    q = DiagonalGaussian(mu.expand(n, 2), logvar.expand(n, 2))
    q.rsample().sin().sum(-1).mean().backward()

    def exact(m, lv):
        return (m.sin() * torch.exp(-lv.exp() / 2)).sum()

    eps = 1e-6
    for p, grad in ((mu, mu.grad), (logvar, logvar.grad)):
        for i in range(2):
            d = torch.zeros(2, dtype=torch.float64)
            d[i] = eps
            args_plus = (mu.detach() + d, logvar.detach()) if p is mu else (mu.detach(), logvar.detach() + d)
            args_minus = (mu.detach() - d, logvar.detach()) if p is mu else (mu.detach(), logvar.detach() - d)
            fd = (exact(*args_plus) - exact(*args_minus)) / (2 * eps)
            assert abs(grad[i].item() - fd.item()) < 0.01, (p is mu, i, grad[i].item(), fd.item())


# ---- the power spherical posterior, against numerical integration ----------------------------------------------

def _s1_grid(n=20_000):
    a = (torch.arange(n, dtype=torch.float64) + 0.5) * 2 * math.pi / n
    return torch.stack([a.cos(), a.sin()], 1), torch.full((n,), 2 * math.pi / n, dtype=torch.float64)


def _s2_grid(n=600):
    """Midpoint rule on (theta, phi); the weights are the surface element sin(theta) dtheta dphi."""
    th = (torch.arange(n, dtype=torch.float64) + 0.5) * math.pi / n
    ph = (torch.arange(2 * n, dtype=torch.float64) + 0.5) * math.pi / n
    T, P = torch.meshgrid(th, ph, indexing="ij")
    x = torch.stack([T.sin() * P.cos(), T.sin() * P.sin(), T.cos()], -1).reshape(-1, 3)
    return x, (T.sin() * (math.pi / n) ** 2).reshape(-1)


@pytest.mark.parametrize("d,grid", [(2, _s1_grid), (3, _s2_grid)])
@pytest.mark.parametrize("kappa", [0.5, 3.0, 40.0])
def test_power_spherical_density_entropy_kl_by_integration(d, grid, kappa):
    x, w = grid()
    mu = torch.nn.functional.normalize(torch.arange(1, d + 1, dtype=torch.float64), dim=0)
    q = PowerSpherical(mu.expand(len(x), d), torch.full((len(x),), kappa, dtype=torch.float64))
    logp = q.log_prob(x)
    p = logp.exp()
    assert abs((p * w).sum().item() - 1) < 1e-5  # a density on the sphere's surface
    one = PowerSpherical(mu[None], torch.tensor([kappa], dtype=torch.float64))
    entropy = -(p * logp * w).sum().item()
    assert abs(one.entropy().item() - entropy) < 1e-4
    area = w.sum().item()  # 2 pi, 4 pi
    kl = (p * (logp + math.log(area)) * w).sum().item()  # KL(q || uniform) = E_q[log q - log(1 / area)]
    assert abs(one.kl().item() - kl) < 1e-4
    # The mean from the density against the closed form the sampler's moments are checked with below.
    torch.testing.assert_close((p[:, None] * x * w[:, None]).sum(0), one.mean[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("d", [2, 3, 5])
@pytest.mark.parametrize("kappa", [1.0, 10.0, 200.0])
def test_power_spherical_sampler_moments(d, kappa):
    """Samples lie on the sphere; their cosine to mu has the Beta-derived mean and variance, and the component
    orthogonal to mu is centred (uniform direction)."""
    torch.manual_seed(1)
    n = 200_000
    mu = torch.nn.functional.normalize(torch.randn(d, dtype=torch.float64), dim=0)
    q = PowerSpherical(mu.expand(n, d), torch.full((n,), kappa, dtype=torch.float64))
    z = q.rsample()
    torch.testing.assert_close(z.norm(dim=1), torch.ones(n, dtype=torch.float64))
    t = z @ mu
    a, b = (d - 1) / 2 + kappa, (d - 1) / 2
    mean_t, var_t = (a - b) / (a + b), 4 * a * b / ((a + b) ** 2 * (a + b + 1))
    se = math.sqrt(var_t / n)
    assert abs(t.mean().item() - mean_t) < 5 * se
    assert abs(t.var().item() / var_t - 1) < 0.03
    perp = z - t[:, None] * mu
    assert perp.mean(0).abs().max().item() < 5 * math.sqrt((1 - mean_t**2 + var_t) / n) + 1e-3


@pytest.mark.parametrize("d,grid", [(2, _s1_grid), (3, _s2_grid)])
def test_power_spherical_reparameterised_gradient_against_finite_differences(d, grid):
    """Gradients of E[exp(v . z)] with respect to the encoder's outputs (direction and kappa), by autograd through
    samples, against central differences of the same expectation computed by integration on the sphere."""
    g = get_geometry("power-spherical", d)
    v = torch.linspace(0.7, -0.4, d, dtype=torch.float64)
    x, w = grid()

    def exact(h):
        q = g(h.expand(len(x), d + 1))
        return (q.log_prob(x).exp() * torch.exp(x @ v) * w).sum()

    h0 = torch.tensor([0.4, -0.9, 0.2, 1.3][: d] + [0.8], dtype=torch.float64)
    torch.manual_seed(2)
    n = 400_000
    h = h0.clone().requires_grad_(True)
    torch.exp(g(h.expand(n, d + 1)).rsample() @ v).mean().backward()
    eps = 1e-5
    for i in range(d + 1):
        e = torch.zeros(d + 1, dtype=torch.float64)
        e[i] = eps
        fd = ((exact(h0 + e) - exact(h0 - e)) / (2 * eps)).item()
        assert abs(h.grad[i].item() - fd) < 0.01 + 0.02 * abs(fd), (i, h.grad[i].item(), fd)


# ---- every variational geometry ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", VARIATIONAL)
def test_kl_is_the_expected_log_ratio_of_its_densities(name):
    """KL(q || p) = E_q[log q(z) - log p(z)]: the closed-form KL, the sampler and both densities agree."""
    g = get_geometry(name, 2)
    h = torch.randn(3, g.encoder_features, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    n = 100_000
    torch.manual_seed(4)
    q = g(h.repeat(n, 1))
    z = q.rsample()
    ratio = (q.log_prob(z) - g.prior_log_prob(z)).view(n, 3)
    kl = g(h).kl()
    se = ratio.std(0) / math.sqrt(n)
    assert ((ratio.mean(0) - kl).abs() < 5 * se + 1e-3).all(), (ratio.mean(0), kl)


@pytest.mark.parametrize("name", VARIATIONAL)
def test_eval_mode_is_deterministic(name):
    from latentatlas.config import RunConfig
    from latentatlas.model import AutoencoderNet

    cfg = RunConfig(preset=None, hidden_sizes=(16,), geometry=name, latent_dim=3).resolved()
    model = AutoencoderNet.from_config(cfg, 20)
    x = torch.rand(8, 20)
    model.eval()
    a, b = model(x), model(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.z, model.encode(x))
    model.train()
    assert not torch.equal(model(x).z, model(x).z)  # training draws from the posterior


# ---- the likelihood estimates ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def binary_model():
    """A small VAE trained briefly on binarised mnist-5k, and test images, for the likelihood checks."""
    from latentatlas.config import RunConfig
    from latentatlas.data import DataSpec
    from latentatlas.run_training import build_trainer, resolve_runtime

    ds = DataSpec("mnist-5k", None, ("binarize:seed=0",)).load()
    cfg = resolve_runtime(RunConfig(preset=None, hidden_sizes=(64,), geometry="power-spherical", latent_dim=3,
                                    epochs=2, device="cpu", precision="fp32"))
    trainer = build_trainer(cfg, ds.flat("train")[0], progress=False)
    trainer.draw = ds.draw_train
    trainer.fit(ds.flat("train")[0])
    return trainer.model, ds.flat("test")[0][:100]


def test_iwae_is_above_the_elbo_and_tightens_with_k(binary_model):
    from latentatlas.likelihood import likelihoods, log_weights
    from latentatlas._tensors import to_unit_float

    model, x = binary_model
    xb = to_unit_float(torch.as_tensor(x))
    torch.manual_seed(5)
    log_w, log_px_z, kl = log_weights(model, xb, 64)
    # On the same samples, logmeanexp >= mean (Jensen), image by image.
    assert ((torch.logsumexp(log_w, 0) - math.log(64)) >= log_w.mean(0) - 1e-9).all()
    # The Monte Carlo ELBO (mean log w) and the one with the KL in closed form agree up to sampling error.
    mc, closed = log_w.mean(0), log_px_z.mean(0) - kl
    assert (mc - closed).mean().abs() < 4 * (log_w.std(0) / 8).mean()
    found = {k: likelihoods(model, x, k=k) for k in (1, 10, 100, 500)}
    iwae = [found[k]["log_px_iwae"] for k in (1, 10, 100, 500)]
    assert iwae == sorted(iwae) and iwae[-1] > found[500]["elbo"] + 0.5
    assert abs(found[1]["log_px_iwae"] - found[1]["elbo"]) < 2.0  # K = 1 is an ELBO estimate
    assert likelihoods(model, x, k=50) == likelihoods(model, x, k=50)  # seeded: the same numbers every time
    e = found[500]
    assert e["elbo"] == pytest.approx(e["elbo_recon"] - e["elbo_kl"]) and e["iwae_k"] == 500


def test_iwae_chunks_do_not_change_the_estimate(binary_model, monkeypatch):
    import latentatlas.likelihood as lk

    model, x = binary_model
    whole = lk.likelihoods(model, x[:10], k=40)
    monkeypatch.setattr(lk, "CHUNK", 40 * 3)  # 3 images per chunk
    # The samples are drawn in another order, so the numbers agree within sampling error, not bit for bit.
    chunked = lk.likelihoods(model, x[:10], k=40)
    assert abs(whole["log_px_iwae"] - chunked["log_px_iwae"]) < 3.0


def test_a_variational_run_reports_its_likelihoods(tmp_path, small):
    from latentatlas.config import RunConfig
    from latentatlas.run_training import train_run

    run = train_run(RunConfig(preset="vae-2d", epochs=1, iwae_k=20), tmp_path / "r", progress=False, dataset=small,
                    plot=False)
    from latentatlas.metrics import METRICS

    m = run.metrics
    assert set(m) == {k.key for k in METRICS if k.only in (None, "variational runs")}
    assert m["iwae_k"] == 20 and m["log_px_iwae"] >= m["elbo"] - 2 and m["elbo_kl"] > 0
    det = train_run(RunConfig(preset="deep-2d", epochs=1), tmp_path / "d", progress=False, dataset=small, plot=False)
    assert "elbo" not in det.metrics and "circular_corr" not in det.metrics


# ---- figures and the torus chart ---------------------------------------------------------------------------------

def _drawable_dim(name):
    cls = GEOMETRIES[name]
    return next(d for d in (*cls.test_dims, 2, 3) if d >= cls.min_dim and get_geometry(name, d).charts())


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_generative_figures_where_the_geometry_offers_them(tmp_path, small, name):
    from latentatlas.config import RunConfig
    from latentatlas.run_training import train_run

    d = _drawable_dim(name)
    run = train_run(RunConfig(preset=None, hidden_sizes=(32,), geometry=name, latent_dim=d, epochs=1, iwae_k=5),
                    tmp_path / "r", progress=False, dataset=small)
    g = run.model.geometry
    figures = {p.name for p in (tmp_path / "r" / "figures").iterdir()}
    assert ("prior_samples.png" in figures) == g.has_prior
    assert ("traversals.png" in figures) == (g.traversal(2) is not None)
    for chart in g.charts():
        assert (f"posterior_spread_{chart.name}.png" in figures) == g.variational


def test_torus_chart_is_periodic_and_its_decoder_grid_tiles_seamlessly():
    """The square's opposite edges are the same points of T^2, so decoded images match across them; the step
    across the seam is no larger than a step inside the grid (a plane's grid would jump there)."""
    from latentatlas.config import RunConfig
    from latentatlas.metrics import decode
    from latentatlas.model import AutoencoderNet
    from latentatlas.viz.plots import grid_points

    torch.manual_seed(0)
    model = AutoencoderNet.from_config(RunConfig(preset="torus-2").resolved(), 784)
    (chart,) = model.geometry.charts()
    v = torch.linspace(-math.pi, math.pi, 9)
    left = chart.from_map(torch.stack([torch.full_like(v, -math.pi), v], 1))
    right = chart.from_map(torch.stack([torch.full_like(v, math.pi), v], 1))
    np.testing.assert_allclose(decode(model, left.numpy()), decode(model, right.numpy()), atol=1e-5)
    uv, _, (rows, cols), _ = grid_points(chart, 16)
    images = decode(model, chart.from_map(torch.as_tensor(uv)).numpy()).reshape(rows, cols, -1)
    inner = np.abs(np.diff(images, axis=1)).mean()
    for seam in (np.abs(images[:, 0] - images[:, -1]).mean(), np.abs(images[0] - images[-1]).mean()):
        assert seam < 1.5 * inner


def test_ring_torus_embedding_and_pick_agree():
    """Points of T^2 land on the ring torus (its signed distance is zero there), which the drawing's radius holds."""
    from latentatlas.geometries.torus import RING_R, TUBE_R, ring_torus

    g = get_geometry("torus", 2)
    z = g.sample_prior(200, generator=torch.Generator().manual_seed(0)).double()
    p = ring_torus(z)
    dist = torch.hypot(torch.hypot(p[:, 0], p[:, 1]) - RING_R, p[:, 2]) - TUBE_R  # the torus's signed distance
    assert dist.abs().max() < 1e-6
    emb = g.embedding_3d()
    assert emb.radius == RING_R + TUBE_R and emb.is_surface and "Math.atan2" in emb.js_pick


@pytest.mark.parametrize("d", [2, 3, 5, 10])
def test_paper_presets_are_its_relu_networks(d):
    """784-256-128-d with a ReLU after each hidden Linear and a linear bottleneck (the posterior's parameters may be
    negative), mirrored in the decoder; the Gaussian's encoder gives 2d numbers, the power spherical's d + 1."""
    from torch import nn

    from latentatlas.config import RunConfig
    from latentatlas.model import AutoencoderNet

    for kind, n_out in (("vae", 2 * d), ("svae", d + 1)):
        model = AutoencoderNet.from_config(RunConfig(preset=f"{kind}-paper-{d}").resolved(), 784)
        enc = [(type(m).__name__, getattr(m, "out_features", None)) for m in model.encoder]
        dec = [(type(m).__name__, getattr(m, "out_features", None)) for m in model.decoder]
        assert enc == [("Linear", 256), ("ReLU", None), ("Linear", 128), ("ReLU", None), ("Linear", n_out)]
        assert dec == [("Linear", 128), ("ReLU", None), ("Linear", 256), ("ReLU", None), ("Linear", 784)]
        assert model.decoder[0].in_features == d and not any(isinstance(m, nn.PReLU) for m in model.modules())
