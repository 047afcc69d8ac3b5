"""`ml-connector known-hosts fetch`: pin Stampli's SFTP host key. The key is fetched with one
handshake (no login); the person compares its SHA256 fingerprint with the one Stampli gives
and only then is it written to `stampli.known_hosts`. A key that differs from one already
pinned is never replaced without saying so."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from adapters.stampli.sshkeys import (PinnedHostKeys, fetch_host_key, fingerprint,
                                      known_hosts_line, known_hosts_name)


@dataclass
class HostKeyOffer:
    name: str                      # as known_hosts names the host: host, or [host]:port
    key_type: str
    fingerprint: str
    line: str                      # the known_hosts line to write
    path: Path
    pinned: list[str]              # fingerprints already pinned for this host
    already: bool                  # this very key is pinned

    @property
    def replaces(self) -> bool:
        return bool(self.pinned) and not self.already


def offer(host: str, port: int, path: Path, timeout: float) -> HostKeyOffer:
    key = fetch_host_key(host, port, timeout=timeout)
    name = known_hosts_name(host, port)
    pinned = [fingerprint(k) for k in PinnedHostKeys(path).keys_for(name)] \
        if path.exists() else []
    return HostKeyOffer(name, key.get_name(), fingerprint(key), known_hosts_line(host, port, key),
                        path, pinned, fingerprint(key) in pinned)


def pin(offer: HostKeyOffer) -> None:
    """Write the key's line; lines pinning other keys for this host are dropped (the person
    confirmed the replacement), every other line is kept. Written whole, then renamed."""
    kept: list[str] = []
    if offer.path.exists():
        for raw in offer.path.read_text(encoding="utf-8").splitlines():
            hosts = raw.split(maxsplit=1)[0].split(",") if raw.strip() else []
            if offer.replaces and offer.name in hosts:
                continue
            kept.append(raw)
    kept.append(offer.line)
    offer.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = offer.path.with_name(offer.path.name + ".tmp")
    tmp.write_text("\n".join(kept) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, offer.path)
