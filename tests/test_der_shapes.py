"""dershape's shortcut reader (_Shape) answers as cryptography does, or leaves it to cryptography.

`list` takes every certificate's kind, and `client issue` its validity and "a plain
client", from a small DER reader that knows the shapes openssl writes for certwiz. Here
every answer it gives is compared with cryptography's on real certificates of every
kind, and on thousands of damaged copies: it must agree, or decline (None).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from cryptography import x509

from certwiz import ca, der, dershape, issue
from certwiz.profile import Profile
from tests.conftest import hand_sign

# damaged copies include zero serials, which cryptography loads with a deprecation warning
pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number")

EXTENSIONS = {  # hand-signed shapes: name -> openssl.cnf extension lines
    "both": "extendedKeyUsage = serverAuth, clientAuth",
    "critical_eku": "extendedKeyUsage = critical, clientAuth",
    "no_eku": "basicConstraints = CA:FALSE",
    "code": "extendedKeyUsage = codeSigning",
    "crldp": "extendedKeyUsage = clientAuth\ncrlDistributionPoints = URI:http://x/crl.pem",
    "email_san": "extendedKeyUsage = clientAuth\nsubjectAltName = email:a@b.c",
    "ca_pathlen": "basicConstraints = critical, CA:TRUE, pathlen:0\nkeyUsage = keyCertSign",
    "aki_issuer": "authorityKeyIdentifier = keyid:always, issuer:always",
    "ku_many": "keyUsage = digitalSignature, keyEncipherment, dataEncipherment",
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    home = tmp_path_factory.mktemp("shapes")
    profile: Profile = ca.init("shapes", home)
    issue.issue_client(profile, "client")
    issue.issue_server(profile, "server.example", sans=["10.0.0.5", "::1", "alt.example"])
    found = {
        "ca": profile.ca_cert.read_bytes(),
        "client": profile.cert_path("client").read_bytes(),
        "server": profile.cert_path("server.example").read_bytes(),
    }
    for name, lines in EXTENSIONS.items():
        ext = home / f"{name}.cnf"
        ext.write_text(f"[x]\n{lines}\n")
        crt = hand_sign(profile.cnf, home / "hand", name, "-extfile", str(ext), "-extensions", "x")
        found[name] = crt.read_bytes()
    return found


def _reference(data: bytes) -> tuple[str, tuple[object, object] | None]:
    """cryptography's kind and validity (None when it cannot read the certificate)."""
    kind = der._kind_of(data)
    try:
        cert = x509.load_der_x509_certificate(data)
        return kind, (cert.not_valid_before_utc, cert.not_valid_after_utc)
    except (ValueError, x509.InvalidVersion):
        return kind, None


def _agrees(data: bytes) -> bool:
    """The shortcut declines, or says what cryptography says."""
    shape = dershape._shape(data)
    if shape is None:
        return True
    kind, validity = _reference(data)
    fast = "ca" if shape.is_ca() else None
    if fast is None:
        usages = shape.usages()
        fast = (
            "other"
            if usages is None
            else der._kind_text(dershape._SERVER_AUTH in usages, dershape._CLIENT_AUTH in usages)
        )
    return fast == kind and shape.validity == validity


def test_the_shortcut_knows_what_certwiz_issues(certs: dict[str, bytes]) -> None:
    for name in ("ca", "client", "server", "both", "critical_eku", "no_eku", "ca_pathlen"):
        assert dershape._shape(der.pem_to_der(certs[name])) is not None, name


def test_every_answer_is_cryptographys(
    certs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, pem in certs.items():
        data = der.pem_to_der(pem)
        assert _agrees(data), name
        assert der.kind_of(pem) == der._kind_of(data), name
    monkeypatch.setattr(der, "_KINDS_BY_SHORTCUT", [1])  # thousands listed: cryptography
    kinds = [der.kind_of(pem) for pem in certs.values()]
    assert kinds == [der._kind_of(der.pem_to_der(pem)) for pem in certs.values()]
    assert der._KINDS_BY_SHORTCUT == [0]


def test_damaged_copies_are_declined_or_read_alike(certs: dict[str, bytes]) -> None:
    """Single bytes changed anywhere, and the certificate cut short: never another answer."""
    rng = random.Random(7)
    declined = 0
    for name, pem in certs.items():
        data = der.pem_to_der(pem)
        for _ in range(400):
            copy = bytearray(data)
            at = rng.randrange(len(copy))
            copy[at] = rng.choice([copy[at] ^ (1 << rng.randrange(8)), rng.randrange(256)])
            assert _agrees(bytes(copy)), (name, at, copy[at])
            declined += dershape._shape(bytes(copy)) is None
        for size in range(0, len(data), 7):
            assert dershape._shape(data[:size]) is None
    assert declined  # the damage was seen, not only agreed with


def test_plain_client_and_validity_answer_alike(certs: dict[str, bytes], tmp_path: Path) -> None:
    for name, pem in certs.items():
        data = der.pem_to_der(pem)
        cert = x509.load_der_x509_certificate(data)
        assert der.cert_validity(data) == (cert.not_valid_before_utc, cert.not_valid_after_utc)
        assert (der.plain_client_problem(pem) is None) == (name == "client"), name


@pytest.fixture(scope="module")
def crls(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, bytes, bytes]]:
    """(CRL DER, its signer's PEM, another CA's PEM): EC and RSA CAs, empty and not."""
    from certwiz import check, revoke

    home = tmp_path_factory.mktemp("crls")
    found = []
    ec_profile: Profile = ca.init("ec", home)
    rsa_profile: Profile = ca.init("rsa", home, ca.CAOptions(key_type="rsa:2048"))
    for profile, other in ((ec_profile, rsa_profile), (rsa_profile, ec_profile)):
        found.append((check.crl_der(profile.crl), profile.ca_cert.read_bytes(), b""))
        for n, reason in enumerate(("keyCompromise", "unspecified", "superseded")):
            issue.issue_client(profile, f"c{n}")
            revoke.revoke(profile, name=f"c{n}", reason=reason)
        other_pem = other.ca_cert.read_bytes()
        found.append((check.crl_der(profile.crl), profile.ca_cert.read_bytes(), other_pem))
    return found


def _crl_reference(data: bytes, signer_pem: bytes) -> tuple[object, str | None]:
    """cryptography's serials ("error" if it cannot read the CRL) and signature verdict."""
    try:
        crl = x509.load_der_x509_crl(data)
        serials: object = ({e.serial_number for e in crl}, crl.last_update_utc, crl.next_update_utc)
    except (ValueError, x509.InvalidVersion):
        return "error", "error"
    try:
        signer = x509.load_pem_x509_certificate(signer_pem)
        if crl.issuer != signer.subject:
            return serials, "issued by another name"
        valid = crl.is_signature_valid(signer.public_key())  # type: ignore[arg-type]
        return serials, None if valid else "bad signature"
    except (ValueError, TypeError):
        return serials, "error"


def _crl_agrees(data: bytes, signer_pem: bytes) -> bool:
    serials, verdict = _crl_reference(data, signer_pem)
    try:
        got: object = (der.crl_serials(data), *der.crl_times(data))
    except ValueError:
        got = "error"
    problem = der.crl_signature_problem(data, signer_pem)
    if verdict in (None, "bad signature", "issued by another name"):
        same_verdict = problem == verdict
    else:
        same_verdict = problem is not None
    return got == serials and same_verdict


def test_crls_read_alike(crls: list[tuple[bytes, bytes, bytes]]) -> None:
    for data, signer, other in crls:
        assert dershape._crl_shape(data) is not None  # openssl's CRLs take the shortcut
        assert _crl_agrees(data, signer)
        assert der.crl_signature_problem(data, signer) is None
        if other:
            assert _crl_agrees(data, other)
            assert der.crl_signature_problem(data, other) is not None


def test_damaged_crls_are_declined_or_read_alike(crls: list[tuple[bytes, bytes, bytes]]) -> None:
    rng = random.Random(8)
    for data, signer, _ in crls:
        for _ in range(300):
            copy = bytearray(data)
            at = rng.randrange(len(copy))
            copy[at] = rng.choice([copy[at] ^ (1 << rng.randrange(8)), rng.randrange(256)])
            assert _crl_agrees(bytes(copy), signer), (at, copy[at])
        for size in range(0, len(data), 11):
            assert _crl_agrees(data[:size], signer)


def test_a_crl_of_another_version_is_corrupt_not_a_crash(
    crls: list[tuple[bytes, bytes, bytes]],
) -> None:
    """cryptography's InvalidVersion is no ValueError: it escaped as a traceback before."""
    data = bytearray(crls[1][0])
    at = data.index(b"\x02\x01\x01")  # tbsCertList's version, v2
    data[at + 2] = 0
    with pytest.raises(der.DERError):
        der.crl_serials(bytes(data))


def test_keys_compare_as_cryptography_writes_them(certs: dict[str, bytes]) -> None:
    """key_of takes an EC key's bytes as they are: exactly cryptography's SubjectPublicKeyInfo,
    and None where cryptography cannot read the key, on damaged copies too."""
    rng = random.Random(9)
    for name, pem in certs.items():
        data = der.pem_to_der(pem)
        assert der.key_of(data) == der.spki(data), name
        for _ in range(300):
            copy = bytearray(data)
            at = rng.randrange(len(copy))
            copy[at] = rng.randrange(256)
            assert _outcome(der.key_of, bytes(copy)) == _outcome(_spki_or_none, bytes(copy))


def _spki_or_none(data: bytes) -> bytes | None:
    try:
        return der.spki(data)
    except (ValueError, TypeError):
        return None


def _outcome(function: object, data: bytes) -> object:
    """What FUNCTION(DATA) returns, or the type of what it raises."""
    try:
        return function(data)  # type: ignore[operator]
    except Exception as exc:
        return type(exc)
