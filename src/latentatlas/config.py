"""Every setting of a run, its type, default and help, in one table.

``RunConfig``'s fields are the single source: the command line's options (``--batch-size``), the scikit-learn
estimator's parameters, the keys of a run's ``config.json`` and the sweep spec's keys are all made from them, so a
new setting is one line here. The estimator calls ``seed`` ``random_state`` (scikit-learn's convention) and leaves
out the data settings (it is fitted on arrays).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

from .errors import LatentAtlasError, unknown_name


def setting(default, help: str, *, low=None, above=None, high=None, estimator: str | None = "same"):
    """A field of the settings table: its default, one line of help, for a number its range (``low`` and ``high``
    inclusive, ``above`` exclusive; checked by ``RunConfig.validate``), and ``estimator``: its name as an estimator
    parameter ("same", another name, or None for none)."""
    return field(default=default, metadata={"help": help, "estimator": estimator, "range": (low, above, high)})


@dataclass(frozen=True)
class RunConfig:
    preset: str | None = setting(
        "deep-2d", "Architecture preset (see `latentatlas presets`); none: give hidden_sizes, geometry, latent_dim.")
    hidden_sizes: tuple[int, ...] | None = setting(
        None, "Encoder widths, e.g. 392,64 (the decoder mirrors them) [default: the preset's].", low=1)
    geometry: str | None = setting(None, "Latent geometry, a name in latentatlas.geometries.GEOMETRIES (a wrong one "
                                        "lists them) [default: the preset's].")
    latent_dim: int | None = setting(None, "Latent dimension (the sphere: of the space it sits in) [default: the "
                                           "preset's].", low=1)
    activation: str | None = setting(None, "Hidden activation: prelu (the tutorial's, also after the bottleneck) or "
                                           "relu (the bottleneck linear) [default: the preset's].")
    loss: str = setting("bce", "Reconstruction loss: bce (the tutorial's) or mse.")
    scaling: str = setting("auto", "How samples become the network's inputs in [0, 1]: pixels (uint8 0..255 or floats "
                                   "in [0, 1]), minmax (each feature's training min and max to 0 and 1: any numbers), "
                                   "or auto (pixels where the data are pixels, else minmax, said in one line).")
    beta: float = setting(1.0, "Weight of the KL term; variational geometries only (1: the ELBO).", low=0)
    kl_warmup: int = setting(0, "Epochs over which the KL weight rises linearly to beta; 0: none.", low=0)
    iwae_k: int = setting(500, "Importance samples per test image for the IWAE log-likelihood of a variational "
                               "run; 0: skip it.", low=0)
    ne_weight: float | None = setting(None, "Weight of the neighbour-embedding term (maps that keep input-space "
                                           "neighbours together); 0: off [default: the preset's].", low=0)
    ne_k: int = setting(15, "Neighbours per sample in the neighbour-embedding term's graph.", low=1)
    layout: str | None = setting(None, "How the map is made: encoder (the encoder's output, trained by the "
                                       "objective) or free (the training images laid out t-SNE-like first, the "
                                       "decoder and encoder fitted to that map, new images refined on it) "
                                       "[default: the preset's].")
    layout_engine: str | None = setting(None, "Free layout: what lays the map out: latentatlas (its own optimiser, any "
                                               "geometry), opentsne (openTSNE's FFT-accelerated t-SNE on the same "
                                               "graph; on the sphere its map of the plane sent onto it, areas kept) "
                                               "or auto (opentsne above 16,384 training images, else latentatlas; a "
                                               "run's config records which) [default: the preset's].")
    layout_k: int = setting(10, "Free layout: neighbours per training image in its graph, and per new image when "
                                "placed.", low=1)
    layout_steps: int | None = setting(None, "Free layout: optimisation steps of the map, the first third "
                                              "exaggerated (as t-SNE's 250 of 750) [default: 750, and with the "
                                              "latentatlas engine on more than 16,384 points 750 x N / 16,384].",
                                  low=1)
    refine_steps: int = setting(100, "Free layout: steps that refine each new image's place on the frozen map; "
                                     "0: the median of its neighbours' places.", low=0)
    placement: str = setting("refine", "Free layout: how new images are placed: refine (on the frozen map, as "
                                       "openTSNE's transform; the sharper) or encoder (its one pass; the faster).")
    # Denoising training: each training batch's inputs corrupted afresh (seeded per epoch), its targets clean.
    train_noise: float = setting(0.0, "Denoising: Gaussian noise of this sigma (pixels in 0..1) added to every training "
                                      "input, the target kept clean; 0: off.", low=0)
    train_occlude: int = setting(0, "Denoising: a square of this side (pixels) blanked at a random place in every "
                                    "training input, the target kept clean; 0: off.", low=0)
    n_init: int = setting(1, "Initialisations to try: each trains init_epochs epochs and the one with the lowest "
                             "training loss goes on (a torus that folds shows it early); 1: just the seed's.", low=1)
    init_epochs: int = setting(10, "Epochs each of n_init initialisations trains before one is kept (past "
                                   "kl_warmup for a variational run).", low=1)
    epochs: int = setting(10, "Passes over the training set (train, compare and the demo give every run, where none "
                               "are given, at least the epochs of 2,000 steps: 63 on mnist-5k).",
                          low=1)
    batch_size: int = setting(128, "Samples per step.", low=1)
    lr: float = setting(1e-3, "Adam's learning rate (the tutorial's 1e-3); a schedule's peak.", above=0, high=1)
    lr_schedule: str = setting("constant", "The learning rate over the run: constant (the tutorial's), one-cycle, or "
                                           "cosine (with warm-up); see latentatlas.schedules.SCHEDULES.")
    seed: int = setting(0, "Seeds weights and shuffling: same seed, same machine, identical weights.", low=0,
                        high=2**63 - 1, estimator="random_state")  # torch takes a signed 64-bit seed
    data: str = setting("mnist-5k", "Data set name or path (see `latentatlas datasets`); mnist-5k works offline.",
                        estimator=None)
    # The first layer grows with the square: 512 x 512 inputs already give the tutorial's MLP 100 M weights.
    image_size: int | None = setting(None, "Folders of images: resize each to N x N pixels (at most 512).", low=1,
                                     high=512, estimator=None)
    transforms: tuple[str, ...] = setting(
        (), "Data transforms applied in order, as NAME:KEY=VALUE (e.g. holdout:classes=3,5).", estimator=None)
    device: str = setting("auto", "auto (CUDA when available, else CPU), cpu, cuda or cuda:N.")
    # "auto" = bf16 autocast (fp32 master weights) where the hardware runs it natively, else fp32.
    precision: str = setting("auto", "auto (bf16 where the hardware computes it natively, else fp32), fp32 or bf16.")
    extra: dict = field(default_factory=dict, compare=False, repr=False)  # free-form notes saved with the run

    def resolved(self) -> RunConfig:
        """Fill architecture fields from the preset and check every value; raise LatentAtlasError if one is wrong."""
        from .presets import Preset, get_preset

        # The preset fills every setting it has a field of (Preset's fields that are RunConfig's too) that is not
        # given; without a preset, those with a default in Preset take it. A new preset field needs no line here.
        shared = [f for f in dataclasses.fields(Preset) if f.name in {s.name for s in SETTINGS}]
        if self.preset is not None:
            p = get_preset(self.preset)
            fill = {f.name: getattr(p, f.name) for f in shared}
        else:
            fill = {f.name: f.default for f in shared if f.default is not dataclasses.MISSING}
        cfg = dataclasses.replace(self, **{k: v for k, v in fill.items() if getattr(self, k) is None})
        missing = [f.name for f in shared if getattr(cfg, f.name) is None]  # what only a preset has no default of
        if missing:
            raise LatentAtlasError(f"no preset given, so {', '.join(missing)} must be set")
        for f in SETTINGS:  # a setting of several values given one (5, or "noise:sigma=0.1", read letter by letter)
            if setting_kind(f)[1] and not isinstance(getattr(cfg, f.name), (list, tuple)):
                raise LatentAtlasError(f"{f.name}={getattr(cfg, f.name)!r} is not a list: give a list of values")
        cfg = dataclasses.replace(cfg, hidden_sizes=tuple(cfg.hidden_sizes), transforms=tuple(cfg.transforms))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        from .data.spec import parse_transform
        from .geometries import GEOMETRIES, get_geometry
        from .losses import KINDS
        from .nets import ACTIVATIONS
        from .schedules import get_schedule
        from .scaling import SCALING_CHOICES

        _check_choice("geometry", self.geometry, GEOMETRIES)
        _check_choice("loss", self.loss, KINDS)
        _check_choice("scaling", self.scaling, SCALING_CHOICES)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("precision", self.precision, ("auto", "fp32", "bf16"))
        _check_choice("layout", self.layout, LAYOUTS)
        _check_choice("placement", self.placement, PLACEMENTS)
        if self.layout == "free":
            from .layout_engines import check_engine

            check_engine(self.layout_engine, get_geometry(self.geometry, self.latent_dim))
        get_schedule(self.lr_schedule)
        for f in SETTINGS:
            if f.metadata["range"] != (None, None, None):
                _check_range(f, getattr(self, f.name))
        for text in self.transforms:
            parse_transform(text)
        get_geometry(self.geometry, self.latent_dim)  # the geometry rejects a dimension it cannot take
        check_restarts(self.n_init, self.init_epochs, self.epochs)

    @property
    def description(self) -> str:
        """The architecture in a few words, for a line such as "training <it> ...": the preset's name, with the
        settings given in place of the preset's ("deep-s2, geometry=torus"), or "custom" without a preset."""
        from .presets import Preset, get_preset

        if self.preset is None:
            return "custom"
        p = get_preset(self.preset)
        settings = {f.name for f in SETTINGS}
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(Preset)
                   if f.name in settings and getattr(self, f.name) not in (None, getattr(p, f.name))]
        return ", ".join([self.preset, *changed])

    @property
    def data_spec(self):
        """The run's data as a :class:`latentatlas.data.DataSpec`: source, image size and transforms."""
        from .data.spec import DataSpec

        return DataSpec(self.data, self.image_size, tuple(self.transforms), self.scaling)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = None if self.hidden_sizes is None else list(self.hidden_sizes)
        d["transforms"] = list(self.transforms)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """A config from ``config.json`` (of this version or an earlier one: settings added since take defaults,
        those a preset fills the value that means off, ``Preset``'s default: an old atlas run stays what it was)."""
        from .presets import Preset

        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise LatentAtlasError(f"unknown config keys {unknown}: valid keys are {sorted(names)}")
        d = dict(d)
        if d.get("hidden_sizes") is not None:  # resolved (a run's config.json): fill a preset field added since
            d.update({f.name: f.default for f in dataclasses.fields(Preset) if f.name in names and f.name not in d
                      and f.default is not dataclasses.MISSING})
        for key in ("hidden_sizes", "transforms"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)


LAYOUTS = ("encoder", "free")  # the ``layout`` setting's choices
PLACEMENTS = ("refine", "encoder")  # the ``placement`` setting's

SETTINGS: tuple[dataclasses.Field, ...] = tuple(f for f in dataclasses.fields(RunConfig) if "help" in f.metadata)


def setting_type(f: dataclasses.Field):
    """A setting's annotation, resolved (``int | None``, ``tuple[int, ...]``, ...)."""
    return typing.get_type_hints(RunConfig)[f.name]


def setting_kind(f: dataclasses.Field) -> tuple[type, bool]:
    """(the type of the setting's values, whether it holds several): ``tuple[int, ...] | None`` -> (int, True),
    ``float | None`` -> (float, False); what the CLI, the estimator and the range check each need to know."""
    kind = setting_type(f)
    args = [a for a in typing.get_args(kind) if a is not type(None)] if typing.get_origin(kind) is not tuple else []
    kind = args[0] if args else kind  # X | None -> X
    if typing.get_origin(kind) is tuple:
        return typing.get_args(kind)[0], True
    return kind, False


def check_restarts(n_init: int, init_epochs: int, epochs: int) -> None:
    """The one check of restarts, for a config and for a trainer built without one: with n_init > 1, each
    initialisation's init_epochs must leave epochs to go on with."""
    if n_init > 1 and not 0 < init_epochs < epochs:
        raise LatentAtlasError(f"init_epochs={init_epochs} leaves no epochs after choosing among n_init={n_init} "
                               f"initialisations: make it between 1 and epochs - 1 = {epochs - 1}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_range(f: dataclasses.Field, value) -> None:
    """A number setting (or each number of a tuple) against the table's range; None passes where it is allowed."""
    if value is None and type(None) in typing.get_args(setting_type(f)):
        return
    low, above, high = f.metadata["range"]
    kind, several = setting_kind(f)
    if kind is int:
        for v in (value if several and isinstance(value, tuple) else (value,)):
            _check_int(f.name, v, low=low, high=high)
        return
    ok = _is_number(value) and math.isfinite(value) and (low is None or value >= low) and (
        above is None or value > above) and (high is None or value <= high)
    if not ok:
        raise out_of_range(f, value)


def check_setting(name: str, value) -> None:
    """One number setting's value against the table's range, for a function that takes it on its own
    (``load_dataset(image_size=...)``)."""
    _check_range(next(f for f in SETTINGS if f.name == name), value)


def out_of_range(f: dataclasses.Field, value) -> LatentAtlasError:
    """The refusal of a number setting's value, with the range the settings table gives it."""
    low, above, high = f.metadata["range"]
    lo = f"({above}" if above is not None else f"[{low}" if low is not None else "(-inf"
    allowed = f"in {lo}, {high}]" if high is not None else f">= {low}" if low is not None else f"> {above}"
    return LatentAtlasError(f"{f.name}={value!r} is out of range: it must be a number {allowed}")


def _check_choice(name: str, value, choices) -> None:
    if not isinstance(value, str) or value not in choices:
        raise unknown_name(name, value, choices)


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise LatentAtlasError(f"{name}={value!r} is out of range: it must be an integer {allowed}")
