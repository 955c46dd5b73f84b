"""DailySealer: seals the ledger's head once a site day has ended (gateway/ledger/seals.py).

Called after every append with the results just stored and the ledger's head. When the stored
minutes reach a site day later than the last one seen, the day that ended is sealed with the
head as it stands: its seal covers every row of that day (and the first close of the next). A
gateway that was down over midnight seals, at its first close, the last day it has minutes of.
While the disk refuses writes (results waiting in memory) nothing is sealed: the head would not
hold them yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.core.errors import SinkWriteError
from gateway.core.model import MinuteResults
from gateway.ledger.seals import SealStore, make_seal

log = logging.getLogger(__name__)


class DailySealer:
    def __init__(self, store: SealStore, site: str, tz: str, now: Callable[[], float]) -> None:
        self.store, self.site, self.zone, self.tz, self.now = store, site, ZoneInfo(tz), tz, now
        last = store.last()
        self.sealed_day: str | None = last.day if last is not None else None
        self.day: str | None = None  # the latest site day with a stored minute
        self.notify: Callable[[], None] = lambda: None  # the witnesses' wake-up (MQTT publisher)
        self.sealed = 0

    def close(self) -> None:
        self.store.close()

    def __call__(self, results: MinuteResults, head_seq: int, head_hash: str, pending: int = 0) -> None:
        if not len(results) or pending:
            return
        latest = datetime.fromtimestamp(float(results.minute_start.max()), self.zone).date().isoformat()
        if self.day is None:
            first = datetime.fromtimestamp(float(results.minute_start.min()), self.zone).date().isoformat()
            self.day = first
        if latest > self.day and (self.sealed_day is None or self.day > self.sealed_day):
            seal = make_seal(self.site, self.day, head_seq, head_hash, self.now(), self.tz)
            try:
                if self.store.add(seal):
                    self.sealed += 1
                    log.debug("sealed %s: ledger head %d %s", seal.day, seal.head_seq, seal.head_hash)
            except SinkWriteError as exc:  # tried again at the next close of a later day
                log.warning("the seal of %s was not stored: %s", seal.day, exc)
                return
            self.sealed_day = self.day
            self.notify()
        self.day = max(self.day, latest)
