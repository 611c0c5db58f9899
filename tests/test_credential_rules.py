"""The pure rules of what a credential may do (``medpay.domain.credentials``): properties over every state."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from medpay.domain.credentials import Assurance, TokenState, Use, number_refusal, token_refusal

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
INSTITUTIONS = st.sampled_from(["H1", "H2"])
PERSONS = st.sampled_from(["P1", "P2"])
VISITS = st.sampled_from(["M1", "M2"])
tokens = st.builds(
    TokenState, psn_no=PERSONS, fixmedins_code=st.one_of(st.none(), INSTITUTIONS),
    expires_at=st.integers(-3600, 3600).map(lambda s: NOW + timedelta(seconds=s)),
    mdtrt_id=st.one_of(st.none(), VISITS),
    spent_at=st.one_of(st.none(), st.just(NOW - timedelta(minutes=1))))
uses = st.fixed_dictionaries({"fixmedins_code": INSTITUTIONS, "psn_no": st.one_of(st.none(), PERSONS),
                              "mdtrt_id": st.one_of(st.none(), VISITS), "opening": st.booleans()})


@given(tokens, uses)
def test_a_token_works_only_for_its_institution_person_and_visit_while_live(token: TokenState, use: dict) -> None:
    refusal = token_refusal(token, now=NOW, **use)
    allowed = (token.fixmedins_code in (None, use["fixmedins_code"])
               and use["psn_no"] in (None, token.psn_no)
               and token.spent_at is None
               and (token.expires_at > NOW if token.mdtrt_id is None
                    else not use["opening"] and use["mdtrt_id"] in (None, token.mdtrt_id)))
    assert (refusal is None) == allowed, (token, use, refusal)
    if refusal is not None:
        assert refusal.field == "mdtrt_cert_no" and refusal.message


@given(tokens, uses)
def test_a_spent_token_is_refused_for_everything(token: TokenState, use: dict) -> None:
    spent = TokenState(token.psn_no, token.fixmedins_code, token.expires_at, token.mdtrt_id, NOW)
    assert token_refusal(spent, now=NOW, **use) is not None


def test_a_bound_token_outlives_its_30_minutes() -> None:
    bound = TokenState("P1", "H1", NOW - timedelta(days=3), "M1", None)
    assert token_refusal(bound, now=NOW, fixmedins_code="H1", psn_no="P1", mdtrt_id="M1") is None
    assert token_refusal(bound, now=NOW, fixmedins_code="H1", opening=True).message.startswith(
        "e-certificate token already opened visit M1")


@given(st.sampled_from(list(Assurance)), st.sampled_from(["02", "03"]), st.booleans(), st.sampled_from(list(Use)))
def test_what_a_number_may_do(assurance: Assurance, cert_type: str, card_read: bool, use: Use) -> None:
    refusal = number_refusal(assurance, cert_type, card_read, use)
    allowed = card_read or assurance is Assurance.COUNTER or (assurance is Assurance.LOOKUP and use is Use.IDENTIFY)
    assert (refusal is None) == allowed
    if refusal is not None:
        assert refusal.field == "mdtrt_cert_type" and assurance.value in refusal.message


def test_assurance_names_its_values_when_refused() -> None:
    try:
        Assurance.parse("trusted")
    except ValueError as e:
        assert "counter, lookup, card" in str(e)
    else:
        raise AssertionError("an unknown assurance was accepted")
