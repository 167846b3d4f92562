"""How the bridge writes and reads files: whole or not at all, and never more than it means to.

Why its own module: the write policy is one rule that the cache, the generated opencode config and
``generate --out`` all follow (docs/reliability.md):

- **Atomic**: a temp file beside the target, fsync, then rename; readers see the old or the new file, whole.
  A failed write (read-only, full disk) leaves the old file as it was and removes its temp file.
- **Links**: a symlink is followed and its final target is replaced; the link stays a link.
- **Modes**: an existing file keeps its permission bits. A new file gets ``0666 & ~umask`` like any editor's;
  folders the bridge creates (the state dir) are ``0700``, so what is inside is private to the user.
- **Only regular files**: a directory, fifo or device at the target is an error, never written into.
- **Leftovers**: temp files are named ``.NAME.PID.RANDOM.tmp``. A write of NAME removes the ones whose process
  is gone (a killed write), and any older than an hour; a live writer's temp file is left alone.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .errors import StateError

if TYPE_CHECKING:  # pathlib loads on the first write: TAB completion only reads (read_capped)
    from pathlib import Path

LEFTOVER_AGE_S = 3600.0  # a temp file this old is a leftover even if its PID is alive again (reused)


DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
DISK_FULL_TEXT = "the disk is full"


def os_reason(exc: OSError) -> str:
    """The system's reason in words a user acts on: a full disk says so (its errno text, "No space left on
    device", was read as "check the state dir is writable")."""
    if exc.errno in DISK_FULL:
        return f"{DISK_FULL_TEXT} (free some space, then try again)"
    return exc.strerror or str(exc) or exc.__class__.__name__


class ReadRefused(ValueError):
    """A file that :func:`read_capped` will not read: not a regular file, or over the size cap."""


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` (and its parents) if missing; the folder itself is made ``0700`` (the policy above)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def atomic_write(path: str | os.PathLike[str], content: str | bytes | Iterable[bytes]) -> Path:
    """Write ``content`` to ``path`` by the policy above; returns the file really written (a link's target).

    ``content`` may come in pieces (a 42 MB config is then never held whole). Raises :class:`StateError`
    (exit 4) naming the file, with the system's reason.
    """
    from pathlib import Path

    target = Path(os.path.realpath(path))
    pieces = [content.encode("utf-8")] if isinstance(content, str) else [content] if isinstance(content, bytes) \
        else content
    try:
        ensure_dir(target.parent)
        _remove_leftovers(target)
        try:
            info: os.stat_result | None = target.stat()
        except FileNotFoundError:
            info = None
        if info is not None and not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise IsADirectoryError(0, f"it is {kind}")
        _replace(target, pieces, None if info is None else stat.S_IMODE(info.st_mode))
    except OSError as exc:
        reason = os_reason(exc)
        raise StateError(f"cannot write {Path(path)}: {reason}"
                         + (f" (writing {target})" if target != Path(path).absolute() else "")) from None
    return target


def create_new(path: Path, fill: Callable[[Path], None]) -> bool:
    """Make ``path`` appear whole or not at all, never replacing a file: ``fill`` builds it under a temp name
    beside it, which is then linked into place. Returns False when another process made ``path`` meanwhile
    (its file is kept). Why: a file that is still empty while it is being made (SQLite creates one on open)
    cannot be told from one a crash or a sync tool truncated, and only the second is damage."""
    ensure_dir(path.parent)
    _remove_leftovers(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))  # umask
    try:
        fill(tmp)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: a rename, which only a racing creator can lose to
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def holds(path: str | os.PathLike[str], pieces: Iterable[bytes]) -> bool:
    """Whether the regular file at ``path`` holds exactly ``pieces``, joined: read alongside, stopping at the
    first difference. A writer that leaves an unchanged file alone (its mtime too) asks this first."""
    try:
        fd, _ = _open_regular(path)
    except (OSError, ReadRefused):
        return False
    try:
        return all(_read_exactly(fd, len(piece)) == piece for piece in pieces) and os.read(fd, 1) == b""
    except OSError:
        return False
    finally:
        os.close(fd)


def _read_exactly(fd: int, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of the file (one read may return less)."""
    parts, left = [], size
    while left and (part := os.read(fd, left)):
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _replace(target: Path, pieces: Iterable[bytes], mode: int | None) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)  # umask applies
    try:
        try:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fd, mode)
            elif mode is not None:
                os.chmod(tmp, mode)
            for piece in pieces:
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_leftovers(target: Path) -> None:
    """Temp files of ``target`` left by a killed write (see the module docstring); best effort."""
    prefix = f".{target.name}."
    try:
        names = [n for n in os.listdir(target.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    now = time.time()
    for name in names:
        pid_text = name[len(prefix):].split(".", 1)[0]
        leftover = target.parent / name
        try:
            old = now - leftover.lstat().st_mtime > LEFTOVER_AGE_S
            if old or (pid_text.isdigit() and not _alive(int(pid_text))):
                leftover.unlink()
        except OSError:
            continue


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there: rely on the age only
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """A descriptor open for reading, and its ``fstat``, only for a regular file. Opened without blocking and
    checked before one byte is read (a fifo would wait for a writer); blocking again once it is known to be a
    file. Raises :class:`ReadRefused`, or ``OSError`` when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a directory" if stat.S_ISDIR(info.st_mode) else "a fifo" if stat.S_ISFIFO(info.st_mode)
                    else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "special")
            raise ReadRefused(f"not a regular file ({kind})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_capped(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Why not ``read_text``: a fifo would block forever and ``/dev/zero`` never ends. The file is opened without
    blocking and checked with ``fstat`` before one byte is read; at most ``limit + 1`` bytes are ever read.
    Raises :class:`ReadRefused`, or ``OSError`` when the file cannot be opened.
    """
    fd, info = _open_regular(path)
    try:
        if info.st_size > limit:
            raise ReadRefused(f"the file is {info.st_size} bytes; the limit is {limit}")
        chunks, size = [], 0
        # The size fstat gave, plus one byte to see the end, in one read (the cache is read per command); a file
        # still growing is read on in pieces, never past limit + 1.
        while size <= limit and (chunk := os.read(fd, min(max(1 << 16, info.st_size + 1 - size),
                                                          limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ReadRefused(f"the file grew past the limit of {limit} bytes while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)
