"""Which reconstruction loss fits data that are not pixels, once scaling=auto has min-max scaled them (issue 27)?

The decoder ends in a sigmoid, so min-max scaled data in [0, 1] can be fitted by BCE (the tutorial's loss, the
default) or by MSE (``loss="mse"``). Three non-image matrices, deep-2d, 2,000 steps or 20 epochs, seeds 0-2: test
5-NN of the class from the 2-D codes (fitted on the training codes) and R^2 of the reconstruction in scaled units.

    PYTHONPATH=src python benchmarks/scaling_loss.py
"""

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from latentatlas import Autoencoder, hardware


def spike_counts(n=6000, k=48, seed=0):
    """Head-direction cells (von Mises tuning up to ~20 Hz, gamma noise) counted in 100 ms bins; labels: heading
    sector of eight."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-np.pi, np.pi, n)
    pref = np.linspace(-np.pi, np.pi, k, endpoint=False)
    rates = 20 * np.exp(2 * (np.cos(theta[:, None] - pref) - 1)) + rng.gamma(2.0, 0.5, (n, k))
    sector = np.floor((theta + np.pi) / (2 * np.pi) * 8).astype(np.int64) % 8
    counts = np.random.default_rng(0).poisson(rates.astype(np.float32) * 0.1).astype(np.float32)
    return counts[:5000], sector[:5000], counts[5000:], sector[5000:]


def table_set(loader):
    X, y = loader(return_X_y=True)
    a, b, c, d = train_test_split(X.astype(np.float32), y, test_size=0.3, random_state=0, stratify=y)
    return a, c, b, d


def main():
    print(hardware.header(), flush=True)
    sets = {"spike counts": spike_counts(), "breast cancer": table_set(load_breast_cancer), "wine": table_set(load_wine)}
    for name, (xtr, ytr, xte, yte) in sets.items():
        for loss in ("bce", "mse"):
            accs, r2s = [], []
            for seed in (0, 1, 2):
                ae = Autoencoder(preset="deep-2d", loss=loss, epochs=max(20, 2000 * 128 // len(xtr)),
                                 random_state=seed, verbose=False).fit(xtr)
                z, zt = ae.transform(xtr), ae.transform(xte)
                accs.append(KNeighborsClassifier(5).fit(z, ytr).score(zt, yte))
                err = (ae.inverse_transform(zt) - xte) / ae.scaling_.data_range_
                r2s.append(1 - (err ** 2).sum() / (((xte - xte.mean(0)) / ae.scaling_.data_range_) ** 2).sum())
            print(f"{name:14s} {loss}: 5-NN {' '.join(f'{a:.3f}' for a in accs)}   "
                  f"R^2 {' '.join(f'{r:.3f}' for r in r2s)}", flush=True)


if __name__ == "__main__":
    main()
