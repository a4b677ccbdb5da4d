"""In-process helpers for tests that talk to the QBO simulator (or serve it on loopback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from starlette.applications import Starlette

from datagate_simulators.faults import FaultPlan, RequestStats
from datagate_simulators.testing import SimHandle

from .app import create_app
from .backend import QBOBackend
from .backend.company import Company
from .clock import Clock
from .settings import QBOSettings

__all__ = ["IN_PROCESS_URL", "QBOSim", "make_sim"]

IN_PROCESS_URL = "http://qbo.test"
DEFAULT_REALM = "9130350000000000"


@dataclass
class QBOSim(SimHandle):
    """A backend, its app and one company with an OAuth app connected to it."""

    in_process_url: ClassVar[str] = IN_PROCESS_URL

    backend: QBOBackend
    app: Starlette
    realm_id: str
    client_id: str
    client_secret: str

    @property
    def faults(self) -> FaultPlan:
        return self.app.state.fault_plan

    @property
    def stats(self) -> RequestStats:
        return self.app.state.request_stats

    @property
    def company(self) -> Company:
        return self.backend.company(self.realm_id)

    def access_token(self) -> str:
        """A valid access token for the company (minted: no OAuth dance)."""
        return self.backend.access_token(self.realm_id, self.client_id)

    def authed_client(self, base_url: str | None = None, **kwargs: Any) -> httpx.Client:
        """An in-process client that already carries a bearer token (not yet opened)."""
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.access_token()}"}
        return self.client(base_url, headers=headers, **kwargs)


def make_sim(
    *,
    realm_id: str = DEFAULT_REALM,
    client_id: str = "test-client",
    client_secret: str = "test-secret",
    settings: QBOSettings | None = None,
    clock: Clock | None = None,
    **company: Any,
) -> QBOSim:
    """A fresh simulator with one company; ``company`` goes to ``QBOBackend.seed_company``."""
    backend = QBOBackend(settings, clock)
    backend.seed_company(realm_id, client_id=client_id, client_secret=client_secret, **company)
    return QBOSim(
        backend=backend,
        app=create_app(backend),
        realm_id=realm_id,
        client_id=client_id,
        client_secret=client_secret,
    )
