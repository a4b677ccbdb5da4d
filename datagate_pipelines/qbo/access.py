"""Can we reach a portal's QuickBooks company? For `datagate portals check`.

A refresh through the rotating token store (docs/qbo-api.md §1.4) proves the refresh token
QBO will be asked for at the next export — an access token still valid in the store would
hide a revoked or expired one — and stores the token QBO rotated to. A CompanyInfo read
then proves the access token, the realm and the API's base URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from datagate_pipelines.config import Portal
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.token_store import qbo_settings, token_store_for
from datagate_pipelines.warehouse.request_log import recording


@dataclass(frozen=True)
class QBOAccess:
    """What the check found: the company QBO answered for."""

    realm_id: str
    company_name: str

    def describe(self) -> str:
        return f"token refreshed, company {self.company_name!r} (realm {self.realm_id}) answered"


def check_qbo_access(portal: Portal, engine: Engine) -> QBOAccess:
    """Refresh the portal's QBO token and read CompanyInfo. Raises a `DatagateError`
    (missing secret or key, `ReconnectRequiredError`, an `ApiError`) when that fails; the
    calls go to the request log like every other."""
    settings = qbo_settings(portal)
    with recording(engine) as recorder:
        store = token_store_for(portal, engine, recorder=recorder)
        with QBOClient.for_portal(
            portal.id, settings, store, recorder=recorder, close_tokens=True
        ) as client:
            store.refresh()
            info = client.company_info()
    return QBOAccess(settings.realm_id, str(info.get("CompanyName") or "?"))
