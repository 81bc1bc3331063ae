"""Writing files so that a reader never sees half of one; reading small ones safely."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write `data` to a temporary file beside `path`, then rename it into place.

    The file is created with `mode` (no window with wider permissions) and a
    symlink at `path` is replaced, never written through.
    """
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def not_plain_dir(path: Path) -> str | None:
    """Why certwiz must not write into PATH, or None: a symlink would send writes elsewhere."""
    if path.is_symlink() or not path.is_dir():
        return (
            f"{path}: not a plain directory (a symlink is refused: "
            "certwiz never writes through one)"
        )
    return None


def install(src: Path, dst: Path, mode: int) -> None:
    """Move a finished file into place with its final mode (rename: atomic)."""
    os.chmod(src, mode)
    with open(src, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(src, dst)


@contextlib.contextmanager
def scratch_dir(parent: Path) -> Iterator[Path]:
    """A private (0700) temporary directory on the same file system as `parent`."""
    path = Path(tempfile.mkdtemp(dir=parent, prefix=".certwiz-"))
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


def read_small_text(path: Path, field: str, limit: int) -> str:
    """A small UTF-8 file given by the user, read at most `limit` bytes deep.

    Bounded: a path such as /dev/zero must not fill the memory. Every failure is an
    InputError on `field`.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InputError(field, f"cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InputError(field, f"{path} is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(field, f"{path} is not UTF-8 text") from None
