"""The fake network: decides the fate of every message (lost, delayed, duplicated,
cut off by a partition). Delivery itself is the world's event queue."""

from __future__ import annotations

import random
from collections.abc import Iterable

from tidechain.sim.scenario import SYNCHRONOUS, Faults

_SPIKE_FACTOR = 10


class FakeNetwork:
    """Link faults between node ids. Random delays reorder messages on their own."""

    def __init__(self, rng: random.Random, faults: Faults) -> None:
        self._rng = rng
        self._faults = faults
        self._group: dict[str, int] = {}  # node id -> partition group; empty: connected

    @property
    def faults(self) -> Faults:
        return self._faults

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Cut every link between different groups (node ids in no group are cut off
        from everyone)."""
        self._group = {node: i for i, group in enumerate(groups) for node in group}

    def reconnect(self) -> None:
        self._group = {}

    def heal(self) -> None:
        """From now on the network is synchronous: no loss, no partition, short delays."""
        self._faults = SYNCHRONOUS
        self._group = {}

    def connected(self, src: str, dest: str) -> bool:
        if not self._group:
            return True
        return self._group.get(src, -1) == self._group.get(dest, -2)

    def delays_ms(self, src: str, dest: str) -> list[int]:
        """Delays of the copies of one message that will arrive ([] if it is lost)."""
        if not self.connected(src, dest):
            return []
        faults = self._faults
        if faults.drop and self._rng.random() < faults.drop:
            return []
        copies = 2 if faults.duplicate and self._rng.random() < faults.duplicate else 1
        return [self._delay_ms() for _ in range(copies)]

    def _delay_ms(self) -> int:
        faults = self._faults
        delay = self._rng.randint(1, faults.max_delay_ms)
        if faults.spike and self._rng.random() < faults.spike:
            delay += self._rng.randint(0, _SPIKE_FACTOR * faults.max_delay_ms)
        return delay
