"""EST bodies (RFC 7030 / 8951): what the service and the agent exchange, checked
against the openssl binary on the other end."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certwiz.errors import InputError
from certwiz.est import wire


@pytest.fixture(scope="module")
def csr_der(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A DER PKCS#10 made by the openssl binary, as a plain EST client makes it."""
    work = tmp_path_factory.mktemp("wire")
    key = work / "k.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", str(key)],
        check=True, capture_output=True,
    )  # fmt: skip
    return subprocess.run(
        ["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=bot", "-outform", "DER"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip


def _self_signed(cn: str, issuer: str | None = None) -> x509.Certificate:
    import datetime as dt

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    by = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, issuer or cn)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(by)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


@pytest.mark.parametrize(
    "framing",
    [
        lambda d: base64.b64encode(d),  # one line
        lambda d: base64.encodebytes(d),  # 76-column lines (the base64 tool)
        lambda d: base64.encodebytes(d).replace(b"\n", b"\r\n"),  # CRLF
        lambda d: b"  " + base64.b64encode(d) + b"\n\n",  # stray whitespace
    ],
)
def test_csr_body_with_or_without_line_breaks(csr_der: bytes, framing) -> None:  # type: ignore[no-untyped-def]
    assert wire.decode_csr(framing(csr_der)) == csr_der


def test_encode_csr_round_trips(csr_der: bytes) -> None:
    assert wire.decode_csr(wire.encode_csr(csr_der)) == csr_der


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"not base64 at all!", "not base64"),
        (b"-----BEGIN CERTIFICATE REQUEST-----", "not base64"),
        (base64.b64encode(b"\x30\x03\x02\x01\x01"), "not a DER PKCS#10"),
        (base64.b64encode(b"hello"), "not a DER PKCS#10"),
        (b"A" * (wire.MAX_REQUEST_BYTES + 1), "larger than"),
    ],
)
def test_garbage_request_bodies_refused(body: bytes, rule: str) -> None:
    with pytest.raises(InputError) as caught:
        wire.decode_csr(body)
    assert caught.value.field == "body"
    assert rule in caught.value.rule
    assert "\n" not in str(caught.value)


def test_largest_accepted_body_holds_the_largest_csr() -> None:
    """The cap is not below what load_csr accepts, framed with line breaks."""
    from certwiz.issue import MAX_CSR_BYTES

    assert len(base64.encodebytes(b"\0" * MAX_CSR_BYTES)) <= wire.MAX_REQUEST_BYTES


def test_certs_only_read_by_openssl(tmp_path: Path) -> None:
    """What the service sends: `base64 -d | openssl pkcs7 -inform DER -print_certs` reads it."""
    certs = [_self_signed("leaf", "sub"), _self_signed("sub", "root"), _self_signed("root")]
    body = wire.encode_certs(certs)
    der = tmp_path / "p7.der"
    der.write_bytes(base64.b64decode(body))
    out = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-in", str(der), "-print_certs"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    printed = x509.load_pem_x509_certificates(out)
    assert sorted(c.serial_number for c in printed) == sorted(c.serial_number for c in certs)
    assert sorted(wire.decode_certs(body), key=str) == sorted(certs, key=str)


def test_certs_only_made_by_openssl_decoded(tmp_path: Path) -> None:
    """What another EST server sends (openssl crl2pkcs7 -nocrl), one base64 line."""
    cert = _self_signed("other")
    pem = tmp_path / "c.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    der = subprocess.run(
        ["openssl", "crl2pkcs7", "-nocrl", "-certfile", str(pem), "-outform", "DER"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    assert wire.decode_certs(base64.b64encode(der)) == [cert]


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (b"", "empty"),
        (b"%%%", "not base64"),
        (base64.b64encode(b"\x30\x00"), "not a DER certs-only PKCS#7"),
        (b"A" * (wire.MAX_RESPONSE_BYTES + 1), "larger than"),
    ],
)
def test_garbage_responses_refused(body: bytes, rule: str) -> None:
    with pytest.raises(InputError) as caught:
        wire.decode_certs(body)
    assert caught.value.field == "response"
    assert rule in caught.value.rule


def test_media_type() -> None:
    assert wire.media_type("Application/PKCS10; charset=x") == wire.CSR_TYPE
    assert wire.media_type(wire.CERTS_ONLY_TYPE) == wire.PKCS7_TYPE
    assert wire.media_type(None) == ""
    assert wire.SIMPLEREENROLL == "/.well-known/est/simplereenroll"


def test_leaf_of_finds_the_leaf_whatever_the_order() -> None:
    leaf, sub, root = _self_signed("leaf", "sub"), _self_signed("sub", "root"), _self_signed("root")
    for order in ([root, leaf, sub], [sub, root, leaf], [leaf]):
        assert wire.leaf_of(order) == leaf
    with pytest.raises(InputError, match="found 2"):
        wire.leaf_of([leaf, _self_signed("other", "sub")])
