"""What the ledger stores but no output shows: a user's password hash (UserCreated,
PasswordChanged) is printed as a marker. Only the output changes; the stored event, its place
in the audit chain and its MAC stay as they were."""
from __future__ import annotations

from typing import Any

PASSWORD_HASH = "<scrypt hash>"
_HIDDEN = {"password_hash": PASSWORD_HASH}


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """An event's data as it may be shown: the same dict when nothing in it is hidden."""
    if not any(key in data for key in _HIDDEN):
        return data
    return {k: _HIDDEN[k] if k in _HIDDEN and v else v for k, v in data.items()}
