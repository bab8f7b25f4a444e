"""Writing result files so that a failed write (a full disk, a removed folder) is an error that says what was lost.

Python's own writes raise on every failure, so results written through ``write_text_atomically`` cannot be lost
silently; OpenCV's video and image writers do not (see the sinks, which check through ``free_bytes`` and by
reading back).
"""

import os
from pathlib import Path
from typing import Optional, Union

from edgekit.errors import EdgekitError


def write_text_atomically(path: Union[str, Path], text: str, what: str) -> Path:
    """Write ``text`` to ``path`` through a sibling ``.partial`` file renamed into place, so an interrupted or
    failed write never leaves half a file under the final name; a failure is an EdgekitError naming ``what`` was
    lost (the partial file is removed, a previous file at ``path`` is left as it was)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("w") as handle:  # closing flushes: a full disk raises here at the latest
            handle.write(text)
        partial.replace(path)
    except OSError as exc:
        if partial.exists():
            partial.unlink()
        raise EdgekitError(f"cannot write {path}: {exc.strerror or exc}; the {what} are lost") from exc
    return path


def free_bytes(folder: Union[str, Path]) -> Optional[int]:
    """Bytes this process may still write on the file system holding ``folder`` (root may use the reserved blocks
    too, as the kernel lets it); None where the file system reports no size (some FUSE and virtual ones), whose 0
    free blocks would mean nothing."""
    stat = os.statvfs(str(folder))
    if stat.f_blocks == 0:
        return None
    blocks = stat.f_bfree if os.geteuid() == 0 else stat.f_bavail
    return blocks * stat.f_frsize
