"""The law of a stay's deposits at settlement (``domain.posting``), for any cash part and any deposits by channel: the
cash part is taken from the deposits first (counter, then the app's gateway deposits), the settlement's channel pays
the rest, and at the final settlement what is left of each deposit goes back to the channel that paid it — never to
another, never more than it holds; every fen is accounted for."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

from hypothesis import given, strategies as st

from medpay.domain.posting import DEPOSIT_CHANNELS, channel_payer, deposit_account, institution_cash, settlement_posting

fen = st.integers(min_value=0, max_value=10_000_000)


def _adj(cash: int) -> SimpleNamespace:
    return SimpleNamespace(tiers=(), account_payments=(), amounts={"psn_cash_pay": cash})


@given(cash=fen, counter=fen, gateway=fen, final=st.booleans(), channel=st.sampled_from(["counter", "gateway"]))
def test_deposits_pay_first_and_what_is_left_goes_back_the_way_it_came(cash, counter, gateway, final, channel) -> None:
    held = {"counter": counter, "gateway": gateway}
    p = settlement_posting("S1", "999901", "H1", _adj(cash), channel, held, release_deposit=final, mdtrt_id="M1")
    net: dict[str, int] = defaultdict(int)
    for t in p.transfers:
        assert t.amount > 0
        net[t.debit_account_id] -= t.amount
        net[t.credit_account_id] += t.amount
    assert sum(net.values()) == 0
    assert net[institution_cash("H1").id] == cash  # the institution gets the whole cash part
    used = min(cash, counter + gateway)
    assert p.deposit_applied == used and -sum(net[deposit_account("M1", c).id] for c in DEPOSIT_CHANNELS) == (
        counter + gateway if final else used)
    for c in DEPOSIT_CHANNELS:  # no deposit pays out more than it holds
        assert -net[deposit_account("M1", c).id] <= held[c]
    counter_used = min(cash, counter)
    assert -net[deposit_account("M1", "counter").id] == (counter if final else counter_used)
    refunds = {c: sum(t.amount for t in p.transfers if t.code == "deposit_refund"
                      and t.credit_account_id == channel_payer(c).id) for c in DEPOSIT_CHANNELS}
    if final:
        assert refunds == {"counter": counter - counter_used, "gateway": gateway - (used - counter_used)}
        assert p.deposit_refund == counter + gateway - used
    else:
        assert refunds == {"counter": 0, "gateway": 0} and p.deposit_refund == 0
    from_channel = sum(t.amount for t in p.transfers if t.code == "cash")
    assert from_channel == cash - used
