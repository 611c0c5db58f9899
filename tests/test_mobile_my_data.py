"""我的数据 over HTTP (PIPL), on SQLite and PostgreSQL: a person downloads everything held about them — registration,
e-certificates, the app account, settlements, bookings, who saw their data — and asks for deletion: what exists
because they used the app is erased at once (the device key stops working, the session ends, the payment method is
unbound), and the fund's settlement records stay, as told."""

from __future__ import annotations

import json
from contextlib import closing

import httpx
import pytest

from medpay.adapters.db.account_tables import DeletionRequestRow
from medpay.adapters.db.payment_tables import PaymentMethodRow
from medpay.adapters.db.tables import SettlementRow
from medpay.services import demo
from tests.helpers_qr import Phone, qr_stack
from tests.helpers_server import audit_events, row_count

RETIREE = demo.PERSONS[1]  # her personal account pays the registration fee


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from qr_stack(request.param, tmp_path_factory.mktemp("mydata"))


def test_export_everything_then_delete_what_the_app_made_and_keep_the_funds_records(stack) -> None:
    phone = Phone(stack, RETIREE)
    with closing(phone.http):
        assert phone.signed("POST", "/api/v1/mobile/account/persons").status_code == 200  # the account: herself
        slot = phone.signed("GET", "/api/v1/mobile/slots", csrf=False).json()[0]
        booked = phone.signed("POST", "/api/v1/mobile/bookings", {"slot_id": slot["slot_id"]}, csrf=False).json()
        assert booked["state"] == "booked", booked

        r = phone.signed("GET", "/api/v1/mobile/my-data", csrf=False)
        assert r.status_code == 200 and "attachment" in r.headers["content-disposition"], r.text
        doc = json.loads(r.content)
        assert doc["format"] == "medpay-my-data/1" and doc["psn_no"] == RETIREE.psn_no
        assert doc["person"]["psn_name"] == RETIREE.psn_name and doc["person"]["certno"] == RETIREE.certno
        assert [e["status"] for e in doc["e_certificates"] if e["ecert_id"] == phone.ecert_id] == ["active"]
        assert doc["app_accounts"][0]["phone"] == RETIREE.phone and doc["app_accounts"][0]["sessions"]
        assert [s["setl_id"] for s in doc["settlements"]] == [booked["setl_id"]]
        assert doc["settlements"][0]["setlinfo"]["medfee_sumamt"] == 10  # yuan, like every door
        assert [b["booking_id"] for b in doc["bookings"]] == [booked["booking_id"]]
        assert doc["payment_method"] == {"bound": True} and doc["face"]["enrolled"] is False
        assert any(a["action"] == "account.link" for a in doc["accesses"])
        assert [e.psn_no for e in audit_events(stack["db_url"], "pipl.export")] == [RETIREE.psn_no]

        # a deletion request needs the signed-in account (and its CSRF token), not only the device
        unsigned = httpx.post(f"{stack['base']}/api/v1/mobile/my-data/deletion", timeout=10)
        assert unsigned.status_code == 401
        assert phone.signed("POST", "/api/v1/mobile/my-data/deletion", {}, csrf=False).status_code == 403
        done = phone.signed("POST", "/api/v1/mobile/my-data/deletion", {})
        assert done.status_code == 200, done.text
        assert set(done.json()["erased"]) >= {"app_account", "e_certificates", "payment_method", "face_template"}
        assert "settlements_and_ledger" in done.json()["kept"]

        # erased at once: the device key, the session, the payment method
        after = phone.signed("GET", "/api/v1/mobile/my-data", csrf=False)
        assert after.status_code == 403 and after.json()["error"]["code"] == "ecert_revoked", after.text
        assert phone.http.get("/api/v1/mobile/account").status_code == 401
        assert row_count(stack["db_url"], PaymentMethodRow, PaymentMethodRow.psn_no == RETIREE.psn_no) == 0
        # kept: the fund's records of the settlement; the request itself, audited
        assert row_count(stack["db_url"], SettlementRow, SettlementRow.psn_no == RETIREE.psn_no) == 1
        assert row_count(stack["db_url"], DeletionRequestRow, DeletionRequestRow.psn_no == RETIREE.psn_no) == 1
        assert [e.psn_no for e in audit_events(stack["db_url"], "pipl.deletion")] == [RETIREE.psn_no]
