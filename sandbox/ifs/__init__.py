"""Emulated IFS Cloud (OData v4 + Keycloak token endpoint) for tests and the sandbox.

    async with IfsEmulator() as emu: ...          # in async tests
    with start_in_thread() as emu: ...            # from synchronous code
    python -m sandbox.ifs --port 0 --seed FILE    # from a shell
"""
from .app import IfsEmulator
from .runner import EmulatorThread, start_in_thread

__all__ = ["IfsEmulator", "EmulatorThread", "start_in_thread"]
