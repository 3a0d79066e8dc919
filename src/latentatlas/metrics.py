"""Evaluation of a trained autoencoder: reconstruction error, neighbourhood preservation and class separation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.manifold import trustworthiness
from sklearn.neighbors import KNeighborsClassifier

from .model import AutoencoderNet, count_parameters
from .train import as_tensor, to_unit_float

TRUST_SUBSET = 2000  # trustworthiness is O(n^2): a fixed test subset keeps it cheap and comparable across runs
TRUST_K = 5


@torch.inference_mode()
def encode(model: AutoencoderNet, x, batch_size: int = 4096) -> np.ndarray:
    """(N, D) uint8 or [0, 1] floats -> (N, latent_dim) float32 latents, in eval mode on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    x = as_tensor(x).reshape(len(x), -1)
    out = [model.encode(to_unit_float(x[i : i + batch_size].to(device))).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.geometry.dim), np.float32)


@torch.inference_mode()
def decode(model: AutoencoderNet, z, batch_size: int = 4096) -> np.ndarray:
    """(N, latent_dim) -> (N, n_features) float32 pixels in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    z = torch.as_tensor(np.asarray(z, np.float32))
    out = [model.decode(z[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.n_features), np.float32)


@torch.inference_mode()
def reconstruction_errors(model: AutoencoderNet, x, batch_size: int = 4096) -> dict[str, float]:
    """Mean per-pixel BCE and MSE over ``x``, computed in float64 sums."""
    model.eval()
    device = next(model.parameters()).device
    x = as_tensor(x).reshape(len(x), -1)
    bce = mse = 0.0
    for i in range(0, len(x), batch_size):
        xb = to_unit_float(x[i : i + batch_size].to(device))
        logits = model(xb).logits.float()
        bce += F.binary_cross_entropy_with_logits(logits, xb, reduction="sum").double().item()
        mse += F.mse_loss(torch.sigmoid(logits), xb, reduction="sum").double().item()
    n = x.shape[0] * x.shape[1]
    return {"bce_test": bce / n, "mse_test": mse / n}


def knn_accuracy(z_train, y_train, z_test, y_test, k: int) -> float:
    """Accuracy of k-NN fit on train latents, on test latents.

    Euclidean distance; on the sphere that ranks neighbours exactly as the angle does (see geometries/sphere.py).
    """
    clf = KNeighborsClassifier(n_neighbors=min(k, len(z_train))).fit(z_train, y_train)  # tiny data: k capped
    return float(clf.score(z_test, y_test))


def trust_subset(n_test: int) -> np.ndarray:
    """The fixed test indices used for trustworthiness (the same for every run on the same data)."""
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(n_test, size=min(TRUST_SUBSET, n_test), replace=False))


def evaluate(model: AutoencoderNet, dataset, z_train=None, z_test=None) -> dict:
    """Every metric of ``metrics.json`` except the run's own ``train_seconds`` and ``epochs``."""
    x_train, y_train = dataset.flat("train")
    x_test, y_test = dataset.flat("test")
    z_train = encode(model, x_train) if z_train is None else z_train
    z_test = encode(model, x_test) if z_test is None else z_test
    idx = trust_subset(len(x_test))
    x_sub = to_unit_float(as_tensor(x_test[idx])).numpy()
    k_trust = min(TRUST_K, (len(idx) - 1) // 2)  # scikit-learn needs k < n / 2
    trust = float(trustworthiness(x_sub, z_test[idx], n_neighbors=k_trust)) if k_trust >= 1 else None
    return {
        "n_params": count_parameters(model),
        **reconstruction_errors(model, x_test),
        "knn1": knn_accuracy(z_train, y_train, z_test, y_test, 1),
        "knn5": knn_accuracy(z_train, y_train, z_test, y_test, 5),
        "trustworthiness": trust,  # None (null) when the test set is too small to define it
    }
