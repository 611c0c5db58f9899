"""A HIS-side client for the NHSA-style institution interface (定点医药机构接口规范).

What a hospital's HIS adapter does, in Python: it builds the request envelope (reference §1.1), signs
each HTTP request with the gateway headers (§1.3), posts JSON to the single ``callService`` endpoint or
to the per-transaction path, and reads the response envelope (§1.2) whether ``infcode`` is ``0`` or
``"0"``. Used by the tests, the demo, the benchmark and ``medpay his send``.

Delivery and outcome
--------------------
* **Retries keep the msgid.** A request is serialised once; on a timeout, a connection error, an HTTP
  5xx, an unreadable 2xx body or ``infcode == -1`` the *same bytes* (same ``msgid``, same ``inf_time``)
  are sent again, each attempt with a fresh ``x-tif-nonce`` and ``x-tif-timestamp``. An exactly-once
  server answers a repeated msgid with its first response, so retrying never settles twice.
  ``retries`` counts the attempts after the first.
* ``infcode == 0`` → :class:`Response` with ``ok`` true.
* ``infcode == -2`` (or any other non-zero code except -1) is a business refusal: nothing was done.
  :meth:`HisClient.call` raises :class:`HisBusinessError` with the response attached (``check=False``
  returns it instead).
* ``infcode == -1`` (a system fault on the insurance side) after all retries raises
  :class:`HisSystemError`; no answer at all raises :class:`HisTransportError`. Both derive from
  :class:`HisOutcomeUnknown`: the transaction may or may not have taken effect.

Reversal on unknown outcome (冲正, 2601)
----------------------------------------
:meth:`HisClient.settle_with_reversal` sends a reversible transaction (2207, 2208, 2304, 2305, 2401). If
its outcome is unknown after all retries, it sends 2601 ``data{psn_no, omsgid, oinfno}`` (a new msgid of
its own, retried the same way) and raises :class:`OutcomeReversed`: the original transaction has *no
effect* — it either never arrived or has been undone — and the HIS may start over with a new msgid. If
the reversal's own outcome is unknown or refused, :class:`ReversalFailed` is raised carrying ``omsgid``
and ``oinfno``; the HIS must keep them and call :meth:`HisClient.reverse` again later (2601 is safe to
repeat) or settle the question at reconciliation (3202/5203). A business refusal (-2) of the original is
definitive and raised as :class:`HisBusinessError`, without a reversal. Non-reversible transactions are
sent as by :meth:`HisClient.call`.

Amounts are given in yuan (``str``, ``Decimal``, ``int`` or ``float``) and sent as JSON numbers, as the
interface does; the convenience methods refuse an amount with more than two decimals. Logs never show
full ID/card numbers (``certno``, ``mdtrt_cert_no``, ``cardno`` … are masked with ``mask_certno``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Optional


from medpay.his_transport import HttpResult, HttpTransport, Transport, TransportFailure, TransportTimeout
from medpay.nhsa_paths import CALL_SERVICE, PATHS
from medpay.adapters.crypto import mask_certno, mask_name
from medpay.money import YuanInput, parse_yuan, to_decimal

from medpay.adapters.sm2 import sign_sm2
from medpay.domain.gateway_signature import SIGNATURE_FIELD, canonical_body, sign_headers

log = logging.getLogger("medpay.his_client")

# one table of paths for client and server
CALL_SERVICE_PATH = CALL_SERVICE
PATH_STYLES = ("call_service", "named", "infno")

# 2601 may reverse only these (reference §2, OH comment)
REVERSIBLE = frozenset({"2207", "2208", "2304", "2305", "2401"})

# transactions whose receiver switches to LXXT for 离休 (insutype 340) persons (reference §1.1, OH)
_LXXT_INFNOS = frozenset({"2201", "2206", "2207", "2303", "2304", "2401", "2402", "2501", "2503", "2001"})

ENVELOPE_FIELDS = (
    "infno", "msgid", "mdtrtarea_admvs", "insuplc_admdvs", "recer_sys_code", "dev_no", "dev_safe_info",
    "cainfo", "signtype", "infver", "opter_type", "opter", "opter_name", "inf_time", "fixmedins_code",
    "fixmedins_name", "sign_no", "input",
)

_MONEY_FIELDS = frozenset({
    "medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
    "det_item_fee_sumamt", "pric_uplmt_amt",
})
_QUANTITY_FIELDS = frozenset({"cnt", "pric"})  # (16,4) and (16,6): more decimals allowed
_ID_FIELDS = frozenset({"certno", "mdtrt_cert_no", "cardno", "card_sn", "ecToken", "idNo"})
_NAME_FIELDS = frozenset({"psn_name", "userName"})


# ---------------------------------------------------------------------------------------------- errors

@dataclass(frozen=True)
class Response:
    """A response envelope. ``infcode`` is an int even when the server sent ``"0"``. ``output`` is an object, or a
    list where the transaction answers one (5204)."""

    infcode: int
    err_msg: Optional[str]
    output: Any
    inf_refmsgid: Optional[str]
    raw: dict[str, Any]
    msgid: str = ""  # the request's msgid
    infno: str = ""
    http_status: int = 200
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.infcode == 0


class HisError(Exception):
    """Anything the client could not turn into a successful response."""


class HisResponseError(HisError):
    """The server answered with a non-zero ``infcode``; ``response`` holds the envelope."""

    def __init__(self, err_msg: Optional[str], infcode: int, response: Optional[Response] = None):
        super().__init__(f"infcode {infcode}: {err_msg}")
        self.err_msg = err_msg
        self.infcode = infcode
        self.response = response


class HisBusinessError(HisResponseError):
    """infcode -2 (or another non-zero code but -1): refused, nothing done. Show ``err_msg``."""


class HisHTTPError(HisError):
    """A definitive HTTP refusal without a response envelope (e.g. 401 bad signature)."""

    def __init__(self, status: int, body: str, msgid: str = "", infno: str = ""):
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status
        self.body = body
        self.msgid = msgid
        self.infno = infno


class HisOutcomeUnknown(HisError):
    """After all retries it is unknown whether the transaction took effect (reverse it if reversible)."""

    msgid: str = ""
    infno: str = ""


class HisSystemError(HisResponseError, HisOutcomeUnknown):
    """infcode -1: a system fault on the insurance side (network/host/database)."""

    def __init__(self, err_msg: Optional[str], infcode: int, response: Optional[Response] = None):
        super().__init__(err_msg, infcode, response)
        if response is not None:
            self.msgid, self.infno = response.msgid, response.infno


class HisTransportError(HisOutcomeUnknown):
    """No usable answer after all attempts: timeouts, connection errors, 5xx, unreadable bodies."""

    def __init__(self, message: str, msgid: str, infno: str, attempts: int, status: Optional[int] = None):
        super().__init__(f"{infno} msgid {msgid}: {message} (after {attempts} attempt(s))")
        self.msgid = msgid
        self.infno = infno
        self.attempts = attempts
        self.status = status


class OutcomeReversed(HisError):
    """The original's outcome was unknown and 2601 reversed it: it has no effect; start over if needed."""

    def __init__(self, omsgid: str, oinfno: str, reversal: Response, cause: HisOutcomeUnknown):
        super().__init__(f"{oinfno} msgid {omsgid}: outcome unknown ({cause}); reversed by 2601 "
                         f"msgid {reversal.msgid}")
        self.omsgid = omsgid
        self.oinfno = oinfno
        self.reversal = reversal
        self.cause = cause


class ReversalFailed(HisOutcomeUnknown):
    """Outcome unknown and the 2601 reversal did not get through: keep omsgid/oinfno and reverse later."""

    def __init__(self, omsgid: str, oinfno: str, psn_no: str, cause: HisOutcomeUnknown, reversal_error: HisError):
        super().__init__(f"{oinfno} msgid {omsgid}: outcome unknown ({cause}) and reversal failed "
                         f"({reversal_error}); call reverse({omsgid!r}, {oinfno!r}, psn_no) again")
        self.msgid = self.omsgid = omsgid
        self.infno = self.oinfno = oinfno
        self.psn_no = psn_no
        self.cause = cause
        self.reversal_error = reversal_error


# ---------------------------------------------------------------------------------------------- helpers

class _MsgidSequence:
    """The msgid sequence of one institution (clock and lane) in this process: two clients of one hospital must
    not draw the same msgid in the same second — the platform would refuse the second as another request's.

    Lane k of n draws only the 4-digit numbers ≡ k (mod n): n processes of one hospital, each given its own lane,
    never meet, at 10,000 ÷ n msgids per second each."""

    _all: dict[tuple[str, Callable[[], datetime], tuple[int, int]], "_MsgidSequence"] = {}
    _all_lock = threading.Lock()

    def __init__(self, prefix: str, clock: Callable[[], datetime], lane: tuple[int, int] = (0, 1)):
        self.prefix, self.clock = prefix, clock
        self.lane, self.lanes = lane
        self.slots = 10000 // self.lanes
        self.lock = threading.Lock()
        self.second: Optional[datetime] = None
        self.slot = int.from_bytes(uuid.uuid4().bytes[:2], "big") % self.slots  # random start: processes differ
        self.used = 0

    @classmethod
    def of(cls, prefix: str, clock: Callable[[], datetime], lane: tuple[int, int] = (0, 1)) -> "_MsgidSequence":
        k, n = lane
        if not (isinstance(k, int) and isinstance(n, int) and 1 <= n <= 10000 and 0 <= k < n):
            raise ValueError(f"msgid_lane must be (k, n) with 0 <= k < n <= 10000, got {lane!r}")
        with cls._all_lock:
            found = cls._all.get((prefix, clock, lane))
            if found is None:
                found = cls._all[(prefix, clock, lane)] = cls(prefix, clock, lane)
            return found

    def next(self) -> str:
        with self.lock:
            now = self.clock().replace(microsecond=0, tzinfo=None)
            if self.second is None or now > self.second:
                self.second, self.used = now, 0
            elif self.used >= self.slots:
                self.second += timedelta(seconds=1)
                self.used = 0
            self.slot = (self.slot + 1) % self.slots
            self.used += 1
            return f"{self.prefix}{self.second:%Y%m%d%H%M%S}{self.slot * self.lanes + self.lane:04d}"


def gateway_headers(paasid: str, token: str, now: int, nonce: str) -> dict[str, str]:
    """x-tif-paasid/timestamp/nonce/signature for one attempt (``medpay.domain.gateway_signature``)."""
    return sign_headers(paasid, token, now=now, nonce=nonce)


def parse_infcode(value: Any) -> int:
    """0, "0", " -2 ", 0.0 → int; anything else raises ValueError."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"infcode must be a number, got {value!r}")
    if isinstance(value, int):
        return value
    d = to_decimal(value, "infcode")
    if d != d.to_integral_value():
        raise ValueError(f"infcode must be an integer, got {value!r}")
    return int(d)


def _json_number(d: Decimal) -> int | float | str:
    if d == d.to_integral_value() and abs(d) < 10**15:
        return int(d)
    f = float(d)
    return f if Decimal(repr(f)) == d else str(d)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return _json_number(obj)
    if isinstance(obj, Mapping):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _amounts(obj: Any, where: str = "input") -> Any:
    """Validate yuan amounts by field name (str/Decimal/number → Decimal), recursively."""
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            path = f"{where}.{k}"
            if v is None or v == "" or isinstance(v, bool):
                out[k] = v
            elif k in _MONEY_FIELDS:
                parse_yuan(v, path, allow_negative=True)  # at most two decimals
                out[k] = to_decimal(v, path)
            elif k in _QUANTITY_FIELDS:
                out[k] = to_decimal(v, path)
            else:
                out[k] = _amounts(v, path)
        return out
    if isinstance(obj, (list, tuple)):
        return [_amounts(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def mask_personal(obj: Any) -> Any:
    """A copy fit for logs: ID/card numbers and names masked, ``cainfo`` (may carry a password) hidden."""
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if k in _ID_FIELDS and isinstance(v, str) and v:
                out[k] = mask_certno(v)
            elif k in _NAME_FIELDS and isinstance(v, str):
                out[k] = mask_name(v)
            elif k == "cainfo" and v:
                out[k] = "***"
            else:
                out[k] = mask_personal(v)
        return out
    if isinstance(obj, list):
        return [mask_personal(v) for v in obj]
    return obj


def _find(obj: Any, key: str) -> Any:
    """First value of ``key`` in the top two levels of an input (``data``, ``mdtrtinfo``, ``feedetail[0]``…)."""
    if not isinstance(obj, Mapping):
        return None
    if obj.get(key) not in (None, ""):
        return obj[key]
    for v in obj.values():
        if isinstance(v, list) and v:
            v = v[0]
        if isinstance(v, Mapping) and v.get(key) not in (None, ""):
            return v[key]
    return None


# ---------------------------------------------------------------------------------------------- client

class HisClient:
    """One institution's connection to the platform. Thread-safe; use as a context manager or ``close()``.

    ``clock`` (returning a ``datetime``; naive = local time) drives ``msgid``, ``inf_time`` and
    ``x-tif-timestamp`` — tests use it to forge stale requests. ``transport`` carries the requests
    (``medpay.his_transport``: by default HTTP to ``base_url``; tests pass a scripted one). ``path_style``: where
    each transaction is posted under ``base_url`` — ``call_service`` (the single endpoint), ``named`` (the
    transaction's named path in :data:`PATHS`, else the single endpoint) or ``infno`` (``base_url`` + ``/`` + infno,
    as many HIS do with a base such as ``…/callService`` or ``…/hsa/hgs``). ``nonce``: makes each request's
    ``x-tif-nonce`` (default 32 hex digits; real HIS send as few as one digit). With ``sm2_private_key`` (hex) every envelope is signed SM3withSM2: ``signtype``
    "SM2" and the signature of ``canonical_body`` in ``cainfo``, for institutions that registered the public key.
    ``msgid_lane=(k, n)``: this process is lane k of n processes of the hospital (see :meth:`next_msgid`).
    """

    def __init__(self, base_url: str, fixmedins_code: str, fixmedins_name: str, paasid: str, token: str, *,
                 mdtrtarea_admvs: str, opter: str = "hisdemo", opter_name: str = "HIS", opter_type: str = "1",
                 timeout: float = 10.0, retries: int = 3, transport: Optional[Transport] = None,
                 clock: Optional[Callable[[], datetime]] = None, path_style: str = "call_service",
                 backoff: float = 0.2, signtype: str = "", infver: str = "V1.0", dev_no: str = "",
                 dev_safe_info: str = "", cainfo: str = "", sign_no: str = "", sm2_private_key: str = "",
                 msgid_lane: tuple[int, int] = (0, 1), nonce: Optional[Callable[[], str]] = None):
        self.base_url = base_url
        self.fixmedins_code = fixmedins_code
        self.fixmedins_name = fixmedins_name
        self.paasid = paasid
        self._token = token
        self.mdtrtarea_admvs = mdtrtarea_admvs
        self.opter, self.opter_name, self.opter_type = opter, opter_name, opter_type
        self.retries = max(0, int(retries))
        self.backoff = backoff
        if path_style not in PATH_STYLES:
            raise ValueError(f"path_style must be one of {', '.join(PATH_STYLES)}, got {path_style!r}")
        self.path_style = path_style
        self._nonce = nonce or (lambda: uuid.uuid4().hex)
        self.signtype, self.infver, self.cainfo = ("SM2" if sm2_private_key else signtype), infver, cainfo
        self._sm2_key = sm2_private_key
        self.dev_no, self.dev_safe_info = dev_no, dev_safe_info
        self.sign_no = sign_no
        self.clock: Callable[[], datetime] = clock or datetime.now
        self._http = transport or HttpTransport(base_url, timeout=timeout)
        self._msgids = _MsgidSequence.of(fixmedins_code[:12].ljust(12, "0"), self.clock, tuple(msgid_lane))
        self._insuplc: dict[str, str] = {}  # psn_no → insuplc_admdvs learnt from 1101

    # -- lifecycle
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "HisClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- envelope
    def next_msgid(self) -> str:
        """fixmedins_code (12, right-padded with 0 / truncated) + yyyyMMddHHmmss + 4-digit sequence = 30 chars.

        Unique within the process for the institution: every client of one institution (and clock) draws from
        one sequence, which runs on across seconds; after 10,000 in one second the timestamp part moves on a
        second rather than repeat. Another process of the same institution starts its sequence elsewhere at
        random; processes that must never meet (one per terminal) are given lanes: ``msgid_lane=(k, n)``.
        """
        return self._msgids.next()

    def recer_sys_code_for(self, infno: str, input: Mapping[str, Any]) -> str:
        """YBXT normally; LXXT for 离休 (insutype 340) in the transactions the reference lists.
        工伤 (GSXT) is not derivable from the input: pass ``recer_sys_code="GSXT"`` to :meth:`call`."""
        if infno in _LXXT_INFNOS and str(_find(input, "insutype") or "") == "340":
            return "LXXT"
        return "YBXT"

    def envelope(self, infno: str, input: Mapping[str, Any], *, insuplc_admdvs: str = "",
                 msgid: Optional[str] = None, recer_sys_code: Optional[str] = None,
                 cainfo: Optional[str] = None) -> dict[str, Any]:
        """The request envelope (reference §1.1), ready to send."""
        if not insuplc_admdvs:
            psn_no = _find(input, "psn_no")
            insuplc_admdvs = self._insuplc.get(str(psn_no), "") if psn_no else ""
        return {
            "infno": str(infno),
            "msgid": msgid or self.next_msgid(),
            "mdtrtarea_admvs": self.mdtrtarea_admvs,
            "insuplc_admdvs": insuplc_admdvs,
            "recer_sys_code": recer_sys_code or self.recer_sys_code_for(str(infno), input),
            "dev_no": self.dev_no,
            "dev_safe_info": self.dev_safe_info,
            "cainfo": self.cainfo if cainfo is None else cainfo,
            "signtype": self.signtype,
            "infver": self.infver,
            "opter_type": self.opter_type,
            "opter": self.opter,
            "opter_name": self.opter_name,
            "inf_time": f"{self.clock():%Y-%m-%d %H:%M:%S}",
            "fixmedins_code": self.fixmedins_code,
            "fixmedins_name": self.fixmedins_name,
            "sign_no": self.sign_no,
            "input": _jsonable(input),
        }

    def path_for(self, infno: str) -> str:
        if self.path_style == "named":
            return PATHS.get(str(infno), CALL_SERVICE_PATH)
        return f"/{infno}" if self.path_style == "infno" else CALL_SERVICE_PATH

    # -- sending
    def call(self, infno: str, input: Mapping[str, Any], *, insuplc_admdvs: str = "", msgid: Optional[str] = None,
             recer_sys_code: Optional[str] = None, cainfo: Optional[str] = None, check: bool = True) -> Response:
        """Send one transaction (retried with the same msgid). Raises as described in the module doc;
        with ``check=False`` a -2/-1 response is returned instead of raised."""
        env = self.envelope(infno, input, insuplc_admdvs=insuplc_admdvs, msgid=msgid,
                            recer_sys_code=recer_sys_code, cainfo=cainfo)
        return self.send_envelope(env, check=check)

    def send_envelope(self, envelope: Mapping[str, Any], *, check: bool = True,
                      path: Optional[str] = None) -> Response:
        """POST a prepared envelope as is (e.g. one read from a file, or a deliberately odd one)."""
        infno = str(envelope.get("infno", ""))
        msgid = str(envelope.get("msgid", ""))
        envelope = _jsonable(envelope)
        if self._sm2_key and str(envelope.get("signtype", "")).upper() == "SM2":
            envelope = {**envelope, SIGNATURE_FIELD: sign_sm2(self._sm2_key, canonical_body(envelope))}
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        url = path or self.path_for(infno)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("his → %s %s", url, json.dumps(mask_personal(envelope), ensure_ascii=False, default=str))

        def headers() -> dict[str, str]:  # signed afresh for every attempt on the wire: a nonce is used once
            return {"content-type": "application/json; charset=utf-8",
                    **gateway_headers(self.paasid, self._token, int(self.clock().timestamp()), self._nonce())}

        attempts = 1 + self.retries
        last_problem, last_status, last_response = "no attempt", None, None
        for attempt in range(1, attempts + 1):
            if attempt > 1 and self.backoff:
                time.sleep(self.backoff * 2 ** (attempt - 2))
            try:
                http = self._http.post(url, body, headers)
            except TransportTimeout as exc:
                last_problem, last_status = f"timeout ({exc})", None
                log.warning("his %s msgid %s attempt %d/%d: %s", infno, msgid, attempt, attempts, last_problem)
                continue
            except TransportFailure as exc:
                last_problem, last_status = f"connection error ({exc})", None
                log.warning("his %s msgid %s attempt %d/%d: %s", infno, msgid, attempt, attempts, last_problem)
                continue

            response = self._parse(http, infno, msgid, attempt)
            if http.status >= 500 or response is None and 200 <= http.status < 300:
                last_problem, last_status, last_response = f"HTTP {http.status}", http.status, response
                if response is None:
                    last_problem += " with an unreadable body"
                log.warning("his %s msgid %s attempt %d/%d: %s", infno, msgid, attempt, attempts, last_problem)
                continue
            if response is None:  # 4xx without an envelope: a definitive refusal
                raise HisHTTPError(http.status, http.body.decode("utf-8", "replace"), msgid, infno)
            if response.infcode == -1 and attempt < attempts:
                last_response = response
                log.warning("his %s msgid %s attempt %d/%d: infcode -1 %s", infno, msgid, attempt, attempts,
                            response.err_msg)
                continue
            return self._checked(response, check)

        if last_response is not None:
            return self._checked(last_response, check)
        raise HisTransportError(last_problem, msgid, infno, attempts, last_status)

    def _parse(self, http: HttpResult, infno: str, msgid: str, attempt: int) -> Optional[Response]:
        try:
            raw = json.loads(http.body)
            if not isinstance(raw, dict) or "infcode" not in raw:
                return None
            infcode = parse_infcode(raw["infcode"])
        except (ValueError, UnicodeDecodeError):
            return None
        output = raw.get("output")
        resp = Response(infcode, raw.get("err_msg"), output if isinstance(output, (dict, list)) else {},
                        raw.get("inf_refmsgid"), raw, msgid, infno, http.status, attempt)
        log.info("his %s msgid %s → HTTP %d infcode %d%s", infno, msgid, http.status, infcode,
                 f" {resp.err_msg}" if infcode else "")
        return resp

    @staticmethod
    def _checked(response: Response, check: bool) -> Response:
        if not check or response.ok:
            return response
        if response.infcode == -1:
            raise HisSystemError(response.err_msg, response.infcode, response)
        raise HisBusinessError(response.err_msg, response.infcode, response)

    # -- reversal
    def settle_with_reversal(self, infno: str, input: Mapping[str, Any], insuplc_admdvs: str,
                             psn_no: str) -> Response:
        """Send a reversible transaction; on an unknown outcome reverse it by 2601 (see module doc)."""
        infno = str(infno)
        if infno not in REVERSIBLE:
            return self.call(infno, input, insuplc_admdvs=insuplc_admdvs)
        msgid = self.next_msgid()
        try:
            return self.call(infno, input, insuplc_admdvs=insuplc_admdvs, msgid=msgid)
        except HisOutcomeUnknown as unknown:
            log.warning("his %s msgid %s: outcome unknown (%s); sending 2601", infno, msgid, unknown)
            try:
                reversal = self.reverse(msgid, infno, psn_no, insuplc_admdvs=insuplc_admdvs)
            except HisError as exc:
                log.error("his %s msgid %s: reversal failed: %s", infno, msgid, exc)
                raise ReversalFailed(msgid, infno, psn_no, unknown, exc) from exc
            raise OutcomeReversed(msgid, infno, reversal, unknown) from unknown

    def _maybe_reversed(self, infno: str, input: Mapping[str, Any], insuplc_admdvs: str, psn_no: str,
                        reverse_on_unknown: bool) -> Response:
        if reverse_on_unknown:
            return self.settle_with_reversal(infno, input, insuplc_admdvs, psn_no)
        return self.call(infno, input, insuplc_admdvs=insuplc_admdvs)

    def reverse(self, omsgid: str, oinfno: str, psn_no: str, *, insuplc_admdvs: str = "") -> Response:
        """2601 冲正: undo ``oinfno`` sent as ``omsgid`` (safe to repeat, and when the original never arrived)."""
        return self.call("2601", {"data": {"psn_no": psn_no, "omsgid": omsgid, "oinfno": str(oinfno)}},
                         insuplc_admdvs=insuplc_admdvs)

    # -- convenience: basics
    def sign_in(self, opter: Optional[str] = None, mac: str = "", ip: str = "") -> Response:
        """9001: stores ``sign_no`` for every later envelope."""
        resp = self.call("9001", {"signIn": {"opter_no": opter or self.opter, "mac": mac, "ip": ip}})
        self.sign_no = str((resp.output.get("signinoutb") or {}).get("sign_no") or "")
        return resp

    def sign_out(self, opter: Optional[str] = None) -> Response:
        """9002 ``signOut{sign_no, opter_no}``; forgets the sign_no."""
        resp = self.call("9002", {"signOut": {"sign_no": self.sign_no, "opter_no": opter or self.opter}})
        self.sign_no = ""
        return resp

    def person_info(self, mdtrt_cert_type: str, mdtrt_cert_no: str, *, card_sn: str = "",
                    begntime: Optional[str] = None, psn_cert_type: str = "", certno: str = "",
                    psn_name: str = "", insuplc_admdvs: str = "") -> Response:
        """1101 by 01 e-certificate token / 02 ID card / 03 social-security card (card_sn required for 03).
        Remembers ``insuinfo.insuplc_admdvs`` per psn_no for later calls that omit it."""
        data = {"mdtrt_cert_type": mdtrt_cert_type, "mdtrt_cert_no": mdtrt_cert_no, "card_sn": card_sn,
                "begntime": begntime or f"{self.clock():%Y-%m-%d %H:%M:%S}", "psn_cert_type": psn_cert_type,
                "certno": certno, "psn_name": psn_name}
        resp = self.call("1101", {"data": data}, insuplc_admdvs=insuplc_admdvs)
        psn_no = (resp.output.get("baseinfo") or {}).get("psn_no")
        for ins in resp.output.get("insuinfo") or []:
            if psn_no and isinstance(ins, dict) and ins.get("insuplc_admdvs"):
                self._insuplc[str(psn_no)] = str(ins["insuplc_admdvs"])
                break
        return resp

    # -- convenience: outpatient
    def register(self, psn_no: str, insutype: str, mdtrt_cert_type: str, mdtrt_cert_no: str, *,
                 ipt_otp_no: str, insuplc_admdvs: str = "", begntime: Optional[str] = None, atddr_no: str = "",
                 dr_name: str = "", dept_code: str = "", dept_name: str = "", caty: str = "",
                 **extra: Any) -> Response:
        """2201 门诊挂号 → output ``data{mdtrt_id, psn_no, ipt_otp_no}``."""
        data = {"psn_no": psn_no, "insutype": insutype, "begntime": begntime or f"{self.clock():%Y-%m-%d %H:%M:%S}",
                "mdtrt_cert_type": mdtrt_cert_type, "mdtrt_cert_no": mdtrt_cert_no, "ipt_otp_no": ipt_otp_no,
                "atddr_no": atddr_no, "dr_name": dr_name, "dept_code": dept_code, "dept_name": dept_name,
                "caty": caty, **extra}
        return self.call("2201", {"data": data}, insuplc_admdvs=insuplc_admdvs)

    def upload_fees(self, feedetail: Iterable[Mapping[str, Any]], *, insuplc_admdvs: str = "") -> Response:
        """2204 费用明细上传 (amounts in yuan) → output ``result[]``."""
        lines = _amounts(list(feedetail), "feedetail")
        return self.call("2204", {"feedetail": lines}, insuplc_admdvs=insuplc_admdvs)

    def _settle_data(self, psn_no: str, mdtrt_id: str, chrg_bchno: str, medfee_sumamt: YuanInput,
                     mdtrt_cert_type: str, mdtrt_cert_no: str, med_type: str, insutype: str, psn_setlway: str,
                     acct_used_flag: str, extra: Mapping[str, Any]) -> dict[str, Any]:
        data = {"psn_no": psn_no, "mdtrt_cert_type": mdtrt_cert_type, "mdtrt_cert_no": mdtrt_cert_no,
                "med_type": med_type, "medfee_sumamt": medfee_sumamt, "psn_setlway": psn_setlway,
                "mdtrt_id": mdtrt_id, "chrg_bchno": chrg_bchno, "insutype": insutype,
                "acct_used_flag": acct_used_flag, **extra}
        # sums the HIS did not give are left out rather than sent as 0 (which the server would check)
        return _amounts({k: v for k, v in data.items() if v is not None}, "data")

    def presettle_outpatient(self, psn_no: str, mdtrt_id: str, chrg_bchno: str, medfee_sumamt: YuanInput, *,
                             mdtrt_cert_type: str = "", mdtrt_cert_no: str = "", med_type: str = "11",
                             insutype: str = "", psn_setlway: str = "01", acct_used_flag: str = "1",
                             insuplc_admdvs: str = "", **extra: Any) -> Response:
        """2206 门诊预结算 → ``setlinfo`` (nothing is booked)."""
        data = self._settle_data(psn_no, mdtrt_id, chrg_bchno, medfee_sumamt, mdtrt_cert_type, mdtrt_cert_no,
                                 med_type, insutype, psn_setlway, acct_used_flag, extra)
        return self.call("2206", {"data": data}, insuplc_admdvs=insuplc_admdvs)

    def settle_outpatient(self, psn_no: str, mdtrt_id: str, chrg_bchno: str, medfee_sumamt: YuanInput, *,
                          fulamt_ownpay_amt: Optional[YuanInput] = None, overlmt_selfpay: Optional[YuanInput] = None,
                          preselfpay_amt: Optional[YuanInput] = None, inscp_scp_amt: Optional[YuanInput] = None, mdtrt_cert_type: str = "",
                          mdtrt_cert_no: str = "", med_type: str = "11", insutype: str = "",
                          psn_setlway: str = "01", acct_used_flag: str = "1", invono: str = "",
                          insuplc_admdvs: str = "", reverse_on_unknown: bool = True, **extra: Any) -> Response:
        """2207 门诊结算; an unknown outcome is reversed by 2601 unless ``reverse_on_unknown=False``."""
        data = self._settle_data(psn_no, mdtrt_id, chrg_bchno, medfee_sumamt, mdtrt_cert_type, mdtrt_cert_no,
                                 med_type, insutype, psn_setlway, acct_used_flag,
                                 {"fulamt_ownpay_amt": fulamt_ownpay_amt, "overlmt_selfpay": overlmt_selfpay,
                                  "preselfpay_amt": preselfpay_amt, "inscp_scp_amt": inscp_scp_amt,
                                  "invono": invono, **extra})
        return self._maybe_reversed("2207", {"data": data}, insuplc_admdvs, psn_no, reverse_on_unknown)

    def cancel_outpatient(self, setl_id: str, mdtrt_id: str, psn_no: str, *, insuplc_admdvs: str = "",
                          reverse_on_unknown: bool = True, **extra: Any) -> Response:
        """2208 门诊结算撤销 → negated ``setlinfo`` with a new setl_id."""
        data = {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no, **extra}
        return self._maybe_reversed("2208", {"data": data}, insuplc_admdvs, psn_no, reverse_on_unknown)

    # -- convenience: inpatient
    def admit(self, mdtrtinfo: Mapping[str, Any], diseinfo: Iterable[Mapping[str, Any]] = (), *,
              insuplc_admdvs: str = "", reverse_on_unknown: bool = True) -> Response:
        """2401 入院办理 ``{mdtrtinfo, diseinfo[]}`` → ``data{mdtrt_id, psn_no, ipt_otp_no}``."""
        body = {"mdtrtinfo": dict(mdtrtinfo), "diseinfo": [dict(d) for d in diseinfo]}
        return self._maybe_reversed("2401", body, insuplc_admdvs, str(mdtrtinfo.get("psn_no", "")),
                                    reverse_on_unknown)

    def discharge(self, dscginfo: Mapping[str, Any], diseinfo: Iterable[Mapping[str, Any]] = (), *,
                  insuplc_admdvs: str = "") -> Response:
        """2402 出院办理 ``{dscginfo, diseinfo[]}``."""
        return self.call("2402", {"dscginfo": dict(dscginfo), "diseinfo": [dict(d) for d in diseinfo]},
                         insuplc_admdvs=insuplc_admdvs)

    def upload_inpatient_fees(self, feedetail: Iterable[Mapping[str, Any]], *, insuplc_admdvs: str = "") -> Response:
        """2301 住院费用明细上传 (lines like 2204 plus drord_no, init_feedetl_sn, med_type…)."""
        lines = _amounts(list(feedetail), "feedetail")
        return self.call("2301", {"feedetail": lines}, insuplc_admdvs=insuplc_admdvs)

    def presettle_inpatient(self, psn_no: str, mdtrt_id: str, medfee_sumamt: YuanInput, *,
                            mdtrt_cert_type: str = "", mdtrt_cert_no: str = "", med_type: str = "21",
                            insutype: str = "", psn_setlway: str = "01", acct_used_flag: str = "1",
                            mid_setl_flag: str = "0", insuplc_admdvs: str = "", **extra: Any) -> Response:
        """2303 住院预结算."""
        data = self._settle_data(psn_no, mdtrt_id, extra.pop("chrg_bchno", ""), medfee_sumamt, mdtrt_cert_type,
                                 mdtrt_cert_no, med_type, insutype, psn_setlway, acct_used_flag,
                                 {"mid_setl_flag": mid_setl_flag, **extra})
        return self.call("2303", {"data": data}, insuplc_admdvs=insuplc_admdvs)

    def settle_inpatient(self, psn_no: str, mdtrt_id: str, medfee_sumamt: YuanInput, *,
                         fulamt_ownpay_amt: Optional[YuanInput] = None, overlmt_selfpay: Optional[YuanInput] = None,
                         preselfpay_amt: Optional[YuanInput] = None, inscp_scp_amt: Optional[YuanInput] = None, mdtrt_cert_type: str = "",
                         mdtrt_cert_no: str = "", med_type: str = "21", insutype: str = "",
                         psn_setlway: str = "01", acct_used_flag: str = "1", mid_setl_flag: str = "0",
                         invono: str = "", insuplc_admdvs: str = "", reverse_on_unknown: bool = True,
                         **extra: Any) -> Response:
        """2304 住院结算 (``mid_setl_flag="1"`` for an interim settlement); unknown outcome → 2601."""
        data = self._settle_data(psn_no, mdtrt_id, extra.pop("chrg_bchno", ""), medfee_sumamt, mdtrt_cert_type,
                                 mdtrt_cert_no, med_type, insutype, psn_setlway, acct_used_flag,
                                 {"fulamt_ownpay_amt": fulamt_ownpay_amt, "overlmt_selfpay": overlmt_selfpay,
                                  "preselfpay_amt": preselfpay_amt, "inscp_scp_amt": inscp_scp_amt,
                                  "mid_setl_flag": mid_setl_flag, "invono": invono, **extra})
        return self._maybe_reversed("2304", {"data": data}, insuplc_admdvs, psn_no, reverse_on_unknown)

    def cancel_inpatient(self, setl_id: str, mdtrt_id: str, psn_no: str, *, insuplc_admdvs: str = "",
                         reverse_on_unknown: bool = True, **extra: Any) -> Response:
        """2305 住院结算撤销."""
        data = {"mdtrt_id": mdtrt_id, "setl_id": setl_id, "psn_no": psn_no, **extra}
        return self._maybe_reversed("2305", {"data": data}, insuplc_admdvs, psn_no, reverse_on_unknown)


__all__ = [
    "CALL_SERVICE_PATH", "ENVELOPE_FIELDS", "PATHS", "REVERSIBLE", "HisBusinessError", "HisClient", "HisError",
    "HisHTTPError", "HisOutcomeUnknown", "HisResponseError", "HisSystemError", "HisTransportError",
    "OutcomeReversed", "Response", "ReversalFailed", "gateway_headers", "mask_personal", "parse_infcode",
]
