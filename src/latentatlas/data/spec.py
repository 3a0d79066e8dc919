"""A run's data as a spec: where it comes from, its image size, and the transforms that derive it.

The spec is stored in the run's ``config.json`` (its ``data``, ``image_size`` and ``transforms`` settings), so any
derived data set is rebuilt identically from the run folder. A transform is written ``NAME:KEY=VALUE:KEY=VALUE``
(lists comma-separated), e.g. ``holdout:classes=3,5`` or ``noise:sigma=0.3``; ``TRANSFORMS`` is the explicit
registry, and adding one is a small :class:`Transform` subclass and one entry there. Corruptions (noise,
salt-and-pepper, occlusion, rotation) are seeded, so a run's corrupted data are the same pixels at every reload.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import LatentAtlasError, unknown_name
from .corruptions import CORRUPTIONS, corrupt_images
from .dataset import Dataset


class Transform:
    """A deterministic change to a :class:`Dataset`; subclasses set ``name`` and ``keys`` (the parameters, each
    with its parser; those in ``defaults`` may be left out) and implement :meth:`apply`."""

    name: ClassVar[str]
    keys: ClassVar[dict[str, type]]
    defaults: ClassVar[dict[str, object]] = {}

    def __init__(self, **params):
        self.params = params

    def apply(self, dataset: Dataset) -> Dataset:
        raise NotImplementedError

    def __str__(self) -> str:
        """The canonical spelling, as stored in config.json."""
        def text(v):
            return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)

        return ":".join([self.name, *(f"{k}={text(self.params[k])}" for k in self.keys)])


class HoldOut(Transform):
    """Train without the given classes; the test set keeps them (for novelty detection and unseen-class maps)."""

    name = "holdout"
    keys = {"classes": tuple}

    def __init__(self, classes: tuple[int, ...]):
        if not classes:
            raise LatentAtlasError("holdout: give at least one class, e.g. holdout:classes=3")
        super().__init__(classes=tuple(sorted(set(classes))))

    def apply(self, dataset: Dataset) -> Dataset:
        classes = self.params["classes"]
        present = set(np.unique(dataset.y_train).tolist())
        unknown = [c for c in classes if c not in present]
        if unknown:
            raise LatentAtlasError(f"{self}: no class {unknown[0]} in {dataset.name}: its classes are "
                                   f"{', '.join(map(str, sorted(present)))}")
        if set(classes) >= present:
            raise LatentAtlasError(f"{self}: holding out every class of {dataset.name} leaves nothing to train on")
        keep = ~np.isin(dataset.y_train, classes)
        factors = None if dataset.factors_train is None else dataset.factors_train[keep]
        return dataclasses.replace(dataset, name=f"{dataset.name}+{self}", x_train=dataset.x_train[keep],
                                   y_train=dataset.y_train[keep], factors_train=factors)


def bernoulli(x):
    """Binary pixels drawn with probability the grey level (torch's global generator): one draw of a batch."""
    import torch

    return torch.bernoulli(x)


class Binarize(Transform):
    """Dynamic binarisation, as the VAE literature evaluates likelihoods: each training image's pixels are drawn
    anew as Bernoulli(grey level) every time it is used, and the test set is drawn once, from ``seed``, so its
    log-likelihoods are comparable between runs (a Bernoulli decoder is a true likelihood only on binary data)."""

    name = "binarize"
    keys = {"seed": int}

    def apply(self, dataset: Dataset) -> Dataset:
        x = dataset.x_test.astype(np.float32) / 255.0 if dataset.x_test.dtype == np.uint8 else dataset.x_test
        draw = np.random.default_rng(self.params["seed"]).random(x.shape, dtype=np.float32) < x
        return dataclasses.replace(dataset, name=f"{dataset.name}+{self}", x_test=draw.astype(np.uint8) * 255,
                                   draw_train=bernoulli)


def held_out(transforms) -> tuple[int, ...]:
    """The classes a data spec's transforms hold out of training (its ``holdout`` transforms), sorted."""
    return tuple(sorted({c for text in transforms if isinstance(t := parse_transform(text), HoldOut)
                         for c in t.params["classes"]}))


class Corrupt(Transform):
    """Corrupt the images of the test set (``split=test``, the default), the training set (``train``) or both,
    with a corruption of ``corruptions.CORRUPTIONS`` at one level, seeded (``seed``, default 0)."""

    defaults = {"split": "test", "seed": 0}
    SPLITS = {"test": ("test",), "train": ("train",), "both": ("train", "test")}

    def __init__(self, split: str = "test", seed: int = 0, **level):
        if split not in self.SPLITS:
            raise LatentAtlasError(f"{self.name}: split={split!r}: choose one of {', '.join(self.SPLITS)}")
        if seed < 0:
            raise LatentAtlasError(f"{self.name}: seed={seed} must be >= 0")
        (value,) = level.values()
        CORRUPTIONS[self.name].check_level(value)  # whether it fits the images is told by apply
        super().__init__(**level, split=split, seed=seed)

    @property
    def level(self):
        return self.params[CORRUPTIONS[self.name].level]

    def apply(self, dataset: Dataset) -> Dataset:
        shape = dataset.image_shape
        CORRUPTIONS[self.name].check(self.level, shape if len(shape) == 2 else None)
        changed = {}
        for split in self.SPLITS[self.params["split"]]:
            x = getattr(dataset, f"x_{split}")
            # Each split its own stream: noise on the test set does not depend on the training set's size.
            seed = 2 * self.params["seed"] + (split == "test")
            changed[f"x_{split}"] = corrupt_images(x, self.name, self.level, shape, seed=seed).numpy()
        return dataclasses.replace(dataset, name=f"{dataset.name}+{self}", **changed)


class Noise(Corrupt):
    name, keys = "noise", {"sigma": float, "split": str, "seed": int}


class SaltAndPepper(Corrupt):
    name, keys = "saltpepper", {"p": float, "split": str, "seed": int}


class Occlude(Corrupt):
    name, keys = "occlude", {"size": int, "split": str, "seed": int}


class Rotate(Corrupt):
    name, keys = "rotate", {"degrees": float, "split": str, "seed": int}


class Validation(Transform):
    """Carve a validation split out of the training set, stratified by label and seeded, and make it the data set's
    held-out split in place of the test set, which is left unread: what a sweep chooses on, so that the test set
    scores only the model chosen (``fraction`` of the training samples, default 0.2; ``seed``, default 0)."""

    name = "validation"
    keys = {"fraction": float, "seed": int}
    defaults = {"fraction": 0.2, "seed": 0}

    def __init__(self, fraction: float = 0.2, seed: int = 0):
        if not 0 < fraction < 1:
            raise LatentAtlasError(f"validation: fraction={fraction} must lie strictly between 0 and 1")
        if seed < 0:
            raise LatentAtlasError(f"validation: seed={seed} must be >= 0")
        super().__init__(fraction=fraction, seed=seed)

    def apply(self, dataset: Dataset) -> Dataset:
        from sklearn.model_selection import train_test_split

        y = dataset.y_train
        n_val = max(1, round(self.params["fraction"] * len(y)))
        if n_val >= len(y):
            raise LatentAtlasError(f"{self}: {len(y)} training samples leave none to train on")
        index = np.arange(len(y))
        _, counts = np.unique(y, return_counts=True)
        stratify = y if counts.min() >= 2 and n_val >= len(counts) else None  # else a plain seeded draw
        train, val = train_test_split(index, test_size=n_val, stratify=stratify, random_state=self.params["seed"])
        train, val = np.sort(train), np.sort(val)
        f = dataset.factors_train
        # Only the training split is read: the test set's fields are replaced, never looked at.
        return dataclasses.replace(dataset, name=f"{dataset.name}+{self}", x_train=dataset.x_train[train],
                                   y_train=y[train], x_test=dataset.x_train[val], y_test=y[val],
                                   factors_train=None if f is None else f[train],
                                   factors_test=None if f is None else f[val], values_test={})


TRANSFORMS: dict[str, type[Transform]] = {
    HoldOut.name: HoldOut,
    Noise.name: Noise,
    SaltAndPepper.name: SaltAndPepper,
    Occlude.name: Occlude,
    Rotate.name: Rotate,
    Binarize.name: Binarize,
    Validation.name: Validation,
}


def parse_transform(text: str) -> Transform:
    """A transform from its spelling ``NAME:KEY=VALUE...``; anything else is refused in one line."""
    if not isinstance(text, str) or not text.strip():
        raise LatentAtlasError(f"transform {text!r}: write it as NAME:KEY=VALUE, e.g. holdout:classes=3")
    name, *pairs = text.strip().split(":")
    cls = TRANSFORMS.get(name)
    if cls is None:
        raise unknown_name("transform", name, TRANSFORMS)
    params = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or key not in cls.keys:
            raise LatentAtlasError(f"transform {text!r}: {pair!r} is not KEY=VALUE with KEY one of "
                                   f"{', '.join(cls.keys)}")
        params[key] = _parse_value(text, key, value, cls.keys[key])
    missing = [k for k in cls.keys if k not in params and k not in cls.defaults]
    if missing:
        raise LatentAtlasError(f"transform {text!r}: give {', '.join(missing)} (e.g. {name}:{missing[0]}=...)")
    return cls(**params)


def _parse_value(text: str, key: str, value: str, kind: type):
    try:
        if kind is tuple:
            return tuple(int(v) for v in value.split(",") if v.strip())
        return kind(value.strip()) if kind is not str else value.strip()
    except ValueError:
        wanted = "comma-separated integers" if kind is tuple else kind.__name__
        raise LatentAtlasError(f"transform {text!r}: {key}={value!r} must be {wanted}") from None


@dataclass(frozen=True)
class DataSpec:
    """Where a run's data come from and how they are derived: ``load()`` gives the same data set every time."""

    source: str  # a name in SOURCES or a path
    image_size: int | None = None  # folders of images: resize to image_size x image_size
    transforms: tuple[str, ...] = ()  # applied in order, each as parse_transform reads it
    # scaling.SCALING_CHOICES: fitted on the training split the transforms leave, so that the test split a
    # validation split replaces is never read
    scaling: str = "auto"

    def load(self) -> Dataset:
        from .dataset import scale
        from .sources import load_dataset

        dataset = load_dataset(self.source, image_size=self.image_size)
        for text in self.transforms:
            dataset = parse_transform(text).apply(dataset)
        return scale(dataset, self.scaling)
