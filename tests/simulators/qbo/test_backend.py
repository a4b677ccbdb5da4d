"""The QBO backend's rules, called directly (no HTTP). Sources: docs/qbo-api.md sections."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from datagate_simulators.qbo import FakeClock, QBOBackend, QBOFault, QBOSettings
from datagate_simulators.qbo.jsonio import dumps, loads

REALM = "9130350000000000"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock) -> QBOBackend:
    return QBOBackend(clock=clock)


@pytest.fixture
def company(backend):
    return backend.seed_company(
        REALM,
        client_id="app",
        client_secret="secret",
        refresh_token="RT0",
        items=[{"Name": "Managed Services", "UnitPrice": Decimal("100")}],
        customers=[{"DisplayName": "Acme"}],
        tax_codes=[{"name": "CA", "rate": "8.25"}],
    )


def fault(call, *args, **kwargs) -> QBOFault:
    with pytest.raises(QBOFault) as info:
        call(*args, **kwargs)
    return info.value


def invoice_body(**overrides):
    body = {
        "CustomerRef": {"value": "1"},
        "Line": [
            {
                "Amount": Decimal("250.00"),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "1"},
                    "Qty": Decimal("2.5"),
                    "UnitPrice": Decimal("100"),
                },
            }
        ],
    }
    body.update(overrides)
    return body


# --------------------------------------------------------------------------- seeding & basics


def test_seeded_company_has_services_income_account_terms_and_tax(company):
    services = company.find("Account", Name="Services")
    assert services["AccountType"] == "Income"
    assert services["Classification"] == "Revenue"
    assert [t["Name"] for t in company.records("Term")] == [
        "Due on receipt",
        "Net 15",
        "Net 30",
        "Net 60",
    ]
    assert company.find("TaxCode", Name="CA")["SalesTaxRateList"]["TaxRateDetail"]
    assert company.preferences()["SalesFormsPrefs"]["CustomTxnNumbers"] is True


def test_companies_are_separate(backend, company):
    other = backend.seed_company("123", client_id="app", client_secret="secret")
    assert other.records("Customer") == []
    assert other.create("Customer", {"DisplayName": "Acme"})["Id"] == "1"  # no 6240 across realms
    assert backend.realm_ids() == [REALM, "123"]
    with pytest.raises(ValueError):
        backend.seed_company("123", client_id="app", client_secret="secret")


def test_ids_synctokens_and_metadata(company, clock):
    # §3.0: Id increasing strings; SyncToken "0" on create, +1 per write; MetaData times.
    first = company.create("Customer", {"DisplayName": "Beta"})
    second = company.create("Customer", {"DisplayName": "Gamma"})
    assert (first["Id"], second["Id"]) == ("2", "3")
    assert first["SyncToken"] == "0"
    assert first["domain"] == "QBO" and first["sparse"] is False
    clock.advance(seconds=90)
    updated = company.update("Customer", {**first, "Notes": "vip"})
    assert updated["SyncToken"] == "1"
    assert updated["MetaData"]["CreateTime"] == first["MetaData"]["CreateTime"]
    assert updated["MetaData"]["LastUpdatedTime"] > first["MetaData"]["LastUpdatedTime"]
    assert updated["MetaData"]["LastUpdatedTime"].endswith("-07:00")


def test_transactions_share_one_id_sequence(company):
    invoice = company.create("Invoice", invoice_body())
    payment = company.create("Payment", {"CustomerRef": {"value": "1"}, "TotalAmt": 5})
    assert int(payment["Id"]) == int(invoice["Id"]) + 1


# --------------------------------------------------------------------------- name rules


def test_stale_synctoken_is_5010(company):
    # §3.0 / routablehq#127.
    customer = company.find("Customer", DisplayName="Acme")
    company.update("Customer", {**customer, "Notes": "first"})
    error = fault(company.update, "Customer", {**customer, "Notes": "second"})
    assert (error.code, error.status) == ("5010", 400)
    assert error.errors[0].message == "Stale Object Error"


@pytest.mark.parametrize("name", ["acme", "ACME", "  Acme  "])
def test_duplicate_display_name_is_6240_case_insensitive(company, name):
    # §3.1: DisplayName unique (Intuit 2017 blog: 400/6240).
    error = fault(company.create, "Customer", {"DisplayName": name})
    assert error.code == "6240"
    assert error.errors[0].message == "Duplicate Name Exists Error"


def test_inactive_names_stay_reserved(company):
    customer = company.find("Customer", DisplayName="Acme")
    company.update("Customer", {**customer, "Active": False})
    assert fault(company.create, "Customer", {"DisplayName": "Acme"}).code == "6240"


def test_renaming_to_own_name_is_not_a_duplicate(company):
    customer = company.find("Customer", DisplayName="Acme")
    assert company.update("Customer", {**customer, "DisplayName": "ACME"})["DisplayName"] == "ACME"


@pytest.mark.parametrize(
    ("entity", "body", "element"),
    [
        ("Customer", {"DisplayName": "Parent:Child"}, "DisplayName"),
        ("Customer", {"GivenName": "A:B"}, "GivenName"),
        ("Item", {"Name": "Svc:Sub", "IncomeAccountRef": {"value": "1"}}, "Name"),
        ("Account", {"Name": "A:B", "AccountType": "Income"}, "Name"),
        ("Term", {"Name": "Net:45", "DueDays": 45}, "Name"),
    ],
)
def test_colon_in_names_is_2040(company, entity, body, element):
    # §3.1: the colon separates parent and child names.
    error = fault(company.create, entity, body)
    assert (error.code, error.errors[0].element) == ("2040", element)


def test_display_name_built_from_parts_or_6080(company):
    # §3.1 (DataBlend KB): without DisplayName QBO builds it from the name parts.
    built = company.create("Customer", {"GivenName": "Ada", "FamilyName": "Lovelace"})
    assert built["DisplayName"] == "Ada Lovelace"
    assert fault(company.create, "Customer", {"CompanyName": "No Name Inc"}).code == "6080"


def test_name_lists_cannot_be_deleted_only_deactivated(company):
    # §3.0: PQB account.py docstring; routablehq#289.
    customer = company.find("Customer", DisplayName="Acme")
    error = fault(company.delete, "Customer", {"Id": customer["Id"], "SyncToken": "0"})
    assert error.code == "500"
    inactive = company.update("Customer", {**customer, "Active": False})
    assert inactive["Active"] is False
    assert company.query("select * from Customer") == {}  # active-only default (§4)
    everyone = company.query("select * from Customer where Active IN (true, false)")
    assert [c["DisplayName"] for c in everyone["Customer"]] == ["Acme"]


def test_deactivating_customer_with_open_balance_fails(company):
    # §3.0: ruckus/quickbooks-ruby#390 "Delete List Has Balance Error".
    company.create("Invoice", invoice_body())
    customer = company.find("Customer", DisplayName="Acme")
    error = fault(company.update, "Customer", {**customer, "Active": False})
    assert error.code == "6000" and "Has Balance" in error.errors[0].detail


def test_unknown_property_is_2010(company):
    error = fault(company.create, "Customer", {"DisplayName": "X", "DisplayNmae": "typo"})
    assert (error.code, error.errors[0].element) == ("2010", "DisplayNmae")


def test_item_rules(company):
    # §3.2: Name required; IncomeAccountRef required for Service; must exist.
    assert fault(company.create, "Item", {"Type": "Service"}).code == "2020"
    missing = fault(company.create, "Item", {"Name": "X", "Type": "Service"})
    assert (missing.code, missing.errors[0].element) == ("2020", "IncomeAccountRef")
    bad_ref = fault(company.create, "Item", {"Name": "X", "IncomeAccountRef": {"value": "999"}})
    assert (bad_ref.code, bad_ref.errors[0].element) == ("2500", "IncomeAccountRef")
    assert (
        fault(
            company.create, "Item", {"Name": "managed services", "IncomeAccountRef": {"value": "1"}}
        ).code
        == "6240"
    )
    assert fault(company.create, "Item", {"Name": "X", "Type": "Gizmo"}).code == "2170"
    item = company.create("Item", {"Name": "Backup", "IncomeAccountRef": {"value": "1"}})
    assert item["IncomeAccountRef"] == {"value": "1", "name": "Services"}
    assert item["Type"] == "Service"


def test_account_needs_a_type(company):
    # §3.3: AccountType or AccountSubType (6010).
    assert fault(company.create, "Account", {"Name": "Misc"}).code == "6010"
    account = company.create(
        "Account", {"Name": "Consulting", "AccountSubType": "ServiceFeeIncome"}
    )
    assert (account["AccountType"], account["Classification"]) == ("Income", "Revenue")


def test_tax_lists_are_read_only(company):
    # §3.6: TaxCode/TaxRate are read/query only.
    assert fault(company.create, "TaxCode", {"Name": "X"}).code == "500"
    assert company.query("select * from TaxRate where Name = 'CA'")["TaxRate"][0][
        "RateValue"
    ] == Decimal("8.25")


# --------------------------------------------------------------------------- invoices


@pytest.mark.parametrize(
    ("overrides", "element"),
    [
        ({"CustomerRef": None}, "CustomerRef"),
        ({"Line": []}, "Line"),
        ({"Line": None}, "Line"),
    ],
)
def test_invoice_required_params_are_2020(company, overrides, element):
    # §3.4: CustomerRef and at least one Line (ruckus#220, routablehq PR #257).
    body = {k: v for k, v in invoice_body(**overrides).items() if v is not None}
    error = fault(company.create, "Invoice", body)
    assert (error.code, error.errors[0].element) == ("2020", element)
    assert error.errors[0].message.startswith("Required param missing")


def test_invoice_line_without_item_is_2020_with_path(company):
    body = invoice_body(
        Line=[{"Amount": 5, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {}}]
    )
    error = fault(company.create, "Invoice", body)
    assert error.errors[0].element == "Line.SalesItemLineDetail.ItemRef"


@pytest.mark.parametrize(
    ("body", "element"),
    [
        (invoice_body(CustomerRef={"value": "42"}), "CustomerRef"),
        (invoice_body(SalesTermRef={"value": "42"}), "SalesTermRef"),
        (
            invoice_body(
                Line=[
                    {
                        "Amount": 1,
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {"ItemRef": {"value": "42"}},
                    }
                ]
            ),
            "Line.SalesItemLineDetail.ItemRef",
        ),
    ],
)
def test_invalid_reference_is_2500(company, body, element):
    # §7.3 (Intuit 2017 blog): 2500 Invalid Reference Id.
    error = fault(company.create, "Invoice", body)
    assert (error.code, error.errors[0].element) == ("2500", element)


def test_reference_to_inactive_customer_is_610(company):
    other = company.create("Customer", {"DisplayName": "Gone"})
    company.update("Customer", {**other, "Active": False})
    error = fault(company.create, "Invoice", invoice_body(CustomerRef={"value": other["Id"]}))
    assert error.code == "610" and "inactive" in error.errors[0].detail


def test_misspelled_detail_type_is_2010(company):
    # routablehq/python-quickbooks PR #145: "SubtotalLineDetail".
    line = {"Amount": 1, "DetailType": "SubtotalLineDetail", "SubtotalLineDetail": {}}
    assert fault(company.create, "Invoice", invoice_body(Line=[line])).code == "2010"


@pytest.mark.parametrize(
    ("qty", "price", "amount", "ok"),
    [
        ("2.5", "100", "250.00", True),
        ("3", "33.3333", "100.00", True),  # product 99.9999 rounds to 100.00
        ("3", "33.3333", "99.9999", True),  # the exact product is fine too
        ("0.1", "0.2", "0.02", True),  # no binary-float surprise
        ("2", "100", "250", False),
        ("3", "33.3333", "99.99", False),
    ],
)
def test_amount_must_equal_qty_times_unit_price(company, qty, price, amount, ok):
    # §3.4 (NYTELY): 6070.
    line = {
        "Amount": Decimal(amount),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {
            "ItemRef": {"value": "1"},
            "Qty": Decimal(qty),
            "UnitPrice": Decimal(price),
        },
    }
    if ok:
        assert company.create("Invoice", invoice_body(Line=[line]))["TotalAmt"] == Decimal(amount)
    else:
        assert fault(company.create, "Invoice", invoice_body(Line=[line])).code == "6070"


def test_invoice_totals_lines_and_sent_tax(company):
    lines = [
        {
            "Amount": Decimal("100.10"),
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
        },
        {
            "Amount": Decimal("0.20"),
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
        },
        {"DetailType": "DescriptionOnly", "Description": "Site: HQ"},
        {"Amount": Decimal("99"), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
    ]
    invoice = company.create(
        "Invoice", invoice_body(Line=lines, TxnTaxDetail={"TotalTax": Decimal("8.28")})
    )
    assert invoice["TotalAmt"] == Decimal("108.58")
    assert invoice["Balance"] == invoice["TotalAmt"]
    # The server's own subtotal line replaces the one sent (§3.4, pastebin A4JGEijL).
    assert invoice["Line"][-1] == {
        "Amount": Decimal("100.30"),
        "DetailType": "SubTotalLineDetail",
        "SubTotalLineDetail": {},
    }
    assert [line["Id"] for line in invoice["Line"][:-1]] == ["1", "2", "3"]
    assert '"TotalAmt":108.58' in dumps(invoice)  # exact decimals on the wire


def test_invoice_tax_computed_from_tax_code(company):
    line = {
        "Amount": Decimal("100"),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "TAX"}},
    }
    tax_code = company.find("TaxCode", Name="CA")["Id"]
    invoice = company.create(
        "Invoice", invoice_body(Line=[line], TxnTaxDetail={"TxnTaxCodeRef": {"value": tax_code}})
    )
    assert invoice["TxnTaxDetail"]["TotalTax"] == Decimal("8.25")
    assert invoice["TotalAmt"] == Decimal("108.25")


def test_due_date_from_terms_and_txn_date_default(company, clock):
    invoice = company.create(
        "Invoice", invoice_body(SalesTermRef={"value": "3"}, TxnDate="2025-01-31")
    )
    assert invoice["DueDate"] == "2025-03-02"  # Net 30
    assert (
        company.create("Invoice", invoice_body())["TxnDate"]
        == clock.now().astimezone(company.tz).date().isoformat()
    )


def test_doc_number_longer_than_21_is_2050(company):
    # §3.4 (.NET SDK doc: max 21).
    error = fault(company.create, "Invoice", invoice_body(DocNumber="X" * 22))
    assert (error.code, error.errors[0].element) == ("2050", "DocNumber")
    assert company.create("Invoice", invoice_body(DocNumber="X" * 21))["DocNumber"] == "X" * 21


def test_duplicate_doc_number_is_6140_with_custom_numbers(company):
    # §3.4 (whosebug 5669584, clio): duplicates rejected when CustomTxnNumbers is on...
    first = company.create("Invoice", invoice_body(DocNumber="INV-1"))
    error = fault(company.create, "Invoice", invoice_body(DocNumber="INV-1"))
    assert error.code == "6140"
    assert f"DocNumber=INV-1 is assigned to TxnType=Invoice with TxnId={first['Id']}" in (
        error.errors[0].detail
    )
    # ... unless include=allowduplicatedocnum (PQB README, NODEQB).
    dup = company.create(
        "Invoice", invoice_body(DocNumber="INV-1"), include=["allowduplicatedocnum"]
    )
    assert dup["DocNumber"] == "INV-1"
    # An update keeping its own number is not a duplicate of itself.
    assert company.update("Invoice", {**first, "PrivateNote": "x"})["DocNumber"] == "INV-1"


def test_doc_numbers_with_custom_numbers_on_and_off(company):
    # §3.4: custom on + none sent ⇒ no DocNumber; AUTO_GENERATE forces one.
    assert "DocNumber" not in company.create("Invoice", invoice_body())
    assert company.create("Invoice", invoice_body(DocNumber="AUTO_GENERATE"))["DocNumber"] == "1001"
    company.set_preferences(custom_txn_numbers=False)
    # Off ⇒ QBO numbers the invoice, next in sequence after the highest number.
    company.create("Invoice", invoice_body(DocNumber="2000"))
    assert company.create("Invoice", invoice_body())["DocNumber"] == "2001"
    # Off ⇒ a duplicate is accepted by default (the configurable case).
    assert company.create("Invoice", invoice_body(DocNumber="2000"))["DocNumber"] == "2000"


def test_duplicates_rejected_when_off_if_configured(clock):
    backend = QBOBackend(QBOSettings(reject_duplicate_doc_numbers_when_auto=True), clock)
    company = backend.seed_company(
        REALM,
        client_id="a",
        client_secret="b",
        custom_txn_numbers=False,
        customers=[{"DisplayName": "A"}],
        items=[{"Name": "S"}],
    )
    company.create("Invoice", invoice_body(DocNumber="7"))
    assert fault(company.create, "Invoice", invoice_body(DocNumber="7")).code == "6140"


def test_sparse_versus_full_update(company):
    # §3.0: sparse changes only what is sent; full clears writable fields left out.
    invoice = company.create("Invoice", invoice_body(PrivateNote="keep me", DocNumber="A1"))
    sparse = company.update(
        "Invoice",
        {
            "Id": invoice["Id"],
            "SyncToken": "0",
            "sparse": True,
            "CustomerMemo": {"value": "thanks"},
        },
    )
    assert sparse["PrivateNote"] == "keep me"
    assert sparse["CustomerMemo"] == {"value": "thanks"}
    assert sparse["SyncToken"] == "1"
    full = company.update(
        "Invoice",
        {
            "Id": invoice["Id"],
            "SyncToken": "1",
            "CustomerRef": {"value": "1"},
            "Line": invoice["Line"],
        },
    )
    assert "PrivateNote" not in full and "CustomerMemo" not in full
    assert full["DocNumber"] == "A1"  # kept [I]
    assert full["TotalAmt"] == invoice["TotalAmt"]  # echoed SubTotal line is not counted twice


def test_sparse_update_replaces_lines_whole(company):
    invoice = company.create("Invoice", invoice_body())
    line = {
        "Amount": Decimal("5"),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
    }
    updated = company.update(
        "Invoice", {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "Line": [line]}
    )
    assert updated["TotalAmt"] == Decimal("5")
    assert len(updated["Line"]) == 2  # the one sent + the subtotal


def test_update_requires_id_and_synctoken(company):
    assert fault(company.update, "Customer", {"DisplayName": "x"}).errors[0].element == "Id"
    assert fault(company.update, "Customer", {"Id": "1"}).errors[0].element == "SyncToken"
    assert fault(company.update, "Customer", {"Id": "99", "SyncToken": "0"}).code == "610"


def test_void_invoice(company):
    # §2: PQB tests — TotalAmt 0, Balance 0, PrivateNote "Voided".
    invoice = company.create("Invoice", invoice_body())
    voided = company.void("Invoice", {"Id": invoice["Id"], "SyncToken": "0"})
    assert (voided["TotalAmt"], voided["Balance"]) == (0, 0)
    assert voided["PrivateNote"] == "Voided"
    assert voided["SyncToken"] == "1"
    assert company.read("Invoice", invoice["Id"])["PrivateNote"] == "Voided"
    assert fault(company.update, "Invoice", {**voided, "PrivateNote": "x"}).code == "6000"


def test_delete_invoice(company):
    # §3.0: delete → 610 on read, gone from queries (PQB test_delete).
    invoice = company.create("Invoice", invoice_body())
    assert fault(company.delete, "Invoice", {"Id": invoice["Id"], "SyncToken": "5"}).code == "5010"
    gone = company.delete("Invoice", {"Id": invoice["Id"], "SyncToken": "0"})
    assert gone == {"domain": "QBO", "status": "Deleted", "Id": invoice["Id"]}
    assert fault(company.read, "Invoice", invoice["Id"]).code == "610"
    assert company.query(f"select * from Invoice where Id = '{invoice['Id']}'") == {}
    assert company.is_deleted("Invoice", invoice["Id"])


# --------------------------------------------------------------------------- payments


def test_payment_reduces_invoice_balance(company):
    # §3.7 [I]: reduces Balance, adds the reciprocal LinkedTxn.
    invoice = company.create("Invoice", invoice_body())
    payment = company.create(
        "Payment",
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": Decimal("300"),
            "Line": [
                {
                    "Amount": Decimal("100.01"),
                    "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                }
            ],
        },
    )
    assert payment["UnappliedAmt"] == Decimal("199.99")
    after = company.read("Invoice", invoice["Id"])
    assert after["Balance"] == Decimal("149.99")
    assert after["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    assert after["SyncToken"] == "1"
    assert company.find("Customer", DisplayName="Acme")["Balance"] == Decimal("149.99")
    # Paying the rest closes the invoice.
    company.create(
        "Payment",
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": Decimal("149.99"),
            "Line": [
                {
                    "Amount": Decimal("149.99"),
                    "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                }
            ],
        },
    )
    assert company.read("Invoice", invoice["Id"])["Balance"] == 0


def test_payment_rules(company):
    invoice = company.create("Invoice", invoice_body())
    link = [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    assert fault(company.create, "Payment", {"CustomerRef": {"value": "1"}}).code == "2020"
    too_much = {
        "CustomerRef": {"value": "1"},
        "TotalAmt": 500,
        "Line": [{"Amount": Decimal("250.01"), "LinkedTxn": link}],
    }
    assert fault(company.create, "Payment", too_much).code == "6000"
    over_total = {
        "CustomerRef": {"value": "1"},
        "TotalAmt": 10,
        "Line": [{"Amount": 20, "LinkedTxn": link}],
    }
    assert fault(company.create, "Payment", over_total).code == "6000"
    ghost = {
        "CustomerRef": {"value": "1"},
        "TotalAmt": 10,
        "Line": [{"Amount": 10, "LinkedTxn": [{"TxnId": "999", "TxnType": "Invoice"}]}],
    }
    assert fault(company.create, "Payment", ghost).code == "2500"
    # Unapplied credit: TotalAmt + CustomerRef only (PQB test_payment).
    assert (
        company.create("Payment", {"CustomerRef": {"value": "1"}, "TotalAmt": 10})["UnappliedAmt"]
        == 10
    )


def test_void_and_delete_payment_restore_balance(company):
    invoice = company.create("Invoice", invoice_body())
    link = [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    first = company.create(
        "Payment",
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": 50,
            "Line": [{"Amount": 50, "LinkedTxn": link}],
        },
    )
    second = company.create(
        "Payment",
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": 25,
            "Line": [{"Amount": 25, "LinkedTxn": link}],
        },
    )
    assert company.read("Invoice", invoice["Id"])["Balance"] == 175
    # Void via operation=update&include=void (PQB VoidMixin).
    voided = company.update(
        "Payment", {"Id": first["Id"], "SyncToken": "0", "sparse": True}, include=["void"]
    )
    assert (voided["TotalAmt"], voided["PrivateNote"]) == (0, "Voided")
    assert company.read("Invoice", invoice["Id"])["Balance"] == 225
    company.delete("Payment", {"Id": second["Id"], "SyncToken": "0"})
    after = company.read("Invoice", invoice["Id"])
    assert (after["Balance"], after["LinkedTxn"]) == (250, [])


def test_deleting_a_paid_invoice_leaves_the_payment_unapplied(company):
    invoice = company.create("Invoice", invoice_body())
    payment = company.create(
        "Payment",
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": 50,
            "Line": [{"Amount": 50, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    company.delete("Invoice", {"Id": invoice["Id"], "SyncToken": "1"})
    after = company.read("Payment", payment["Id"])
    assert (after["UnappliedAmt"], after["Line"], after["SyncToken"]) == (50, [], "1")


# --------------------------------------------------------------------------- query & singletons


def test_query_through_the_company(company):
    for name in ("O'Brien & Sons", "Parent Co:Child"[:9], "Zed"):
        company.create("Customer", {"DisplayName": name})
    hit = company.query("select * from Customer where DisplayName = 'O\\'Brien & Sons'")
    assert [c["DisplayName"] for c in hit["Customer"]] == ["O'Brien & Sons"]
    assert hit["startPosition"] == 1 and hit["maxResults"] == 1
    assert company.query("select count(*) from Customer") == {"totalCount": 4}
    assert company.query("select * from Customer where DisplayName = 'nobody'") == {}
    page2 = company.query("select * from Customer orderby DisplayName startposition 3 maxresults 2")
    assert [c["DisplayName"] for c in page2["Customer"]] == ["Parent Co", "Zed"]
    projected = company.query("select Id, DisplayName from Customer where Id = '1'")["Customer"][0]
    assert set(projected) == {"Id", "DisplayName", "SyncToken", "domain", "sparse"}


def test_query_validation(company):
    # §4: unsupported filter field ⇒ 4001; entity names are case-sensitive.
    assert fault(company.query, "select * from Customer where Notes = 'x'").code == "4001"
    assert fault(company.query, "select * from customer").code == "4001"
    assert fault(company.query, "select * from Widget").code == "4001"
    assert company.query("select * from Preferences")["Preferences"][0]["Id"] == "1"
    assert company.query("select * from CompanyInfo")["CompanyInfo"][0]["Country"] == "US"


def test_preferences_update_merges_and_checks_synctoken(company):
    prefs = company.preferences()
    updated = company.update_preferences(
        {"SyncToken": prefs["SyncToken"], "SalesFormsPrefs": {"CustomTxnNumbers": False}}
    )
    assert updated["SalesFormsPrefs"]["CustomTxnNumbers"] is False
    assert updated["SalesFormsPrefs"]["AllowDiscount"] is True
    assert not company.custom_txn_numbers()
    assert fault(company.update_preferences, {"SyncToken": prefs["SyncToken"]}).code == "5010"


def test_company_info(company):
    assert company.company_info(REALM)["CompanyName"].startswith("Sandbox Company")
    assert fault(company.company_info, "42").code == "610"


# --------------------------------------------------------------------------- CDC


def test_cdc_changes_and_tombstones(company, clock):
    # §6.1: changed objects since a time; deleted objects as status "Deleted".
    clock.advance(seconds=1)  # after the seeding
    since = clock.now()
    kept = company.create("Invoice", invoice_body())
    doomed = company.create("Invoice", invoice_body())
    company.delete("Invoice", {"Id": doomed["Id"], "SyncToken": "0"})
    customer = company.create("Customer", {"DisplayName": "New"})
    changes = company.cdc(["Customer", "Invoice"], since)
    by_entity = {k: v for part in changes for k, v in part.items() if k in ("Customer", "Invoice")}
    assert [c["Id"] for c in by_entity["Customer"]] == [customer["Id"]]
    assert [i["Id"] for i in by_entity["Invoice"]] == [kept["Id"], doomed["Id"]]
    assert by_entity["Invoice"][1]["status"] == "Deleted"
    assert company.cdc(["Customer"], clock.now() + timedelta(seconds=1)) == [{}]


def test_cdc_limits(company, clock):
    assert fault(company.cdc, ["Customer"], clock.now() - timedelta(days=31)).status == 400
    assert fault(company.cdc, ["TaxCode"], clock.now()).code == "2170"  # not supported (§6.1)
    company.settings.cdc_max_objects = 3
    since = clock.advance(seconds=1)
    for n in range(5):
        company.create("Customer", {"DisplayName": f"C{n}"})
    (part,) = company.cdc(["Customer"], since)
    assert part["maxResults"] == 3
    assert [c["DisplayName"] for c in part["Customer"]] == ["C0", "C1", "C2"]  # oldest first


def test_jsonio_round_trip_is_exact():
    data = loads(b'{"a": 0.1, "b": 10, "c": [1.10, -0.0]}')
    assert data == {"a": Decimal("0.1"), "b": Decimal("10"), "c": [Decimal("1.10"), Decimal("0")]}
    assert dumps(data) == '{"a":0.1,"b":10,"c":[1.10,0]}'
    with pytest.raises(TypeError):
        dumps({"x": 0.1})


def test_python_quickbooks_shaped_bodies_are_accepted(company):
    # PQB (ej2/python-quickbooks) sends its objects' defaults: empty strings for dates and
    # numbers, Qty/UnitPrice 0, SyncToken 0 without Id — real QBO accepts these.
    item = company.create(
        "Item",
        {
            "Name": "Hours",
            "Type": "",
            "Description": "",
            "Active": True,
            "SubItem": False,
            "FullyQualifiedName": "",
            "Taxable": False,
            "UnitPrice": 0,
            "TrackQtyOnHand": False,
            "SyncToken": 0,
            "sparse": False,
            "domain": "QBO",
            "IncomeAccountRef": {"value": "1", "name": "Services"},
        },
    )
    invoice = company.create(
        "Invoice",
        {
            "Deposit": 0,
            "Balance": 0,
            "AllowIPNPayment": True,
            "DocNumber": "",
            "PrivateNote": "",
            "TxnDate": "",
            "DueDate": "",
            "ShipDate": "",
            "TrackingNum": "",
            "TotalAmt": "",
            "ApplyTaxAfterDiscount": False,
            "PrintStatus": "NotSet",
            "EmailStatus": "NotSet",
            "ExchangeRate": 1,
            "GlobalTaxCalculation": "TaxExcluded",
            "CustomField": [],
            "LinkedTxn": [],
            "SyncToken": 0,
            "sparse": False,
            "domain": "QBO",
            "CustomerRef": {"value": "1", "name": "Acme"},
            "Line": [
                {
                    "LineNum": 0,
                    "Amount": 100,
                    "DetailType": "SalesItemLineDetail",
                    "LinkedTxn": [],
                    "CustomField": [],
                    "SalesItemLineDetail": {
                        "UnitPrice": 0,
                        "Qty": 0,
                        "ServiceDate": "",
                        "ItemRef": {"value": item["Id"]},
                    },
                }
            ],
        },
    )
    assert invoice["TotalAmt"] == 100
    assert invoice["TxnDate"] and "ServiceDate" not in invoice["Line"][0]["SalesItemLineDetail"]
    assert item["Type"] == "Service"
