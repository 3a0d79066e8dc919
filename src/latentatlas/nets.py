"""MLP builders that reproduce the tutorial's networks exactly, and the named presets.

The tutorial's layout: a PReLU after every hidden Linear and after the bottleneck Linear, a sigmoid output, and
Kaiming-normal weights on every Linear but the last (biases keep PyTorch's default). The decoder here ends in the
last Linear (logits); the model applies the sigmoid, so the BCE loss can use the stable logits form.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .presets import PRESETS, Preset, get_preset  # noqa: F401  (their home before presets.py)


def mlp(sizes: Sequence[int], *, activate_last: bool) -> nn.Sequential:
    """Linear layers through ``sizes`` with a PReLU after each, except after the last unless ``activate_last``."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if activate_last or i < len(sizes) - 2:
            layers.append(nn.PReLU())
    return nn.Sequential(*layers)


def build_encoder(n_features: int, hidden_sizes: Sequence[int], n_out: int) -> nn.Sequential:
    """n_features -> hidden -> n_out, PReLU after the bottleneck Linear too, as the tutorial."""
    return mlp([n_features, *hidden_sizes, n_out], activate_last=True)


def build_decoder(latent_dim: int, hidden_sizes: Sequence[int], n_features: int) -> nn.Sequential:
    """latent -> mirrored hidden -> n_features logits."""
    return mlp([latent_dim, *reversed(hidden_sizes), n_features], activate_last=False)


def init_tutorial_(encoder: nn.Sequential, decoder: nn.Sequential) -> None:
    """Kaiming-normal weights on every Linear but the decoder's last, in place."""
    linears = [m for m in (*encoder, *decoder) if isinstance(m, nn.Linear)]
    for layer in linears[:-1]:
        nn.init.kaiming_normal_(layer.weight)
