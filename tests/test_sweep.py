"""Sweeps on Optuna: 2 local workers on SQLite, and 2 workers sharing a study on a real PostgreSQL server."""

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("optuna", reason="the sweep extra is not installed")
from latentatlas.cli import main  # noqa: E402
from latentatlas.errors import LatentAtlasError  # noqa: E402
from latentatlas.data import Dataset, load_dataset  # noqa: E402
from latentatlas.experiments.sweep import format_trials, sweep  # noqa: E402
from latentatlas.experiments.sweep_spec import read_spec  # noqa: E402

SPEC = """
[search]
preset = ["deep-2d", "deep-s2"]
seed = [0, 1]
[fixed]
data = "mnist-5k"
epochs = 1
"""

# One tiny trial: the digits data set, one epoch, so that a test that needs a finished sweep takes seconds.
TINY = """
[search]
seed = [0]
[fixed]
data = "digits"
epochs = 1
"""


def check_complete(rows, n=4):
    done = [r for r in rows if r["state"] == "COMPLETE"]
    assert len(done) == n
    assert len({(r["preset"], r["seed"]) for r in done}) == n  # every grid point once: none lost, none twice
    for r in done:
        assert (Path(r["run"]) / "manifest.json").is_file()


def test_sqlite_sweep_with_two_workers(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.toml").write_text(SPEC)
    r = CliRunner().invoke(main, ["sweep", "spec.toml", "--out", "sw", "--workers", "2"])
    assert r.exit_code == 0, r.output
    out, err = capfd.readouterr()  # the worker processes' own output
    assert sorted(line.split(" (")[0] for line in out.splitlines()) == [f"trial {n}" for n in range(4)]
    assert "Heartbeat" not in err
    assert "chosen: trial" in r.output and (tmp_path / "sw" / "study.db").is_file()
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
    ("[search]\nseed = [0]\n[fixed]\ndata = 5\n", r"\[fixed\] data = 5 has the wrong type: data takes str"),
    ("[search]\nseed = [0, '1']\n", r"\[search\] seed = \"1\" has the wrong type"),
    ("[search]\nlr = {low = 'a', high = 0.1}\ntrials = 2\n", "lr must be a list .* with numbers a < b"),
    ("[search]\nlr = {low = 0.1, high = 5}\ntrials = 2\n", "lr=5 is out of range"),  # high is checked too
    ("[search]\nepochs = {low = 1, high = 2.5}\ntrials = 2\n", "epochs.high = 2.5 has the wrong type"),
    ("[search]\nlr = {low = 0, high = 0.1, log = true}\ntrials = 2\n", "a log range needs low > 0"),
    ("[search]\nseed = 3\n", "one value goes under \\[fixed\\]"),
    ("search = 3\n", "must be tables"),
])
def test_bad_specs(tmp_path, text, message):
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(LatentAtlasError, match=message):
        read_spec(tmp_path / "s.toml")


def test_bad_spec_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("s.toml").write_text(TINY.replace('"digits"', "5"))
    r = CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw"])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "data takes str" in r.output
    assert not Path("sw").exists()


@pytest.mark.parametrize("n", ["0", "-4"])
def test_workers_below_one_are_refused(tmp_path, monkeypatch, n):
    monkeypatch.chdir(tmp_path)
    Path("s.toml").write_text(TINY)
    r = CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw", "--workers", n])
    assert r.exit_code == 2 and f"--workers {n}: give 1 or more" in r.output and not Path("sw").exists()


@pytest.mark.parametrize("storage,reason", [
    ("bogus://x", "Can't load plugin"),
    ("postgresql://u:secret@127.0.0.1:1/db", "Connection refused"),  # nothing listens on port 1
])
def test_unopenable_storage_leaves_nothing_behind(tmp_path, monkeypatch, storage, reason):
    if storage.startswith("postgresql"):
        pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "sleep", lambda s: None)  # the retries meant for racing machines
    Path("s.toml").write_text(TINY)
    Path("old").mkdir()
    for out in ["new/sweep", "old"]:
        r = CliRunner().invoke(main, ["sweep", "s.toml", "--out", out, "--storage", storage])
        assert r.exit_code == 2 and r.output.startswith("error: cannot open the study storage ")
        assert reason in r.output and r.output.count("\n") == 1 and "secret" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old", "s.toml"] and not any(Path("old").iterdir())


def test_another_spec_on_the_same_sweep_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("s.toml").write_text(TINY)
    r = CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw"])
    assert r.exit_code == 0, r.output
    assert "continuing" not in r.output  # a new sweep
    assert json.loads(Path("sw/spec.json").read_text())["fixed"] == {"data": "digits", "epochs": 1}
    Path("s.toml").write_text(TINY.replace("epochs = 1", "epochs = 3"))
    r = CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw"])
    assert r.exit_code == 2 and "error: sw holds a sweep of another spec ([fixed] epochs: 1 -> 3)" in r.output
    assert "another --out" in r.output
    # The study refuses too: a worker given another --out but the same storage (as on another machine).
    storage = f"sqlite:///{tmp_path / 'sw' / 'study.db'}"
    r = CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw2", "--storage", storage])
    assert r.exit_code == 2 and "was started with another spec ([fixed] epochs: 1 -> 3)" in r.output
    assert not Path("sw2").exists()
    # The same spec, written differently, continues the sweep: nothing left to run.
    Path("s.toml").write_text('[fixed]\nepochs = 1\ndata = "digits"\n[search]\nseed = [ 0 ]\n')
    r = CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw"])
    assert r.exit_code == 0 and "chosen: trial 0" in r.output and len(list(Path("sw/trials").iterdir())) == 1
    assert "continuing the sweep: 1 of 1 trials already done, none left to run" in r.output


def test_sampled_trials_differ_across_workers_and_reruns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = '[search]\nlr = {low = 1e-4, high = 1e-2, log = true}\ntrials = TRIALS\n[fixed]\ndata = "digits"\nepochs = 1\n'
    Path("s.toml").write_text(spec.replace("TRIALS", "4"))
    assert CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw", "--workers", "2"]).exit_code == 0
    Path("s.toml").write_text(spec.replace("TRIALS", "5"))  # a rerun that samples one more
    assert CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw"]).exit_code == 0
    rows = [r for r in json.loads(Path("sw/trials.json").read_text()) if r["state"] == "COMPLETE"]
    assert len(rows) == 5 and len({r["lr"] for r in rows}) == 5  # a seed shared by the workers repeated points


def test_each_finished_trial_prints_a_line_and_optuna_warns_nothing(tmp_path, monkeypatch):
    (tmp_path / "s.toml").write_text(TINY.replace("seed = [0]", "seed = [0, 1]"))
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep(tmp_path / "s.toml", tmp_path / "sw", echo=lines.append)
    assert [str(w.message) for w in caught if "Heartbeat" in str(w.message)] == []
    assert [line.split(": bce_validation ")[0] for line in lines] == ["trial 0 (seed=0)", "trial 1 (seed=1)"]

    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("latentatlas.run_training.train_run", boom)
    (tmp_path / "s.toml").write_text(TINY.replace("seed = [0]", "seed = [0, 1, 2]"))
    with pytest.raises(RuntimeError):
        sweep(tmp_path / "s.toml", tmp_path / "other", echo=lines.append)
    assert lines[-1] == "trial 0 (seed=0): failed (RuntimeError: boom)"


# --- honest selection -----------------------------------------------------------------------------------------------


class SealedTest(Dataset):
    """A data set whose test split raises on any read while ``SEALED`` is on (the copies transforms make of it are
    ordinary: the validation split that replaces the test split is readable)."""

    def __getattribute__(self, name):
        if (name in ("x_test", "y_test", "factors_test") and SEALED["on"]
                and object.__getattribute__(self, "__dict__").get("sealed")):
            raise AssertionError("the test split was read before the choice")
        return object.__getattribute__(self, name)


SEALED = {"on": False}


class SealedDigits:
    name, description = "sealed-digits", "digits whose test split is unreadable until the sweep has chosen"

    def available_offline(self):
        return True

    def load(self):
        d = load_dataset("digits")
        sealed = SealedTest(**{f.name: getattr(d, f.name) for f in dataclasses.fields(d)})
        object.__setattr__(sealed, "sealed", True)
        return sealed


def test_sweep_chooses_on_validation_and_reads_the_test_set_only_after(tmp_path, monkeypatch):
    from latentatlas.data.sources import SOURCES
    from latentatlas.experiments import sweep as sweep_module
    from latentatlas.metrics import evaluate
    from latentatlas.runs import load_run

    monkeypatch.setitem(SOURCES, "sealed-digits", SealedDigits())
    monkeypatch.setitem(SEALED, "on", True)
    with pytest.raises(AssertionError, match="before the choice"):  # the seal holds: a read would fail the trial
        SOURCES["sealed-digits"].load().x_test
    choose = sweep_module.choose

    def choose_then_unseal(rows):
        best = choose(rows)
        SEALED["on"] = False
        return best

    monkeypatch.setattr(sweep_module, "choose", choose_then_unseal)
    (tmp_path / "s.toml").write_text(TINY.replace('"digits"', '"sealed-digits"').replace("[0]", "[0, 1]"))
    rows = sweep(tmp_path / "s.toml", tmp_path / "sw", echo=lambda line: None)
    chosen = json.loads((tmp_path / "sw" / "chosen.json").read_text())
    best = min(rows, key=lambda r: r["bce_validation"])
    assert chosen["trial"] == best["trial"] and chosen["chosen_on"] == "validation:fraction=0.2:seed=0"
    run = load_run(best["run"])
    assert run.config.transforms == ("validation:fraction=0.2:seed=0",)  # recorded with the trial
    assert chosen["validation"] == run.metrics and chosen["validation"]["bce_test"] == best["bce_validation"]
    n_val = round(0.2 * 1437)
    assert len(run.dataset().y_test) == n_val and len(run.dataset().y_train) == 1437 - n_val
    oracle = evaluate(run.model, load_dataset("digits"), iwae_k=run.config.iwae_k)  # the real test set: 360 images
    assert chosen["test"] == pytest.approx(oracle, rel=1e-6)
    assert chosen["test"]["bce_test"] != chosen["validation"]["bce_test"]
    out = format_trials(rows, chosen)
    line = next(line for line in out.splitlines() if line.startswith("test "))
    assert f"{oracle['bce_test']:.4f}" in line
    assert f"{chosen['validation']['bce_test']:.4f}" in next(x for x in out.splitlines() if x.startswith("validation "))


def test_a_sweep_from_before_validation_splits_still_reads(tmp_path, monkeypatch):
    import optuna

    monkeypatch.chdir(tmp_path)
    spec = '[search]\nlr = {low = 1e-4, high = 1e-2}\ntrials = TRIALS\n[fixed]\ndata = "digits"\nepochs = 1\n'
    Path("s.toml").write_text(spec.replace("TRIALS", "1"))
    assert CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw"]).exit_code == 0
    # Make it an old sweep: its spec recorded without the validation split, in the folder and in the study.
    old = json.loads(Path("sw/spec.json").read_text())
    del old["validation"]
    Path("sw/spec.json").write_text(json.dumps(old))
    Path("sw/chosen.json").unlink()
    study = optuna.load_study(study_name="latentatlas", storage=f"sqlite:///{tmp_path / 'sw' / 'study.db'}")
    study.set_user_attr("spec", old)
    r = CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw"])
    assert r.exit_code == 0, r.output
    assert "bce_test" in r.output and "best: trial 0" in r.output and "chosen on the test set" in r.output
    assert not Path("sw/chosen.json").exists()
    Path("s.toml").write_text(spec.replace("TRIALS", "2"))  # a trial more: never mixed with the old ones
    r = CliRunner().invoke(main, ["sweep", "s.toml", "--out", "sw"])
    assert r.exit_code == 2 and "started before sweeps chose on a validation split" in r.output
    assert len(list(Path("sw/trials").iterdir())) == 1


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


def new_database(postgres, name):
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.rsplit("/", 1)[0] + "/" + name


def worker(spec, out, storage):
    return subprocess.Popen([sys.executable, "-m", "latentatlas", "sweep", str(spec), "--out", str(out), "--storage",
                             storage], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_machines_share_a_postgresql_study(tmp_path, postgres):
    (tmp_path / "spec.toml").write_text(SPEC)
    procs = [worker(tmp_path / "spec.toml", tmp_path / "sw", postgres) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    rows = sweep(tmp_path / "spec.toml", tmp_path / "sw", storage=postgres)  # a third caller: nothing left
    check_complete(rows)


def test_killed_worker_mid_trial_and_restarted_sweep_completes(tmp_path, postgres):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("epochs = 1", "epochs = 6"))
    storage = new_database(postgres, "killtest")
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


def test_a_worker_with_another_spec_is_refused_by_the_shared_study(tmp_path, postgres):
    storage = new_database(postgres, "spectest")
    (tmp_path / "a.toml").write_text(TINY)
    (tmp_path / "b.toml").write_text(TINY.replace('seed = [0]', 'seed = [0]\nlr = [1e-3, 1e-2]'))
    sweep(tmp_path / "a.toml", tmp_path / "machine1", storage=storage)
    with pytest.raises(LatentAtlasError, match=r"was started with another spec \(\[search\] lr: unset -> \[0.001, 0.01\]\)"):
        sweep(tmp_path / "b.toml", tmp_path / "machine2", storage=storage)
    assert not (tmp_path / "machine2").exists()
    assert len(sweep(tmp_path / "a.toml", tmp_path / "machine2", storage=storage)) == 1  # the same spec joins
