"""`medpay his selftest` against our own server (SQLite and PostgreSQL): green in every URL style; a difference is
named where the platform answers otherwise than the field reads; nothing is left booked."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from medpay.adapters.db.engine import make_engine, session_factory
from medpay.adapters.db.tables import SettlementRow
from medpay.his_client import HisClient
from medpay.his_selftest import Selftest, Subjects, table
from medpay.his_transport import HttpResult, HttpTransport
from medpay.nhsa_paths import CALL_SERVICE
from medpay.services import demo
from tests.helpers_server import backend_server, run_cli

H1, H2 = demo.INSTITUTIONS[0], demo.INSTITUTIONS[1]  # H2 answers 5204 in the object shape here
FLOW = ["9001", "1101", "2201", "2204", "2206", "2207", "5203", "5204", "2208", "1101 (住院)", "2401", "2301",
        "2303", "2402", "2304", "2305", "2404", "2601", "3201"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("selftest")
    for base in backend_server(request.param, tmp):
        assert run_cli(["institution", "fee-query-shape", H2[0], "object"], base.db_url, tmp).returncode == 0
        base.tmp = tmp
        yield base


def selftest(served, *args: str, inst=H1):
    code, _name, _level, paasid, token = inst
    return run_cli(["his", "selftest", *args, "--fixmedins-code", code, "--paasid", paasid, "--admdvs", "999901",
                    "--json"], served.db_url, served.tmp, env={"MEDPAY_HIS_TOKEN": token})


def unbooked(served) -> int:
    """Settlements of the demo hospitals that stand (not cancelled, no cancellation naming them)."""
    engine = make_engine(served.db_url)
    try:
        with session_factory(engine)() as s:
            cancelled = select(SettlementRow.orig_setl_id).where(SettlementRow.kind == "cancel",
                                                                 SettlementRow.cancelled.is_(False))
            return s.execute(select(func.count()).select_from(SettlementRow).where(
                SettlementRow.kind == "settle", SettlementRow.cancelled.is_(False),
                SettlementRow.setl_id.not_in(cancelled))).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize("style, path", [("call_service", ""), ("named", ""), ("infno", CALL_SERVICE)])
def test_selftest_against_our_own_server_is_green_in_every_url_style(served, style: str, path: str) -> None:
    done = selftest(served, served + path, "--path-style", style)
    outcomes = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [o["infno"] for o in outcomes] == FLOW and all(o["ok"] for o in outcomes)
    assert unbooked(served) == 0


def test_the_table_names_the_first_difference_and_the_flow_goes_on(served) -> None:
    """H2 answers 5204 as {"feedetail": rows}: the field reads a list, so 5204 differs; the rest conforms."""
    done = selftest(served, served, inst=H2)
    outcomes = {o["infno"]: o for o in json.loads(done.stdout)}
    assert done.returncode == 1
    assert outcomes["5204"]["ok"] is False and "output is an object (keys feedetail)" in outcomes["5204"]["note"]
    assert outcomes["2208"]["ok"] and outcomes["2305"]["ok"] and unbooked(served) == 0


def test_without_the_sign_in_the_platform_requires_nothing_runs(served) -> None:
    outcomes = json.loads(selftest(served, served, "--sign-in", "never").stdout)
    first = outcomes[0]
    assert (first["infno"], first["ok"]) == ("1101", False) and "infcode -2: sign_no" in first["note"]
    assert outcomes[1] == {"infno": "2201", "title": "门诊挂号", "ok": None, "note": "not run: needs 1101"}


class TamperedSettlements(HttpTransport):
    """A platform that books 2207 and 2304 but answers pool_prop_selfpay as text, as medpay did before issue 10."""

    def post(self, path, body, headers) -> HttpResult:
        result = super().post(path, body, headers)
        if json.loads(body).get("infno") in ("2207", "2304"):
            answer = json.loads(result.body)
            answer["output"]["setlinfo"]["pool_prop_selfpay"] = "0.90"
            return HttpResult(result.status, json.dumps(answer).encode())
        return result


def test_a_settlement_whose_answer_differs_is_still_cancelled(served) -> None:
    code, name, _level, paasid, token = H1
    client = HisClient(served, code, name, paasid, token, mdtrtarea_admvs="999901", retries=0,
                       transport=TamperedSettlements(served))
    people = Subjects(demo.PERSONS[0].certno, demo.PERSONS[1].certno, "XM01AEB002", "002100000020000",
                      "001102000010000")
    try:
        outcomes = Selftest(client, people).run()
    finally:
        client.close()
    by = {o.infno: o for o in outcomes}
    assert by["2207"].ok is False and by["2207"].note.startswith("output.setlinfo.pool_prop_selfpay: ")
    assert "must be a number (数值型), not str" in by["2207"].note and by["5203"].note == "not run: needs 2207"
    assert [(o.infno, o.note.split(": ")[1]) for o in outcomes[-2:]] == [("2208", "cancelled"), ("2305", "cancelled")]
    assert unbooked(served) == 0
    assert "不符 DIFFERS" in table(outcomes) and table(outcomes).endswith(f"of {len(outcomes)} conform")


def test_wrong_options_and_a_token_on_the_command_line_are_refused(served) -> None:
    assert selftest(served, served, "--path-style", "per_path").returncode == 2
    assert selftest(served, served, "--sign-in", "sometimes").returncode == 2
    assert selftest(served, served, "--token", "demo-token-h1-5f2b8c1e9a").returncode == 2  # MEDPAY_HIS_TOKEN only
