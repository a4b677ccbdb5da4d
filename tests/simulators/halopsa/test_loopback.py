"""HaloPSA simulator CLI: starts on port 0, prints its URL first, serves, stops on SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import threading

import httpx
import pytest


def start(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "datagate_simulators.halopsa", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(30)
    if not first or not first[0].startswith("http://"):
        proc.kill()
        pytest.fail(
            f"simulator did not print its URL: {first!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        )
    return proc, first[0].strip()


def test_cli_serves_a_generated_tenant_with_its_switches() -> None:
    proc, url = start(
        "--customers", "30", "--seed", "5", "--client-id", "cli-id", "--client-secret", "cli-secret", "--tenant", "acme",
        "--rate-limit", "50/60", "--no-retry-after", "--page-cap", "10", "--fail-next", "1:503:/api/client",
        "--malformed", "Site:missing_field:name:1",
    )  # fmt: skip
    try:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.get("/api/authinfo").json() == {
                "auth_url": f"{url}/auth",
                "tenant_id": "acme",
            }
            form = {
                "grant_type": "client_credentials",
                "client_id": "cli-id",
                "client_secret": "cli-secret",
            }
            assert (
                http.post("/auth/token", data={**form, "client_secret": "nope"}).status_code == 401
            )
            token = http.post("/auth/token", params={"tenant": "acme"}, data=form).json()[
                "access_token"
            ]
            http.headers["Authorization"] = f"Bearer {token}"
            assert http.get("/api/Client").status_code == 503  # --fail-next
            body = http.get("/api/Client", params={"pageinate": "true", "page_size": 100}).json()
            assert len(body["clients"]) == 10 and body["record_count"] > 20  # --page-cap
            assert "name" not in http.get("/api/Site").json()["sites"][0]  # --malformed
            stats = http.get("/_sim/stats").json()
            assert stats["halopsa"]["rate_limit"] == {
                **stats["halopsa"]["rate_limit"],
                "requests": 50,
                "window_seconds": 60.0,
                "retry_after": False,
            }
    finally:
        proc.terminate()
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0


def test_cli_rejects_bad_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "datagate_simulators.halopsa", "--fail-next", "three"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "--fail-next" in result.stderr
