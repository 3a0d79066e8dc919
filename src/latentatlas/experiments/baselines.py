"""Baselines for compare: methods fitted on the training images and scored by exactly the models' protocol.

``pca`` (2 and 3 components, an autoencoder with a linear decoder), ``umap`` (umap-learn) and ``tsne`` (openTSNE,
which places the test images into the embedding fitted on the training images). UMAP and t-SNE have no decoder,
so only the map's metrics (``metrics.embedding_metrics``) describe them.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..errors import LatentAtlasError, unknown_name
from ..geometries import get_geometry
from ..metrics import embedding_metrics, encode, evaluate, without_decoder
from ..model import Output
from .._tensors import as_tensor, to_unit_float

PCA_COMPONENTS = (2, 3)


class PCAAutoencoder(nn.Module):
    """PCA written as an autoencoder, so that ``metrics.evaluate`` scores it by exactly the models' protocol.

    encode = project onto the components; the reconstruction is ``inverse_transform`` clipped to (0, 1), given as
    logits (BCE needs probabilities; the clip is the only change to PCA's output). Its parameters are the
    components and the mean.
    """

    def __init__(self, components: np.ndarray, mean: np.ndarray):
        super().__init__()
        self.components = nn.Parameter(torch.as_tensor(components, dtype=torch.float32))  # (k, D)
        self.mean = nn.Parameter(torch.as_tensor(mean, dtype=torch.float32))  # (D,)
        self.geometry = get_geometry("euclidean", len(components))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) @ self.components.T

    def forward(self, x: torch.Tensor) -> Output:
        z = self.encode(x)
        p = (z @ self.components + self.mean).clamp(1e-7, 1 - 1e-7)
        return Output(torch.logit(p), z, None)


def _fit_pca(n_components: int, x_train: np.ndarray, x_test: np.ndarray, seed: int):
    from sklearn.decomposition import PCA

    # Exact either way, so no seed is needed. Where the images are small, from the covariance matrix in float64: on
    # Fashion-MNIST 0.5 s against 2.9 s for the float32 data's SVD, with the float64 SVD's variances to 8 digits.
    small = x_train.shape[1] <= 1000
    pca = PCA(n_components=n_components, svd_solver="covariance_eigh" if small else "full").fit(
        x_train.astype(np.float64) if small else x_train)
    model = PCAAutoencoder(pca.components_, pca.mean_)
    return encode(model, x_train), encode(model, x_test), model  # the latents evaluate would compute


def _fit_umap(x_train: np.ndarray, x_test: np.ndarray, seed: int):
    import umap

    # n_jobs=1: umap-learn runs a seeded fit on one thread (it overrides any other n_jobs, with a warning).
    reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1)
    return reducer.fit_transform(x_train), reducer.transform(x_test), None


def _fit_tsne(x_train: np.ndarray, x_test: np.ndarray, seed: int):
    import openTSNE

    embedding = openTSNE.TSNE(n_components=2, n_jobs=_cores(), random_state=seed).fit(x_train)
    return np.asarray(embedding), np.asarray(embedding.transform(x_test)), None  # test points placed into it


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A method fitted on the training images that places train and test images in a low-dimensional space."""

    name: str  # its row in the table
    fit: Callable  # (x_train, x_test, seed) -> (z_train, z_test, model with a decoder or None); x: (N, D) in [0, 1]
    seeded: bool  # stochastic: fitted once per seed, as the models are trained
    module: str | None = None  # the library it needs (an optional extra), imported only when it is fitted


EXTRA = "maps"  # pip install "latentatlas[maps]": umap-learn (openTSNE is a dependency: atlas-2d lays out with it)
BASELINES: dict[str, tuple[Baseline, ...]] = {  # a name given to compare -> the rows it adds
    "pca": tuple(Baseline(f"pca-{k}", partial(_fit_pca, k), seeded=False) for k in PCA_COMPONENTS),
    "umap": (Baseline("umap-2", _fit_umap, seeded=True, module="umap"),),
    "tsne": (Baseline("tsne-2", _fit_tsne, seeded=True, module="openTSNE"),),
}


@dataclasses.dataclass
class Fitted:
    """A baseline fitted on a data set: its latents, its model where it has a decoder, and its fit time."""

    z_train: np.ndarray  # (N_train, dim)
    z_test: np.ndarray  # (N_test, dim)
    model: nn.Module | None
    seconds: float  # fit + transform of the training and the test images


@dataclasses.dataclass(frozen=True)
class BaselineMap:
    """A 2-D baseline's map of the test images (its first seed's), drawn beside the models' maps by compare."""

    name: str  # its row in the table
    seed: int | None  # None: an exact method, fitted once
    z_test: np.ndarray  # (N_test, 2)
    y_test: np.ndarray  # (N_test,)
    decodes: bool  # it has a decoder (PCA's is linear); UMAP and t-SNE have none


def resolve_baselines(baselines: str | Sequence[str], pca: bool | None = None) -> list[str]:
    """Check baseline names (a list, or one comma-separated string) and that their libraries are installed.

    ``pca`` is the deprecated switch: False removes "pca", True adds it.
    """
    names = [b.strip() for b in baselines.split(",")] if isinstance(baselines, str) else list(baselines)
    names = [b for b in names if b]
    if pca is False:
        names = [b for b in names if b != "pca"]
    elif pca and "pca" not in names:
        names.insert(0, "pca")
    for name in names:
        if name not in BASELINES:
            raise unknown_name("baseline", name, BASELINES, several=True)
        if names.count(name) > 1:
            raise LatentAtlasError(f"baseline {name!r} given twice: give each baseline once")
        for module in {b.module for b in BASELINES[name] if b.module}:
            if importlib.util.find_spec(module) is None:  # found without importing it (umap takes seconds)
                raise _missing(name, module)
    return names


def fit_baseline(baseline: Baseline, dataset: Dataset, seed: int = 0) -> Fitted:
    """Fit ``baseline`` on the training images and embed the training and the test images, timed."""
    if baseline.module:  # imported here, so that its import time is not fit time
        try:
            importlib.import_module(baseline.module)
        except ImportError:
            raise _missing(baseline.name, baseline.module) from None
    x_train, x_test = (to_unit_float(as_tensor(dataset.flat(s)[0])).numpy() for s in ("train", "test"))  # (N, D)
    start = time.perf_counter()
    z_train, z_test, model = baseline.fit(x_train, x_test, seed)
    seconds = time.perf_counter() - start
    return Fitted(np.asarray(z_train, np.float32), np.asarray(z_test, np.float32), model, seconds)


def baseline_metrics(fitted: Fitted, dataset: Dataset) -> dict:
    """A fitted baseline scored by the models' protocol (``metrics.evaluate`` on its latents, or for a map without
    a decoder ``metrics.embedding_metrics``: its test BCE, MSE and parameter count are None, null in compare.json
    and "-" in the table), with its fit time."""
    if fitted.model is None:
        row = {**without_decoder(), **embedding_metrics(dataset, fitted.z_train, fitted.z_test)}
    else:
        row = evaluate(fitted.model, dataset, fitted.z_train, fitted.z_test)
    return {**row, "train_seconds": fitted.seconds}


def pca_metrics(dataset: Dataset, n_components: int) -> dict:
    """PCA with ``n_components`` fitted on the training images, scored like every model (``metrics.evaluate``),
    without its fit time (``train_seconds`` None; compare's PCA rows carry it)."""
    fitted = fit_baseline(Baseline(f"pca-{n_components}", partial(_fit_pca, n_components), seeded=False), dataset)
    return {**baseline_metrics(fitted, dataset), "train_seconds": None}


def _missing(name: str, module: str) -> LatentAtlasError:
    return LatentAtlasError(f"baseline {name!r} needs {module}, which is not installed: "
                            f"pip install \"latentatlas[{EXTRA}]\"")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
