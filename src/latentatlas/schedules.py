"""Learning-rate schedules and training recipes, each an explicit registry.

A schedule is the learning rate's factor at each step of a run, as a function of the step and the run's number of
steps; the optimizer factory (``latentatlas.train.Adam``) applies it. A recipe is a named set of the settings that
say how a model is trained (epochs, batch size, learning rate, schedule): ``tutorial`` is the tutorial's own, and
the settings' defaults; ``fast`` is the fastest recipe measured to reach the tutorial loop's test BCE and 5-NN
accuracy (BENCHMARKS.md, "Time to quality").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import LatentAtlasError

WARMUP = 0.3  # one-cycle: the share of the run that rises to the peak (as torch's OneCycleLR and fast.ai)
START = 1 / 25  # one-cycle: the first step's factor (OneCycleLR's div_factor)
END = 1e-4  # one-cycle: the last step's factor, relative to the start (OneCycleLR's final_div_factor)
COSINE_WARMUP = 0.05  # cosine: the share of the run that rises linearly from zero before the cosine descent


def _cos_between(a: float, b: float, t: float) -> float:
    """From a (t = 0) to b (t = 1) along half a cosine."""
    return b + (a - b) * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0))) / 2


def constant(step: int, total: int) -> float:
    return 1.0


def one_cycle(step: int, total: int) -> float:
    """Smith's one-cycle, as torch's ``OneCycleLR`` (without momentum cycling, which would change Adam's betas):
    up from START to 1 over the first WARMUP of the run, then down to START * END, both along a cosine."""
    peak = WARMUP * total - 1  # OneCycleLR's end of the first phase (a float step)
    if step <= peak:
        return _cos_between(START, 1.0, step / peak)
    return _cos_between(1.0, START * END, (step - peak) / (total - 1 - peak))


def cosine(step: int, total: int) -> float:
    """Linear warm-up from 0 over the first COSINE_WARMUP of the run, then a cosine descent to 0."""
    warm = max(1, round(COSINE_WARMUP * total))
    if step < warm:
        return (step + 1) / warm
    return _cos_between(1.0, 0.0, (step - warm) / max(1, total - warm))


SCHEDULES = {"constant": constant, "one-cycle": one_cycle, "cosine": cosine}  # the ``lr_schedule`` setting


def get_schedule(name: str):
    try:
        return SCHEDULES[name]
    except (KeyError, TypeError):
        raise LatentAtlasError(f"unknown lr_schedule {name!r}: choose one of {', '.join(SCHEDULES)}") from None


@dataclass(frozen=True)
class Recipe:
    """The settings a recipe fills where they are not given; ``presets`` holds, per preset, the settings measured
    to do better for that preset than the recipe's own."""

    epochs: int
    batch_size: int
    lr: float
    lr_schedule: str
    description: str
    presets: dict[str, dict] = field(default_factory=dict, compare=False, hash=False)

    def settings(self, preset: str | None = None) -> dict:
        own = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "lr_schedule": self.lr_schedule}
        return {**own, **self.presets.get(preset, {})}


RECIPES: dict[str, Recipe] = {
    # The tutorial's: Adam at 1e-3, batch 128, 10 epochs. Its values are the settings' defaults (a test keeps it so).
    "tutorial": Recipe(10, 128, 1e-3, "constant", "the tutorial's: batch 128, Adam at 1e-3, 10 epochs"),
    # The fewest epochs measured to reach the tutorial loop's test BCE and 5-NN on Fashion-MNIST (BENCHMARKS.md):
    # 5 epochs at 3e-3 reached its BCE but fell short on 5-NN (0.674 against 0.682 for deep-2d), 6 at 5e-3 reached both.
    # thick-s2's wide layers make better use of batches of 256 (4.6 s an epoch against 5.9 at 128, 2 cores), and 3
    # such epochs reached its 5-epoch loop's quality: BCE 0.3211, 5-NN 0.695 against 0.3237, 0.6915 (seed 0); the
    # small networks fell short that way (deep-2d: 0.3269, 0.649 against 0.3233, 0.6763).
    "fast": Recipe(6, 128, 5e-3, "one-cycle", "batch 128, Adam peaking at 5e-3 under one-cycle, 6 epochs (thick-s2: "
                   "3 epochs of batch 256)", presets={"thick-s2": {"epochs": 3, "batch_size": 256}}),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise LatentAtlasError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}") from None
