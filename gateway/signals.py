"""The signal table: names to dense integer ids, fixed at startup.

Sources tag readings with these ids so that batches stay numpy arrays end to end.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.settings import GatewaySettings, SignalConfig


@dataclass(frozen=True)
class SignalTable:
    names: tuple[str, ...]
    configs: tuple[SignalConfig, ...]
    max_gap_s: tuple[float, ...]

    @classmethod
    def from_settings(cls, settings: GatewaySettings, default_poll_s: float = 1.0) -> SignalTable:
        polls = settings.signal_poll_s()
        names = tuple(sorted(settings.signals))
        configs = tuple(settings.signals[n] for n in names)
        # Domain reference 5.1: default max gap = 3 x the poll interval feeding the signal.
        gaps = tuple(c.max_gap_s or 3.0 * polls.get(n, default_poll_s) for n, c in zip(names, configs, strict=True))
        return cls(names, configs, gaps)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.names)})

    def id(self, name: str) -> int:
        return self._index[name]  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.names)
