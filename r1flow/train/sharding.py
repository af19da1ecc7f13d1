"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for the training modules, through Lightning's
``ModelParallelStrategy`` (``trainer.strategy=fsdp2``).

Every training module shards its model in ``configure_model``: each decoder layer (the classes a
Hugging Face model names in ``_no_split_modules``), then the whole model, over the data-parallel
mesh of all ranks. Each rank then holds 1/W of the weights, gradients and AdamW states; a forward
gathers one layer at a time. Without that strategy there is no mesh and nothing changes.

Sampling from a sharded policy (GRPO's rollouts and checks) gathers the whole model once, for the
duration of the sampling (``unsharded``): the ranks sample different prompts, for different numbers
of steps, so no collective may run inside ``generate``.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import lightning as L
import torch
from torch.distributed.fsdp import FSDPModule, fully_shard, register_fsdp_forward_method

from r1flow.config.base import TrainerConfig, explicit_devices
from r1flow.config.checks import ConfigError

FSDP2 = "fsdp2"  # the trainer.strategy value
ROOT_CALL = "r1flow_root_call"  # the method of a sharded model that runs a function as its forward (as_forward)


def fsdp2_strategy(tcfg: TrainerConfig):
    """Lightning's ``ModelParallelStrategy`` as plain FSDP2: one data-parallel dimension over all
    ``devices x num_nodes`` ranks (its "auto" sizes would make the ranks of a node tensor-parallel),
    checkpoints saved whole by rank 0 (``last.ckpt`` stays one file, as with DDP)."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    devices = explicit_devices(tcfg.devices)
    if devices is None:  # "auto": every GPU of the node, else one CPU process
        gpu = tcfg.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
        devices = torch.cuda.device_count() if gpu else 1
    return ModelParallelStrategy(data_parallel_size=devices * tcfg.num_nodes, tensor_parallel_size=1,
                                 save_distributed_checkpoint=False)


def shard_model(model: torch.nn.Module, mesh) -> None:
    """``fully_shard`` each decoder layer of a Hugging Face model, then the model (embeddings, norm,
    head and any tied weights belong to the root group)."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ConfigError("trainer.strategy", f"{FSDP2} shards the decoder layers that a Hugging Face model names in "
                          f"_no_split_modules; {type(model).__name__} names none")
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    setattr(model, ROOT_CALL, types.MethodType(_root_call, model))
    register_fsdp_forward_method(model, ROOT_CALL)


def _root_call(model: torch.nn.Module, fn: Callable, *args, **kwargs):
    return fn(model, *args, **kwargs)


def as_forward(model: torch.nn.Module, fn: Callable, *args, **kwargs):
    """``fn(model, *args, **kwargs)`` run as a forward of ``model``, for code that calls a model's
    parts (``get_decoder()``, ``get_output_embeddings()``) rather than the model. Under FSDP2 the
    root group's weights (embeddings, final norm, head) are only gathered by the model's own forward
    hooks, and only reduced in backward if those hooks ran: here they run around ``fn``. Without
    FSDP2 it is a plain call."""
    call = getattr(model, ROOT_CALL, None)
    return call(fn, *args, **kwargs) if call is not None else fn(model, *args, **kwargs)


class ShardedModule(L.LightningModule):
    """A LightningModule whose ``model`` (and, when it has one, frozen ``ref_model``) FSDP2 shards."""

    def configure_model(self) -> None:
        if self.device_mesh is None or any(isinstance(m, FSDPModule) for m in self.model.modules()):
            return  # not under ModelParallelStrategy, or already sharded (Lightning may call this twice)
        mesh = self.device_mesh["data_parallel"]
        shard_model(self.model, mesh)
        if getattr(self, "ref_model", None) is not None:
            shard_model(self.ref_model, mesh)


@contextmanager
def unsharded(model: torch.nn.Module) -> Iterator[None]:
    """Inside, an FSDP2-sharded ``model`` is whole on every rank and its forwards run no collective
    (gathered once on entry, a collective every rank must enter; resharded on exit). A model that is
    not sharded passes through."""
    groups = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not groups:
        yield
        return
    for m in groups:
        m.unshard()
        m.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for m in groups:  # back to FSDP2's defaults: layers reshard after forward, the root keeps its weights
            m.set_reshard_after_forward(m is not model, recurse=False)  # (its backward needs them at once)
            m.reshard()
