"""The one-command demo: simulators, a demo portal, sync, billing, export, then the UI.

Everything it makes lives in the project folder: the simulators' addresses, portals.yaml,
secrets and warehouse in `.datagate/demo/` (with an `env` file of export lines, so
`source .datagate/demo/env` gives any shell the demo's configuration and this installation's
`datagate` on PATH), runs in DAGSTER_HOME.
"""

from __future__ import annotations

import csv
import secrets
import shlex
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from datagate_pipelines.billing.periods import add_months, period_label
from datagate_pipelines.demo.processes import PORTAL_ID, REALM_ID, DemoError

# Tax codes by HaloPSA asset group, and rates by state: the demo's product templates and
# tax table (the generator places customers by zip prefix; see simulators/halopsa/generator.py).
TAX_CODE_BY_GROUP = {
    "Voice": "TEL",
    "Connectivity": "TEL",
    "Managed IT": "SVC",
    "Hardware": "NONTAXABLE",
}
RATES_BY_PREFIX: dict[str, list[tuple[str, str, str]]] = {
    # zip prefix: [(tax code, jurisdiction, rate)]
    "9": [("TEL", "State", "0.0600"), ("TEL", "District", "0.0125"), ("SVC", "State", "0.0725")],
    "1": [("TEL", "State", "0.0400"), ("TEL", "City", "0.0450"), ("SVC", "State", "0.0400")],
    "7": [("TEL", "State", "0.0625"), ("TEL", "Local", "0.0200"), ("SVC", "State", "0.0625")],
    "8": [("TEL", "State", "0.0290"), ("SVC", "State", "0.0290")],
    "6": [("TEL", "State", "0.0625"), ("TEL", "City", "0.0125"), ("SVC", "State", "0.0625")],
}


def demo_secrets() -> dict[str, str]:
    """Fresh credentials for the simulators' apps, and a key for the token store."""
    from cryptography.fernet import Fernet

    return {
        "DEMO_HALO_CLIENT_ID": "demo-halo-app",
        "DEMO_HALO_CLIENT_SECRET": secrets.token_urlsafe(24),
        "DEMO_QBO_CLIENT_ID": "demo-qbo-app",
        "DEMO_QBO_CLIENT_SECRET": secrets.token_urlsafe(24),
        "DEMO_QBO_REFRESH_TOKEN": "RT-" + secrets.token_urlsafe(24),
        "DATAGATE_TOKEN_KEY": Fernet.generate_key().decode(),
    }


def write_configuration(
    folder: Path,
    halo_url: str,
    qbo_url: str,
    billing_start: date,
    credentials: dict[str, str],
    dagster_home: Path,
) -> dict[str, str]:
    """The demo's portals.yaml and `env` file (export lines); returns the environment."""
    environment = {
        "DAGSTER_HOME": str(dagster_home),
        "DATAGATE_PORTALS_FILE": str(folder / "portals.yaml"),
        "DATAGATE_DATABASE_URL": f"sqlite:///{folder / 'warehouse.db'}",
        "DATAGATE_DEMO_HALOPSA_URL": halo_url,
        "DATAGATE_DEMO_QBO_URL": qbo_url,
        **credentials,
    }
    (folder / "portals.yaml").write_text(
        f"""# Written by `datagate demo`: one portal against the local simulators.
portals:
  - id: {PORTAL_ID}
    name: Demo Telecom
    currency: USD
    billing_start: {billing_start:%Y-%m}
    halopsa:
      client_id_env: DEMO_HALO_CLIENT_ID
      client_secret_env: DEMO_HALO_CLIENT_SECRET
      tenant: demo
      authorization_server: {halo_url}/auth
      resource_server: {halo_url}/api
    sync:
      use_default_agreement: true
      in_advance_months: 1
      allow_pro_rata: true
    invoicing:
      next_number: 1001
      payment_terms_days: 30
      # The demo ends with exported invoices: no approval step (portals default to manual).
      approval: auto
    qbo:
      realm_id: "{REALM_ID}"
      client_id_env: DEMO_QBO_CLIENT_ID
      client_secret_env: DEMO_QBO_CLIENT_SECRET
      refresh_token_env: DEMO_QBO_REFRESH_TOKEN
      base_url: {qbo_url}
      token_url: {qbo_url}/oauth2/v1/tokens/bearer
      revoke_url: {qbo_url}/v2/oauth2/tokens/revoke
      authorize_url: {qbo_url}/connect/oauth2
      income_account: Services
""",
        encoding="utf-8",
    )
    env_file = folder / "env"
    # This installation's `datagate` first on PATH: a new shell has no virtualenv active.
    scripts = shlex.quote(sysconfig.get_path("scripts"))
    env_file.write_text(
        "# source this file to point `datagate` at the running demo\n"
        + "".join(
            f"export {key}={shlex.quote(value)}\n" for key, value in sorted(environment.items())
        )
        + f'export PATH={scripts}:"$PATH"\n',
        encoding="utf-8",
    )
    env_file.chmod(0o600)
    return environment


def try_commands(env_file: Path, period: date) -> list[str]:
    """Commands to paste into another shell while the demo runs (the first one configures it)."""
    return [
        f"source {shlex.quote(str(env_file))}",
        f"datagate invoices --portal {PORTAL_ID} --period {period_label(period)}",
        "datagate portals status",
        f"datagate requests --portal {PORTAL_ID} --limit 5",
    ]


def demo_tax_rates(zips: set[str]) -> str:
    rows = ["zip,tax_code,jurisdiction,rate"]
    for zip_code in sorted(zips):
        for code, jurisdiction, rate in RATES_BY_PREFIX.get(zip_code[:1], []):
            rows.append(f"{zip_code},{code},{jurisdiction},{rate}")
    return "\n".join(rows) + "\n"


def demo_usage(customer_ids: list[int], period: date) -> str:
    """Call usage for every fifth customer, deterministic amounts, dated inside the period."""
    rows = ["customer_id,customer_name,site_id,description,amount,tax_code,usage_date"]
    for index, customer_id in enumerate(customer_ids):
        if index % 5:
            continue
        cents = 500 + (customer_id * 7919) % 9000
        day = 1 + customer_id % 27
        rows.append(
            f"{customer_id},,,Long distance calls {period_label(period)},{Decimal(cents) / 100:.2f},TEL,"
            f"{period.replace(day=day).isoformat()}"
        )
    return "\n".join(rows) + "\n"


@dataclass
class Summary:
    lines: list[str] = field(default_factory=list)
    #: One line per export that failed (`export failed: 1003 → qbo: 6000 …`).
    failed_exports: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.lines.append(text)


def run_demo_pipeline(folder: Path, period: date, say: Callable[[str], None]) -> Summary:
    """test-access, sync, imports, billing (finalize + export) of the closed period, drafts of the open one."""
    from datagate_pipelines.config import load_portals
    from datagate_pipelines.exporting.status import open_exports
    from datagate_pipelines.imports.product_templates import import_product_templates
    from datagate_pipelines.imports.tax_rates import import_tax_rates
    from datagate_pipelines.imports.usage import import_usage
    from datagate_pipelines.orchestration.instance import instance
    from datagate_pipelines.orchestration.launch import run_billing, run_sql_models, run_sync
    from datagate_pipelines.orchestration.run_failures import RunFailedError
    from datagate_pipelines.sync.access import check_halopsa_access
    from datagate_pipelines.warehouse import models as m
    from datagate_pipelines.warehouse.db import warehouse_engine
    from datagate_pipelines.warehouse.sql_models import discover

    started = time.monotonic()
    portal = load_portals().get(PORTAL_ID)
    engine = warehouse_engine()
    dagster = instance()
    say("test account access (and the Datagate custom field) …")
    access = check_halopsa_access(portal, engine)
    if not access.ok:
        raise DemoError("; ".join(access.problems))
    say("sync HaloPSA → customers, sites, products, agreements …")
    run_sync(dagster, PORTAL_ID)
    with engine.connect() as connection:
        groups = dict(
            connection.execute(
                select(m.item_groups.c.halo_id, m.item_groups.c.name).where(
                    m.item_groups.c.portal_id == PORTAL_ID
                )
            ).all()
        )
        items = connection.execute(
            select(m.items.c.halo_id, m.items.c.name, m.items.c.item_group_id).where(
                m.items.c.portal_id == PORTAL_ID
            )
        ).all()
        zips = {
            z.split("-")[0].strip().upper()
            for z in connection.execute(
                select(m.sites.c.zip).where(m.sites.c.portal_id == PORTAL_ID)
            ).scalars()
            if z
        }
        customer_ids = list(
            connection.execute(
                select(m.customers.c.halo_client_id)
                .where(m.customers.c.portal_id == PORTAL_ID, m.customers.c.active.is_(True))
                .order_by(m.customers.c.halo_client_id)
            ).scalars()
        )
    templates = folder / "product-templates.csv"
    with templates.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "item_name", "tax_code", "income_account"])
        for item in items:
            writer.writerow(
                [
                    item.halo_id,
                    item.name,
                    TAX_CODE_BY_GROUP.get(groups.get(item.item_group_id, ""), "SVC"),
                    "",
                ]
            )
    (folder / "tax-rates.csv").write_text(demo_tax_rates(zips))
    (folder / f"usage-{period:%Y-%m}.csv").write_text(demo_usage(customer_ids, period))
    say("import product templates, tax rates and usage …")
    with engine.begin() as connection:
        import_product_templates(connection, PORTAL_ID, templates)
        import_tax_rates(connection, folder / "tax-rates.csv")
        import_usage(
            connection,
            PORTAL_ID,
            period,
            folder / f"usage-{period:%Y-%m}.csv",
            imported_by="datagate demo",
        )
    say(f"bill {period_label(period)}: finalize, number and export …")
    try:
        run_billing(dagster, PORTAL_ID, period, finalize=True)
    except RunFailedError as error:
        if not error.failed_exports:
            raise
        say(f"{error.failed_exports} export(s) failed: see the summary")
    open_period = add_months(period, 1)
    say(f"bill {period_label(open_period)} (the open period): drafts …")
    run_billing(dagster, PORTAL_ID, open_period, finalize=False)
    say("build the SQL views (dbt_like_sql/) …")
    run_sql_models(dagster)

    summary = Summary()
    with engine.connect() as connection:

        def count(table: Any, *where: Any) -> int:
            return connection.execute(
                select(func.count()).select_from(table).where(*where)
            ).scalar_one()

        closed = (m.invoices.c.portal_id == PORTAL_ID, m.invoices.c.period == period)
        total = connection.execute(select(func.sum(m.invoices.c.total)).where(*closed)).scalar()
        summary.add(f"customers: {count(m.customers, m.customers.c.portal_id == PORTAL_ID)}")
        summary.add(f"products:  {count(m.products, m.products.c.portal_id == PORTAL_ID)}")
        summary.add(
            f"invoices {period_label(period)}: {count(m.invoices, *closed)} "
            f"({count(m.invoices, *closed, m.invoices.c.status == 'final')} final, "
            f"{count(m.invoices, *closed, m.invoices.c.status == 'held')} held), total {total or 0}"
        )
        exported = count(m.exports, m.exports.c.status == "exported")
        credits = count(
            m.exports,
            m.exports.c.status == "exported",
            m.exports.c.external_type.in_(("CreditMemo", "credit_note")),
        )
        open_now = open_exports(connection, {PORTAL_ID: portal.settings.export_targets})
        summary.failed_exports = [e.line() for e in open_now if e.status == "failed"]
        summary.add(
            f"exports:   {exported} exported ({credits} as credit memos / credit notes), "
            f"{len(summary.failed_exports)} failed, "
            f"{sum(1 for e in open_now if e.status != 'failed')} not yet exported"
        )
        summary.add(
            "approval:  auto for the demo portal (invoicing.approval): its invoices were "
            "finalized and exported without `datagate review` / `datagate approve`, which a "
            "portal does by default"
        )
        summary.add(f"rejected rows: {count(m.rejects, m.rejects.c.portal_id == PORTAL_ID)}")
        summary.add(f"SQL views: {', '.join(model.name for model in discover())}")
        summary.add(
            f"API calls: {count(m.api_requests)} ({count(m.api_requests, m.api_requests.c.status == 429)} answered 429)"
        )
    summary.add(f"time: {time.monotonic() - started:.1f} s")
    return summary


def last_closed_period(today: date | None = None) -> date:
    today = today or datetime.now(UTC).date()
    return add_months(today.replace(day=1), -1)
