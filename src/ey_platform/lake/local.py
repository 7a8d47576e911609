"""The lake on the local file system.

Writes go to a hidden temporary file in the target folder (``.<name>.<uuid>.tmp``), are
flushed to disk, then published with ``link(2)``, which fails if the name exists: an
object can never be overwritten, even by two writers racing. Published files are made
read-only. A writer killed before its commit leaves its temporary file; :meth:`LocalLake.sweep`
removes those.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from ey_platform.errors import LakeError
from ey_platform.lake.base import Keys, LakeObject, Tally


class LocalWriter:
    def __init__(self, root: Path, key: str) -> None:
        self.key = key
        self.path = root / key
        self.tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        with _naming(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.tmp.open("xb")
        self._tally = Tally()

    def write(self, data: bytes, records: int) -> None:
        with _naming(self.path):
            self._file.write(data)
        self._tally.add(data, records)

    def commit(self) -> LakeObject:
        with _naming(self.path):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            try:
                os.link(self.tmp, self.path)
            except FileExistsError:
                raise LakeError(f"{self.path} exists: lake objects are written once") from None
            finally:
                self.tmp.unlink(missing_ok=True)
            self.path.chmod(0o444)
            _fsync_dir(self.path.parent)
        return self._tally.lake_object(self.key, str(self.path))

    def abort(self) -> None:
        if not self._file.closed:
            with contextlib.suppress(OSError):  # a full disk fails the flush again
                self._file.close()
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An OSError in the block (full disk, read-only file system) as a LakeError naming
    ``path``."""
    try:
        yield
    except OSError as exc:
        raise LakeError(f"cannot write {path}: {exc.strerror or exc}") from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalLake:
    """Lake objects as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def setup(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def create(self, key: str) -> LocalWriter:
        return LocalWriter(self.root, key)

    def read(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            raise LakeError(f"no lake object {key} under {self.root}") from None

    def list(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        base = folder if prefix.endswith("/") else folder.parent
        if not base.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith("."))

    def uri(self, key: str) -> str:
        return str(self.root / key)

    def sweep(self, prefix: str) -> Keys:
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        removed = []
        for tmp in sorted(folder.rglob(".*.tmp")):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.relative_to(self.root).as_posix())
        return removed
