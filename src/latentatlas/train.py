"""A training loop that knows nothing about the model: a module, a loss function and arrays of samples.

The loss function takes the model and a :class:`~latentatlas.losses.Batch` (the inputs, their indices in the
training set, the epoch) and returns the loss, or ``(loss, {component name: value})``; every component is logged per
epoch. The optimizer and its learning-rate schedule come from a factory (Adam at a constant rate by default), and
callbacks see every step and every epoch and may stop training.

Fast by construction: the data stay as they are given (uint8 images are scaled per batch, never copied whole), the
shuffle is a permutation of indices, the train loss is the mean over the epoch's batches (no second pass), nothing
waits on the device inside an epoch, and bf16 autocast runs where the hardware supports it.

Each epoch's shuffle and random state come from ``(seed, epoch)`` alone, and the schedule's state is checkpointed
with the optimizer's, so a run resumed at an epoch boundary continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from . import hardware
from ._tensors import as_tensor, to_unit_float
from .config import check_restarts
from .errors import LatentAtlasError, option
from .losses import Batch
from .progress import progress
from .schedules import get_schedule

LossFn = Callable[[nn.Module, Batch], "Tensor | tuple[Tensor, dict[str, Tensor]]"]


class NonFiniteLossError(LatentAtlasError):
    """The loss became NaN or infinite; the message names the epoch and batch."""


@dataclass(frozen=True)
class Adam:
    """The default optimizer factory: Adam, at a constant learning rate as the tutorial trains, or under a named
    schedule of :data:`latentatlas.schedules.SCHEDULES` whose peak is ``lr``.

    A factory is called with the parameters and the number of steps the run will take, and returns the optimizer
    and a learning-rate scheduler stepped after every step (or None).
    """

    lr: float = 1e-3
    schedule: str = "constant"

    def __call__(self, params, total_steps: int):
        params = list(params)
        optimizer = torch.optim.Adam(params, lr=self.lr, **_fast_adam_kwargs(params[0].device))
        if self.schedule == "constant":
            return optimizer, None  # no scheduler at all: runs stay byte-identical to those made before schedules
        factor = get_schedule(self.schedule)
        # A closure, not a lambda attribute: LambdaLR then keeps only numbers in its state (JSON in checkpoints).
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step, total_steps))


@dataclass(frozen=True)
class Shuffle:
    """The default batches: each epoch a permutation of the samples, cut into batches of ``batch_size``.

    A batch sampler is called with the number of samples, the epoch's generator and the epoch (0-based; for a
    sampler that draws from seeds of its own, as stacked members do) and returns the epoch's index batches, each
    (B,) or, for stacked members, (M, B); ``n_batches(n)`` says how many it will return.
    """

    batch_size: int

    def n_batches(self, n: int) -> int:
        return math.ceil(n / self.batch_size)

    def __call__(self, n: int, generator: torch.Generator, epoch: int = 0) -> list[Tensor]:
        return list(torch.randperm(n, generator=generator).split(self.batch_size))


@dataclass
class Callback:
    """Hooks the trainer calls; subclass and override what you need. Set ``trainer.stop_training = True`` to end
    training after the current step."""

    def on_step_end(self, trainer: Trainer, step: int) -> None:  # step: 1-based count over the whole run
        pass

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        pass

    def on_train_end(self, trainer: Trainer) -> None:
        pass


def unstackable(default, reason: str):
    """A trainer setting that seeds trained stacked (latentatlas.stack) cannot honour once it leaves ``default``;
    ``reason`` says why, in a few words, and stacking then refuses with it (the runs train separately)."""
    return field(default=default, metadata={"unstackable": reason})


@dataclass
class Trainer:
    """Trains ``model`` on ``loss_fn``. A new setting is a field here; a setting that stacked seeds cannot share (it
    acts on each member's parameters as a whole, or on each run's own draws) is declared with :func:`unstackable`.
    """

    model: nn.Module
    loss_fn: LossFn
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # "fp32" or "bf16" (autocast, fp32 master weights); resolve "auto" with pick_precision
    optimizer_factory: Callable = field(default_factory=Adam)
    batch_sampler: Callable | None = None  # None: Shuffle(batch_size)
    eval_batch_size: int = 4096
    callbacks: Sequence[Callback] = ()
    progress: bool | None = None  # None: a bar on a terminal, lines elsewhere (progress.progress); False: silent
    # applied to each training batch in [0, 1] (Dataset.draw_train: binarisation)
    draw: Callable | None = unstackable(None, "the training images are drawn anew each batch (binarisation)")
    # Restarts (scikit-learn's n_init): n_init initialisations train init_epochs each and the one with the lowest
    # training loss goes on; ``model_factory(i)`` builds initialisation i >= 1 (``model`` is initialisation 0).
    n_init: int = unstackable(1, "each run chooses among its own initialisations (n_init)")
    init_epochs: int = 10
    model_factory: Callable[[int], nn.Module] | None = None
    history: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.device = torch.device(self.device)
        self.model.to(self.device)
        self.optimizer = self.scheduler = None  # made by the factory once the number of steps is known
        self.stop_training = False
        self._pending_state: dict | None = None
        if self.batch_sampler is None:
            self.batch_sampler = Shuffle(self.batch_size)

    def fit(self, x_train, x_eval=None, start_epoch: int = 0) -> list[dict]:
        """Train from ``start_epoch`` to ``epochs``; ``x_*`` are (N, D) uint8 or floats in [0, 1]."""
        x_train = self._to_device(x_train)
        x_eval = None if x_eval is None else self._to_device(x_eval)
        n = x_train.shape[0]
        n_batches = self.batch_sampler.n_batches(n)
        if start_epoch == 0 and self.n_init > 1:
            start_epoch = self._keep_best_initialisation(x_train)
        self._build_optimizer(self.epochs * n_batches)
        self.stop_training = False
        # A bar on a terminal; elsewhere (a file, a pipe, a notebook) a line per epoch, every few seconds at most.
        bar = progress((self.epochs - start_epoch) * n_batches, "training", unit="batches", show=self.progress)
        for epoch in range(start_epoch, self.epochs):
            t0 = time.perf_counter()
            batches = [b.to(self.device) for b in self.batch_sampler(n, seed_epoch(self.seed, epoch), epoch)]
            self.model.train()
            sums, names = None, []
            first_bad = torch.full((), -1, device=self.device, dtype=torch.long)
            done = 0
            for b, index in enumerate(batches):
                # (B, D), or (M, B, D) for an (M, B) batch of stacked members
                xb = to_unit_float(x_train.index_select(0, index.flatten()).unflatten(0, index.shape))
                batch = Batch(xb if self.draw is None else self.draw(xb), index, epoch)
                with self._autocast():
                    loss, parts = loss_and_parts(self.loss_fn(self.model, batch))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                loss = loss.detach()
                values = torch.stack([loss, *(v.float() for v in parts.values())])
                if sums is None:
                    sums, names = torch.zeros_like(values), list(parts)
                sums += values
                # Record the first non-finite batch without a host sync; checked once per epoch.
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), b, first_bad)
                done += 1
                bar.update()
                for cb in self.callbacks:
                    cb.on_step_end(self, epoch * n_batches + done)
                if self.stop_training:
                    break
            means = (sums / done).tolist()  # the epoch's one wait on the device
            if first_bad.item() >= 0:
                bar.close()
                raise NonFiniteLossError(
                    f"the loss became non-finite at epoch {epoch + 1}, batch {first_bad.item() + 1}: "
                    "lower the learning rate or check the data; the last complete epoch's checkpoint is kept"
                )
            record = {"epoch": epoch + 1, "train_loss": means[0]}
            terms = {"train": dict(zip(names, means[1:]))}
            if done < n_batches:
                record["steps"] = done  # stopped by a callback inside the epoch
            if x_eval is not None:
                record["test_loss"], terms["test"] = self.evaluate(x_eval, epoch)
            record["seconds"] = time.perf_counter() - t0
            record["terms"] = terms
            self.history.append(record)
            bar.set_postfix(epoch=epoch + 1, **{k: f"{v:.4f}" for k, v in record.items() if k.endswith("loss")})
            for cb in self.callbacks:
                cb.on_epoch_end(self, record)
            if self.stop_training:
                break
        bar.close()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def _keep_best_initialisation(self, x_train: Tensor) -> int:
        """Train ``n_init`` initialisations for ``init_epochs`` epochs each (each with its own seed: weights and data
        order), make the one with the lowest training loss in its last epoch this trainer's state, and return the
        epoch to go on from. The candidates and their losses are in that epoch's history record under ``n_init``.

        Some latents have bad local minima that a few epochs already show: a torus folds onto itself in about half
        the runs on synthetic grid cells, and its training loss after 10 epochs sets those runs apart.
        """
        if self.model_factory is None:
            raise ValueError("n_init > 1 needs a model_factory to build the other initialisations")
        check_restarts(self.n_init, self.init_epochs, self.epochs)
        candidates = []
        for i in range(self.n_init):
            model = self.model if i == 0 else self.model_factory(i)
            candidate = dataclasses.replace(self, model=model, seed=initialisation_seed(self.seed, i), n_init=1,
                                            callbacks=(_StopAfter(self.init_epochs),), history=[])
            candidate.fit(x_train)
            candidates.append(candidate)
        losses = [c.history[-1]["train_loss"] for c in candidates]
        best = candidates[int(np.argmin(losses))]
        if best.model is not self.model:
            self.model.load_state_dict(best.model.state_dict())
        self.history = best.history
        self.history[-1]["n_init"] = {"train_losses": losses, "kept": int(np.argmin(losses)),
                                      "seeds": [c.seed for c in candidates]}
        self._pending_state = {"optimizer": best.optimizer.state_dict(),
                               "scheduler": None if best.scheduler is None else best.scheduler.state_dict()}
        self.optimizer = self.scheduler = None  # rebuilt over this trainer's parameters, with the winner's state
        return len(self.history)

    @torch.inference_mode()
    def evaluate(self, x, epoch: int | None = None) -> tuple[float, dict[str, float]]:
        """Mean loss and components over ``x`` (weighted by batch size), in eval mode, as samples outside the
        training set: terms defined only on the training set are left out."""
        self.model.eval()
        x = self._to_device(x)
        epoch = len(self.history) if epoch is None else epoch
        sums, names = None, []
        for i in range(0, x.shape[0], self.eval_batch_size):
            xb = to_unit_float(x[i : i + self.eval_batch_size])
            with self._autocast():
                loss, parts = loss_and_parts(self.loss_fn(self.model, Batch(xb, None, epoch)))
            values = torch.stack([loss, *(v.float() for v in parts.values())]).double() * xb.shape[0]
            if sums is None:
                sums, names = torch.zeros_like(values), list(parts)
            sums += values
        self.model.train()
        means = (sums / x.shape[0]).tolist()
        return means[0], dict(zip(names, means[1:]))

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint; the optimizer's and schedule's parts wait until ``fit`` builds them."""
        self.model.load_state_dict(state["model"])
        self.history = list(state["history"])
        self._pending_state = state

    def _build_optimizer(self, total_steps: int) -> None:
        if self.optimizer is None:
            self.optimizer, self.scheduler = self.optimizer_factory(self.model.parameters(), total_steps)
        if self._pending_state is not None:
            self.optimizer.load_state_dict(self._pending_state["optimizer"])
            if self.scheduler is not None and self._pending_state.get("scheduler") is not None:
                self.scheduler.load_state_dict(self._pending_state["scheduler"])
            self._pending_state = None

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, x) -> Tensor:
        return as_tensor(x).reshape(x.shape[0], -1).to(self.device)


def loss_and_parts(result) -> tuple[Tensor, dict[str, Tensor]]:
    """A loss function's result as (loss, its named parts): a loss function may return the loss alone."""
    return result if isinstance(result, tuple) else (result, {})




def initialisation_seed(seed: int, i: int) -> int:
    """The seed of initialisation ``i`` of a run seeded ``seed`` (``n_init``): the run's own seed for i = 0."""
    if i == 0:
        return seed
    return int(np.random.SeedSequence([seed, i]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class _StopAfter(Callback):
    """Stops training once the history holds ``epochs`` epochs."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        trainer.stop_training = len(trainer.history) >= self.epochs


def seed_epoch(seed: int, epoch: int) -> torch.Generator:
    """Seed torch's global RNG and return a generator for this epoch, both from (seed, epoch) alone."""
    s = (seed * 1_000_003 + epoch) % (2**63)
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def pick_device(device: str = "auto") -> str:
    if not isinstance(device, str):  # torch.device(None) and torch.device(["cpu"]) fail in torch's words
        raise LatentAtlasError(f"device={device!r} is not a device: use auto, cpu, cuda or cuda:N")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise LatentAtlasError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):  # meta, mps, xla...: names torch parses, but nothing here trains on them
        raise LatentAtlasError(f"device {device!r}: latentatlas trains on auto, cpu, cuda or cuda:N, not on "
                               f"{dev.type} devices")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LatentAtlasError(f"device {device!r} asked for, but CUDA is not available here: use the CPU "
                               f"({option('device', 'cpu')})")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise LatentAtlasError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                               f"numbered from 0")
    return str(dev)


def pick_precision(precision: str, device: str) -> str:
    """Resolve "auto": bf16 where the device computes it natively (AMX/AVX512-BF16 CPUs, Ampere+ GPUs), and on a
    CPU only where the environment leaves those instructions usable (``hardware.AVX2_ONLY`` gives fp32)."""
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda":
        # Without including_emulation=False, Volta and Turing say yes too, and run bf16 slower than fp32.
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    return "bf16" if hardware.native_bf16() else "fp32"


def _fast_adam_kwargs(device: torch.device) -> dict:
    # The fused kernel updates every parameter in one pass: 8x faster than foreach on a 2-core CPU (BENCHMARKS.md).
    if device.type in ("cpu", "cuda"):
        return {"fused": True}
    return {"foreach": True}
