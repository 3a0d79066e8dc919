"""Colouring points by a value rather than by class: a number (viridis, with a colour bar) or an angle (a cyclic
map, twilight, whose two ends meet; for two angles, the phases of a torus, a 2-D cyclic scheme), as ``umap.plot``
colours by ``values``. The figures, the report and the explorer all take their colours from :class:`ColorBy`.

``color_by`` is spelt the same everywhere (CLI ``--color-by``, ``Run.figures``, ``Run.explore``,
``Autoencoder.explore``): ``None`` for the data's own default (its true angles where a synthetic source knows them,
else the class), ``"class"``, the name of a per-sample array of the data (``heading`` for ``heading_test`` in an
``.npz``) with ``:circular`` for angles in radians (``:circular=360`` for degrees), an array of one value per test
point, or a :class:`ColorBy`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

from ..errors import LatentAtlasError

KINDS = ("continuous", "circular")
CONTINUOUS_MAP, CIRCULAR_MAP = "viridis", "twilight"  # perceptually even; twilight's two ends are one colour


@dataclass(frozen=True)
class ColorBy:
    """One value per point to colour it by.

    Parameters
    ----------
    values : array of shape (N,), or (N, 2) for two angles (a torus's phases; circular only)
    kind : "continuous" or "circular" (angles, periodic with ``period``)
    label : what the values are, for the colour bar's title
    period : the period of circular values (2 pi for radians, 360 for degrees)

    Examples
    --------
    >>> ColorBy(np.array([0.0, 3.0]), "circular", "heading").rgb().shape
    (2, 3)
    """

    values: np.ndarray
    kind: str = "continuous"
    label: str = "value"
    period: float = 2 * math.pi

    def __post_init__(self):
        v = np.asarray(self.values)
        if self.kind not in KINDS:
            raise LatentAtlasError(f"color_by: kind {self.kind!r} is unknown: choose {' or '.join(KINDS)}")
        if v.dtype.kind not in "biuf" or v.ndim not in (1, 2) or (v.ndim == 2 and v.shape[1] not in (1, 2)):
            raise LatentAtlasError(f"color_by {self.label!r}: give numbers, one per point (N,) or two angles (N, 2); "
                                   f"got shape {v.shape} dtype {v.dtype}")
        if v.ndim == 2 and v.shape[1] == 2 and self.kind != "circular":
            raise LatentAtlasError(f"color_by {self.label!r}: two values per point are coloured as two angles only "
                                   "(kind 'circular')")
        if not np.isfinite(v).all():
            raise LatentAtlasError(f"color_by {self.label!r}: the values contain NaN or infinite numbers")
        if not (isinstance(self.period, (int, float)) and self.period > 0):
            raise LatentAtlasError(f"color_by {self.label!r}: period={self.period!r} must be a number > 0")
        object.__setattr__(self, "values", v.astype(np.float64).reshape(len(v), -1).squeeze(1) if v.ndim == 2
                           and v.shape[1] == 1 else v.astype(np.float64))

    @property
    def two_angles(self) -> bool:
        return self.values.ndim == 2

    def take(self, index) -> ColorBy:
        """The values of the points ``index`` (a subset drawn)."""
        return ColorBy(self.values[index], self.kind, self.label, self.period)

    def range(self) -> tuple[float, float]:
        """The values the colours span: one period for angles, the data's range for numbers."""
        if self.kind == "circular":
            lo = -self.period / 2 if self.values.min() < 0 else 0.0
            return lo, lo + self.period
        lo, hi = float(self.values.min()), float(self.values.max())
        return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)

    def rgb(self) -> np.ndarray:
        """(N, 3) colours in [0, 1]."""
        if self.two_angles:
            return torus_rgb(*(2 * np.pi * self.values.T / self.period))
        lo, hi = self.range()
        t = (self.values - lo) / (hi - lo)
        return self.cmap()(np.mod(t, 1.0) if self.kind == "circular" else t)[:, :3]

    def cmap(self):
        import matplotlib

        return matplotlib.colormaps[CIRCULAR_MAP if self.kind == "circular" else CONTINUOUS_MAP]

    def ramp(self, n: int = 9) -> list[str]:
        """CSS colours along the colour bar (one value per point only), for the explorer's legend."""
        return [f"rgb({r},{g},{b})" for r, g, b in np.round(255 * self.cmap()(np.linspace(0, 1, n))[:, :3]).astype(int)]

    def key_png(self, size: int = 64) -> bytes:
        """The 2-D scheme as a small square PNG (angle 1 across, angle 2 up), for the explorer's legend."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        plt.imsave(buf, torus_key(size), format="png")
        return buf.getvalue()

    def legend(self, fig, ax) -> None:
        """A colour bar beside ``ax`` titled with the label; for two angles, the scheme as a small square key."""
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        from .plots import mpl_text

        if self.two_angles:
            key = ax.inset_axes([1.12, 0.3, 0.32, 0.4])
            lo, hi = self.range()
            key.imshow(torus_key(64), extent=(lo, hi, lo, hi))
            key.set_title(mpl_text(self.label), fontsize=8)
            key.set_xlabel("angle 1", fontsize=7)
            key.set_ylabel("angle 2", fontsize=7)
            key.tick_params(labelsize=6)
            return
        bar = fig.colorbar(ScalarMappable(Normalize(*self.range()), self.cmap()), ax=ax, shrink=0.8)
        bar.set_label(mpl_text(self.label + (" (circular)" if self.kind == "circular" else "")))


def torus_key(size: int) -> np.ndarray:
    """(size, size, 3) the 2-D scheme over one period of each angle, angle 2 growing upwards."""
    a = np.linspace(-np.pi, np.pi, size)
    a1, a2 = np.meshgrid(a, a[::-1])
    return torus_rgb(a1.ravel(), a2.ravel()).reshape(size, size, 3)


def torus_rgb(a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """(N, 3) colours of two angles, periodic in each and one-to-one: the ring torus placed in a luma/chroma
    space (YUV), hue going round with ``a1``, and ``a2`` turning the point round the tube (lightness and
    saturation), so no two phases share a colour and both edges of the square chart wrap."""
    ring, tube = 0.12, 0.05  # with the lightness below, every colour lies inside the RGB cube: none clipped
    chroma = ring + tube * np.cos(a2)
    y = 0.5 + 0.15 * np.sin(a2)
    u, v = chroma * np.cos(a1), chroma * np.sin(a1)
    rgb = np.stack([y + 1.140 * v, y - 0.395 * u - 0.581 * v, y + 2.032 * u], axis=1)
    return np.clip(rgb, 0.0, 1.0)


def parse_color_by(text: str) -> tuple[str, str, float]:
    """``NAME``, ``NAME:circular``, ``NAME:circular=PERIOD`` or ``NAME:continuous`` -> (name, kind, period)."""
    name, _, kind = text.partition(":")
    kind, _, period = kind.partition("=")
    kind = kind or "continuous"
    if not name or kind not in KINDS:
        raise LatentAtlasError(f"color_by {text!r}: write NAME, NAME:circular (angles in radians), "
                               "NAME:circular=360 (degrees) or NAME:continuous")
    try:
        p = float(period) if period else 2 * math.pi
    except ValueError:
        p = -1.0
    if not p > 0 or kind != "circular" and period:
        raise LatentAtlasError(f"color_by {text!r}: a period is a number > 0 after :circular= (360 for degrees)")
    return name, kind, p


def resolve(color_by, dataset, n: int) -> ColorBy | None:
    """What the ``n`` test points of ``dataset`` are coloured by: a :class:`ColorBy`, or None for their class."""
    if color_by is None:
        f = dataset.factors_test
        if f is not None and f.shape[1] in (1, 2) and len(f) == n:  # a synthetic source's true angles (radians)
            return ColorBy(f, "circular", dataset.factors_label)
        return None
    if isinstance(color_by, str):
        if color_by == "class":
            return None
        name, kind, period = parse_color_by(color_by)
        values = dataset.values_test.get(name)
        if values is None:
            known = ", ".join(["class", *dataset.values_test])
            raise LatentAtlasError(f"color_by {name!r}: {dataset.name} has no such per-sample values for its test set "
                                   f"(an .npz gives them as {name}_test): choose {known}, or give the values")
        colour = ColorBy(values, kind, name, period)
    elif isinstance(color_by, ColorBy):
        colour = color_by
    else:
        colour = ColorBy(np.asarray(color_by))
    if len(colour.values) != n:
        raise LatentAtlasError(f"color_by {colour.label!r}: {len(colour.values)} values for {n} points: give one "
                               "per test point")
    return colour
