"""Before a portal syncs: can we reach its HaloPSA, and is the "Datagate" client field there?

`portals check` and the demo run this; it registers the portal in the warehouse, tests
the token and a first page of clients, and creates the checkbox custom field that opts
clients in when it is missing (docs/halopsa-api.md §4.9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from datagate_pipelines.config import Portal
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.warehouse.portals import register_portal
from datagate_pipelines.warehouse.request_log import recording


@dataclass
class AccessReport:
    """What the check found: `problems` block the portal; `notes` are for the operator."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_halopsa_access(portal: Portal, engine: Engine) -> AccessReport:
    """Test account access to HaloPSA and ensure the Datagate client field."""
    report = AccessReport()
    with engine.begin() as connection:
        register_portal(connection, portal)
    with (
        recording(engine) as recorder,
        HaloPSAClient.for_portal(portal, recorder=recorder) as client,
    ):
        access = client.test_access()
        report.notes.extend(f"warning: {warning}" for warning in access.warnings)
        if not access.ok:
            report.problems.extend(access.problems or ["HaloPSA access failed"])
            return report
        field_name = portal.settings.halopsa.datagate_field_name
        _field, created = client.ensure_client_checkbox_field(name=field_name, label=field_name)
        report.notes.append(
            f"HaloPSA: token ok, {access.client_count} client(s); custom field {field_name!r} "
            + ("created" if created else "present")
        )
    return report
