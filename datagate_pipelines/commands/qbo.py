"""`datagate qbo connect|disconnect|tax-codes`: connect a portal to its QuickBooks Online
company; put our tax table into it as tax codes (companies outside the US).

Registered in cli.py with `main.add_command(qbo)`. Expected failures print one line and
exit 1; nothing is stored when connecting fails.
"""

from __future__ import annotations

import sys
import webbrowser

import click

from datagate_pipelines.commands.common import engine, expected_errors, portal_option
from datagate_pipelines.config import load_portals
from datagate_pipelines.qbo import connect as qbo_connect
from datagate_pipelines.warehouse.request_log import recording


def _read_pasted() -> str | None:
    line = sys.stdin.readline()
    return line or None


@click.group()
def qbo() -> None:
    """QuickBooks Online: connect and disconnect portals."""


@qbo.command("connect")
@portal_option()
@click.option(
    "--no-browser",
    is_flag=True,
    help="Do not open a browser: print the URL, and accept the redirect URL pasted here.",
)
@click.option(
    "--redirect-url",
    metavar="URL",
    help=(
        "Complete a connection started by an earlier `connect` (within 15 minutes) with "
        "the URL the browser was sent to after consent."
    ),
)
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for the redirect.")
@expected_errors
def connect(portal_id: str, no_browser: bool, redirect_url: str | None, timeout: int) -> None:
    """Authorize Datagate in QuickBooks for one portal and store its tokens (encrypted)."""
    portal = load_portals().get(portal_id)
    warehouse = engine()
    with recording(warehouse) as recorder:
        if redirect_url:
            pending = qbo_connect.load_pending(portal.id)
            try:
                result = qbo_connect.complete(
                    portal, warehouse, pending, redirect_url, recorder=recorder
                )
            finally:
                qbo_connect.discard_pending(portal.id)
        else:
            result = qbo_connect.connect(
                portal,
                warehouse,
                open_browser=None if no_browser else webbrowser.open,
                paste=_read_pasted if no_browser else None,
                show=click.echo,
                timeout=float(timeout),
                recorder=recorder,
            )
    click.echo(
        f"ok   portal {result.portal_id}: connected to QuickBooks company "
        f"{result.company_name!r} (realm {result.realm_id}); tokens stored encrypted"
    )


@qbo.command("disconnect")
@portal_option()
@expected_errors
def disconnect(portal_id: str) -> None:
    """Revoke the portal's QuickBooks refresh token and forget its stored tokens."""
    portal = load_portals().get(portal_id)
    warehouse = engine()
    with recording(warehouse) as recorder:
        result = qbo_connect.disconnect(portal, warehouse, recorder=recorder)
    click.echo(
        f"ok   portal {result.portal_id}: disconnected from QuickBooks company "
        f"{result.realm_id}; its refresh token is revoked and forgotten"
    )


@qbo.command("tax-codes")
@portal_option()
@click.option("--dry-run", is_flag=True, help="Show the mapping and what would be created.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@expected_errors
def tax_codes(portal_id: str, dry_run: bool, as_json: bool) -> None:
    """Our tax table as QBO tax codes (qbo.tax_mode: tax_codes): each (tax code, zip) and
    the QBO code it maps to; without --dry-run, create what is missing (agencies, rates,
    codes) once and link it."""
    from datagate_pipelines import DatagateError
    from datagate_pipelines.commands.accounts import qbo_session
    from datagate_pipelines.commands.common import print_json
    from datagate_pipelines.exporting.qbo_tax import apply_tax_codes, plan_tax_codes

    portal = load_portals().get(portal_id)
    settings = portal.settings.qbo
    if settings is None or settings.tax_mode != "tax_codes":
        raise DatagateError(
            f"portal {portal.id}: qbo.tax_mode is not tax_codes: US companies take TAX/NON "
            "per line and our tax as the total, and need no tax codes (README, Tax)"
        )
    with qbo_session(portal) as (warehouse, client):
        country = str(client.company_info().get("Country") or "US")
        if country == "US":
            raise DatagateError(
                f"portal {portal.id}: QBO company {settings.realm_id} is in the US: use "
                "qbo.tax_mode us_automated (tax codes are for companies outside the US)"
            )
        plan = plan_tax_codes(warehouse, client, portal.settings)
        outcome = None if dry_run else apply_tax_codes(warehouse, client, portal.settings, plan)
    if as_json:
        print_json(
            {
                "codes": [c.as_json() for c in plan.codes],
                "exempt": {"qbo_name": plan.exempt_name, "qbo_id": plan.exempt_id},
                "problems": plan.problems,
            }
        )
    else:
        for code in plan.codes:
            serves = ", ".join(key.replace("|", " at ") for key in code.keys)
            state = code.state if code.problem is None else f"failed: {code.problem}"
            click.echo(f"{code.name}  [{state}{f', id {code.qbo_id}' if code.qbo_id else ''}]")
            click.echo(f"    {serves}")
        exempt = f"id {plan.exempt_id}" if plan.exempt_id else "MISSING"
        click.echo(f"untaxed lines → {plan.exempt_name!r} [{exempt}]")
    if outcome is not None and not as_json:
        click.echo(
            f"ok   portal {portal.id}: {len(outcome.created)} tax code(s) created, "
            f"{len(outcome.matched) + outcome.linked} already in QBO, {len(outcome.failed)} failed"
        )
    for problem in plan.problems:
        click.echo(f"error: {problem}", err=True)
    if plan.problems:
        raise SystemExit(1)
