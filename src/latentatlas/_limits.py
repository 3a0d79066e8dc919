"""Sizes checked before memory is spent: a file's header or a config may ask for more than the machine has."""

from __future__ import annotations

import os

from .errors import LatentAtlasError


def memory_bytes() -> int:
    """The machine's physical memory (where the platform does not say: 1 TiB, so that only the absurd is refused)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 1 << 40


def check_fits(n_bytes: int, what: str, advice: str = "") -> int:
    """Refuse, in words and before allocating, ``what`` needing more bytes than the machine's memory."""
    have = memory_bytes()
    if n_bytes > have:
        raise LatentAtlasError(f"{what} needs {gigabytes(n_bytes)}, more than this machine's memory "
                               f"({gigabytes(have)}){': ' + advice if advice else ''}")
    return n_bytes


def gigabytes(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n < 2**70 else f"about 2^{n.bit_length() - 1} bytes"
