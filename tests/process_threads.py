"""A fake process group for tests: N ranks as threads of one process, meeting at each collective call.

`run_ranks(n, work)` runs `work(group)` once per rank, each with a `ThreadRanks` group whose `all_gather`,
`gather` and `barrier` behave as `torch.distributed`'s (every rank must call them in the same order, with
tensors of one shape and dtype), and returns what each rank returned, in rank order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import torch

from moeclip_hf.distributed import ProcessGroup

Result = TypeVar("Result")


class _Meeting:
    def __init__(self, num_processes: int) -> None:
        self.slots: list[torch.Tensor | None] = [None] * num_processes
        self.barrier = threading.Barrier(num_processes, timeout=60)

    def exchange(self, rank: int, tensor: torch.Tensor) -> list[torch.Tensor]:
        self.slots[rank] = tensor.clone()
        self.barrier.wait()
        received = list(self.slots)
        shapes = {(tuple(part.shape), part.dtype) for part in received}
        self.barrier.wait()
        assert len(shapes) == 1, f"a collective call with tensors of different shapes or dtypes: {shapes}"
        return received


class ThreadRanks(ProcessGroup):
    def __init__(self, meeting: _Meeting, rank: int) -> None:
        self.rank, self.num_processes, self.device = rank, len(meeting.slots), torch.device("cpu")
        self._meeting = meeting

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        return self._meeting.exchange(self.rank, tensor)

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor] | None:
        received = self._meeting.exchange(self.rank, tensor)
        return received if self.is_main else None

    def barrier(self) -> None:
        self._meeting.barrier.wait()


def run_ranks(num_processes: int, work: Callable[[ProcessGroup], Result]) -> list[Result | BaseException]:
    """`work(group)` on every rank, in threads; each rank's return value, or the exception it raised."""
    meeting = _Meeting(num_processes)
    outcomes: list[Result | BaseException | None] = [None] * num_processes

    def run(rank: int) -> None:
        try:
            outcomes[rank] = work(ThreadRanks(meeting, rank))
        except BaseException as error:  # returned to the test, which asserts on it
            outcomes[rank] = error

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(num_processes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes
