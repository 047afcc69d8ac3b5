"""What every aggregate of the ledger shares: each event it records names the connector
version that recorded it (the `connector_version` field of every event class), filled here
once instead of at each call site."""
from __future__ import annotations

from typing import Any

from ledger import __version__


class VersionStamped:
    """Mixin before `Aggregate` (`class Invoice(VersionStamped, Aggregate)`): `_create` and
    `trigger_event` add `connector_version` unless given (a test may record another one);
    `stamped` does the same for an event built directly (Invoice's intake fast path)."""

    @classmethod
    def _create(cls, event_class: type[Any], **kwargs: Any) -> Any:
        kwargs.setdefault("connector_version", __version__)
        return super()._create(event_class, **kwargs)  # type: ignore[misc]

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        kwargs.setdefault("connector_version", __version__)
        super().trigger_event(event_class, **kwargs)  # type: ignore[misc]

    @classmethod
    def stamped(cls, event_class: type[Any], **kwargs: Any) -> Any:
        """An event built without the aggregate, stamped as `trigger_event` stamps one."""
        kwargs.setdefault("connector_version", __version__)
        return event_class(**kwargs)
