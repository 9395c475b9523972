"""Writes into a run folder that a kill or a full disk cannot leave half done: through a temporary file beside the
target and a rename over it (atomic on one file system), so a reader sees the old file or the new one, whole."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(
            e.errno, f"could not write {path}: {e.strerror} (is the disk full or the folder read-only?)"
        ) from e


def copy_atomically(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` through a temporary file: a copy cut short (a full disk, a kill) leaves ``path``
    as it was, never truncated."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        shutil.copy2(source, tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(
            e.errno, f"could not copy {source} to {path}: {e.strerror} (is the disk full or the folder read-only?)"
        ) from e
