"""QR code payment: decode latency per phone-like image, and scan-to-settled over HTTP with the gateway simulator.

Run from the repository root::

    python -m benchmarks.qr [--quick] [--seconds S] [--out benchmarks/results/qr.json]

Two phases (see benchmarks/README.md, "QR code payment"):

1. decode — N synthetic phone photos per distortion class (a phone screen showing the code at 25–30 % of a
   1280×960 frame: clean, + sensor noise, + defocus blur, + JPEG q30, + strong perspective, + uneven light),
   each decoded with ``medpay.adapters.qr_images.decode_detailed``: p50/p95/max ms, share decoded, which pass
   found the code; and the segno PNG render time of a code;
2. scan-to-settled — ``medpay serve`` with its gateway simulator process, on SQLite (a temp file) and on
   PostgreSQL (a fresh schema), 1, 4 and 8 concurrent terminals, each looping: the patient's app fetches a code
   PNG → the terminal posts the image to ec.query → the HIS (one ``HisClient`` per terminal, signed in once)
   sends 1101 with the ecToken, 2201 and 2204 (5 lines) → the terminal settles (fund + account + cash through
   the gateway) → the settle.notify arrives at a local receiver.

Servers, simulators, the schema and the temp directories are removed even on error or SIGTERM. Importing this
module does nothing; everything happens in ``main()``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from benchmarks.common import (ADMDVS, CLK_TCK, RESULTS_DIR, CpuMeter, Tally, add_out_argument, add_pg_url_argument,
                               all_procs, cmdline, cpu_fields, descendants, feedetail, finish, fmt, free_port,
                               his_client, latency, merge_errors, parse_counts, percentile, proc_stat, resolve_pg_url,
                               result_header, run_threads, tables_main, to_ms)
from benchmarks.core import flow_lines
from benchmarks.interface import Platform

DEFAULT_OUT = RESULTS_DIR / "qr.json"
BUSINESS_TYPE = "01301"  # 门诊结算: a code the terminal may settle with
TERMINAL_COUNTS = (1, 4, 8)
WALLET_FEN = 10**11  # ¥1,000,000,000 per simulated wallet: never runs dry
FRAME = (1280, 960)
NOTIFY_TIMEOUT_S = 10.0
SCAN_PATH = "/api/v1/terminal/ec/query"
SETTLE_PATH = "/api/v1/terminal/settle"


@dataclass(frozen=True)
class Config:
    quick: bool
    images_per_class: int
    renders: int
    seconds: float
    terminals: tuple[int, ...]
    workers: int
    backends: tuple[str, ...]
    pg_url: str
    out: Path
    gateway_callbacks: bool = True


# ============================================================================ 1. phone-like images, decode


@dataclass(frozen=True)
class Distortion:
    """How the photo is taken. ``clean`` is a sharp, evenly lit, well-exposed shot; each other class changes
    one of these from ``clean``."""

    tilt: float = 0.05  # perspective: how far the corners are pulled in (fraction of the side)
    noise: float = 3.0  # sensor noise σ (grey levels)
    defocus: float = 0.7  # Gaussian blur radius of the whole frame (px)
    darkest: float = 0.85  # light gain in the darkest corner (1 = even)
    quality: int = 85  # JPEG quality the phone saves with


CLASSES: dict[str, Distortion] = {  # strong enough that some images need decode's retry passes
    "clean": Distortion(),
    "+ noise σ=50": Distortion(noise=50),
    "+ blur r=2.5": Distortion(defocus=2.5),
    "+ JPEG q30": Distortion(quality=30),
    "+ perspective 0.25": Distortion(tilt=0.25),
    "+ uneven light 0.1": Distortion(darkest=0.1),
}


def _perspective(img: Any, corners: list[tuple[float, float]], fill: int) -> Any:
    """Warp ``img`` so that its corners (tl, tr, br, bl) land on ``corners`` (same canvas size)."""
    import numpy as np
    from PIL import Image

    w, h = img.size
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    rows, rhs = [], []
    for (x, y), (u, v) in zip(corners, src):  # output point (x, y) samples input point (u, v)
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    coeffs = np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist()
    return img.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC, fillcolor=fill)


def phone_photo(code_png: bytes, seed: int, d: Distortion) -> tuple[bytes, float]:
    """A 1280×960 JPEG of a phone lying on a textured table, its screen showing the code at 25–30 % of the frame
    width, seen at an angle, a little rotated, placed at random; returns (jpeg, fraction of the width)."""
    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    w, h = FRAME
    # the table: coarse blotches, grain, wood stripes
    coarse = Image.fromarray(np.clip(rng.normal(140, 30, (h // 16, w // 16)), 0, 255).astype(np.uint8))
    table = np.array(coarse.resize((w, h), Image.Resampling.BICUBIC), float)
    table += rng.normal(0, 10, (h, w)) + 18 * np.sin(np.arange(w) / rng.uniform(7, 12))[None, :]
    frame = Image.fromarray(np.clip(table, 0, 255).astype(np.uint8))
    # the phone: a dark body, a light screen, the code on it
    fraction = float(rng.uniform(0.25, 0.30))
    side = int(fraction * w)
    code = Image.open(io.BytesIO(code_png)).convert("L").resize((side, side), Image.Resampling.BILINEAR)
    margin, top = side // 12, side // 4
    phone = Image.new("L", (side + 2 * margin + 24, side + 2 * top + 24), 25)
    screen = Image.new("L", (side + 2 * margin, side + 2 * top), int(rng.integers(225, 245)))
    screen.paste(code, (margin, top))
    phone.paste(screen, (12, 12))
    pw, ph = phone.size
    k = d.tilt
    pulls = rng.uniform(0.3, 1.0, 4) * k  # each corner pulled in by its own amount: seen from one side
    corners = [(pw * pulls[0], ph * pulls[0] * 0.3), (pw * (1 - pulls[1] * 0.3), ph * pulls[1]),
               (pw * (1 - pulls[2]), ph * (1 - pulls[2] * 0.3)), (pw * pulls[3] * 0.3, ph * (1 - pulls[3]))]
    if rng.random() < 0.5:  # tilted the other way
        corners = [(pw - x, y) for x, y in (corners[1], corners[0], corners[3], corners[2])]
    angle = float(rng.uniform(-15, 15))
    shot = _perspective(phone, corners, 0).rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0)
    mask = _perspective(Image.new("L", phone.size, 255), corners, 0).rotate(
        angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0)
    x = int(rng.integers(0, max(1, w - shot.width)))
    y = int(rng.integers(0, max(1, h - shot.height)))
    frame.paste(shot, (x, y), mask)
    # the camera: light falling off towards one corner, defocus, sensor noise, JPEG
    yy, xx = np.mgrid[0:h, 0:w]
    theta = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(theta) * xx / w + np.sin(theta) * yy / h)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    lit = np.array(frame, float) * (d.darkest + (1 - d.darkest) * ramp)
    frame = Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8))
    if d.defocus > 0:
        frame = frame.filter(ImageFilter.GaussianBlur(d.defocus))
    noisy = np.array(frame, float) + rng.normal(0, d.noise, (h, w))
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=d.quality)
    return buf.getvalue(), fraction


def _payloads(n: int, seed: int) -> list[str]:
    """``n`` signed e-certificate payloads like the platform issues (213 characters: a version-10 code)."""
    import random

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from medpay.domain.ecert_code import make_payload

    rnd = random.Random(seed)
    key = Ed25519PrivateKey.from_private_bytes(bytes(rnd.randrange(256) for _ in range(32)))
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    out = []
    for i in range(n):
        ecert = "EC" + "".join(rnd.choice(alphabet) for _ in range(8))
        nonce = "".join(rnd.choice(alphabet + "abcdefghijkmnpqrstuvwxyz_-") for _ in range(11))
        out.append(make_payload(key, ecert, BUSINESS_TYPE, 1767225600 + i, nonce=nonce))
    return out


def bench_render(n: int) -> dict[str, Any]:
    """segno → PNG at 8 px per module, as GET /mobile/ecert/code.png serves it (and SVG, as the page inlines)."""
    from medpay.adapters.qr_images import render_png, render_svg

    payloads = _payloads(n + 5, seed=7)
    for p in payloads[:5]:  # warm-up
        render_png(p)
    png, svg = [], []
    size = 0
    for p in payloads[5:]:
        t0 = time.perf_counter()
        data = render_png(p)
        t1 = time.perf_counter()
        render_svg(p, title="医保电子凭证")
        t2 = time.perf_counter()
        png.append(t1 - t0)
        svg.append(t2 - t1)
        size = len(data)
    return {"renders": n, "png_p50_ms": to_ms(percentile(png, 50)), "png_p95_ms": to_ms(percentile(png, 95)),
            "png_max_ms": to_ms(max(png)), "svg_p50_ms": to_ms(percentile(svg, 50)), "png_bytes": size,
            "scale_px_per_module": 8}


def bench_decode(per_class: int, log: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    from medpay.adapters.qr_images import ImageError, decode_detailed, render_png

    payloads = _payloads(per_class, seed=11)
    codes = [render_png(p) for p in payloads]
    decode_detailed(phone_photo(codes[0], 0, Distortion())[0])  # warm-up (imports, zxing)
    rows = []
    for c, (name, dist) in enumerate(CLASSES.items()):
        times: list[float] = []
        passes: Counter = Counter()
        failures: Counter = Counter()
        sizes, fractions = [], []
        for i, (payload, code) in enumerate(zip(payloads, codes)):
            jpeg, fraction = phone_photo(code, seed=1000 * c + i, d=dist)  # same scene per i across classes
            sizes.append(len(jpeg))
            fractions.append(fraction)
            t0 = time.perf_counter()
            try:
                got = decode_detailed(jpeg)
            except ImageError as e:
                times.append(time.perf_counter() - t0)
                failures[e.message] += 1
                continue
            times.append(time.perf_counter() - t0)
            if got.text == payload:
                passes[got.pass_name] += 1
            else:
                failures["wrong text"] += 1
        decoded = sum(passes.values())
        row = {"class": name, "distortion": dist.__dict__, "images": per_class, "decoded": decoded,
               "decoded_share": round(decoded / per_class, 4),
               "decode_p50_ms": to_ms(percentile(times, 50)), "decode_p95_ms": to_ms(percentile(times, 95)),
               "decode_max_ms": to_ms(max(times)), "passes": dict(passes.most_common()), "failures": dict(failures),
               "jpeg_kib_mean": round(sum(sizes) / len(sizes) / 1024, 1),
               "code_fraction_min_max": [round(min(fractions), 3), round(max(fractions), 3)]}
        rows.append(row)
        log(f"decode {name:<20} {decoded}/{per_class} decoded  p50 {row['decode_p50_ms']:,.1f} ms  "
            f"p95 {row['decode_p95_ms']:,.1f} ms  passes {row['passes']}")
    return rows


# ============================================================================ 2. scan-to-settled over HTTP


class NotifyReceiver:
    """The HIS's settle.notify endpoint: records when each notice (by ``outBizNo`` = the terminal's msgid) arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.duplicates = 0
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.perf_counter()
                try:
                    key = str(json.loads(body).get("outBizNo"))
                except (ValueError, AttributeError):
                    key = ""
                with receiver._cond:
                    if key in receiver.arrived:
                        receiver.duplicates += 1
                    else:
                        receiver.arrived[key] = at
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/his/notify"
        self._thread = threading.Thread(target=self._server.serve_forever, name="notify-receiver", daemon=True)

    def __enter__(self) -> "NotifyReceiver":
        self._thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, key: str, timeout: float) -> float | None:
        """perf_counter() at which the notice for ``key`` arrived; None if it didn't within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self.arrived.pop(key)


class QrStack(Platform):
    """``medpay serve --gateway-port P`` (so the gateway simulator runs as its own process, under the server) on
    SQLite in a temp dir or on a fresh PostgreSQL schema; key files of its own; the benchmark's persons with
    activated e-certificates and bound simulator wallets; terminals. All undone by ``close()``."""

    def __init__(self, backend: str, pg_url: str, workers: int, persons: int, log: Callable[[str], None]):
        from sqlalchemy.engine import make_url

        super().__init__(pg_url, workers, persons, log)
        self.backend = backend
        self.schema = f"medpay_qr_{os.getpid()}_{secrets.token_hex(3)}"
        if backend == "postgresql":
            self.db_url = make_url(self.admin_url).update_query_dict(
                {"options": f"-csearch_path={self.schema}", "application_name": self.schema})
        else:
            self.db_url = make_url(f"sqlite:///{self.tmp / 'medpay.db'}")
        self.signing_key_file = self.tmp / "signing.key"
        self.gateway_url = ""
        self.terminals: list[dict[str, Any]] = []
        self.facts = {"backend": backend, "workers": workers}
        if backend == "postgresql":
            self.facts["schema"] = self.schema

    def _create_schema(self) -> None:
        if self.backend == "postgresql":
            super()._create_schema()
        else:
            import sqlite3

            self.facts["server_version"] = f"SQLite {sqlite3.sqlite_version}"

    def _start_server(self) -> None:
        from medpay.adapters.platform_keys import load_or_create_key

        load_or_create_key(self.signing_key_file)  # created here, so the server and the benchmark share it
        gw_port = free_port()
        self.gateway_url = f"http://127.0.0.1:{gw_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDPAY_GATEWAY_")}  # our own simulator
        env["MEDPAY_SIGNING_KEY_FILE"] = str(self.signing_key_file)
        # the server, its workers and the gateway simulator it starts are one process group
        self._launch(["--gateway-port", str(gw_port)], env, timeout=120)
        self.log(f"server {self.base_url} ({self.workers} worker(s), {self.backend}) + gateway simulator "
                 f"{self.gateway_url} up in {self.facts['startup_s']} s")

    def worker_pids(self) -> list[int]:
        return [pid for pid in super().worker_pids() if "gateway_sim" not in cmdline(pid)]

    def gateway_pid(self) -> int | None:
        if self.proc is None:
            return None
        procs = all_procs()
        return next((pid for pid in descendants(self.proc.pid, procs) if "gateway_sim" in cmdline(pid)), None)

    def _add_persons(self) -> None:
        """Persons (alternately employee and resident, no personal-account money, so every flow has a cash part
        for the gateway), each with an activated e-certificate on a device key of its own and a simulated wallet
        bound as payment method; one terminal per person, at demo hospital i mod 2."""
        import httpx
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from medpay.adapters.db.engine import make_engine, session_factory
        from medpay.adapters.db.payment_tables import PaymentMethodRow
        from medpay.adapters.platform_keys import load_or_create_key, public_key_hex
        from medpay.services import demo
        from medpay.services.directory import Directory, PersonInput
        from medpay.services.qr.activation import ActivationService
        from medpay.services.qr.ecert import EcertService
        from medpay.services.persons import PersonService
        from medpay.services.unit_of_work import unit_of_work

        t0 = time.perf_counter()
        cipher = self.data_cipher()
        engine = make_engine(self.db_url)
        try:
            factory = session_factory(engine)
            directory = Directory(factory, cipher)
            activations = ActivationService(factory, cipher, None)  # activated at a counter: no texts to send
            ecerts = EcertService(factory, cipher, load_or_create_key(self.signing_key_file),
                                  PersonService(factory, cipher))
            for i in range(self.n_persons):
                employee = i % 2 == 0
                p = PersonInput(
                    psn_no=f"999901960{i:05d}", psn_name=f"扫码压测{i}号", certno=f"9999011985010{i:05d}",
                    gend="2" if i % 3 else "1", brdy=date(1985, 1, 1), insutype="310" if employee else "390",
                    psn_type="1101" if employee else "1501", insuplc_admdvs=ADMDVS,
                    emp_name="压测有限公司" if employee else "")
                directory.add_person(p)
                device = Ed25519PrivateKey.generate()
                counter = activations.start_at_counter(p.psn_no, p.certno, True, "benchmark")
                ecert_id = activations.confirm(public_key_hex(device), counter_code=counter.counter_code).ecert_id
                wallet = f"bench-wallet-{p.psn_no}"
                r = httpx.post(f"{self.gateway_url}/sim/payers", json={"payer_token": wallet, "balance_fen": WALLET_FEN},
                               timeout=10)
                if r.status_code not in (201, 409):
                    r.raise_for_status()
                with unit_of_work(factory) as uow:  # as medpay.simulators.launch.bind_demo_wallets binds them
                    if uow.session.get(PaymentMethodRow, p.psn_no) is None:
                        uow.session.add(PaymentMethodRow(psn_no=p.psn_no, gateway="gateway",
                                                         payer_token_enc=cipher.encrypt(wallet, "payer_token")))
                code, name, _level, paasid, token = demo.INSTITUTIONS[i % len(demo.INSTITUTIONS)]
                terminal_key = Ed25519PrivateKey.generate()
                terminal_id = ecerts.register_terminal(code, public_key_hex(terminal_key), f"扫码窗口{i}")
                self.persons.append({"psn_no": p.psn_no, "certno": p.certno, "insutype": p.insutype, "ecert_id": ecert_id,
                                     "device_key": device, "wallet": wallet, "inst": (code, name, paasid, token)})
                self.terminals.append({"terminal_id": terminal_id, "key": terminal_key, "fixmedins_code": code})
        finally:
            engine.dispose()
        self.facts["persons"] = self.n_persons
        self.facts["add_persons_s"] = round(time.perf_counter() - t0, 2)

    def pg_pids(self) -> set[int]:
        return super().pg_pids() if self.backend == "postgresql" else set()

    def admin_get(self, path: str) -> dict[str, Any]:
        import httpx

        from medpay.services import demo

        r = httpx.get(self.base_url + path, timeout=60, headers={"authorization": f"Bearer {demo.STAFF[1]}"})
        r.raise_for_status()
        return r.json()


def _five_lines() -> tuple[list[dict[str, Any]], Decimal]:
    """The first 5 lines of ``benchmarks.core``'s outpatient bill (诊查费 over its limit, 甲, 乙 西药, 乙 中成药, 甲)."""
    return feedetail(flow_lines()[:5])


class FlowError(RuntimeError):
    """A flow that did not end settled and notified; ``kind`` is what errors are counted by."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class Terminal:
    """One window: the patient's app (device key, code.png), the scanner (terminal-signed ec.query and settle)
    and the HIS behind it (a ``HisClient``, signed in once)."""

    def __init__(self, stack: QrStack, i: int, receiver: NotifyReceiver, tag: str):
        import httpx

        self.person, self.terminal = stack.persons[i], stack.terminals[i]
        self.receiver = receiver
        self.tag = tag
        self.n = 0
        self.http = httpx.Client(base_url=stack.base_url, timeout=60)  # the scanner's keep-alive connection
        self.app = httpx.Client(base_url=stack.base_url, timeout=60)  # the patient's phone
        self.his = his_client(stack.base_url, self.person["inst"], f"qr{tag}")
        self.lines, self.total = _five_lines()

    def close(self) -> None:
        self.http.close()
        self.app.close()
        self.his.close()

    def _signed_post(self, path: str, body: bytes, content_type: str) -> Any:
        from medpay.services.qr.ecert import sign_terminal_request

        headers = sign_terminal_request(self.terminal["key"], self.terminal["terminal_id"], "POST", path, body)
        return self.http.post(path, content=body, headers={**headers, "content-type": content_type})

    def bill(self, marks: dict[str, float]) -> tuple[str, str]:
        """The patient at the window up to the bill: the app's code scanned (ec.query), the HIS's 1101, 2201 and
        2204 — (ecToken, mdtrt_id), with a perf_counter() mark after each step."""
        from medpay.services.qr.ecert import sign_device_request

        clock = time.perf_counter
        self.n += 1
        p = self.person
        # the app: a fresh code (signed by the device key), as PNG
        marks["code"] = clock()
        path = f"/api/v1/mobile/ecert/code.png?business_type={BUSINESS_TYPE}"
        r = self.app.get(path, headers=sign_device_request(p["device_key"], p["ecert_id"], "GET", path))
        if r.status_code != 200:
            raise FlowError(f"code.png HTTP {r.status_code}", r.text[:200])
        png = r.content
        # the terminal scans the image: ec.query (multipart)
        boundary = "medpayqrbench"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"orgId\"\r\n\r\n"
                f"{self.terminal['fixmedins_code']}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"businessType\"\r\n\r\n{BUSINESS_TYPE}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"scan.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
        marks["scan"] = clock()
        r = self._signed_post(SCAN_PATH, body, f"multipart/form-data; boundary={boundary}")
        answer = r.json()
        if answer.get("code") != 0:
            raise FlowError(f"ec.query code {answer.get('code')}", str(answer.get("message"))[:200])
        token = answer["data"]["ecToken"]
        marks["identity"] = clock()
        # the HIS: 1101 with the token, 2201, 2204
        info = self.his.person_info("01", token).output
        if info["baseinfo"]["psn_no"] != p["psn_no"]:
            raise FlowError("1101 answered another person", info["baseinfo"]["psn_no"])
        marks["1101"] = clock()
        mdtrt_id = self.his.register(p["psn_no"], p["insutype"], "01", token,
                                     ipt_otp_no=f"QR{self.tag}-{self.n}").output["data"]["mdtrt_id"]
        marks["2201"] = clock()
        self.his.upload_fees([{**ln, "mdtrt_id": mdtrt_id, "psn_no": p["psn_no"]} for ln in self.lines])
        marks["2204"] = clock()
        return token, mdtrt_id

    def flow(self) -> dict[str, Any]:
        """One patient at the window; perf_counter() marks of each step, and the settlement."""
        marks: dict[str, float] = {}
        token, mdtrt_id = self.bill(marks)
        clock = time.perf_counter
        # the terminal settles the whole bill, naming the HIS's notify endpoint
        msgid = f"QR{self.terminal['terminal_id']}{time.time_ns()}"
        body = json.dumps({"msgid": msgid, "ecToken": token, "mdtrt_id": mdtrt_id,
                           "notify_url": self.receiver.url}).encode()
        r = self._signed_post(SETTLE_PATH, body, "application/json")
        marks["settled"] = clock()
        if r.status_code != 200:
            raise FlowError(f"settle HTTP {r.status_code}", r.text[:200])
        out = r.json()
        if out.get("state") != "captured":
            raise FlowError(f"settle state {out.get('state')}", f"intent {out.get('intent_id')}")
        notified = self.receiver.wait(msgid, NOTIFY_TIMEOUT_S)
        if notified is None:
            raise FlowError("no settle.notify within 10 s", msgid)
        marks["notified"] = notified
        return {"marks": marks, "setlinfo": out["settlement"]["setlinfo"]}


@dataclass
class _Stats(Tally):
    code: list[float] = field(default_factory=list)  # app: code.png
    identity: list[float] = field(default_factory=list)  # (a) scan → identity (ec.query)
    i1101: list[float] = field(default_factory=list)
    i2201: list[float] = field(default_factory=list)
    i2204: list[float] = field(default_factory=list)
    settle: list[float] = field(default_factory=list)  # (b) terminal settle call
    whole: list[float] = field(default_factory=list)  # (c) scan → settled and notified
    notify_lag: list[float] = field(default_factory=list)  # notice arrival − settle answer (negative: before)
    cash_fen: int = 0

    def add(self, res: dict[str, Any]) -> None:
        m = res["marks"]
        self.code.append(m["scan"] - m["code"])
        self.identity.append(m["identity"] - m["scan"])
        self.i1101.append(m["1101"] - m["identity"])
        self.i2201.append(m["2201"] - m["1101"])
        self.i2204.append(m["2204"] - m["2201"])
        self.settle.append(m["settled"] - m["2204"])
        self.whole.append(max(m["settled"], m["notified"]) - m["scan"])
        self.notify_lag.append(m["notified"] - m["settled"])
        self.cash_fen += round(Decimal(str(res["setlinfo"]["psn_cash_pay"])) * 100)

    def error(self, e: BaseException, kind: str | None = None) -> None:
        super().error(e, e.kind if isinstance(e, FlowError) else kind)


def _check_first(setl: dict[str, Any], total: Decimal) -> None:
    fund, acct, cash = (Decimal(str(setl[k])) for k in ("fund_pay_sumamt", "acct_pay", "psn_cash_pay"))
    medfee = Decimal(str(setl["medfee_sumamt"]))
    if fund + acct + cash != medfee or medfee != total or cash <= 0:
        raise AssertionError(f"first one-scan settlement is wrong: fund {fund} + acct {acct} + cash {cash} vs "
                             f"{medfee} (bill {total}); the cash part must be > 0 so the gateway is used")


def _worker(t: Terminal, st: _Stats, state: dict[str, Any], barrier: threading.Barrier | None,
            max_flows: int | None = None) -> None:
    if barrier is not None:
        barrier.wait()
    deadline = state["deadline"]
    done = 0
    while time.perf_counter() < deadline and (max_flows is None or done < max_flows):
        try:
            res = t.flow()
        except Exception as e:  # noqa: BLE001 - a benchmark counts failures instead of stopping
            st.error(e)
            time.sleep(0.05)
            continue
        done += 1
        if not state.get("checked"):
            state["checked"] = True
            _check_first(res["setlinfo"], t.total)
        st.add(res)
    st.finished_at = time.perf_counter()


def _p(values: list[float], prefix: str) -> dict[str, float | None]:
    d = latency(values, prefix)
    return {k: v for k, v in d.items() if k.endswith(("_p50_ms", "_p99_ms", "_max_ms"))}


def run_terminals(stack: QrStack, receiver: NotifyReceiver, n: int, seconds: float, tag: str) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        terminals = list(pool.map(lambda i: Terminal(stack, i, receiver, f"{tag}-{i}"), range(n)))
    stats = [_Stats() for _ in range(n)]
    state: dict[str, Any] = {"checked": True}
    meter = CpuMeter(stack.proc.pid, stack.pg_pids)
    gw_pid = stack.gateway_pid()
    gw0: list[int] = []

    def start() -> None:
        gw = proc_stat(gw_pid) if gw_pid else None
        gw0.append(gw[1] if gw else 0)
        meter.start()

    try:
        run_threads(n, lambda i, barrier: _worker(terminals[i], stats[i], state, barrier), state, seconds,
                    f"terminal-{tag}", on_start=start)
        cpu = meter.stop()
        gw = proc_stat(gw_pid) if gw_pid else None
    finally:
        for t in terminals:
            t.close()
    wall = max(s.finished_at for s in stats) - state["start"]
    lists = {k: [x for s in stats for x in getattr(s, k)]
             for k in ("code", "identity", "i1101", "i2201", "i2204", "settle", "whole", "notify_lag")}
    errors, first_error = merge_errors(stats)
    flows = len(lists["whole"])
    gateway_cpu = ((gw[1] - gw0[0]) / CLK_TCK) if gw and gw0 else 0.0

    def p50(values: list[float]) -> float | None:
        return to_ms(percentile(values, 50)) if values else None

    return {
        "backend": stack.backend, "terminals": n, "seconds": round(wall, 3), "flows": flows,
        "flows_per_s": round(flows / wall, 2) if wall else None,
        **_p(lists["identity"], "scan_to_identity"), **_p(lists["settle"], "settle"),
        **_p(lists["whole"], "scan_to_settled"),
        "code_png_p50_ms": p50(lists["code"]), "his_1101_p50_ms": p50(lists["i1101"]),
        "his_2201_p50_ms": p50(lists["i2201"]), "his_2204_p50_ms": p50(lists["i2204"]),
        "notify_after_settle_answer_p50_ms": p50(lists["notify_lag"]),
        "notify_after_settle_answer_max_ms": to_ms(max(lists["notify_lag"])) if lists["notify_lag"] else None,
        "cash_captured_fen": sum(s.cash_fen for s in stats),
        "per_terminal_min_max": [min(len(s.whole) for s in stats), max(len(s.whole) for s in stats)],
        # CPU per flow: the server's supervisor and workers (without the simulator), the gateway simulator,
        # PostgreSQL (the server's backends + its background processes), this process (apps, terminals, HIS)
        **cpu_fields(cpu, flows, "flow", gateway_cpu_s=gateway_cpu, postgres=stack.backend == "postgresql"),
        "errors": dict(errors), "first_error": first_error,
    }


def bench_backend(backend: str, cfg: Config, log: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from medpay.adapters.gateway.port import statement_day

    rows: list[dict[str, Any]] = []
    with QrStack(backend, cfg.pg_url, cfg.workers, max(cfg.terminals), log) as stack, NotifyReceiver() as receiver:
        facts = stack.facts
        began = time.time()
        if not cfg.gateway_callbacks:  # the simulator's own fault switch: no capture/void callbacks at all
            import httpx

            httpx.post(f"{stack.gateway_url}/sim/faults", json={"operation": "callback", "mode": "never"},
                       timeout=10).raise_for_status()
        facts["gateway_callbacks"] = cfg.gateway_callbacks
        facts["warmup_flows"] = facts["warmup_cash_fen"] = 0
        # warm-up (imports, pools, the first code of each worker), checked, not reported
        warm = [Terminal(stack, i, receiver, f"w{i}") for i in range(min(2, max(cfg.terminals)))]
        try:
            for t in warm:
                st = _Stats()
                _worker(t, st, {"deadline": time.perf_counter() + 60, "checked": False}, None, max_flows=3)
                if st.errors:
                    raise RuntimeError(f"warm-up flow failed on {backend}: {st.first_error}")
                facts["warmup_flows"] += len(st.whole)
                facts["warmup_cash_fen"] += st.cash_fen
        finally:
            for t in warm:
                t.close()
        for n in cfg.terminals:
            row = run_terminals(stack, receiver, n, cfg.seconds, f"t{n}")
            rows.append(row)
            log(f"{backend:<10} {n} terminal(s) {row['flows_per_s']:>6,.2f} flows/s  scan→settled p50 "
                f"{fmt(row['scan_to_settled_p50_ms'], ',.0f')} ms p99 {fmt(row['scan_to_settled_p99_ms'], ',.0f')} "
                f"ms" + (f"  errors {row['errors']} {row['first_error']}" if row["errors"] else ""))
        facts["duplicate_notices"] = receiver.duplicates
        # the gateway's statement against our payments, to the fen, for every (China Standard Time) day of the run
        days = sorted({statement_day(began), statement_day()})
        statements = [stack.admin_get(f"/api/v1/admin/payments/statement/{d.isoformat()}") for d in days]
        facts["statement"] = {
            "days": [d.isoformat() for d in days], "rows": sum(s["rows"] for s in statements),
            "gateway_total_fen": sum(s["gateway_total_fen"] for s in statements),
            "medpay_total_fen": sum(s["medpay_total_fen"] for s in statements),
            "balanced": all(s["balanced"] for s in statements),
            "mismatches": sum(len(s.get("mismatches") or []) for s in statements)}
        facts["flows_settled"] = sum(r["flows"] for r in rows) + facts["warmup_flows"]
        facts["cash_captured_fen"] = sum(r["cash_captured_fen"] for r in rows) + facts["warmup_cash_fen"]
        facts["ledger_ok"] = stack.admin_get("/api/v1/admin/ledger/check").get("ok")
    return rows, facts


# ============================================================================ reporting


def _check_line(b: dict[str, Any]) -> str:
    st = b.get("statement") or {}
    same = st.get("rows") == b.get("flows_settled") and st.get("gateway_total_fen") == b.get("cash_captured_fen")
    return (f"{b['backend']}: {b.get('flows_settled')} flows settled (warm-up included), gateway statement "
            f"{st.get('rows')} captures, ¥{(st.get('gateway_total_fen') or 0) / 100:,.2f} "
            f"({'= ours, balanced' if same and st.get('balanced') else 'MISMATCH'}); ledger "
            f"{'ok' if b.get('ledger_ok') else 'NOT ok'}; duplicate notices {b.get('duplicate_notices')}")


def render_tables(result: dict[str, Any]) -> list[Any]:
    from rich.table import Table

    m, c = result["machine"], result["config"]
    dec = Table(title=f"medpay QR decode, phone-like 1280×960 JPEGs ({result['mode']}, {result['date'][:19]}Z, "
                      f"{m['usable_cpus']} CPU, {c['images_per_class']} images per class)", title_justify="left")
    for col, just in (("class", "left"), ("decoded", "right"), ("p50", "right"), ("p95", "right"), ("max", "right"),
                      ("pass that found it", "left")):
        dec.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in result["decode"]:
        fails = f"; failed: {r['failures']}" if r["failures"] else ""
        dec.add_row(r["class"], f"{r['decoded_share']:.0%}", f"{r['decode_p50_ms']:,.0f} ms",
                    f"{r['decode_p95_ms']:,.0f} ms", f"{r['decode_max_ms']:,.0f} ms",
                    ", ".join(f"{k} {v}" for k, v in r["passes"].items()) + fails)
    rd = result["render"]
    dec.add_section()
    dec.add_row("render (segno PNG)", "", f"{rd['png_p50_ms']:,.1f} ms", f"{rd['png_p95_ms']:,.1f} ms",
                f"{rd['png_max_ms']:,.1f} ms", f"{rd['scale_px_per_module']} px/module, {rd['png_bytes']:,} B; "
                                               f"SVG p50 {rd['svg_p50_ms']:,.1f} ms")
    http = Table(title=f"scan → settled over HTTP (medpay serve --workers {c['workers']} + gateway simulator, "
                       f"{c['seconds']:g} s per run)", title_justify="left")
    for col, just in (("backend", "left"), ("term.", "right"), ("flows/s", "right"), ("scan→id p50/p99", "right"),
                      ("settle p50/p99", "right"), ("scan→settled p50/p99", "right"), ("notes", "left")):
        http.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in result["scan_to_settled"]:
        errs = f"; errors {r['errors']}" if r["errors"] else ""
        pg = f", PG {r['postgres_cpu_ms_per_flow']}" if r["postgres_cpu_ms_per_flow"] is not None else ""
        http.add_row(
            r["backend"], str(r["terminals"]), fmt(r["flows_per_s"], ",.2f"),
            f"{fmt(r['scan_to_identity_p50_ms'], ',.0f')}/{fmt(r['scan_to_identity_p99_ms'], ',.0f')} ms",
            f"{fmt(r['settle_p50_ms'], ',.0f')}/{fmt(r['settle_p99_ms'], ',.0f')} ms",
            f"{fmt(r['scan_to_settled_p50_ms'], ',.0f')}/{fmt(r['scan_to_settled_p99_ms'], ',.0f')} ms",
            f"1101/2201/2204 p50 {fmt(r['his_1101_p50_ms'], '.0f')}/{fmt(r['his_2201_p50_ms'], '.0f')}/"
            f"{fmt(r['his_2204_p50_ms'], '.0f')} ms; CPU ms/flow server {r['server_cpu_ms_per_flow']}, gateway "
            f"{r['gateway_cpu_ms_per_flow']}{pg}, client {r['client_cpu_ms_per_flow']}; busy "
            f"{fmt(r['machine_busy'], '.0%')}, other {r['other_cpu_cores']} cores{errs}")
    http.caption = "\n".join(_check_line(b) for b in result["backends"])
    return [dec, http]


# ============================================================================ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.qr", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10 images per class, 3 s per HTTP run (smoke run)")
    p.add_argument("--seconds", type=float, default=None, help="length of every HTTP run (default 15, quick 3)")
    p.add_argument("--images", type=int, default=None, help="images per distortion class (default 40, quick 10)")
    p.add_argument("--terminals", default=",".join(map(str, TERMINAL_COUNTS)),
                   help="concurrent terminals per run (default 1,4,8)")
    p.add_argument("--workers", type=int, default=2, help="medpay serve worker processes (default 2)")
    p.add_argument("--backends", default="sqlite,postgresql", help="default sqlite,postgresql")
    add_pg_url_argument(p)
    p.add_argument("--no-gateway-callbacks", action="store_true",
                   help="tell the simulator never to send its capture/void callbacks (each one makes the server run "
                        "payment recovery)")
    add_out_argument(p, DEFAULT_OUT)
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    terminals = parse_counts(args.terminals, "--terminals", args.workers)
    backends = tuple(b.strip() for b in str(args.backends).split(",") if b.strip())
    if set(backends) - {"sqlite", "postgresql"}:
        raise SystemExit("--backends: sqlite and/or postgresql")
    images = args.images if args.images is not None else (10 if args.quick else 40)
    return Config(quick=args.quick, images_per_class=max(1, images), renders=100 if args.quick else 300,
                  seconds=args.seconds if args.seconds is not None else (3.0 if args.quick else 15.0),
                  terminals=terminals, workers=args.workers, backends=backends,
                  pg_url=resolve_pg_url(args.pg_url), out=args.out,
                  gateway_callbacks=not args.no_gateway_callbacks)


def run(cfg: Config, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    started = time.perf_counter()
    result = result_header("medpay.qr", cfg.quick, {
        "images_per_class": cfg.images_per_class, "frame": list(FRAME), "renders": cfg.renders,
        "seconds": cfg.seconds, "terminals": list(cfg.terminals), "workers": cfg.workers,
        "backends": list(cfg.backends), "fee_lines": len(_five_lines()[0]),
        "gateway_callbacks": cfg.gateway_callbacks,
        "business_type": BUSINESS_TYPE,
        "transport": "threads; per terminal: httpx keep-alive clients for the app and the scanner, "
                     "one medpay.his_client.HisClient"})
    result["render"] = bench_render(cfg.renders)
    log(f"render   segno PNG p50 {result['render']['png_p50_ms']} ms")
    result["decode"] = bench_decode(cfg.images_per_class, log)
    rows: list[dict[str, Any]] = []
    backends: list[dict[str, Any]] = []
    for backend in cfg.backends:
        r, facts = bench_backend(backend, cfg, log)
        rows += r
        backends.append(facts)
        if backend == "postgresql":
            result["machine"]["postgresql"] = facts.get("server_version")
    result["scan_to_settled"] = rows
    result["backends"] = backends
    return finish(result, started)


def main(argv: list[str] | None = None) -> int:
    return tables_main(argv, parse_args, build_config, run, render_tables, 170)  # SIGTERM unwinds QrStack.close()


if __name__ == "__main__":
    sys.exit(main())
