"""portals.yaml: validation names the portal, the field and the reason; secrets stay hidden."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from datagate_pipelines.config import PortalConfigError, load_portals, parse_portals

EXAMPLE = Path(__file__).resolve().parent.parent / "portals.example.yaml"

GOOD = """
portals:
  - id: acme
    name: Acme Telecom
    billing_start: 2026-07
    halopsa:
      client_id_env: ACME_ID
      client_secret_env: ACME_SECRET
      authorization_server: https://acme.halopsa.com/auth
      resource_server: https://acme.halopsa.com/api/
"""


def test_the_shipped_example_is_valid():
    registry = load_portals(EXAMPLE)
    assert registry.errors == []
    portal = registry.get("acme")
    assert portal.settings.qbo is not None and portal.settings.qbo.realm_id == "9130350000000000"


def test_defaults_follow_the_design():
    portal = parse_portals(GOOD).get("acme")
    s = portal.settings
    assert s.billing_start == date(2026, 7, 1)
    assert s.currency == "USD"
    assert s.sync.in_advance_months == 1 and s.sync.allow_pro_rata and s.sync.use_default_agreement
    assert s.sync.contract_types == [] and s.sync.item_groups == []
    assert s.invoicing.next_number == 1001 and s.invoicing.payment_terms_days == 30
    assert s.halopsa.resource_server == "https://acme.halopsa.com/api"
    assert s.qbo is None


def test_incremental_sync_settings_default_and_are_checked():
    sync = parse_portals(GOOD).get("acme").settings
    assert sync.sync.full_every_days == 7 and sync.sync.incremental_overlap_minutes == 60
    assert sync.halopsa.change_filters.clients.param == "lastupdatefromdate"
    assert sync.halopsa.change_filters.sites.stamp_field == "slastupdate"
    off = GOOD + "      change_filters: {sites: null}\n    sync: {full_every_days: 1}\n"
    settings = parse_portals(off).get("acme").settings
    assert settings.halopsa.change_filters.sites is None
    assert settings.halopsa.change_filters.clients is not None  # the other keeps its default
    bad = GOOD + "    sync: {full_every_days: 0}\n"
    (error,) = parse_portals(bad).errors
    assert (error.portal_id, error.field) == ("acme", "sync.full_every_days")
    blank = GOOD + "      change_filters: {clients: {param: '', stamp_field: alastupdate}}\n"
    (error,) = parse_portals(blank).errors
    assert error.field == "halopsa.change_filters.clients.param"


def test_an_invalid_portal_does_not_stop_the_valid_ones():
    text = (
        GOOD
        + """
  - id: Bad_Portal
    name: Broken
    billing_start: 2026-07
    halopsa:
      client_id_env: X
      client_secret_env: Y
      authorization_server: https://x/auth
      resource_server: https://x/api
      colour: blue
    sync:
      in_advance_months: 3
"""
    )
    registry = parse_portals(text)
    assert registry.ids == ["acme"]
    messages = sorted(str(e) for e in registry.errors)
    assert all(m.startswith("portal Bad_Portal: ") for m in messages)
    assert any("id: " in m and "partition key" in m for m in messages)
    assert any("halopsa.colour: unknown field" in m for m in messages)
    assert any("sync.in_advance_months" in m for m in messages)
    with pytest.raises(PortalConfigError, match="Bad_Portal"):
        registry.get("Bad_Portal")


def test_missing_required_fields_are_named():
    registry = parse_portals("portals:\n  - id: beta\n    name: Beta\n")
    fields = {e.field for e in registry.errors}
    assert {"billing_start", "halopsa"} <= fields
    assert all(e.reason == "required field is missing" for e in registry.errors)


def test_secrets_come_from_the_environment_and_never_show():
    portal = parse_portals(GOOD).get("acme")
    credentials = portal.halopsa_credentials({"ACME_ID": "client-1", "ACME_SECRET": "s3cr3t-value"})
    assert credentials.client_id == "client-1"
    assert credentials.client_secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(credentials) and "s3cr3t-value" not in str(credentials)


def test_a_missing_environment_variable_is_one_clear_error():
    portal = parse_portals(GOOD).get("acme")
    with pytest.raises(PortalConfigError) as info:
        portal.halopsa_credentials({"ACME_ID": "client-1"})
    assert str(info.value) == (
        "portal acme: halopsa.client_secret_env: environment variable ACME_SECRET is not set"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("portals: [\n", "not valid YAML at line"),
        ("something: else\n", "must contain a 'portals:' list"),
        ("portals: []\nextra: 1\n", "extra: unknown top-level field"),
    ],
)
def test_file_level_problems(text, expected):
    with pytest.raises(PortalConfigError, match=expected):
        parse_portals(text)


def test_missing_file_names_the_path_and_the_variable(tmp_path):
    with pytest.raises(PortalConfigError, match="DATAGATE_PORTALS_FILE"):
        load_portals(tmp_path / "nope.yaml")


def test_duplicate_ids_are_rejected():
    registry = parse_portals(GOOD + GOOD.split("portals:\n", 1)[1])
    assert registry.ids == ["acme"]
    assert [(e.field, e.reason) for e in registry.errors] == [("id", "duplicate portal id")]


def test_doc_numbers_longer_than_qbo_allows_are_rejected():
    text = GOOD + "    invoicing:\n      number_prefix: ABCDEFGHIJKLMNOPQRSTU\n"
    registry = parse_portals(text)
    assert registry.ids == []
    assert [e.field for e in registry.errors] == ["invoicing"]
    assert "21-character DocNumber" in registry.errors[0].reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # a key indented one space too few
            "portals:\n  - id: acme\n    name: Acme\n   billing_start: 2026-07\n",
            "line 4, column 4: expected <block end>, but found '<block mapping start>' "
            "(while parsing a block collection at line 2, column 3)",
        ),
        (  # an unquoted value with ': ' in it
            "portals:\n  - id: acme\n    name: Acme: Telecom\n",
            "line 3, column 15: mapping values are not allowed here",
        ),
        (
            "portals:\n  - id: 'acme\n    name: x\n",
            "line 4, column 1: found unexpected end of stream "
            "(while scanning a quoted scalar at line 2, column 9)",
        ),
        (
            "portals:\n\t- id: acme\n",
            "line 2, column 1: found character '\\t' that cannot start any token",
        ),
        (  # YAML would keep the last value silently
            "portals:\n  - id: acme\n    billing_start: 2026-07\n    billing_start: 2026-01\n",
            "line 4, column 5: the key 'billing_start' is repeated "
            "(while reading a mapping at line 2, column 5)",
        ),
    ],
    ids=["indentation", "colon", "unclosed quote", "tab", "repeated key"],
)
def test_a_yaml_error_names_its_line_column_and_reason(tmp_path, text, expected):
    path = tmp_path / "portals.yaml"
    path.write_text(text)
    with pytest.raises(PortalConfigError) as info:
        load_portals(path)
    assert str(info.value) == f"file: {path} is not valid YAML at {expected}"


def test_credit_past_changes_defaults_to_true_and_takes_only_true_or_false():
    assert parse_portals(GOOD).get("acme").settings.invoicing.credit_past_changes is True
    off = parse_portals(GOOD + "    invoicing:\n      credit_past_changes: false\n")
    assert off.get("acme").settings.invoicing.credit_past_changes is False
    bad = parse_portals(GOOD + "    invoicing:\n      credit_past_changes: sometimes\n")
    assert bad.ids == []
    assert [e.field for e in bad.errors] == ["invoicing.credit_past_changes"]
