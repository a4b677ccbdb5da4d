"""HaloPSA simulator: OAuth2 client credentials, bearer tokens, authinfo.

docs/halopsa-api.md §1.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from datagate_simulators.halopsa.testing import HaloSim, make_sim


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


FORM = {
    "grant_type": "client_credentials",
    "client_id": "test-client",
    "client_secret": "test-secret",
    "scope": "all",
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> HaloSim:
    return make_sim(tenant="acme", clock=clock, token_ttl=3600)


@pytest.fixture
def http(sim: HaloSim):
    with sim.client() as client:
        yield client


def test_token_with_tenant_as_query_parameter(http: httpx.Client) -> None:
    """§1.2 [C] HAPI, N8N: tenant as ?tenant= on the token URL; form-encoded body."""
    response = http.post("/auth/token", params={"tenant": "acme"}, data=FORM)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600  # §1.2 [I] 3600 is the usual lifetime
    assert body["scope"] == "all"
    assert body["access_token"]


def test_token_with_tenant_as_form_field_or_missing(http: httpx.Client) -> None:
    """§1.2 [R] NODEH, PYH send tenant as a form field; a missing tenant is allowed (§8)."""
    assert http.post("/auth/token", data={**FORM, "tenant": "ACME"}).status_code == 200
    assert http.post("/auth/token", data=FORM).status_code == 200


def test_token_with_http_basic_client_authentication(http: httpx.Client) -> None:
    """OAuth2 client_secret_basic (authlib's default) works as well as form credentials."""
    basic = base64.b64encode(b"test-client:test-secret").decode()
    response = http.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200


def test_scope_defaults_to_all(http: httpx.Client) -> None:
    """§1.2 [C] HAPI: default scope 'all'."""
    form = {k: v for k, v in FORM.items() if k != "scope"}
    assert http.post("/auth/token", data=form).json()["scope"] == "all"


@pytest.mark.parametrize(
    "form", [{**FORM, "client_secret": "wrong"}, {**FORM, "client_id": "nobody"}]
)
def test_bad_client_is_invalid_client_401(http: httpx.Client, form: dict) -> None:
    """§1.2/§5 [C] HAPI #19: 401 {"error": "invalid_client", "error_description": ...}."""
    response = http.post("/auth/token", data=form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_description"]


def test_unsupported_grant_type_400(http: httpx.Client) -> None:
    """§8: unsupported grant → 400 {"error": "unsupported_grant_type"}."""
    response = http.post("/auth/token", data={**FORM, "grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_wrong_tenant_is_a_500(http: httpx.Client) -> None:
    """§1.2 [R] PYPI: a bad tenant produced a 500."""
    assert http.post("/auth/token", params={"tenant": "someone-else"}, data=FORM).status_code == 500


def test_authinfo_needs_no_token(http: httpx.Client) -> None:
    """§1.1 [C] HAPI: GET /api/authinfo → auth_url and tenant_id, without a token."""
    body = http.get("/api/AuthInfo").json()
    assert body == {"auth_url": "http://halopsa.test/auth", "tenant_id": "acme"}
    assert (
        http.post(
            body["auth_url"] + "/token", params={"tenant": body["tenant_id"]}, data=FORM
        ).status_code
        == 200
    )


def test_missing_or_bad_bearer_is_401(http: httpx.Client) -> None:
    """§1.3 [C] SPEC25: a missing, bad or expired token gets 401."""
    missing = http.get("/api/Client")
    assert missing.status_code == 401
    assert "invalid_token" in missing.headers["www-authenticate"]
    assert http.get("/api/Client", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert http.get("/api/Client", headers={"Authorization": "Basic abc"}).status_code == 401


def test_token_expires_after_ttl(sim: HaloSim, http: httpx.Client, clock: FakeClock) -> None:
    token = sim.token(http)
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get("/api/Client", headers=headers).status_code == 200
    clock.now += 3599
    assert http.get("/api/Client", headers=headers).status_code == 200
    clock.now += 1
    assert http.get("/api/Client", headers=headers).status_code == 401
    assert (
        http.get("/api/Client", headers={"Authorization": f"Bearer {sim.token(http)}"}).status_code
        == 200
    )


def test_fault_expire_tokens_now(sim: HaloSim, http: httpx.Client) -> None:
    """Fault: live tokens are invalidated; a new token works (clients refetch once on 401, §1.2)."""
    headers = {"Authorization": f"Bearer {sim.token(http)}"}
    assert (
        http.post("/_sim/faults", json={"kind": "expire_tokens"}).json()["applied"][0]["revoked"]
        == 1
    )
    assert http.get("/api/Client", headers=headers).status_code == 401
    assert (
        http.get("/api/Client", headers={"Authorization": f"Bearer {sim.token(http)}"}).status_code
        == 200
    )


def test_fault_tokens_expire_earlier_than_advertised(
    sim: HaloSim, http: httpx.Client, clock: FakeClock
) -> None:
    http.post("/_sim/faults", json={"kind": "token_lifetime", "seconds": 30})
    response = http.post("/auth/token", data=FORM)
    assert response.json()["expires_in"] == 3600  # still advertised
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    clock.now += 31
    assert http.get("/api/Client", headers=headers).status_code == 401
    sim.backend.set_token_lifetime(None)
    headers = {"Authorization": f"Bearer {sim.token(http)}"}
    clock.now += 600
    assert http.get("/api/Client", headers=headers).status_code == 200


def test_scopes_limit_access_403(sim: HaloSim, http: httpx.Client) -> None:
    """§1.3 [C] SPEC25: a valid token without permission gets 403; read:/edit: per area (HAPI)."""
    headers = {"Authorization": f"Bearer {sim.token(http, scope='read:customers')}"}
    assert http.get("/api/Client", headers=headers).status_code == 200
    assert http.post("/api/Client", json=[{"name": "X"}], headers=headers).status_code == 403
    assert http.get("/api/Item", headers=headers).status_code == 403
    headers = {"Authorization": f"Bearer {sim.token(http, scope='edit:customers')}"}
    assert http.post("/api/Client", json=[{"name": "X"}], headers=headers).status_code == 201


def test_restricted_application_cannot_widen_its_scope(sim: HaloSim, http: httpx.Client) -> None:
    sim.backend.add_application("reader", "s", allowed_scopes="read:customers")
    form = {"grant_type": "client_credentials", "client_id": "reader", "client_secret": "s"}
    assert http.post("/auth/token", data={**form, "scope": "read:customers"}).status_code == 200
    assert http.post("/auth/token", data={**form, "scope": "all"}).status_code == 400


def test_token_flow_over_loopback(sim: HaloSim) -> None:
    with sim.serve() as server, httpx.Client(base_url=server.base_url) as http:
        info = http.get("/api/authinfo").json()
        assert info["auth_url"] == f"{server.base_url}/auth"
        token = http.post(f"{info['auth_url']}/token?tenant=acme", data=FORM).json()["access_token"]
        assert (
            http.get("/api/client", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )
