"""The QBO simulator's vendors, purchase orders, bills, chart and tax outside the US, called
directly. Sources: docs/qbo-api.md §3.1, §3.3, §3.6, §B1–§B3."""

from __future__ import annotations

from decimal import Decimal

import pytest

from datagate_simulators.qbo import FakeClock, QBOBackend, QBOFault, QBOSettings

REALM = "9130350000000000"


def seed(**options):
    backend = QBOBackend(QBOSettings(**options.pop("settings", {})), clock=FakeClock())
    company = backend.seed_company(
        REALM,
        client_id="app",
        client_secret="secret",
        refresh_token="RT0",
        items=[{"Name": "Yealink T54W Phone"}],
        customers=[{"DisplayName": "Summit Dental"}],
        **options,
    )
    return company


def fault(call, *args, **kwargs) -> QBOFault:
    with pytest.raises(QBOFault) as info:
        call(*args, **kwargs)
    return info.value


def account(company, name: str) -> str:
    return company.find("Account", Name=name)["Id"]


def order_body(company, vendor_id: str, **overrides):
    body = {
        "VendorRef": {"value": vendor_id},
        "DocNumber": "PO-00001",
        "Line": [
            {
                "Amount": Decimal("363.00"),
                "DetailType": "ItemBasedExpenseLineDetail",
                "ItemBasedExpenseLineDetail": {
                    "ItemRef": {"value": company.find("Item", Name="Yealink T54W Phone")["Id"]},
                    "Qty": Decimal("3"),
                    "UnitPrice": Decimal("121"),
                },
            },
            {
                "Amount": Decimal("35.00"),
                "DetailType": "AccountBasedExpenseLineDetail",
                "AccountBasedExpenseLineDetail": {
                    "AccountRef": {"value": account(company, "Freight and Delivery")}
                },
            },
        ],
    }
    body.update(overrides)
    return body


def test_display_names_are_one_namespace_across_customers_vendors_and_employees():
    """§3.1, §B1: 6240 for a DisplayName any Customer, Vendor or Employee has, any case."""
    company = seed()
    assert fault(company.create, "Vendor", {"DisplayName": "summit dental"}).code == "6240"
    company.create("Employee", {"GivenName": "Ada", "FamilyName": "Lovelace"})
    assert fault(company.create, "Vendor", {"DisplayName": "Ada Lovelace"}).code == "6240"
    vendor = company.create("Vendor", {"DisplayName": "Ingram Micro"})
    assert fault(company.create, "Customer", {"DisplayName": "INGRAM MICRO"}).code == "6240"
    company.update(
        "Vendor", {"Id": vendor["Id"], "SyncToken": "0", "Active": False, "sparse": True}
    )
    # Inactive records keep their names.
    assert fault(company.create, "Vendor", {"DisplayName": "Ingram Micro"}).code == "6240"


def test_vendor_names_refuse_colons_tabs_and_newlines_and_need_a_name():
    """§B1: no ':' tab or newline in name fields; a DisplayName or a name part (6080)."""
    company = seed()
    assert fault(company.create, "Vendor", {"DisplayName": "A: B"}).code == "2040"
    assert fault(company.create, "Vendor", {"DisplayName": "A\tB"}).code == "2040"
    assert fault(company.create, "Vendor", {"CompanyName": "Only a company"}).code == "6080"
    assert company.create("Vendor", {"GivenName": "Pat"})["DisplayName"] == "Pat"


def test_a_purchase_order_needs_a_vendor_and_an_accounts_payable_account():
    """§B2: VendorRef required; APAccountRef implied when the company has exactly one
    Accounts Payable account, required when it has none, refused when not A/P."""
    company = seed()
    vendor = company.create("Vendor", {"DisplayName": "Ingram Micro"})["Id"]
    assert (
        fault(company.create, "PurchaseOrder", order_body(company, vendor, VendorRef=None)).code
        == "2020"
    )
    po = company.create("PurchaseOrder", order_body(company, vendor))
    assert po["APAccountRef"]["name"] == "Accounts Payable (A/P)"
    assert po["TotalAmt"] == Decimal("398.00") and po["POStatus"] == "Open"
    wrong = order_body(
        company, vendor, DocNumber="PO-2", APAccountRef={"value": account(company, "Checking")}
    )
    assert fault(company.create, "PurchaseOrder", wrong).code == "6000"
    bare = seed(
        accounts=[
            {"Name": "Services", "AccountType": "Income"},
            {"Name": "Freight and Delivery", "AccountType": "Expense"},
        ]
    )
    bare_vendor = bare.create("Vendor", {"DisplayName": "V"})["Id"]
    assert fault(bare.create, "PurchaseOrder", order_body(bare, bare_vendor)).code == "2020"


def test_purchase_order_doc_numbers_are_unique_and_amounts_match_qty_times_price():
    """§B2 (QPO): a duplicate DocNumber needs include=allowduplicatedocnum; §3.4 6070."""
    company = seed()
    vendor = company.create("Vendor", {"DisplayName": "Ingram Micro"})["Id"]
    company.create("PurchaseOrder", order_body(company, vendor))
    assert fault(company.create, "PurchaseOrder", order_body(company, vendor)).code == "6140"
    company.create("PurchaseOrder", order_body(company, vendor), include=["allowduplicatedocnum"])
    wrong = order_body(company, vendor, DocNumber="PO-9")
    wrong["Line"][0]["Amount"] = Decimal("360.00")
    assert fault(company.create, "PurchaseOrder", wrong).code == "6070"


def test_a_bill_linked_to_its_purchase_order_closes_it():
    """§B3: LinkedTxn on the Bill and each line; the PO lists the bill and closes once
    every line is billed [I]."""
    company = seed()
    vendor = company.create("Vendor", {"DisplayName": "Ingram Micro"})["Id"]
    po = company.create("PurchaseOrder", order_body(company, vendor))
    bill = order_body(company, vendor, DocNumber="SI-1")
    for line, po_line in zip(bill["Line"], po["Line"], strict=True):
        line["LinkedTxn"] = [
            {"TxnId": po["Id"], "TxnType": "PurchaseOrder", "TxnLineId": po_line["Id"]}
        ]
    bill["LinkedTxn"] = [{"TxnId": po["Id"], "TxnType": "PurchaseOrder"}]
    created = company.create("Bill", bill)
    assert created["LinkedTxn"] == [{"TxnId": po["Id"], "TxnType": "PurchaseOrder"}]
    assert created["Balance"] == created["TotalAmt"] == Decimal("398.00")
    after = company.read("PurchaseOrder", po["Id"])
    assert after["LinkedTxn"] == [{"TxnId": created["Id"], "TxnType": "Bill"}]
    assert after["POStatus"] == "Closed" and after["SyncToken"] == "1"
    assert company.read("Vendor", vendor)["Balance"] == Decimal("398.00")
    # A bill linked to a PO cannot be deleted until unlinked [I] (QMCP).
    assert fault(company.delete, "Bill", {"Id": created["Id"], "SyncToken": "0"}).code == "6000"


def test_an_invalid_link_is_dropped_without_an_error_and_missing_parts_are_2020():
    """§B3 [I]: QBO creates the Bill and leaves out an invalid link (a PO of another
    vendor, an unknown line); each child attribute of a link is required."""
    company = seed()
    vendor = company.create("Vendor", {"DisplayName": "Ingram Micro"})["Id"]
    other = company.create("Vendor", {"DisplayName": "Pax8 Cloud"})["Id"]
    po = company.create("PurchaseOrder", order_body(company, vendor))
    bill = order_body(company, other, DocNumber="SI-2")
    bill["Line"][0]["LinkedTxn"] = [
        {"TxnId": po["Id"], "TxnType": "PurchaseOrder", "TxnLineId": "1"}
    ]
    bill["LinkedTxn"] = [{"TxnId": po["Id"], "TxnType": "PurchaseOrder"}]
    created = company.create("Bill", bill)
    assert created["LinkedTxn"] == [] and "LinkedTxn" not in created["Line"][0]
    assert company.read("PurchaseOrder", po["Id"])["POStatus"] == "Open"
    bill["Line"][0]["LinkedTxn"] = [{"TxnId": po["Id"], "TxnType": "PurchaseOrder"}]
    assert fault(company.create, "Bill", bill).code == "2020"


def test_account_numbers_are_queryable_unique_and_at_most_20_characters():
    """§3.3: AcctNum (a PQB test comment keeps it to 20 [I]); unique in the chart [I]."""
    company = seed()
    assert (
        company.query("select * from Account where AcctNum = '4010'")["Account"][0]["Name"]
        == "Voice Services"
    )
    body = {"Name": "Another", "AccountType": "Income", "AcctNum": "4010"}
    assert fault(company.create, "Account", body).code == "6000"
    assert fault(company.create, "Account", {**body, "AcctNum": "1" * 21}).code == "2050"


def test_transactions_in_another_currency_need_multi_currency():
    """§B2: CurrencyRef when multi-currency is on; the home currency otherwise [I]."""
    company = seed()
    vendor = company.create("Vendor", {"DisplayName": "Ingram Micro"})["Id"]
    body = order_body(company, vendor, CurrencyRef={"value": "EUR"})
    assert "Multicurrency is off" in str(fault(company.create, "PurchaseOrder", body))
    multi = seed(multi_currency=True)
    euro = multi.create("Vendor", {"DisplayName": "Euro Parts", "CurrencyRef": {"value": "EUR"}})[
        "Id"
    ]
    assert multi.create("PurchaseOrder", order_body(multi, euro, CurrencyRef={"value": "EUR"}))[
        "CurrencyRef"
    ] == {"value": "EUR"}


def _canadian(**settings):
    company = seed(country="CA", home_currency="CAD", settings=settings)
    agency = company.create("TaxAgency", {"DisplayName": "Canada Revenue Agency"})["Id"]
    province = company.create("TaxAgency", {"DisplayName": "BC Ministry of Finance"})["Id"]
    code = company.create_tax_code(
        {
            "TaxCode": "GST/PST BC",
            "TaxRateDetails": [
                {"TaxRateName": "GST 5%", "RateValue": Decimal("5"), "TaxAgencyId": agency},
                {"TaxRateName": "PST BC 7%", "RateValue": Decimal("7"), "TaxAgencyId": province},
            ],
        }
    )
    return company, code


def _sale(company, code_id: str, amounts: list[str], **overrides):
    item = company.find("Item", Name="Yealink T54W Phone")["Id"]
    body = {
        "CustomerRef": {"value": company.find("Customer", DisplayName="Summit Dental")["Id"]},
        "Line": [
            {
                "Amount": Decimal(a),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": item},
                    "TaxCodeRef": {"value": code_id},
                },
            }
            for a in amounts
        ],
    }
    body.update(overrides)
    return body


def test_outside_the_us_every_line_names_a_real_tax_code():
    """§3.6: TAX/NON exist in US companies only; a line without a code is refused with the
    GST/HST message (activepieces#8539)."""
    company, code = _canadian()
    assert fault(company.create, "Invoice", _sale(company, "TAX", ["10.00"])).code == "2500"
    body = _sale(company, code["TaxCodeId"], ["10.00"])
    del body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"]
    assert "GST/HST rate" in str(fault(company.create, "Invoice", body))


def test_outside_the_us_qbo_computes_tax_per_rate_and_honours_tax_lines_sent():
    """§3.6: QBO computes tax per rate of the lines' codes (rounded once per rate) and
    ignores a sent TotalTax; tax lines sent with amounts override its figure [I]."""
    company, code = _canadian()
    rates = {d["TaxRateName"]: d["TaxRateId"] for d in code["TaxRateDetails"]}
    # 3 × 0.33: per rate 0.99 × 5% = 0.0495 → 0.05 and × 7% = 0.0693 → 0.07.
    computed = company.create(
        "Invoice",
        _sale(company, code["TaxCodeId"], ["0.33"] * 3, TxnTaxDetail={"TotalTax": Decimal("9")}),
    )
    assert computed["TxnTaxDetail"]["TotalTax"] == Decimal("0.12")
    assert {
        t["TaxLineDetail"]["NetAmountTaxable"] for t in computed["TxnTaxDetail"]["TaxLine"]
    } == {Decimal("0.99")}
    sent = {
        "TotalTax": Decimal("0.09"),
        "TaxLine": [
            {
                "Amount": Decimal("0.03"),
                "DetailType": "TaxLineDetail",
                "TaxLineDetail": {"TaxRateRef": {"value": rates["GST 5%"]}},
            },
            {
                "Amount": Decimal("0.06"),
                "DetailType": "TaxLineDetail",
                "TaxLineDetail": {"TaxRateRef": {"value": rates["PST BC 7%"]}},
            },
        ],
    }
    honoured = company.create(
        "Invoice", _sale(company, code["TaxCodeId"], ["0.33"] * 3, TxnTaxDetail=sent)
    )
    assert honoured["TxnTaxDetail"]["TotalTax"] == Decimal("0.09") and honoured[
        "TotalAmt"
    ] == Decimal("1.08")
    strict, strict_code = _canadian(honour_sent_tax_lines=False)
    ignored = strict.create(
        "Invoice", _sale(strict, strict_code["TaxCodeId"], ["0.33"] * 3, TxnTaxDetail=sent)
    )
    assert ignored["TxnTaxDetail"]["TotalTax"] == Decimal("0.12")


def test_the_tax_service_reuses_rates_by_id_and_checks_everything_first():
    """§3.6 (PQB TaxRateDetails has TaxRateId): an existing rate joins a new code; a bad
    detail stores nothing; code and rate names are unique [I]."""
    company, code = _canadian()
    gst = next(d["TaxRateId"] for d in code["TaxRateDetails"] if d["TaxRateName"] == "GST 5%")
    rates_before = len(company.records("TaxRate"))
    alone = company.create_tax_code({"TaxCode": "GST only", "TaxRateDetails": [{"TaxRateId": gst}]})
    assert [d["TaxRateId"] for d in alone["TaxRateDetails"]] == [gst]
    assert len(company.records("TaxRate")) == rates_before
    bad = {
        "TaxCode": "Half",
        "TaxRateDetails": [
            {"TaxRateName": "New 1%", "RateValue": 1, "TaxAgencyId": "1"},
            {"TaxRateId": "999"},
        ],
    }
    assert fault(company.create_tax_code, bad).code == "2500"
    assert (
        len(company.records("TaxRate")) == rates_before
        and company.find("TaxCode", Name="Half") is None
    )
    again = {"TaxCode": "GST/PST BC", "TaxRateDetails": [{"TaxRateId": gst}]}
    assert fault(company.create_tax_code, again).code == "6240"


def test_companies_with_automated_and_manual_us_sales_tax_both_honour_a_sent_total():
    """§3.6: AST (PartnerTaxEnabled) keeps an explicit tax amount; so does manual tax."""
    for automated in (True, False):
        company = seed(automated_sales_tax=automated)
        assert company.preferences()["TaxPrefs"]["PartnerTaxEnabled"] is automated
        item = company.find("Item", Name="Yealink T54W Phone")["Id"]
        invoice = company.create(
            "Invoice",
            {
                "CustomerRef": {
                    "value": company.find("Customer", DisplayName="Summit Dental")["Id"]
                },
                "Line": [
                    {
                        "Amount": Decimal("100.00"),
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {
                            "ItemRef": {"value": item},
                            "TaxCodeRef": {"value": "TAX"},
                        },
                    }
                ],
                "TxnTaxDetail": {"TotalTax": Decimal("7.25")},
            },
        )
        assert invoice["TotalAmt"] == Decimal("107.25")
