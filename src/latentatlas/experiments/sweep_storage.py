"""The sweep's Optuna storage: SQLite files or PostgreSQL servers named by URL (in-memory SQLite refused, passwords
kept out of messages), the heartbeats that let a dead worker's trial be failed and tried again, and the file lock that
keeps local workers sharing one SQLite study from taking the same waiting trial.

``latentatlas.experiments.sweep`` runs the sweep on them; Optuna itself is imported lazily, when a study is opened.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
import warnings
from pathlib import Path

from ..errors import LatentAtlasError

HEARTBEAT_S, GRACE_S = 5, 20


def _in_memory(url: str) -> bool:
    """SQLite without a file: ``sqlite://``, ``sqlite:///:memory:``, or a ``mode=memory`` URI."""
    return url.startswith("sqlite") and (url.rstrip("/") in ("sqlite:", "sqlite:/") or ":memory:" in url
                                         or "mode=memory" in url)


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


def _first_line(e: BaseException) -> str:
    lines = str(e).splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _shown(url: str) -> str:
    """The storage URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
