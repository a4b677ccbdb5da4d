"""The QBO simulator over real sockets: serve_in_thread, and the CLI as a subprocess."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
from decimal import Decimal

import httpx
import pytest

from datagate_simulators.qbo.testing import make_sim

REALM = "9130350000000000"


def connect(base_url: str, client: tuple[str, str], refresh_token: str) -> dict[str, str]:
    response = httpx.post(
        f"{base_url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=client,
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_loopback_flow_with_two_companies():
    sim = make_sim(
        realm_id=REALM,
        client_id="a",
        client_secret="s",
        refresh_token="RT-A",
        items=[{"Name": "Support"}],
        customers=[{"DisplayName": "Acme"}],
    )
    sim.backend.seed_company("222", client_id="b", client_secret="t", refresh_token="RT-B")
    with sim.serve() as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        doc = httpx.get(f"{server.base_url}/.well-known/openid_configuration/").json()
        assert doc["token_endpoint"] == f"{server.base_url}/oauth2/v1/tokens/bearer"
        tokens = connect(server.base_url, ("a", "s"), "RT-A")
        api = httpx.Client(
            base_url=f"{server.base_url}/v3/company/{REALM}",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        with api:
            invoice = api.post(
                "/invoice",
                params={"minorversion": 75, "requestid": "r1"},
                json={
                    "CustomerRef": {"value": "1"},
                    "DocNumber": "INV-0001",
                    "Line": [
                        {
                            "Amount": 99.95,
                            "DetailType": "SalesItemLineDetail",
                            "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                        }
                    ],
                },
            )
            assert invoice.status_code == 200, invoice.text
            found = api.get(
                "/query", params={"query": "SELECT * FROM Invoice WHERE DocNumber = 'INV-0001'"}
            ).json()
            assert found["QueryResponse"]["Invoice"][0]["Balance"] == 99.95
            # The other company's token does not open this one.
            other = connect(server.base_url, ("b", "t"), "RT-B")["access_token"]
            denied = api.get("/invoice/1", headers={"Authorization": f"Bearer {other}"})
            assert denied.status_code == 403
        # Dropped connections are real socket closes over loopback.
        httpx.post(f"{server.base_url}/_sim/faults", json={"kind": "drop", "count": 1})
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(
                f"{server.base_url}/v3/company/{REALM}/invoice/1",
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
            )
    assert sim.company.get("Invoice", "1")["TotalAmt"] == Decimal("99.95")


def read_first_line(process: subprocess.Popen[str], timeout: float = 20.0) -> str:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        raise TimeoutError("the simulator did not print its URL")
    return process.stdout.readline().strip()


def test_cli_serves_on_port_0_until_sigterm():
    command = [
        sys.executable,
        "-m",
        "datagate_simulators.qbo",
        "--port",
        "0",
        "--realm",
        REALM,
        "--client-id",
        "X",
        "--client-secret",
        "Y",
        "--refresh-token",
        "R",
        "--no-custom-txn-numbers",
        "--throttle",
        "500/60",
        "--batch-max",
        "30",
        "--xml-throttle",
        "--rotate-after-seconds",
        "0",
        "--grace-seconds",
        "60",
        "--tax-code",
        "CA:8.25",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base_url = read_first_line(process)
        assert base_url.startswith("http://127.0.0.1:")
        tokens = connect(base_url, ("X", "Y"), "R")
        assert tokens["refresh_token"] != "R"  # --rotate-after-seconds 0: rotates at once
        # The replaced token still works during --grace-seconds.
        assert connect(base_url, ("X", "Y"), "R")["refresh_token"] not in ("R", None)
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        api = f"{base_url}/v3/company/{REALM}"
        customer = httpx.post(f"{api}/customer", json={"DisplayName": "CLI Co"}, headers=headers)
        assert customer.status_code == 200
        item = httpx.post(
            f"{api}/item",
            headers=headers,
            json={"Name": "Support", "IncomeAccountRef": {"value": "1"}},
        )
        invoice = httpx.post(
            f"{api}/invoice",
            headers=headers,
            json={
                "CustomerRef": {"value": customer.json()["Customer"]["Id"]},
                "Line": [
                    {
                        "Amount": 10,
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {"ItemRef": {"value": item.json()["Item"]["Id"]}},
                    }
                ],
            },
        )
        assert invoice.json()["Invoice"]["DocNumber"] == "1001"  # custom numbers off
        codes = httpx.get(
            f"{api}/query", params={"query": "select * from TaxCode"}, headers=headers
        ).json()
        assert codes["QueryResponse"]["TaxCode"][0]["Name"] == "CA"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
            process.stdout.close()
            process.stderr.close()
    assert process.returncode == 0
