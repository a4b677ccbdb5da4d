"""portals.yaml as a Dagster resource: each run reads the file as it is now."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from datagate_pipelines.config import Portal, PortalRegistry, load_portals


class PortalsResource(dg.ConfigurableResource):
    """The portal registry (validated portals.yaml)."""

    portals_file: str | None = Field(
        default=None,
        description="Path to portals.yaml; default DATAGATE_PORTALS_FILE or ./portals.yaml",
    )

    def registry(self) -> PortalRegistry:
        return load_portals(self.portals_file)

    def portal(self, portal_id: str) -> Portal:
        return self.registry().get(portal_id)
