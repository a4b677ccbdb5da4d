"""Running `datagate …` in-process. `cli` alone starts nothing: a test that needs HaloPSA,
portals.yaml and a warehouse asks for `halo_stack` too (the simulator on loopback), and
`qbo_company` adds a QuickBooks company (the QBO simulator on loopback) to its portal."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet

from datagate_pipelines.cli import main
from datagate_simulators.qbo import FakeClock, QBOBackend, create_app
from datagate_simulators.server import serve_in_thread
from tests.exporting.stack import QBO_YAML
from tests.stacks import PORTAL_YAML, Stack

QBO_REALM = "9130350000000077"
QBO_CLIENT_ID = "ABacme-qbo-app"
QBO_CLIENT_SECRET = "acme-qbo-secret-value"
QBO_FIRST_REFRESH_TOKEN = "AB11acme-first-refresh-token"


@pytest.fixture
def datagate(tmp_path, monkeypatch):
    """Run `datagate …` in-process with its own Dagster home; returns click's Result
    (exit_code, stdout and stderr apart, output as the terminal shows both)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def cli(datagate):
    """Run `datagate …` in-process; returns (exit code, output)."""

    def run(*args: str) -> tuple[int, str]:
        result = datagate(*args)
        return result.exit_code, result.output

    return run


@dataclass
class QBOCompany:
    backend: QBOBackend
    clock: FakeClock
    base_url: str

    def current_refresh_token(self) -> str | None:
        return self.backend.oauth.current_refresh_token(QBO_REALM)

    def revoke(self) -> None:
        """The company disconnected the app (in QuickBooks): every token of it dies."""
        token = self.current_refresh_token()
        assert token is not None
        self.backend.oauth.revoke(QBO_CLIENT_ID, QBO_CLIENT_SECRET, token)


@pytest.fixture
def qbo_company(halo_stack: Stack, monkeypatch) -> Iterator[QBOCompany]:
    """A QBO company on loopback (a FakeClock moves its time), and the portal exporting to it."""
    clock = FakeClock()
    backend = QBOBackend(clock=clock)
    backend.seed_company(
        QBO_REALM,
        client_id=QBO_CLIENT_ID,
        client_secret=QBO_CLIENT_SECRET,
        refresh_token=QBO_FIRST_REFRESH_TOKEN,
        company_name="Acme Books",
    )
    with serve_in_thread(create_app(backend)) as server:
        configure_with_qbo(halo_stack, server.base_url)
        for name, value in {
            "ACME_QBO_CLIENT_ID": QBO_CLIENT_ID,
            "ACME_QBO_CLIENT_SECRET": QBO_CLIENT_SECRET,
            "ACME_QBO_REFRESH_TOKEN": QBO_FIRST_REFRESH_TOKEN,
            "DATAGATE_TOKEN_KEY": Fernet.generate_key().decode(),
        }.items():
            monkeypatch.setenv(name, value)
        yield QBOCompany(backend, clock, server.base_url)


def configure_with_qbo(stack: Stack, qbo_url: str, **portal: Any) -> None:
    """The stack's portals.yaml, its portal exporting to the QBO company at `qbo_url`."""
    text = PORTAL_YAML.format(
        base=stack.base_url,
        sync="{}",
        billing_start=portal.get("billing_start", "2026-07"),
        approval=portal.get("approval", "auto"),
    )
    qbo = QBO_YAML.format(realm=QBO_REALM, qbo=qbo_url, income_accounts="{}")
    stack.portals_file.write_text(text + qbo)


PROGRESS_LINE = re.compile(r"\d\d:\d\d:\d\d ")


def without_progress(stderr: str) -> list[str]:
    """stderr's lines but the assets' own progress lines (orchestration/terminal.py)."""
    return [line for line in stderr.splitlines() if not PROGRESS_LINE.match(line)]
