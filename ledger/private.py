"""Files and folders that hold vendor data or point at secrets are created private (0700 /
0600) whatever the umask: the ledger database, the data folder, the config."""
from __future__ import annotations

import os
from pathlib import Path


def make_private_dir(path: str | Path) -> Path:
    """Create `path` (and missing parents) if absent; the folder itself is made 0700. A folder
    that already exists is left as its owner set it."""
    path = Path(path)
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            return path           # made meanwhile by another process, or not a folder: caller sees
        os.chmod(path, 0o700)     # mkdir's mode is masked by the umask; say it exactly
    return path


def create_private_file(path: str | Path) -> bool:
    """Create an empty `path` with mode 0600 if absent (True when it was made here). SQLite
    then gives its -wal and -shm files the database file's mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return True
