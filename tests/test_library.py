"""The library API (certwiz.api, transaction, sign_csr, passphrase rules), used without the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certwiz import audit, ca, database, issue
from certwiz.api import CA
from certwiz.errors import CertwizError, InputError, LockTimeout
from certwiz.openssl import Secret
from certwiz.profile import Profile
from certwiz.transaction import transaction
from tests.conftest import crl_check, load_cert, snapshot

CA_SECRET = "lib-ca-Secret-27"


def make_csr(
    cn: str = "device", *, key: object = None, ca_true: bool = True, der: bool = False
) -> bytes:
    """A CSR asking for more than it may get: extra RDNs, CA:TRUE and its own SANs."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil Corp"),
            ]
        )
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName("bank.example")]), critical=False
    )
    if ca_true:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    csr = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    return csr.public_bytes(encoding)


@contextlib.contextmanager
def held_elsewhere(profile: Profile) -> Iterator[None]:
    """The profile's lock held by another thread for the duration of the block."""
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with profile.lock(timeout=5):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        yield
    finally:
        release.set()
        holder.join()


def records(profile: Profile) -> list[dict[str, object]]:
    return audit.read(profile)


def test_one_transaction_many_operations_one_record(profile: Profile) -> None:
    before = len(records(profile))
    lib = CA(profile)
    with lib.transaction("batch issue") as tx:
        for name in ("b1", "b2", "b1"):  # the second b1 is refused, the batch goes on
            with contextlib.suppress(CertwizError):
                lib.issue_client(name, unencrypted=True, tx=tx)
    log = records(profile)
    assert len(log) == before + 1
    record = log[-1]
    assert record["command"] == "batch issue" and record["result"] == "ok"
    ops = record["operations"]
    assert isinstance(ops, list)
    assert [(o["names"], o["result"]) for o in ops] == [
        (["b1"], "ok"),
        (["b2"], "ok"),
        (["b1"], "error"),
    ]
    assert "already has a valid certificate" in str(ops[2]["error"])
    assert record["failed_operations"] == 1
    issued = {load_cert(profile.cert_path(n)).serial_number for n in ("b1", "b2")}
    assert {int(str(s), 16) for s in record["serials"]} == issued  # type: ignore[union-attr]
    assert record["names"] == ["b1", "b2"]


def test_transaction_failure_is_recorded_and_raised(profile: Profile) -> None:
    with pytest.raises(RuntimeError), transaction(profile, "experiment", ["x"]):
        raise RuntimeError("secret-free? the record holds only the type name")
    last = records(profile)[-1]
    assert last["result"] == "error" and last["error"] == "RuntimeError"
    assert last["command"] == "experiment"


def test_lock_timeout_is_a_parameter_not_the_environment(
    profile: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTWIZ_LOCK_TIMEOUT", "not a number")  # the library never reads it
    with held_elsewhere(profile):
        before = snapshot(profile.dir)
        with pytest.raises(LockTimeout) as caught:
            CA(profile, lock_timeout=0.2).issue_client("late", unencrypted=True)
        assert caught.value.exit_code == 3 and str(profile.lock_file) in str(caught.value)
        assert snapshot(profile.dir) == before


@pytest.mark.parametrize("der", [False, True])
def test_sign_csr_takes_only_the_key(profile: Profile, tmp_path: Path, der: bool) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    csr = make_csr("device-1", key=key, der=der)
    path = tmp_path / "req.csr"
    path.write_bytes(csr)
    done = issue.sign_csr(profile, path, "device-1", "client", days=30)
    cert = load_cert(profile.cert_path("device-1"))
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.subject.rfc4514_string() == "CN=device-1"  # not the CSR's O=Evil Corp
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert int(done.serial, 16) == cert.serial_number
    assert set(done.files) == {"certificate", "csr"}  # no key, no bundle: it stayed away
    assert not profile.key_path("device-1").exists()
    assert crl_check(profile.ca_cert, profile.crl, profile.cert_path("device-1")).returncode == 0
    assert records(profile)[-1]["command"] == "client sign"


def test_sign_csr_server_gets_certwiz_sans(profile: Profile) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = make_csr("api.example.com", key=key)
    issue.sign_csr(profile, csr, "api.example.com", "server", sans=["10.1.2.3"])
    cert = load_cert(profile.cert_path("api.example.com"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.example.com"]  # not bank.example
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert profile.fullchain_path("api.example.com").is_file()


def tampered() -> bytes:
    raw = bytearray(make_csr(der=True))
    raw[-5] ^= 0x01  # inside the signature
    return bytes(raw)


@pytest.mark.parametrize(
    ("csr", "rule"),
    [
        (b"not a request", "not a PEM or DER certificate signing request"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", "not a PEM or DER"),
        (tampered(), "signature does not verify"),
        (
            make_csr(key=rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            "too weak",
        ),
        (make_csr(key=ec.generate_private_key(ec.SECP256K1())), "not supported"),
        (b"\0" * 70000, "larger than"),
    ],
)
def test_bad_csr_is_refused_and_nothing_changes(profile: Profile, csr: bytes, rule: str) -> None:
    before = snapshot(profile.dir)
    with pytest.raises(InputError) as caught:
        issue.sign_csr(profile, csr, "dev", "client")
    assert caught.value.exit_code == 2 and caught.value.field == "csr"
    assert rule in caught.value.rule
    assert snapshot(profile.dir) == before  # refused before the lock: not even a record


def test_sign_csr_checks_its_other_inputs(profile: Profile, tmp_path: Path) -> None:
    cases = [
        (dict(kind="ca"), "kind"),
        (dict(kind="client", sans=["a.example"]), "san"),
        (dict(kind="server", name="bad name"), "name"),
        (dict(kind="client", days=0), "days"),
    ]
    for overrides, field in cases:
        kwargs: dict[str, object] = {"name": "dev", **overrides}
        name = str(kwargs.pop("name"))
        kind = str(kwargs.pop("kind"))
        with pytest.raises(InputError) as caught:
            issue.sign_csr(profile, make_csr("dev"), name, kind, **kwargs)  # type: ignore[arg-type]
        assert caught.value.field == field
    with pytest.raises(InputError, match="cannot read"):
        issue.sign_csr(profile, tmp_path / "missing.csr", "dev", "client")


def test_not_delivered_keeps_the_exit_code_of_its_cause() -> None:
    assert issue.NotDelivered(InputError("x", "y"), "0A").exit_code == 2
    assert issue.NotDelivered(OSError(28, "No space left on device"), "0A").exit_code == 1
    error = issue.NotDelivered(LockTimeout("busy"), "0A")
    assert error.exit_code == 3 and "certificate 0A was signed but not delivered" in str(error)


@pytest.fixture
def encrypted(home: Path) -> CA:
    created = CA.create("enc", home, passphrase=Secret(CA_SECRET))
    assert created.key_encrypted and created.warnings == []
    return created.ca


def test_ca_passphrase_provider_is_asked_once_and_only_when_needed(
    encrypted: CA, profile: Profile
) -> None:
    asked: list[str] = []

    def provider() -> Secret:
        asked.append("x")
        return Secret(CA_SECRET)

    lib = CA(encrypted.profile, ca_passphrase=provider)
    lib.issue_server("a.example")
    lib.issue_client("c", unencrypted=True)
    lib.generate_crl()
    assert asked == ["x"]
    plain = CA(profile, ca_passphrase=lambda: pytest.fail("an unencrypted CA key needs none"))
    plain.issue_client("d", unencrypted=True)


def test_missing_ca_passphrase_is_an_input_error_before_the_lock(encrypted: CA) -> None:
    encrypted.issue_client("victim", unencrypted=True)
    before = snapshot(encrypted.profile.dir)
    with pytest.raises(InputError) as caught:
        CA(encrypted.profile, ca_passphrase=lambda: None).revoke(name="victim")
    assert caught.value.field == "ca-passphrase-file"
    assert snapshot(encrypted.profile.dir) == before


def test_bundle_password_required_unless_unencrypted(profile: Profile) -> None:
    lib = CA(profile)
    with pytest.raises(InputError) as caught:
        lib.issue_client("bob")
    assert caught.value.field == "p12-passphrase-file" and "-u" in caught.value.rule
    assert not database.read(profile.index)
    done = lib.issue_client("bob", bundle_passphrase=lambda: Secret("bundle-pw-1"))
    from cryptography.hazmat.primitives.serialization import pkcs12

    bundle = pkcs12.load_pkcs12(Path(done.files["p12"]).read_bytes(), b"bundle-pw-1")
    assert bundle.cert is not None


def test_create_returns_the_unencrypted_warning(home: Path) -> None:
    made = CA.create("plain", home)
    assert made.warnings == [ca.UNENCRYPTED_CA_KEY] and not made.key_encrypted
    deliberate = CA.create("plain2", home, unencrypted=True)
    assert deliberate.warnings == []
    assert json.loads(json.dumps(made.warnings))  # plain strings, for --json


def test_cli_keeps_the_lock_timeout_out_of_the_environment(profile: Profile) -> None:
    """--lock-timeout reaches the library as a parameter; os.environ is left alone."""
    from typer.testing import CliRunner

    from certwiz.cli import app

    argv = ["--lock-timeout", "0.1", "crl", "gen", "-p", "my-app", "--home", str(profile.home)]
    with held_elsewhere(profile):
        result = CliRunner().invoke(app, argv)
    assert result.exit_code == 3, result.output
    assert "busy" in result.output
    assert "CERTWIZ_LOCK_TIMEOUT" not in os.environ


def test_crl_signature_is_checked_in_process_and_openssl_agrees(
    profile: Profile, home: Path
) -> None:
    """A CRL signed by another key under the CA's very name: cryptography and openssl refuse it."""
    from certwiz import check

    twin = ca.init("twin", home, ca.CAOptions(common_name="my-app Root CA"))
    good = profile.crl.read_bytes()
    assert check.verify_profile(profile).ok
    profile.crl.write_bytes(twin.crl.read_bytes())
    with pytest.raises(check.ProfileCorrupt, match=r"not a CRL signed by .*bad signature"):
        check.verify_profile(profile)
    # The second opinion: openssl verifies the CA certificate itself against the CRL.
    forged = crl_check(profile.ca_cert, profile.crl, profile.ca_cert)
    assert forged.returncode != 0, forged.stdout
    profile.crl.write_bytes(good)
    assert crl_check(profile.ca_cert, profile.crl, profile.ca_cert).returncode == 0
    assert check.verify_profile(profile).ok
