"""Likelihoods of a variational autoencoder, in nats per image: the ELBO, its parts, and the importance-weighted
estimate of log p(x) (Burda et al. 2016) that papers report.

The decoder is a Bernoulli likelihood over pixels (the BCE of the logits, summed over pixels), which is a true
log-likelihood on binary images: evaluate on dynamically binarised data (the ``binarize`` transform) for numbers
that compare with the literature's. For K posterior samples z_k of an image x,

    log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x),   IWAE_K = logsumexp_k(log w_k) - log K,

which is a lower bound on log p(x) that tightens as K grows; the ELBO is E_q[log p(x | z)] - KL(q || p) with the
KL in closed form and the expectation over the same K samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._tensors import as_tensor, to_unit_float

IWAE_K = 500  # as the hyperspherical VAE paper (Davidson et al. 2018) reports log p(x)
CHUNK = 200_000  # at most this many (sample, image) pairs decoded at once: K * images per chunk, bounds the memory


@torch.inference_mode()
def log_weights(model, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For a batch x (B, D) in [0, 1]: (log w (k, B), log p(x | z) (k, B), analytic KL (B,)), in float64."""
    geometry = model.geometry
    h = model.encoder(x)
    kl = geometry(h).kl().double()
    rep = geometry(h.repeat(k, 1))  # k copies of each posterior, sample-major: (k * B, ...)
    z = rep.rsample()
    logits = model.decoder(z).float()
    log_px_z = -F.binary_cross_entropy_with_logits(logits, x.repeat(k, 1), reduction="none").sum(-1).double()
    log_w = log_px_z + geometry.prior_log_prob(z).double() - rep.log_prob(z).double()
    return log_w.view(k, -1), log_px_z.view(k, -1), kl


@torch.inference_mode()
def likelihoods(model, x, k: int = IWAE_K, seed: int = 0) -> dict[str, float]:
    """The test-set likelihoods of a variational model, each a mean over images in nats per image.

    ``elbo`` = ``elbo_recon`` - ``elbo_kl``; ``log_px_iwae`` is the IWAE estimate with ``k`` samples (``iwae_k``).
    Seeded, so a model's numbers are the same every time they are computed.
    """
    model.eval()
    device = next(model.parameters()).device
    x = as_tensor(x).reshape(len(x), -1)
    per_chunk = max(1, CHUNK // k)
    sums = dict.fromkeys(("elbo_recon", "elbo_kl", "log_px_iwae"), 0.0)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(0, len(x), per_chunk):
            xb = to_unit_float(x[i : i + per_chunk].to(device))
            log_w, log_px_z, kl = log_weights(model, xb, k)
            sums["elbo_recon"] += log_px_z.mean(0).sum().item()
            sums["elbo_kl"] += kl.sum().item()
            sums["log_px_iwae"] += (torch.logsumexp(log_w, 0) - math.log(k)).sum().item()
    out = {key: v / len(x) for key, v in sums.items()}
    out["elbo"] = out["elbo_recon"] - out["elbo_kl"]
    out["iwae_k"] = k
    return out
