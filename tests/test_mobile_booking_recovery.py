"""Bookings a crash left half-way are finished or undone by ``BookingService.recover`` (with the gateway simulator
as its own process): a fee captured makes the booking; a booking that never paid gives its seat back and leaves no
visit; an interrupted cancellation is completed and refunded. And the booking rules as pure functions."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.booking_tables import BookingRow, BookingSlotRow
from medpay.adapters.db.tables import VisitRow
from medpay.adapters.gateway.http_gateway import HttpGateway
from medpay.adapters.policy_files import builtin_policies
from medpay.domain.booking import SlotFacts, booking_refusal, cancel_refusal, slot_problem
from medpay.services import demo
from medpay.services.his_notices import HisNotices
from medpay.services.mobile.booking import BookingService, SlotInput, slot_id_for
from medpay.services.persons import PersonService
from medpay.services.qr.one_scan import OneScanService
from medpay.services.settlement import SettlementService
from tests.helpers_gateway import API_KEY, gateway_simulator

H1 = "H99990100001"
RESIDENT = "99990100000005"  # no personal account: the fee's cash part goes through the gateway


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):
    with gateway_simulator(tmp_path_factory.mktemp("gw"), None) as s:
        yield s


@pytest.fixture
def svc(session_factory, sim):
    sim.reset()
    cipher = FieldCipher(os.urandom(32))
    demo.seed(session_factory, cipher)
    settlement = SettlementService(session_factory, builtin_policies(), cipher)
    gateway = HttpGateway(sim.url, "medpay-test", API_KEY, timeout=2)
    one = OneScanService(session_factory, settlement, gateway, cipher)
    token = sim.payer(100_000)
    one.bind_payment_method(RESIDENT, token)
    service = BookingService(session_factory, settlement, PersonService(session_factory, cipher), one,
                             HisNotices(session_factory, cipher))
    start = datetime.now(timezone.utc) + timedelta(days=1)
    service.publish(H1, [SlotInput("R1", "NK", "内科", "D1", "医生", "", start, start + timedelta(hours=2), 3,
                                   demo.REGISTRATION_FEE_ITEM, "10.00")])
    yield service, sim, token, session_factory
    gateway.close()


def _booking(factory, booking_id: str) -> BookingRow:
    with factory() as s:
        return s.get(BookingRow, booking_id)


def _taken(factory) -> int:
    with factory() as s:
        return s.get(BookingSlotRow, slot_id_for(H1, "R1")).taken


def test_a_crash_after_the_fee_was_captured_is_finished_as_booked(svc, monkeypatch) -> None:
    service, sim, token, factory = svc
    before = sim.payer_info(token)["balance_fen"]
    real = service._booked
    monkeypatch.setattr(service, "_booked", lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        service.book(RESIDENT, slot_id_for(H1, "R1"))
    stuck = service.bookings(RESIDENT)[0]
    assert stuck["state"] == "reserved" and stuck["mdtrt_id"]
    charged = before - sim.payer_info(token)["balance_fen"]
    assert charged > 0
    monkeypatch.setattr(service, "_booked", real)
    assert service.recover(grace=timedelta(0)) == [(stuck["booking_id"], "booked")]
    done = _booking(factory, stuck["booking_id"])
    assert done.state == "booked" and done.setl_id and _taken(factory) == 1
    assert before - sim.payer_info(token)["balance_fen"] == charged  # charged once
    assert service.recover(grace=timedelta(0)) == []  # nothing left to do


def test_a_crash_before_payment_gives_the_seat_back_and_leaves_no_visit(svc, monkeypatch) -> None:
    service, sim, token, factory = svc
    before = sim.payer_info(token)["balance_fen"]
    monkeypatch.setattr(service, "_pay", lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        service.book(RESIDENT, slot_id_for(H1, "R1"))
    stuck = service.bookings(RESIDENT)[0]
    assert stuck["state"] == "reserved" and stuck["mdtrt_id"] and _taken(factory) == 1
    assert service.recover(grace=timedelta(minutes=5)) == []  # too fresh: its own request may still be at work
    assert service.recover(grace=timedelta(0)) == [(stuck["booking_id"], "failed")]
    assert _booking(factory, stuck["booking_id"]).state == "failed" and _taken(factory) == 0
    with factory() as s:
        assert s.execute(select(VisitRow.status).where(VisitRow.mdtrt_id == stuck["mdtrt_id"])).scalar_one() == \
            "cancelled"
    assert sim.payer_info(token)["balance_fen"] == before
    monkeypatch.undo()
    again = service.book(RESIDENT, slot_id_for(H1, "R1"))  # the seat can be booked again, as a new booking
    assert again["state"] == "booked" and again["booking_id"] != stuck["booking_id"]


def test_an_interrupted_cancellation_is_completed_and_refunded(svc, monkeypatch) -> None:
    service, sim, token, factory = svc
    before = sim.payer_info(token)["balance_fen"]
    b = service.book(RESIDENT, slot_id_for(H1, "R1"))
    assert b["state"] == "booked" and sim.payer_info(token)["balance_fen"] < before
    real = service._undo_visit
    monkeypatch.setattr(service, "_undo_visit", lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        service.cancel(RESIDENT, b["booking_id"])
    assert _booking(factory, b["booking_id"]).state == "cancelling"
    assert sim.payer_info(token)["balance_fen"] == before  # the refund went out before the crash
    monkeypatch.setattr(service, "_undo_visit", real)
    assert service.recover(grace=timedelta(0)) == [(b["booking_id"], "cancelled")]
    assert _booking(factory, b["booking_id"]).state == "cancelled" and _taken(factory) == 0
    assert sim.payer_info(token)["balance_fen"] == before  # refunded once


NOW = datetime(2026, 12, 3, 2, 0, tzinfo=timezone.utc)


def _slot(**kw) -> SlotFacts:
    base = dict(status="open", starts_at=NOW + timedelta(hours=3), ends_at=NOW + timedelta(hours=5), capacity=2,
                taken=0, cancel_before_min=120)
    return SlotFacts(**{**base, **kw})


@pytest.mark.parametrize("facts,field", [
    (_slot(), None), (_slot(status="withdrawn"), "slot_id"), (_slot(starts_at=NOW), "slot_id"),
    (_slot(taken=2), "slot_id")])
def test_who_may_book(facts, field) -> None:
    refused = booking_refusal(facts, NOW)
    assert (refused[0] if refused else None) == field


def test_cancellation_closes_at_the_hospitals_time() -> None:
    assert cancel_refusal(_slot(), NOW + timedelta(minutes=59)) is None
    assert cancel_refusal(_slot(), NOW + timedelta(minutes=60))[0] == "booking_id"
    assert cancel_refusal(_slot(cancel_before_min=0), NOW + timedelta(hours=2, minutes=59)) is None


LATER = NOW + timedelta(days=1)


@pytest.mark.parametrize("args,field", [
    ((LATER, LATER, 1, 0), "endtime"), ((LATER, LATER + timedelta(days=2), 1, 0), "endtime"),
    ((NOW - timedelta(hours=2), NOW, 1, 0), "endtime"), ((NOW + timedelta(days=181), NOW + timedelta(days=182), 1, 0),
                                                          "begntime"),
    ((LATER, LATER + timedelta(hours=1), 0, 0), "capacity"), ((LATER, LATER + timedelta(hours=1), 501, 0), "capacity"),
    ((LATER, LATER + timedelta(hours=1), 5, -1), "cancel_before_minutes"),
    ((LATER, LATER + timedelta(hours=1), 5, 0, 6), "capacity"),
    ((LATER, LATER + timedelta(hours=1), 5, 0, 0, -1), "fee")])
def test_a_published_slot_is_checked(args, field) -> None:
    assert slot_problem(NOW, *args)[0] == field
    assert slot_problem(NOW, LATER, LATER + timedelta(hours=1), 5, 0) is None
