"""RFC 7030 bodies, both directions, shared by the EST service and the renewal agent.

A request body is a base64 DER PKCS#10 (`application/pkcs10`); a response is a
base64 DER certs-only PKCS#7 (`application/pkcs7-mime; smime-type=certs-only`).
RFC 8951: plain base64 (no Content-Transfer-Encoding in HTTP), with or without
line breaks, so a reader strips whitespace and a writer may break lines.
Every refusal is an `InputError` with one line saying what was wrong.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import InputError
from ..issue import MAX_CSR_BYTES

if TYPE_CHECKING:
    from cryptography import x509

PREFIX = "/.well-known/est/"  # RFC 7030 3.2.2: the only path EST uses (no CA label here)
CACERTS = PREFIX + "cacerts"
SIMPLEENROLL = PREFIX + "simpleenroll"
SIMPLEREENROLL = PREFIX + "simplereenroll"

CSR_TYPE = "application/pkcs10"
PKCS7_TYPE = "application/pkcs7-mime"
CERTS_ONLY_TYPE = "application/pkcs7-mime; smime-type=certs-only"

# base64 of the largest CSR certwiz reads (4/3 of it) plus a line break every 64 characters
MAX_REQUEST_BYTES = (MAX_CSR_BYTES * 4 // 3 + 4) * 65 // 64 + 2
MAX_RESPONSE_BYTES = 1 << 20  # a chain of a few certificates is a few KiB


def media_type(header: str | None) -> str:
    """The media type of a Content-Type header, lower case, without parameters."""
    return (header or "").split(";", 1)[0].strip().lower()


def _unbase64(body: bytes, field: str, limit: int) -> bytes:
    if len(body) > limit:
        raise InputError(field, f"larger than {limit} bytes")
    text = b"".join(body.split())  # RFC 8951: with or without line breaks
    if not text:
        raise InputError(field, "empty: expected base64 (RFC 7030)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(field, "not base64 (RFC 7030 bodies are base64 DER)") from None


def decode_csr(body: bytes, field: str = "body") -> bytes:
    """The DER PKCS#10 inside an EST request body.

    Only the framing is checked here (size, base64, a DER request that parses);
    the signature and the key are `issue.load_csr`'s to judge.
    """
    der = _unbase64(body, field, MAX_REQUEST_BYTES)
    from cryptography import x509

    try:
        x509.load_der_x509_csr(der)
    except ValueError:
        raise InputError(field, "not a DER PKCS#10 certificate request") from None
    return der


def encode_csr(der: bytes) -> bytes:
    """An EST request body for a DER PKCS#10 (the agent's side)."""
    return base64.encodebytes(der)


def encode_certs(certs: Sequence[x509.Certificate]) -> bytes:
    """A certs-only PKCS#7 of CERTS as base64 with line breaks (the order is not kept)."""
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    return base64.encodebytes(pkcs7.serialize_certificates(list(certs), Encoding.DER))


def decode_certs(body: bytes, field: str = "response") -> list[x509.Certificate]:
    """The certificates of a base64 certs-only PKCS#7 (an EST response).

    The PKCS#7 holds a SET: DER sorts it, so the leaf is not necessarily first
    (`leaf_of` finds it).
    """
    der = _unbase64(body, field, MAX_RESPONSE_BYTES)
    from cryptography.hazmat.primitives.serialization import pkcs7

    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except ValueError:
        raise InputError(field, "not a DER certs-only PKCS#7") from None
    if not certs:
        raise InputError(field, "the PKCS#7 holds no certificate")
    return list(certs)


def leaf_of(certs: Sequence[x509.Certificate], field: str = "response") -> x509.Certificate:
    """The one certificate of CERTS that issued none of the others (the enrolled leaf)."""
    issuers = {cert.issuer for cert in certs if cert.issuer != cert.subject}
    leaves = [cert for cert in certs if cert.subject not in issuers]
    if len(leaves) != 1:
        raise InputError(field, f"expected one leaf certificate, found {len(leaves)}")
    return leaves[0]
