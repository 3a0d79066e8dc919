"""Sweeps on Optuna: 2 local workers on SQLite, and 2 workers sharing a study on a real PostgreSQL server."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("optuna", reason="the sweep extra is not installed")
from latentatlas.cli import main  # noqa: E402
from latentatlas.errors import LatentAtlasError  # noqa: E402
from latentatlas.sweep import read_spec  # noqa: E402

SPEC = """
[search]
preset = ["deep-2d", "deep-s2"]
seed = [0, 1]
[fixed]
data = "mnist-5k"
epochs = 1
"""


def check_complete(rows, n=4):
    done = [r for r in rows if r["state"] == "COMPLETE"]
    assert len(done) == n
    assert len({(r["preset"], r["seed"]) for r in done}) == n  # every grid point once: none lost, none twice
    for r in done:
        assert (Path(r["run"]) / "manifest.json").is_file()


def test_sqlite_sweep_with_two_workers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.toml").write_text(SPEC)
    r = CliRunner().invoke(main, ["sweep", "spec.toml", "--out", "sw", "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert "best: trial" in r.output and (tmp_path / "sw" / "study.db").is_file()
    check_complete(json.loads((tmp_path / "sw" / "trials.json").read_text()))
    r = CliRunner().invoke(main, ["sweep", "spec.toml", "--out", "sw"])  # resumable: nothing left to run
    assert r.exit_code == 0 and len(list((tmp_path / "sw" / "trials").iterdir())) == 4


@pytest.mark.parametrize("text,message", [
    ("[search]\nlearning_rate = [1]\n", "unknown setting 'learning_rate'"),
    ("[search]\nlr = {low = 1e-2, high = 1e-4}\ntrials = 2\n", "with a < b"),
    ("[search]\nlr = {low = 1e-4, high = 1e-2}\n", "need trials = N"),
    ("[search]\npreset = ['deep-9d']\n", "unknown preset 'deep-9d'"),
    ("[serch]\n", "unknown sections"),
    ("not toml = = 1", "not a readable TOML"),
])
def test_bad_specs(tmp_path, text, message):
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(LatentAtlasError, match=message):
        read_spec(tmp_path / "s.toml")


# --- PostgreSQL -----------------------------------------------------------------------------------------------------


def pg_bin(name):
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's postgresql package); skipped where it is missing."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed")
    folder = Path(tempfile.mkdtemp(prefix="latentatlas-pg-"))  # under /tmp: pytest's own tmp is private to root
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root without a 'postgres' user to run the server as")
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust"], check=True,
                   capture_output=True)
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder}"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(folder / "log"), "-w", "start"],
                   check=True, capture_output=True)
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def worker(spec, out, storage):
    return subprocess.Popen([sys.executable, "-m", "latentatlas", "sweep", str(spec), "--out", str(out), "--storage",
                             storage], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_machines_share_a_postgresql_study(tmp_path, postgres):
    (tmp_path / "spec.toml").write_text(SPEC)
    # The study is created once first (as each machine's command would, racing only if started in the same instant).
    from latentatlas.sweep import sweep

    procs = [worker(tmp_path / "spec.toml", tmp_path / "sw", postgres) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    rows = sweep(tmp_path / "spec.toml", tmp_path / "sw", storage=postgres)  # a third caller: nothing left
    check_complete(rows)


def test_killed_worker_mid_trial_and_restarted_sweep_completes(tmp_path, postgres):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("epochs = 1", "epochs = 6"))
    db = postgres.rsplit("/", 1)[0] + "/postgres"
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE DATABASE killtest")
    storage = postgres.rsplit("/", 1)[0] + "/killtest"
    p = worker(spec, tmp_path / "sw", storage)
    deadline = time.time() + 120
    while not list((tmp_path / "sw").glob("trials/*/checkpoint.json")) and time.time() < deadline:
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)  # mid-trial: at least one epoch written, the trial still RUNNING
    p.wait()
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "latentatlas", "sweep", str(spec), "--out", str(tmp_path / "sw"),
                        "--storage", storage], capture_output=True, timeout=400)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    rows = json.loads((tmp_path / "sw" / "trials.json").read_text())
    check_complete(rows)
    assert any(r["state"] == "FAIL" for r in rows)  # the killed trial was detected and retried
    assert time.time() - t0 < 300
