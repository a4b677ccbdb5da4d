"""A billing desk as Dagster runs it, HaloPSA and QBO simulators on loopback: a synced
portal with tax rates and templates, the nightly billing schedule's ticks evaluated and
their runs executed in this process (tests/orchestration/conftest.py serves it as `desk`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from click.testing import CliRunner
from sqlalchemy import Engine, func, insert, select

from datagate_pipelines.cli import main
from datagate_pipelines.config import Portal, parse_portals
from datagate_pipelines.definitions import defs
from datagate_pipelines.orchestration.schedules import nightly_billing
from datagate_pipelines.qbo.token_store import TokenCipher
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse import models as m
from datagate_simulators.server import serve_in_thread
from tests.exporting.stack import (
    FIRST_REFRESH_TOKEN,
    PORTAL_YAML,
    QBO_CLIENT_ID,
    QBO_SECRET,
    QBO_YAML,
    REALM,
    halo_client,
    halo_sim,
    import_reference_data,
    ingest,
    qbo_sim,
    sync,
)

JULY_PARTITION = "2026-07-01|acme"
NIGHT_AFTER_JULY = datetime(2026, 8, 2, 4, 0, tzinfo=UTC)
#: That night's sync tick (DATAGATE_SYNC_CRON's default, 02:00 UTC).
SYNC_TICK_AFTER_JULY = datetime(2026, 8, 2, 2, 0, tzinfo=UTC)


@dataclass
class Desk:
    portal: Portal
    halo: object
    qbo: object
    instance: dg.DagsterInstance
    engine: Engine

    def datagate(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output


@contextmanager
def open_desk(
    engine: Engine, engine_url: str, tmp_path, monkeypatch, approval: str
) -> Iterator[Desk]:
    """A synced portal with tax rates and templates, `approval` manual or auto."""
    halo, qbo = halo_sim(), qbo_sim()
    with halo.serve() as halo_server, serve_in_thread(qbo.app) as qbo_server:
        portals_file = tmp_path / "portals.yaml"
        text = PORTAL_YAML.format(
            halo=halo_server.base_url,
            qbo=QBO_YAML.format(realm=REALM, qbo=qbo_server.base_url, income_accounts="{}"),
        ).replace("approval: auto", f"approval: {approval}")
        portals_file.write_text(text)
        for name, value in {
            "DATAGATE_PORTALS_FILE": str(portals_file),
            "DATAGATE_DATABASE_URL": engine_url,
            "DAGSTER_HOME": str(tmp_path / "dagster_home"),
            "DATAGATE_OPERATOR": "alice",
            "ACME_HALO_CLIENT_ID": halo.client_id,
            "ACME_HALO_CLIENT_SECRET": halo.client_secret,
            "ACME_QBO_CLIENT_ID": QBO_CLIENT_ID,
            "ACME_QBO_CLIENT_SECRET": QBO_SECRET,
            "ACME_QBO_REFRESH_TOKEN": FIRST_REFRESH_TOKEN,
            "DATAGATE_TOKEN_KEY": TokenCipher.generate_key(),
        }.items():
            monkeypatch.setenv(name, value)
        portal = parse_portals(text).get("acme")
        assert portal.settings.invoicing.approval == approval
        with halo_client(halo) as client:
            ingest(engine, portal, client)
        sync(engine, portal)
        import_reference_data(engine, portal)
        sync(engine, portal)
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("portal", ["acme"])
            yield Desk(portal, halo, qbo, instance, engine)


RESOURCES = {"portals": PortalsResource(), "warehouse": WarehouseResource()}


def nightly_tick(desk: Desk, when: datetime) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(
        instance=desk.instance,
        scheduled_execution_time=when,
        resources=RESOURCES,
        repository_def=defs.get_repository_def(),
    )
    return list(nightly_billing.evaluate_tick(context).run_requests or [])


def execute(desk: Desk, job_name: str, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Run a request as the daemon would launch it (in this process)."""
    return defs.resolve_job_def(job_name).execute_in_process(
        run_config=request.run_config,
        partition_key=request.partition_key,
        tags=request.tags,
        instance=desk.instance,
        raise_on_error=False,
    )


def record_sync(engine: Engine, started_at: datetime, status: str = "succeeded") -> None:
    """A portal_sync run's record as the sync steps leave it (warehouse/sync_runs.py): the
    fixture's sync wrote the tables without one, and a nightly close looks for it."""
    with engine.begin() as c:
        c.execute(
            insert(m.sync_runs).values(
                portal_id="acme",
                run_id=f"sync-{started_at:%Y%m%d%H%M%S}-{status}",
                started_at=started_at,
                finished_at=None if status == "running" else started_at,
                status=status,
                data_as_of=started_at,
            )
        )


def invoices(engine, period="2026-07-01") -> list:
    with engine.connect() as c:
        return c.execute(
            select(m.invoices).where(m.invoices.c.period == datetime.fromisoformat(period).date())
        ).all()


def actions(engine) -> dict[str, int]:
    with engine.connect() as c:
        return dict(
            c.execute(
                select(m.audit_events.c.action, func.count()).group_by(m.audit_events.c.action)
            ).all()
        )
