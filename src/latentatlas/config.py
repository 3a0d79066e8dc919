"""Every knob of a run and its default, in one place.

The field names are the CLI flags (``--batch-size``), the keys of a run's ``config.json`` and the sweep spec's keys.
The scikit-learn estimator uses the same names, except ``random_state`` for ``seed`` (scikit-learn's convention).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .errors import LatentAtlasError
from .geometries import GEOMETRIES
from .losses import LOSSES
from .nets import get_preset


@dataclass(frozen=True)
class RunConfig:
    preset: str | None = "deep-2d"  # a name from latentatlas.nets.PRESETS; None means "give the architecture"
    hidden_sizes: tuple[int, ...] | None = None  # encoder widths, the decoder mirrors them; None = the preset's
    geometry: str | None = None  # a name from latentatlas.geometries.GEOMETRIES; None = the preset's
    latent_dim: int | None = None  # None = the preset's
    loss: str = "bce"  # "bce" (the tutorial's) or "mse"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3  # Adam, as the tutorial
    seed: int = 0  # same seed, same machine -> identical weights
    data: str = "mnist-5k"  # a name from latentatlas.data.SOURCES or a path; mnist-5k works offline
    image_size: int | None = None  # folders of images only: resize each to image_size x image_size
    device: str = "auto"  # "auto" = CUDA when available, else CPU
    # "auto" = bf16 autocast (fp32 master weights) where the hardware runs it natively, else fp32.
    precision: str = "auto"
    extra: dict = field(default_factory=dict, compare=False, repr=False)  # free-form notes saved with the run

    def resolved(self) -> RunConfig:
        """Fill architecture fields from the preset and check every value; raise LatentAtlasError if one is wrong."""
        cfg = self
        if cfg.preset is not None:
            p = get_preset(cfg.preset)
            cfg = dataclasses.replace(
                cfg,
                hidden_sizes=p.hidden_sizes if cfg.hidden_sizes is None else cfg.hidden_sizes,
                geometry=p.geometry if cfg.geometry is None else cfg.geometry,
                latent_dim=p.latent_dim if cfg.latent_dim is None else cfg.latent_dim,
            )
        missing = [n for n in ("hidden_sizes", "geometry", "latent_dim") if getattr(cfg, n) is None]
        if missing:
            raise LatentAtlasError(f"no preset given, so {', '.join(missing)} must be set")
        cfg = dataclasses.replace(cfg, hidden_sizes=tuple(cfg.hidden_sizes))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        _check_choice("geometry", self.geometry, GEOMETRIES)
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("precision", self.precision, ("auto", "fp32", "bf16"))
        for name in ("epochs", "batch_size"):
            _check_int(name, getattr(self, name), low=1)
        _check_int("latent_dim", self.latent_dim, low=1)
        _check_int("seed", self.seed, low=0)
        if self.image_size is not None:
            _check_int("image_size", self.image_size, low=1)
        for width in self.hidden_sizes:
            _check_int("hidden_sizes", width, low=1)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise LatentAtlasError(f"lr={self.lr!r} is out of range: it must be a number in (0, 1]")
        GEOMETRIES[self.geometry](self.latent_dim)  # the geometry rejects a dimension it cannot take

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = None if self.hidden_sizes is None else list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise LatentAtlasError(f"unknown config keys {unknown}: valid keys are {sorted(names)}")
        d = dict(d)
        if d.get("hidden_sizes") is not None:
            d["hidden_sizes"] = tuple(d["hidden_sizes"])
        return cls(**d)


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise LatentAtlasError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise LatentAtlasError(f"{name}={value!r} is out of range: it must be an integer >= {low}")
