"""How the bridge writes files: whole or not at all.

Why its own module: the write policy (temp file beside the target, fsync, rename) is one rule that the cache,
the generated opencode config and ``generate --out`` all follow.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class ReadRefused(ValueError):
    """A file that :func:`read_capped` will not read: not a regular file, or over the size cap."""


def atomic_write(path: Path, text: str) -> None:
    """Write to a temp file beside ``path``, fsync, then rename: readers see the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_capped(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Why not ``read_text``: a fifo would block forever and ``/dev/zero`` never ends. The file is opened without
    blocking and checked with ``fstat`` before one byte is read; at most ``limit + 1`` bytes are ever read.
    Raises :class:`ReadRefused`, or ``OSError`` when the file cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a directory" if stat.S_ISDIR(info.st_mode) else "a fifo" if stat.S_ISFIFO(info.st_mode)
                    else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "special")
            raise ReadRefused(f"not a regular file ({kind})")
        if info.st_size > limit:
            raise ReadRefused(f"the file is {info.st_size} bytes; the limit is {limit}")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, min(1 << 16, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ReadRefused(f"the file grew past the limit of {limit} bytes while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)
