"""torch.distributed plumbing of the training drivers: which rank this is, and the few
collectives GRPO needs (broadcast of rank 0's draw, all-gather of scores, sums, gradient
all-reduce). gloo on CPU, NCCL on GPU; a single process needs no process group and every helper
is then the identity. Models never call these: only the drivers do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Ranks:
    """This process's place in the (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"
    """Where collective tensors live: cpu for gloo, the rank's GPU for NCCL."""

    @staticmethod
    def current() -> Ranks:
        if not (dist.is_available() and dist.is_initialized()):
            return Ranks()
        is_nccl = dist.get_backend() == "nccl"
        device = f"cuda:{torch.cuda.current_device()}" if is_nccl else "cpu"
        return Ranks(dist.get_rank(), dist.get_world_size(), device)

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def broadcast_from_rank0(tensor: Tensor, ranks: Ranks) -> Tensor:
    """Rank 0's `tensor` on every rank (returned on the CPU)."""
    if not ranks.is_distributed:
        return tensor
    shared = tensor.to(ranks.device)
    dist.broadcast(shared, src=0)
    return shared.cpu()


def all_gather(tensor: Tensor, ranks: Ranks) -> list[Tensor]:
    """Equal-shaped tensors of every rank, in rank order (on the CPU)."""
    if not ranks.is_distributed:
        return [tensor]
    shared = tensor.contiguous().to(ranks.device)
    parts = [torch.empty_like(shared) for _ in range(ranks.world_size)]
    dist.all_gather(parts, shared)
    return [part.cpu() for part in parts]


def sum_over_ranks(value: float, ranks: Ranks) -> float:
    """The sum of `value` over ranks."""
    if not ranks.is_distributed:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=ranks.device)
    dist.all_reduce(total)
    return float(total)


def all_reduce_gradients(parameters: list[nn.Parameter], ranks: Ranks) -> None:
    if not ranks.is_distributed:
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad)


def init_distributed_from_env(device: str) -> str:
    """Join the process group torchrun describes (WORLD_SIZE > 1); returns this rank's device.

    gloo on CPU, NCCL on CUDA (each rank on cuda:LOCAL_RANK). A single process is left alone.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or dist.is_initialized():
        return device
    is_cuda = device.startswith("cuda")
    dist.init_process_group(backend="nccl" if is_cuda else "gloo")
    if is_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return f"cuda:{local_rank}"
    return device
