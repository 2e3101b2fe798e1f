"""The processes a command runs in: this one alone, or those `accelerate launch` / `torchrun` started.

Evaluation and batch inference need three collective operations: an all-gather of equally shaped tensors,
a gather of them onto the main process (rank 0), and a barrier. `ProcessGroup` names them; `SingleProcess`
is the plain `moeclip ...` run, `TorchProcessGroup` the launched one, over the process group that
Accelerate's `PartialState` opens as the launcher configured it (gloo between CPU processes, NCCL between
GPUs, several machines with `--num_machines`). `gather_rows` builds the uneven gather on top of them:
tensors only, no pickled objects, and exact (the bytes that left a process are the bytes that arrive).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import torch
import torch.distributed as dist


class ProcessGroup(ABC):
    """The processes of one run, as a command sees them.

    Attributes:
        rank: this process's index, 0 for the main process.
        num_processes: how many processes run the command.
        device: the device this process computes on.
    """

    rank: int
    num_processes: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is the process that prints, computes the metrics and writes the results."""
        return self.rank == 0

    @abstractmethod
    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every process's `tensor` (the same shape and dtype on all of them), in rank order, on every process."""

    @abstractmethod
    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor] | None:
        """Every process's `tensor` (same shape and dtype) in rank order on the main process; None elsewhere."""

    @abstractmethod
    def barrier(self) -> None:
        """Return once every process has called it."""


class SingleProcess(ProcessGroup):
    """A command run by one process: every collective operation returns this process's own tensor."""

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.rank, self.num_processes = 0, 1
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        return [tensor]

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor] | None:
        return [tensor]

    def barrier(self) -> None:
        return None


class TorchProcessGroup(ProcessGroup):
    """The default `torch.distributed` process group of a launched run.

    Tensors travel on the CPU under gloo and on `transport_device` under the other backends (NCCL needs
    tensors on the process's GPU); booleans travel as bytes, which every backend gathers.
    """

    def __init__(self, rank: int, num_processes: int, device: torch.device, transport_device: torch.device) -> None:
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised; use `launched_processes()`")
        self.rank, self.num_processes, self.device = rank, num_processes, device
        self._transport = torch.device("cpu") if dist.get_backend() == "gloo" else transport_device

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        sent = self._outgoing(tensor)
        received = [torch.empty_like(sent) for _ in range(self.num_processes)]
        dist.all_gather(received, sent)
        return [self._incoming(part, tensor.dtype) for part in received]

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor] | None:
        sent = self._outgoing(tensor)
        received = [torch.empty_like(sent) for _ in range(self.num_processes)] if self.is_main else None
        dist.gather(sent, received, dst=0)
        return None if received is None else [self._incoming(part, tensor.dtype) for part in received]

    def barrier(self) -> None:
        dist.barrier()

    def _outgoing(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(torch.uint8) if tensor.dtype == torch.bool else tensor
        return tensor.to(self._transport).contiguous()

    @staticmethod
    def _incoming(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return tensor.cpu().to(dtype)


def launched_processes(device: str | None = None) -> ProcessGroup:
    """The processes running this command: those of `accelerate launch` / `torchrun`, or this one alone.

    Under a launcher (`WORLD_SIZE` > 1) Accelerate's `PartialState` opens the process group as the launcher
    configured it, and each process computes on its own device (`PartialState().device`: GPU `LOCAL_RANK`
    of its machine). On a machine without an accelerator, or with `device="cpu"`, the processes compute on
    CPUs and talk through gloo. Alone, `device` defaults to CUDA when available, else the CPU.
    Only the main process shows progress bars: the others turn off those of transformers and datasets.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return SingleProcess(device)
    import datasets
    from accelerate import PartialState
    from transformers.utils import logging as transformers_logging

    on_cpus = not torch.accelerator.is_available() or (device is not None and torch.device(device).type == "cpu")
    state = PartialState(cpu=on_cpus)
    if not state.is_main_process:
        transformers_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    chosen = state.device if device is None or torch.device(device).type == state.device.type else torch.device(device)
    return TorchProcessGroup(state.process_index, state.num_processes, chosen, state.device)


def gather_rows(group: ProcessGroup, rows: torch.Tensor) -> list[torch.Tensor] | None:
    """Each process's rows, any number of them (dim 0), on the main process in rank order; None elsewhere.

    The trailing shape and dtype must be the same on every process (a process without rows sends an empty
    tensor of that shape). Rows are padded to the longest share for the transfer and cut back on arrival,
    so nothing is duplicated, dropped or changed.
    """
    counts = [int(count) for count in group.all_gather(torch.tensor([rows.shape[0]], dtype=torch.int64))]
    if max(counts) == 0:
        return [rows] * group.num_processes if group.is_main else None
    padded = rows.new_zeros((max(counts), *rows.shape[1:]))
    padded[: rows.shape[0]] = rows
    parts = group.gather(padded)
    return None if parts is None else [part[:count] for part, count in zip(parts, counts, strict=True)]


__all__ = ["ProcessGroup", "SingleProcess", "TorchProcessGroup", "gather_rows", "launched_processes"]
