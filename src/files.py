"""Writes into a run folder that a kill or a full disk cannot leave half done: through a temporary file beside the
target and a rename over it (atomic on one file system), so a reader sees the old file or the new one, whole."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half of it."""
    _through_temporary(path, lambda tmp: tmp.write_text(text), f"could not write {path}")


def copy_atomically(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` through a temporary file: a copy cut short (a full disk, a kill) leaves ``path``
    as it was, never truncated."""
    _through_temporary(path, lambda tmp: shutil.copy2(source, tmp), f"could not copy {source} to {path}")


def _through_temporary(path: Path, write: Callable[[Path], object], what: str) -> None:
    """``write`` a temporary file beside ``path``, then rename it over ``path``; on an error, nothing is left."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, f"{what}: {e.strerror} (is the disk full or the folder read-only?)") from e
