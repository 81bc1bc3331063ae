"""A service's view of the library: `api.CA` with no environment, no terminal, no printing.

What an HTTP service or a batch job does, as an example to copy: everything it decides
is a parameter (home, lock timeout, CA passphrase, bundle passwords), bad input is an
exception carrying its exit code, results and warnings are values. The results are
checked with cryptography, not by reading certwiz's own output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from certwiz.api import CA
from certwiz.errors import InputError, StateError
from certwiz.openssl import Secret
from certwiz.profile import Profile
from certwiz.transaction import Operation, Transaction, joined
from tests.conftest import drop_certwiz_env, load_cert, load_crl

CA_SECRET = "service-ca-Secret-1"


def device_csr(cn: str = "device-1") -> bytes:
    """A CSR as a device makes it: its own key, which never reaches certwiz."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM)


def test_a_service_runs_a_two_level_ca_through_the_facade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    drop_certwiz_env(monkeypatch)
    monkeypatch.setattr(sys, "stdin", None)  # a service has no terminal: nothing may prompt
    monkeypatch.chdir(tmp_path)  # the ./certs default must not be touched
    environment = dict(os.environ)
    home = tmp_path / "srv"

    made = CA.create("svc", home, passphrase=Secret(CA_SECRET), intermediate=True)
    assert made.key_encrypted and made.warnings == []
    svc = CA.open("svc", home, lock_timeout=5, ca_passphrase=Secret(CA_SECRET))

    server = svc.issue_server("api.example", days=30, sans=["10.0.0.5"])
    device = svc.sign_csr(device_csr(), None, "client", days=7)  # the name is the CSR's CN
    with svc.transaction("batch issue") as tx:  # one lock, one audit record
        svc.issue_client("bot-1", unencrypted=True, tx=tx)
        bot2 = svc.issue_client("bot-2", bundle_passphrase=Secret("bundle-pw-2"), tx=tx)
        with pytest.raises(InputError) as bad:  # refused before it joins the transaction
            svc.issue_client("../bot-3", unencrypted=True, tx=tx)
    assert bad.value.exit_code == 2 and bad.value.field == "name"
    asked: list[str] = []

    def bundle_password() -> Secret:  # asked only for a bundle that has a password
        asked.append("bot-2")
        return Secret("bundle-pw-2")

    renewed = svc.renew("bot-2", "client", days=30, bundle_passphrase=bundle_password)
    svc.renew("bot-1", "client", bundle_passphrase=lambda: pytest.fail("bot-1 has no password"))
    assert asked == ["bot-2"] and renewed.superseded == bot2.serial
    bundle = pkcs12.load_pkcs12(Path(renewed.files["p12"]).read_bytes(), b"bundle-pw-2")
    assert bundle.cert is not None and bundle.cert.certificate.serial_number == int(
        renewed.serial, 16
    )
    remade = svc.rebundle("bot-2", p12_format="modern", key_passphrase=bundle_password)
    svc.rebundle("bot-1", key_passphrase=lambda: pytest.fail("bot-1's key has no password"))
    assert asked == ["bot-2", "bot-2"] and remade.p12_format == "modern"
    handed = svc.onboarding_bundle(
        "bot-2", tmp_path / "hand-over", bundle_passphrase=Secret("bundle-pw-2")
    )
    assert (Path(handed.out_dir) / "ca.crt").read_bytes() == svc.profile.ca_cert.read_bytes()
    with pytest.raises(StateError):  # api.example is served already
        svc.sign_csr(device_csr("www.example"), None, "server", sans=["api.example"])
    shared = svc.sign_csr(
        device_csr("www.example"), None, "server", sans=["api.example"], allow_shared_san=True
    )
    with svc.transaction("batch revoke") as tx:  # revocations share a transaction too
        revoked = svc.revoke(name="bot-1", reason="keyCompromise", tx=tx)
        svc.revoke(name="www.example", tx=tx)

    root, signer = load_cert(svc.profile.ca_cert), load_cert(svc.profile.intermediate_cert)
    signer.verify_directly_issued_by(root)
    for issued in (server, device, renewed):
        leaf = load_cert(Path(issued.files["certificate"]))
        leaf.verify_directly_issued_by(signer)
        assert leaf.serial_number == int(issued.serial, 16)
    assert device.name == "device-1" and "key" not in device.files
    crl = load_crl(svc.profile.crl)
    assert crl.is_signature_valid(signer.public_key())  # type: ignore[arg-type]
    for serial in (revoked.serials[0], shared.serial):
        assert crl.get_revoked_certificate_by_serial_number(int(serial, 16))

    def operations(command: str) -> list[object]:
        [record] = [r for r in svc.audit() if r.get("command") == command]
        return [(op["command"], op["names"]) for op in record["operations"]]  # type: ignore[attr-defined]

    assert operations("batch issue") == [("client issue", ["bot-1"]), ("client issue", ["bot-2"])]
    assert operations("batch revoke") == [("revoke", ["bot-1"]), ("revoke", ["www.example"])]

    keys: list[str] = []

    def key_password() -> Secret:  # bot-2's key is encrypted with its bundle password
        keys.append("bot-2")
        return Secret("bundle-pw-2")

    exported = svc.export_bytes(
        "bot-2", "p12", bundle_passphrase=Secret("export-pw-1"), key_passphrase=key_password
    )
    assert keys == ["bot-2"]
    assert pkcs12.load_pkcs12(exported, b"export-pw-1").key is not None
    plain = svc.export_bytes(
        "api.example", "p12", unencrypted=True, key_passphrase=lambda: pytest.fail("no password")
    )
    assert pkcs12.load_pkcs12(plain, b"").cert is not None
    with pytest.raises(InputError) as no_password:  # a p12 needs one unless unencrypted
        svc.export_bytes("api.example", "p12", unencrypted=False)
    assert no_password.value.field == "p12-passphrase-file"

    asked_ca: list[str] = []

    def ca_password() -> Secret:
        asked_ca.append("ca")
        return Secret(CA_SECRET)

    ocsp_user = CA(svc.profile, ca_passphrase=ca_password)
    assert ocsp_user.ensure_ocsp_responder() is not None  # signs: asks once
    assert ocsp_user.ensure_ocsp_responder() is None  # nothing due: asks nothing
    assert asked_ca == ["ca"]

    code, items = svc.status(warn="400d")  # a monitor's view: the 30-day leaves warn
    assert code == 1 and {"warning"} <= {item.state for item in items}
    rendered = svc.render_nginx("api.example", "http://127.0.0.1:9")
    findings = svc.diagnose(Path(rendered.files["site"])).findings
    assert not [f for f in findings if f.severity == "error"], findings

    rolled = svc.renew_ca(days=900)  # same key: every leaf above keeps verifying
    load_cert(svc.profile.intermediate_cert).verify_directly_issued_by(root)
    assert rolled.level == "intermediate"
    never = CA(svc.profile, ca_passphrase=lambda: pytest.fail("asked before the checks"))
    with pytest.raises(InputError) as bad_key:
        never.revoke_intermediate(root_key=tmp_path / "no-such.key")
    assert bad_key.value.field == "root-key"
    gone = svc.revoke_intermediate(reason="keyCompromise")
    root_crl = load_crl(svc.profile.root.crl)
    assert root_crl.get_revoked_certificate_by_serial_number(int(gone.serials[0], 16))

    offline = svc.export_root_key(tmp_path / "root.key")
    assert offline.stat().st_mode & 0o777 == 0o600 and not svc.profile.root.ca_key.exists()

    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # the library printed nothing
    assert dict(os.environ) == environment  # and wrote nothing into the environment
    assert not (tmp_path / "certs").exists()


def test_an_operation_cannot_join_another_profiles_transaction(tmp_path: Path) -> None:
    """One transaction holds one profile's lock: joining it for another would be unlocked."""
    mine, other = Profile("mine", tmp_path), Profile("other", tmp_path)
    held = Transaction(mine, Operation("batch", []))
    with pytest.raises(ValueError, match="holds mine, not other"), joined(other, held, "revoke"):
        pass
    with joined(mine, held, "revoke", ["x"]) as inside:
        assert inside is held and held.current.command == "revoke"
    assert [op.names for op in held.operations] == [["x"]]


def test_the_facade_forwards_every_nginx_render_option() -> None:
    """api.CA.render_nginx is typed by nginx.SiteOptions: it must name every option of
    nginx.render (but the lock timeout, which the CA holds)."""
    import inspect
    import typing

    from certwiz import nginx

    keyword_only = {
        name
        for name, parameter in inspect.signature(nginx.render).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert set(typing.get_type_hints(nginx.SiteOptions)) == keyword_only - {"timeout"}


def test_a_caller_catches_every_failure_kind_from_errors() -> None:
    """ProfileCorrupt (exit 4) lives in certwiz.errors with the others; check re-exports it."""
    from certwiz import check, errors

    assert check.ProfileCorrupt is errors.ProfileCorrupt
    codes = {
        errors.InputError: 2,
        errors.StateError: 2,
        errors.LockTimeout: 3,
        errors.ProfileCorrupt: 4,
        errors.RefusedByServer: 5,
        errors.OpenSSLError: 1,
    }
    assert {kind: kind.exit_code for kind in codes} == codes
