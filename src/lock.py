"""Locks: a run folder belongs to one run, and the workers of one search take turns on its shared records.

Both follow one re-entrancy rule: a lock this process holds already is re-entered, not waited on (a search holds a
trial's folder and then trains the trial in it; it holds the study lock and then asks for a trial under it).

A run folder's lock (:func:`locked`) is held for the life of a run (and of a resume, and of a search's trial).

The lock is a file created exclusively (``O_CREAT | O_EXCL``, atomic on local and network file systems) that names
its holder: host, process id and the command. A second run on the same folder refuses and names the holder; a
lock left by a process that no longer exists on this host (killed with SIGKILL, a machine that rebooted) is
taken over with a message. Under several processes only the first (rank 0) holds it: the others are the same run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_NAME = ".run.lock"


class FolderBusy(RuntimeError):
    """Another live process holds the folder's lock; the message names it."""


def rank_zero() -> bool:
    """Whether this process is the first of its run (Lightning's DDP children and Slurm's tasks say otherwise)."""
    return all(os.environ.get(v, "0") == "0" for v in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "RANK"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def holder(folder: Path) -> dict | None:
    """Who holds ``folder``'s lock (``None``: nobody, or a lock file that cannot be read)."""
    try:
        found = json.loads((Path(folder) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None
    well_formed = isinstance(found, dict) and isinstance(found.get("host"), str) and isinstance(found.get("pid"), int)
    return found if well_formed else None  # a lock file edited or written by something else: unreadable


def in_use(folder: Path) -> bool:
    """Whether a live process holds ``folder``'s lock (a lock left by a process of this machine that no longer runs
    is not a use; one of another machine cannot be checked, so it counts as one)."""
    other = holder(folder)
    if other is None:
        return (Path(folder) / LOCK_NAME).exists()  # being written, or unreadable: in use until it can be read
    return other.get("host") != socket.gethostname() or _alive(int(other.get("pid", -1)))


def acquire(folder: Path, what: str = "a run") -> Path | None:
    """Take ``folder``'s lock (making the folder), or raise :class:`FolderBusy`; ``None`` on a rank other than 0."""
    if not rank_zero():
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), "what": what, "argv": sys.argv}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = holder(folder)
            if other is None:  # being written this instant, or unreadable: look again
                time.sleep(0.2)
                other = holder(folder)
            if other is not None and other.get("host") == me["host"] and other.get("pid") == me["pid"]:
                return path  # this process holds it already (a search running a trial in its own folder)
            if other is not None and other.get("host") == me["host"] and not _alive(int(other.get("pid", -1))):
                log.warning("%s: taking over the lock of process %s, which no longer runs", folder, other.get("pid"))
                path.unlink(missing_ok=True)
                continue
            raise FolderBusy(_busy(folder, path, other)) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise FolderBusy(f"{folder}: could not take the lock {path}")


def _busy(folder: Path, path: Path, other: dict | None) -> str:
    if other is None:
        return f"{folder} is locked ({path} cannot be read): delete it if no run uses the folder"
    since, argv = other.get("since"), other.get("argv")
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, int | float) else "?"
    command = " ".join(map(str, argv))[:200] if isinstance(argv, list) else "?"
    return (
        f"{folder} is in use by {other.get('what', 'a run')}: process {other.get('pid')} on {other.get('host')}, "
        f"since {started} ({command}). Two runs in one folder would overwrite each other's checkpoints and "
        f"results: wait for it, or start this run in another folder. If that process is gone (on another "
        f"machine), delete {path}."
    )


def release(path: Path | None) -> None:
    if path is not None:
        mine = holder(path.parent)
        if mine is not None and mine.get("pid") == os.getpid() and mine.get("host") == socket.gethostname():
            path.unlink(missing_ok=True)


@contextmanager
def locked(folder: Path, what: str = "a run") -> Iterator[None]:
    """Hold ``folder``'s lock inside the block (re-entrant within one process: an inner hold leaves it held)."""
    already = (h := holder(Path(folder))) is not None and h.get("pid") == os.getpid()
    path = acquire(folder, what)
    try:
        yield
    finally:
        if not already:
            release(path)


_HELD: dict[tuple[int, str], int] = {}  # file locks this process holds, with their depth


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing) for a short critical section between processes: the
    workers of one search creating its study, asking for a trial, telling an outcome. Re-entrant within a process
    (flock on a second descriptor of the same file would wait on itself). It assumes what ``flock`` assumes: the
    processes share one machine, or a network file system that implements ``flock`` (NFSv4 does; docs/search.md).
    """
    name = (os.getpid(), str(Path(path).resolve()))  # a forked child inherits the dict, not the lock
    if _HELD.get(name):
        _HELD[name] += 1
        try:
            yield
        finally:
            _HELD[name] -= 1
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        _HELD[name] = 1
        try:
            yield
        finally:
            _HELD.pop(name, None)
            fcntl.flock(f, fcntl.LOCK_UN)
