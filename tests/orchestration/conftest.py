"""The billing desk (tests/orchestration/billing_desk.py) as a fixture: `approval` manual
or auto, each test once per value unless it picks one (`indirect` parametrization)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.orchestration.billing_desk import Desk, open_desk


@pytest.fixture(params=["manual", "auto"])
def desk(request, engine, engine_url, tmp_path, monkeypatch) -> Iterator[Desk]:
    with open_desk(engine, engine_url, tmp_path, monkeypatch, request.param) as opened:
        yield opened
