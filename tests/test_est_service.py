"""The EST service's rules, called in process as the WSGI server calls it (one CA for
the module). What needs real processes (waitress, NGINX, curl, openssl as the
client) is in test_est_e2e.py."""

from __future__ import annotations

import base64
import io
import json
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certwiz import audit, ca, grace, intermediate, issue, revoke
from certwiz.est import service, tokens, wire
from certwiz.profile import Profile
from tests.conftest import hand_sign, invoke, snapshot

Key = ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def prof(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    return ca.init("est", tmp_path_factory.mktemp("est") / "certs")


@pytest.fixture(scope="module")
def settings(prof: Profile) -> service.Settings:
    return service.Settings(prof, grace=timedelta(minutes=5), lock_timeout=30)


def csr(cn: str | None, key: Key | None = None, *, ca_true: bool = False) -> tuple[bytes, Key]:
    """A DER CSR for CN (or any subject) made on the 'device'."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)] if cn else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if ca_true:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    request = builder.sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.DER), key


def call(
    settings: service.Settings,
    path: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    content_type: str = wire.CSR_TYPE,
    cert: bytes | None = None,
    auth: tuple[str, str] | None = None,
    peer: str = "127.0.0.1",
) -> service.Answer:
    environ: dict[str, Any] = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "REMOTE_ADDR": peer,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    if cert is not None:
        environ[service.CERT_HEADER] = urllib.parse.quote(cert.decode(), safe="")
    if auth is not None:
        environ["HTTP_AUTHORIZATION"] = (
            "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        )
    return service.handle(settings, environ)


def issued_cert(answer: service.Answer) -> x509.Certificate:
    assert answer.status == 200, answer.body
    assert answer.content_type == wire.CERTS_ONLY_TYPE
    return wire.leaf_of(wire.decode_certs(answer.body))


def client_pem(prof: Profile, name: str, days: str = "2d") -> bytes:
    issue.issue_client(prof, name, unencrypted=True, days=days)
    return prof.cert_path(name).read_bytes()


def last_record(prof: Profile) -> dict[str, object]:
    return audit.read(prof)[-1]


def unchanged_but_audit(prof: Profile) -> Callable[[], None]:
    """Snapshot the profile; the returned check asserts only audit.log changed."""
    before = {k: v for k, v in snapshot(prof.dir).items() if k != "audit.log"}

    def check() -> None:
        after = {k: v for k, v in snapshot(prof.dir).items() if k != "audit.log"}
        assert after == before

    return check


def test_cacerts_single_level(prof: Profile, settings: service.Settings) -> None:
    answer = call(settings, wire.CACERTS, method="GET")
    assert answer.status == 200 and answer.content_type == wire.PKCS7_TYPE
    certs = wire.decode_certs(answer.body)
    assert certs == [x509.load_pem_x509_certificate(prof.ca_cert.read_bytes())]


def test_cacerts_two_level_has_both(tmp_path: Path) -> None:
    fleet = intermediate.init("fleet", tmp_path / "certs")
    answer = call(service.Settings(fleet), wire.CACERTS, method="GET")
    got = {c.subject for c in wire.decode_certs(answer.body)}
    want = {c.subject for c in x509.load_pem_x509_certificates(fleet.chain.read_bytes())}
    assert len(want) == 2 and got == want


def test_reenroll_renews_with_the_device_key(prof: Profile, settings: service.Settings) -> None:
    old_pem = client_pem(prof, "bot-1", days="2d")
    old = x509.load_pem_x509_certificate(old_pem)
    body, key = csr("bot-1")
    new = issued_cert(call(settings, wire.SIMPLEREENROLL, wire.encode_csr(body), cert=old_pem))
    assert new.serial_number != old.serial_number
    assert new.subject == old.subject
    assert new.public_key().public_numbers() == key.public_key().public_numbers()
    assert new.issuer == old.issuer
    new.verify_directly_issued_by(x509.load_pem_x509_certificate(prof.ca_cert.read_bytes()))
    lifetime = new.not_valid_after_utc - new.not_valid_before_utc
    assert lifetime == old.not_valid_after_utc - old.not_valid_before_utc == timedelta(days=2)
    usages = new.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [x509.ExtendedKeyUsageOID.CLIENT_AUTH]
    [pending] = [p for p in grace.read(prof).values() if int(p.serial, 16) == old.serial_number]
    assert int(pending.successor, 16) == new.serial_number
    assert timedelta(minutes=4) < pending.until - datetime.now(UTC) <= timedelta(minutes=5)
    assert not prof.key_path("bot-1").exists() and not prof.p12_path("bot-1").exists()
    record = last_record(prof)
    assert record["command"] == "est simplereenroll" and record["result"] == "ok"
    assert record["names"] == ["bot-1"]
    # the old certificate renews no more: already renewed
    check = unchanged_but_audit(prof)
    again = call(settings, wire.SIMPLEREENROLL, wire.encode_csr(csr("bot-1")[0]), cert=old_pem)
    assert again.status == 409 and b"already renewed" in again.body
    check()
    assert last_record(prof)["result"] == "refused"
    # the same request again (a device that lost the answer): the same certificate, no new one
    lines = len(_entries(prof))
    repeat = call(settings, wire.SIMPLEREENROLL, wire.encode_csr(body), cert=old_pem)
    assert issued_cert(repeat) == new and len(_entries(prof)) == lines
    assert last_record(prof)["result"] == "repeated"
    # the new one renews in turn
    new_pem = new.public_bytes(serialization.Encoding.PEM)
    third = call(settings, wire.SIMPLEREENROLL, wire.encode_csr(csr("bot-1")[0]), cert=new_pem)
    assert issued_cert(third).serial_number not in (old.serial_number, new.serial_number)


def test_two_racing_renewals_make_one_certificate(prof: Profile) -> None:
    racing = service.Settings(prof, lock_timeout=60)
    pem = client_pem(prof, "racer")
    answers: list[service.Answer] = []
    bodies = [wire.encode_csr(csr("racer")[0]) for _ in range(2)]
    barrier = threading.Barrier(2)

    def renew(body: bytes) -> None:
        barrier.wait()
        answers.append(call(racing, wire.SIMPLEREENROLL, body, cert=pem))

    threads = [threading.Thread(target=renew, args=(b,)) for b in bodies]
    before = len([e for e in _entries(prof) if e.common_name == "racer"])
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status for a in answers) == [200, 409]
    after = len([e for e in _entries(prof) if e.common_name == "racer"])
    assert after == before + 1


def _entries(prof: Profile) -> list[Any]:
    from certwiz import database

    return database.read(prof.index)


def test_refused_renewals_are_audited_and_change_nothing(
    prof: Profile, settings: service.Settings, tmp_path: Path
) -> None:
    revoked_pem = client_pem(prof, "gone")
    revoke.revoke(prof, name="gone")
    expired = hand_sign(prof.cnf, tmp_path, "old", "-extensions", "client_ext",
                        "-startdate", "20200101000000Z", "-enddate", "20200201000000Z")  # fmt: skip
    other = ca.init("other", tmp_path / "elsewhere")
    foreign_pem = client_pem(other, "bot-1")
    mine = client_pem(prof, "mine")
    tampered = x509.load_pem_x509_certificate(mine)
    acme = hand_sign(prof.cnf, tmp_path, "acme-1", "-extensions", "client_ext",
                     subj="/O=Acme/CN=acme-1")  # fmt: skip
    cases = [
        ("revoked", revoked_pem, "gone", 403, b"is revoked"),
        ("expired", expired.read_bytes(), "old", 403, b"is expired"),
        ("foreign", foreign_pem, "bot-1", 403, b"not issued by this CA"),
        ("no certificate", None, "mine", 403, b"no client certificate"),
        ("garbage header", b"-----BEGIN CERTIFICATE-----\nxx", "mine", 400, b"not a PEM"),
        ("another name", mine, "someone-else", 403, b"is not the certificate's"),
        # attack round 12, F4: refused before signing, not renewed as CN=acme-1
        ("more than a CN", acme.read_bytes(), "acme-1", 403, b"more in its subject than CN"),
    ]
    assert tampered.subject.rfc4514_string() == "CN=mine"
    for label, pem, cn, status, reason in cases:
        check = unchanged_but_audit(prof)
        count = len(audit.read(prof))
        body = wire.encode_csr(csr(cn)[0])
        answer = call(settings, wire.SIMPLEREENROLL, body, cert=pem)
        assert (answer.status, label) == (status, label), answer.body
        assert reason in answer.body and answer.body.count(b"\n") == 1, label
        check()
        records = audit.read(prof)
        assert len(records) == count + 1, label
        assert records[-1]["result"] == "refused" and records[-1]["status"] == status


@pytest.mark.parametrize(
    ("label", "kwargs", "status"),
    [
        ("garbage base64", {"body": b"%%% not base64 %%%"}, 400),
        ("not a CSR", {"body": base64.b64encode(b"hello")}, 400),
        ("empty body", {"body": b""}, 400),
        ("huge body", {"body": b"A" * (wire.MAX_REQUEST_BYTES + 1)}, 413),
        ("wrong content type", {"content_type": "application/json"}, 415),
        ("GET", {"method": "GET"}, 405),
        ("untrusted peer", {"peer": "10.0.0.9"}, 403),
        ("untrusted loopback alias", {"peer": "127.0.0.2"}, 403),
    ],
)
def test_hostile_requests(
    prof: Profile, settings: service.Settings, label: str, kwargs: dict[str, Any], status: int
) -> None:
    pem = client_pem(prof, f"h-{label.replace(' ', '-')}")
    call_args: dict[str, Any] = {"body": wire.encode_csr(csr(None)[0]), "cert": pem, **kwargs}
    check = unchanged_but_audit(prof)
    answer = call(settings, wire.SIMPLEREENROLL, **call_args)
    assert answer.status == status, answer.body
    assert answer.body.count(b"\n") == 1
    check()
    assert last_record(prof)["status"] == status


def test_unknown_path_is_404_without_a_record(prof: Profile, settings: service.Settings) -> None:
    count = len(audit.read(prof))
    assert call(settings, "/.well-known/est/serverkeygen").status == 404
    assert call(settings, "/").status == 404
    assert len(audit.read(prof)) == count


def test_enroll_with_token_once(prof: Profile, settings: service.Settings) -> None:
    token = tokens.invite(prof, "dev-1", days="3d").token
    body, key = csr("dev-1")
    cert = issued_cert(
        call(settings, wire.SIMPLEENROLL, wire.encode_csr(body), auth=("dev-1", token))
    )
    assert cert.subject.rfc4514_string() == "CN=dev-1"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=3)
    assert last_record(prof)["command"] == "est simpleenroll"
    assert token not in audit.path_of(prof).read_text()
    check = unchanged_but_audit(prof)
    again = call(
        settings, wire.SIMPLEENROLL, wire.encode_csr(csr("dev-1")[0]), auth=("dev-1", token)
    )
    assert again.status == 401 and b"already used" in again.body
    check()


def test_enroll_refusals(prof: Profile, settings: service.Settings) -> None:
    token = tokens.invite(prof, "dev-2").token
    body = wire.encode_csr(csr("dev-2")[0])
    cases = [
        ("no auth", {}, 401, b"HTTP Basic"),
        ("wrong token", {"auth": ("dev-2", token[:-2] + "xx")}, 401, b"unknown"),
        ("other user", {"auth": ("dev-3", token)}, 401, b"not an invite for"),
        ("CSR for another name", {"auth": ("dev-2", token),
                                  "body": wire.encode_csr(csr("dev-9")[0])}, 400, b"CN"),
    ]  # fmt: skip
    for label, extra, status, reason in cases:
        check = unchanged_but_audit(prof)
        args: dict[str, Any] = {"body": body, **extra}
        answer = call(settings, wire.SIMPLEENROLL, **args)
        assert (answer.status, label) == (status, label), answer.body
        assert reason in answer.body, (label, answer.body)
        if status == 401:
            assert ("WWW-Authenticate", service.REALM) in answer.headers
        check()
        assert last_record(prof)["result"] == "refused"
    # still usable after all that
    assert call(settings, wire.SIMPLEENROLL, body, auth=("dev-2", token)).status == 200


def test_expired_token_refused(prof: Profile, settings: service.Settings) -> None:
    token = tokens.invite(prof, "dev-4", ttl="1m").token
    path = tokens.path_of(prof)
    stored = json.loads(path.read_text())
    stored[tokens.digest(token)]["expires"] = "2020-01-01T00:00:00Z"  # its TTL has passed
    path.write_text(json.dumps(stored))
    answer = call(settings, wire.SIMPLEENROLL, wire.encode_csr(csr("dev-4")[0]),
                  auth=("dev-4", token))  # fmt: skip
    assert answer.status == 401 and b"expired" in answer.body


def test_csr_asking_for_ca_gets_no_ca(prof: Profile, settings: service.Settings) -> None:
    token = tokens.invite(prof, "sneaky").token
    body = wire.encode_csr(csr("sneaky", ca_true=True)[0])
    cert = issued_cert(call(settings, wire.SIMPLEENROLL, body, auth=("sneaky", token)))
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert constraints.ca is False
    except x509.ExtensionNotFound:
        pass
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [x509.ExtendedKeyUsageOID.CLIENT_AUTH]


def test_two_level_profile_renews_under_its_intermediate(tmp_path: Path) -> None:
    fleet = intermediate.init("fleet2", tmp_path / "certs")
    layered = service.Settings(fleet)
    pem = client_pem(fleet, "edge")
    new = issued_cert(call(layered, wire.SIMPLEREENROLL, wire.encode_csr(csr("edge")[0]), cert=pem))
    signer = x509.load_pem_x509_certificate(fleet.signing_cert.read_bytes())
    new.verify_directly_issued_by(signer)
    assert new.issuer == signer.subject and fleet.signing_cert != fleet.ca_cert


def test_encrypted_ca_signs_with_the_passphrase_given_at_start(tmp_path: Path) -> None:
    from certwiz.openssl import Secret

    locked = ca.init("locked", tmp_path / "certs", passphrase=Secret("correct horse battery"))
    assert locked.ca_key_encrypted()
    token = tokens.invite(locked, "dev-1").token
    body = wire.encode_csr(csr("dev-1")[0])
    without = service.Settings(locked)  # no passphrase: signing fails, nothing issued
    check = unchanged_but_audit(locked)
    failed = call(without, wire.SIMPLEENROLL, body, auth=("dev-1", token))
    assert failed.status == 500 and failed.body.count(b"\n") == 1, failed.body
    assert b"correct horse" not in failed.body and str(locked.dir).encode() not in failed.body
    check()
    assert last_record(locked)["result"] == "error"
    with_secret = service.Settings(locked, ca_passphrase=Secret("correct horse battery"))
    assert issued_cert(call(with_secret, wire.SIMPLEENROLL, body, auth=("dev-1", token)))


def test_an_unexpected_error_is_one_line_500_and_audited(
    prof: Profile, settings: service.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: Profile) -> bytes:
        raise RuntimeError("/secret/path in a message")

    monkeypatch.setattr(service, "cacerts", broken)
    answer = call(settings, wire.CACERTS, method="GET")
    assert answer.status == 500 and answer.body == b"internal error (see the audit log)\n"
    record = last_record(prof)
    assert record["command"] == "est cacerts" and record["error"] == "RuntimeError"


def test_only_requests_with_the_proxy_secret_are_answered(prof: Profile) -> None:
    """A trusted peer address is not enough: on TCP every local process has it."""
    from certwiz.est import proxy

    secret = proxy.ensure(prof)
    assert proxy.ensure(prof) == secret  # made once
    assert stat.S_IMODE(proxy.path_of(prof).stat().st_mode) == 0o600
    assert secret not in audit.path_of(prof).read_text()
    guarded = service.Settings(prof, proxy_secret=secret)
    environ: dict[str, Any] = {"PATH_INFO": wire.CACERTS, "REQUEST_METHOD": "GET",
                               "REMOTE_ADDR": "127.0.0.1"}  # fmt: skip
    for given in (None, "", secret[:-1], secret + "x", secret.upper()):
        trial = dict(environ)
        if given is not None:
            trial[proxy.ENVIRON_KEY] = given
        assert service.handle(guarded, trial).status == 403, given
    assert service.handle(guarded, {**environ, proxy.ENVIRON_KEY: secret}).status == 200


def test_a_flood_of_refusals_is_recorded_within_a_budget_and_counted(prof: Profile) -> None:
    """simpleenroll needs no certificate: 2,000 bad tokens in 15 s added 650 kB to
    audit.log (a full audit.log refuses every change, revoke included). Past the
    budget refusals are counted, and the next record says how many were not written."""
    flooded = service.Settings(prof, records=service.RecordBudget(rate=0.0, burst=3))
    before = len(audit.read(prof))
    body = wire.encode_csr(csr("flood")[0])
    for _ in range(10):
        assert call(flooded, wire.SIMPLEENROLL, body, auth=("flood", "x" * 43)).status == 401
    records = audit.read(prof)[before:]
    assert len(records) == 3 and all(r["result"] == "refused" for r in records)
    flooded.records.rate, flooded.records.burst = 1000.0, 1  # the budget refills
    time.sleep(0.01)
    assert call(flooded, wire.SIMPLEENROLL, body, auth=("flood", "x" * 43)).status == 401
    last = audit.read(prof)[-1]
    assert last["result"] == "refused" and last["suppressed"] == 7


def test_the_secret_goes_only_to_a_listener_no_other_user_can_take(
    prof: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding C: NGINX hands the proxy secret to whatever listens at --enroll, so the
    address must be one nobody else can bind first (render and serve share this rule)."""
    import os

    from certwiz.errors import InputError
    from certwiz.est import proxy

    def refused(**where: Any) -> str:
        with pytest.raises(InputError) as caught:
            proxy.check_listener("listen", prof, **where)
        assert caught.value.field == "listen"
        return caught.value.rule

    assert "below 1024" in refused(port=8085)
    proxy.check_listener("listen", prof, port=1023)
    monkeypatch.setattr(proxy, "PORT_START_FILE", tmp_path / "no-such-file")  # default 1024
    assert "below 1024" in refused(port=1024)
    start = tmp_path / "start"
    start.write_text("80\n")  # a host that lowered the privileged range
    monkeypatch.setattr(proxy, "PORT_START_FILE", start)
    assert "below 80" in refused(port=443)

    private = tmp_path / "run"
    private.mkdir(mode=0o755)
    proxy.check_listener("listen", prof, unix=private / "est.sock")  # under sticky /tmp: fine
    proxy.check_listener("listen", prof, unix=private / "later" / "est.sock")  # made later
    for mode in (0o1777, 0o775, 0o757):
        private.chmod(mode)
        assert "writable by others" in refused(unix=private / "est.sock")
        assert "writable by others" in refused(unix=private / "later" / "est.sock")
    private.chmod(0o755)
    link = tmp_path / "link"
    link.symlink_to(Path("/tmp"))  # a safe name leading into /tmp
    assert "writable by others (mode 1777)" in refused(unix=link / "est.sock")
    if os.geteuid() == 0:  # only root can give a directory (or a link) away
        theirs = tmp_path / "theirs"
        theirs.symlink_to(private)  # a link on the way is as good as a directory
        os.lchown(theirs, 65534, 65534)
        assert "owned by uid 65534" in refused(unix=theirs / "est.sock")
        os.chown(private, 65534, 65534)
        assert "owned by uid 65534" in refused(unix=private / "est.sock")
    assert "certwiz home" in refused(unix=prof.home / "est.sock")
    assert "certwiz home" in refused(unix=prof.dir / "nginx" / "est.sock")


def test_issuing_or_revoking_a_name_cancels_its_invites(
    prof: Profile, settings: service.Settings, tmp_path: Path
) -> None:
    """Attack round 12, F6: an unused invite survived `client issue` and `revoke` (even
    keyCompromise) and enrolled the name afterwards. Issuing (issue, sign, issue-batch)
    or revoking a name cancels its invites: the output says it, the audit record names
    it, and the token is refused (401) with nothing signed."""
    home = prof.dir.parent

    def refused(name: str, token: str) -> None:
        index = prof.index.read_bytes()
        answer = call(settings, wire.SIMPLEENROLL, wire.encode_csr(csr(name)[0]),
                      auth=(name, token))  # fmt: skip
        assert answer.status == 401, answer.body
        assert prof.index.read_bytes() == index  # nothing signed

    def cancelled(done: object, name: str, command: str) -> None:
        assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
        assert f"cancelled the unused invite of {name}" in done.stdout  # type: ignore[attr-defined]
        record = next(r for r in reversed(audit.read(prof)) if r["command"] == command)
        assert name in record["invites_cancelled"], record

    token = tokens.invite(prof, "inv-issued").token
    done = invoke(home, "client", "issue", "-p", "est", "-n", "inv-issued", "-u")
    cancelled(done, "inv-issued", "client issue")
    refused("inv-issued", token)

    token = tokens.invite(prof, "inv-signed").token
    (tmp_path / "req.csr").write_bytes(
        x509.load_der_x509_csr(csr("inv-signed")[0]).public_bytes(serialization.Encoding.PEM)
    )
    done = invoke(home, "client", "sign", "-p", "est", "--csr", str(tmp_path / "req.csr"))
    cancelled(done, "inv-signed", "client sign")
    refused("inv-signed", token)

    token = tokens.invite(prof, "inv-batch").token
    (tmp_path / "fleet.csv").write_text("name,unencrypted\ninv-batch,true\n")
    done = invoke(home, "client", "issue-batch", "-p", "est", "--from", str(tmp_path / "fleet.csv"))
    cancelled(done, "inv-batch", "client issue-batch")
    refused("inv-batch", token)

    # a certificate made by hand after the invite, then its key compromised
    token = tokens.invite(prof, "inv-revoked").token
    hand_sign(prof.cnf, tmp_path / "hand", "inv-revoked", "-extensions", "client_ext")
    done = invoke(home, "revoke", "-p", "est", "-n", "inv-revoked", "--reason", "keyCompromise")
    cancelled(done, "inv-revoked", "revoke")
    refused("inv-revoked", token)
    assert not any(item.used is None for item in tokens.read(prof).values()
                   if item.name.startswith("inv-"))  # fmt: skip
