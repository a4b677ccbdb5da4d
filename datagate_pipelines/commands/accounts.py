"""`datagate accounts`: the nominal (GL) codes a portal's HaloPSA records use, and the QBO
account each maps to (exporting/accounts.py). Registered in cli.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from datagate_pipelines.commands.common import engine, expected_errors, portal_option, print_json
from datagate_pipelines.config import Portal, load_portals


@contextmanager
def qbo_session(portal: Portal) -> Iterator[tuple[Any, Any]]:
    """(the warehouse, a QBO client for the portal): tokens from the rotating store, every
    request in the request log."""
    from datagate_pipelines.qbo.client import QBOClient
    from datagate_pipelines.qbo.token_store import qbo_settings, token_store_for
    from datagate_pipelines.warehouse.request_log import recording

    settings = qbo_settings(portal)
    warehouse = engine()
    with recording(warehouse) as recorder:
        store = token_store_for(portal, warehouse, recorder=recorder)
        with QBOClient.for_portal(
            portal.id, settings, store, recorder=recorder, close_tokens=True
        ) as client:
            yield warehouse, client


@click.command()
@portal_option()
@click.option("--unmapped", is_flag=True, help="Only the codes that map to no QBO account.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
@expected_errors
def accounts(portal_id: str, unmapped: bool, as_json: bool) -> None:
    """Every nominal code in use (items, item groups, purchase-order lines) and its QBO
    account; a document that needs an unmapped code fails its export with that reason."""
    from datagate_pipelines.exporting.accounts import Chart, codes_in_use, map_codes

    portal = load_portals().get(portal_id)
    with qbo_session(portal) as (warehouse, client):
        with warehouse.connect() as connection:
            codes = codes_in_use(connection, portal.id)
        mapped = map_codes(portal.settings, Chart.read(client), codes)
    shown = [c for c in mapped if c.account is None] if unmapped else mapped
    if as_json:
        print_json([c.as_json() for c in shown])
    elif not shown:
        click.echo(
            f"portal {portal.id}: {'no unmapped nominal codes' if unmapped else 'no nominal codes in use'}"
        )
    for code in [] if as_json else shown:
        used_by = ", ".join(f"{n} {what}" for what, n in sorted(code.used_by.items()))
        if code.account is None:
            target = "UNMAPPED"
        else:
            number = code.account.get("AcctNum")
            target = f"{code.account.get('Name')}" + (f" ({number})" if number else "")
            target += f"  [{code.source}]"
        click.echo(f"{code.code:<12} {'/'.join(sorted(code.kinds)):<15} {target}  — {used_by}")
