"""A revoked intermediate stays revoked: nothing re-certifies its key or signs with it
(attack round r1, items 1 and 9). Checked with `openssl verify -crl_check_all`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding

from certwiz import database, intermediate, issue, revoke, rollover
from certwiz.errors import StateError
from certwiz.profile import Profile
from tests.conftest import load_cert, openssl, snapshot


def verify(profile: Profile, cert: Path, untrusted: Path | None = None) -> int:
    """openssl's verdict on a leaf with both CRLs, the chain taken from UNTRUSTED."""
    chain = untrusted or profile.chain
    done = openssl("verify", "-crl_check_all", "-CAfile", str(profile.ca_cert), "-untrusted",
                   str(chain), "-CRLfile", str(profile.nginx_crl), str(cert),
                   check=False)  # fmt: skip
    return done.returncode


def csr_pem(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, SHA256())
    return request.public_bytes(Encoding.PEM)


def test_a_revoked_intermediate_is_neither_renewed_nor_used(cli, home: Path) -> None:
    """Item 1: `ca renew` re-certified a revoked intermediate (same key, a fresh valid
    certificate: every leaf verified again), and `client issue` signed with it."""
    fleet = intermediate.init("fl", home)
    issue.issue_client(fleet, "bot")
    assert verify(fleet, fleet.cert_path("bot")) == 0
    revoke.revoke_intermediate(fleet, reason="keyCompromise")
    assert verify(fleet, fleet.cert_path("bot")) != 0
    before = snapshot(fleet.dir)
    result = cli("ca", "renew", "-p", "fl")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "revoked" in result.stderr and len(result.stderr.splitlines()) == 1
    assert snapshot(fleet.dir) == before  # refused before the lock: not even a record
    assert [e.flag for e in database.read(fleet.root.index)] == ["R"]
    assert verify(fleet, fleet.cert_path("bot")) != 0
    with pytest.raises(StateError, match="revoked"):
        rollover.renew_ca(fleet)
    for attempt in (
        lambda: issue.issue_client(fleet, "bot-2"),
        lambda: issue.issue_server(fleet, "api.example.com"),
        lambda: issue.sign_csr(fleet, csr_pem("dev-1"), None, "client"),
    ):
        with pytest.raises(StateError, match="revoked"):
            attempt()
    assert [e.common_name for e in database.read(fleet.index)] == ["bot"]
    shown = cli("status", "-p", "fl", "--json")
    assert shown.returncode == 2, shown.stdout  # critical: the refusal is visible
    (item,) = [i for i in json.loads(shown.stdout)["items"] if i["kind"] == "intermediate-ca"]
    assert item["state"] == "critical" and "keyCompromise" in item["message"]
    # The root itself may still be renewed (its key was not compromised).
    rollover.renew_ca(fleet, root=True)
    assert load_cert(fleet.ca_cert).subject == load_cert(fleet.root.ca_cert).subject
    assert verify(fleet, fleet.cert_path("bot")) != 0


def test_revoke_intermediate_revokes_every_certificate_of_its_key(cli, home: Path) -> None:
    """Item 9: after `ca renew` the old intermediate certificates (same key) stayed valid
    and revoke-intermediate revoked only the current one, so a verifier given the chain
    a client's p12 carries (the intermediate it was issued with) still accepted it."""
    fleet = intermediate.init("f9", home)
    issue.issue_client(fleet, "bot")
    old_chain = home / "old-chain.pem"
    old_chain.write_bytes(fleet.chain.read_bytes())  # what bot's p12 carries
    rollover.renew_ca(fleet)
    rollover.renew_ca(fleet)
    assert [e.flag for e in database.read(fleet.root.index)] == ["V", "V", "V"]
    assert verify(fleet, fleet.cert_path("bot"), old_chain) == 0
    result = cli("ca", "revoke-intermediate", "-p", "f9", "--reason", "keyCompromise")
    assert result.returncode == 0, result.stderr
    assert "and the 2 earlier certificate(s) of its key" in result.stdout
    entries = database.read(fleet.root.index)
    assert [(e.flag, e.reason) for e in entries] == [("R", "keyCompromise")] * 3
    assert verify(fleet, fleet.cert_path("bot"), old_chain) != 0
    assert verify(fleet, fleet.cert_path("bot")) != 0


def test_revoke_intermediate_killed_midway_is_finished_by_its_rerun(cli, home: Path) -> None:
    """Killed after the root's `openssl ca -revoke` of the current intermediate (made by
    hand: what a SIGKILL there leaves), before the earlier certificate of its key and the
    root's CRL: every change was refused (exit 4, "crl gen"), the rerun too, and crl gen
    left the earlier certificate valid. The rerun revokes it and publishes the root CRL."""
    fleet = intermediate.init("fk", home)
    issue.issue_client(fleet, "bot")
    old_chain = home / "fk-old-chain.pem"
    old_chain.write_bytes(fleet.chain.read_bytes())
    rollover.renew_ca(fleet)
    openssl("ca", "-config", str(fleet.root.cnf), "-revoke", str(fleet.intermediate_cert),
            "-crl_reason", "keyCompromise")  # fmt: skip
    assert verify(fleet, fleet.cert_path("bot"), old_chain) == 0  # the hole
    result = cli("ca", "revoke-intermediate", "-p", "fk", "--reason", "keyCompromise", "--json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    current = load_cert(fleet.intermediate_cert).serial_number
    assert [int(s, 16) for s in done["finished"]] == [current]
    assert len(done["serials"]) == 1 and int(done["serials"][0], 16) != current
    assert "nginx -s reload" in done["reload_command"] and done["reloaded"] is False
    assert [e.flag for e in database.read(fleet.root.index)] == ["R", "R"]
    assert verify(fleet, fleet.cert_path("bot"), old_chain) != 0
    assert verify(fleet, fleet.cert_path("bot")) != 0
    again = cli("ca", "revoke-intermediate", "-p", "fk")
    assert again.returncode == 0 and "already; the CRLs are current" in again.stdout


@pytest.mark.parametrize("which", ["old", "current"])
def test_revoke_serial_for_a_key_compromise_takes_every_certificate_of_the_key(
    cli, home: Path, which: str
) -> None:
    """`revoke --serial` of a root-signed certificate with keyCompromise left the other
    certificate of the same key valid (the one before or after `ca renew`): every client
    still verified, and the output said nothing (attack round 6, D)."""
    fleet = intermediate.init(f"rk-{which}", home)
    old = load_cert(fleet.intermediate_cert).serial_number
    rollover.renew_ca(fleet)
    issue.issue_client(fleet, "bot")
    current = load_cert(fleet.intermediate_cert).serial_number
    serial = f"{old if which == 'old' else current:X}"
    result = cli("revoke", "-p", fleet.name, "--serial", serial, "--reason", "keyCompromise")
    assert result.returncode == 0, result.stderr
    assert "it carries the same key" in result.stdout
    entries = database.read(fleet.root.index)
    assert [(e.flag, e.reason) for e in entries] == [("R", "keyCompromise")] * 2
    assert verify(fleet, fleet.cert_path("bot")) != 0
