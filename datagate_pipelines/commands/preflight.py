"""What `datagate sync|bill` checks before it launches a run.

A refusal here is one `error:` line and exit 1, with nothing launched and nothing written:
the portal must be in portals.yaml and valid, the environment variables of the secrets
the run will use set (HaloPSA's always; QBO's for a billing run of a portal with a qbo
section), and every period between the portal's `billing_start` and the open period (this
month, UTC); an export only of a period that has ended. The runs check the same rules again (drafts.py,
finalize.py): whatever launches them, the rules hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from datagate_pipelines import DatagateError
from datagate_pipelines.billing.periods import invoice_date, month_start, period_label
from datagate_pipelines.commands.common import engine
from datagate_pipelines.config import Portal, PortalSettings


class RunRefusedError(DatagateError):
    """The command will not launch this run: it would fail, or do what was not meant."""


def check_sync_secrets(portal: Portal) -> None:
    """A sync needs the portal's HaloPSA credentials."""
    portal.halopsa_credentials()


def check_billing_secrets(portal: Portal, *, export: bool) -> None:
    """What a billing run needs. Its export steps run on every billing run, drafts-only
    ones too, and build their clients first: HaloPSA's credentials always, and for a
    portal with a qbo section the QBO app's id and secret. An export also calls QBO:
    it needs DATAGATE_TOKEN_KEY and a refresh token as well."""
    portal.halopsa_credentials()
    if portal.settings.qbo is None:
        return
    from datagate_pipelines.qbo.token_store import app_credentials, check_qbo_secrets

    if export:
        check_qbo_secrets(portal, engine)
    else:
        app_credentials(portal)


def check_periods(
    portal: PortalSettings, periods: Iterable[date], *, export: bool, today: date | None = None
) -> None:
    """Every period within billing_start … the open period; ended, when `export`."""
    today = today or datetime.now(UTC).date()
    open_period = month_start(today)
    for period in periods:
        label = period_label(period)
        if period < portal.billing_start:
            raise RunRefusedError(
                f"portal {portal.id}: billing period {label} is before billing_start "
                f"{period_label(portal.billing_start)}"
            )
        if period > open_period:
            raise RunRefusedError(
                f"portal {portal.id}: billing period {label} has not begun "
                f"(the open period is {period_label(open_period)})"
            )
        if export and invoice_date(period) > today:
            raise RunRefusedError(
                f"portal {portal.id}: billing period {label} is still open: it can be "
                f"finalized and exported from {invoice_date(period).isoformat()} "
                "(without --export, its drafts are built)"
            )
