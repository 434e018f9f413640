"""Process groups and model wrapping for torchrun (DDP, or FSDP2 with `fully_shard` per block).

One machine:   torchrun --nproc_per_node 8 -m opencodegen.train --config configs/codegen-350M-mono.yaml
Many machines (run the same command on every node; torchrun's c10d rendezvous finds the others):
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST0:29500 --rdzv_id myrun \\
        -m opencodegen.train --config configs/codegen-350M-mono.yaml
(`--node_rank` is only needed with the static `--master_addr/--master_port` rendezvous.) Backend: NCCL on CUDA, gloo
on CPU. Every rank computes the same global batch plan and reads its own rows, so nodes need the token shards at the
same path (shared filesystem or a copy)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
    return Dist(dist.get_rank(), dist.get_world_size(), local)


def wrap(model: nn.Module, d: Dist, mode: str) -> nn.Module:
    if not d.enabled:
        return model
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def full_state_dict(model: nn.Module, d: Dist) -> dict[str, torch.Tensor]:
    """The unsharded model state on CPU (collective under FSDP: every rank must call it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if d.enabled:
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}


def full_optim_state(model: nn.Module, optim: torch.optim.Optimizer, d: Dist):
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    if d.enabled:
        return get_optimizer_state_dict(model, _torch_optimizers(optim),
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return optim.state_dict()


def load_optim_state(model: nn.Module, optim: torch.optim.Optimizer, sd, d: Dist) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if d.enabled:
        set_optimizer_state_dict(model, _torch_optimizers(optim), sd, options=StateDictOptions(full_state_dict=True))
    else:
        optim.load_state_dict(sd)


def _torch_optimizers(optim):
    """torch's distributed state-dict helpers take one optimizer or a list; muon.Optimizers holds a list."""
    return getattr(optim, "optimizers", optim)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def all_mean(x: float, d: Dist) -> float:
    if not d.enabled:
        return x
    t = torch.tensor([x], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / d.world_size


def all_sum(x: float, d: Dist) -> float:
    return all_mean(x, d) * d.world_size


def all_sum_list(xs: list[float], d: Dist) -> list[float]:
    """Element-wise sums over the processes (one collective for the whole list)."""
    if not d.enabled:
        return list(xs)
    t = torch.tensor(xs, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def all_max(x: int, d: Dist) -> int:
    if not d.enabled:
        return x
    t = torch.tensor([x], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def close(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
