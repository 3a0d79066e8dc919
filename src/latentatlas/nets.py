"""MLP builders that reproduce the tutorial's networks exactly, and the named presets.

The tutorial's layout: a PReLU after every hidden Linear and after the bottleneck Linear, a sigmoid output, and
Kaiming-normal weights on every Linear but the last (biases keep PyTorch's default). The decoder here ends in the
last Linear (logits); the model applies the sigmoid, so the BCE loss can use the stable logits form.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .presets import PRESETS, Preset, get_preset  # noqa: F401  (their home before presets.py)

# The activation after each hidden Linear, and whether one follows the encoder's bottleneck Linear too: the
# tutorial puts a PReLU there; the paper's networks keep it linear (a ReLU would forbid negative means).
ACTIVATIONS: dict[str, tuple[type[nn.Module], bool]] = {"prelu": (nn.PReLU, True), "relu": (nn.ReLU, False)}


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
