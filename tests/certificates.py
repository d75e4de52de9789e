"""A self-signed certificate for 127.0.0.1, made with the openssl command (TLS tests)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """`cert.pem` and `key.pem` in `directory`, valid for 127.0.0.1 for a day; the test is
    skipped where there is no openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def trusting(directory: Path) -> ssl.SSLContext:
    """A client's TLS context that trusts the `cert.pem` `self_signed_certificate` made in
    `directory`."""
    return ssl.create_default_context(cafile=str(directory / "cert.pem"))
