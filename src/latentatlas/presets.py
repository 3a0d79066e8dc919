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

    def n_params(self, n_features: int = 784) -> int:
        """Trainable parameters for inputs of ``n_features`` pixels, in closed form (checked against torch's count
        of the built network in tests/test_nets.py)."""
        return mlp_parameters(n_features, self.hidden_sizes, self.latent_dim)


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
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise unknown_name("preset", name, PRESETS) from None


def mlp_parameters(n_features: int, hidden_sizes, latent_dim: int) -> int:
    """The parameters of nets.build_encoder + build_decoder around a latent point of ``latent_dim`` that the
    geometry passes through at that width (the plane and the sphere do; a geometry with a wider encoder output,
    such as a Gaussian posterior's, would need its own width here): each Linear's weights and biases, and one
    PReLU slope after every Linear but the decoder's last."""
    encoder = [n_features, *hidden_sizes, latent_dim]
    decoder = [latent_dim, *reversed(hidden_sizes), n_features]
    linears = [(a, b) for sizes in (encoder, decoder) for a, b in zip(sizes[:-1], sizes[1:])]
    return sum(a * b + b for a, b in linears) + len(linears) - 1
