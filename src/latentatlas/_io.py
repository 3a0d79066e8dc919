"""Every file latentatlas writes is written here: checked by the output guard (``_guard.py``: no link followed,
nothing replaced that latentatlas did not write), then written atomically (a temp file in the same folder, fsync,
then rename), so a reader never sees half a file."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._guard import check_out, record
from .errors import LatentAtlasError, option


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], overwrite: bool = False,
                 ledger: bool = True) -> Path:
    """Call ``write(tmp_path)`` then rename the finished, fsynced temp file onto ``path``, if the output guard
    (``_guard.check_out``) lets it replace what is there; ``overwrite`` as there. ``ledger``: enter the file in
    its folder's ledger (a cache, rebuilt at will, need not)."""
    path = check_out(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes 0600, and a writer may replace the file it was given: set what open() would have, last.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        check_out(path, overwrite)  # again: the write may have taken minutes
        _replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)  # a write that filled the disk says which file it was
        raise
    _fsync_dir(path.parent)
    if ledger:
        record(path)
    return path


def _replace(src, dst) -> None:
    """The one place a finished file or folder takes its name (the every-writer test watches it)."""
    os.replace(src, dst)


def atomic_write_folder(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_folder)`` then put the finished folder at ``path``, replacing an old one whole.

    The old folder is moved aside, the new one renamed into place, then the old one deleted: a reader sees the old
    folder or the new one, never a mix. A crash between the two renames leaves no ``path``, with the old folder kept
    beside it as ``.NAME.old.*.tmp``.
    """
    path = Path(path)
    parent = path.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder what mkdir would have
        write(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=".tmp", dir=parent))
            old.rmdir()  # only its unique name is wanted
            os.replace(path, old)
        try:
            _replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)
                old = None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def clean_stale(path: str | os.PathLike) -> list[Path]:
    """Delete what a killed ``atomic_write_folder`` of ``path`` left beside it: its temp folders (a run that was
    being written) and, once ``path`` is in place, an old folder it had moved aside. Only folders named as ours,
    that latentatlas wrote (``_guard.is_run_folder``) or that are empty, and whose lock no process holds."""
    from ._guard import is_run_folder
    from ._lock import check_free

    path = Path(path).absolute()
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(old\.)?[a-z0-9_]{{8}}\.tmp")
    removed = []
    for entry in path.parent.iterdir() if path.parent.is_dir() else ():
        m = pattern.fullmatch(entry.name)
        if not m or entry.is_symlink() or not entry.is_dir() or (m.group(1) and not path.is_dir()):
            continue  # an old folder with nothing in its place is the only copy of that run: kept
        if not (is_run_folder(entry) or not any(entry.iterdir())):
            continue
        try:
            check_free(entry)
        except LatentAtlasError:
            continue  # another process is writing it right now
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def check_folder_writable(path: str | os.PathLike, name: str = "tensorboard") -> Path:
    """Refuse, before any work, a folder that could not be written (a file, or under one, or without permission,
    or a name that is not UTF-8, which TensorBoard cannot open); for the writers that make files of their own in
    it (TensorBoard). ``name``: the setting that chose it, for the message."""
    path = Path(path)
    if not is_utf8(path):
        raise LatentAtlasError(f"{path}: TensorBoard writes only folders whose names are UTF-8: choose "
                               f"another {option(name)}")
    if path.exists() and not path.is_dir():
        raise LatentAtlasError(f"{path} is a file: give a folder")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise LatentAtlasError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LatentAtlasError(f"cannot write {path}: no write permission in {parent}")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = False, ledger: bool = True) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write, overwrite, ledger)


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = False, ledger: bool = True) -> Path:
    """``text`` as UTF-8, a non-UTF-8 file name in it :func:`shown` (JSON escapes such names, and so keeps them)."""
    return atomic_write_bytes(path, shown(text).encode("utf-8"), overwrite, ledger)


def is_utf8(path: str | os.PathLike) -> bool:
    """Whether ``path`` is valid UTF-8 (a name with other bytes reaches Python as lone surrogates): what libraries
    that take only UTF-8 names (safetensors, TensorBoard) can open."""
    try:
        os.fspath(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def shown(text: str) -> str:
    """``text`` with each byte of a non-UTF-8 file name (which Python holds as a lone surrogate, and no encoder or
    font takes) as U+FFFD, as a terminal shows it."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def atomic_write_json(path: str | os.PathLike, obj, overwrite: bool = False, ledger: bool = True) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n", overwrite, ledger)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable; not every platform lets a folder be opened.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
