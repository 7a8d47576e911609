"""SQLite files of the platform (the embedded bus, the poller's memory): what can go
wrong with one in words a person can act on, errors turned into one platform error per
call, and opening one without ever writing it."""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from ey_platform.errors import PlatformError

_P = ParamSpec("_P")
_T = TypeVar("_T")
# SQLite reports a read-only or full file system as one of these; the file system says which
_OS_CODES = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR}


def failure(path: Path, exc: sqlite3.Error | OSError) -> tuple[bool, str]:
    """Why an operation on the SQLite file ``path`` failed, in words a person can act
    on: ``(damaged, reason)``. Damaged: the file itself is unusable, and ``reason``
    completes "<path> ..."; otherwise ``reason`` is the operating system's where one
    shows ("read-only file system", "no space left on device"), else SQLite's."""
    if isinstance(exc, OSError):
        return False, (exc.strerror or str(exc)).lower()
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    if code == sqlite3.SQLITE_NOTADB:
        return True, "is not a SQLite database"
    if code == sqlite3.SQLITE_CORRUPT:
        return True, f"is damaged ({exc})"
    if code == sqlite3.SQLITE_FULL:
        return False, _strerror(errno.ENOSPC)
    if code in _OS_CODES:
        return False, _os_reason(path) or str(exc)
    return False, str(exc)


def _strerror(code: int) -> str:
    return os.strerror(code).lower()


def _os_reason(path: Path) -> str | None:
    """Why the file system refuses to write ``path`` or its folder, if it does."""
    folder = next(p for p in path.absolute().parents if p.exists())
    try:
        fs = os.statvfs(folder)
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return _strerror(errno.EROFS)
    # SQLite needs a few pages at once; root may use the blocks reserved for it
    if (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) == 0:
        return _strerror(errno.ENOSPC)
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return _strerror(errno.EACCES)
    return None


@contextmanager
def write_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` on ``con`` (autocommit mode): committed at the end of the
    block, rolled back if it raises."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:  # SQLite ends some on its own (a full disk)
            con.execute("ROLLBACK")
        raise


def connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """A connection to ``path`` that never writes it (nor creates it).

    ``mode=ro`` reads like any other reader: while a process writes the file, the
    commits in its write-ahead log (``-wal``) are seen. For that SQLite needs the
    WAL index (``-shm``) and creates it (and an empty ``-wal``) in a writable folder.
    In a read-only folder without them it refuses; there nobody can write the file,
    so ``immutable=1`` reads the file as it is. Not when a ``-wal`` is left with
    content (a writer stopped before it checkpointed): ``immutable`` would not see it.
    """
    uri = path.absolute().as_uri()
    con = sqlite3.connect(
        f"{uri}?mode=ro", uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
    )
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the WAL index
    except sqlite3.Error as exc:
        con.close()
        wal = path.with_name(f"{path.name}-wal")
        if (
            not isinstance(exc, sqlite3.OperationalError)  # damaged: immutable reads no better
            or os.access(path.parent, os.W_OK)
            or (wal.exists() and wal.stat().st_size > 0)
        ):
            raise
    else:
        return con
    return sqlite3.connect(
        f"{uri}?immutable=1",
        uri=True,
        timeout=timeout,
        isolation_level=None,
        check_same_thread=False,
    )


_E = TypeVar("_E", bound=PlatformError)


def file_error(
    error: type[_E], what: str, path: Path, op: str, exc: sqlite3.Error | OSError, advice: str
) -> _E:
    """The one error a failed ``op`` on the file ``path`` (``what``: "bus file") raises:
    with ``advice`` when the file is damaged, else the reason ``op`` failed."""
    damaged, reason = failure(path, exc)
    if damaged:
        return error(f"{what} {path} {reason}: {advice}")
    return error(f"{what} {path}: {op} failed: {reason}")


class Guarded(Protocol):
    def _failed(self, op: str, exc: sqlite3.Error | OSError) -> PlatformError: ...


_G = TypeVar("_G", bound=Guarded)


def guarded(
    op: str,
) -> Callable[[Callable[Concatenate[_G, _P], _T]], Callable[Concatenate[_G, _P], _T]]:
    """Method decorator: SQLite's and the operating system's errors in ``op`` become
    the one error ``self._failed(op, exc)`` builds. Once per call, not per message."""

    def decorate(method: Callable[Concatenate[_G, _P], _T]) -> Callable[Concatenate[_G, _P], _T]:
        @functools.wraps(method)
        def run(self: _G, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
            try:
                return method(self, *args, **kwargs)
            except (sqlite3.Error, OSError) as exc:
                raise self._failed(op, exc) from exc

        return run

    return decorate
