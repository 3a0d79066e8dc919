"""Sweeps over architectures and hyper-parameters on Optuna: many processes, many machines, one study.

The spec is TOML. Under ``[search]`` a list is a grid axis and a table ``{low, high, log}`` is sampled; ``[fixed]``
holds the settings every trial shares; ``trials = N`` (at the top or under ``[search]``) is the number of trials
when something is sampled. A grid alone runs every combination once. Each trial is an ordinary run folder, ``OUT/trials/NNNN``.

Storage is an SQLite file in the sweep folder by default; give ``postgresql://...`` to let workers on several
machines join one study (each machine runs the same command). Workers send heartbeats: a trial whose worker died is
marked failed after the grace period and tried again, so restarting the sweep completes it.

A sweep is one spec: the sweep folder (``spec.json``) and the study (a user attribute) record it, and a different
spec is refused rather than mixed in. Only ``trials = N`` may change, to sample more (or fewer) trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import multiprocessing as mp
import random
import re
import shutil
import sys
import threading
import time
import types
import typing
import warnings
from pathlib import Path

from ._io import atomic_write_json
from ._table import text_table
from .config import RunConfig
from .errors import LatentAtlasError

OBJECTIVE = "bce_test"  # minimised
HEARTBEAT_S, GRACE_S = 5, 20
SPEC_FILE = "spec.json"  # the sweep folder's record of its spec


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
                "fixed": self.fixed, "trials": self.trials}


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
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"extra"}
    for key in [*search, *fixed]:
        if key not in fields:
            raise LatentAtlasError(f"{path}: unknown setting {key!r}: valid settings are {', '.join(sorted(fields))}")
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
    spec = Spec(grid, sampled, fixed, trials)
    for combo in itertools.product(*grid.values()):  # fail now, not in trial 37: each grid point, each range's ends
        for end in ("low", "high"):
            try:
                _config(spec, dict(zip(grid, combo)) | {k: v[end] for k, v in sampled.items()}).resolved()
            except LatentAtlasError as e:
                raise LatentAtlasError(f"{path}: {e}") from None
    return spec


def _check_type(path: Path, where: str, key: str, value) -> None:
    hint = typing.get_type_hints(RunConfig)[key]
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


def _config(spec: Spec, params: dict) -> RunConfig:
    values = {**spec.fixed, **params}
    if values.get("hidden_sizes") is not None:
        values["hidden_sizes"] = tuple(values["hidden_sizes"])
    return RunConfig.from_dict(values)


def sweep(spec_path: str | Path, out: str | Path, storage: str | None = None, workers: int = 1,
          echo=print) -> list[dict]:
    """Run (or continue) the sweep; returns one row per trial.

    The study, and every grid point as a waiting trial, are created here once, before any worker starts.
    Everything is checked before anything is written: a bad spec or storage, or a spec other than the one the
    folder or the study was started with, raise ``LatentAtlasError`` and leave the disk as it was.
    ``echo`` gets one line per finished trial, from every worker (a module-level function when workers > 1).
    """
    if workers < 1:
        raise LatentAtlasError(f"--workers {workers}: give 1 or more worker processes")
    spec = read_spec(spec_path)
    out = Path(out)
    if (out / SPEC_FILE).is_file():
        try:
            recorded = json.loads((out / SPEC_FILE).read_text())
        except (OSError, ValueError) as e:
            raise LatentAtlasError(f"{out / SPEC_FILE}: unreadable ({e}); give the sweep another --out") from None
        _refuse_other_spec(spec, recorded, f"{out} holds a sweep of another spec", "give this one another --out")
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    made = next((p for p in reversed([out, *out.parents]) if not p.exists()), None)  # to remove on failure
    out.mkdir(parents=True, exist_ok=True)
    try:
        _open_study(storage, spec)
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    atomic_write_json(out / SPEC_FILE, spec.to_json())
    args = (spec, str(out), storage, echo)
    if workers <= 1:
        _worker(*args)
    else:
        ctx = mp.get_context("spawn")  # forking after torch has started its threads is unsafe
        procs = [ctx.Process(target=_worker, args=args) for _ in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode != 0 for p in procs):
            raise LatentAtlasError(f"{sum(p.exitcode != 0 for p in procs)} worker(s) failed; run the same command again to continue")
    rows = results(storage)
    atomic_write_json(out / "trials.json", rows)
    return rows


def format_trials(rows: list[dict]) -> str:
    """The trials as a table, then the best configuration."""
    keys = [k for k in rows[0] if k not in ("run",)] if rows else []
    cells = [["-" if r.get(k) is None else f"{r[k]:.4f}" if isinstance(r.get(k), float) else str(r.get(k))
              for k in keys] for r in rows]
    lines = [text_table(keys, cells)]
    done = [r for r in rows if r["state"] == "COMPLETE"]
    if done:
        best = min(done, key=lambda r: r[OBJECTIVE])
        params = ", ".join(f"{k}={best[k]}" for k in keys if k not in ("trial", "state", OBJECTIVE))
        lines.append(f"\nbest: trial {best['trial']}, {OBJECTIVE} {best[OBJECTIVE]:.4f} ({params}), run {best['run']}")
    return "\n".join(lines)


def results(storage: str) -> list[dict]:
    """Every trial (state, objective, parameters, run folder), in order."""
    import optuna

    study = optuna.load_study(study_name="latentatlas", storage=_storage(storage))
    return [{"trial": t.number, "state": t.state.name, OBJECTIVE: t.value, **t.params, "run": t.user_attrs.get("run")}
            for t in sorted(study.trials, key=lambda t: t.number)]


def _open_study(storage: str, spec: Spec) -> None:
    """Create the study (or join it, if its spec is this one) and enqueue every grid point."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="latentatlas", storage=_storage(storage), direction="minimize",
                                sampler=_sampler(), load_if_exists=True)
    # The study is what workers on other machines share, so it is the study that must refuse another spec.
    if "spec" not in study.user_attrs:
        study.set_user_attr("spec", spec.to_json())
    _refuse_other_spec(spec, study.user_attrs["spec"], f"the study in {_shown(storage)} was started with another spec",
                       "run that spec, or give this one its own database")
    if not spec.sampled:
        for combo in itertools.product(*spec.grid.values()):
            study.enqueue_trial(dict(zip(spec.grid, combo)), skip_if_exists=True)


def _refuse_other_spec(spec: Spec, recorded: dict, problem: str, advice: str) -> None:
    """Raise unless ``recorded`` (a Spec.to_json) is this spec; only the number of trials may differ."""
    ours = spec.to_json()
    recorded = recorded if isinstance(recorded, dict) else {}
    diffs = []
    for section in ("search", "fixed"):
        old, new = recorded.get(section) or {}, ours[section]
        for k in sorted(set(old) | set(new)):
            # As JSON, so that 1 and 1.0 differ: Optuna takes them as an integer and a float range.
            a, b = (json.dumps(d[k], sort_keys=True) if k in d else "unset" for d in (old, new))
            if a != b:
                diffs.append(f"[{section}] {k}: {a} -> {b}")
    if diffs:
        raise LatentAtlasError(f"{problem} ({'; '.join(diffs)}): {advice}")


def _worker(spec: Spec, out: str, storage: str, echo=print) -> None:
    """Take trials until the sweep is complete; wait while other workers' trials may still fail and come back."""
    import optuna
    from optuna.trial import TrialState

    from .runs import train_run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="latentatlas", storage=_storage(storage), sampler=_sampler())

    def objective(trial) -> float:
        params = {k: trial.suggest_categorical(k, v) for k, v in spec.grid.items()}
        for k, v in spec.sampled.items():
            ints = isinstance(v["low"], int) and isinstance(v["high"], int)
            suggest = trial.suggest_int if ints else trial.suggest_float
            params[k] = suggest(k, v["low"], v["high"], log=bool(v.get("log", False)))
        if not spec.sampled and _taken(study, trial):
            raise optuna.TrialPruned("another worker has this grid point")  # a race for the last waiting trial
        folder = Path(out) / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("run", str(folder))
        run = train_run(_config(spec, params), folder, overwrite=folder.exists(), progress=False)
        for k, v in run.metrics.items():
            trial.set_user_attr(k, v)
        return run.metrics[OBJECTIVE]

    storage_obj = study._storage
    pop_lock = _sqlite_lock(storage, out)
    while True:
        states = [t.state for t in study.get_trials(deepcopy=False)]
        complete, running, waiting = (states.count(s) for s in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))
        if complete >= spec.n_trials:
            return
        nothing_to_start = waiting == 0 and (not spec.sampled or complete + running >= spec.n_trials)
        if nothing_to_start:
            if running == 0:
                raise LatentAtlasError(f"the sweep cannot complete: {complete} of {spec.n_trials} trials finished and none is left to run (failed more than the retries allow?)")
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial -> FAIL -> retried as a waiting trial
            time.sleep(1.0)
            continue
        # SQLite ignores SELECT ... FOR UPDATE: without the lock, two workers can pop one waiting trial.
        with pop_lock(), warnings.catch_warnings():
            # Optuna warns that ask/tell, unlike optimize, records no heartbeats; _heartbeat records them below. The
            # loop cannot be optimize: it must hold the lock around ask and wait for other workers' trials.
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
            trial = study.ask()
        with _heartbeat(storage_obj, trial._trial_id):
            try:
                value = objective(trial)
            except optuna.TrialPruned:
                study.tell(trial, state=TrialState.PRUNED)
            except BaseException as e:
                study.tell(trial, state=TrialState.FAIL)
                _say(echo, trial, f"failed ({_first_line(e)})")
                raise
            else:
                study.tell(trial, value)
                _say(echo, trial, f"{OBJECTIVE} {value:.4f}")


def _say(echo, trial, outcome: str) -> None:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    echo(f"trial {trial.number} ({params}): {outcome}")
    sys.stdout.flush()  # a worker process's stdout is a pipe: without this, its lines arrive all at the end


def _first_line(e: BaseException) -> str:
    lines = str(e).splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


@contextlib.contextmanager
def _heartbeat(storage, trial_id: int):
    """Record the trial's heartbeat every few seconds while it runs, as study.optimize would."""
    stop = threading.Event()

    def beat():
        while not stop.is_set():
            storage.record_heartbeat(trial_id)
            stop.wait(HEARTBEAT_S)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _sqlite_lock(storage_url: str, out: str):
    """A factory of inter-process locks for local workers sharing an SQLite study; PostgreSQL locks rows itself."""
    if not storage_url.startswith("sqlite"):
        return contextlib.nullcontext
    import fcntl

    path = Path(out) / ".study.lock"

    @contextlib.contextmanager
    def lock():
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    return lock


def _taken(study, trial) -> bool:
    """Whether this grid point is finished, or running as an older trial (the older one keeps it, so two
    workers racing for duplicates never both give it up)."""
    from optuna.trial import TrialState

    return any(t.params == trial.params and (t.state == TrialState.COMPLETE or t.number < trial.number)
               for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
               if t.number != trial.number)


def _storage(url: str):
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    warnings.filterwarnings("ignore", category=ExperimentalWarning)  # heartbeats: stable in use since Optuna 2.9
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    # The driver we ship (psycopg 3), whatever SQLAlchemy's default.
    engine_url = url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
    # SQLite: wait for the lock instead of failing while another worker writes.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:  # Optuna >= 4.9 renamed the retry callback; older releases know only the first name
        from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

        retry = {"heartbeat_stale_trial_callback": Retry(max_retry=3)}
    except ImportError:
        retry = {"failed_trial_callback": RetryFailedTrialCallback(max_retry=3)}
    for attempt in range(5):
        try:
            return RDBStorage(engine_url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                              grace_period=GRACE_S, **retry)
        except DBAPIError as e:  # machines started in the same instant race to create the schema; the loser retries
            error = e
            if attempt < 4:
                time.sleep(0.5 + random.random())
        except (SQLAlchemyError, ImportError) as e:  # an unknown scheme, a malformed URL, a missing driver
            error = e
            break
    reason = _first_line(getattr(error, "orig", None) or error)  # the driver's words, not SQLAlchemy's wrapper
    raise LatentAtlasError(f"cannot open the study storage {_shown(url)}: {reason}")


def _shown(url: str) -> str:
    """The storage URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _sampler():
    import optuna

    # Grid points are enqueued, so the sampler only draws the sampled settings (and, for a grid, nothing at all).
    # Unseeded: every worker process (and every rerun that adds trials) builds its own sampler, and one seed shared
    # by all of them drew the same points in each, repeating trials.
    return optuna.samplers.TPESampler()
