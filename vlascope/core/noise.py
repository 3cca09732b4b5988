"""Flow-matching noise of a sampling policy: a stream restarted from the seed at every
episode (so an episode replays exactly), and common noise (every call and every row from
the seed's first draw) for analyses that compare forward passes: what a policy's
``reset()`` and ``common_noise()`` capabilities stand on."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import torch


class ThreadPin:
    """Nested ``common()`` blocks counted per thread: whether the calls this thread makes now
    run under common noise (a worker's analysis must not pin another thread's rollout)."""

    def __init__(self) -> None:
        self._depth = threading.local()

    @contextmanager
    def common(self) -> Iterator[None]:
        depth = getattr(self._depth, "depth", 0)
        self._depth.depth = depth + 1
        try:
            yield
        finally:
            self._depth.depth = depth

    @property
    def pinned(self) -> bool:
        return bool(getattr(self._depth, "depth", 0))


class SeededNoise:
    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._pin = ThreadPin()
        self.restart()

    def restart(self) -> None:
        """Back to the seed's first draw (a new episode)."""
        self._stream = torch.Generator(device="cpu").manual_seed(self.seed)

    def state(self) -> torch.Tensor:
        """Where the episode's stream is (to hand it back with ``set_state``)."""
        return self._stream.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self._stream.set_state(state)

    def common(self) -> AbstractContextManager[None]:
        """Inside this block, on this thread, every draw is the seed's first one and the
        episode's stream is left where it was (blocks nest)."""
        return self._pin.common()

    @property
    def pinned(self) -> bool:
        return self._pin.pinned

    def fixed(self, batch: int, shape: Sequence[int]) -> torch.Tensor:
        """The seed's first draw, the same for every row: (batch, *shape), float32, CPU."""
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        return torch.randn(1, *shape, generator=g).expand(batch, *shape)

    def draw(self, batch: int, shape: Sequence[int]) -> torch.Tensor:
        """The next draw of the episode's stream, or the fixed one inside ``common()``."""
        if self.pinned:
            return self.fixed(batch, shape)
        return torch.randn(batch, *shape, generator=self._stream)
