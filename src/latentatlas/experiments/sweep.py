"""Sweeps over architectures and hyper-parameters on Optuna: many processes, many machines, one study.

The spec (``latentatlas.sweep_spec``) says what to search; this module runs it. Each trial is an ordinary run
folder, ``OUT/trials/NNNN``.

Storage (``sweep_storage``) is an SQLite file in the sweep folder by default; give ``postgresql://...`` to let
workers on several machines join one study (each machine runs the same command). Workers send heartbeats: a trial
whose worker died is marked failed after the grace period and tried again, so restarting the sweep completes it.

Honest selection: each trial is scored on a validation split carved from its training set (``sweep_spec.VALIDATION``,
seeded and recorded in the trial's config.json), and the test set is read once, after the choice, to score the
chosen trial alone (``chosen.json``); the test numbers of the trials that lost are never computed. A study made
before validation splits (its trials scored on the test set) is still read and shown, labelled as such.

A sweep is one spec: the sweep folder (``spec.json``) and the study (a user attribute) record it, and a different
spec is refused rather than mixed in. Only ``trials = N`` may change, to sample more (or fewer) trials.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing as mp
import shutil
import sys
import time
import warnings
from pathlib import Path

from .._io import atomic_write_json
from .._table import text_table
from ..errors import LatentAtlasError, option
from ..metrics import METRIC, METRICS
from .sweep_spec import VALIDATION, Spec, read_spec
from .sweep_storage import _first_line, _heartbeat, _in_memory, _shown, _sqlite_lock, _storage

OBJECTIVE = METRIC["bce_test"]  # the metric a sweep optimises (its direction from the metrics table) ...
VALUE_KEY = "bce_validation"  # ... measured on each trial's validation split: the trials table's column
LEGACY_KEY = OBJECTIVE.key  # the column of a study made before validation splits: its trials scored on the test set
CHOSEN_FILE = "chosen.json"  # the chosen trial, its validation and its test figures
SPEC_FILE = "spec.json"  # the sweep folder's record of its spec


def sweep(spec_path: str | Path, out: str | Path, storage: str | None = None, workers: int = 1,
          echo=print) -> list[dict]:
    """Run (or continue) the sweep; returns one row per trial.

    The study, and every grid point as a waiting trial, are created here once, before any worker starts.
    Everything is checked before anything is written: a bad spec or storage, or a spec other than the one the
    folder or the study was started with, raise ``LatentAtlasError`` and leave the disk as it was.
    ``echo`` gets one line per finished trial, from every worker (a module-level function when workers > 1).
    """
    if workers < 1:
        raise LatentAtlasError(f"{option('workers', workers)}: give 1 or more worker processes")
    if storage is not None and _in_memory(storage):
        raise LatentAtlasError(f"{option('storage')} {storage}: an in-memory study lives in one connection of one "
                               "process, so workers (and this command's own steps) would each see another, empty one: "
                               "give a file (sqlite:///PATH) or a server (postgresql://...)")
    spec = read_spec(spec_path)
    _check_machine_settings(spec)
    out = Path(out)
    legacy = False
    if (out / SPEC_FILE).is_file():
        try:
            recorded = json.loads((out / SPEC_FILE).read_text())
        except (OSError, ValueError, RecursionError) as e:
            raise LatentAtlasError(f"{out / SPEC_FILE}: unreadable ({e}); give the sweep another {option('out')}") from None
        _refuse_other_spec(spec, recorded, f"{out} holds a sweep of another spec", f"give this one another {option('out')}")
        legacy = _is_legacy(recorded)
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    made = next((p for p in reversed([out, *out.parents]) if not p.exists()), None)  # to remove on failure
    out.mkdir(parents=True, exist_ok=True)
    try:
        done, legacy_study = _open_study(storage, spec)
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    if legacy or legacy_study:  # read and shown as it is; never continued with trials scored another way
        if done < spec.n_trials:
            raise LatentAtlasError(f"{out}: this sweep was started before sweeps chose on a validation split (its "
                                   f"{done} finished trials were scored on the test set, new ones would not be): give "
                                   f"the spec another {option('out')} to sweep it afresh")
        rows = results(storage)
        atomic_write_json(out / "trials.json", rows)
        return rows
    atomic_write_json(out / SPEC_FILE, spec.to_json())
    if done:  # a rerun continues: say so before the first new trial (or the table, when none is left)
        echo(f"continuing the sweep: {done:,} of {spec.n_trials:,} trials already done"
             + (", none left to run" if done >= spec.n_trials else ""))
    args = (spec, str(out), storage, echo)
    if workers <= 1:
        _worker(*args)
    else:
        ctx = mp.get_context("spawn")  # forking after torch has started its threads is unsafe
        procs = [ctx.Process(target=_worker_process, args=args) for _ in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode != 0 for p in procs):
            raise LatentAtlasError(f"{sum(p.exitcode != 0 for p in procs)} worker(s) failed; run the same command again to continue")
    rows = results(storage)
    atomic_write_json(out / "trials.json", rows)
    test_chosen(rows, out)
    return rows


def _is_legacy(recorded) -> bool:
    """Whether a recorded spec is of a sweep made before validation splits (its trials scored on the test set)."""
    return isinstance(recorded, dict) and "validation" not in recorded


def choose(rows: list[dict]) -> dict | None:
    """The finished trial with the best objective (on the validation split, or on the test set in an old study)."""
    done = [r for r in rows if r["state"] == "COMPLETE"]
    if not done:
        return None
    key = VALUE_KEY if VALUE_KEY in done[0] else LEGACY_KEY
    return (min if OBJECTIVE.better == "lower" else max)(done, key=lambda r: r[key])


def test_chosen(rows: list[dict], out: str | Path) -> dict | None:
    """Choose the trial (on validation figures alone), then, and only then, read the test set to score it; written
    to ``chosen.json`` with the trial's validation figures, and returned. Kept when the choice has not changed."""
    from ..metrics import evaluate
    from ..runs import load_run

    best = choose(rows)
    if best is None:
        return None
    path = Path(out) / CHOSEN_FILE
    known = read_chosen(out)
    if known is not None and known.get("trial") == best["trial"] and known.get("run") == best["run"]:
        return known
    run = load_run(best["run"])
    transforms = list(run.config.transforms)
    if VALIDATION in transforms:
        transforms.remove(VALIDATION)
    dataset = dataclasses.replace(run.config, transforms=tuple(transforms)).data_spec.load()  # the test set, at last
    test = evaluate(run.model, dataset, iwae_k=run.config.iwae_k)
    params = {k: v for k, v in best.items() if k not in ("trial", "state", "run", VALUE_KEY)}
    chosen = {"trial": best["trial"], "run": best["run"], "params": params, "chosen_on": VALIDATION,
              "validation": run.metrics, "test": test}
    atomic_write_json(path, chosen)
    return chosen


def read_chosen(out: str | Path) -> dict | None:
    """The sweep folder's ``chosen.json``, or None (none chosen yet, or a sweep from before validation splits)."""
    try:
        chosen = json.loads((Path(out) / CHOSEN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return chosen if isinstance(chosen, dict) else None


def _check_machine_settings(spec: Spec) -> None:
    """What the spec's own check cannot know: whether each trial's data and device exist here. Checked for every
    value before the first trial, so that trial 37 does not fail on a typo trial 1 did not have."""
    from ..data.sources import check_source
    from ..train import pick_device

    for key, check in (("data", check_source), ("device", pick_device)):
        values = spec.grid.get(key, [spec.fixed.get(key)])
        for value in dict.fromkeys(v for v in values if v is not None):
            try:
                check(value)
            except LatentAtlasError as e:
                where = "[search]" if key in spec.grid else "[fixed]"
                raise LatentAtlasError(f"{where} {key} = {json.dumps(value)}: {e}") from None


def _worker_process(*args) -> None:
    """A worker in its own process: bad input (a trial's data, a full disk) is one line on stderr, not a traceback."""
    try:
        _worker(*args)
    except (LatentAtlasError, OSError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


def format_trials(rows: list[dict], chosen: dict | None = None) -> str:
    """The trials as a table, then the chosen trial with its validation and test figures (``test_chosen``)."""
    keys = [k for k in rows[0] if k not in ("run",)] if rows else []
    cells = [["-" if r.get(k) is None else f"{r[k]:.4f}" if isinstance(r.get(k), float) else str(r.get(k))
              for k in keys] for r in rows]
    lines = [text_table(keys, cells)]
    best = choose(rows)
    if best is None:
        return lines[0]
    params = ", ".join(f"{k}={best[k]}" for k in keys if k not in ("trial", "state", VALUE_KEY, LEGACY_KEY))
    if LEGACY_KEY in best:
        lines.append(f"\nbest: trial {best['trial']}, {LEGACY_KEY} {OBJECTIVE.format(best[LEGACY_KEY])} ({params}), "
                     f"run {best['run']}; chosen on the test set (a sweep from before validation splits), so its "
                     "test figures are optimistic")
        return "\n".join(lines)
    lines.append(f"\nchosen: trial {best['trial']} ({params}), run {best['run']}, on its validation split "
                 f"({VALIDATION}, carved from the training set); the test set scored it alone, after the choice:")
    if chosen is not None and chosen.get("trial") == best["trial"]:
        shown = [m for m in METRICS if m.compared and m.better and not m.of_run
                 and chosen["validation"].get(m.key) is not None and chosen["test"].get(m.key) is not None]
        table = [[split, *(m.format(chosen[split][m.key]) for m in shown)] for split in ("validation", "test")]
        lines.append(text_table(["", *(m.header.removeprefix("test ") for m in shown)], table))
    return "\n".join(lines)


def results(storage: str) -> list[dict]:
    """Every trial (state, objective, parameters, run folder), in order."""
    import optuna

    study = optuna.load_study(study_name="latentatlas", storage=_storage(storage))
    key = LEGACY_KEY if _is_legacy(study.user_attrs.get("spec")) else VALUE_KEY
    return [{"trial": t.number, "state": t.state.name, key: t.value, **t.params, "run": t.user_attrs.get("run")}
            for t in sorted(study.trials, key=lambda t: t.number)]


def _open_study(storage: str, spec: Spec) -> tuple[int, bool]:
    """Create the study (or join it, if its spec is this one) and enqueue every grid point; returns how many
    trials are already complete, and whether the study is one from before validation splits (nothing enqueued)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "minimize" if OBJECTIVE.better == "lower" else "maximize"
    study = optuna.create_study(study_name="latentatlas", storage=_storage(storage), direction=direction,
                                sampler=_sampler(), load_if_exists=True)
    # The study is what workers on other machines share, so it is the study that must refuse another spec.
    if "spec" not in study.user_attrs:
        study.set_user_attr("spec", spec.to_json())
    _refuse_other_spec(spec, study.user_attrs["spec"], f"the study in {_shown(storage)} was started with another spec",
                       "run that spec, or give this one its own database")
    legacy = _is_legacy(study.user_attrs["spec"])
    if not spec.sampled and not legacy:
        for combo in itertools.product(*spec.grid.values()):
            study.enqueue_trial(dict(zip(spec.grid, combo)), skip_if_exists=True)
    return sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)), legacy


def _refuse_other_spec(spec: Spec, recorded, problem: str, advice: str) -> None:
    diffs = spec.differences(recorded)
    if diffs:
        raise LatentAtlasError(f"{problem} ({'; '.join(diffs)}): {advice}")


def _worker(spec: Spec, out: str, storage: str, echo=print) -> None:
    """Take trials until the sweep is complete; wait while other workers' trials may still fail and come back."""
    import optuna
    from optuna.trial import TrialState

    from ..run_training import train_run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="latentatlas", storage=_storage(storage), sampler=_sampler())

    def objective(trial) -> float:
        params = spec.suggest(trial)
        if not spec.sampled and _taken(study, trial):
            raise optuna.TrialPruned("another worker has this grid point")  # a race for the last waiting trial
        folder = Path(out) / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("run", str(folder))
        run = train_run(spec.config(params), folder, overwrite=folder.exists(), progress=False)
        for k, v in run.metrics.items():  # the validation split's figures: the trial's data hold no test set
            trial.set_user_attr(k, v)
        return run.metrics[OBJECTIVE.key]

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
                _say(echo, trial, f"{VALUE_KEY} {OBJECTIVE.format(value)}")


def _say(echo, trial, outcome: str) -> None:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    echo(f"trial {trial.number} ({params}): {outcome}")
    sys.stdout.flush()  # a worker process's stdout is a pipe: without this, its lines arrive all at the end


def _taken(study, trial) -> bool:
    """Whether this grid point is finished, or running as an older trial (the older one keeps it, so two
    workers racing for duplicates never both give it up)."""
    from optuna.trial import TrialState

    return any(t.params == trial.params and (t.state == TrialState.COMPLETE or t.number < trial.number)
               for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
               if t.number != trial.number)


def _sampler():
    import optuna

    # Grid points are enqueued, so the sampler only draws the sampled settings (and, for a grid, nothing at all).
    # Unseeded: every worker process (and every rerun that adds trials) builds its own sampler, and one seed shared
    # by all of them drew the same points in each, repeating trials.
    return optuna.samplers.TPESampler()
