"""`datagate payments` and `datagate webhooks serve`: payments back from QBO."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import click

from datagate_pipelines.commands.common import engine, expected_errors, portal_option, print_json
from datagate_pipelines.config import load_portals


def _since(value: str | None) -> date | None:
    """An ISO date, or a number of days back from today (30d)."""
    if value is None:
        return None
    text = value.strip()
    if text[-1:] == "d" and text[:-1].isdigit():
        return date.today() - timedelta(days=int(text[:-1]))
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give an ISO date or days like 30d", param_hint="--since"
        ) from None


@click.command()
@portal_option()
@click.option("--since", help="Only payments dated on or after this (ISO date, or e.g. 30d).")
@click.option("--invoice", "doc_number", metavar="NUMBER", help="One invoice, with its history.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
@expected_errors
def payments(portal_id: str, since: str | None, doc_number: str | None, as_json: bool) -> None:
    """Payments read back from QBO: each application to an invoice (amount, date, method,
    reference) and whether HaloPSA has it. With --invoice, every version and the invoice's
    payment-status history."""
    from datagate_pipelines.exporting.payment_report import invoice_states, payment_documents

    load_portals().get(portal_id)
    with engine().connect() as connection:
        documents = payment_documents(
            connection, portal_id, since=_since(since), doc_number=doc_number
        )
        states = invoice_states(connection, portal_id, doc_number) if doc_number else []
    if as_json:
        print_json(documents)
        return
    for state in states:
        click.echo(
            f"{doc_number}: {state['payment_status']}, balance {state['balance'] or '-'}"
            f"{'' if state['qbo_state'] == 'open' else ' (' + state['qbo_state'] + ' in QBO)'}"
            f"  as of {state['recorded_at'][:19]}"
        )
    for doc in documents:
        halo = doc["halopsa"]
        where = (
            f"HaloPSA {halo['status']}"
            + (f" (payment {halo['payment_id']})" if halo["payment_id"] else "")
            + (f": {halo['error']}" if halo["error"] and halo["status"] == "failed" else "")
            if halo
            else "HaloPSA -"
        )
        click.echo(
            f"{doc['date'] or '----------'}  {doc['invoice'] or 'not ours: QBO invoice ' + doc['qbo_invoice_id']}"
            f"  {doc['customer'] or ''}  {doc['kind']} {doc['amount']}  {doc['method'] or '-'}"
            f"  {doc['reference'] or '-'}  QBO payment {doc['qbo_payment_id']}  {doc['state']}"
            f"{'' if doc['current'] else ' (earlier version)'}  {where}"
        )
    if not documents:
        click.echo(f"portal {portal_id}: no payments recorded")
        return
    applied = sum(
        (Decimal(d["amount"]) for d in documents if d["current"] and d["state"] == "applied"),
        Decimal(0),
    )
    click.echo(f"{len(documents)} application(s); {applied:.2f} applied")


@click.group()
def webhooks() -> None:
    """The QBO webhook receiver."""


@webhooks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8787, show_default=True, type=int)
@expected_errors
def serve(host: str, port: int) -> None:
    """Receive QBO webhooks at /webhooks/qbo: check intuit-signature, store each event once,
    answer within 3 s; the qbo_webhooks sensor turns them into payments runs."""
    import logging

    import uvicorn

    from datagate_pipelines.qbo.webhook_receiver import PATH, create_app, realms_of

    # The receiver's own lines (refusals, unknown realms) next to uvicorn's access log.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")

    registry = load_portals()
    realms = realms_of(registry)
    if not realms.portals:
        click.echo(
            "warning: no portal names qbo.webhook_verifier_token_env (with the variable set): "
            "every webhook will be refused",
            err=True,
        )
    for realm, portals in sorted(realms.portals.items()):
        click.echo(f"realm {realm}: portal(s) {', '.join(p for p, _ in portals)}")
    click.echo(f"QBO webhook receiver on http://{host}:{port}{PATH} (Ctrl-C stops it)")
    uvicorn.run(create_app(engine()), host=host, port=port, log_level="info")
