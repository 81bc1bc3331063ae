"""A `client renew` / `server renew` SIGKILLed at each step after signing (attack round
r1, item 6): the next change leaves exactly one valid certificate per name, installed as
issued/NAME.crt, paired with private/NAME.key, the bundle or fullchain holding both;
the renew after it works. Deterministic: the kill is placed at a step, as in test_crash."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certwiz import ca, database, grace, inventory, issue, journal, renew, revoke, upkeep
from certwiz.profile import Profile
from tests.conftest import load_cert, openssl

Patch = Callable[[Callable[..., object]], Callable[..., object]]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    return ca.init("lives", tmp_path_factory.mktemp("killed-renew") / "certs")


def _die(*_: object, **__: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after(real: Callable[..., object]) -> Callable[..., object]:
    def call(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)
        _die()
        return result

    return call


def _before_install(k: int) -> Callable[[Callable[..., object]], Callable[..., object]]:
    def wrap(real: Callable[..., object]) -> Callable[..., object]:
        count = [0]

        def install(*args: object) -> object:
            if count[0] == k:
                _die()
            count[0] += 1
            return real(*args)

        return install

    return wrap


STEPS: dict[str, tuple[object, str, Patch]] = {
    "signed": (issue, "sign", _after),  # openssl ca done, nothing delivered
    "export": (issue.p12_lib, "export", lambda real: _die),  # clients: making the p12
    "install-0": (journal, "install", _before_install(0)),
    "install-1": (journal, "install", _before_install(1)),
    "install-2": (journal, "install", _before_install(2)),
    "install-3": (journal, "install", _before_install(3)),
    "delivered": (upkeep, "supersede", lambda real: _die),  # before the old is revoked
}


def killed_renew(profile: Profile, name: str, kind: str, step: str, **options: object) -> None:
    module, attr, wrap = STEPS[step]
    pid = os.fork()
    if pid == 0:
        try:
            setattr(module, attr, wrap(getattr(module, attr)))
            renew.renew(profile, name, kind, **options)  # type: ignore[arg-type]
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the kill did not land"


def nginx_t(profile: Profile, name: str) -> subprocess.CompletedProcess[str]:
    """`nginx -t` of a server block with NAME's fullchain and key: NGINX's own verdict
    on the pair ("key values mismatch" when the fullchain holds another key's cert)."""
    from tests.nginx_support import require_nginx

    prefix = profile.home.parent / f"nginx-t-{name}"
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"error_log {prefix}/error.log; pid {prefix}/nginx.pid;\n"
        "events {}\nhttp { access_log off; server { listen 127.0.0.1:1 ssl;\n"
        f"ssl_certificate {profile.fullchain_path(name)};\n"
        f"ssl_certificate_key {profile.key_path(name)}; }} }}\n"
    )
    argv = [require_nginx(), "-t", "-q", "-p", str(prefix), "-c", str(conf)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def assert_one_paired(profile: Profile, name: str, kind: str) -> x509.Certificate:
    """Exactly one valid certificate of NAME (none pending in a grace), delivered whole."""
    pending = grace.read(profile)
    valid = [e for e in inventory.valid_named(profile, name) if e.serial not in pending]
    assert len(valid) == 1, [(e.serial, e.flag) for e in valid]
    signed = profile.newcert_path(valid[0].serial).read_bytes()
    assert profile.cert_path(name).read_bytes() == signed
    cert = load_cert(profile.cert_path(name))
    key = serialization.load_pem_private_key(profile.key_path(name).read_bytes(), None)
    assert key.public_key() == cert.public_key()
    if kind == "server":
        chain = profile.fullchain_path(name).read_bytes()
        assert chain == signed + profile.chain.read_bytes()
        checked = nginx_t(profile, name)
        assert checked.returncode == 0, checked.stderr
    else:
        bundle = pkcs12.load_pkcs12(profile.p12_path(name).read_bytes(), None)
        assert bundle.cert is not None and bundle.key is not None
        assert bundle.cert.certificate == cert
        assert bundle.key.public_key() == cert.public_key()
    done = openssl("verify", "-CAfile", str(profile.ca_cert), str(profile.cert_path(name)),
                   check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return cert


@pytest.mark.parametrize(
    ("kind", "step"),
    [
        ("server", "signed"),
        ("server", "install-0"),
        ("server", "install-1"),
        ("server", "install-2"),
        ("server", "install-3"),
        ("server", "delivered"),
        ("client", "export"),
        ("client", "install-1"),
        ("client", "install-2"),
        ("client", "delivered"),
    ],
)
def test_the_change_after_a_killed_renew_leaves_one_paired_certificate(
    shared: Profile, kind: str, step: str
) -> None:
    name = f"{step}.example.com" if kind == "server" else f"bot-{step}"
    if kind == "server":
        issue.issue_server(shared, name)
    else:
        issue.issue_client(shared, name)
    killed_renew(shared, name, kind, step)
    if kind == "server" and step in ("install-1", "install-2"):  # key in, fullchain not yet
        assert "key values mismatch" in nginx_t(shared, name).stderr  # what NGINX would say
    issue.issue_client(shared, f"next-{kind}-{step}")  # any change: it recovers first
    first = assert_one_paired(shared, name, kind)
    again = renew.renew(shared, name, kind)  # and the renew after it works
    second = assert_one_paired(shared, name, kind)
    assert second.serial_number == int(again.serial, 16) != first.serial_number
    old = {e.serial_int: e for e in database.read(shared.index)}[first.serial_number]
    assert old.flag == "R" and old.reason == "superseded"


def test_check_names_what_a_killed_renew_left_until_the_next_change(cli, profile: Profile) -> None:
    """`check` said consistent while a killed renew had left two valid certificates."""
    issue.issue_server(profile, "api.example.com")
    killed_renew(profile, "api.example.com", "server", "signed")
    shown = cli("check", "-p", "my-app")
    assert shown.returncode == 4, shown.stdout + shown.stderr
    assert "never delivered: it is revoked" in shown.stdout
    assert cli("crl", "gen", "-p", "my-app").returncode == 0  # a change: it settles
    assert cli("check", "-p", "my-app").returncode == 0
    assert_one_paired(profile, "api.example.com", "server")


def test_a_responder_issuance_killed_between_its_installs_is_finished(profile: Profile) -> None:
    """The OCSP responder's key and certificate are installed by two renames too: killed
    between them, the responder signed with a key its certificate does not carry."""
    from certwiz import ocsp
    from certwiz.ocsp import responder

    pid = os.fork()
    if pid == 0:
        try:
            journal.install = _before_install(1)(journal.install)  # type: ignore[assignment]
            responder.ensure_responder(profile, None)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the kill did not land"
    issue.issue_client(profile, "next")  # any change: it recovers first
    cert = load_cert(ocsp.responder_cert(profile))
    key = serialization.load_pem_private_key(ocsp.responder_key(profile).read_bytes(), None)
    assert key.public_key() == cert.public_key()
    assert ocsp.responder_renewal(profile) is None
    valid = inventory.valid_named(profile, ocsp.RESPONDER_NAME)
    assert [e.serial_int for e in valid] == [cert.serial_number]


def _est_renew(profile: Profile, name: str, csr: bytes) -> None:
    """What the EST service's simplereenroll does, in one transaction."""
    from datetime import timedelta

    from certwiz.transaction import transaction

    with transaction(profile, "est simplereenroll", [name]) as tx:
        old = renew.current(profile, name, "client")
        renew.renew_with_csr(
            tx, old, issue.load_csr(csr), validity=timedelta(days=30),
            grace_period=timedelta(days=1), ca_passphrase=None,
        )  # fmt: skip


@pytest.mark.parametrize("step", ["signed", "install-0", "install-1", "delivered"])
def test_a_killed_est_renewal_is_finished_or_undone(shared: Profile, step: str) -> None:
    """EST simplereenroll (the device's key, certwiz's copy of the old key and bundle
    removed, the old certificate kept for a grace) killed at each step after signing."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.hashes import SHA256

    name = f"dev-{step}"
    old = issue.issue_client(shared, name)
    device = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(device, SHA256())
    module, attr, wrap = STEPS[step]
    pid = os.fork()
    if pid == 0:
        try:
            setattr(module, attr, wrap(getattr(module, attr)))
            _est_renew(shared, name, csr.public_bytes(serialization.Encoding.PEM))
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the kill did not land"
    issue.issue_client(shared, f"next-est-{step}")  # any change: it recovers first
    pending = grace.read(shared)
    valid = [e for e in inventory.valid_named(shared, name) if e.serial not in pending]
    assert len(valid) == 1
    installed = load_cert(shared.cert_path(name))
    assert installed.serial_number == valid[0].serial_int
    if installed.serial_number == int(old.serial, 16):  # undone: the old one and its files
        assert step == "signed"
        key = serialization.load_pem_private_key(shared.key_path(name).read_bytes(), None)
        assert key.public_key() == installed.public_key()
        assert not pending
    else:  # finished: the device's key, the old certificate in its grace, no stale key
        assert installed.public_key() == device.public_key()
        assert not shared.key_path(name).exists() and not shared.p12_path(name).exists()
        assert pending[old.serial].successor == valid[0].serial


def test_a_killed_renew_with_a_grace_and_an_encrypted_ca(home: Path) -> None:
    """The journal keeps the renewal's grace; its revocations wait for the CA passphrase
    (a change that cannot sign leaves them, the next one that can does them)."""
    from certwiz.openssl import Secret

    secret = Secret("ca-passphrase-1234")
    profile = ca.init("locked", home, passphrase=secret)
    issue.issue_server(profile, "a.example.com", ca_passphrase=secret)
    issue.issue_server(profile, "b.example.com", ca_passphrase=secret)
    first = load_cert(profile.cert_path("a.example.com"))
    killed_renew(profile, "a.example.com", "server", "delivered", grace_period="1d",
                 ca_passphrase=secret)  # fmt: skip
    killed_renew(profile, "b.example.com", "server", "signed", ca_passphrase=secret)
    assert len(journal.pending(profile)) == 2  # the second renew could not settle the first
    revoke.generate_crl(profile, ca_passphrase=secret)  # a change: recovers and settles
    assert not list(profile.dir.glob(".certwiz-*"))
    # serials compared as numbers: openssl writes even-length hex (a leading 0 nibble)
    pending = {int(serial, 16): entry for serial, entry in grace.read(profile).items()}
    assert int(pending[first.serial_number].successor, 16) == (
        load_cert(profile.cert_path("a.example.com")).serial_number
    )
    assert_one_paired(profile, "a.example.com", "server")
    assert_one_paired(profile, "b.example.com", "server")


@pytest.mark.parametrize("kind", ["server", "client"])
def test_ctrl_c_among_the_installs_of_a_renew(shared: Profile, kind: str) -> None:
    """Ctrl-C (KeyboardInterrupt) between two renames of a committed delivery: the
    certificate was withdrawn while some of its files were installed (a new key beside
    the old fullchain). A committed delivery is never withdrawn: the next change
    finishes it."""
    name = f"ctrl-c.{kind}.example.com" if kind == "server" else f"ctrl-c-{kind}"
    if kind == "server":
        issue.issue_server(shared, name)
    else:
        issue.issue_client(shared, name)
    real, count = journal.install, [0]

    def install(*args: object) -> None:
        if count[0] == 1:
            raise KeyboardInterrupt
        count[0] += 1
        real(*args)  # type: ignore[arg-type]

    journal.install = install  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            renew.renew(shared, name, kind)
    finally:
        journal.install = real
    issue.issue_client(shared, f"next-ctrl-c-{kind}")  # any change: it recovers first
    cert = assert_one_paired(shared, name, kind)
    old = [e for e in inventory.named(shared, name) if e.serial_int != cert.serial_number]
    assert [(e.flag, e.reason) for e in old] == [("R", "superseded")]


def test_recovery_repairs_a_fullchain_left_beside_another_key(shared: Profile) -> None:
    """The state a renew killed between its fullchain and its key left before the journal:
    issued/NAME.fullchain.pem holds another certificate than issued/NAME.crt, whose key
    private/NAME.key is: NGINX then fails 'key values mismatch' on every reload. The next
    change's recovery rebuilds it from NAME.crt."""
    issue.issue_server(shared, "pair.example.com")
    issue.issue_server(shared, "other.example.com")
    stray = shared.fullchain_path("other.example.com").read_bytes()
    shared.fullchain_path("pair.example.com").write_bytes(stray)
    (shared.dir / ".certwiz-killed").mkdir(mode=0o700)  # what the killed run left too
    issue.issue_client(shared, "next-pair")  # any change: it recovers first
    assert_one_paired(shared, "pair.example.com", "server")
    records = (shared.dir / "audit.log").read_text().splitlines()
    assert "pair.example.com.fullchain.pem" in records[-1]
