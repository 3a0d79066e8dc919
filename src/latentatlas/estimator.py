"""The scikit-learn estimator: ``fit`` / ``transform`` / ``inverse_transform`` like PCA, on your own arrays."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._io import atomic_write_folder
from ._lock import FolderLock
from ._inputs import _coerce, _json_param, _to_numpy, _given, _labels_or_none, _labels_and_names
from .config import SETTINGS, RunConfig, setting_type
from .errors import LatentAtlasError
from .losses import metric_name
from .metrics import decode, encode, reconstruction_errors
from .run_folder import LATENTS, check_replaceable, read_json, write_manifest, write_model
from .run_training import build_trainer, resolve_runtime
from .runs import IN_MEMORY, load_run
from .errors import unknown_name
from .scaling import (AUTO, SCALING_CHOICES, SCALING_FILE, SCALINGS, Pixels, fit_scaling, scaling_from_json,
                      scaling_to_json)
from .train import pick_device

ESTIMATOR_FILE = "estimator.json"  # the estimator's parameters and feature names, beside the run's files


class Autoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """An autoencoder with a chosen latent geometry, as a scikit-learn transformer.

    Samples are rows of pixels: uint8 0..255 (divided by 255) or floats in [0, 1]; image stacks (N, H, W) and torch
    tensors are accepted and flattened. ``transform`` gives latent coordinates, ``inverse_transform`` decodes them.

    Parameters
    ----------
__SETTINGS__
    random_state : int, RandomState instance or None, default=None
        Seeds weights and shuffling. An int >= 0 is the seed itself, as ``latentatlas train --seed``: the same int
        and data give identical weights to the CLI's on the same machine. A RandomState instance, or None (NumPy's
        global RNG), draws a seed, recorded in ``config_.seed``. ``fit`` gives torch's global RNG state back as it
        found it (the CPU's, and the CUDA device's it trains on).
    verbose : bool, default=False
        Say how training goes: a progress bar on a terminal; elsewhere (a notebook, a log file) a line per epoch, or
        every few seconds, with the loss and the time left.

    Integer and float parameters may be NumPy scalars (as ``GridSearchCV`` passes them from arrays); bools are
    refused where a number is meant.

    Attributes
    ----------
    model_ : AutoencoderNet
    config_ : RunConfig
        The resolved configuration.
    history_ : list of dict
        Per-epoch train loss and seconds.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` had string column names (a pandas DataFrame).
    scaling_ : the fitted scaling; ``scaling_.name`` is what ``scaling="auto"`` chose ("pixels" or "minmax")
    data_min_, data_range_ : ndarray of shape (n_features_in_,)
        Only where the scaling is min-max: the per-feature affine map to [0, 1]; ``inverse_transform`` maps back.

    Examples
    --------
    >>> from latentatlas import Autoencoder
    >>> from latentatlas.data import load_dataset
    >>> X = load_dataset("digits").flat("train")[0]
    >>> ae = Autoencoder(preset="deep-s2", epochs=2, random_state=0).fit(X)
    >>> ae.transform(X[:5]).shape
    (5, 3)
    """

    def __init__(self, *args, **kwargs):
        # The signature is made from the settings table (see _SIGNATURE below); __init__ only stores.
        bound = _SIGNATURE.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    def fit(self, X, y=None):
        """Train on ``X`` (n_samples, n_features); ``y`` is ignored. Returns self."""
        if self.scaling not in SCALING_CHOICES:
            raise unknown_name("scaling", self.scaling, SCALING_CHOICES)
        X = self._validate(X, reset=True)
        if self.verbose and self._scaling_note:
            print(self._scaling_note)
        cfg = resolve_runtime(RunConfig(data=IN_MEMORY, **{
            f.name: _coerce(f, getattr(self, _ESTIMATOR_NAMES[f.name])) for f in SETTINGS if f.name in _ESTIMATOR_NAMES}))
        device = torch.device(cfg.device)
        cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # the trainer seeds torch's global RNG: give the caller's back
            trainer = build_trainer(cfg, X, progress=None if self.verbose else False)  # None: bar or lines
            trainer.fit(X)
        self.model_ = trainer.model.eval()
        self.config_ = cfg
        self.history_ = trainer.history
        self._n_features_out = self.model_.geometry.dim
        # As scikit-learn's manifold learners keep theirs; a free layout's is the laid-out map itself.
        placed = self.model_.map
        self.embedding_ = encode(self.model_, X) if placed is None else placed.coords.cpu().numpy().copy()
        self._fit_labels = _labels_or_none(y, len(X))  # only to colour the notebook's thumbnail
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        """Fit, and return the training samples' latent coordinates (``embedding_``): a free layout's map itself,
        not its samples placed on it again."""
        return self.fit(X, y).embedding_.copy()

    def transform(self, X) -> np.ndarray:
        """Latent coordinates (n_samples, latent_dim): a free layout (atlas presets) places each sample on its
        frozen map by refinement, or with ``placement="encoder"`` by the encoder's one pass."""
        check_is_fitted(self)
        return encode(self.model_, self._validate(X, reset=False))

    def inverse_transform(self, X) -> np.ndarray:
        """Decode latent points (n_samples, latent_dim) to pixels in [0, 1] (n_samples, n_features_in_)."""
        check_is_fitted(self)
        Z = check_array(_to_numpy(X), dtype=np.float32, ensure_all_finite=True)
        dim = self.model_.geometry.dim
        if Z.shape[1] != dim:
            raise LatentAtlasError(f"inverse_transform takes latent points of dimension {dim}, got {Z.shape[1]} columns")
        return self.scaling_.inverse(decode(self.model_, Z))

    def score(self, X, y=None) -> float:
        """Negative mean per-pixel reconstruction loss (the training loss): higher is better."""
        check_is_fitted(self)
        errors = reconstruction_errors(self.model_, self._validate(X, reset=False))
        return -errors[metric_name(self.config_.loss)]

    def save(self, path, overwrite: bool = False) -> Path:
        """Write the fitted model into the folder ``path``; ``Autoencoder.load`` reads it back.

        The folder gets what a run folder's writer writes (``config.json``, ``model.safetensors``,
        ``history.json``), the estimator's parameters and feature names (``estimator.json``), its fitted scaling
        (``scaling.json``) and ``manifest.json``, and nothing else. It is written whole in a hidden temporary folder beside ``path``,
        then renamed into place (the old folder moved aside first, then deleted), so a crash never leaves a mix of
        old and new files at ``path``.

        Parameters
        ----------
        path : str or path-like
            A folder that does not exist yet, or an empty one.
        overwrite : bool, default=False
            Replace an existing saved model or run folder at ``path`` wholesale (its metrics, latents and figures
            go too, since they describe other weights). A non-empty folder that is neither is always refused.

        Returns
        -------
        Path
            ``path``.
        """
        check_is_fitted(self)
        path = Path(path)
        check_replaceable(path, overwrite, "path", "replace")  # the guard every folder writer goes through
        own = {"params": {k: _json_param(v, self.config_.seed) for k, v in self.get_params().items()}}
        if hasattr(self, "feature_names_in_"):
            own["feature_names_in"] = [str(name) for name in self.feature_names_in_]

        def write(folder: Path) -> None:
            held.enter_context(FolderLock(folder))  # the output guard writes into a run folder only under its lock
            write_model(folder, self.config_, self.model_, self.history_,
                        {ESTIMATOR_FILE: own, SCALING_FILE: scaling_to_json(self.scaling_)})
            write_manifest(folder)

        # One writer at a time: the folder being replaced stays locked until its replacement is in place.
        with contextlib.ExitStack() as held:
            if path.is_dir():
                held.enter_context(FolderLock(path))
            return atomic_write_folder(path, write)

    @classmethod
    def load(cls, path, device: str = "cpu") -> Autoencoder:
        """A fitted estimator from a folder written by ``save`` or from any run folder; never runs pickled code."""
        run = load_run(path, device=pick_device(device))
        # Saved before 0.2, a folder kept the estimator's own state in config.json's "extra"; now it has files.
        old = run.config.extra
        own = read_json(run.path / ESTIMATOR_FILE) if (run.path / ESTIMATOR_FILE).is_file() else {
            "params": old.get("estimator"), "feature_names_in": old.get("feature_names_in")}
        params = own["params"] or _params_from_config(run.config)
        params = {k: v for k, v in params.items() if k in cls._get_param_names()}
        if params.get("hidden_sizes") is not None:
            params["hidden_sizes"] = tuple(params["hidden_sizes"])
        est = cls(**params)
        est.scaling_ = scaling_from_json(read_json(run.path / SCALING_FILE) if (run.path / SCALING_FILE).is_file()
                                         else {"name": est.scaling if est.scaling in SCALINGS else Pixels.name,
                                               **old.get("minmax", {})})
        est.model_, est.config_, est.history_ = run.model, run.config, run.history
        est.n_features_in_ = run.model.n_features
        if own.get("feature_names_in") is not None:
            est.feature_names_in_ = np.asarray(own["feature_names_in"], dtype=object)
        est._n_features_out = run.model.geometry.dim
        est._fit_labels = None
        if (run.path / LATENTS).is_file():
            lat = run.latents()  # a CLI run folder: its training latents, as fit would have kept them
            est.embedding_, est._fit_labels = lat["z_train"], lat["y_train"]
        return est

    def explore(self, X, y=None, max_points: int | None = None, color_by=None):
        """The live explorer of ``X`` (samples as in ``transform``, coloured by the labels ``y`` if given (integers,
        or names: strings, a pandas Categorical, which the legend shows), or by
        ``color_by``: one value per sample, or a ``latentatlas.ColorBy`` such as ``ColorBy(heading, "circular")``),
        shown inline in a notebook; ``.save(path)`` writes the page. Returns a ``latentatlas.viz.notebook.ExplorerView``."""
        from .data import Dataset
        from .runs import Run
        from .viz.explorer import MAX_POINTS, explorer_html
        from .viz.notebook import ExplorerView

        check_is_fitted(self)
        images = self._validate(X, reset=False)
        shape = np.shape(_to_numpy(X))[1:]
        labels, classes = _labels_and_names(y, len(images))
        images = images.reshape(len(images), *shape) if len(shape) == 2 else images
        data = Dataset("X", images, labels, images, labels, classes=classes)
        run = Run(Path(type(self).__name__), self.config_, self.model_, self.history_, {})
        page = explorer_html(run, data, MAX_POINTS if max_points is None else max_points,
                             latents={"z_test": encode(self.model_, images), "y_test": labels},
                             color_by="class" if color_by is None else color_by)
        return ExplorerView(page)

    def _html_repr(self):
        """In a notebook, a fitted estimator shows its settings, training and encoder map; an unfitted one,
        scikit-learn's diagram."""
        if not hasattr(self, "model_"):
            return super()._html_repr()
        from .model import count_parameters
        from .viz.notebook import summary_html, thumbnail

        cfg = self.config_
        settings = {"preset": cfg.preset or "custom", "layers": "-".join(map(str, cfg.hidden_sizes)),
                    "geometry": f"{cfg.geometry}, latent_dim {cfg.latent_dim}", "epochs": cfg.epochs,
                    "random_state": cfg.seed, "device": cfg.device, "precision": cfg.precision}
        last = self.history_[-1] if self.history_ else {}
        metrics = {"n_params": count_parameters(self.model_), "final train loss": last.get("train_loss"),
                   "train_seconds": sum(r.get("seconds", 0.0) for r in self.history_)}
        embedding = getattr(self, "embedding_", None)
        png = None if embedding is None else thumbnail(self.model_.geometry, embedding, self._fit_labels)
        return summary_html(f"Autoencoder (fitted on {self.n_features_in_:,} features)", "latentatlas.Autoencoder",
                            settings, metrics, png)

    def _validate(self, X, reset: bool) -> np.ndarray:
        """Check X and bring it to what the network takes: uint8, or float32 in [0, 1] (after min-max scaling)."""
        X, given = _given(_to_numpy(X))
        if getattr(X, "ndim", 2) > 2:  # image stacks (N, H, W) are rows of pixels
            X = X.reshape(len(X), -1)
        keeps_uint8 = self.scaling in (AUTO, Pixels.name) if reset else self.scaling_.keeps_uint8
        X = validate_data(self, X, reset=reset, dtype=None if keeps_uint8 and given == np.uint8 else np.float32,
                          ensure_all_finite=True)
        if reset:
            self.scaling_, self._scaling_note = fit_scaling(self.scaling, X)
        return self.scaling_.transform(X, given)

    @property
    def data_min_(self) -> np.ndarray:
        return self._scaling_attribute("data_min_")

    @property
    def data_range_(self) -> np.ndarray:
        return self._scaling_attribute("data_range_")

    def _scaling_attribute(self, name: str):
        """A fitted attribute of the scaling, as the estimator's own (AttributeError where it has none)."""
        value = getattr(getattr(self, "scaling_", None), name, None)
        if value is None:
            raise AttributeError(f"{type(self).__name__} has no {name} (fitted with scaling={self.scaling!r})")
        return value

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = getattr(SCALINGS.get(self.scaling), "positive_only", False)
        tags.transformer_tags.preserves_dtype = ["float32"]  # latents are float32, as the network computes them
        tags.non_deterministic = self.random_state is None
        return tags


# The estimator's parameters: every setting of the table but the data ones (seed as random_state, default None:
# scikit-learn's convention), then the estimator's own.
_ESTIMATOR_NAMES = {f.name: (f.name if f.metadata["estimator"] == "same" else f.metadata["estimator"])
                    for f in SETTINGS if f.metadata["estimator"] is not None}
_OWN = {"random_state": None, "verbose": False}
_SIGNATURE = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + [
    inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=_OWN.get(name, f.default))
    for f in SETTINGS if (name := _ESTIMATOR_NAMES.get(f.name)) is not None] + [
    inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
    for name, default in _OWN.items() if name not in _ESTIMATOR_NAMES.values()])
Autoencoder.__init__.__signature__ = _SIGNATURE


def _settings_doc() -> str:
    """The Parameters entries of the settings the estimator takes from the table (random_state has its own)."""
    lines = []
    for f in SETTINGS:
        if f.name in _ESTIMATOR_NAMES and f.name != "seed":
            kind = setting_type(f)
            kind = kind.__name__ if isinstance(kind, type) else str(kind).replace("typing.", "")
            lines.append(f"    {f.name} : {kind}, default={f.default!r}\n        {f.metadata['help']}")
    return "\n".join(lines) + "\n"


Autoencoder.__doc__ = Autoencoder.__doc__.replace("__SETTINGS__\n", _settings_doc())


def _params_from_config(cfg: RunConfig) -> dict:
    """Estimator parameters for a run folder made by the CLI (its seed becomes random_state)."""
    d = dataclasses.asdict(cfg)
    d["random_state"] = d.pop("seed")
    return d
