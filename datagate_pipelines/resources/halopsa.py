"""HaloPSA as a Dagster resource: one plain-Python client per portal, built at run time.

Resources are static per code location, while credentials are per portal: the resource
holds only tuning, and `client()` reads the portal's secrets from the environment
variables portals.yaml names.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from datagate_pipelines.apiclient.records import RequestRecorder
from datagate_pipelines.apiclient.retries import RetryPolicy
from datagate_pipelines.config import Portal
from datagate_pipelines.halopsa.client import HaloPSAClient


class HaloPSAResource(dg.ConfigurableResource):
    """Builds a `HaloPSAClient` for a portal, with its rate budget from portals.yaml."""

    timeout_seconds: float = Field(default=30.0, description="Per-request timeout")
    max_attempts: int = Field(
        default=6, description="Attempts per request (429, 5xx, dropped connections)"
    )

    def client(
        self, portal: Portal, *, recorder: RequestRecorder | None = None, run_id: str | None = None
    ) -> HaloPSAClient:
        return HaloPSAClient.for_portal(
            portal,
            recorder=recorder,
            run_id=run_id,
            retry=RetryPolicy().replace(max_attempts=self.max_attempts),
            timeout=self.timeout_seconds,
        )
