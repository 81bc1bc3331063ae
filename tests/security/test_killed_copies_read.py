"""Between a kill and the next change: what `status` says and what the commands that hand
a copy out give (follow-ups of attack round 10, F1 and F9; the copies and their rule are
certwiz/derived.py, the kills and `check` in test_killed_derived.py).

A SIGKILL after a source and before its copy (crl.pem before crl-chain.pem, a new
intermediate before chain.pem) left `status` saying OK, and the commands that read a copy
without a change (`export --format chain`, the EST service's /cacerts) handed the copy out
until the next change rebuilt it: a load balancer or a device got the intermediate
`ca renew` had replaced. Now status names the copy (critical, exit 2, the repair), and
every command hands out what the sources say: the readers without a lock build it from
them (derived.handed_out), the ones in a transaction (rebundle, client bundle, export
p12) read it after recovery rebuilt it. Each is checked with cryptography."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from certwiz import intermediate, issue, revoke, rollover
from certwiz.est import service, wire
from certwiz.profile import Profile
from tests.conftest import invoke, killed_at


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    made = intermediate.init("t", tmp_path_factory.mktemp("killed-read") / "certs")
    issue.issue_server(made, "s.test")
    issue.issue_client(made, "c1", unencrypted=True)
    return made


def serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def status(profile: Profile) -> tuple[int, list[dict[str, Any]]]:
    result = invoke(profile.home, "status", "-p", profile.name, "--json")
    data = json.loads(result.stdout)
    assert data["exit_code"] == result.returncode
    return result.returncode, data["items"]


def copies(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items if item["kind"] == "copy"}


def renew_killed_after_install(profile: Profile, *, root: bool = False) -> int:
    """`ca renew [--root]` SIGKILLed once the new certificate is installed, before its
    copies; the new certificate's serial."""
    killed_at("certwiz.rollover.install", lambda: rollover.renew_ca(profile, root=root), after=True)
    new = serial(profile.root.ca_cert if root else profile.intermediate_cert)
    assert serial(profile.ca_cert if root else profile.chain) != new  # its copy left behind
    return new


def test_status_reports_a_crl_chain_a_killed_revoke_left_behind(profile: Profile) -> None:
    """Killed after crl.pem, before crl-chain.pem: status said OK while NGINX's CRL file
    lacked the revocation. Now critical, exit 2, naming the file and crl gen."""
    issue.issue_client(profile, "v1", unencrypted=True)
    killed_at("certwiz.intermediate.write_crl_chain", lambda: revoke.revoke(profile, name="v1"))
    code, items = status(profile)
    assert code == 2
    item = copies(items)["crl-chain.pem"]
    assert item["state"] == "critical"
    assert f"{profile.nginx_crl}: is not {profile.crl} + {profile.root.crl}" in item["message"]
    assert item["message"].endswith("run: certwiz crl gen -p t")
    assert set(copies(items)) == {"crl-chain.pem"}
    assert invoke(profile.home, "crl", "gen", "-p", "t").returncode == 0
    assert status(profile)[0] == 0


def test_export_chain_and_est_cacerts_hand_out_the_installed_intermediate(
    profile: Profile,
) -> None:
    """Killed after `ca renew` installed the intermediate: status names chain.pem and the
    fullchain; export --format chain and /cacerts gave the replaced intermediate."""
    new = renew_killed_after_install(profile)
    code, items = status(profile)
    assert code == 2
    assert set(copies(items)) == {"chain.pem", "issued/s.test.fullchain.pem"}
    out = profile.home.parent / "lb-chain.pem"
    result = invoke(
        profile.home, "export", "-p", "t", "-n", "s.test", "--format", "chain", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    chain = x509.load_pem_x509_certificates(out.read_bytes())
    root = serial(profile.root.ca_cert)
    assert [c.serial_number for c in chain] == [serial(profile.cert_path("s.test")), new, root]
    environ = {"PATH_INFO": wire.CACERTS, "REQUEST_METHOD": "GET", "REMOTE_ADDR": "127.0.0.1"}
    answer = service.handle(service.Settings(profile, grace=timedelta(0)), environ)
    assert answer.status == 200
    assert sorted(c.serial_number for c in wire.decode_certs(answer.body)) == sorted([new, root])
    assert serial(profile.chain) != new  # both only read: the next change rebuilds it
    assert set(copies(status(profile)[1])) == {"chain.pem", "issued/s.test.fullchain.pem"}


def test_the_bundle_commands_carry_the_installed_intermediate(profile: Profile) -> None:
    """rebundle and export --format p12 run in a transaction: its recovery rebuilds
    chain.pem before the bundle is made (each after its own kill)."""
    for argv, bundle in (
        (["client", "rebundle", "-p", "t", "-n", "c1"], profile.p12_path("c1")),
        (["export", "-p", "t", "-n", "c1", "--format", "p12", "-u", "--out", "c1.p12"], None),
    ):
        new = renew_killed_after_install(profile)
        result = invoke(profile.home, *argv)
        assert result.returncode == 0, result.stderr
        loaded = pkcs12.load_pkcs12((bundle or profile.home.parent / "c1.p12").read_bytes(), None)
        assert new in [c.certificate.serial_number for c in loaded.additional_certs]
        assert status(profile)[0] == 0


def test_client_bundle_carries_the_installed_root(profile: Profile) -> None:
    """`ca renew --root` killed after installing root/ca.crt, before ca.crt: client bundle
    hands out ca.crt (after its recovery), export --format chain ends with the root."""
    new = renew_killed_after_install(profile, root=True)
    behind = {"ca.crt", "chain.pem", "issued/s.test.fullchain.pem"}
    assert set(copies(status(profile)[1])) == behind
    out = profile.home.parent / "chain.pem"
    argv = ["export", "-p", "t", "-n", "c1", "--format", "chain", "--out", str(out)]
    assert invoke(profile.home, *argv).returncode == 0
    assert x509.load_pem_x509_certificates(out.read_bytes())[-1].serial_number == new
    handout = profile.home.parent / "handout"
    result = invoke(profile.home, "client", "bundle", "-p", "t", "-n", "c1", "--out", str(handout))
    assert result.returncode == 0, result.stderr
    assert serial(handout / "ca.crt") == new
    assert status(profile)[0] == 0


def test_a_copy_whose_source_is_damaged_is_not_handed_out(profile: Profile) -> None:
    """The rule's other side: sources that are not whole PEM files build nothing, and a
    reader refuses (exit 4, one line) rather than hand out a copy no one can vouch for."""
    whole = profile.intermediate_cert.read_bytes()
    profile.intermediate_cert.write_bytes(whole[: len(whole) // 2])
    try:
        argv = ["export", "-p", "t", "-n", "s.test", "--format", "chain"]
        result = invoke(profile.home, *argv)
        assert result.returncode == 4 and result.stdout == ""
        assert result.stderr.startswith(f"certwiz: error: {profile.chain}: cannot be built")
        assert len(result.stderr.splitlines()) == 1
    finally:
        profile.intermediate_cert.write_bytes(whole)
