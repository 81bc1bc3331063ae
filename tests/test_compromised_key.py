"""A key revoked for keyCompromise is never certified again (attack round r1, item 10a):
`client sign` / `server sign` of a request for it are refused, with the profile as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding

from certwiz import database, issue, revoke
from certwiz.errors import StateError
from certwiz.profile import Profile
from tests.conftest import load_crl, snapshot


def request(key: ec.EllipticCurvePrivateKey, cn: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    built = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, SHA256())
    return built.public_bytes(Encoding.PEM)


def test_a_request_for_a_compromised_key_is_refused(cli, profile: Profile, tmp_path: Path) -> None:
    stolen = ec.generate_private_key(ec.SECP256R1())
    issue.sign_csr(profile, request(stolen, "dev-1"), None, "client")
    issue.sign_csr(profile, request(stolen, "www.example.com"), None, "server")
    revoke.revoke(profile, name="dev-1", reason="keyCompromise")
    again = tmp_path / "again.csr"
    again.write_bytes(request(stolen, "dev-2"))
    before = snapshot(profile.dir)
    result = cli("client", "sign", "-p", "my-app", "--csr", str(again))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "keyCompromise" in result.stderr and len(result.stderr.splitlines()) == 1
    assert snapshot(profile.dir) == before  # refused before the lock: not even a record
    with pytest.raises(StateError, match="keyCompromise"):
        issue.sign_csr(profile, request(stolen, "api.example.com"), None, "server")
    # Only the compromise condemns the key: another reason, or another key, still signs.
    issue.sign_csr(profile, request(ec.generate_private_key(ec.SECP256R1()), "dev-2"), None,
                   "client")  # fmt: skip
    names = [(e.common_name, e.flag) for e in database.read(profile.index)]
    assert names == [("dev-1", "R"), ("www.example.com", "R"), ("dev-2", "V")]  # same key


def test_sign_intermediate_refuses_a_compromised_or_the_own_intermediate_key(
    home: Path, tmp_path: Path
) -> None:
    """The same hole one level up: after `revoke-intermediate --reason keyCompromise`,
    a request made with the stolen intermediate key under another name got a fresh
    intermediate certificate from the root (`ca sign-intermediate`), undoing the
    revocation; the profile's own intermediate key is certified by `ca renew` only."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from certwiz import intermediate, subordinate

    fleet = intermediate.init("fleet", home)
    own = load_pem_private_key(fleet.ca_key.read_bytes(), None)
    assert isinstance(own, ec.EllipticCurvePrivateKey)
    with pytest.raises(StateError, match="intermediate"):
        subordinate.sign_intermediate(fleet, request(own, "Vault CA"), tmp_path / "a.pem")
    revoke.revoke_intermediate(fleet, reason="keyCompromise")
    before = snapshot(fleet.dir)
    with pytest.raises(StateError, match="keyCompromise"):
        subordinate.sign_intermediate(fleet, request(own, "Vault CA"), tmp_path / "b.pem")
    assert snapshot(fleet.dir) == before and not (tmp_path / "b.pem").exists()
    fresh = ec.generate_private_key(ec.SECP256R1())
    subordinate.sign_intermediate(fleet, request(fresh, "Vault CA"), tmp_path / "c.pem")
    assert (tmp_path / "c.pem").is_file()


def test_a_key_compromise_revokes_every_certificate_of_the_key(
    profile: Profile, tmp_path: Path
) -> None:
    """Revoking one name for keyCompromise left another valid certificate of the same key
    (a request signed twice under two names): the stolen key kept working through it."""
    from tests.conftest import crl_check

    stolen = ec.generate_private_key(ec.SECP256R1())
    issue.sign_csr(profile, request(stolen, "dev-1"), None, "client")
    issue.sign_csr(profile, request(stolen, "api.example.com"), None, "server")
    issue.sign_csr(profile, request(ec.generate_private_key(ec.SECP256R1()), "dev-2"), None,
                   "client")  # fmt: skip
    done = revoke.revoke(profile, name="dev-1", reason="keyCompromise")
    flags = [(e.common_name, e.flag, e.reason) for e in database.read(profile.index)]
    assert flags == [("dev-1", "R", "keyCompromise"),
                     ("api.example.com", "R", "keyCompromise"),
                     ("dev-2", "V", None)]  # fmt: skip
    assert len(done.serials) == 2 and any("same key" in note for note in done.notes)
    verdict = crl_check(profile.ca_cert, profile.crl, profile.cert_path("api.example.com"))
    assert verdict.returncode != 0


def test_the_note_of_a_certificate_revoked_with_the_key_reads_once_also(
    cli, profile: Profile
) -> None:
    """The line said "Also also revoked ..." (attack round 11): the CLI words "Also", the
    note says what was done."""
    stolen = ec.generate_private_key(ec.SECP256R1())
    issue.sign_csr(profile, request(stolen, "dev-1"), None, "client")
    other = issue.sign_csr(profile, request(stolen, "api.example.com"), None, "server")
    result = cli("revoke", "-p", "my-app", "-n", "dev-1", "--reason", "keyCompromise")
    assert result.returncode == 0, result.stderr
    line = f"Also revoked {other.serial} (api.example.com): it carries the same key"
    assert line in result.stdout.splitlines(), result.stdout


def test_a_key_compromise_crosses_the_levels_of_a_two_level_profile(
    home: Path, tmp_path: Path
) -> None:
    """Attack round 10, F6: one key certified by the root (a subordinate CA, `ca
    sign-intermediate`) and by the intermediate (a leaf): revoking either for
    keyCompromise left the other valid, and a new leaf for the key was signed. Both
    databases (root/index.txt and index.txt) are one key's history now."""
    from certwiz import intermediate, subordinate
    from tests.conftest import openssl

    fleet = intermediate.init("fleet", home)

    def verify(cert: Path) -> int:  # root -> (intermediate ->) cert, every CRL checked
        chain = ("-untrusted", str(fleet.intermediate_cert)) if cert.name == "leaf.pem" else ()
        crls = ("-CRLfile", str(fleet.nginx_crl))
        return openssl("verify", "-crl_check_all", "-CAfile", str(fleet.ca_cert), *chain, *crls,
                       str(cert), check=False).returncode  # fmt: skip

    for first in ("sub-ca", "leaf"):
        stolen = ec.generate_private_key(ec.SECP256R1())
        sub = subordinate.sign_intermediate(
            fleet, request(stolen, f"Vault {first}"), tmp_path / f"{first}-ca.pem"
        )
        leaf = issue.sign_csr(fleet, request(stolen, f"bot-{first}"), None, "client")
        (tmp_path / "leaf.pem").write_bytes(fleet.cert_path(f"bot-{first}").read_bytes())
        assert verify(tmp_path / f"{first}-ca.pem") == 0 and verify(tmp_path / "leaf.pem") == 0
        if first == "sub-ca":
            done = revoke.revoke(fleet, serial=sub.serial, reason="keyCompromise")
        else:
            done = revoke.revoke(fleet, name=f"bot-{first}", reason="keyCompromise")
        assert sorted(done.serials) == sorted([sub.serial, leaf.serial])
        assert verify(tmp_path / f"{first}-ca.pem") != 0, first
        assert verify(tmp_path / "leaf.pem") != 0, first
        before = snapshot(fleet.dir)
        for kind, cn in (("client", f"bot2-{first}"), ("server", f"{first}.example.com")):
            with pytest.raises(StateError, match="keyCompromise"):
                issue.sign_csr(fleet, request(stolen, cn), None, kind)
        with pytest.raises(StateError, match="keyCompromise"):
            subordinate.sign_intermediate(fleet, request(stolen, "Again"), tmp_path / "x.pem")
        assert snapshot(fleet.dir) == before


def _killed_after_first_revocation(profile: Profile, **options: object) -> None:
    """revoke.revoke(PROFILE, **OPTIONS) SIGKILLed once its first `openssl ca -revoke` is
    done: before the other certificates of the key and before the CRL."""
    import os
    import signal

    pid = os.fork()
    if pid == 0:
        try:
            real = revoke.revoke_entry

            def once(*args: object, **kwargs: object) -> None:
                real(*args, **kwargs)  # type: ignore[arg-type]
                os.kill(os.getpid(), signal.SIGKILL)

            revoke.revoke_entry = once  # type: ignore[assignment]
            revoke.revoke(profile, **options)  # type: ignore[arg-type]
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the kill did not land"


@pytest.mark.parametrize("rerun_reason", ["keyCompromise", "unspecified"])
def test_an_interrupted_key_compromise_revoke_takes_the_keys_other_certificates(
    cli, profile: Profile, rerun_reason: str
) -> None:
    """Item 2's class: `revoke -n dev-1 --reason keyCompromise` killed after dev-1's own
    revocation, before the other certificate of its key: the rerun finished dev-1's CRL
    but left www.example.com (same key) valid. index.txt says the key is compromised, so
    the rerun (with or without --reason) revokes what else carries it."""
    stolen = ec.generate_private_key(ec.SECP256R1())
    issue.sign_csr(profile, request(stolen, "dev-1"), None, "client")
    issue.sign_csr(profile, request(stolen, "www.example.com"), None, "server")
    _killed_after_first_revocation(profile, name="dev-1", reason="keyCompromise")
    assert [e.flag for e in database.read(profile.index)] == ["R", "V"]
    done = cli("revoke", "-p", "my-app", "-n", "dev-1", "--reason", rerun_reason)
    assert done.returncode == 0, done.stderr
    entries = database.read(profile.index)
    assert [(e.flag, e.reason) for e in entries] == [("R", "keyCompromise")] * 2
    listed = {r.serial_number for r in load_crl(profile.crl)}
    assert listed == {e.serial_int for e in entries}


def test_a_key_compromise_reaching_an_offline_root_asks_for_its_key(
    home: Path, tmp_path: Path
) -> None:
    """The root key exported (offline): revoking the leaf for keyCompromise would leave the
    subordinate CA of the same key valid, so it is refused (nothing written) naming that
    certificate and --root-key; given the key, both go."""
    from certwiz import intermediate, subordinate

    fleet = intermediate.init("fleet", home)
    offline = intermediate.export_root_key(fleet, tmp_path / "root.key")
    stolen = ec.generate_private_key(ec.SECP256R1())
    sub = subordinate.sign_intermediate(
        fleet, request(stolen, "Vault Off"), tmp_path / "sub.pem", root_key=offline
    )
    leaf = issue.sign_csr(fleet, request(stolen, "bot-off"), None, "client")
    before = snapshot(fleet.dir)
    with pytest.raises(StateError, match=f"revoking {sub.serial} \\(Vault Off\\).*--root-key"):
        revoke.revoke(fleet, name="bot-off", reason="keyCompromise")
    assert snapshot(fleet.dir) == before
    done = revoke.revoke(fleet, name="bot-off", reason="keyCompromise", root_key=offline)
    assert sorted(done.serials) == sorted([leaf.serial, sub.serial])
    flags = {e.serial: e.flag for lv in (fleet, fleet.root) for e in database.read(lv.index)}
    assert flags[leaf.serial] == flags[sub.serial] == "R"
