"""Sweeps over architectures and hyper-parameters on Optuna: many processes, many machines, one study.

The spec is TOML. Under ``[search]`` a list is a grid axis and a table ``{low, high, log}`` is sampled; ``[fixed]``
holds the settings every trial shares; ``trials = N`` (at the top or under ``[search]``) is the number of trials
when something is sampled. A grid alone runs every combination once. Each trial is an ordinary run folder, ``OUT/trials/NNNN``.

Storage is an SQLite file in the sweep folder by default; give ``postgresql://...`` to let workers on several
machines join one study (each machine runs the same command). Workers send heartbeats: a trial whose worker died is
marked failed after the grace period and tried again, so restarting the sweep completes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import multiprocessing as mp
import random
import threading
import time
from pathlib import Path

from ._io import atomic_write_json
from ._table import text_table
from .config import RunConfig
from .errors import LatentAtlasError

OBJECTIVE = "bce_test"  # minimised
HEARTBEAT_S, GRACE_S = 5, 20


@dataclasses.dataclass(frozen=True)
class Spec:
    grid: dict[str, list]
    sampled: dict[str, dict]
    fixed: dict
    trials: int | None

    @property
    def n_trials(self) -> int:
        return self.trials if self.sampled else len(list(itertools.product(*self.grid.values())))


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
    search, fixed = dict(raw.get("search", {})), raw.get("fixed", {})
    trials = search.pop("trials", raw.get("trials"))  # TOML puts "trials = N" written under [search] inside it
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"extra"}
    for key in [*search, *fixed]:
        if key not in fields:
            raise LatentAtlasError(f"{path}: unknown setting {key!r}: valid settings are {', '.join(sorted(fields))}")
    grid = {k: v for k, v in search.items() if isinstance(v, list)}
    sampled = {k: v for k, v in search.items() if isinstance(v, dict)}
    for k, v in sampled.items():
        if set(v) - {"low", "high", "log"} or not {"low", "high"} <= set(v) or not v["low"] < v["high"]:
            raise LatentAtlasError(f"{path}: [search] {k} must be a list (grid) or {{low = a, high = b, log = true|false}} with a < b")
    if any(not v for v in grid.values()) or (not grid and not sampled):
        raise LatentAtlasError(f"{path}: [search] needs at least one non-empty list or range")
    if sampled and (not isinstance(trials, int) or trials < 1):
        raise LatentAtlasError(f"{path}: sampled settings need trials = N (an integer >= 1)")
    spec = Spec(grid, sampled, fixed, trials)
    for combo in itertools.product(*grid.values()):  # fail now, not in trial 37
        _config(spec, dict(zip(grid, combo)) | {k: v["low"] for k, v in sampled.items()}).resolved()
    return spec


def _config(spec: Spec, params: dict) -> RunConfig:
    values = {**spec.fixed, **params}
    if values.get("hidden_sizes") is not None:
        values["hidden_sizes"] = tuple(values["hidden_sizes"])
    return RunConfig.from_dict(values)


def sweep(spec_path: str | Path, out: str | Path, storage: str | None = None, workers: int = 1) -> list[dict]:
    """Run (or continue) the sweep; returns one row per trial.

    The study, and every grid point as a waiting trial, are created here once, before any worker starts.
    """
    import optuna

    spec = read_spec(spec_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="latentatlas", storage=_storage(storage), direction="minimize",
                                sampler=_sampler(), load_if_exists=True)
    if not spec.sampled:
        for combo in itertools.product(*spec.grid.values()):
            study.enqueue_trial(dict(zip(spec.grid, combo)), skip_if_exists=True)
    args = (str(spec_path), str(out), storage)
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


def _worker(spec_path: str, out: str, storage: str) -> None:
    """Take trials until the sweep is complete; wait while other workers' trials may still fail and come back."""
    import optuna
    from optuna.trial import TrialState

    from .runs import train_run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = read_spec(spec_path)
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
        with pop_lock():  # SQLite ignores SELECT ... FOR UPDATE: without this, two workers can pop one waiting trial
            trial = study.ask()
        with _heartbeat(storage_obj, trial._trial_id):
            try:
                value = objective(trial)
            except optuna.TrialPruned:
                study.tell(trial, state=TrialState.PRUNED)
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            else:
                study.tell(trial, value)


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
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    warnings.filterwarnings("ignore", category=ExperimentalWarning)  # heartbeats: stable in use since Optuna 2.9
    from sqlalchemy.exc import DBAPIError

    if url.startswith("postgresql://"):  # the driver we ship (psycopg 3), whatever SQLAlchemy's default
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    # SQLite: wait for the lock instead of failing while another worker writes.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:  # Optuna >= 4.9 renamed the retry callback; older releases know only the first name
        from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

        retry = {"heartbeat_stale_trial_callback": Retry(max_retry=3)}
    except ImportError:
        retry = {"failed_trial_callback": RetryFailedTrialCallback(max_retry=3)}
    for attempt in range(5):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              **retry)
        except DBAPIError:  # machines started in the same instant race to create the schema; the loser retries
            if attempt == 4:
                raise
            time.sleep(0.5 + random.random())


def _sampler():
    import optuna

    # Grid points are enqueued, so the sampler only draws the sampled settings (and, for a grid, nothing at all).
    return optuna.samplers.TPESampler(seed=0)
