"""One writer per folder: an exclusive lock on ``FOLDER/.latentatlas.lock``, a small file that names its holder.

The lock is ``flock`` on that file, so the kernel drops it when its holder dies (a killed run never leaves a stale
lock behind); the file itself stays, and it marks the folder as one latentatlas made (see ``runs.is_run_folder``).
A second writer is refused at once, in one line naming the holder, rather than made to wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from ._version import __version__
from .errors import LatentAtlasError, option

LOCK = ".latentatlas.lock"
_HELD: set[str] = set()  # the folders whose lock this process holds (absolute paths): the output guard asks

try:
    import fcntl
except ImportError:  # Windows has no flock: folders go unlocked there
    fcntl = None


class FolderLock:
    """Held while a process writes into ``folder``; ``acquire`` refuses if another process holds it."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.fd: int | None = None
        self.nested = False  # this process held the lock already: acquire and release leave it as it was

    @property
    def path(self) -> Path:
        return self.folder / LOCK

    def acquire(self) -> FolderLock:
        if holds(self.folder):
            self.nested = True
            return self
        for _ in range(3):  # the folder may be swapped for its replacement between open and flock: open again
            fd = _open_no_follow(self.path)
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        raise _busy(self.folder) from None
                if _same_file(fd, self.path):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        else:
            raise LatentAtlasError(f"{self.folder} keeps being replaced by another process: choose another {option('out')}")
        self.fd = fd
        _HELD.add(os.path.abspath(self.folder))
        # Who holds it, for the refusal a second writer gets; written in place: only the holder ever writes it.
        info = json.dumps({"latentatlas": __version__, "pid": os.getpid(), "host": socket.gethostname(),
                           "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info + b"\n", 0)
        # What a killed writer of this folder left beside it (an --overwrite's half-trained replacement, or the old
        # run moved aside): every writer holds this lock while its temp folder exists, so now none is in use.
        from ._io import clean_stale  # here: _io imports this module

        clean_stale(self.folder)
        return self

    def release(self) -> None:
        self.nested = False
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None
            _HELD.discard(os.path.abspath(self.folder))

    def __enter__(self) -> FolderLock:
        return self.acquire() if self.fd is None and not self.nested else self

    def __exit__(self, *exc) -> None:
        self.release()


def holds(folder: str | os.PathLike) -> bool:
    """Whether this process holds the lock of ``folder``."""
    return os.path.abspath(folder) in _HELD


def check_free(folder: str | os.PathLike) -> None:
    """Refuse at once if another process holds the folder's lock; writes nothing (a look, not a claim)."""
    path = Path(folder) / LOCK
    if fcntl is None or path.is_symlink() or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(Path(folder)) from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(folder: str | os.PathLike):
    """``with locked(folder):`` the folder's lock, held for the block."""
    with FolderLock(folder) as lock:
        yield lock


def _busy(folder: Path) -> LatentAtlasError:
    return LatentAtlasError(f"{folder} is being written by another latentatlas process ({holder(folder)}): wait for "
                            f"it to finish, or choose another {option('out')}")


def holder(folder: Path) -> str:
    """Who holds (or last held) the folder's lock, in words."""
    try:
        info = json.loads((Path(folder) / LOCK).read_text())
        return f"pid {int(info['pid'])} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "a process that has not yet written its name"


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is a lock file latentatlas wrote (not a link, and naming latentatlas)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 4096:
            return False
        info = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(info, dict) and "latentatlas" in info


def _open_no_follow(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError:
        if path.is_symlink():  # O_NOFOLLOW: ELOOP; a received folder must not make us write elsewhere
            raise LatentAtlasError(f"{path} is a link: refusing to write through it") from None
        raise


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
