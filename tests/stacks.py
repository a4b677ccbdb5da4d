"""Fixtures for running the pipeline against simulators served over loopback (assets, CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from datagate_simulators.halopsa.generator import generate_tenant
from datagate_simulators.halopsa.testing import HaloSim, make_sim

PORTAL_YAML = """
portals:
  - id: acme
    name: Acme Telecom
    billing_start: {billing_start}
    halopsa:
      client_id_env: ACME_HALO_CLIENT_ID
      client_secret_env: ACME_HALO_CLIENT_SECRET
      tenant: acme
      authorization_server: {base}/auth
      resource_server: {base}/api
    sync: {sync}
    invoicing: {{approval: {approval}}}
"""


@dataclass
class Stack:
    sim: HaloSim
    base_url: str
    portals_file: Path
    database_url: str

    def configure(
        self, *, sync: str = "{}", billing_start: str = "2026-07", approval: str = "auto"
    ) -> None:
        """The portal's entry; `approval: auto` unless a test is about approval."""
        self.portals_file.write_text(
            PORTAL_YAML.format(
                base=self.base_url, sync=sync, billing_start=billing_start, approval=approval
            )
        )


@pytest.fixture
def halo_stack(engine_url, tmp_path, monkeypatch) -> Iterator[Stack]:
    """A generated HaloPSA tenant on loopback, a portals.yaml pointing at it, a warehouse."""
    sim = make_sim(client_id="acme-client", client_secret="acme-secret-value", tenant="acme")
    generate_tenant(sim.backend, customers=30, seed=7)
    with sim.serve() as server:
        stack = Stack(sim, server.base_url, tmp_path / "portals.yaml", engine_url)
        stack.configure()
        monkeypatch.setenv("DATAGATE_PORTALS_FILE", str(stack.portals_file))
        monkeypatch.setenv("DATAGATE_DATABASE_URL", engine_url)
        monkeypatch.setenv("ACME_HALO_CLIENT_ID", "acme-client")
        monkeypatch.setenv("ACME_HALO_CLIENT_SECRET", "acme-secret-value")
        yield stack


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance
