"""The named presets: the tutorial's networks (and a control it lacks), with their parameter counts.

No torch here: ``latentatlas presets`` lists them, counts included, without paying for torch's import.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import unknown_name


@dataclass(frozen=True)
class Preset:
    hidden_sizes: tuple[int, ...]  # encoder widths; the decoder mirrors them
    latent_dim: int
    geometry: str
    description: str
    ne_weight: float = 0.0  # the neighbour-embedding term's weight (the atlas presets': maps that keep neighbours)
    activation: str = "prelu"  # a name in nets.ACTIVATIONS
    layout: str = "encoder"  # or "free": the training images laid out first, the networks fitted to that map
    layout_engine: str = "latentatlas"  # what lays a free layout out (latentatlas.layout_engines.ENGINES)

    def n_params(self, n_features: int = 784) -> int:
        """Trainable parameters for inputs of ``n_features`` pixels, in closed form (checked against torch's count
        of the built network in tests/test_nets.py)."""
        encoder_out, decoder_in = geometry_widths(self.geometry, self.latent_dim)
        return mlp_parameters(n_features, self.hidden_sizes, encoder_out, decoder_in, self.activation)


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
    # Maps as sharp as t-SNE's that decode everywhere: the training images laid out first (free coordinates,
    # t-SNE's objective), deep-2d's / deep-s2's decoder trained from that map and encoder distilled onto it, new
    # images refined on the frozen map (latentatlas.atlas_map; docs/maps-research.md).
    "atlas-2d": Preset((392, 64), 2, "euclidean", "a laid-out map of the plane with deep-2d's networks", layout="free",
                       layout_engine="auto"),
    "atlas-s2": Preset((392, 96), 3, "sphere", "a laid-out map of S2 with deep-s2's networks", layout="free",
                       layout_engine="auto"),
    # Issue 12's atlas: the tutorial's networks with the neighbour-embedding term on.
    "ne-2d": Preset((392, 64), 2, "euclidean", "deep-2d with the neighbour-embedding term", ne_weight=1.0),
    "ne-s2": Preset((392, 96), 3, "sphere", "deep-s2 with the neighbour-embedding term", ne_weight=1.0),
    # Variational and toroidal latents on the tutorial's deep networks.
    "vae-2d": Preset((392, 64), 2, "gaussian", "deep-2d with a Gaussian posterior and N(0, I) prior: the VAE"),
    "svae-s2": Preset((392, 96), 3, "power-spherical", "deep-s2 with a power spherical posterior, uniform prior"),
    "torus-2": Preset((392, 96), 2, "torus", "784-392-96-T^2 (4 numbers: two unit circles)-96-392-784"),
    "vtorus-2": Preset((392, 96), 2, "vtorus", "torus-2 with a power spherical posterior on each circle"),
    **_PAPER,
}

# The built-in geometries' (encoder output, decoder input) widths for a latent_dim, so that `latentatlas presets`
# counts without importing torch: a cache of the geometry's own ``encoder_features`` and ``dim``, which stay the
# source (tests/test_nets.py checks each entry at the geometry's test_dims). A new geometry needs no entry here.
WIDTHS = {
    "euclidean": lambda d: (d, d),
    "sphere": lambda d: (d, d),
    "gaussian": lambda d: (2 * d, d),  # mean and log-variance
    "power-spherical": lambda d: (d + 1, d),  # the direction and kappa
    "torus": lambda n: (2 * n, 2 * n),  # a unit 2-vector per circle
    "vtorus": lambda n: (3 * n, 2 * n),  # per circle a direction and kappa
}


def geometry_widths(geometry: str, latent_dim: int) -> tuple[int, int]:
    """(encoder output, decoder input) widths of a geometry: from ``WIDTHS`` without torch, else from the geometry."""
    if geometry in WIDTHS:
        return WIDTHS[geometry](latent_dim)
    from .geometries import get_geometry

    built = get_geometry(geometry, latent_dim)
    return built.encoder_features, built.dim


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise unknown_name("preset", name, PRESETS) from None


def mlp_parameters(n_features: int, hidden_sizes, encoder_out: int, decoder_in: int, activation: str = "prelu") -> int:
    """The parameters of nets.build_encoder + build_decoder: each Linear's weights and biases, and with "prelu"
    one slope after every Linear but the decoder's last (ReLU has none)."""
    encoder = [n_features, *hidden_sizes, encoder_out]
    decoder = [decoder_in, *reversed(hidden_sizes), n_features]
    linears = [(a, b) for sizes in (encoder, decoder) for a, b in zip(sizes[:-1], sizes[1:])]
    return sum(a * b + b for a, b in linears) + (len(linears) - 1 if activation == "prelu" else 0)
