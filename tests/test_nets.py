"""Networks against the tutorial's oracle: exact parameter counts and layer layout."""

import pytest
import torch
from torch import nn

from latentatlas.config import RunConfig
from latentatlas.errors import LatentAtlasError
from latentatlas.model import AutoencoderNet, count_parameters
from latentatlas.geometries import GEOMETRIES
from latentatlas.nets import PRESETS
from latentatlas.presets import WIDTHS

TUTORIAL_COUNTS = {
    "shallow-2d": 3_923,
    "deep-2d": 666_791,
    "deep-3d": 692_264,
    "deep-s2": 692_264,
    "thick-s2": 3_768_682,
}


def build(preset, n_features=784, **kw):
    return AutoencoderNet.from_config(RunConfig(preset=preset, **kw).resolved(), n_features)


@pytest.mark.parametrize("preset,count", TUTORIAL_COUNTS.items())
def test_parameter_counts_match_the_tutorial(preset, count):
    assert count_parameters(build(preset)) == count


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("n_features", [784, 64])
def test_closed_form_parameter_counts_match_torch(preset, n_features):
    # `latentatlas presets` counts without building the network (no torch import): torch's count is the oracle.
    assert PRESETS[preset].n_params(n_features) == count_parameters(build(preset, n_features))


@pytest.mark.parametrize("name", WIDTHS)
def test_the_torch_free_widths_are_each_geometrys_own(name):
    for latent_dim in GEOMETRIES[name].test_dims:  # the dimensions the geometry itself says to try
        geometry = GEOMETRIES[name](latent_dim)
        assert WIDTHS[name](latent_dim) == (geometry.encoder_features, geometry.dim)


def test_a_preset_counts_a_geometry_without_a_torch_free_width_from_the_geometry_itself(monkeypatch):
    from latentatlas import presets

    monkeypatch.delitem(presets.WIDTHS, "sphere")
    assert PRESETS["deep-s2"].n_params() == TUTORIAL_COUNTS["deep-s2"]


@pytest.mark.parametrize("atlas, ne, tutorial", [("atlas-2d", "ne-2d", "deep-2d"), ("atlas-s2", "ne-s2", "deep-s2")])
def test_atlas_presets_are_the_tutorial_networks_on_a_free_layout(atlas, ne, tutorial):
    a, n, t = (RunConfig(preset=p).resolved() for p in (atlas, ne, tutorial))
    for cfg in (a, n):
        assert (cfg.hidden_sizes, cfg.geometry, cfg.latent_dim) == (t.hidden_sizes, t.geometry, t.latent_dim)
        assert count_parameters(build(cfg.preset)) == TUTORIAL_COUNTS[tutorial]
    assert (a.layout, a.ne_weight, n.layout, n.ne_weight, t.layout, t.ne_weight) == (
        "free", 0.0, "encoder", 1.0, "encoder", 0.0)
    assert RunConfig(preset=atlas, layout="encoder").resolved().layout == "encoder"  # a setting given wins


def test_control_preset_is_width_matched_to_deep_2d():
    assert PRESETS["deep-3d-narrow"].hidden_sizes == PRESETS["deep-2d"].hidden_sizes
    # one more bottleneck unit: 64 + 1 weights in, 64 weights out
    assert count_parameters(build("deep-3d-narrow")) == TUTORIAL_COUNTS["deep-2d"] + 64 + 1 + 64


def test_layout_prelu_after_every_hidden_and_bottleneck_linear():
    m = build("deep-2d")
    kinds = [type(l).__name__ for l in m.encoder]
    assert kinds == ["Linear", "PReLU", "Linear", "PReLU", "Linear", "PReLU"]
    kinds = [type(l).__name__ for l in m.decoder]
    assert kinds == ["Linear", "PReLU", "Linear", "PReLU", "Linear"]  # sigmoid applied in decode()
    x = torch.rand(4, 784)
    assert ((m.decode(m.encode(x)) >= 0) & (m.decode(m.encode(x)) <= 1)).all()


def test_kaiming_normal_on_all_but_the_last_linear():
    torch.manual_seed(0)
    m = build("thick-s2")
    linears = [l for l in (*m.encoder, *m.decoder) if isinstance(l, nn.Linear)]
    for layer in linears[:-1]:  # Kaiming normal, fan_in, gain sqrt(2): std = sqrt(2 / fan_in)
        expected = (2 / layer.in_features) ** 0.5
        assert abs(layer.weight.std().item() / expected - 1) < 0.1
    last = linears[-1]  # PyTorch default: uniform in +-1/sqrt(fan_in), std = 1/sqrt(3 fan_in)
    assert abs(last.weight.std().item() / (3 * last.in_features) ** -0.5 - 1) < 0.1


def test_any_widths_and_input_size():
    m = build(None, n_features=64, hidden_sizes=(32, 16), geometry="sphere", latent_dim=5)
    assert m.encode(torch.rand(3, 64)).shape == (3, 5)
    assert m.decode(torch.randn(3, 5)).shape == (3, 64)


@pytest.mark.parametrize("kw,match", [
    (dict(preset="resnet"), "unknown preset 'resnet': choose one of shallow-2d"),
    (dict(preset="deep-2d", geometry="sphere", latent_dim=1), "latent_dim=1 is not possible for the sphere"),
    (dict(preset=None), "no preset given"),
    (dict(lr=0.0), "lr=0.0 is out of range"),
    (dict(lr=float("nan")), "lr=nan is out of range"),
    (dict(epochs=0), "epochs=0 is out of range"),
    (dict(batch_size=-1), "batch_size=-1 is out of range"),
    (dict(loss="l1"), "unknown loss 'l1': choose one of bce, mse"),
    (dict(hidden_sizes=(392, 0)), "hidden_sizes=0 is out of range"),
])
def test_bad_config_is_one_clear_line(kw, match):
    with pytest.raises(LatentAtlasError, match=match) as e:
        RunConfig(**kw).resolved()
    assert "\n" not in str(e.value)
