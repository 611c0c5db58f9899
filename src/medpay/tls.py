"""HTTPS for ``medpay serve``: the operator's certificate and private key (PEM files), checked before anything
starts. Plain HTTP stays the default; a face kiosk's page needs HTTPS on any host but localhost, because browsers
give the camera (``getUserMedia``) and WebCrypto only to a secure context.

``MEDPAY_TLS_CERT_FILE`` / ``MEDPAY_TLS_KEY_FILE`` (or ``--tls-cert`` / ``--tls-key``): both or neither.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

CERT_ENV = "MEDPAY_TLS_CERT_FILE"
KEY_ENV = "MEDPAY_TLS_KEY_FILE"


class TlsSettingError(ValueError):
    """A TLS setting that can't be served; the message names the setting and why."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def tls_files(cert: Path | str | None, key: Path | str | None) -> TlsFiles | None:
    """The certificate and key to serve HTTPS with, once they load as a pair; None for plain HTTP."""
    cert = Path(cert) if cert else None
    key = Path(key) if key else None
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = (CERT_ENV, KEY_ENV) if key is None else (KEY_ENV, CERT_ENV)
        raise TlsSettingError(f"{missing}: missing — {given} is set; HTTPS needs the certificate and its key")
    for setting, path in ((CERT_ENV, cert), (KEY_ENV, key)):
        if not path.is_file():
            raise TlsSettingError(f"{setting}: no such file {str(path)!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as e:
        raise TlsSettingError(f"{CERT_ENV}/{KEY_ENV}: {str(cert)!r} and {str(key)!r} are not a PEM certificate "
                              f"and its private key ({e.reason or e})") from None
    except OSError as e:
        raise TlsSettingError(f"{CERT_ENV}/{KEY_ENV}: can't read {str(cert)!r} or {str(key)!r} ({e})") from None
    return TlsFiles(cert, key)
