"""What one request may ask of the machine, checked before the work starts: memory, and counts, ranges and time.

Memory: what the machine can hold is the least of its physical memory, the memory now available, the cgroup's limit
(a container) and the process's address-space and data limits (``ulimit -v``, ``ulimit -d``); a single request may
take at most ``HEADROOM`` of it, as the data a reader returns is then copied (float batches, the model, the graph).

Work: the bounds below are of options that are not settings of a run (those have their ranges in the settings
table, ``config.RunConfig``), each set where a larger value is a typo or an attack rather than work anyone wants.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import LatentAtlasError

HEADROOM = 0.5  # of what the machine can hold, one array may take this much: training copies what is read

# latentatlas probe: each level is a pass over the test set and a row of every figure (--noise 0:1:100000000 ran on)
MAX_PROBE_LEVELS = 100  # levels of one corruption in one probe
MAX_ROTATION = 360  # degrees, either way: any angle beyond is one of these, and a level of 10^9 degrees is a typo

# The explorer's server (explore --serve): a browser opens a handful of connections to one host.
IDLE_TIMEOUT_S = 30  # a connection that sends nothing for this long is closed, so idle ones cannot pile up
REQUEST_TIMEOUT_S = 60  # a request must arrive, and its answer go out, within this (a trickle of bytes is no escape)
MAX_CONNECTIONS = 32  # open at once; each holds a thread. Past it a connection is answered 503 and closed at once


def memory_bytes() -> int:
    """What this process can hold (where the platform does not say: 1 TiB, so that only the absurd is refused)."""
    limits = [_physical(), _available(), _cgroup()]
    try:
        import resource

        for which in (resource.RLIMIT_AS, getattr(resource, "RLIMIT_DATA", None)):
            if which is not None:
                soft = resource.getrlimit(which)[0]
                limits.append(None if soft == resource.RLIM_INFINITY else soft)
    except ImportError:  # Windows
        pass
    known = [n for n in limits if n]
    return min(known) if known else 1 << 40


def check_fits(n_bytes: int, what: str, advice: str = "") -> int:
    """Refuse, in words and before allocating, ``what`` needing more bytes than one request may take."""
    have = memory_bytes()
    if n_bytes > HEADROOM * have:
        raise LatentAtlasError(f"{what} needs {gigabytes(n_bytes)}, more than this machine's memory allows "
                               f"({gigabytes(int(HEADROOM * have))} of {gigabytes(have)} it can hold)"
                               f"{': ' + advice if advice else ''}")
    return n_bytes


def gigabytes(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n < 2**70 else f"about 2^{n.bit_length() - 1} bytes"


def _physical() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 writes a huge number for "no limit", v2 writes "max"
            return int(text)
    return None
