"""SM3withSM2 body signatures through the real request path: the signature covers the envelope exactly as
the HIS sent it (fields medpay does not use included), not medpay's normalised reading of it."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from medpay.adapters.db import migrate
from medpay.adapters.db.engine import make_engine
from medpay.adapters.db.gateway_tables import SignInRow
from medpay.adapters.sm2 import generate_keypair, sign_sm2
from medpay.api.app import create_app
from medpay.api.platform import build_platform
from medpay.domain.gateway_signature import canonical_body, sign_headers
from medpay.his_client import HisBusinessError, HisClient
from medpay.his_transport import HttpResult
from medpay.services import demo

CODE, NAME, _LEVEL, PAASID, TOKEN = demo.INSTITUTIONS[0]


@pytest.fixture
def client(db_url: str):
    engine = make_engine(db_url)
    migrate.upgrade(engine)  # first: the platform checks its keys against the database
    engine.dispose()
    platform = build_platform(db_url)
    demo.seed(platform.factory, platform.cipher)
    private, public = generate_keypair()
    platform.gateway.set_sm2_public_key(CODE, public)
    with TestClient(create_app(platform)) as c:
        yield c, private
    platform.engine.dispose()


def envelope(msgid: str) -> dict:
    # as a real HIS sends it: numbers for strings, fields medpay ignores (serv_code/serv_sign), no sign_no
    return {"infno": "9001", "msgid": msgid, "fixmedins_code": CODE, "fixmedins_name": NAME, "infver": "V1.0",
            "opter_type": 1, "serv_code": "A6B3720544049E1397", "serv_sign": "HH00001", "signtype": "SM2",
            "input": {"signIn": {"opter_no": "1001", "mac": "", "ip": "10.0.0.8"}}}


def post(c: TestClient, env: dict):
    return c.post("/fsi/api/rsfComIfsService/callService", content=json.dumps(env, ensure_ascii=False).encode(),
                  headers={**sign_headers(PAASID, TOKEN), "content-type": "application/json"})


def test_a_correctly_signed_body_is_accepted(client) -> None:
    c, private = client
    env = envelope(f"{CODE}20261123000000A001")
    env["cainfo"] = sign_sm2(private, canonical_body(env))
    r = post(c, env)
    assert (r.status_code, r.json()["infcode"]) == (200, 0), r.json()


def test_a_body_changed_after_signing_is_refused(client) -> None:
    c, private = client
    env = envelope(f"{CODE}20261123000000A002")
    env["cainfo"] = sign_sm2(private, canonical_body(env))
    env["input"]["signIn"]["opter_no"] = "9999"
    r = post(c, env)
    assert r.status_code == 401 and r.json()["err_msg"].startswith("cainfo")


class _Through:
    """The HIS client's transport, through the in-process app."""

    def __init__(self, c: TestClient):
        self.c = c

    def post(self, path: str, body: bytes, headers) -> HttpResult:
        r = self.c.post(path, content=body, headers=headers())
        return HttpResult(r.status_code, r.content)

    def close(self) -> None:
        pass


def test_the_his_client_signs_bodies_itself(client) -> None:
    c, private = client
    his = HisClient("http://in-process", CODE, NAME, PAASID, TOKEN, mdtrtarea_admvs="999901",
                    transport=_Through(c), sm2_private_key=private)
    assert his.sign_in("1001").ok  # signtype SM2, cainfo the signature of the body as sent
    with pytest.raises(HisBusinessError) as e:  # a key the institution did not register
        HisClient("http://in-process", CODE, NAME, PAASID, TOKEN, mdtrtarea_admvs="999901", transport=_Through(c),
                  sm2_private_key=generate_keypair()[0], retries=0).sign_in("1001")
    assert e.value.response.http_status == 401 and e.value.err_msg.startswith("cainfo")


# -- a registered key makes the signature mandatory ----------------------------------------------------------


def signed(private: str, msgid: str, opter_no: str = "1001") -> dict:
    env = envelope(msgid)
    env["input"]["signIn"]["opter_no"] = opter_no
    env["cainfo"] = sign_sm2(private, canonical_body(env))
    return env


@pytest.mark.parametrize("signtype, cainfo", [("", ""), (None, None), ("RSA", "00" * 64), ("PRCSSC", "whatever")],
                         ids=["stripped", "absent", "RSA", "other"])
def test_an_altered_body_without_its_sm2_signature_is_refused(client, signtype, cainfo) -> None:
    """The attack of issue 9, item 5: alter a signed body, then drop (or replace) signtype and cainfo."""
    c, private = client
    env = signed(private, f"{CODE}20261123000000A010")
    env["input"]["signIn"]["opter_no"] = "6666"
    for name, value in (("signtype", signtype), ("cainfo", cainfo)):
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    r = post(c, env)
    assert r.status_code == 401 and r.json()["err_msg"].startswith("signtype: must be SM2"), r.json()
    with c.app.state.platform.factory() as s:  # the 9001 did not run
        assert s.execute(select(func.count()).select_from(SignInRow)).scalar_one() == 0


def test_after_the_key_is_removed_plain_bodies_are_accepted(client) -> None:
    c, private = client
    plain = {k: v for k, v in envelope(f"{CODE}20261123000000A011").items() if k != "signtype"}
    assert post(c, plain).status_code == 401
    c.app.state.platform.gateway.set_sm2_public_key(CODE, None)
    plain["msgid"] = f"{CODE}20261123000000A012"
    r = post(c, plain)
    assert (r.status_code, r.json()["infcode"]) == (200, 0), r.json()
