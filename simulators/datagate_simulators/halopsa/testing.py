"""In-process helpers for tests that talk to the HaloPSA simulator (or serve it on loopback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from starlette.applications import Starlette

from datagate_simulators.faults import FaultPlan, RequestStats
from datagate_simulators.halopsa.app import create_app
from datagate_simulators.halopsa.backend import HaloPSABackend
from datagate_simulators.testing import SimHandle

__all__ = ["IN_PROCESS_URL", "HaloSim", "make_sim"]

IN_PROCESS_URL = "http://halopsa.test"


@dataclass
class HaloSim(SimHandle):
    """A backend, its app and one application's credentials."""

    in_process_url: ClassVar[str] = IN_PROCESS_URL

    backend: HaloPSABackend
    app: Starlette
    client_id: str
    client_secret: str

    @property
    def faults(self) -> FaultPlan:
        return self.app.state.faults

    @property
    def stats(self) -> RequestStats:
        return self.app.state.stats

    def token(self, http: httpx.Client, *, tenant: str | None = None, scope: str = "all") -> str:
        """Fetch a bearer token the way most clients do (form body, tenant as query param)."""
        params = {"tenant": tenant} if tenant else None
        response = http.post(
            "/auth/token",
            params=params,
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "scope": scope,
            },
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def authed_client(self, base_url: str = IN_PROCESS_URL, **kwargs: Any) -> httpx.Client:
        """An in-process client that already carries a bearer token (not yet opened)."""
        with self.client(base_url) as bootstrap:
            token = self.token(bootstrap)
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token}"}
        return self.client(base_url, headers=headers, **kwargs)


def make_sim(
    *, client_id: str = "test-client", client_secret: str = "test-secret", **backend_kwargs: Any
) -> HaloSim:
    """A fresh, empty simulator with one application (fill it with generate_tenant/bayside_dental)."""
    backend = HaloPSABackend(**backend_kwargs)
    backend.add_application(client_id, client_secret)
    return HaloSim(
        backend=backend, app=create_app(backend), client_id=client_id, client_secret=client_secret
    )
