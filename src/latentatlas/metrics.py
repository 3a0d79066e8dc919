"""Evaluation of a trained autoencoder, and the table of every metric it reports.

``METRICS`` says each metric's key in ``metrics.json``, its column header and label, how to print it and which
direction is better; the demo, compare, the report, the sweep and the explorer all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .atlas_map import round_trip
from .losses import bce, mse
from ._tensors import as_tensor, to_unit_float

TRUST_SUBSET = 2000  # trustworthiness is O(n^2): a fixed test subset keeps it cheap and comparable across runs
TRUST_K = 5


@dataclass(frozen=True)
class Metric:
    key: str  # as in metrics.json
    header: str  # a short column header
    label: str  # a longer label for reports
    fmt: str  # a format spec, e.g. ".4f"
    better: str | None = None  # "lower", "higher", or None for a property rather than a measurement
    compared: bool = True  # a column of compare's table (epochs is not: it is a setting)
    only: str | None = None  # None: every run reports it; else which runs do (the others leave it out)
    # A metric of the map alone: (dataset, z_train, z_test) -> value, computed by embedding_metrics for a model and
    # for a map without a decoder (UMAP, t-SNE) alike. A new latent-only metric is one entry here with its function.
    of_map: Callable | None = None
    of_run: bool = False  # the run's own record (its time, its epochs), not something evaluate measures

    def format(self, value) -> str:
        return "-" if value is None else format(value, self.fmt)


def _knn(k: int):
    def knn(dataset, z_train, z_test) -> float:
        (_, y_train), (_, y_test) = dataset.flat("train"), dataset.flat("test")
        return knn_accuracy(z_train, y_train, z_test, y_test, k)

    return knn


def _trustworthiness(swap: bool):
    """Trustworthiness on the fixed test subset; with ``swap`` continuity, which is trustworthiness with the roles
    swapped: map neighbours missing from the input's, not intruders. None (null) when the test set is too small."""

    def trust(dataset, z_train, z_test) -> float | None:
        from sklearn.manifold import trustworthiness

        x_test = dataset.flat("test")[0]
        idx = trust_subset(len(x_test))
        x_sub = to_unit_float(as_tensor(x_test[idx])).numpy()
        k_trust = min(TRUST_K, (len(idx) - 1) // 2)  # scikit-learn needs k < n / 2
        if k_trust < 1:
            return None
        pair = (z_test[idx], x_sub) if swap else (x_sub, z_test[idx])
        return float(trustworthiness(*pair, n_neighbors=k_trust))

    return trust


VARIATIONAL = "variational runs"
FREE_LAYOUT = "free-layout runs (atlas-2d, atlas-s2)"
METRICS: tuple[Metric, ...] = (
    Metric("n_params", "parameters", "parameters", ",.0f"),
    Metric("bce_test", "test BCE", "test BCE", ".4f", "lower"),
    Metric("mse_test", "test MSE", "test MSE", ".4f", "lower"),
    Metric("knn1", "1-NN", "1-NN accuracy", ".3f", "higher", of_map=_knn(1)),
    Metric("knn5", "5-NN", "5-NN accuracy", ".3f", "higher", of_map=_knn(5)),
    Metric("knn5_encoder", "5-NN enc.", "5-NN accuracy of the encoder's own points (test images placed by one "
           "pass, not refined on the map)", ".3f", "higher", only=FREE_LAYOUT),
    Metric("round_trip", "round trip", "median distance back of a 20 x 20 grid over each chart of the map, decoded "
           "and placed again, as a share of the map's diameter", ".3f", "lower", only=FREE_LAYOUT),
    Metric("trustworthiness", "trust", f"trustworthiness (k={TRUST_K})", ".3f", "higher",
           of_map=_trustworthiness(swap=False)),
    Metric("continuity", "cont.", f"continuity (k={TRUST_K})", ".3f", "higher", of_map=_trustworthiness(swap=True)),
    # Nats per test image, see latentatlas.likelihood.
    Metric("elbo", "ELBO", "ELBO (nats per test image)", ".2f", "higher", only=VARIATIONAL),
    Metric("elbo_recon", "E log p(x|z)", "the ELBO's expected log-likelihood (nats per test image)", ".2f", "higher",
           compared=False, only=VARIATIONAL),
    Metric("elbo_kl", "KL", "KL(q || prior) (nats per test image)", ".2f", None, only=VARIATIONAL),
    Metric("log_px_iwae", "log p(x)", "IWAE log-likelihood (nats per test image)", ".2f", "higher", only=VARIATIONAL),
    Metric("iwae_k", "K", "importance samples per image of the IWAE", "d", compared=False, only=VARIATIONAL),
    Metric("circular_corr", "circ. corr.", "circular correlation with the true angles (see circular_correlation)",
           ".3f", "higher", only="data with known angles (head-direction, grid-cells)"),
    Metric("train_seconds", "train s", "train seconds", ".1f", "lower", of_run=True),
    Metric("epochs", "epochs", "epochs", "d", compared=False, of_run=True),
)
METRIC = {m.key: m for m in METRICS}
ALWAYS = frozenset(m.key for m in METRICS if m.only is None)  # what every run's metrics.json has


@torch.inference_mode()
def encode(model, x, batch_size: int = 4096, direct: bool = False) -> np.ndarray:
    """(N, D) uint8 or [0, 1] floats -> (N, dim) float32 latents, in eval mode on the model's device: the model's
    ``encode`` (a free layout's placement on its map), or with ``direct`` the encoder's own pass."""
    model.eval()
    device = next(model.parameters()).device
    x = as_tensor(x).reshape(len(x), -1)
    fn = model.encode_direct if direct else model.encode
    out = [fn(to_unit_float(x[i : i + batch_size].to(device))).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.geometry.dim), np.float32)


@torch.inference_mode()
def decode(model, z, batch_size: int = 4096) -> np.ndarray:
    """(N, dim) -> (N, n_features) float32 pixels in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    z = torch.as_tensor(np.asarray(z, np.float32))
    out = [model.decode(z[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.n_features), np.float32)


@torch.inference_mode()
def reconstruction_errors(model, x, batch_size: int = 4096, z=None) -> dict[str, float]:
    """Mean per-pixel BCE and MSE over ``x``, computed in float64 sums; ``model(x).logits`` are the decoder's
    logits, in eval mode (the posterior's mode), or with ``z`` (N, dim) the decoder's of those points (a free
    layout's placements)."""
    model.eval()
    device = next(model.parameters()).device
    x = as_tensor(x).reshape(len(x), -1)
    sums = {"bce_test": 0.0, "mse_test": 0.0}
    for i in range(0, len(x), batch_size):
        xb = to_unit_float(x[i : i + batch_size].to(device))
        if z is None:
            logits = model(xb).logits.float()
        else:
            logits = model.decoder(torch.as_tensor(z[i : i + batch_size], device=device)).float()
        for key, fn in (("bce_test", bce), ("mse_test", mse)):
            sums[key] += fn(logits, xb, reduction="sum").double().item()
    n = x.shape[0] * x.shape[1]
    return {k: v / n for k, v in sums.items()}


def knn_accuracy(z_train, y_train, z_test, y_test, k: int) -> float:
    """Accuracy of k-NN fit on train latents, on test latents.

    Euclidean distance; on the sphere that ranks neighbours exactly as the angle does (see geometries/sphere.py).
    """
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=min(k, len(z_train))).fit(z_train, y_train)  # tiny data: k capped
    return float(clf.score(z_test, y_test))


def trust_subset(n_test: int) -> np.ndarray:
    """The fixed test indices used for trustworthiness (the same for every run on the same data)."""
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(n_test, size=min(TRUST_SUBSET, n_test), replace=False))


def evaluate(model, dataset, z_train=None, z_test=None, iwae_k: int = 500) -> dict:
    """Every metric of ``metrics.json`` except the run's own ``train_seconds`` and ``epochs``.

    ``model`` is anything with ``encode``, a forward pass returning ``.logits`` and parameters: an
    :class:`~latentatlas.model.AutoencoderNet`, or a baseline written to the same shape (compare's PCA). A model
    with a variational geometry also gets its likelihoods (``iwae_k`` samples per image; 0 skips the IWAE), and
    data with known angles the circular correlation of the latent's angles with them.
    """
    from .model import count_parameters

    x_train, x_test = dataset.flat("train")[0], dataset.flat("test")[0]
    placed = getattr(model, "map", None) is not None  # a free layout: test images placed on the map, decoded there
    z_train = (model.map.coords.cpu().numpy() if placed else encode(model, x_train)) if z_train is None else z_train
    z_test = encode(model, x_test) if z_test is None else z_test
    out = {"n_params": count_parameters(model), **reconstruction_errors(model, x_test, z=z_test if placed else None),
           **embedding_metrics(dataset, z_train, z_test)}
    if placed:
        direct = encode(model, x_test, direct=True)
        out["knn5_encoder"] = knn_accuracy(z_train, dataset.flat("train")[1], direct, dataset.flat("test")[1], 5)
        out["round_trip"] = round_trip(model)
    geometry = getattr(model, "geometry", None)
    if geometry is not None and geometry.variational:
        from .likelihood import likelihoods

        found = likelihoods(model, x_test, k=max(iwae_k, 1))
        if not iwae_k:
            found.update(log_px_iwae=None, iwae_k=0)
        out.update(found)
    if dataset.factors_test is not None:
        angles = None if geometry is None else geometry.angles(torch.as_tensor(z_test))
        out["circular_corr"] = None if angles is None else circular_correlation(angles.numpy(), dataset.factors_test)
    return out


def fisher_lee(a: np.ndarray, b: np.ndarray) -> float:
    """The circular correlation of two angle samples (Fisher & Lee 1983), in [-1, 1]: +-1 exactly when
    a = +-b + c for a constant c, and unchanged by rotating either sample; its sign flips with a reflection.

    It is E[sin(a1 - a2) sin(b1 - b2)] / sqrt(E[sin^2(a1 - a2)] E[sin^2(b1 - b2)]) over pairs of samples, which
    expands to det(E[u v^T]) / sqrt(det E[u u^T] det E[v v^T]) with u = (cos a, sin a), v = (cos b, sin b); unlike
    Jammalamadaka's coefficient it needs no mean direction, so it holds for angles that cover the whole circle.
    """
    u = np.stack([np.cos(a), np.sin(a)], 1)
    v = np.stack([np.cos(b), np.sin(b)], 1)
    n = len(u)
    num = np.linalg.det(u.T @ v / n)
    den = np.sqrt(np.linalg.det(u.T @ u / n) * np.linalg.det(v.T @ v / n))
    return float(num / den) if den > 0 else 0.0


def circular_correlation(angles: np.ndarray, true: np.ndarray) -> float | None:
    """How well latent angles (N, n) recover the true ones (N, n), up to the torus's symmetries.

    Each true angle is paired with a combination M a of the latent angles, M an integer matrix with entries in
    {-1, 0, 1} and determinant +-1 (a relabelling, reflection or shear of the circles: the maps of the torus onto
    itself that a network may learn), rotations being free; the score is the worst |Fisher-Lee correlation| over
    the circles under the best M. None where the numbers of angles differ.
    """
    import itertools

    angles, true = np.asarray(angles, np.float64), np.asarray(true, np.float64)
    n = true.shape[1]
    if angles.shape[1] != n or n > 3:
        return None
    rows = [r for r in itertools.product((-1, 0, 1), repeat=n) if any(r)]
    score = {r: [abs(fisher_lee(angles @ np.array(r, np.float64), true[:, j])) for j in range(n)] for r in rows}
    best = 0.0
    for m in itertools.product(rows, repeat=n):
        if abs(round(np.linalg.det(np.array(m, np.float64)))) == 1:
            best = max(best, min(score[r][j] for j, r in enumerate(m)))
    return best


def embedding_metrics(dataset, z_train, z_test) -> dict:
    """The metrics of a map alone (each ``Metric`` of ``METRICS`` with an ``of_map``), for anything that places
    train and test samples (a model, UMAP, t-SNE): k-NN accuracy of test points fit on train points,
    trustworthiness and continuity on the fixed test subset."""
    return {m.key: m.of_map(dataset, z_train, z_test) for m in METRICS if m.of_map is not None}


def without_decoder() -> dict:
    """The metrics every run reports that a map without a decoder (UMAP, t-SNE) has no value for: None each."""
    return {m.key: None for m in METRICS if m.only is None and m.of_map is None and not m.of_run}


def neighbourhood_preservation(x, z, k: int = TRUST_K) -> np.ndarray:
    """(N,) per point, the share of its k nearest neighbours in input space that are among its k nearest on the
    map: 1 where the map keeps the point's neighbourhood, 0 where it keeps none of it. ``x`` (N, D), ``z`` (N, d)."""
    from sklearn.neighbors import NearestNeighbors

    x = to_unit_float(as_tensor(np.asarray(x))).reshape(len(x), -1).numpy()
    k = min(k, len(x) - 1)
    near_x = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    near_z = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z, return_distance=False)[:, 1:]
    return np.array([len(np.intersect1d(a, b)) / k for a, b in zip(near_x, near_z)])
