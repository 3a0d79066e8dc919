"""Progress that reaches the user wherever the output goes: a tqdm bar on a terminal, and elsewhere (a file, a pipe,
a notebook run by nbclient, a batch scheduler's log) a plain line every few seconds with what is done, the time
spent and the time left, where a bar would be either invisible or a smear of carriage returns."""

from __future__ import annotations

import os
import sys
import time

LINE_EVERY = 5.0  # seconds between lines off a terminal: signs of life in a log without flooding it


def line_every() -> float:
    """Seconds between progress lines off a terminal: ``LATENTATLAS_PROGRESS_EVERY`` (0: a line at every update
    and epoch), else LINE_EVERY."""
    value = os.environ.get("LATENTATLAS_PROGRESS_EVERY", "")
    try:
        return max(0.0, float(value)) if value else LINE_EVERY
    except ValueError:
        return LINE_EVERY


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
    """tqdm's interface (update, set_postfix, close), writing ``desc: done / total unit, postfix, elapsed, left``
    at most every ``every`` seconds (``line_every()``): on an update, or when the postfix changes (an epoch ends);
    and always when the first epoch ends and when the last does, so that a run of short epochs (a notebook's, a
    small data set's) still says how it went and how long an epoch takes."""

    def __init__(self, total: int, desc: str, unit: str = "it", every: float | None = None, file=None):
        self.total, self.desc, self.unit = total, desc, unit
        self.every = line_every() if every is None else every
        self.file = file if file is not None else sys.stderr
        self.n = 0
        self.postfix: dict = {}
        self.start = self.last = time.perf_counter()
        self.lines = 0
        self.epoch_said = False  # the first epoch's end has had its line (lines within it do not count)

    def update(self, n: int = 1) -> None:
        self.n += n
        self._maybe_line()

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **values) -> None:
        self.postfix = {**(ordered_dict or {}), **values}
        first, self.epoch_said = not self.epoch_said, True
        self._maybe_line(force=first or self.n >= self.total)

    def _maybe_line(self, force: bool = False) -> None:
        now = time.perf_counter()
        if (force or now - self.last >= self.every) and 0 < self.n:
            self.last = now
            self.lines += 1
            elapsed = now - self.start
            left = elapsed / self.n * (self.total - self.n)
            values = "".join(f", {k} {v}" for k, v in self.postfix.items())
            print(f"{self.desc}: {self.n:,} / {self.total:,} {self.unit}{values}, {elapsed:.0f} s, "
                  f"about {left:.0f} s left", file=self.file, flush=True)

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
