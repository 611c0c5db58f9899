"""The admin door needs a staff key: made and revoked on the command line, checked on every admin request."""

from __future__ import annotations

import re

import httpx
import pytest

from medpay.services import demo
from medpay.services.errors import AuthError, Invalid, NotFound
from medpay.services.staff import StaffKeys
from tests.helpers_server import STAFF, run_cli, server

ADMIN_GETS = ("/api/v1/admin/policies", "/api/v1/admin/ledger/check",
              "/api/v1/admin/payments/statement/2026-12-01")


def test_the_admin_door_is_closed_without_a_valid_key(db_url, tmp_path):
    with server(db_url, tmp_path) as base:
        for path in ADMIN_GETS:
            r = httpx.get(base + path)
            assert r.status_code == 401, path
            assert r.json()["error"]["field"] == "authorization" and "Traceback" not in r.text
        assert httpx.post(f"{base}/api/v1/admin/payments/recover").status_code == 401
        for bad in ("Bearer mpk_demostaff001_wrong", "Basic dXNlcjpwdw==", "Bearer nonsense", "Bearer"):
            r = httpx.get(f"{base}/api/v1/admin/policies", headers={"authorization": bad})
            assert r.status_code == 401 and r.json()["error"]["field"] == "authorization", bad
        assert httpx.get(f"{base}/api/v1/admin/policies", headers=STAFF).status_code == 200  # the demo key
        spec = httpx.get(f"{base}/openapi.json").json()
        assert "staff key" in spec["components"]["securitySchemes"]
        assert spec["paths"]["/api/v1/admin/policies"]["get"]["security"] == [{"staff key": []}]

        made = run_cli(["staff", "key-create", "张经办"], db_url, tmp_path)
        assert made.returncode == 0, made.stderr
        key = re.search(r"mpk_[0-9a-f]{12}_[A-Za-z0-9_-]+", made.stdout).group(0)
        mine = {"authorization": f"Bearer {key}"}
        assert httpx.get(f"{base}/api/v1/admin/ledger/check", headers=mine).json()["ok"]
        assert run_cli(["staff", "key-revoke", key.split("_")[1]], db_url, tmp_path).returncode == 0
        r = httpx.get(f"{base}/api/v1/admin/ledger/check", headers=mine)
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
        again = run_cli(["staff", "key-revoke", key.split("_")[1]], db_url, tmp_path)
        assert again.returncode == 2 and "key_id" in again.stderr


def test_keys_are_stored_as_hashes_and_names_are_checked(session_factory):
    keys = StaffKeys(session_factory)
    key = keys.create("李经办")
    assert keys.authenticate(f"Bearer {key}").name == "李经办"
    assert keys.authenticate(f"bearer  {key} ").key_id == key.split("_")[1]
    with session_factory() as s:
        from medpay.adapters.db.staff_tables import StaffKeyRow

        row = s.get(StaffKeyRow, key.split("_")[1])
        assert key.split("_", 2)[2] not in (row.secret_hash, row.name)
    for name in ("", " ", "x" * 101, "bad\nname"):
        with pytest.raises(Invalid):
            keys.create(name)
    with pytest.raises(NotFound):
        keys.revoke("nosuchkey")
    with pytest.raises(AuthError):
        keys.authenticate(None)
    assert keys.create("演示", key=demo.STAFF[1]) == demo.STAFF[1]
    assert keys.create("someone else", key=demo.STAFF[1]) == demo.STAFF[1]  # an existing key is kept as it is
    assert keys.authenticate(f"Bearer {demo.STAFF[1]}").name == "演示"
