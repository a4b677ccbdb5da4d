"""What an operator sees when a command cannot do its work: refusals before any run (one
`error:` line, exit 1, no run launched, nothing written), and a run failing inside Dagster
(one line with the project's own root cause; `--verbose` adds the run id and the trace)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from datagate_pipelines import DatagateError
from datagate_pipelines.billing.periods import add_months, period_label
from datagate_pipelines.commands.preflight import check_billing_secrets
from datagate_pipelines.config import load_portals
from datagate_pipelines.warehouse.models import metadata
from tests.commands.conftest import configure_with_qbo, without_progress

OPEN = datetime.now(UTC).date().replace(day=1)  # the open billing period
NEXT = period_label(add_months(OPEN, 1))
INVALID_PORTAL = """
  - id: broken
    name: Broken
    billing_start: 2026-07
    colour: red
    halopsa: {client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}
"""


def runs_in(dagster_home: Path) -> list[dg.DagsterRun]:
    """Every run the Dagster instance at `dagster_home` holds (none when it was never made)."""
    if not (dagster_home / "dagster.yaml").exists():
        return []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return list(instance.get_runs())


def rows_in(engine) -> dict[str, int]:
    with engine.connect() as connection:
        counts = {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }
    return {name: count for name, count in counts.items() if count}


def assert_refused(result, message: str, tmp_path: Path, engine) -> None:
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [f"error: {message}"]
    assert result.stdout == ""
    assert runs_in(tmp_path / "dagster_home") == []
    assert rows_in(engine) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sync", "--portal", "nope"), "portal nope: id: no such portal in {portals_file}"),
        (
            ("bill", "--portal", "nope", "--period", "2026-07"),
            "portal nope: id: no such portal in {portals_file}",
        ),
        (("force-sync", "--portal", "nope"), "portal nope: id: no such portal in {portals_file}"),
        (("sync", "--portal", "broken"), "portal broken: colour: unknown field"),
        (("force-sync", "--portal", "broken"), "portal broken: colour: unknown field"),
        (
            ("bill", "--portal", "acme", "--period", "2026-06"),
            "portal acme: billing period 2026-06 is before billing_start 2026-07",
        ),
        (
            ("bill", "--portal", "acme", "--from", "2026-06", "--to", "2026-08"),
            "portal acme: billing period 2026-06 is before billing_start 2026-07",
        ),
        (
            ("bill", "--portal", "acme", "--period", NEXT),
            f"portal acme: billing period {NEXT} has not begun "
            f"(the open period is {period_label(OPEN)})",
        ),
        (
            ("bill", "--portal", "acme", "--period", period_label(OPEN), "--export"),
            f"portal acme: billing period {period_label(OPEN)} is still open: it can be "
            f"finalized and exported from {add_months(OPEN, 1).isoformat()} "
            "(without --export, its drafts are built)",
        ),
    ],
)
def test_a_refused_command_launches_nothing_and_writes_nothing(
    datagate, halo_stack, engine, tmp_path, args, message
):
    halo_stack.portals_file.write_text(halo_stack.portals_file.read_text() + INVALID_PORTAL)
    result = datagate(*args)
    assert_refused(result, message.format(portals_file=halo_stack.portals_file), tmp_path, engine)


@pytest.mark.parametrize("command", [("sync",), ("bill", "--period", "2026-07")])
def test_an_unset_halopsa_secret_is_refused_naming_the_portal_once(
    datagate, halo_stack, engine, tmp_path, monkeypatch, command
):
    monkeypatch.delenv("ACME_HALO_CLIENT_SECRET")
    result = datagate(command[0], "--portal", "acme", *command[1:])
    assert_refused(
        result,
        "portal acme: halopsa.client_secret_env: environment variable "
        "ACME_HALO_CLIENT_SECRET is not set",
        tmp_path,
        engine,
    )


QBO_SECRETS = ("ACME_QBO_CLIENT_ID", "ACME_QBO_CLIENT_SECRET", "ACME_QBO_REFRESH_TOKEN")


@pytest.mark.parametrize(
    ("unset", "export", "message"),
    [
        (
            "ACME_QBO_CLIENT_SECRET",
            True,
            "portal acme: qbo.client_secret_env: environment variable ACME_QBO_CLIENT_SECRET "
            "is not set",
        ),
        (  # the billing job's QBO steps build their client on a drafts-only run too
            "ACME_QBO_CLIENT_SECRET",
            False,
            "portal acme: qbo.client_secret_env: environment variable ACME_QBO_CLIENT_SECRET "
            "is not set",
        ),
        (
            "DATAGATE_TOKEN_KEY",
            True,
            "DATAGATE_TOKEN_KEY is not set: QBO tokens are stored encrypted",
        ),
        (
            "ACME_QBO_REFRESH_TOKEN",
            True,
            "portal acme: qbo.refresh_token_env: environment variable ACME_QBO_REFRESH_TOKEN is "
            "not set and no QBO token is stored: connect the portal "
            "(`datagate qbo connect --portal acme`)",
        ),
    ],
)
def test_billing_a_qbo_portal_needs_the_qbo_secrets(
    datagate, halo_stack, engine, tmp_path, monkeypatch, unset, export, message
):
    configure_with_qbo(halo_stack, "http://127.0.0.1:9")  # refused before any call to it
    for name in QBO_SECRETS:
        monkeypatch.setenv(name, "value")
    monkeypatch.setenv("DATAGATE_TOKEN_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv(unset)
    result = datagate(
        "bill", "--portal", "acme", "--period", "2026-07", *(["--export"] if export else [])
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}")
    assert runs_in(tmp_path / "dagster_home") == []
    assert rows_in(engine) == {}


@pytest.mark.parametrize("unset", ["DATAGATE_TOKEN_KEY", "ACME_QBO_REFRESH_TOKEN"])
def test_drafts_do_not_need_what_only_a_qbo_call_needs(halo_stack, monkeypatch, unset):
    configure_with_qbo(halo_stack, "http://127.0.0.1:9")
    for name in QBO_SECRETS:
        monkeypatch.setenv(name, "value")
    monkeypatch.setenv("DATAGATE_TOKEN_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv(unset)
    portal = load_portals().get("acme")
    check_billing_secrets(portal, export=False)  # not refused
    with pytest.raises(DatagateError, match=unset):
        check_billing_secrets(portal, export=True)


def test_a_run_failing_inside_dagster_prints_its_root_cause_on_one_line(
    datagate, halo_stack, tmp_path, monkeypatch
):
    monkeypatch.setenv("ACME_HALO_CLIENT_SECRET", "not-the-secret")  # set, but wrong
    result = datagate("sync", "--portal", "acme")
    assert result.exit_code == 1
    assert result.stdout == "syncing portal acme …\n"
    assert without_progress(result.stderr) == [
        "error: halopsa portal acme: POST /auth/token failed: HTTP 401: invalid_client: The "
        "specified client credentials are invalid. (check this portal's halopsa "
        "client_id/client_secret environment variables, tenant and authorization_server in "
        "portals.yaml, and the API application's permissions in Halo)"
    ]
    [run] = runs_in(tmp_path / "dagster_home")
    assert run.status == dg.DagsterRunStatus.FAILURE

    verbose = datagate("--verbose", "sync", "--portal", "acme")
    assert verbose.exit_code == 1
    first, *detail = without_progress(verbose.stderr)
    assert first == without_progress(result.stderr)[0]
    newest = runs_in(tmp_path / "dagster_home")[0]  # newest first
    assert detail[0] == (
        f"portal_sync run {newest.run_id} for acme failed; in the Dagster UI: Runs → {newest.run_id}"
    )
    assert "--- step halopsa_snapshot: Failure" in detail
    assert "Stack Trace:" in detail
    for output in (result.output, verbose.output):
        assert "not-the-secret" not in output


@pytest.mark.slow  # a whole sync
def test_a_run_shows_the_assets_own_lines_not_dagsters_events(datagate, halo_stack):
    result = datagate("sync", "--portal", "acme")
    assert result.exit_code == 0, result.output
    assert " customers: portal acme: customers: " in result.stderr
    assert " agreements: portal acme: agreements: " in result.stderr
    assert "- dagster -" not in result.stderr and "STEP_SUCCESS" not in result.stderr


@pytest.mark.slow
def test_billing_out_of_order_fails_inside_the_run_with_the_rule_it_broke(datagate, halo_stack):
    assert datagate("sync", "--portal", "acme").exit_code == 0
    result = datagate("bill", "--portal", "acme", "--period", "2026-09")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "error: portal acme: bill 2026-08 before 2026-09 "
        "(each period's ledger depends on the one before)"
    )
    assert "Traceback" not in result.output and "Dependencies for step" not in result.output


def test_force_sync_still_files_a_request_for_a_valid_portal(datagate, halo_stack, engine):
    result = datagate("force-sync", "--portal", "acme")
    assert result.exit_code == 0 and "filed for portal acme" in result.stdout
    assert rows_in(engine) == {"force_sync_requests": 1}
