"""Per-cell random numbers, the way ComfyUI draws them for a batch of one on the CPU.

- The initial noise of a cell is ``torch.randn(latent shape)`` from a CPU generator seeded with the
  cell's seed (ComfyUI's prepare_noise).
- Ancestral samplers draw their fresh noise from a second CPU generator seeded with seed + 1
  (ComfyUI's default noise sampler on the CPU), one latent-sized draw per noisy step.

Every draw is made on the CPU per cell and then stacked and moved to the device, so a cell's numbers
depend only on its seed and size: not on the device, nor on the cells sharing its batch. (ComfyUI on
a GPU draws the ancestral noise from the GPU's generator instead; lorabuild keeps the CPU stream so
that a cell is the same picture everywhere.)
"""
from __future__ import annotations

from typing import Sequence

import torch

SEED_MASK = 0xFFFF_FFFF_FFFF_FFFF


def cpu_generator(seed: int) -> torch.Generator:
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed) & SEED_MASK)
    return generator


def initial_noise(seed: int, latent_shape: Sequence[int]) -> torch.Tensor:
    """The initial latent noise of a cell: standard normal from a CPU generator seeded with `seed`."""
    return torch.randn(tuple(latent_shape), generator=cpu_generator(seed), dtype=torch.float32)


class CellNoise:
    """The initial noise and the ancestral noise stream of a batch of cells, each from its own seed."""

    def __init__(self, seeds: Sequence[int], latent_shape: Sequence[int], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.shape = tuple(latent_shape)
        self.device = torch.device(device)
        self.dtype = dtype
        self.seeds = [int(s) for s in seeds]
        self._ancestral = [cpu_generator(s + 1) for s in self.seeds]

    def initial(self) -> torch.Tensor:
        return torch.stack([initial_noise(s, self.shape) for s in self.seeds]).to(self.device, self.dtype)

    def step(self) -> torch.Tensor:
        """The next draw of each cell's ancestral stream, stacked: [B, *latent_shape]."""
        draws = [torch.randn(self.shape, generator=g, dtype=torch.float32) for g in self._ancestral]
        return torch.stack(draws).to(self.device, self.dtype)
