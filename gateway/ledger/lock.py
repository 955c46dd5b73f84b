"""One gateway per ledger: an exclusive lock on a file beside the ledger, held while it runs.

Two gateways on one ledger would each take the other's checkpoint for a crash, store one
instance's minutes and silently drop the other's (the unique index keeps the first), and their
MQTT clients, which share the site's client id, would knock each other off. So `emgate run` and
`emgate demo` hold this lock for their lifetime and a second one exits 2 at once, naming the
process that holds it. Readers (`emgate export`, `ledger verify`, `ledger show`) never take it,
and neither does `ledger restate`: the ledger chains every append on the last row it finds
inside its write transaction (Ledger._insert), so a restatement beside a running gateway is
safe, and it has no checkpoint or broker connection to fight over.

Why a separate `<ledger>.lock` and flock(2):

- SQLite's own locks on the database are POSIX record locks, which a process loses as soon as
  it closes *any* descriptor of that file. Opening the database file once more to lock it would
  drop SQLite's locks the moment that descriptor closed; a file of our own cannot.
- An flock belongs to the open file description, so the kernel releases it when the process
  ends however it ends (kill -9, a power cut): no stale lock to clean up, no pid to check. The
  pid written into the file is only for the message.
- The file is never deleted: deleting a lock file races with a process that has just opened
  it, which would then lock a file nobody else can see while a third creates a new one.
- O_CLOEXEC: a program the gateway starts does not inherit the descriptor (and the lock).

On NFS, Linux maps flock to a POSIX lock on the server (since 2.6.12); keep a ledger on a local
disk anyway (SQLite's WAL needs shared memory, which NFS does not provide).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from gateway.core.errors import GatewayError


class LedgerInUseError(GatewayError):
    """Another gateway holds the ledger's lock. Commands exit 2."""

    def __init__(self, ledger: Path, holder: str) -> None:
        self.ledger = ledger
        self.holder = holder
        super().__init__(
            f"the ledger at {ledger} is in use by another gateway ({holder}); one gateway per ledger: "
            "stop that one first, or give this one a ledger of its own ([ledger] path in the site file, "
            f"--ledger for the demo). The lock is {lock_path(ledger)}; it is released when its process ends"
        )


def lock_path(ledger: Path) -> Path:
    """`<ledger>.lock`, beside the ledger."""
    return ledger.with_name(ledger.name + ".lock")


class LedgerLock:
    """An exclusive, non-blocking flock on `<ledger>.lock`; `acquire` raises LedgerInUseError
    when another process (or another LedgerLock in this one) holds it."""

    def __init__(self, ledger: Path) -> None:
        self.ledger = ledger
        self.path = lock_path(ledger)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise LedgerInUseError at once (OSError when the file cannot be made)."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # as for the ledger itself
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LedgerInUseError(self.ledger, holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # for the message a second gateway prints; the lock itself is the flock
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {stamp}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock still holds, the message says less
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the descriptor releases it); safe to call twice."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    # empty while the holder is between its flock and its write
    return text or "a process that has not written its pid yet"
