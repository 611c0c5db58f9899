"""HTTPS settings of ``medpay serve``: both files or neither, files that exist, a certificate and its own key —
each refusal names the setting, before anything starts."""

from __future__ import annotations

import pytest

from medpay.tls import CERT_ENV, KEY_ENV, TlsFiles, TlsSettingError, tls_files
from tests.helpers_server import run_cli
from tests.helpers_tls import self_signed


def test_plain_http_without_settings_and_https_with_a_matching_pair(tmp_path) -> None:
    assert tls_files(None, None) is None
    cert, key = self_signed(tmp_path)
    assert tls_files(cert, key) == TlsFiles(cert, key)
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_refusals_name_the_setting(tmp_path) -> None:
    cert, key = self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = self_signed(other)
    with pytest.raises(TlsSettingError, match=f"^{KEY_ENV}: missing"):
        tls_files(cert, None)
    with pytest.raises(TlsSettingError, match=f"^{CERT_ENV}: missing"):
        tls_files(None, key)
    with pytest.raises(TlsSettingError, match=f"^{CERT_ENV}: no such file"):
        tls_files(tmp_path / "nope.pem", key)
    with pytest.raises(TlsSettingError, match="not a PEM certificate and its private key"):
        tls_files(cert, other_key)  # another certificate's key
    with pytest.raises(TlsSettingError, match="not a PEM certificate and its private key"):
        tls_files(key, cert)  # swapped


def test_serve_stops_on_a_key_that_is_not_the_certificates(tmp_path) -> None:
    cert, _ = self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = self_signed(other)
    out = run_cli(["serve", "--port", "1", "--no-gateway-sim", "--no-sms-sim"], f"sqlite:///{tmp_path / 'db.sqlite'}",
                  tmp_path, env={CERT_ENV: str(cert), KEY_ENV: str(other_key)})
    assert out.returncode != 0
    assert "not a PEM certificate and its private key" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "db.sqlite").exists()  # stopped before anything started
