"""Stacked training: M models of one shape trained as one, each parameter with a leading member axis.

Each member keeps everything a separate run has: its own initialisation (its own model, built as a run of its
seed builds it), its own data order (its own seed's permutation each epoch) and its own optimizer state. Adam is
elementwise, so one fused Adam over the stacked parameters is exactly M independent Adams at the same learning
rate and step; and the loss is the sum of the members' losses, so each member's gradient is its own loss's
gradient alone. The trainer sees an ordinary module, loss function and batch sampler: nothing in it knows about
stacking (``torch.func.functional_call`` under ``vmap`` runs the members' own forward and loss).

Stacking applies to members whose runs differ only in the seed and whose batches are plain shuffles of a
deterministic model; :func:`why_not_stack` says why it does not apply otherwise (callers then train separately).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .errors import LatentAtlasError
from .losses import Batch
from .train import Shuffle, Trainer, loss_and_parts, seed_epoch


class NotStackable(LatentAtlasError):
    """These runs cannot train stacked; ``reason`` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(f"these runs cannot train stacked: {reason}")
        self.reason = reason


SEP = "@"  # a member's logged values are "<name>@<member>": "loss@0", "reconstruction@2"


class Stacked(nn.Module):
    """M modules of the same shape as one module: parameter ``i`` of every member stacked along a new axis 0.

    ``parameters()`` come in the members' own order, so optimizer state ``i`` of the stack is, sliced at ``m``,
    optimizer state ``i`` of member ``m``.
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        params, buffers = stack_module_state(list(members))  # copies; each (M, *shape)
        self.names, self.buffer_names = list(params), list(buffers)
        self.stacked = nn.ParameterList([nn.Parameter(params[n].detach()) for n in self.names])
        for i, n in enumerate(self.buffer_names):
            self.register_buffer(f"buffer{i}", buffers[n])
        # The members' architecture without storage; kept out of the module tree so its parameters are not ours.
        self._skeleton = (copy.deepcopy(members[0]).to("meta"),)
        self.n_members = len(members)

    @property
    def skeleton(self) -> nn.Module:
        return self._skeleton[0]

    def train(self, mode: bool = True):
        self.skeleton.train(mode)  # functional_call runs the skeleton: its mode decides (a posterior's sample or mode)
        return super().train(mode)

    def tensors(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(parameters, buffers) by the members' names, stacked."""
        return (dict(zip(self.names, self.stacked)),
                {n: getattr(self, f"buffer{i}") for i, n in enumerate(self.buffer_names)})

    def member_state(self, m: int) -> dict[str, Tensor]:
        """Member ``m``'s state dict, as its own module would have it (copies)."""
        params, buffers = self.tensors()
        return {n: t[m].detach().clone() for n, t in {**params, **buffers}.items()}


def stacked_loss(loss_fn):
    """The trainer's loss function for a :class:`Stacked` model, from one member's ``loss_fn(model, batch)``.

    A training batch holds each member's own samples, ``x`` (M, B, D) and ``index`` (M, B); an evaluation batch
    (``index`` None) holds one ``x`` (B, D) that every member sees. Returns the sum of the members' losses (so each
    member's gradient is its own) and each member's loss and components as ``"<name>@<m>"``.
    """

    def member(params, buffers, x, index, epoch, skeleton):
        model = lambda inputs: functional_call(skeleton, (params, buffers), (inputs,))
        total, parts = loss_and_parts(loss_fn(model, Batch(x, index, epoch)))
        return total, parts

    def loss(model: Stacked, batch: Batch):
        params, buffers = model.tensors()
        per_member = batch.x.dim() == 3
        dims = (0, 0, 0 if per_member else None, 0 if batch.index is not None else None)
        totals, parts = vmap(lambda p, b, x, i: member(p, b, x, i, batch.epoch, model.skeleton), in_dims=dims,
                             randomness="error")(params, buffers, batch.x, batch.index)
        logged = {f"loss{SEP}{m}": v for m, v in enumerate(totals.unbind())}
        for name, values in parts.items():
            logged.update({f"{name}{SEP}{m}": v for m, v in enumerate(values.unbind())})
        return totals.sum(), logged

    return loss


@dataclass(frozen=True)
class StackedShuffle:
    """Each member's batches as a run of its seed draws them alone: that seed's permutation of the epoch, cut into
    ``batch_size``; a step's batch is (M, B) indices, row m member m's."""

    seeds: tuple[int, ...]
    batch_size: int

    def n_batches(self, n: int) -> int:
        return Shuffle(self.batch_size).n_batches(n)

    def __call__(self, n: int, generator: torch.Generator, epoch: int = 0) -> list[Tensor]:
        orders = [Shuffle(self.batch_size)(n, seed_epoch(seed, epoch)) for seed in self.seeds]
        return [torch.stack(step) for step in zip(*orders)]


def why_not_stack(trainers: Sequence[Trainer], configs: Sequence) -> str | None:
    """None if these member trainers (of runs whose ``configs`` differ only in the seed) can train stacked, else
    the reason, in a few words, for a message such as "training separately: <reason>"."""
    if len(trainers) < 2:
        return "only one model"
    if len({dataclasses.replace(c, seed=0) for c in configs}) > 1:
        return "the runs differ in more than the seed"
    if any(not isinstance(t.batch_sampler, Shuffle) for t in trainers):
        return "the objective draws its own batches (a neighbour term)"
    if any(getattr(t.model, "map", None) is not None for t in trainers):
        return "each run lays out its own map (a free layout)"
    if any(getattr(getattr(t.model, "geometry", None), "variational", False) for t in trainers):
        return "a variational geometry draws samples"
    for f in dataclasses.fields(Trainer):  # settings declared unstackable, where any member uses them
        if "unstackable" in f.metadata and any(getattr(t, f.name) != f.default for t in trainers):
            return f.metadata["unstackable"]
    shapes = {tuple((n, tuple(p.shape)) for n, p in t.model.named_parameters()) for t in trainers}
    if len(shapes) > 1:
        return "the models differ in shape"
    return None


def stack_trainers(trainers: Sequence[Trainer], callbacks=(), progress: bool | None = None) -> Trainer:
    """One trainer that trains the members of ``trainers`` (each built as its own run would build it) together."""
    first = trainers[0]
    sampler = StackedShuffle(tuple(t.seed for t in trainers), first.batch_size)
    # A copy of the first member's trainer, changed where stacking differs: a setting added to Trainer later is
    # carried over, not silently dropped (why_not_stack has refused the ones stacking cannot honour).
    return dataclasses.replace(first, model=Stacked([t.model for t in trainers]), loss_fn=stacked_loss(first.loss_fn),
                               batch_sampler=sampler, eval_batch_size=max(1, first.eval_batch_size // len(trainers)),
                               callbacks=callbacks, progress=progress, model_factory=None, history=[])


def member_history(history: list[dict], m: int, n_members: int) -> list[dict]:
    """Member ``m``'s history, as a run of it alone records it; its seconds are its share of the stack's."""
    out = []
    for record in history:
        mine = {"epoch": record["epoch"]}
        terms = {}
        for split, values in record["terms"].items():
            own = {k.rsplit(SEP, 1)[0]: v for k, v in values.items() if k.endswith(f"{SEP}{m}")}
            mine[f"{split}_loss"] = own.pop("loss")
            terms[split] = own
        if "steps" in record:
            mine["steps"] = record["steps"]
        mine["seconds"] = record["seconds"] / n_members
        mine["terms"] = terms
        out.append(mine)
    return out


def member_trainer_state(stacked: Trainer, m: int) -> dict:
    """Member ``m``'s trainer state (model, optimizer, schedule, history), as its own trainer's ``state_dict``."""
    model: Stacked = stacked.model
    opt = stacked.optimizer.state_dict()
    state = {i: {k: (v[m].clone() if torch.is_tensor(v) and v.ndim > 0 else v) for k, v in s.items()}
             for i, s in opt["state"].items()}
    return {"model": model.member_state(m), "optimizer": {"state": state, "param_groups": opt["param_groups"]},
            "scheduler": None if stacked.scheduler is None else stacked.scheduler.state_dict(),
            "history": member_history(stacked.history, m, model.n_members)}


# Where stacking measured faster than separate runs, by device type and precision: compare stacks there by default
# (BENCHMARKS.md, "Stacked seeds"). On this project's 2-core CPU it measured slower in bf16 and fp32 (vmap's batched
# products and the casts of stacked weights cost more than the per-step overhead they save). A GPU, where a step of
# these small models is launch-bound, is where it should pay; add its entry once measured there (none was lent).
STACK_PAYS: dict[tuple[str, str], bool] = {("cpu", "fp32"): False, ("cpu", "bf16"): False}


def stack_pays(cfg) -> bool:
    """Whether stacking measured faster than separate runs for a resolved run config's device and precision."""
    return STACK_PAYS.get((torch.device(cfg.device).type, cfg.precision), False)
