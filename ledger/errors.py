"""The connector's errors. Every error a person may see derives from ConnectorError and
carries what the command line needs to report it: the message (what happened, what to do),
the exit code, and whether the command's own input was the obstacle. The ledger is the bottom
layer, so the root lives here and the adapters' errors (config, secrets, SFTP, IFS) derive
from it too."""
from __future__ import annotations


class ConnectorError(Exception):
    """The root of the errors a person sees. `exit_code`: 1 the work could not be done, 2 the
    configuration or the command's input is wrong. `bad_input`: the command's arguments were
    the obstacle (the command line then shows the command's usage line, exit 2)."""

    exit_code = 1
    bad_input = False


class LedgerError(ConnectorError):
    """A request the ledger cannot carry out; the message says why and what to do."""


class ConcurrentChange(LedgerError):
    """Another process recorded an event on the same stream first (the optimistic lock)."""


class InvoiceRuleError(ConnectorError):
    """A command that the invoice's current state does not allow."""


class NotApproved(InvoiceRuleError):
    """The invoice's current content is not approved in Stampli: it may not go to IFS."""


class ActionNotAllowed(InvoiceRuleError):
    """An operator action the invoice's state does not allow; names the states that do."""

    def __init__(self, message: str, *, action: str, state: str,
                 allowed_states: tuple[str, ...]) -> None:
        super().__init__(message)
        self.action, self.state, self.allowed_states = action, state, allowed_states


class BadOperatorInput(InvoiceRuleError):
    """An operator or a reason that cannot be recorded (empty, too long, control characters)."""
