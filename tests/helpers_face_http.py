"""The face channel over HTTP against a real server: a face terminal registered with the CLI, counter enrolment
with the staff key, the terminal's signed session, verify and auth-check."""

from __future__ import annotations

import json
import secrets

import httpx

from medpay.adapters.platform_keys import load_or_create_key
from medpay.services.face.enrolment import CONSENT_VERSION
from medpay.services.qr.ecert import sign_terminal_request
from tests.helpers_face import photo_bytes, sequence_jpegs
from tests.helpers_qr import H1
from tests.helpers_server import STAFF, run_cli


def register_face_terminal(stack, code: str = H1[0]) -> dict:
    key_file = stack["tmp"] / f"face-{secrets.token_hex(3)}.key"
    reg = run_cli(["ecert", "terminal-register", "--fixmedins-code", code, "--name", "刷脸自助机1", "--kind", "face",
                   "--key-file", str(key_file)], stack["db_url"], stack["tmp"])
    assert reg.returncode == 0, reg.stderr
    return {"base": stack["base"], "terminal_id": json.loads(reg.stdout)["terminal_id"],
            "terminal_key": load_or_create_key(key_file), "code": code}


def multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = "mpface" + secrets.token_hex(8)
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
             for k, v in fields.items()]
    parts += [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{k}.jpg\"\r\n"
              f"Content-Type: image/jpeg\r\n\r\n".encode() + v + b"\r\n" for k, v in files.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def counter_enrol(base: str, person, photo: str, pin: str) -> httpx.Response:
    body, ctype = multipart({"psn_no": person.psn_no, "certno": person.certno, "pin": pin, "consent": "true",
                             "consent_version": CONSENT_VERSION}, {"image0": photo_bytes(photo)})
    return httpx.post(base + "/api/v1/admin/face/enrolments", content=body, timeout=60,
                      headers={**STAFF, "content-type": ctype})


def post(terminal, path: str, body: bytes, ctype: str) -> httpx.Response:
    headers = sign_terminal_request(terminal["terminal_key"], terminal["terminal_id"], "POST", path, body)
    return httpx.post(terminal["base"] + path, content=body, timeout=120, headers={**headers, "content-type": ctype})


def session(terminal, amount: str = "60.00") -> dict:
    r = post(terminal, "/api/v1/terminal/face/sessions",
             json.dumps({"orgId": terminal["code"], "businessType": "01301", "amount": amount}).encode(), "application/json")
    assert r.status_code == 200, r.text
    return r.json()


def verify(terminal, session_id: str, frames: list[bytes], pin: str, **extra: str) -> httpx.Response:
    body, ctype = multipart({"orgId": terminal["code"], "session_id": session_id, "pin": pin, **extra},
                            {f"frame{i}": f for i, f in enumerate(frames)})
    return post(terminal, "/api/v1/terminal/face/verify", body, ctype)


def face_pay_identity(terminal, name: str, pin: str, seed: int = 0) -> httpx.Response:
    """Session → frames of ``name`` performing its challenge → verify → auth-check."""
    s = session(terminal)
    challenge = tuple(step["action"] for step in s["challenge"])
    v = verify(terminal, s["session_id"], sequence_jpegs(name, challenge, seed), pin)
    if v.status_code != 200:
        return v
    return post(terminal, "/api/v1/terminal/face/auth-check",
                json.dumps({"orgId": terminal["code"], "authNo": v.json()["authNo"]}).encode(), "application/json")
