"""The IFS side of the connector: OData client and the `Erp` port implementation.

Public: IfsErp (the port), OutcomeUnknown (a write whose outcome is unknown: look it up with
find_posted before sending again), classify (HTTP status / IFS code -> what to do).
"""
from adapters.ifs.client import IfsErp
from adapters.ifs.errors import OutcomeUnknown, PreconditionFailed, classify

__all__ = ["IfsErp", "OutcomeUnknown", "PreconditionFailed", "classify"]
