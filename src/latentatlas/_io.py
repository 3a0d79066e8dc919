"""Atomic file writes: a temp file in the same folder, fsync, then rename, so a reader never sees half a file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import LatentAtlasError


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the finished, fsynced temp file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes 0600, and a writer may replace the file it was given: set what open() would have, last.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)  # a write that filled the disk says which file it was
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_folder(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_folder)`` then put the finished folder at ``path``, replacing an old one whole.

    The old folder is moved aside, the new one renamed into place, then the old one deleted: a reader sees the old
    folder or the new one, never a mix. A crash between the two renames leaves no ``path``, with the old folder kept
    beside it as ``.NAME.old.*.tmp``.
    """
    path = Path(path)
    parent = path.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
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
            os.replace(tmp, path)
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


def check_writable(path: str | os.PathLike, folder: bool = False) -> Path:
    """Refuse, before any work, an output that could not be written: a file whose path is a folder (or a ``folder``
    whose path is a file), or one whose nearest existing parent is a file or is not writable."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise LatentAtlasError(f"{path} is a {'file' if folder else 'folder'}: give a {'folder' if folder else 'file name'}")
    parent = path if folder and path.exists() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise LatentAtlasError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LatentAtlasError(f"cannot write {path}: no write permission in {parent}")
    return path


def no_links_below(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Refuse ``path`` if a folder between ``root`` and it is a symbolic link: a received run folder whose
    ``figures`` links elsewhere must not make us write there. Returns ``path``."""
    root, path = Path(root), Path(path)
    for part in [*reversed(path.relative_to(root).parents)][1:] + [path]:
        here = root / part
        if here.is_symlink():
            raise LatentAtlasError(f"{here} is a link: refusing to write through it (out of {root})")
    return path


# What report and explore put in the pages they write, so that they replace only their own pages.
GENERATOR = '<meta name="generator" content="latentatlas">'


def check_page_out(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``check_writable``, and refuse to replace a file that is not a page latentatlas wrote, unless ``overwrite``."""
    path = check_writable(path)
    if overwrite or not (path.exists() or path.is_symlink()):
        return path
    try:
        with open(path, "rb") as f:
            ours = not path.is_symlink() and GENERATOR.encode() in f.read(4096)
    except OSError:
        ours = False
    if not ours:
        from .errors import option

        raise LatentAtlasError(f"{path} exists and is not a page latentatlas wrote: refusing to replace it; choose "
                               f"another {option('out')}, or pass {option('overwrite', True)}")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


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
