"""Each way of extending latentatlas, tried with a toy that lives only in this test: a geometry (the cylinder
S1 x R), a term of the objective (L1 on the latent), a trainer setting (gradient clipping) and a metric (the mean
latent norm). Each is added where the README's "how to add" table says, and must reach everything that derives
from it with no other line: the command line's help, the estimator's signature, history.json, metrics.json, a
stacked trainer, compare's table and baseline rows, and the report.

The geometry, term and metric are registered in this process (the registries monkeypatched, so they are gone
after the test). A setting is a field of a dataclass, so it is added as its lines of source, to a copy of the
package that a subprocess imports.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

import latentatlas
from latentatlas import losses, metrics
from latentatlas.geometries import GEOMETRIES, Chart, Geometry, PointMass
from latentatlas.losses import Term

SRC = Path(__file__).resolve().parents[1] / "src"


# --- the toys: what a user writes -----------------------------------------------------------------------------


class Cylinder(Geometry):
    """S1 x R: an angle and a height, as (cos, sin, height); latent_dim is the space's own dimension, 2."""

    name = "cylinder"
    min_dim = 2
    test_dims = (2,)

    @property
    def dim(self) -> int:
        return 3

    def forward(self, h: Tensor) -> PointMass:  # h: (B, 3)
        return PointMass(torch.cat([torch.nn.functional.normalize(h[:, :2], dim=1), h[:, 2:]], dim=1))

    def charts(self) -> tuple[Chart, ...]:
        to_map = lambda z: torch.stack([torch.atan2(z[:, 1], z[:, 0]), z[:, 2]], 1)  # noqa: E731
        from_map = lambda uv: torch.stack([uv[:, 0].cos(), uv[:, 0].sin(), uv[:, 1]], 1)  # noqa: E731
        return (Chart("unrolled", ("angle", "height"), to_map, from_map,
                      js_from_map="(u, v) => [Math.cos(u), Math.sin(u), v]"),)


class L1Latent(Term):
    """The mean absolute latent coordinate."""

    name = "l1_latent"

    @classmethod
    def from_config(cls, cfg, geometry, x_train=None):
        return cls(1e-3)

    def forward(self, batch, out) -> Tensor:
        return out.z.abs().mean()


LATENT_NORM = metrics.Metric("latent_norm", "|z|", "mean latent norm", ".3f",
                             of_map=lambda dataset, z_train, z_test: float(np.linalg.norm(z_test, axis=1).mean()))

# A trainer setting: one line of the settings table, one field of Trainer, and the two lines that use it.
SETTING = {
    "config.py": ('    batch_size: int = setting(128, "Samples per step.", low=1)\n',
                  '    grad_clip: float = setting(0.0, "Clip each step\'s gradient norm to this; 0: off.", low=0)\n'),
    "train.py": ("    init_epochs: int = 10\n",
                 '    grad_clip: float = unstackable(0.0, "a clip norm would span all the members")\n'),
}
SETTING_USE = ("                loss.backward()\n",
               "                if self.grad_clip:\n"
               "                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)\n")


def _extend(monkeypatch, module, name: str, value) -> None:
    """Set ``module.name`` to ``value`` in every latentatlas module that imported the same object."""
    old = getattr(module, name)
    for mod in [m for n, m in sys.modules.items() if n.startswith("latentatlas") and m is not None]:
        for attr, held in list(vars(mod).items()):
            if held is old:
                monkeypatch.setattr(mod, attr, value)


@pytest.fixture
def toys(monkeypatch):
    monkeypatch.setitem(GEOMETRIES, Cylinder.name, Cylinder)
    _extend(monkeypatch, losses, "TERMS", (*losses.TERMS, L1Latent))
    _extend(monkeypatch, metrics, "METRICS", (*metrics.METRICS, LATENT_NORM))
    monkeypatch.setitem(metrics.METRIC, LATENT_NORM.key, LATENT_NORM)


# --- the checks -----------------------------------------------------------------------------------------------


def test_a_geometry_a_term_and_a_metric_reach_the_run_folder_compare_and_the_report(toys, small, tmp_path):
    from latentatlas.config import RunConfig
    from latentatlas.experiments.baselines import Fitted, baseline_metrics
    from latentatlas.experiments.compare import compare_runs
    from latentatlas.experiments.compare_outputs import format_table, summary
    from latentatlas.presets import Preset
    from latentatlas.run_training import train_run
    from latentatlas.run_folder import read_json
    from latentatlas.viz.report import write_report

    assert Preset((8,), 2, "cylinder", "toy").n_params(784) > 0  # counted from the geometry itself
    cfg = RunConfig(preset=None, hidden_sizes=(16,), geometry="cylinder", latent_dim=2, epochs=1, data="mnist-5k",
                    device="cpu", precision="fp32")
    run = train_run(cfg, tmp_path / "cyl", dataset=small, progress=False)
    history = read_json(run.path / "history.json")
    assert "l1_latent" in history[0]["terms"]["train"]  # the term
    assert math.isfinite(read_json(run.path / "metrics.json")["latent_norm"])  # the metric
    assert (run.path / "figures" / "encoder_map_unrolled.png").is_file()  # the geometry's chart
    assert (run.path / "figures" / "preservation_map_unrolled.png").is_file()

    comparison = compare_runs([run.path], baselines=("pca",), echo=lambda line: None)
    assert "|z|" in format_table(summary(comparison.results))  # a column of compare's table
    z = np.random.default_rng(0).normal(size=(len(small.y_train), 2)).astype(np.float32)
    zt = np.random.default_rng(1).normal(size=(len(small.y_test), 2)).astype(np.float32)
    row = baseline_metrics(Fitted(z, zt, None, 0.1), small)  # a map without a decoder: UMAP's, t-SNE's row
    assert row["latent_norm"] == pytest.approx(float(np.linalg.norm(zt, axis=1).mean()))
    assert row["bce_test"] is None

    page = write_report([run.path], tmp_path / "report.html").read_text()
    assert "mean latent norm" in page and "unrolled chart" in page


def test_a_trainer_setting_reaches_the_help_the_estimator_history_and_the_stack(tmp_path):
    package = tmp_path / "src" / "latentatlas"
    shutil.copytree(SRC / "latentatlas", package, ignore=shutil.ignore_patterns("__pycache__"))
    for name, (after, line) in SETTING.items():
        text = (package / name).read_text()
        assert text.count(after) == 1, f"{name}: the anchor of the toy setting moved"
        (package / name).write_text(text.replace(after, after + line))
    text = (package / "train.py").read_text()
    assert text.count(SETTING_USE[0]) == 1
    (package / "train.py").write_text(text.replace(SETTING_USE[0], SETTING_USE[0] + SETTING_USE[1]))
    script = textwrap.dedent(f"""
        import dataclasses, inspect, json
        import numpy as np
        from click.testing import CliRunner
        import latentatlas
        assert latentatlas.__file__.startswith({str(tmp_path)!r}), latentatlas.__file__
        from latentatlas.cli import main
        from latentatlas import Autoencoder
        from latentatlas.config import RunConfig
        from latentatlas.data import load_dataset
        from latentatlas.run_training import build_trainer, resolve_runtime, train_run
        from latentatlas.stack import stack_trainers, why_not_stack

        assert "--grad-clip" in CliRunner().invoke(main, ["train", "--help"]).output
        assert "grad_clip" in inspect.signature(Autoencoder).parameters
        data = load_dataset("mnist-5k")
        x = data.x_train[:256]
        base = RunConfig(preset="deep-2d", epochs=1, grad_clip=1.0, device="cpu", precision="fp32")
        members = [build_trainer(resolve_runtime(dataclasses.replace(base, seed=s)), x, progress=False)
                   for s in (0, 1)]
        assert members[0].grad_clip == 1.0
        assert why_not_stack(members, [resolve_runtime(base)] * 2) == "a clip norm would span all the members"
        assert stack_trainers(members, progress=False).grad_clip == 1.0  # carried, not silently dropped
        Autoencoder(hidden_sizes=(8,), geometry="euclidean", latent_dim=2, epochs=1, grad_clip=0.5,
                    device="cpu").fit(x[:64])
        run = train_run(base, {str(tmp_path / "run")!r}, progress=False, plot=False)
        assert json.loads((run.path / "config.json").read_text())["grad_clip"] == 1.0
        assert json.loads((run.path / "history.json").read_text())[0]["train_loss"] > 0
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_the_toys_are_gone_after_the_test():
    assert "cylinder" not in GEOMETRIES and L1Latent not in losses.TERMS
    assert "latent_norm" not in metrics.METRIC and LATENT_NORM not in metrics.METRICS
    assert "grad_clip" not in {f.name for f in dataclasses.fields(latentatlas.config.RunConfig)}
