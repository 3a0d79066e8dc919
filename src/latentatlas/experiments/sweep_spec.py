"""A sweep's spec: what to search and what to fix, read from TOML and checked before anything runs.

Under ``[search]`` a list is a grid axis and a table ``{low, high, log}`` is sampled; ``[fixed]`` holds the settings
every trial shares; ``trials = N`` (at the top or under ``[search]``) is the number of trials when something is
sampled. A grid alone runs every combination once. Keys are RunConfig's fields; every value is checked against
RunConfig's types and, at each grid point and each range's ends, against RunConfig's own checks.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import types
import typing
from pathlib import Path

from ..config import SETTINGS, RunConfig, setting_type
from ..errors import LatentAtlasError, unknown_name

# What every trial is scored on: a validation split carved from its training set, stratified and seeded (a data
# transform, so each trial's config.json records it). The test set scores the chosen trial alone, after the choice.
VALIDATION = "validation:fraction=0.2:seed=0"

# Every grid point is checked now and queued as a trial before the first runs: past this, a grid is a mistake (a
# range written as a list?) that would spend minutes queueing before it failed or began.
MAX_GRID_POINTS = 1000


@dataclasses.dataclass(frozen=True)
class Spec:
    grid: dict[str, list]
    sampled: dict[str, dict]
    fixed: dict
    trials: int | None

    @property
    def n_trials(self) -> int:
        return self.trials if self.sampled else len(list(itertools.product(*self.grid.values())))

    def to_json(self) -> dict:
        return {"search": {**self.grid, **{k: {"log": False, **v} for k, v in self.sampled.items()}},
                "fixed": self.fixed, "trials": self.trials, "validation": VALIDATION}

    def differences(self, recorded) -> list[str]:
        """What changed from ``recorded`` (a ``to_json``) to this spec, one item per setting; the number of trials
        may change and is not counted."""
        ours = self.to_json()
        recorded = recorded if isinstance(recorded, dict) else {}
        diffs = []
        for section in ("search", "fixed"):
            old, new = recorded.get(section) or {}, ours[section]
            for k in sorted(set(old) | set(new)):
                # As JSON, so that 1 and 1.0 differ: Optuna takes them as an integer and a float range.
                a, b = (json.dumps(d[k], sort_keys=True) if k in d else "unset" for d in (old, new))
                if a != b:
                    diffs.append(f"[{section}] {k}: {a} -> {b}")
        return diffs

    def suggest(self, trial) -> dict:
        """The trial's settings: one value of each grid axis, one draw from each range (an Optuna trial)."""
        params = {k: trial.suggest_categorical(k, v) for k, v in self.grid.items()}
        for k, v in self.sampled.items():
            ints = isinstance(v["low"], int) and isinstance(v["high"], int)
            suggest = trial.suggest_int if ints else trial.suggest_float
            params[k] = suggest(k, v["low"], v["high"], log=bool(v.get("log", False)))
        return params

    def config(self, params: dict) -> RunConfig:
        """The run config of one trial: the fixed settings with the trial's ``params`` over them, its data's
        held-out split the validation split (``VALIDATION``) in place of the test set."""
        cfg = RunConfig.from_dict({**self.fixed, **params})  # TOML's lists become the tuples RunConfig holds
        return dataclasses.replace(cfg, transforms=(*cfg.transforms, VALIDATION))


def read_spec(path: str | Path) -> Spec:
    """Parse and check a sweep spec; every key must be a RunConfig field."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise LatentAtlasError(f"{path}: not a readable TOML sweep spec ({e})") from None
    unknown_top = set(raw) - {"search", "fixed", "trials"}
    if unknown_top:
        raise LatentAtlasError(f"{path}: unknown sections {sorted(unknown_top)}: use [search], [fixed] and trials = N")
    if not isinstance(raw.get("search", {}), dict) or not isinstance(raw.get("fixed", {}), dict):
        raise LatentAtlasError(f"{path}: [search] and [fixed] must be tables (sections)")
    search, fixed = dict(raw.get("search", {})), raw.get("fixed", {})
    trials = search.pop("trials", raw.get("trials"))  # TOML puts "trials = N" written under [search] inside it
    fields = {f.name for f in SETTINGS}
    for key in [*search, *fixed]:
        if key not in fields:
            raise LatentAtlasError(f"{path}: {unknown_name('setting', key, sorted(fields))}")
    grid = {k: v for k, v in search.items() if isinstance(v, list)}
    sampled = {k: v for k, v in search.items() if isinstance(v, dict)}
    for k, v in search.items():
        is_range = (isinstance(v, dict) and not set(v) - {"low", "high", "log"} and {"low", "high"} <= set(v)
                    and all(_is_number(v[end]) for end in ("low", "high")) and isinstance(v.get("log", False), bool))
        if k not in grid and not is_range:
            raise LatentAtlasError(f"{path}: [search] {k} must be a list (grid) or {{low = a, high = b, log = true|false}} with numbers a < b (one value goes under [fixed])")
    # Types first, so that the range checks below and RunConfig's own checks compare like with like.
    for k, v in fixed.items():
        _check_type(path, f"[fixed] {k}", k, v)
    for k, values in grid.items():
        for v in values:
            _check_type(path, f"[search] {k}", k, v)
    for k, v in sampled.items():
        _check_type(path, f"[search] {k}.low", k, v["low"])
        _check_type(path, f"[search] {k}.high", k, v["high"])
        if not v["low"] < v["high"]:
            raise LatentAtlasError(f"{path}: [search] {k} must be a list (grid) or {{low = a, high = b, log = true|false}} with a < b")
        if v.get("log") and v["low"] <= 0:
            raise LatentAtlasError(f"{path}: [search] {k}: a log range needs low > 0")
    if any(not v for v in grid.values()) or (not grid and not sampled):
        raise LatentAtlasError(f"{path}: [search] needs at least one non-empty list or range")
    if sampled and (not isinstance(trials, int) or isinstance(trials, bool) or trials < 1):
        raise LatentAtlasError(f"{path}: sampled settings need trials = N (an integer >= 1)")
    for k, values in grid.items():
        seen = [json.dumps(v) for v in values]  # as JSON, so that 1 and 1.0 differ, as they do to Optuna
        twice = [text for i, text in enumerate(seen) if text in seen[:i]]
        if twice:
            raise LatentAtlasError(f"{path}: [search] {k} lists {twice[0]} twice: each grid point runs once")
    n_points = math.prod(len(v) for v in grid.values())
    if n_points > MAX_GRID_POINTS:
        raise LatentAtlasError(f"{path}: the grid has {n_points:,} points, more than {MAX_GRID_POINTS:,}: sample the "
                               "larger axes instead ({low = a, high = b} and trials = N)")
    spec = Spec(grid, sampled, fixed, trials)
    for combo in itertools.product(*grid.values()):  # fail now, not in trial 37: each grid point, each range's ends
        for end in ("low", "high"):
            try:
                spec.config(dict(zip(grid, combo)) | {k: v[end] for k, v in sampled.items()}).resolved()
            except LatentAtlasError as e:
                raise LatentAtlasError(f"{path}: {e}") from None
    return spec


def _check_type(path: Path, where: str, key: str, value) -> None:
    hint = setting_type(next(f for f in SETTINGS if f.name == key))
    if not _has_type(value, hint):
        name = hint.__name__ if isinstance(hint, type) else str(hint)
        raise LatentAtlasError(f"{path}: {where} = {json.dumps(value, default=str)} has the wrong type: {key} takes {name}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _has_type(value, hint) -> bool:
    """Whether a TOML value fits a RunConfig annotation (str, int, float, tuple[int, ...], X | None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, a) for a in args)
    if origin is tuple:  # tuple[int, ...]: TOML gives a list
        return isinstance(value, list) and all(_has_type(v, args[0]) for v in value)
    if isinstance(value, bool):  # a bool is an int to Python, never a setting here
        return hint is bool
    return isinstance(value, (int, float) if hint is float else hint)
