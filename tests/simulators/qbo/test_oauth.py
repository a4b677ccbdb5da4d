"""Intuit OAuth 2.0 as simulated (docs/qbo-api.md §1), over HTTP in-process with a fake clock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from datagate_simulators.qbo import FakeClock, OAuthSettings, QBOBackend, QBOSettings
from datagate_simulators.qbo import testing as qbo_testing

REALM = "9130350000000000"
CLIENT = ("app-id", "app-secret")
REDIRECT = "http://127.0.0.1:8765/callback"
INVALID_GRANT = {
    "error": "invalid_grant",
    "error_description": "Incorrect or invalid refresh token",
}
HOUR = 3600


@dataclass
class Sim:
    backend: QBOBackend
    clock: FakeClock
    http: httpx.Client

    def refresh(self, token: str, auth: tuple[str, str] = CLIENT) -> httpx.Response:
        return self.http.post(
            "/oauth2/v1/tokens/bearer",
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=auth,
            headers={"Accept": "application/json"},
        )

    def authorize(self, **params: str) -> httpx.Response:
        query = {
            "client_id": CLIENT[0],
            "response_type": "code",
            "scope": "com.intuit.quickbooks.accounting openid",
            "redirect_uri": REDIRECT,
            "state": "xyz",
            **params,
        }
        return self.http.get("/connect/oauth2", params=query)

    def exchange(self, code: str, redirect_uri: str = REDIRECT) -> httpx.Response:
        return self.http.post(
            "/oauth2/v1/tokens/bearer",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            auth=CLIENT,
        )

    def api(self, access_token: str) -> httpx.Response:
        return self.http.get(
            f"/v3/company/{REALM}/companyinfo/{REALM}",
            headers={"Authorization": f"Bearer {access_token}"},
        )


@contextlib.contextmanager
def make_sim(settings: QBOSettings | None = None) -> Iterator[Sim]:
    clock = FakeClock()
    qbo = qbo_testing.make_sim(
        realm_id=REALM,
        client_id=CLIENT[0],
        client_secret=CLIENT[1],
        settings=settings,
        clock=clock,
        refresh_token="RT-0",
        redirect_uris=[REDIRECT],
    )
    with qbo.client() as http:
        yield Sim(qbo.backend, clock, http)


@pytest.fixture
def sim() -> Iterator[Sim]:
    with make_sim() as simulator:
        yield simulator


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {k: v[0] for k, v in parse_qs(location.query, keep_blank_values=True).items()}


def test_discovery_document_points_at_the_simulator(sim):
    # §1.1: intuitlib reads these keys from the discovery document.
    doc = sim.http.get("/.well-known/openid_configuration/").json()
    assert doc["authorization_endpoint"] == "http://qbo.test/connect/oauth2"
    assert doc["token_endpoint"] == "http://qbo.test/oauth2/v1/tokens/bearer"
    assert doc["revocation_endpoint"] == "http://qbo.test/v2/oauth2/tokens/revoke"
    assert {"userinfo_endpoint", "jwks_uri", "issuer"} <= set(doc)


def test_authorization_code_flow(sim):
    # §1.2: redirect with code, state, realmId; code exchange with Basic auth and a form body.
    params = redirect_params(sim.authorize())
    assert params["state"] == "xyz" and params["realmId"] == REALM
    response = sim.exchange(params["code"])
    assert response.status_code == 200
    tokens = response.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["x_refresh_token_expires_in"] == 8726400
    assert tokens["id_token"].count(".") == 2  # openid scope asked for
    assert response.headers["intuit_tid"]
    assert sim.api(tokens["access_token"]).status_code == 200
    assert sim.refresh(tokens["refresh_token"]).status_code == 200


def test_codes_are_single_use(sim):
    # §1.2 [S] nishujangra.github.io/intuit-go: single-use codes.
    code = redirect_params(sim.authorize())["code"]
    assert sim.exchange(code).status_code == 200
    again = sim.exchange(code)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_codes_expire_and_must_match_redirect_uri(sim):
    code = redirect_params(sim.authorize())["code"]
    assert sim.exchange(code, "http://127.0.0.1:8765/other").json()["error"] == "invalid_grant"
    late = redirect_params(sim.authorize())["code"]
    sim.clock.advance(seconds=601)  # code lifetime ~10 min [I]
    assert sim.exchange(late).json()["error"] == "invalid_grant"


def test_realm_id_only_with_accounting_scope(sim):
    params = redirect_params(sim.authorize(scope="openid email"))
    assert "realmId" not in params and "code" in params


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "com.intuit.quickbooks.nope"}, "invalid_scope"),
        ({"scope": ""}, "invalid_scope"),
    ],
)
def test_authorize_errors_redirect_back(sim, params, error):
    assert redirect_params(sim.authorize(**params)) == {"error": error, "state": "xyz"}


@pytest.mark.parametrize(
    "params", [{"client_id": "stranger"}, {"redirect_uri": "http://evil.example/cb"}]
)
def test_authorize_never_redirects_to_unknown_clients_or_uris(sim, params):
    response = sim.authorize(**params)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_denied_consent(sim):
    # The user clicks "Cancel": error=access_denied&state=… (switchable at runtime).
    assert sim.http.post("/_sim/faults", json={"kind": "deny_consent"}).status_code == 200
    assert redirect_params(sim.authorize()) == {"error": "access_denied", "state": "xyz"}
    sim.http.post("/_sim/qbo/oauth/consent", json={"approve": True})
    assert "code" in redirect_params(sim.authorize())


def test_refresh_token_rotation_and_grace(sim):
    # §1.4: same RT during the first 24 h (QuickBooks-V3-PHP-SDK#324), then a new one; the old
    # one keeps working for 24 h after the new one was issued (oauth-jsclient README), then
    # invalid_grant "Incorrect or invalid refresh token" (routablehq#272).
    first = sim.refresh("RT-0").json()
    assert first["refresh_token"] == "RT-0"
    sim.clock.advance(seconds=23 * HOUR)
    assert sim.refresh("RT-0").json()["refresh_token"] == "RT-0"
    sim.clock.advance(seconds=HOUR)
    rotated = sim.refresh("RT-0").json()["refresh_token"]
    assert rotated != "RT-0"
    sim.clock.advance(seconds=23 * HOUR)
    # Within the grace window the old token still works and answers with the newest one.
    grace = sim.refresh("RT-0")
    assert grace.status_code == 200 and grace.json()["refresh_token"] == rotated
    sim.clock.advance(seconds=HOUR)
    dead = sim.refresh("RT-0")
    assert (dead.status_code, dead.json()) == (400, INVALID_GRANT)
    newest = sim.refresh(rotated)
    assert newest.status_code == 200
    assert sim.api(newest.json()["access_token"]).status_code == 200


def test_rotation_without_grace_kills_the_old_token_at_once():
    # The Intuit help article's wording (§1.4): the old RT "expires" when the new one is issued.
    settings = QBOSettings(oauth=OAuthSettings(rotate_after=60, grace=0))
    with make_sim(settings) as sim:
        sim.clock.advance(seconds=61)
        rotated = sim.refresh("RT-0").json()["refresh_token"]
        assert rotated != "RT-0"
        assert sim.refresh("RT-0").json() == INVALID_GRANT


def test_forced_rotation_switch(sim):
    sim.http.post("/_sim/faults", json={"kind": "rotate_refresh_tokens", "realm_id": REALM})
    rotated = sim.refresh("RT-0").json()["refresh_token"]
    assert rotated != "RT-0"
    assert sim.refresh(rotated).json()["refresh_token"] == rotated


def test_refresh_tokens_expire_after_100_days_unused(sim):
    sim.clock.advance(days=102)
    assert sim.refresh("RT-0").json() == INVALID_GRANT


@pytest.mark.parametrize("token", ["nope", ""])
def test_unknown_refresh_token_is_invalid_grant(sim, token):
    response = sim.refresh(token)
    assert (response.status_code, response.json()) == (400, INVALID_GRANT)


@pytest.mark.parametrize("auth", [("app-id", "wrong"), ("stranger", "app-secret"), None])
def test_bad_client_credentials_are_401_invalid_client(sim, auth):
    # §1.4: airbytehq/airbyte#45911 saw 401 for bad client credentials.
    response = sim.http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": "RT-0"},
        auth=auth,
    )
    assert (response.status_code, response.json()) == (401, {"error": "invalid_client"})


def test_refresh_token_of_another_app_is_invalid_grant(sim):
    sim.backend.seed_company("42", client_id="other", client_secret="s", refresh_token="RT-X")
    assert sim.refresh("RT-X").json() == INVALID_GRANT


def test_unsupported_grant_type(sim):
    response = sim.http.post(
        "/oauth2/v1/tokens/bearer", data={"grant_type": "password"}, auth=CLIENT
    )
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")


def test_hard_expiry_header_is_opt_in(sim):
    # §1.3: x-include-refresh-token-hard-expires-in (oauth-jsclient).
    plain = sim.refresh("RT-0").json()
    assert "x_refresh_token_hard_expires_in" not in plain
    response = sim.http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": "RT-0"},
        auth=CLIENT,
        headers={"x-include-refresh-token-hard-expires-in": "true"},
    )
    assert response.json()["x_refresh_token_hard_expires_in"] == 5 * 365 * 86400


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_revoke_kills_the_refresh_token_and_its_access_tokens(sim, encoding):
    # §1.5: PYOAUTH sends JSON, node-quickbooks a form; both accepted.
    access = sim.refresh("RT-0").json()["access_token"]
    body = {"json": {"token": "RT-0"}} if encoding == "json" else {"data": {"token": "RT-0"}}
    response = sim.http.post("/v2/oauth2/tokens/revoke", auth=CLIENT, **body)
    assert response.status_code == 200
    assert sim.refresh("RT-0").json() == INVALID_GRANT
    assert sim.api(access).status_code == 401


def test_revoke_needs_the_client(sim):
    response = sim.http.post(
        "/v2/oauth2/tokens/revoke", json={"token": "RT-0"}, auth=("app-id", "bad")
    )
    assert response.status_code == 401
    assert sim.refresh("RT-0").status_code == 200


def test_access_tokens_expire_after_an_hour(sim):
    access = sim.refresh("RT-0").json()["access_token"]
    sim.clock.advance(seconds=3599)
    assert sim.api(access).status_code == 200
    sim.clock.advance(seconds=1)
    expired = sim.api(access)
    assert expired.status_code == 401
    assert expired.json()["Fault"]["Error"][0]["code"] == "3200"


def test_expire_tokens_switch(sim):
    access = sim.refresh("RT-0").json()["access_token"]
    applied = sim.http.post("/_sim/faults", json={"kind": "expire_tokens"}).json()["applied"]
    assert applied == [{"kind": "expire_tokens", "expired": 1}]
    assert sim.api(access).status_code == 401
    assert sim.api(sim.refresh("RT-0").json()["access_token"]).status_code == 200


def test_userinfo(sim):
    access = sim.refresh("RT-0").json()["access_token"]
    info = sim.http.get(
        "/v1/openid_connect/userinfo", headers={"Authorization": f"Bearer {access}"}
    )
    assert info.status_code == 200 and info.json()["sub"]
