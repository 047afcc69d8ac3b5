"""The interoperability world: SAP CAP (installed and started by the tests), the aiohttp front
(IAM token, nextLink forms, dropped replies), the real sshd with Stampli's outbound folder, and
the `ml-connector` CLI as a real process."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import IFS_SECRET, World, write_config
from tests.interop.cap_server import HOW, CapServer, install
from tests.interop.front import Front
from tests.services import require_service


@pytest.fixture(scope="session")
def cap_server():
    problem = install()
    require_service(not problem, "SAP CAP (npm @sap/cds)", f"{problem}; {HOW}")
    server = CapServer().start()
    yield server
    server.stop()


@pytest.fixture
def cap(cap_server):
    cap_server.reset()
    return cap_server


@pytest.fixture
def front(cap):
    f = Front(cap.url, IFS_SECRET).start()
    yield f
    f.stop()


@pytest.fixture
def cap_world(cap, front, sshd, tmp_path):
    def make(extra_ifs: str = "") -> World:
        config = write_config(tmp_path, sshd, front.url,
                              extra_ifs=f'token_url = "{front.url}/auth/token"\n{extra_ifs}')
        world = World(tmp_path, config, None, sshd, secrets=[IFS_SECRET])  # type: ignore[arg-type]
        world.cap, world.front = cap, front  # type: ignore[attr-defined]
        return world
    return make
