"""Call an mTLS-protected URL with httpx and a certwiz PKCS#12 bundle.

    CERTWIZ_P12_PASSPHRASE=... python examples/python/httpx_p12.py URL BUNDLE.p12 CA.crt

Python's ssl module cannot read PKCS#12, so the bundle is opened with cryptography and
handed to an ssl.SSLContext (load_cert_chain) through a private temporary directory,
the key re-encrypted there with a random one-time password. With PEM files
(issued/NAME.crt, private/NAME.key) call ctx.load_cert_chain(crt, key) directly.
Needs: pip install httpx cryptography
"""

from __future__ import annotations

import getpass
import os
import secrets
import ssl
import sys
import tempfile
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    pkcs12,
)


def password() -> str:
    if "CERTWIZ_P12_PASSPHRASE" in os.environ:
        return os.environ["CERTWIZ_P12_PASSPHRASE"]
    return getpass.getpass("Bundle password: ") if sys.stdin.isatty() else ""


def context_from_p12(p12: Path, bundle_password: str, ca: str) -> ssl.SSLContext:
    """An SSLContext that trusts CA and presents the bundle's certificate and key."""
    key, cert, _ca_certs = pkcs12.load_key_and_certificates(
        p12.read_bytes(), bundle_password.encode() or None
    )
    if key is None or cert is None:
        raise SystemExit(f"{p12}: no key or certificate in the bundle")
    one_time = secrets.token_urlsafe(32)
    ctx = ssl.create_default_context(cafile=ca)
    with tempfile.TemporaryDirectory() as tmp:  # created 0700
        chain, key_file = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
        chain.write_bytes(cert.public_bytes(Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(one_time.encode())
            )
        )
        ctx.load_cert_chain(chain, key_file, password=one_time)
    return ctx


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    url, p12, ca = sys.argv[1:]
    with httpx.Client(verify=context_from_p12(Path(p12), password(), ca), timeout=30) as client:
        response = client.get(url)
    print(response.status_code)
    print(response.text)
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
