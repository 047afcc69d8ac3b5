"""The composition root: builds the ledger, projections, secrets and the edges from the
settings (with overrides for tests), and offers the use cases the CLI calls."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID

from adapters.secrets import SecretStore, create_master_key
from adapters.settings import Settings, ledger_url
from ledger.app import Ledger, LedgerError
from projections.runner import Projector
from projections.status import read_status


def init_project(directory: Path, force: bool = False) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "ml-connector.toml"
    if config.exists() and not force:
        raise FileExistsError(str(config))
    config.write_text(resources.files("adapters").joinpath("config_template.toml").read_text())
    return config, create_master_key(directory / "data")


class Runtime:
    def __init__(self, settings: Settings, *, ledger: Ledger | None = None) -> None:
        self.settings = settings
        self._ledger = ledger
        self._projector: Projector | None = None
        self.secrets = SecretStore(settings.data_dir)

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(ledger_url(self.settings))
        return self._ledger

    @property
    def projector(self) -> Projector:
        if self._projector is None:
            self._projector = Projector(self.ledger)
        return self._projector

    def close(self) -> None:
        if self._projector is not None:
            self._projector.store.close()
        if self._ledger is not None:
            self._ledger.close()

    # ------------------------------------------------------------------ queries

    def status_rows(self, state: str | None = None) -> list[dict[str, Any]]:
        self.projector.catch_up()
        with self.projector.store.transaction() as cur:
            return read_status(cur, state)

    def resolve(self, ref: str) -> UUID:
        return self.ledger.resolve_ref(ref, self.settings.connector.company)

    # ------------------------------------------------------------------ replay

    def replay_one(self, ref: str, from_version: int | None,
                   reason: str = "requested from the command line") -> dict[str, Any]:
        invoice = self.ledger.request_replay(self.resolve(ref), from_version, reason)
        event = self.ledger.history(invoice.id)[-1]["data"]
        return {"id": str(invoice.id), "ref": invoice.ref,
                "from_version": event["from_version"], "restored_state": event["restored_state"]}

    def replay_failed(self, kind: str | None) -> list[dict[str, Any]]:
        done = []
        for row in self.status_rows("failed"):
            if kind and row["failure_kind"] != kind:
                continue
            try:
                done.append(self.replay_one(row["id"], None, "replay --failed"))
            except LedgerError:
                continue  # e.g. posted and changed since: not replayable, stays listed
        return done
