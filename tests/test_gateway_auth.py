"""Gateway authentication (x-tif-* headers, nonce replay), SM3withSM2 body signatures, 9001/9002 sign-in."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.gateway_tables import GatewayNonceRow, SignInRow
from medpay.adapters.sm2 import generate_keypair, normalize_public_key, sign_sm2, verify_sm2
from medpay.domain.gateway_signature import HEADERS, canonical_body, compute_signature, sign_headers
from medpay.services.directory import Directory
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound
from medpay.services.gateway_auth import AuthError, GatewayAuth
from medpay.services.sign_in import SignInService

T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=timezone.utc)
CODE_A, PAAS_A, TOKEN_A = "H99990100001", "paas_a", "token-of-a-0123456789"
CODE_B, PAAS_B, TOKEN_B = "H99990100002", "paas_b", "token-of-b-9876543210"


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(session_factory, clock) -> GatewayAuth:
    cipher = FieldCipher(os.urandom(32))
    directory = Directory(session_factory, cipher)
    directory.add_region("999901", "演示区")
    directory.add_institution(CODE_A, "演示医院甲", "999901", "3", PAAS_A, TOKEN_A)
    directory.add_institution(CODE_B, "演示医院乙", "999901", "2", PAAS_B, TOKEN_B)
    directory.add_institution("H99990100003", "无网关凭证医院", "999901", "1")
    return GatewayAuth(session_factory, cipher, clock=clock, skew_s=300)


def nonce_count(factory) -> int:
    with factory() as s:
        return s.execute(select(func.count()).select_from(GatewayNonceRow)).scalar_one()


def refused(auth: GatewayAuth, headers: dict, field: str, words: str = "") -> AuthError:
    with pytest.raises(AuthError) as info:
        auth.verify(headers)
    assert info.value.field == field
    assert info.value.status == 401
    assert words in info.value.message
    return info.value


# -- pure signature ------------------------------------------------------------------------------------------


def test_signature_formula_and_headers() -> None:
    import hashlib

    h = sign_headers("p", "tok", now=1700000000, nonce="n-123456")
    assert h == {
        "x-tif-paasid": "p",
        "x-tif-timestamp": "1700000000",
        "x-tif-nonce": "n-123456",
        "x-tif-signature": hashlib.sha256(b"1700000000tokn-1234561700000000").hexdigest(),
    }
    assert compute_signature("1700000000", "tok", "n-123456") == h["x-tif-signature"]
    assert sign_headers("p", "tok", now=datetime.fromtimestamp(1700000000, timezone.utc), nonce="n-123456") == h
    fresh = sign_headers("p", "tok")
    assert len(fresh["x-tif-nonce"]) == 36 and fresh["x-tif-nonce"] != sign_headers("p", "tok")["x-tif-nonce"]
    with pytest.raises(ValueError):
        sign_headers("p", "tok", now=datetime(2026, 1, 1))


# -- x-tif-* headers -----------------------------------------------------------------------------------------


def test_good_signature_passes_and_names_the_institution(auth, session_factory) -> None:
    assert auth.verify(sign_headers(PAAS_A, TOKEN_A, now=T0)) == CODE_A
    assert auth.verify(sign_headers(PAAS_B, TOKEN_B, now=T0)) == CODE_B
    assert nonce_count(session_factory) == 2


def test_header_names_are_case_insensitive_and_uppercase_hex_is_accepted(auth) -> None:
    h = sign_headers(PAAS_A, TOKEN_A, now=T0)
    mixed = {name.upper(): value for name, value in h.items()}
    mixed["X-TIF-SIGNATURE"] = h["x-tif-signature"].upper()
    assert auth.verify(mixed) == CODE_A


@pytest.mark.parametrize("missing", HEADERS)
def test_each_missing_header_is_named(auth, session_factory, missing) -> None:
    h = sign_headers(PAAS_A, TOKEN_A, now=T0)
    del h[missing]
    refused(auth, h, missing, "missing")
    h[missing] = "   "
    refused(auth, h, missing, "missing")
    assert nonce_count(session_factory) == 0


@pytest.mark.parametrize(
    ("header", "value", "words"),
    [
        ("x-tif-timestamp", "17000000x0", "digits"),
        ("x-tif-timestamp", "-1700000000", "digits"),
        ("x-tif-timestamp", "1.7e9", "digits"),
        ("x-tif-timestamp", str(int(T0.timestamp()) * 1000), "milliseconds"),
        ("x-tif-nonce", "n" * 65, "1 to 64"),
        ("x-tif-nonce", "nonce with spaces", "printable"),
        ("x-tif-nonce", "nonce\u00e9", "printable ASCII"),
        ("x-tif-signature", "abc", "hex"),
        ("x-tif-signature", "z" * 64, "hex"),
        ("x-tif-paasid", "p" * 65, "printable"),
    ],
)
def test_mistyped_headers_are_named(auth, session_factory, header, value, words) -> None:
    h = sign_headers(PAAS_A, TOKEN_A, now=T0)
    h[header] = value
    refused(auth, h, header, words)
    assert nonce_count(session_factory) == 0


def test_header_sent_twice_with_different_values_is_refused(auth) -> None:
    h = sign_headers(PAAS_A, TOKEN_A, now=T0)
    h["X-Tif-Nonce"] = "another-nonce-value"
    refused(auth, h, "x-tif-nonce", "more than once")


def test_bad_signature_is_refused_and_writes_nothing(auth, session_factory) -> None:
    h = sign_headers(PAAS_A, TOKEN_A, now=T0)
    h["x-tif-signature"] = compute_signature(h["x-tif-timestamp"], "wrong-token", h["x-tif-nonce"])
    refused(auth, h, "x-tif-signature", "does not match")
    # another institution's token under this paasid
    refused(auth, sign_headers(PAAS_A, TOKEN_B, now=T0), "x-tif-signature")
    # the signature covers the nonce and the timestamp
    good = sign_headers(PAAS_A, TOKEN_A, now=T0, nonce="nonce-000001")
    refused(auth, {**good, "x-tif-nonce": "nonce-000002"}, "x-tif-signature")
    refused(auth, {**good, "x-tif-timestamp": str(int(T0.timestamp()) + 1)}, "x-tif-signature")
    assert nonce_count(session_factory) == 0
    assert auth.verify(good) == CODE_A  # a refused attempt did not burn the nonce


def test_unknown_paasid_and_institution_without_token(auth, session_factory) -> None:
    # an unknown paasid answers like a wrong signature: which paasids exist can't be probed
    refused(auth, sign_headers("no-such-paasid", TOKEN_A, now=T0), "x-tif-signature", "signature does not match")
    refused(auth, sign_headers("", TOKEN_A, now=T0), "x-tif-paasid", "missing")
    assert nonce_count(session_factory) == 0


@pytest.mark.parametrize("offset", [-301, 301, -86400, 86400])
def test_stale_timestamp_on_both_sides(auth, session_factory, offset) -> None:
    h = sign_headers(PAAS_A, TOKEN_A, now=T0 + timedelta(seconds=offset))
    refused(auth, h, "x-tif-timestamp", "stale")
    assert nonce_count(session_factory) == 0


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_at_the_edge_of_the_window_passes(auth, offset) -> None:
    assert auth.verify(sign_headers(PAAS_A, TOKEN_A, now=T0 + timedelta(seconds=offset))) == CODE_A


def test_replayed_nonce_is_refused_and_the_first_stays_valid(auth, session_factory, clock) -> None:
    h = sign_headers(PAAS_A, TOKEN_A, now=T0, nonce="11111111-2222-3333-4444-555555555555")
    assert auth.verify(h) == CODE_A
    refused(auth, h, "x-tif-nonce", "already used")
    clock.now = T0 + timedelta(seconds=299)
    refused(auth, h, "x-tif-nonce", "already used")
    # nonces are per paasid
    assert auth.verify(sign_headers(PAAS_B, TOKEN_B, now=T0, nonce=h["x-tif-nonce"])) == CODE_B
    with session_factory() as s:
        rows = s.execute(select(GatewayNonceRow)).scalars().all()
    assert {(r.paasid, r.ts, r.nonce) for r in rows} == {(PAAS_A, int(T0.timestamp()), h["x-tif-nonce"]),
                                                         (PAAS_B, int(T0.timestamp()), h["x-tif-nonce"])}
    assert all(r.seen_at.tzinfo is not None for r in rows)


@pytest.mark.parametrize("nonce", ["7", "a1B", "x9Kq2Z", "0123456789"])
def test_short_nonces_are_replay_protected_by_timestamp_and_nonce(auth, session_factory, clock, nonce) -> None:
    """Real HIS send 1–10 digits or 6 letters and digits (reference §8). Both the nonce and the timestamp are signed:
    a replay repeats both and is refused; an honest request that draws the same short nonce in another second
    passes."""
    h = sign_headers(PAAS_A, TOKEN_A, now=T0, nonce=nonce)
    assert auth.verify(h) == CODE_A
    refused(auth, h, "x-tif-nonce", "already used")
    assert auth.verify(sign_headers(PAAS_A, TOKEN_A, now=T0 + timedelta(seconds=1), nonce=nonce)) == CODE_A
    clock.now = T0 + timedelta(seconds=300)
    refused(auth, h, "x-tif-nonce", "already used")  # still inside the window: still remembered
    assert nonce_count(session_factory) == 2


def test_an_empty_nonce_is_missing(auth) -> None:
    refused(auth, {**sign_headers(PAAS_A, TOKEN_A, now=T0, nonce=""), "x-tif-nonce": ""}, "x-tif-nonce", "missing")


def test_same_nonce_from_four_threads_exactly_one_accepted(auth, session_factory) -> None:
    n = 4
    h = sign_headers(PAAS_A, TOKEN_A, now=T0)
    barrier = threading.Barrier(n)
    accepted: list[str] = []
    refusals: list[AuthError] = []
    others: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            code = auth.verify(h)
            with lock:
                accepted.append(code)
        except AuthError as e:
            with lock:
                refusals.append(e)
        except BaseException as e:  # noqa: BLE001 - reported below
            with lock:
                others.append(e)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not others, others
    assert accepted == [CODE_A]
    assert len(refusals) == n - 1 and all(e.field == "x-tif-nonce" for e in refusals)
    assert nonce_count(session_factory) == 1


def test_distinct_nonces_from_threads_are_all_accepted(auth, session_factory) -> None:
    n = 8
    barrier = threading.Barrier(n)
    results: list[object] = []

    def run(i: int) -> None:
        h = sign_headers(PAAS_A if i % 2 else PAAS_B, TOKEN_A if i % 2 else TOKEN_B, now=T0, nonce=f"nonce-{i:08d}")
        barrier.wait()
        try:
            results.append(auth.verify(h))
        except BaseException as e:  # noqa: BLE001
            results.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == sorted([CODE_A, CODE_B] * (n // 2))
    assert nonce_count(session_factory) == n


def test_purge_keeps_nonces_that_could_still_be_replayed(auth, session_factory, clock) -> None:
    old = sign_headers(PAAS_A, TOKEN_A, now=T0, nonce="nonce-old-0001")
    assert auth.verify(old) == CODE_A
    clock.now = T0 + timedelta(seconds=400)
    recent = sign_headers(PAAS_A, TOKEN_A, now=clock.now, nonce="nonce-new-0001")
    assert auth.verify(recent) == CODE_A

    clock.now = T0 + timedelta(seconds=600)  # exactly 2×skew after the first: not yet older
    assert auth.purge_nonces() == 0
    # a cutoff later than now − 2×skew is clamped: nothing replayable is forgotten
    assert auth.purge_nonces(older_than=clock.now) == 0
    assert nonce_count(session_factory) == 2

    clock.now = T0 + timedelta(seconds=601)
    assert auth.purge_nonces() == 1
    assert nonce_count(session_factory) == 1
    # the purged request is stale by now, so forgetting its nonce opens no replay
    refused(auth, old, "x-tif-timestamp", "stale")
    refused(auth, recent, "x-tif-nonce", "already used")
    assert auth.purge_nonces(older_than=T0) == 0


# -- SM3withSM2 ----------------------------------------------------------------------------------------------


def test_sm2_round_trip_and_tampering() -> None:
    import base64

    private, public = generate_keypair()
    body = '{"infno":"2207","input":{"data":{"medfee_sumamt":9}},"fixmedins_name":"医院"}'.encode()
    sig = sign_sm2(private, body)
    assert len(sig) == 128 and verify_sm2(public, body, sig)
    assert verify_sm2("04" + public, body, sig.upper())  # 04-prefixed key, uppercase hex
    assert verify_sm2(public, body, base64.b64encode(bytes.fromhex(sig)).decode())
    assert not verify_sm2(public, body.replace(b"9", b"8"), sig)
    assert not verify_sm2(public, body + b" ", sig)
    assert not verify_sm2(generate_keypair()[1], body, sig)  # another key
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert not verify_sm2(public, body, flipped)
    for junk in ("", "zz", "00" * 64, "ff" * 64, "not base64!", "A" * 2000):
        assert not verify_sm2(public, body, junk)
    with pytest.raises(ValueError):
        normalize_public_key("04" + "00" * 64)  # not on the curve
    with pytest.raises(ValueError):
        verify_sm2("abc", body, sig)


def test_sm2_der_signature_is_accepted() -> None:
    import base64

    from Cryptodome.Util.asn1 import DerSequence

    private, public = generate_keypair()
    body = b"hello"
    sig = sign_sm2(private, body)
    der = DerSequence([int(sig[:64], 16), int(sig[64:], 16)]).encode()
    assert verify_sm2(public, body, der.hex())
    assert verify_sm2(public, body, base64.b64encode(der).decode())


def test_envelope_sm2_signature(auth) -> None:
    private, public = generate_keypair()
    envelope = {"infno": "9001", "msgid": "H99990100001202611230800000001", "signtype": "SM2",
                "fixmedins_code": CODE_A, "input": {"signIn": {"opter_no": "1022", "mac": "m", "ip": "1.2.3.4"}}}
    envelope["cainfo"] = sign_sm2(private, canonical_body(envelope))
    # no key registered yet
    with pytest.raises(AuthError) as info:
        auth.verify_body(CODE_A, envelope)
    assert info.value.field == "signtype"

    auth.set_sm2_public_key(CODE_A, "04" + public)
    auth.verify_body(CODE_A, envelope)
    # key order and whitespace of the received JSON do not matter: the canonical form does
    auth.verify_body(CODE_A, dict(reversed(list(envelope.items()))))

    tampered = {**envelope, "input": {"signIn": {"opter_no": "9999", "mac": "m", "ip": "1.2.3.4"}}}
    with pytest.raises(AuthError) as info:
        auth.verify_body(CODE_A, tampered)
    assert info.value.field == "cainfo"
    with pytest.raises(AuthError) as info:
        auth.verify_body(CODE_A, {**envelope, "cainfo": ""})
    assert info.value.field == "cainfo"
    # the key is per institution: B has none, and A's key does not vouch for B
    with pytest.raises(AuthError):
        auth.verify_body(CODE_B, envelope)
    # with a key registered the signature is mandatory: it can't be stripped or swapped for another signtype
    for signtype in ("", "PRCSSC", None):
        with pytest.raises(AuthError) as info:
            auth.verify_body(CODE_A, {**envelope, "signtype": signtype, "cainfo": ""})
        assert info.value.field == "signtype"
    # an institution without a key: other signtypes leave cainfo alone (河北 puts an encrypted password there)
    auth.verify_body(CODE_B, {**envelope, "signtype": "", "cainfo": "whatever"})
    auth.verify_body(CODE_B, {**envelope, "signtype": "PRCSSC", "cainfo": "whatever"})

    with pytest.raises(Invalid):
        auth.set_sm2_public_key(CODE_A, "04" + "11" * 64)
    with pytest.raises(NotFound):
        auth.set_sm2_public_key("H00000000000", public)
    auth.set_sm2_public_key(CODE_A, None)
    with pytest.raises(AuthError):
        auth.verify_body(CODE_A, envelope)
    auth.verify_body(CODE_A, {**envelope, "signtype": "", "cainfo": ""})  # removed: plain bodies pass again


# -- 9001 / 9002 ---------------------------------------------------------------------------------------------


def test_sign_in_and_sign_out_rules(auth, session_factory, clock) -> None:
    svc = SignInService(session_factory, clock)
    sign_no, sign_time = svc.sign_in(CODE_A, "1022", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    assert len(sign_no) == 30 and sign_no.isdigit() and sign_no.startswith("20261123080000")
    assert sign_time == T0
    assert svc.check(CODE_A, sign_no)
    assert not svc.check(CODE_B, sign_no)
    assert not svc.check(CODE_A, "0" * 30)

    # each sign-in gets its own number
    others = {svc.sign_in(CODE_A, "1022", "m", "ip")[0] for _ in range(20)}
    assert len(others) == 20 and sign_no not in others

    # another institution can neither sign it out nor learn that it exists
    with pytest.raises(NotFound) as foreign:
        svc.sign_out(CODE_B, sign_no, "1022")
    with pytest.raises(NotFound) as unknown:
        svc.sign_out(CODE_B, "1" * 30, "1022")
    assert foreign.value.field == unknown.value.field == "sign_no"
    assert foreign.value.message.replace(sign_no, "X") == unknown.value.message.replace("1" * 30, "X")
    # another operator of the same institution
    with pytest.raises(Forbidden):
        svc.sign_out(CODE_A, sign_no, "2033")
    assert svc.check(CODE_A, sign_no)

    clock.now = T0 + timedelta(hours=8)
    assert svc.sign_out(CODE_A, sign_no, "1022") == clock.now
    assert not svc.check(CODE_A, sign_no)
    with pytest.raises(Conflict):
        svc.sign_out(CODE_A, sign_no, "1022")
    with session_factory() as s:
        row = s.get(SignInRow, sign_no)
    assert (row.fixmedins_code, row.opter, row.mac, row.ip) == (CODE_A, "1022", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    assert row.sign_out_time == T0 + timedelta(hours=8)


def test_sign_in_input_is_validated(auth, session_factory, clock) -> None:
    svc = SignInService(session_factory, clock)
    with pytest.raises(NotFound) as info:
        svc.sign_in("H00000000000", "1022", "m", "ip")
    assert info.value.field == "fixmedins_code"
    for field, args in (("opter", ("", "m", "ip")), ("opter", (None, "m", "ip")), ("mac", ("1022", "m" * 65, "ip")),
                        ("ip", ("1022", "m", 42)), ("opter", ("x" * 31, "m", "ip")), ("opter", ("a\nb", "m", "ip"))):
        with pytest.raises(Invalid) as info:
            svc.sign_in(CODE_A, *args)
        assert info.value.field == field
    with session_factory() as s:
        assert s.execute(select(func.count()).select_from(SignInRow)).scalar_one() == 0
    # mac and ip may be empty or absent; the opter of a sign-out is checked only when given
    sign_no, _ = svc.sign_in(CODE_A, "1022", "", None)
    with pytest.raises(Invalid):
        svc.sign_out(CODE_A, "", "1022")
    assert svc.sign_out(CODE_A, sign_no, "") == T0
    with pytest.raises(Conflict):
        svc.sign_out(CODE_A, sign_no)


def test_concurrent_sign_outs_only_one_wins(auth, session_factory, clock) -> None:
    svc = SignInService(session_factory, clock)
    sign_no, _ = svc.sign_in(CODE_A, "1022", "m", "ip")
    n = 4
    barrier = threading.Barrier(n)
    outcomes: list[object] = []

    def run() -> None:
        barrier.wait()
        try:
            outcomes.append(svc.sign_out(CODE_A, sign_no, "1022"))
        except Exception as e:  # noqa: BLE001
            outcomes.append(e)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(isinstance(o, datetime) for o in outcomes) == 1
    assert sum(isinstance(o, Conflict) for o in outcomes) == n - 1


def test_a_new_token_works_at_once_and_a_withdrawn_one_stops_within_the_cache_time(session_factory, clock) -> None:
    """Tokens are cached (no database read per request); a signature that fails against the cached token is
    checked against a fresh read, so a rotated token works at once; a withdrawn one works until its cached
    copy is ``token_ttl_s`` old."""
    cipher = FieldCipher(os.urandom(32))
    directory = Directory(session_factory, cipher)
    directory.add_region("999901", "演示区")
    directory.add_institution(CODE_A, "演示医院甲", "999901", "3", PAAS_A, TOKEN_A)
    seconds = [1000.0]
    auth = GatewayAuth(session_factory, cipher, clock=clock, skew_s=300, token_ttl_s=10, monotonic=lambda: seconds[0])
    assert auth.verify(sign_headers(PAAS_A, TOKEN_A, now=T0)) == CODE_A  # read and cached at t=1000
    directory.add_institution(CODE_A, "演示医院甲", "999901", "3", PAAS_A, "rotated-token-of-a")
    assert auth.verify(sign_headers(PAAS_A, "rotated-token-of-a", now=T0)) == CODE_A  # a miss re-reads at once
    refused(auth, sign_headers(PAAS_A, TOKEN_A, now=T0), "x-tif-signature")  # the re-read replaced the old one
    directory.add_institution(CODE_A, "演示医院甲", "999901", "3", PAAS_A, "third-token-of-a")
    seconds[0] += 9.9
    assert auth.verify(sign_headers(PAAS_A, "rotated-token-of-a", now=T0)) == CODE_A  # withdrawn, still cached
    seconds[0] += 0.2  # the cached copy is now older than token_ttl_s
    refused(auth, sign_headers(PAAS_A, "rotated-token-of-a", now=T0), "x-tif-signature")
    assert auth.verify(sign_headers(PAAS_A, "third-token-of-a", now=T0)) == CODE_A
