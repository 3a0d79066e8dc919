"""MLP builders that reproduce the tutorial's networks exactly, and the named presets.

The tutorial's layout: a PReLU after every hidden Linear and after the bottleneck Linear, a sigmoid output, and
Kaiming-normal weights on every Linear but the last (biases keep PyTorch's default). The decoder here ends in the
last Linear (logits); the model applies the sigmoid, so the BCE loss can use the stable logits form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from .errors import LatentAtlasError


@dataclass(frozen=True)
class Preset:
    hidden_sizes: tuple[int, ...]  # encoder widths; the decoder mirrors them
    latent_dim: int
    geometry: str
    description: str
    ne_weight: float = 0.0  # the neighbour-embedding term's weight (the atlas presets': maps that keep neighbours)
    activation: str = "prelu"  # a name in ACTIVATIONS


# The hyperspherical VAE paper's networks (Davidson et al. 2018; De Cao & Aziz 2020 use the same): 784-256-128-d
# with ReLU, the bottleneck linear, for its table at d = 2, 3, 5, 10 (d: the dimension the sphere sits in).
_PAPER = {f"{kind}-paper-{d}": Preset((256, 128), d, geometry, f"784-256-128-{d} ReLU, {what}", activation="relu")
          for d in (2, 3, 5, 10)
          for kind, geometry, what in (("vae", "gaussian", "Gaussian VAE"),
                                       ("svae", "power-spherical", f"power spherical VAE on S^{d - 1}"))}


PRESETS: dict[str, Preset] = {
    "shallow-2d": Preset((), 2, "euclidean", "784-2-784, one Linear each way"),
    "deep-2d": Preset((392, 64), 2, "euclidean", "784-392-64-2-64-392-784"),
    "deep-3d": Preset((392, 96), 3, "euclidean", "784-392-96-3-96-392-784"),
    # Width-matched to deep-2d: the control that separates "3-D latent" from "wider network".
    "deep-3d-narrow": Preset((392, 64), 3, "euclidean", "784-392-64-3-64-392-784, width-matched to deep-2d"),
    "deep-s2": Preset((392, 96), 3, "sphere", "deep-3d with the bottleneck projected onto S2"),
    "thick-s2": Preset((1568, 392, 96), 3, "sphere", "784-1568-392-96-3-S2-96-392-1568-784"),
    # The tutorial's networks with the neighbour-embedding term on (docs/maps-research.md).
    "atlas-2d": Preset((392, 64), 2, "euclidean", "deep-2d with the neighbour-embedding term", ne_weight=1.0),
    "atlas-s2": Preset((392, 96), 3, "sphere", "deep-s2 with the neighbour-embedding term", ne_weight=1.0),
    # Variational and toroidal latents on the tutorial's deep networks.
    "vae-2d": Preset((392, 64), 2, "gaussian", "deep-2d with a Gaussian posterior and N(0, I) prior: the VAE"),
    "svae-s2": Preset((392, 96), 3, "power-spherical", "deep-s2 with a power spherical posterior, uniform prior"),
    "torus-2": Preset((392, 96), 2, "torus", "784-392-96-T^2 (4 numbers: two unit circles)-96-392-784"),
    "vtorus-2": Preset((392, 96), 2, "vtorus", "torus-2 with a power spherical posterior on each circle"),
    **_PAPER,
}

# The activation after each hidden Linear, and whether one follows the encoder's bottleneck Linear too: the
# tutorial puts a PReLU there; the paper's networks keep it linear (a ReLU would forbid negative means).
ACTIVATIONS: dict[str, tuple[type[nn.Module], bool]] = {"prelu": (nn.PReLU, True), "relu": (nn.ReLU, False)}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise LatentAtlasError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None


def mlp(sizes: Sequence[int], *, activate_last: bool, activation: type[nn.Module] = nn.PReLU) -> nn.Sequential:
    """Linear layers through ``sizes`` with an activation after each, except after the last unless
    ``activate_last``."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if activate_last or i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def build_encoder(n_features: int, hidden_sizes: Sequence[int], n_out: int, activation: str = "prelu") -> nn.Sequential:
    """n_features -> hidden -> n_out; with "prelu" a PReLU after the bottleneck Linear too, as the tutorial."""
    act, after_bottleneck = ACTIVATIONS[activation]
    return mlp([n_features, *hidden_sizes, n_out], activate_last=after_bottleneck, activation=act)


def build_decoder(latent_dim: int, hidden_sizes: Sequence[int], n_features: int, activation: str = "prelu") -> nn.Sequential:
    """latent -> mirrored hidden -> n_features logits."""
    return mlp([latent_dim, *reversed(hidden_sizes), n_features], activate_last=False,
               activation=ACTIVATIONS[activation][0])


def init_tutorial_(encoder: nn.Sequential, decoder: nn.Sequential) -> None:
    """Kaiming-normal weights on every Linear but the decoder's last, in place."""
    linears = [m for m in (*encoder, *decoder) if isinstance(m, nn.Linear)]
    for layer in linears[:-1]:
        nn.init.kaiming_normal_(layer.weight)
