"""`datagate qbo connect|disconnect`: connect a portal to its QuickBooks Online company.

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
