"""The seams the next features build on: the objective, the latent contract, the settings table, the trainer's
factory and callbacks, the data spec, the metrics table, and run folders of the previous version."""

import inspect
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import Tensor

from latentatlas import Autoencoder
from latentatlas.cli import main, train
from latentatlas.config import SETTINGS, RunConfig
from latentatlas.data import DataSpec, parse_transform
from latentatlas.errors import LatentAtlasError
from latentatlas.geometries import GEOMETRIES, Geometry, Posterior
from latentatlas.losses import Batch, Objective, Term, build_objective
from latentatlas.metrics import METRIC, METRICS, evaluate
from latentatlas.model import AutoencoderNet
from latentatlas.run_folder import load_checkpoint
from latentatlas.run_training import CheckpointCallback, train_run
from latentatlas.runs import load_run
from latentatlas.train import Callback, Trainer

FIXTURES = Path(__file__).parent / "fixtures" / "v0.1.0"


# ---- a variational geometry written for these tests only: the contract admits it without other changes --------

class _Gaussian(Posterior):
    def __init__(self, mu: Tensor, logvar: Tensor):
        self.mu, self.logvar = mu, logvar

    @property
    def mode(self) -> Tensor:
        return self.mu

    def rsample(self) -> Tensor:
        return self.mu + torch.randn_like(self.mu) * (0.5 * self.logvar).exp()

    def kl(self) -> Tensor:
        return 0.5 * (self.mu.square() + self.logvar.exp() - 1 - self.logvar).sum(-1)


class PairedGaussian(Geometry):
    """latent_dim Gaussian pairs: the decoder sees 2 * latent_dim numbers, the encoder gives 4 * latent_dim."""

    name = "paired-gaussian"
    variational = True

    @property
    def dim(self) -> int:
        return 2 * self.latent_dim

    @property
    def encoder_features(self) -> int:
        return 2 * self.dim

    def forward(self, h: Tensor) -> _Gaussian:
        mu, logvar = h.chunk(2, dim=-1)
        return _Gaussian(mu, logvar.clamp(-6, 4))


@pytest.fixture
def paired(monkeypatch):
    monkeypatch.setitem(GEOMETRIES, PairedGaussian.name, PairedGaussian)
    return RunConfig(preset=None, hidden_sizes=(16,), geometry=PairedGaussian.name, latent_dim=2, beta=0.5,
                     kl_warmup=4, precision="fp32", device="cpu").resolved()


def test_decoder_width_comes_from_the_geometry_and_eval_uses_the_mode(paired):
    torch.manual_seed(0)
    model = AutoencoderNet.from_config(paired, 64)
    assert model.encoder[-2].out_features == 8 and model.decoder[0].in_features == 4
    x = torch.rand(32, 64)
    model.train()
    sampled = model(x)
    assert not torch.equal(sampled.z, sampled.posterior.mode)  # training decodes a sample
    model.eval()
    out = model(x)
    assert torch.equal(out.z, out.posterior.mode) and torch.equal(model(x).logits, out.logits)  # deterministic
    assert torch.equal(model.encode(x), out.posterior.mode)


def test_the_objective_is_a_weighted_sum_of_named_terms(paired):
    torch.manual_seed(0)
    model = AutoencoderNet.from_config(paired, 64)
    objective = build_objective(paired, model.geometry)
    assert objective.names == ["reconstruction", "kl"]
    x = torch.rand(16, 64)
    out = model(x)
    for epoch, weight in ((0, 0.5 / 4), (1, 0.5 * 2 / 4), (3, 0.5), (9, 0.5)):  # beta with a 4-epoch warm-up
        total, parts = objective(Batch(x, torch.arange(16), epoch), out)
        torch.testing.assert_close(total, parts["reconstruction"] + weight * parts["kl"])
    torch.testing.assert_close(parts["kl"], out.posterior.kl().mean() / 64)
    # A deterministic geometry has no KL to weigh: its objective is the reconstruction alone.
    plain = RunConfig(preset="deep-2d").resolved()
    assert build_objective(plain, AutoencoderNet.from_config(plain, 784).geometry).names == ["reconstruction"]


class _SeenOnly(Term):
    """A term defined only on the training set, as a neighbour-embedding term is: it reads the batch's indices."""

    name = "seen-only"
    on_unseen = False

    def forward(self, batch: Batch, out) -> Tensor:
        return batch.index.float().mean() * 0 + out.z.square().mean()


def test_components_are_logged_and_training_only_terms_stay_out_of_the_test_loss(small):
    cfg = RunConfig(preset="deep-2d").resolved()
    torch.manual_seed(0)
    model = AutoencoderNet.from_config(cfg, 784)
    objective = Objective([*build_objective(cfg, model.geometry).terms, _SeenOnly(weight=0.1)])
    t = Trainer(model, objective.loss_fn(), epochs=2, progress=False)
    history = t.fit(small.flat("train")[0][:512], small.flat("test")[0][:128])
    for record in history:
        assert set(record["terms"]["train"]) == {"reconstruction", "seen-only"}
        assert set(record["terms"]["test"]) == {"reconstruction"}
        assert record["test_loss"] == pytest.approx(record["terms"]["test"]["reconstruction"])
    test_loss, parts = t.evaluate(small.flat("test")[0][:128])
    assert test_loss == pytest.approx(history[-1]["test_loss"]) and set(parts) == {"reconstruction"}


def test_a_run_folder_logs_every_component(small, tmp_path):
    run = train_run(RunConfig(preset="shallow-2d", epochs=2, data="digits"), tmp_path / "r", dataset=small,
                    plot=False, progress=False)
    assert [list(r["terms"]["train"]) for r in run.history] == [["reconstruction"]] * 2
    assert run.history[-1]["terms"]["test"]["reconstruction"] == pytest.approx(run.history[-1]["test_loss"])


# ---- one table of settings ------------------------------------------------------------------------------------

def test_cli_options_and_estimator_parameters_are_the_settings_table():
    options = {p.name: p for p in train.params if p.name not in ("out", "overwrite", "resume", "tensorboard", "recipe")}
    assert list(options) == [f.name for f in SETTINGS]  # same names, same order
    for f in SETTINGS:
        assert options[f.name].help == f.metadata["help"]
        assert options[f.name].default == f.default, f.name
    est = inspect.signature(Autoencoder).parameters
    taken = [f for f in SETTINGS if f.metadata["estimator"] is not None]
    names = [f.name if f.metadata["estimator"] == "same" else f.metadata["estimator"] for f in taken]
    assert list(est)[: len(names)] == names and list(est)[len(names):] == ["verbose"]
    for f, name in zip(taken, names):
        assert est[name].default == (None if name == "random_state" else f.default), name  # scikit-learn's None
    assert {f.name for f in SETTINGS} - {f.name for f in taken} == {"data", "image_size", "transforms"}


def test_every_setting_reaches_the_run_config(tmp_path):
    """Each setting given on the command line arrives in config.json under its own name."""
    r = CliRunner().invoke(main, ["train", "--preset", "shallow-2d", "--data", "digits", "--epochs", "1",
                                  "--beta", "0.25", "--kl-warmup", "3", "--transforms", "holdout:classes=9",
                                  "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    cfg = load_run(tmp_path / "r").config
    assert (cfg.beta, cfg.kl_warmup, cfg.transforms, cfg.epochs) == (0.25, 3, ("holdout:classes=9",), 1)


def test_library_errors_speak_python_and_the_cli_translates(small, tmp_path):
    cfg = RunConfig(preset="shallow-2d", epochs=1)
    train_run(cfg, tmp_path / "r", dataset=small, plot=False, progress=False)
    with pytest.raises(LatentAtlasError) as e:
        train_run(cfg, tmp_path / "r", dataset=small, plot=False, progress=False)
    assert "overwrite=True" in str(e.value) and "--" not in str(e.value)
    r = CliRunner().invoke(main, ["train", "--preset", "shallow-2d", "--epochs", "1", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--overwrite" in r.output and "overwrite=True" not in r.output


# ---- the trainer: optimizer factory, schedule state, step callbacks, stopping ------------------------------

class OneCycle:
    """An optimizer factory with a schedule: Adam under one-cycle, stepped every step."""

    def __call__(self, params, total_steps):
        opt = torch.optim.Adam(list(params), lr=1e-3)
        return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=total_steps)


def _trainer(epochs, callbacks=()):
    torch.manual_seed(0)
    model = AutoencoderNet.from_config(RunConfig(preset="shallow-2d").resolved(), 784)
    objective = build_objective(RunConfig(preset="shallow-2d").resolved(), model.geometry)
    return Trainer(model, objective.loss_fn(), epochs=epochs, optimizer_factory=OneCycle(), callbacks=callbacks,
                   progress=False)


def test_a_schedule_resumes_exactly_from_a_checkpoint(small, tmp_path):
    x = small.flat("train")[0][:512]
    straight = _trainer(3)
    straight.fit(x)
    first = _trainer(3, callbacks=[CheckpointCallback(tmp_path)])

    class StopAfterOne(Callback):
        def on_epoch_end(self, trainer, record):
            trainer.stop_training = True

    first.callbacks = [*first.callbacks, StopAfterOne()]
    first.fit(x)  # one epoch, checkpointed, then stopped: a killed run
    resumed = _trainer(3)
    resumed.load_state_dict(load_checkpoint(tmp_path))
    resumed.fit(x, start_epoch=1)
    assert resumed.scheduler.last_epoch == straight.scheduler.last_epoch == 3 * 4
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_step_callbacks_see_every_step_and_can_stop_training(small):
    seen = []

    class StopAtFive(Callback):
        def on_step_end(self, trainer, step):
            seen.append(step)
            if step == 5:
                trainer.stop_training = True

    t = _trainer(3, callbacks=[StopAtFive()])
    history = t.fit(small.flat("train")[0][:512])  # 4 steps an epoch
    assert seen == [1, 2, 3, 4, 5]
    assert [r["epoch"] for r in history] == [1, 2] and history[-1]["steps"] == 1 and "steps" not in history[0]


# ---- data as a spec -----------------------------------------------------------------------------------------

def test_holdout_keeps_the_classes_out_of_training_only(mnist5k):
    spec = DataSpec("mnist-5k", transforms=("holdout:classes=5,3",))
    ds = spec.load()
    assert not np.isin(ds.y_train, [3, 5]).any() and np.isin(ds.y_test, [3, 5]).any()
    assert len(ds.y_train) == len(mnist5k.y_train) - np.isin(mnist5k.y_train, [3, 5]).sum()
    assert np.array_equal(ds.x_test, mnist5k.x_test)
    assert str(parse_transform("holdout:classes=5,3")) == "holdout:classes=3,5"  # one canonical spelling


@pytest.mark.parametrize("text, message", [
    ("nope:x=1", "unknown transform 'nope': did you mean 'noise'\\? choose one of holdout, noise, .*, binarize"),
    ("holdout", "give classes"),
    ("holdout:classes=a", "must be comma-separated integers"),
    ("holdout:colour=3", "is not KEY=VALUE with KEY one of classes"),
    ("holdout:classes=", "give at least one class"),
])
def test_bad_transforms_are_refused_in_one_line(text, message):
    with pytest.raises(LatentAtlasError, match=message) as e:
        RunConfig(transforms=(text,)).resolved()
    assert "\n" not in str(e.value)


def test_a_class_the_data_lack_is_refused():
    with pytest.raises(LatentAtlasError, match="no class 12 in digits"):
        DataSpec("digits", transforms=("holdout:classes=12",)).load()


def test_a_derived_data_set_is_rebuilt_from_the_run_folder(tmp_path):
    run = train_run(RunConfig(preset="shallow-2d", data="digits", epochs=1, transforms=("holdout:classes=0",)),
                    tmp_path / "r", plot=False, progress=False)
    again = load_run(tmp_path / "r").dataset()
    assert not (again.y_train == 0).any() and (again.y_test == 0).any()
    assert len(run.latents()["z_train"]) == len(again.y_train)


# ---- one metrics table ------------------------------------------------------------------------------------

def test_every_metric_a_run_reports_is_in_the_table(base_run):
    metrics = load_run(base_run).metrics
    # Variational runs add their likelihoods, data with known angles the circular correlation (test_variational.py
    # and test_neural.py check those runs' keys against the table).
    assert set(metrics) == {m.key for m in METRICS if m.only is None}
    assert METRIC["knn5"].better == "higher" and METRIC["bce_test"].better == "lower"


def test_pca_rows_are_scored_by_the_models_protocol(small):
    from sklearn.decomposition import PCA
    from sklearn.manifold import trustworthiness

    from latentatlas.experiments.baselines import PCAAutoencoder, pca_metrics

    x = small.flat("train")[0].astype(np.float32) / 255
    pca = PCA(n_components=2, svd_solver="full").fit(x)
    model = PCAAutoencoder(pca.components_, pca.mean_)
    xt = small.flat("test")[0].astype(np.float32) / 255
    np.testing.assert_allclose(model.encode(torch.as_tensor(xt)).detach().numpy(), pca.transform(xt), atol=1e-4)
    row = pca_metrics(small, 2)
    # Equal up to float summation order (BLAS threads may split a reduction differently between two calls).
    expected = {**evaluate(model, small), "train_seconds": None}
    assert row.keys() == expected.keys()
    for key, value in expected.items():
        assert row[key] == (value if value is None else pytest.approx(value, rel=1e-6)), key
    z = pca.transform(xt)
    assert row["trustworthiness"] == pytest.approx(trustworthiness(xt, z, n_neighbors=5), abs=1e-6)
    p = np.clip(pca.inverse_transform(z), 1e-7, 1 - 1e-7)
    assert row["bce_test"] == pytest.approx(-np.mean(xt * np.log(p) + (1 - xt) * np.log(1 - p)), rel=1e-5)


# ---- run folders of the previous version ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["plane-digits", "sphere-digits", "../v0.2/atlas-digits"])
def test_run_folders_of_0_1_0_still_load_and_evaluate_the_same(name, tmp_path):
    """Also an atlas-2d run written before atlas-2d became a free layout (fixtures/v0.2: 3ea7fdf, the neighbour
    term in deep-2d's networks): it loads and evaluates as the neighbour-term run it is."""
    folder = shutil.copytree(FIXTURES / name, tmp_path / Path(name).name)
    run = load_run(folder)
    stored = run.latents()
    x_test = run.dataset().flat("test")[0]
    from latentatlas.metrics import encode

    # The stored latents and metrics were computed on another CPU (an AVX-512 / AMX Xeon): float32 products and
    # reductions may round differently here (another kernel, another summation order), so values match to float32
    # rounding, and measures built on ranks of distances may swap a near tie: in the stored trustworthiness
    # (360 test points) an AVX2 CPU measured 0.6435275 against 0.6435306 stored.
    np.testing.assert_allclose(encode(run.model, x_test), stored["z_test"], rtol=1e-5, atol=1e-6)
    before = dict(run.metrics)
    from latentatlas.runs import evaluate_run

    after = evaluate_run(folder)
    n_test = len(x_test)
    assert after["n_params"] == before["n_params"]  # a count: exact everywhere
    for key, tolerance in (("bce_test", pytest.approx(before["bce_test"], rel=1e-5)),
                           ("mse_test", pytest.approx(before["mse_test"], rel=1e-5)),
                           ("knn1", pytest.approx(before["knn1"], abs=1.01 / n_test)),  # one test point
                           ("knn5", pytest.approx(before["knn5"], abs=1.01 / n_test)),
                           ("trustworthiness", pytest.approx(before["trustworthiness"], abs=1e-4))):
        assert after[key] == tolerance, key
    if "v0.2" not in name:
        assert "terms" not in run.history[0]  # an old history: read as it is


def test_an_estimator_saved_by_0_1_0_loads_with_its_parameters():
    ae = Autoencoder.load(FIXTURES / "estimator-minmax")
    assert ae.get_params()["scaling"] == "minmax" and ae.get_params()["hidden_sizes"] == (8,)
    assert ae.get_params()["beta"] == 1.0  # a setting added since takes its default
    x = np.random.default_rng(0).uniform(0, 16, size=(5, 64)).astype(np.float32)
    z = ae.transform(x)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-6)
    assert ae.inverse_transform(z).shape == (5, 64)
