"""Export files on the local disk (`ml-connector ingest FILE...`): a file received by email or
kept from a migration is recorded exactly as if it had come from Stampli's SFTP folder: the
same content-addressed kept copy (data_dir/files/<sha256[:2]>/<sha256>), the same identity
(file name + sha256), so the same dedupe."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from ledger.ports import DownloadedFile, RemoteFile, SourceError

CHUNK = 1 << 20


class LocalFiles:
    """`ExportSource` over an explicit list of files; never moves or changes them."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths: dict[str, Path] = {}
        for path in paths:
            if path.name in self.paths and self.paths[path.name] != path:
                raise SourceError(f"{path} and {self.paths[path.name]} have the same file name;"
                                  " the name is part of an export's identity: ingest them one"
                                  " at a time", transient=False)
            self.paths[path.name] = path

    def list_files(self, patterns: list[str]) -> list[RemoteFile]:
        out = []
        for name, path in self.paths.items():
            st = path.stat()
            out.append(RemoteFile(name, st.st_size, st.st_mtime))
        return out

    def download(self, name: str, dest_dir: Path) -> DownloadedFile:
        """Copy into the content-addressed store, hashing on the way; nothing partial is left
        behind on a failure."""
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=".part-")
        tmp = Path(tmp_name)
        try:
            digest, size = hashlib.sha256(), 0
            with open(self.paths[name], "rb") as source, os.fdopen(fd, "wb") as out:
                while block := source.read(CHUNK):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            target = dest_dir / sha[:2] / sha
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                tmp.unlink()              # same content already kept: one copy
            else:
                os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SourceError(f"{self.paths[name]}: cannot read it: {exc.strerror or exc}",
                              transient=False) from None
        return DownloadedFile(name, target, sha, size)

    def archive(self, name: str, archive_dir: str) -> None:
        return None                   # a local file is the admin's: left where it is

    def close(self) -> None:
        return None
