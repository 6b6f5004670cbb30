"""A deterministic, resumable, shardable order of training samples.

The run sees one endless stream of sample positions ``g = 0, 1, 2, ...``. Position ``g`` is sample
``perm(seed, epoch)[g mod N]`` of epoch ``g // N`` (``N`` = samples per epoch, ``perm`` a NumPy permutation drawn
from ``(seed, epoch)``). Optimizer step ``i`` consumes positions ``[i·P, (i+1)·P)`` with
``P = batch_size × grad_accum × world_size``; micro-batch ``a`` of rank ``r`` takes the ``batch_size``
positions starting at ``i·P + (a·world_size + r)·batch_size``. So the samples of any step depend only on
``(seed, step)``: a resumed run and a distributed run read exactly what an uninterrupted single-process run of the
same global batch would (the items themselves are deterministic in ``(seed, epoch, index)``, see ``samples.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


@lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """``(n,) int64`` order of the samples in ``epoch``."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


class StepBatches(Sampler[list[tuple[int, int]]]):
    """Yields this rank's micro-batches of ``(epoch, index)`` pairs for steps ``start_step .. end_step - 1``."""

    def __init__(self, num_samples: int, *, batch_size: int, grad_accum: int, seed: int, start_step: int,
                 end_step: int, rank: int = 0, world_size: int = 1) -> None:
        if num_samples < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.n, self.batch_size, self.grad_accum = num_samples, batch_size, grad_accum
        self.seed, self.start_step, self.end_step = seed, start_step, end_step
        self.rank, self.world_size = rank, world_size

    @property
    def per_step(self) -> int:
        """Positions one optimizer step consumes over all ranks."""
        return self.batch_size * self.grad_accum * self.world_size

    def position(self, g: int) -> tuple[int, int]:
        """Stream position ``g`` → ``(epoch, sample index)``."""
        epoch, offset = divmod(g, self.n)
        return epoch, int(epoch_permutation(self.seed, epoch, self.n)[offset])

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.grad_accum

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.end_step):
            for a in range(self.grad_accum):
                first = step * self.per_step + (a * self.world_size + self.rank) * self.batch_size
                yield [self.position(g) for g in range(first, first + self.batch_size)]


class EpochIndexed(Dataset):
    """Wraps a dataset with ``set_epoch(e)`` so that item ``(epoch, index)`` is ``inner[index]`` of that epoch.

    ``set_epoch`` is called only when the epoch changes (cheap lookups otherwise; each DataLoader worker holds
    its own copy, which is fine because items depend only on ``(seed, epoch, index)``).
    """

    def __init__(self, inner: Dataset) -> None:
        self.inner = inner
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        if epoch != self._epoch:
            self.inner.set_epoch(epoch)  # type: ignore[attr-defined]
            self._epoch = epoch
        return self.inner[index]
