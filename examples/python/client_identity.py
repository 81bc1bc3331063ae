"""How an app behind the certwiz proxy reads who the client is (`nginx render`).

nginx sets `X-Client-Verify` and `X-Client-Cert` (the client's whole certificate,
PEM, URL-encoded) on every request it forwards, replacing whatever the client sent.
Read the name from the certificate as a value, never by splitting a DN string:
`X-Client-Cert-Subject` is RFC 4514 text where the client `guest,CN=admin` is
`CN=guest\\,CN=admin`, which a split on ',' misreads as CN=admin.

    from client_identity import client_name
    name = client_name(request.headers)   # "guest,CN=admin", exactly as issued

The app must be reachable only through the proxy (bind it to 127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

from cryptography import x509
from cryptography.x509.oid import NameOID


def client_name(headers: Mapping[str, str]) -> str:
    """The CN of the verified client certificate; PermissionError when there is none."""
    if headers.get("X-Client-Verify") != "SUCCESS" or not headers.get("X-Client-Cert"):
        raise PermissionError("no verified client certificate")
    cert = x509.load_pem_x509_certificate(unquote(headers["X-Client-Cert"]).encode())
    (cn,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)  # certwiz: exactly one
    return str(cn.value)
