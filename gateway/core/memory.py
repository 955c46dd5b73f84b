"""Memory settings of a long-running gateway (`emgate run`): no transparent huge pages, a fixed
mmap threshold for the C allocator, and the site's settings made again after the load.

Huge pages. numpy asks for transparent huge pages (madvise) for every array of 4 MB or more. The
minute window's buffer columns grow by ~80 kB a second at 10,000 signals polled every second,
and a close's temporaries are a few MB each, so with huge pages they became resident 2 MB at a
time: 14 MB of the process was in huge pages and the peak RSS of bench.load_10k was 5-6 MB
higher than with 4 KiB pages, at the same CPU share. The gateway gains nothing from huge pages
(its large arrays are touched once or twice a minute), so it turns them off for itself.

mmap threshold. glibc serves a request of at least its mmap threshold (128 KiB) with mmap and
gives it back on free, but by default freeing such a block raises the threshold to the block's
size (up to 32 MiB), so from then on blocks of that size come from the heap, whose free space
is kept. A minute close allocates numpy temporaries of a few MB each, so after the first closes
they stayed resident: 5-8 MB of RSS that did not come back. Setting the threshold explicitly
turns that adjustment off, and each close's temporaries go back to the system. The cost is
that each close faults them in afresh: bench.load_10k measured +0.005-0.01 of a core, against a
CPU share of about 0.065 and a goal of 0.10, while the RSS goal (120 MB) is the tight one.

The site's settings, made again. Reading a site file leaves the heap in holes: tomllib's
temporaries are freed between the settings' objects, which pydantic made while the parsed
document was alive, so the memory the parse used stays with the process for its whole life.
At 100,000 signals (an 11 MB site file) the settings are 84 MB and the load left RSS 169 MB
higher. `built_compact(load)` makes them again from a pickle once the parse's objects are freed
and asks glibc to return the free pages (malloc_trim): RSS after the gateway was built went from
235 to 162 MB at 100,000 signals, and 8 MB lower at 10,000; it costs 0.7 s and 0.07 s of
start-up. (bench.load_100k's peak, which moves by 100 MB from run to run: 571 MB in a run
before, 411, 495 and 527 MB in three after.)
"""

from __future__ import annotations

import ctypes
import gc
import pickle
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_PR_SET_THP_DISABLE = 41  # from linux/prctl.h (Linux 3.15+); children inherit it
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default, now fixed


def pin_mmap_threshold(nbytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `nbytes`; False where there is no glibc mallopt (musl, macOS)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, nbytes))


def disable_huge_pages() -> bool:
    """Turn transparent huge pages off for this process (prctl); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.restype = ctypes.c_int
    status: int = prctl(_PR_SET_THP_DISABLE, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    return status == 0


def release_free_memory() -> bool:
    """Ask glibc to return the heap's free pages to the system (malloc_trim); False without glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    trim(0)  # 1 when it gave pages back, 0 when there were none to give
    return True


def built_compact(build: Callable[[], T]) -> T:
    """What `build()` returns, made again from a pickle once the original and whatever its making
    left behind are freed, and the free pages returned: an object built in a fragmented heap (the
    settings, see the module) in a compact one. It must be build()'s only reference when build
    returns. An object that does not pickle is returned as it is."""
    obj = build()
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an unpicklable object: nothing to gain, nothing lost
        return obj
    del obj
    gc.collect()
    release_free_memory()
    made: T = pickle.loads(data)
    return made
