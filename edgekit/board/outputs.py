"""Output paths, checked before any work starts: nothing of the user's is ever replaced, and a path that cannot
be written fails in one line at once instead of after a long build, training or run.

Every command that writes goes through :func:`check_output_dir` or :func:`check_output_file`. An existing
folder may be reused only when it is empty or is the tool's own output (an edgekit bundle, a training run, a demo
folder: the caller says how to recognise it); an existing file only when the caller recognises it as its own.
Writability is probed by creating and removing a temporary entry in the nearest existing folder, because
``os.access`` answers yes to root for ``/proc`` and for read-only mounts.
"""

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from edgekit.errors import EdgekitError

PathLike = Union[str, Path]


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _check_creatable(path: Path, folder: Path, what: str) -> None:
    """``path`` (the output) can be created in ``folder``: the folder exists and is writable, or can be made."""
    existing = _nearest_existing(folder.absolute())
    if not existing.is_dir():
        raise EdgekitError(f"{what} {path}: {existing} is a file, not a folder; choose another path")
    try:
        probe = tempfile.mkdtemp(prefix=".edgekit-write-probe-", dir=str(existing))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise EdgekitError(
            f"{what} {path} cannot be written: {existing} refuses new entries ({reason}); choose another path"
        ) from None
    os.rmdir(probe)


def check_output_file(
    path: PathLike,
    what: str,
    is_own: Optional[Callable[[Path], bool]] = None,
    own_description: str = "a file this command wrote",
) -> Path:
    """Where ``what`` will be written: not a folder, in a writable folder, and, if it exists, recognised by
    ``is_own`` (without ``is_own`` any existing file may be replaced, for outputs such as stats JSON)."""
    path = Path(path)
    if path.is_dir():
        raise EdgekitError(f"{what} {path} is a folder; give a file path")
    if path.exists() and is_own is not None and not is_own(path):
        raise EdgekitError(
            f"{what} {path} exists and is not {own_description}; nothing was written: choose another path or "
            "remove the file yourself"
        )
    _check_creatable(path, path.parent, what)
    return path


def check_output_dir(
    path: PathLike,
    what: str,
    is_own: Optional[Callable[[Path], bool]] = None,
    own_description: str = "a folder this command wrote",
) -> Path:
    """Where the folder ``what`` will be written: new, empty, or recognised by ``is_own`` (without ``is_own``
    any existing folder, for outputs that add files beside the user's); and writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise EdgekitError(f"{what} {path} is a file, not a folder; choose another path")
    if path.is_dir() and is_own is not None and any(path.iterdir()) and not is_own(path):
        raise EdgekitError(
            f"{what} {path} exists and is not {own_description}; nothing was written or deleted: choose a new "
            "or empty folder"
        )
    _check_creatable(path, path, what)
    return path


# errno values that mean the medium, not the program, refused the write
_MEDIUM_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EFBIG: "the file is too large for the file system",
}


def medium_failure(exc: OSError, where: PathLike, lost: str) -> Optional[EdgekitError]:
    """A one-line error for a write that failed because the disk is full, over quota or read-only (None for
    other errors, which stay tracebacks: they are bugs); ``lost`` says what was not written or was removed."""
    reason = _MEDIUM_ERRORS.get(exc.errno or 0)
    if reason is None:
        return None
    folder = _nearest_existing(Path(where).absolute())
    return EdgekitError(f"writing to {folder}: {reason}; {lost}")


@contextmanager
def medium_failures_as_errors(where: PathLike, lost: str) -> Iterator[None]:
    """Inside, a write refused by the medium (see :func:`medium_failure`) becomes a one-line EdgekitError."""
    try:
        yield
    except OSError as exc:
        failure = medium_failure(exc, where, lost)
        if failure is None:
            raise
        raise failure from exc
