"""Face payment: verification latency of one kiosk frame against the bare model, enrolment latency, FMR/FNMR on
the test photos, and session-to-settled over HTTP with the gateway simulator.

Run from the repository root::

    python -m benchmarks.face [--quick] [--reps N] [--seconds S] [--out benchmarks/results/face.json]

Four parts (see benchmarks/README.md, "Face payment"):

1. latency, in this process, **pinned to one core** (``os.sched_setaffinity``; OpenBLAS/OMP/MKL limited to one
   thread before numpy loads; dlib's HOG detector, shape predictor and ResNet run on the calling thread): one
   640×480 kiosk JPEG of ``obama.jpg`` through verification's per-frame path (``read_frame``: decode, detect,
   68 landmarks, liveness measures, perceptual hash; ``probe_of``: quality gate and embedding) against the bare
   model path of the same frame (dlib's detector + shape predictor + ResNet descriptor on the decoded image),
   the two alternating so that the machine's noise falls on both; the ratio of the medians is the overhead;
2. enrolment latency: ``FaceEnrolment.embeddings`` of one and of two photos on the same core, and the counter
   enrolment over HTTP (multipart, staff key) of every person of part 4;
3. FMR/FNMR of ``medpay face eval`` on the test photos (one folder per person) at the region's thresholds, with
   their pair counts: a handful of photos is not a measurement;
4. session → settled over HTTP: ``medpay serve`` with its gateway simulator, a face terminal per patient looping
   session → frames of the patient performing the random challenge → verify → auth-check → the HIS's 1101 /
   2201 / 2204 with the ecToken → the one-step settle at the terminal door (fund + cash through the gateway) →
   the settle.notify. The frames are synthesised after the session answers (the patient acting); that time is
   measured apart and left out of the flow's latency.

Importing this module does nothing; everything happens in ``main()``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, Callable

from benchmarks.common import (RESULTS_DIR, Tally, add_out_argument, add_pg_url_argument, finish, fmt, latency,
                               merge_errors, resolve_pg_url, result_header, tables_main, to_ms)

DEFAULT_OUT = RESULTS_DIR / "face.json"
PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "faces"
FRAME_PHOTO = "obama.jpg"
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
EVAL_PEOPLE = {"obama": ("obama.jpg", "obama2.jpg", "obama3.jpg"), "biden": ("biden.jpg",),
               "group-largest-face": ("t1.jpg",)}
OVERHEAD_GOAL = 0.20
SESSIONS = "/api/v1/terminal/face/sessions"
VERIFY = "/api/v1/terminal/face/verify"
AUTH_CHECK = "/api/v1/terminal/face/auth-check"
COUNTER_ENROL = "/api/v1/admin/face/enrolments"
SETTLE = "/api/v1/terminal/settle"


@dataclass(frozen=True)
class Config:
    quick: bool
    reps: int
    enrol_reps: int
    seconds: float
    terminals: int
    workers: int
    backends: tuple[str, ...]
    pg_url: str
    cpu: int | None
    out: Path
    profile: bool = False


# ============================================================================ 1. one frame, one core


def pin_to_one_core(cpu: int | None) -> int | None:
    """This process on one core (the lowest it may use, unless told), BLAS/OMP on one thread. Must run before numpy
    is imported for the thread limits to hold."""
    for name in SINGLE_THREAD_ENV:
        os.environ[name] = "1"
    if not hasattr(os, "sched_setaffinity"):
        return None
    chosen = cpu if cpu is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {chosen})
    return chosen


def kiosk_jpeg() -> bytes:
    """The test photo framed as a kiosk camera sees a patient (640×480, the face about a third of the width)."""
    from tests.helpers_face import jpeg, kiosk

    return jpeg(kiosk(FRAME_PHOTO))


def bare_model() -> Callable[[Any], Any]:
    """dlib alone, as its documentation uses it: detect, 68 landmarks, 128-d descriptor — no decoding, no checks."""
    import dlib
    import face_recognition_models as files

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(files.pose_predictor_model_location())
    encoder = dlib.face_recognition_model_v1(files.face_recognition_model_location())

    def run(image: Any) -> Any:
        box = detector(image, 0)[0]
        return encoder.compute_face_descriptor(image, predictor(image, box))

    return run


def bench_frame(reps: int, profile: bool, log: Callable[[str], None]) -> dict[str, Any]:
    import numpy as np

    from medpay.adapters.face import images
    from medpay.adapters.face.dlib_encoder import default_encoder
    from medpay.services.face.verification import probe_of, read_frame

    data = kiosk_jpeg()
    image = images.decode(data)
    encoder = default_encoder()
    bare = bare_model()

    def platform() -> Any:
        return probe_of(encoder, read_frame(encoder, data, "frames[0]"), "frames[0]")

    same = float(np.linalg.norm(np.asarray(bare(image)) - platform()))  # the same face, the same numbers
    for _ in range(3):  # warm caches
        bare(image)
        platform()
    t_bare, t_platform = [], []
    for i in range(reps):  # alternate, so that another process's burst falls on both
        for fn, arg, into in ((bare, image, t_bare), (platform, None, t_platform))[:: 1 if i % 2 else -1]:
            t0 = time.perf_counter()
            fn(arg) if arg is not None else fn()
            into.append(time.perf_counter() - t0)
    bare_lat, plat_lat = latency(t_bare, "bare"), latency(t_platform, "verify")
    row = {"frame": f"{FRAME_PHOTO}, 640×480 JPEG ({len(data):,} B)", "reps": reps, **bare_lat, **plat_lat,
           "bare_mean_ms": to_ms(fmean(t_bare)), "verify_mean_ms": to_ms(fmean(t_platform)),
           "overhead_p50": round(plat_lat["verify_p50_ms"] / bare_lat["bare_p50_ms"] - 1, 4),
           "overhead_mean": round(fmean(t_platform) / fmean(t_bare) - 1, 4),
           "overhead_goal": OVERHEAD_GOAL, "embedding_difference": round(same, 6)}
    row["within_goal"] = row["overhead_p50"] <= OVERHEAD_GOAL
    log(f"frame    bare p50 {row['bare_p50_ms']} ms p99 {row['bare_p99_ms']} ms; verification p50 "
        f"{row['verify_p50_ms']} ms p99 {row['verify_p99_ms']} ms; overhead {row['overhead_p50']:+.1%}")
    if profile:
        row["profile"] = _profile(platform, max(10, reps // 2))
    return row


def _profile(fn: Callable[[], Any], reps: int) -> list[dict[str, Any]]:
    """The 15 functions with the most cumulative time in ``reps`` calls of ``fn``."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(reps):
        fn()
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    for (path, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(path).name}:{line} {name}", "calls": calls,
                     "own_ms_per_frame": round(tottime * 1000 / reps, 3),
                     "cum_ms_per_frame": round(cumtime * 1000 / reps, 3)})
    return sorted(rows, key=lambda r: -r["own_ms_per_frame"])[:15]


# ============================================================================ 2. enrolment


def bench_enrolment(reps: int, log: Callable[[str], None]) -> dict[str, Any]:
    """``FaceEnrolment.embeddings`` (decode, quality gate, embedding, same-person check): the model work of an
    enrolment, without the database (the HTTP figures of part 4 include it)."""
    from medpay.adapters.face.dlib_encoder import default_encoder
    from medpay.services.face.enrolment import FaceEnrolment

    enrolment = FaceEnrolment(None, None, None, default_encoder())  # type: ignore[arg-type]  (only embeddings())
    one = [(PHOTOS / "obama.jpg").read_bytes()]
    # the other photos of the person fail the gate (obama2.jpg is turned, obama3.jpg small): the kiosk framing
    two = [one[0], kiosk_jpeg()]
    out: dict[str, Any] = {"reps": reps}
    for label, photos in (("one_photo", one), ("two_photos", two)):
        enrolment.embeddings(photos)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            enrolment.embeddings(photos)
            times.append(time.perf_counter() - t0)
        out.update(latency(times, label))
    log(f"enrol    1 photo p50 {out['one_photo_p50_ms']} ms, 2 photos p50 {out['two_photos_p50_ms']} ms")
    return out


# ============================================================================ 3. error rates


def bench_error_rates(log: Callable[[str], None]) -> dict[str, Any]:
    from medpay.adapters.face.dlib_encoder import default_encoder
    from medpay.adapters.region_settings import builtin_face_settings
    from medpay.domain.face import error_rates
    from medpay.services.face.evaluation import evaluate

    settings = builtin_face_settings().default
    folder = Path(tempfile.mkdtemp(prefix="medpay-face-eval-"))
    try:
        for person, names in EVAL_PEOPLE.items():
            (folder / person).mkdir()
            for name in names:
                shutil.copyfile(PHOTOS / name, folder / person / name)
        ev = evaluate(folder, default_encoder(), settings.threshold)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for label, threshold in (("threshold", settings.threshold), ("strict_threshold", settings.strict_threshold)):
        r = error_rates(ev.genuine, ev.impostor, threshold)
        rows.append({"at": label, "threshold": threshold, "false_matches": r.false_matches,
                     "impostor_pairs": r.impostor_pairs, "false_non_matches": r.false_non_matches,
                     "genuine_pairs": r.genuine_pairs})
    out = {"photos": sum(len(v) for v in EVAL_PEOPLE.values()), "people": len(EVAL_PEOPLE), "rates": rows,
           "genuine_distances": sorted(round(d, 3) for d in ev.genuine),
           "impostor_distances": sorted(round(d, 3) for d in ev.impostor), "skipped": ev.skipped,
           "remark": "a handful of photos is not a measurement: these counts only show that the pipeline separates "
                     "the people in the test photos; a real FMR/FNMR needs thousands of people (medpay face eval DIR)"}
    for r in rows:
        log(f"eval     at {r['threshold']}: FMR {r['false_matches']}/{r['impostor_pairs']}, "
            f"FNMR {r['false_non_matches']}/{r['genuine_pairs']} ({out['photos']} photos — not a measurement)")
    return out


# ============================================================================ 4. session → settled over HTTP


def _face_stack_class() -> type:
    from benchmarks.qr import QrStack

    class FaceStack(QrStack):
        """The QR benchmark's stack (server + gateway simulator, persons with wallets) plus, per person, a face
        terminal at the person's hospital and a counter enrolment of the test photo with a PIN of their own."""

        def _add_persons(self) -> None:
            import httpx
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            from medpay.adapters.db.engine import make_engine, session_factory
            from medpay.adapters.platform_keys import load_or_create_key, public_key_hex
            from medpay.services import demo
            from medpay.services.face.enrolment import CONSENT_VERSION
            from medpay.services.persons import PersonService
            from medpay.services.qr.ecert import EcertService

            super()._add_persons()
            engine = make_engine(self.db_url)
            try:
                factory = session_factory(engine)
                ecerts = EcertService(factory, self.data_cipher(), load_or_create_key(self.signing_key_file),
                                      PersonService(factory, self.data_cipher()))
                for person, terminal in zip(self.persons, self.terminals):
                    key = Ed25519PrivateKey.generate()
                    terminal["face"] = {"terminal_id": ecerts.register_terminal(
                        terminal["fixmedins_code"], public_key_hex(key), "刷脸压测机", kind="face"), "key": key}
            finally:
                engine.dispose()
            photo = (PHOTOS / FRAME_PHOTO).read_bytes()
            times = []
            with httpx.Client(base_url=self.base_url, timeout=120) as http:
                for i, person in enumerate(self.persons):
                    person["pin"] = f"{246801 + 7 * i:06d}"
                    body, ctype = multipart({"psn_no": person["psn_no"], "certno": f"9999011985010{i:05d}",
                                             "pin": person["pin"], "consent": "true",
                                             "consent_version": CONSENT_VERSION}, {"image0": photo})
                    t0 = time.perf_counter()
                    r = http.post(COUNTER_ENROL, content=body, headers={
                        "content-type": ctype, "authorization": f"Bearer {demo.STAFF[1]}"})
                    times.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        raise RuntimeError(f"counter enrolment refused: {r.status_code} {r.text[:300]}")
            self.facts["enrol_http"] = latency(times, "enrol_http")

    return FaceStack


def multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = "medpayfacebench" + os.urandom(6).hex()
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
             for k, v in fields.items()]
    parts += [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{k}.jpg\"\r\n"
              f"Content-Type: image/jpeg\r\n\r\n".encode() + v + b"\r\n" for k, v in files.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class FaceFlowError(RuntimeError):
    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class FaceKiosk:
    """One face terminal and the HIS behind it; the patient in front of it is person ``i`` with the test face."""

    def __init__(self, stack: Any, i: int, receiver: Any, tag: str, seed: int):
        import httpx

        from benchmarks.common import his_client
        from benchmarks.qr import _five_lines

        self.person, self.terminal = stack.persons[i], stack.terminals[i]
        self.face = self.terminal["face"]
        self.receiver, self.tag, self.seed, self.n, self.visits = receiver, tag, seed, 0, 0
        self.http = httpx.Client(base_url=stack.base_url, timeout=120)
        self.his = his_client(stack.base_url, self.person["inst"], f"face{tag}")
        self.lines, self.total = _five_lines()

    def close(self) -> None:
        self.http.close()
        self.his.close()

    def _post(self, path: str, body: bytes, ctype: str) -> Any:
        from medpay.services.qr.ecert import sign_terminal_request

        headers = sign_terminal_request(self.face["key"], self.face["terminal_id"], "POST", path, body)
        return self.http.post(path, content=body, headers={**headers, "content-type": ctype})

    def _json(self, path: str, payload: dict[str, Any], step: str) -> dict[str, Any]:
        r = self._post(path, json.dumps(payload).encode(), "application/json")
        if r.status_code != 200:
            raise FaceFlowError(f"{step} HTTP {r.status_code}", r.text[:300])
        return r.json()

    def _performance(self, challenge: tuple[str, ...]) -> list[bytes]:
        """Frames of the patient performing ``challenge``, each flow another visit (tilted a few degrees, lit from
        another side) — otherwise the replay check rightly refuses frames as close to an earlier flow's as a
        synthetic jitter makes them. A synthesis the model cannot read (a painted mouth it does not see open) is
        drawn again, as a patient tries again before the terminal sends anything: it is checked here, untimed."""
        import numpy as np

        from medpay.adapters.face.dlib_encoder import default_encoder
        from medpay.domain.face import check_liveness
        from medpay.services.errors import ServiceError
        from medpay.services.face.verification import read_frame
        from tests.helpers_face import another_visit, kiosk, sequence_jpegs

        for _ in range(5):
            self.visits += 1
            visit = another_visit(kiosk(FRAME_PHOTO), np.random.default_rng(self.seed + self.visits))
            frames = sequence_jpegs(FRAME_PHOTO, challenge, self.seed + self.visits, base=visit)
            try:
                read = [read_frame(default_encoder(), f, f"frames[{i}]") for i, f in enumerate(frames)]
            except ServiceError:
                continue
            if check_liveness(challenge, [r.measures for r in read]).ok:
                break
        return frames

    def flow(self) -> dict[str, Any]:
        clock = time.perf_counter
        self.n += 1
        code, p = self.terminal["fixmedins_code"], self.person
        marks: dict[str, float] = {"start": clock()}
        s = self._json(SESSIONS, {"orgId": code, "businessType": "01301", "amount": str(self.total)}, "session")
        marks["session"] = clock()
        challenge = tuple(step["action"] for step in s["challenge"])
        frames = self._performance(challenge)  # the patient acting: not counted
        marks["filmed"] = clock()
        body, ctype = multipart({"orgId": code, "session_id": s["session_id"], "pin": p["pin"]},
                                {f"frame{i}": f for i, f in enumerate(frames)})
        r = self._post(VERIFY, body, ctype)
        if r.status_code != 200:
            raise FaceFlowError(f"verify HTTP {r.status_code}", r.text[:300])
        marks["verified"] = clock()
        token = self._json(AUTH_CHECK, {"orgId": code, "authNo": r.json()["authNo"]}, "auth-check")["data"]["ecToken"]
        marks["identity"] = clock()
        if self.his.person_info("01", token).output["baseinfo"]["psn_no"] != p["psn_no"]:
            raise FaceFlowError("1101 answered another person")
        mdtrt_id = self.his.register(p["psn_no"], p["insutype"], "01", token,
                                     ipt_otp_no=f"FACE{self.tag}-{self.n}").output["data"]["mdtrt_id"]
        self.his.upload_fees([{**ln, "mdtrt_id": mdtrt_id, "psn_no": p["psn_no"]} for ln in self.lines])
        marks["his"] = clock()
        msgid = f"FACE{self.face['terminal_id']}{time.time_ns()}"
        out = self._json(SETTLE, {"msgid": msgid, "ecToken": token, "mdtrt_id": mdtrt_id,
                                  "notify_url": self.receiver.url}, "settle")
        marks["settled"] = clock()
        if out.get("state") != "captured":
            raise FaceFlowError(f"settle state {out.get('state')}")
        notified = self.receiver.wait(msgid, 10.0)
        if notified is None:
            raise FaceFlowError("no settle.notify within 10 s", msgid)
        marks["notified"] = notified
        return {"marks": marks, "frames": len(frames)}


@dataclass
class _FlowStats(Tally):
    session: list[float] = field(default_factory=list)
    verify: list[float] = field(default_factory=list)
    auth_check: list[float] = field(default_factory=list)
    his: list[float] = field(default_factory=list)
    settle: list[float] = field(default_factory=list)
    whole: list[float] = field(default_factory=list)  # session asked → settled and notified, without the filming
    frames: int = 0

    def add(self, res: dict[str, Any]) -> None:
        m = res["marks"]
        self.session.append(m["session"] - m["start"])
        self.verify.append(m["verified"] - m["filmed"])
        self.auth_check.append(m["identity"] - m["verified"])
        self.his.append(m["his"] - m["identity"])
        self.settle.append(m["settled"] - m["his"])
        self.whole.append(max(m["settled"], m["notified"]) - m["start"] - (m["filmed"] - m["session"]))
        self.frames = res["frames"]

    def error(self, e: BaseException, kind: str | None = None) -> None:
        super().error(e, e.kind if isinstance(e, FaceFlowError) else kind)


def bench_flow(backend: str, cfg: Config, log: Callable[[str], None]) -> dict[str, Any]:
    import threading

    from benchmarks.common import run_threads
    from benchmarks.qr import NotifyReceiver

    with _face_stack_class()(backend, cfg.pg_url, cfg.workers, cfg.terminals, log) as stack, \
            NotifyReceiver() as receiver:
        warm = FaceKiosk(stack, 0, receiver, "warm", 10_000)
        try:  # the workers load the model on their first verification: not a patient's latency
            for _ in range(2):
                warm.flow()
        finally:
            warm.close()
        kiosks = [FaceKiosk(stack, i, receiver, f"{backend[:2]}{i}", 1000 * (i + 1)) for i in range(cfg.terminals)]
        stats = [_FlowStats() for _ in kiosks]
        state: dict[str, Any] = {}

        def work(i: int, barrier: threading.Barrier) -> None:
            barrier.wait()
            while time.perf_counter() < state["deadline"]:
                try:
                    stats[i].add(kiosks[i].flow())
                except Exception as e:  # noqa: BLE001 - a benchmark counts failures instead of stopping
                    stats[i].error(e)
            stats[i].finished_at = time.perf_counter()

        try:
            run_threads(cfg.terminals, work, state, cfg.seconds, f"face-{backend}")
        finally:
            for k in kiosks:
                k.close()
        facts = stack.facts
        ledger_ok = stack.admin_get("/api/v1/admin/ledger/check").get("ok")
    lists = {k: [x for s in stats for x in getattr(s, k)]
             for k in ("session", "verify", "auth_check", "his", "settle", "whole")}
    errors, first_error = merge_errors(stats)
    row: dict[str, Any] = {"backend": backend, "terminals": cfg.terminals, "flows": len(lists["whole"]),
                           "frames_per_verify": max(s.frames for s in stats)}
    for name, values in lists.items():
        lat = latency(values, name) if values else {}
        row.update({k: v for k, v in lat.items() if k.endswith(("_p50_ms", "_p99_ms"))})
    row.update({"enrol_http_p50_ms": facts.get("enrol_http", {}).get("enrol_http_p50_ms"),
                "enrol_http_p99_ms": facts.get("enrol_http", {}).get("enrol_http_p99_ms"),
                "ledger_ok": ledger_ok, "errors": dict(errors), "first_error": first_error})
    log(f"flow     {backend:<10} {row['flows']} flows, session→settled p50 {fmt(row.get('whole_p50_ms'), ',.0f')} ms "
        f"p99 {fmt(row.get('whole_p99_ms'), ',.0f')} ms; verify p50 {fmt(row.get('verify_p50_ms'), ',.0f')} ms"
        + (f"; errors {row['errors']} {first_error}" if errors else ""))
    return row


# ============================================================================ reporting


def render_tables(result: dict[str, Any]) -> list[Any]:
    from rich.table import Table

    m, f, e = result["machine"], result["frame"], result["enrolment"]
    lat = Table(title=f"medpay face, one core (CPU {result['config']['pinned_cpu']}; BLAS/OMP 1 thread) — "
                      f"{result['mode']}, {result['date'][:19]}Z, load {m.get('load_avg_at_start')}; the machine "
                      "is shared: compare the ratios, measured in the same run", title_justify="left")
    for col, just in (("what", "left"), ("p50", "right"), ("p99", "right"), ("notes", "left")):
        lat.add_column(col, justify=just)  # type: ignore[arg-type]
    lat.add_row("bare model (detect + 68 landmarks + embedding)", f"{f['bare_p50_ms']:,.1f} ms",
                f"{f['bare_p99_ms']:,.1f} ms", f"{f['frame']}, {f['reps']} reps, alternating")
    lat.add_row("verification of the frame (read_frame + probe_of)", f"{f['verify_p50_ms']:,.1f} ms",
                f"{f['verify_p99_ms']:,.1f} ms",
                f"overhead {f['overhead_p50']:+.1%} at p50 ({f['overhead_mean']:+.1%} mean); goal ≤ "
                f"{f['overhead_goal']:.0%}: {'met' if f['within_goal'] else 'NOT met'}")
    lat.add_row("enrolment, 1 photo (embeddings)", f"{e['one_photo_p50_ms']:,.1f} ms", f"{e['one_photo_p99_ms']:,.1f} ms",
                f"{e['reps']} reps; decode, quality gate, embedding")
    lat.add_row("enrolment, 2 photos (embeddings)", f"{e['two_photos_p50_ms']:,.1f} ms",
                f"{e['two_photos_p99_ms']:,.1f} ms", "and the same-person check")
    ev = result["error_rates"]
    rates = Table(title=f"FMR/FNMR on the test photos ({ev['photos']} photos of {ev['people']} people) — "
                        f"{ev['remark']}", title_justify="left")
    for col in ("threshold", "FMR", "FNMR"):
        rates.add_column(col, justify="right")
    for r in ev["rates"]:
        rates.add_row(f"{r['at']} {r['threshold']}", f"{r['false_matches']}/{r['impostor_pairs']}",
                      f"{r['false_non_matches']}/{r['genuine_pairs']}")
    flow = Table(title=f"session → settled over HTTP (medpay serve --workers {result['config']['workers']} + gateway "
                       f"simulator, {result['config']['seconds']:g} s, {result['config']['terminals']} terminal(s); "
                       "the patient's filming not counted)", title_justify="left")
    for col in ("backend", "flows", "session→settled p50/p99", "verify p50/p99", "session / auth-check / HIS / "
                "settle p50", "enrol (HTTP) p50", "notes"):
        flow.add_column(col)
    for r in result["flow"]:
        flow.add_row(r["backend"], str(r["flows"]),
                     f"{fmt(r.get('whole_p50_ms'), ',.0f')}/{fmt(r.get('whole_p99_ms'), ',.0f')} ms",
                     f"{fmt(r.get('verify_p50_ms'), ',.0f')}/{fmt(r.get('verify_p99_ms'), ',.0f')} ms",
                     " / ".join(fmt(r.get(f"{k}_p50_ms"), ',.0f') for k in ("session", "auth_check", "his", "settle"))
                     + " ms", f"{fmt(r.get('enrol_http_p50_ms'), ',.0f')} ms",
                     f"{r['frames_per_verify']} frames a verify; ledger {'ok' if r['ledger_ok'] else 'NOT ok'}"
                     + (f"; errors {r['errors']}" if r["errors"] else ""))
    return [lat, rates, flow]


# ============================================================================ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.face", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="20 frame reps, 5 enrolment reps, 10 s of flows")
    p.add_argument("--reps", type=int, default=None, help="frame repetitions, each path (default 200, quick 20)")
    p.add_argument("--enrol-reps", type=int, default=None, help="enrolment repetitions (default 20, quick 5)")
    p.add_argument("--seconds", type=float, default=None, help="length of the HTTP flow run (default 40, quick 10)")
    p.add_argument("--terminals", type=int, default=1, help="concurrent face terminals in the flow run (default 1)")
    p.add_argument("--workers", type=int, default=2, help="medpay serve worker processes (default 2)")
    p.add_argument("--backends", default="sqlite,postgresql", help="flow backends (default sqlite,postgresql; "
                                                                   "'none' skips the HTTP part)")
    p.add_argument("--cpu", type=int, default=None, help="the core to pin the latency part to (default the lowest "
                                                         "this process may use)")
    p.add_argument("--profile", action="store_true", help="cProfile the verification path: where its time goes")
    add_pg_url_argument(p)
    add_out_argument(p, DEFAULT_OUT)
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    backends = tuple(b.strip() for b in str(args.backends).split(",") if b.strip() and b.strip() != "none")
    if set(backends) - {"sqlite", "postgresql"}:
        raise SystemExit("--backends: sqlite and/or postgresql, or none")
    if args.terminals < 1:
        raise SystemExit("--terminals: at least 1")

    def chosen(value: Any, full: Any, quick: Any) -> Any:
        return value if value is not None else (quick if args.quick else full)

    return Config(quick=args.quick, reps=max(2, chosen(args.reps, 200, 20)),
                  enrol_reps=max(1, chosen(args.enrol_reps, 20, 5)), seconds=chosen(args.seconds, 40.0, 10.0),
                  terminals=args.terminals, workers=args.workers, backends=backends,
                  pg_url=resolve_pg_url(args.pg_url), cpu=args.cpu, out=args.out, profile=args.profile)


def run(cfg: Config, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    started = time.perf_counter()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    pinned = pin_to_one_core(cfg.cpu)
    result = result_header("medpay.face", cfg.quick, {
        "reps": cfg.reps, "enrol_reps": cfg.enrol_reps, "seconds": cfg.seconds, "terminals": cfg.terminals,
        "workers": cfg.workers, "backends": list(cfg.backends), "pinned_cpu": pinned,
        "single_thread_env": {k: os.environ[k] for k in SINGLE_THREAD_ENV},
        "shared_machine": "other engineers' tests may run during the measurement: the overhead is a ratio of two "
                          "paths measured alternately in the same run"})
    result["frame"] = bench_frame(cfg.reps, cfg.profile, log)
    result["enrolment"] = bench_enrolment(cfg.enrol_reps, log)
    result["error_rates"] = bench_error_rates(log)
    if affinity is not None:
        os.sched_setaffinity(0, affinity)  # the HTTP part runs a server and its clients: all cores again
    result["flow"] = [bench_flow(b, cfg, log) for b in cfg.backends]
    return finish(result, started)


def main(argv: list[str] | None = None) -> int:
    return tables_main(argv, parse_args, build_config, run, render_tables, 170)


if __name__ == "__main__":
    sys.exit(main())
