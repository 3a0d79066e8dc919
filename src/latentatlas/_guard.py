"""The output guard: what latentatlas may replace. Every write goes through ``_io.atomic_write``, which asks
:func:`check_out` first, so the rules below hold for every command and every Python entry point by construction.

- A link is never written through: not the file itself, nor a folder between a run folder and its file.
- A run folder (its manifest or lock file says latentatlas made it) is written only by a process that holds its lock
  (``_lock.FolderLock``), and only its own files: those its manifest lists, or any while it is unfinished.
- Anywhere else an existing file is replaced only if latentatlas wrote it, as proven by the folder's ledger
  (``.latentatlas-outputs.json``: each output's name and SHA-256, kept by :func:`record`) or, for pages, by the
  generator tag inside them; or if the caller passed ``overwrite``. A file of a run is never an ``--out`` target.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ._lock import LOCK, holds, is_lock_file
from .errors import LatentAtlasError, option

MANIFEST = "manifest.json"
LEDGER = ".latentatlas-outputs.json"
# What report and explore put in the pages they write: pages written before the ledger prove themselves by it.
GENERATOR = '<meta name="generator" content="latentatlas">'


def check_out(path: str | os.PathLike, overwrite: bool = False, name: str = "out") -> Path:
    """Refuse, before any work, to write ``path`` where that could lose data; returns ``path``. ``name`` is the
    setting that chose the path, for the message."""
    path = Path(path)
    here = Path(os.path.abspath(path))  # never resolve(): that would follow the very links refused here
    if here.is_symlink():
        raise LatentAtlasError(f"{path} is a link: refusing to write through it; choose another {option(name)}")
    if here.is_dir():
        raise LatentAtlasError(f"{path} is a folder: give a file name for {option(name)}")
    _check_parent(path, here)
    run = run_of(here)
    if run is not None:
        _check_run_file(path, here, run, name)
    elif here.exists() and not overwrite and not proven_ours(here):
        raise LatentAtlasError(f"{path} exists and latentatlas did not write it: refusing to replace it; choose "
                               f"another {option(name)}, or pass {option('overwrite', True)}")
    return path


def check_out_folder(path: str | os.PathLike, name: str = "out") -> Path:
    """Refuse, before any work, an output folder that could not be written: a link, a file, or one whose nearest
    existing parent is a file or not writable (what may be replaced in it is the writer's to check)."""
    path = Path(path)
    here = Path(os.path.abspath(path))
    if here.is_symlink():
        raise LatentAtlasError(f"{path} is a link: refusing to write through it; choose another {option(name)}")
    if here.exists() and not here.is_dir():
        raise LatentAtlasError(f"{path} is a file, not a folder: choose another {option(name)}")
    _check_parent(path, here / "_")  # the folder itself where it exists, else its nearest existing parent
    return path


def run_of(path: Path) -> Path | None:
    """The run folder ``path`` would be written in (its folder, or the one above: ``figures/``), if any."""
    for folder in (path.parent, path.parent.parent):
        if holds(folder) or is_run_folder(folder):
            return folder
    return None


def is_run_folder(path: Path) -> bool:
    """A folder latentatlas wrote: a run, finished or not, or a model saved by ``Autoencoder.save``. Its manifest
    (or, while unfinished, its lock file) says so; a ``config.json`` alone proves nothing."""
    return is_manifest(path / MANIFEST) or is_lock_file(path / LOCK)


def is_manifest(path: Path) -> bool:
    manifest = _small_json(path)
    return isinstance(manifest, dict) and "latentatlas" in manifest and isinstance(manifest.get("files"), dict)


def proven_ours(path: Path) -> bool:
    """Whether the ledger of ``path``'s folder lists it with its present content, or it is a page we tagged."""
    if path.is_symlink() or not path.is_file():
        return False
    if path.name == LEDGER:
        return bool(_ledger(path.parent))
    entry = (_ledger(path.parent).get("files") or {}).get(path.name)
    if isinstance(entry, str) and entry == sha256(path):
        return True
    if path.suffix.lower() in (".html", ".htm"):
        with open(path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    return False


def record(path: Path) -> None:
    """Enter a file just written outside a run folder in its folder's ledger (entries of files gone are dropped)."""
    from ._io import atomic_write_text
    from ._version import __version__

    path = Path(os.path.abspath(path))
    if run_of(path) is not None or path.name == LEDGER:
        return
    files = {k: v for k, v in (_ledger(path.parent).get("files") or {}).items()
             if isinstance(k, str) and (path.parent / k).is_file()}
    files[path.name] = sha256(path)
    ledger = path.parent / LEDGER
    if ledger.exists() and not _ledger(path.parent):
        return  # someone else's file of that name: left alone, and the output stays unproven
    atomic_write_text(ledger, json.dumps({"latentatlas": __version__, "files": files}, indent=1) + "\n")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_parent(path: Path, here: Path) -> None:
    parent = here.parent
    while not parent.exists() and not parent.is_symlink():
        parent = parent.parent
    if not parent.is_dir():
        raise LatentAtlasError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LatentAtlasError(f"cannot write {path}: no write permission in {parent}")


def _check_run_file(path: Path, here: Path, run: Path, name: str) -> None:
    if not holds(run):
        raise LatentAtlasError(f"{path} is in the run folder {run}, which only latentatlas's commands on that run "
                               f"write (under its lock): choose another {option(name)}")
    no_links_below(run, here)
    listed = _small_json(run / MANIFEST)
    rel = str(here.relative_to(run))
    if here.exists() and isinstance(listed, dict) and rel != MANIFEST and rel not in (listed.get("files") or {}):
        raise LatentAtlasError(f"{path} is not a file of the run (its {MANIFEST} does not list it): refusing to "
                               "replace it")


def no_links_below(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Refuse ``path`` if it, or a folder between ``root`` and it, is a link: a received run folder whose
    ``figures`` links elsewhere must not make us write there. Either may be relative. Returns ``path``."""
    root, here = Path(os.path.abspath(root)), Path(os.path.abspath(path))
    for part in [here, *here.parents]:
        if part == root:
            return Path(path)
        if part.is_symlink():
            raise LatentAtlasError(f"{part} is a link: refusing to write through it (out of {root})")
    raise LatentAtlasError(f"{path} is not inside {root}")


def _ledger(folder: Path) -> dict:
    found = _small_json(folder / LEDGER)
    return found if isinstance(found, dict) and "latentatlas" in found else {}


def _small_json(path: Path, limit: int = 64 << 20):
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > limit:
            return None
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
