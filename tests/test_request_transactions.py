"""An institution request costs one database transaction: its nonce, its sign-in check and its work commit
together (medpay.services.request_guard). Measured by counting commits per request, in process, on SQLite
and PostgreSQL; a refused request writes its nonce and nothing else."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from medpay.adapters.db.audit_tables import AuditEventRow
from medpay.adapters.db.gateway_tables import GatewayNonceRow
from medpay.adapters.db.ledger_tables import LedgerTransferRow
from medpay.adapters.db.tables import (AccumulatorRow, CredentialPresentationRow, FeeLineRow, IdempotencyRow,
                                       SettlementRow, VisitRow)
from medpay.api.institution.routes import dispatch
from medpay.domain.gateway_signature import sign_headers
from medpay.his_client import HisClient
from medpay.services import demo

H1 = demo.INSTITUTIONS[0]
EMP = demo.PERSONS[0]


@pytest.fixture
def platform(seeded_platform):
    return seeded_platform


class Caller:
    def __init__(self, platform):
        self.platform = platform
        code, name, _level, self.paasid, self.token = H1
        self.his = HisClient("http://unused.test", code, name, self.paasid, self.token, mdtrtarea_admvs="999901")
        self.commits = 0
        event.listen(platform.engine, "commit", self._count)

    def _count(self, _conn) -> None:
        self.commits += 1

    def call(self, infno: str, input: dict) -> tuple[dict, int]:
        body = json.dumps(self.his.envelope(infno, input), ensure_ascii=False).encode()
        before = self.commits
        answer = json.loads(dispatch(self.platform, sign_headers(self.paasid, self.token, nonce=uuid.uuid4().hex),
                                     body, None).body)
        return answer, self.commits - before


def counts(platform) -> dict[str, int]:
    with platform.factory() as s:
        return {m.__tablename__: s.execute(select(func.count()).select_from(m)).scalar_one()
                for m in (GatewayNonceRow, IdempotencyRow, VisitRow, SettlementRow, FeeLineRow, AccumulatorRow,
                          CredentialPresentationRow, LedgerTransferRow, AuditEventRow)}


def test_each_transaction_of_a_settlement_commits_once(platform):
    c = Caller(platform)
    answer, _ = c.call("9001", {"signIn": {"opter_no": "1"}})
    c.his.sign_no = answer["output"]["signinoutb"]["sign_no"]
    answer, commits = c.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno}})
    assert answer["infcode"] == 0 and commits == 1
    answer, commits = c.call("2201", {"data": {"psn_no": EMP.psn_no, "insutype": EMP.insutype, "med_type": "11",
                                               "mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno}})
    assert answer["infcode"] == 0 and commits == 1
    mdtrt_id = answer["output"]["data"]["mdtrt_id"]
    lines = [{"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no, "med_list_codg": "XM01AEB002",
              "cnt": 2, "pric": "30.50", "det_item_fee_sumamt": "61.00"}]
    answer, commits = c.call("2204", {"feedetail": lines})
    assert answer["infcode"] == 0 and commits == 1
    answer, commits = c.call("2207", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": mdtrt_id, "medfee_sumamt": "61.00"}})
    assert answer["infcode"] == 0 and commits == 1
    info = answer["output"]["setlinfo"]
    assert info["psn_name"] == EMP.psn_name and Decimal(str(info["medfee_sumamt"])) == Decimal("61.00")


def test_a_refused_request_writes_its_nonce_and_nothing_else(platform):
    c = Caller(platform)
    answer, _ = c.call("9001", {"signIn": {"opter_no": "1"}})
    c.his.sign_no = answer["output"]["signinoutb"]["sign_no"]
    before = counts(platform)
    answer, _ = c.call("2201", {"data": {"psn_no": EMP.psn_no, "med_type": "11"}})  # no 1101 first: tenancy
    assert answer["infcode"] == -2 and answer["err_msg"].startswith("psn_no")
    answer, _ = c.call("2207", {"data": {"mdtrt_id": "NO-SUCH-VISIT", "medfee_sumamt": "1"}})
    assert answer["infcode"] == -2 and answer["err_msg"].startswith("mdtrt_id")
    after = counts(platform)
    assert after == {**before, "gateway_nonces": before["gateway_nonces"] + 2}


def test_a_unit_of_work_opened_inside_another_does_not_wait_for_the_nonce(platform, db_url):
    """Only the first open transaction of a request writes its nonce: one opened inside it (which would wait on
    the first's uncommitted nonce row for ever) leaves the nonce to the outer one."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer: a second transaction inside the first can't begin at all")
    from medpay.services import request_guard
    from medpay.services.unit_of_work import unit_of_work

    now = datetime.now(timezone.utc)
    guard = request_guard.RequestGuard(H1[3], uuid.uuid4().hex, int(now.timestamp()), now, H1[0])
    with request_guard.active(guard):
        with unit_of_work(platform.factory):
            assert guard.holding
            with unit_of_work(platform.factory):  # does not block: it does not insert the nonce again
                pass
            assert not guard.done
        assert guard.done and not guard.holding
    with platform.factory() as s:
        assert s.execute(select(func.count()).select_from(GatewayNonceRow)
                         .where(GatewayNonceRow.nonce == guard.nonce)).scalar_one() == 1
