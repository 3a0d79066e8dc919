"""Progress that reaches the user wherever the output goes: a tqdm bar on a terminal, and elsewhere (a file, a pipe,
a notebook run by nbclient, a batch scheduler's log) a plain line every few seconds with what is done, the time
spent and the time left, where a bar would be either invisible or a smear of carriage returns."""

from __future__ import annotations

import sys
import time

LINE_EVERY = 10.0  # seconds between lines off a terminal: signs of life in a log without flooding it


def progress(total: int, desc: str, unit: str = "it", show: bool | None = None, leave: bool = False):
    """A progress reporter with tqdm's ``update`` / ``close`` / context-manager interface.

    ``show``: None draws a bar on a terminal and writes lines elsewhere; True always a bar; False nothing.
    """
    if show is None and not _is_terminal(sys.stderr):
        return Lines(total, desc, unit)
    from ._tensors import tqdm  # the one choice of bar (a notebook widget where ipywidgets is installed)

    return tqdm(total=total, desc=desc, unit=unit, disable=show is False, leave=leave,
                dynamic_ncols=True)


def say(line: str) -> None:
    """One line to the user on standard error, wherever it goes (tqdm.write keeps a bar on a terminal intact)."""
    from ._tensors import tqdm

    tqdm.write(line, file=sys.stderr)


class Lines:
    """tqdm's interface, writing ``desc: done / total unit, elapsed, left`` at most every LINE_EVERY seconds."""

    def __init__(self, total: int, desc: str, unit: str = "it", every: float = LINE_EVERY, file=None):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.file = file if file is not None else sys.stderr
        self.n = 0
        self.start = self.last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.every and self.n < self.total:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        left = elapsed / self.n * (self.total - self.n) if self.n else float("nan")
        print(f"{self.desc}: {self.n:,} / {self.total:,} {self.unit}, {elapsed:.0f} s, about {left:.0f} s left",
              file=self.file, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
