"""Every error a person can see derives from ConnectorError, so the command line reports it
in one place (cli.py) with its own message and exit code; the few that never leave the code
that raises them are listed with where they end."""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from ledger.errors import ConnectorError

ROOT = Path(__file__).resolve().parent.parent

# module.Class -> why a person never sees it as such
INTERNAL = {
    "ledger.money.MoneyError": "adapters/ifs/mapping.py and projections/reconcile.py turn it"
                               " into the invoice's data failure or a report cell",
    "ledger.passwords.WeakPassword": "ledger/users.py turns it into UserError(bad_input)",
    "ledger.ports.UnreadableFile": "the poller records the file as rejected, with the message",
    "ledger.signing.KeyUnavailable": "Ledger.save records nothing and raises LedgerError",
    "adapters.schedule.ScheduleError": "settings.py checks the schedule at load: ConfigError",
    "adapters.stampli.errors.ExportFileError": "stampli/configured.py makes it UnreadableFile",
    "adapters.stampli.values.ValueProblem": "the readers make it a rejected row or file",
    "adapters.stampli.spill.SpillError": "raised in the pass-2 worker process, whose stop the"
                                         " reader reports (worker.py)",
    "adapters.ifs.errors.PreconditionFailed": "412: the caller re-reads the ETag and retries",
    "adapters.ifs.read_only.WriteRefused": "a dry run's guard: reaching it is a bug, reported"
                                           " as one",
}


def _error_classes() -> dict[str, type]:
    found = {}
    for package in ("ledger", "adapters", "projections"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            module = importlib.import_module(name)
            for cls_name, cls in vars(module).items():
                if (inspect.isclass(cls) and issubclass(cls, BaseException)
                        and cls.__module__ == name and not cls_name.startswith("_")):
                    found[f"{name}.{cls_name}"] = cls
    return found


def test_every_error_a_person_sees_derives_from_connector_error():
    classes = _error_classes()
    outside = {name for name, cls in classes.items()
               if not issubclass(cls, ConnectorError) and name not in INTERNAL}
    assert outside == set(), "derive these from ConnectorError, or list them in INTERNAL"
    assert set(INTERNAL) <= set(classes), "INTERNAL names a class that is gone"
    assert not {n for n in INTERNAL if issubclass(classes[n], ConnectorError)}


def test_the_errors_the_cli_reports_carry_their_exit_code():
    from adapters.secrets import SecretsError
    from adapters.settings import ConfigError
    from ledger.actions import ActionRefused
    from ledger.errors import LedgerError
    from ledger.ports import ErpFailure, SourceError
    from ledger.users import UserError

    assert ConfigError("x").exit_code == SecretsError("x").exit_code == 2
    assert LedgerError("x").exit_code == SourceError("x").exit_code == 1
    assert ErpFailure("transient", "x").exit_code == 1
    assert ActionRefused("x", bad_input=True).bad_input and UserError("x", bad_input=True).bad_input
    assert not ActionRefused("x").bad_input and not LedgerError("x").bad_input
