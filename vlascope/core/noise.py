"""Flow-matching noise of a sampling policy: a stream restarted from the seed at every
episode (so an episode replays exactly), and common noise (every call and every row from
the seed's first draw) for analyses that compare forward passes: what a policy's
``reset()`` and ``common_noise()`` capabilities stand on."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch


class SeededNoise:
    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._pinned = threading.local()  # common() depth of each thread
        self.restart()

    def restart(self) -> None:
        """Back to the seed's first draw (a new episode)."""
        self._stream = torch.Generator(device="cpu").manual_seed(self.seed)

    @contextmanager
    def common(self) -> Iterator[None]:
        """Inside this block, on this thread, every draw is the seed's first one and the
        episode's stream is left where it was (blocks nest)."""
        depth = getattr(self._pinned, "depth", 0)
        self._pinned.depth = depth + 1
        try:
            yield
        finally:
            self._pinned.depth = depth

    @property
    def pinned(self) -> bool:
        return bool(getattr(self._pinned, "depth", 0))

    def fixed(self, batch: int, shape: Sequence[int]) -> torch.Tensor:
        """The seed's first draw, the same for every row: (batch, *shape), float32, CPU."""
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        return torch.randn(1, *shape, generator=g).expand(batch, *shape)

    def draw(self, batch: int, shape: Sequence[int]) -> torch.Tensor:
        """The next draw of the episode's stream, or the fixed one inside ``common()``."""
        if self.pinned:
            return self.fixed(batch, shape)
        return torch.randn(batch, *shape, generator=self._stream)
