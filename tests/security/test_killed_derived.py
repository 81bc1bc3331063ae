"""Kills between a file and the copy certwiz builds from it (attack round 10: F1, F9, F11,
F17). A two-level profile's crl-chain.pem is crl.pem + root/crl.pem (the CRL file NGINX
reads), chain.pem is intermediate.crt + ca.crt, ca.crt is root/ca.crt, and every
issued/NAME.fullchain.pem is its leaf + the chain. A SIGKILL after a source and before its
copy left the copy behind with nothing owing it: NGINX admitted a revoked client, new
bundles carried the replaced intermediate, `check` said consistent and the rerun refused.
Now check reports the copy (exit 4, naming crl gen), the next change (the rerun too)
rebuilds it, and the rerun finishes what the killed run owed. The NGINX side of F1 is in
test_intermediate_nginx.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from certwiz import ca, database, der, intermediate, issue, revoke, rollover, subordinate
from certwiz.profile import Profile
from tests.conftest import invoke, killed_at, openssl


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("killed-derived") / "certs"


def verify(profile: Profile, cert: Path, untrusted: Path | None = None) -> int:
    """openssl verify -crl_check_all against the root, with the CRL file NGINX reads;
    UNTRUSTED: the intermediate a client's bundle carries (default chain.pem)."""
    argv = ["verify", "-crl_check_all", "-CAfile", str(profile.ca_cert)]
    argv += ["-untrusted", str(untrusted or profile.chain), "-CRLfile", str(profile.nginx_crl)]
    return openssl(*argv, str(cert), check=False).returncode


def check(home: Path, name: str) -> subprocess.CompletedProcess[str]:
    result = invoke(home, "check", "-p", name)
    return subprocess.CompletedProcess([], result.returncode, result.stdout, result.stderr)


def serial_of(path: Path) -> int:
    return int(der.cert_serial(der.pem_to_der(path.read_bytes())), 16)


def last_record(profile: Profile) -> dict[str, object]:
    lines = (profile.dir / "audit.log").read_text().splitlines()
    record: dict[str, object] = json.loads(lines[-1])
    return record


def test_a_revoke_killed_before_crl_chain_is_reported_and_finished_by_the_rerun(
    home: Path,
) -> None:
    """F1: killed after crl.pem, before crl-chain.pem: the CRL file NGINX reads lacked the
    revocation, check said consistent. check exits 4 naming it; the rerun rebuilds it."""
    profile = intermediate.init("rev", home)
    issue.issue_client(profile, "v1")
    cert = profile.cert_path("v1")
    killed_at("certwiz.intermediate.write_crl_chain", lambda: revoke.revoke(profile, name="v1"))
    assert verify(profile, cert) == 0  # the hole: NGINX's file does not list it
    found = check(home, "rev")
    assert found.returncode == 4, found.stdout
    assert f"{profile.nginx_crl}: is not {profile.crl} + {profile.root.crl}" in found.stdout
    assert "run: certwiz crl gen -p rev" in found.stdout
    rerun = invoke(home, "revoke", "-p", "rev", "-n", "v1", "--json")
    assert rerun.returncode == 0, rerun.stderr
    done = json.loads(rerun.stdout)
    assert [int(s, 16) for s in done["already_revoked"]] == [serial_of(cert)]
    assert any(f"rebuilt {profile.nginx_crl}" in note for note in done["notes"])
    assert verify(profile, cert) != 0
    assert check(home, "rev").returncode == 0
    assert any("rebuilt" in str(x) for x in last_record(profile)["recovered"])  # type: ignore[attr-defined]


def test_a_killed_revoke_intermediate_is_finished_by_its_reruns(home: Path) -> None:
    """F1: `ca revoke-intermediate` killed between its revocations (the current
    certificate, then the one `ca renew` replaced), then its rerun killed before
    crl-chain.pem: each rerun said "intermediate is not valid" (exit 2) and the older
    certificate of the key stayed valid. Each rerun now goes on from where it stopped."""
    profile = intermediate.init("ri", home)
    issue.issue_client(profile, "v1")
    old = profile.dir / "old-intermediate.crt"
    old.write_bytes(profile.intermediate_cert.read_bytes())
    rollover.renew_ca(profile)
    current = serial_of(profile.intermediate_cert)
    leaf = profile.cert_path("v1")
    killed_at(
        "certwiz.revoke.revoke_entry", lambda: revoke.revoke_intermediate(profile), nth=1
    )  # the current one revoked, the older one not, no root CRL
    flags = {e.serial_int: e.flag for e in database.read(profile.root.index)}
    assert flags == {serial_of(old): "V", current: "R"}
    killed_at(  # the rerun, killed once the root CRL is out and before crl-chain.pem
        "certwiz.intermediate.write_crl_chain", lambda: revoke.revoke_intermediate(profile)
    )
    assert {e.flag for e in database.read(profile.root.index)} == {"R"}
    assert verify(profile, leaf, old) == 0  # NGINX's file still lists neither
    assert check(home, "ri").returncode == 4
    rerun = invoke(home, "ca", "revoke-intermediate", "-p", "ri", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert [int(s, 16) for s in json.loads(rerun.stdout)["already_revoked"]] == [current]
    for carried in (old, profile.chain):
        assert verify(profile, leaf, carried) != 0
    assert check(home, "ri").returncode == 0


def test_revoke_serial_of_the_intermediate_revokes_every_certificate_of_its_key(
    home: Path,
) -> None:
    """F17: `revoke --serial` of the current intermediate revoked only it; a bundle issued
    before `ca renew` carries the older certificate of the same key, and a chain through it
    still verified. It follows revoke-intermediate's rule now (every valid one of the key)."""
    profile = intermediate.init("f17", home)
    issue.issue_client(profile, "v1")
    old = profile.dir / "old-intermediate.crt"
    old.write_bytes(profile.intermediate_cert.read_bytes())
    rollover.renew_ca(profile)
    current = der.cert_serial(der.pem_to_der(profile.intermediate_cert.read_bytes()))
    result = invoke(home, "revoke", "-p", "f17", "--serial", current, "--json")
    assert result.returncode == 0, result.stderr
    assert [int(s, 16) for s in json.loads(result.stdout)["serials"]] == [
        int(current, 16),
        serial_of(old),
    ]
    for carried in (old, profile.chain):
        assert verify(profile, profile.cert_path("v1"), carried) != 0


def _p12_chain_serials(path: Path) -> list[int]:
    loaded = pkcs12.load_pkcs12(path.read_bytes(), None)
    return [c.certificate.serial_number for c in loaded.additional_certs]


def test_a_ca_renew_killed_after_installing_is_reported_and_caught_up(home: Path) -> None:
    """F9: `ca renew` killed after installing the new intermediate: chain.pem and the
    fullchains kept the old one, check said consistent, new bundles shipped it. check
    names them; the next change (any) rebuilds them before it writes a bundle. The same
    for `ca renew --root` (ca.crt is root/ca.crt's copy)."""
    profile = intermediate.init("ren", home)
    issue.issue_server(profile, "s.test")
    fullchain = profile.fullchain_path("s.test")
    killed_at("certwiz.rollover.install", lambda: rollover.renew_ca(profile), after=True)
    new = serial_of(profile.intermediate_cert)
    assert serial_of(profile.chain) != new  # left behind
    found = check(home, "ren")
    assert found.returncode == 4
    assert f"{profile.chain}: is not {profile.intermediate_cert} + {profile.ca_cert}" in (
        found.stdout
    )
    assert f"{fullchain}: is not" in found.stdout
    made = invoke(home, "client", "issue", "-p", "ren", "-n", "c2", "-u")
    assert made.returncode == 0, made.stderr
    assert new in _p12_chain_serials(profile.p12_path("c2"))
    chain = profile.intermediate_cert.read_bytes() + profile.ca_cert.read_bytes()
    assert profile.chain.read_bytes() == chain
    assert fullchain.read_bytes() == profile.cert_path("s.test").read_bytes() + chain
    assert check(home, "ren").returncode == 0
    # --root: root/ca.crt installed, the profile's ca.crt (what clients trust) not yet
    killed_at("certwiz.rollover.install", lambda: rollover.renew_ca(profile, root=True), after=True)
    assert profile.ca_cert.read_bytes() != profile.root.ca_cert.read_bytes()
    assert f"{profile.ca_cert}: is not {profile.root.ca_cert}" in check(home, "ren").stdout
    assert invoke(home, "crl", "gen", "-p", "ren").returncode == 0
    assert profile.ca_cert.read_bytes() == profile.root.ca_cert.read_bytes()
    assert profile.chain.read_bytes().endswith(profile.ca_cert.read_bytes())
    assert check(home, "ren").returncode == 0


def test_single_level_fullchains_follow_a_killed_ca_renew(home: Path) -> None:
    """F9 on one level: the fullchain NGINX serves kept the replaced CA certificate."""
    profile = ca.init("one", home)
    issue.issue_server(profile, "s.test")
    killed_at("certwiz.rollover.install", lambda: rollover.renew_ca(profile), after=True)
    fullchain = profile.fullchain_path("s.test")
    assert not fullchain.read_bytes().endswith(profile.ca_cert.read_bytes())
    assert f"{fullchain}: is not" in check(home, "one").stdout
    assert invoke(home, "crl", "gen", "-p", "one").returncode == 0
    assert fullchain.read_bytes() == (
        profile.cert_path("s.test").read_bytes() + profile.ca_cert.read_bytes()
    )


def test_a_purge_killed_after_the_crl_is_finished_by_the_rerun(home: Path) -> None:
    """F11: `revoke --purge` killed after its CRL and before the purge: the rerun refused
    ("no valid certificate") and the revoked key and bundle stayed. It purges them now."""
    profile = ca.init("pg", home)
    issue.issue_client(profile, "pg")
    killed_at("certwiz.revoke._purge", lambda: revoke.revoke(profile, name="pg", purge=True))
    assert profile.key_path("pg").exists() and profile.p12_path("pg").exists()
    rerun = invoke(home, "revoke", "-p", "pg", "-n", "pg", "--purge")
    assert rerun.returncode == 0, rerun.stderr
    assert not profile.key_path("pg").exists() and not profile.p12_path("pg").exists()
    assert last_record(profile)["purged"] == [
        str(profile.key_path("pg")),
        str(profile.p12_path("pg")),
    ]


def test_a_root_revoke_killed_before_crl_chain_is_caught_up_by_any_change(home: Path) -> None:
    """F1, `revoke --serial` of a CA the root signed (ca sign-intermediate): killed after
    the root's CRL, before crl-chain.pem. Not only its rerun: any change (here a client
    issue) rebuilds the file NGINX reads first, and says so in its audit record."""
    profile = intermediate.init("sub", home)
    work = home.parent / "sub-csr"
    work.mkdir()
    key, csr, out = work / "k.pem", work / "sub.csr", work / "sub.crt"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=Sub CA", "-keyout", str(key), "-out", str(csr))  # fmt: skip
    subordinate.sign_intermediate(profile, csr, out)
    serial = der.cert_serial(der.pem_to_der(out.read_bytes()))
    killed_at(
        "certwiz.intermediate.write_crl_chain",
        lambda: revoke.revoke(profile, serial=serial),
    )
    anchor = ["-CAfile", str(profile.ca_cert), "-CRLfile", str(profile.nginx_crl)]
    assert openssl("verify", "-crl_check", *anchor, str(out), check=False).returncode == 0
    assert f"{profile.nginx_crl}: is not" in check(home, "sub").stdout
    assert invoke(home, "client", "issue", "-p", "sub", "-n", "c1", "-u").returncode == 0
    assert openssl("verify", "-crl_check", *anchor, str(out), check=False).returncode != 0
    assert any(f"rebuilt {profile.nginx_crl}" in str(x) for x in last_record(profile)["recovered"])  # type: ignore[attr-defined]
    assert check(home, "sub").returncode == 0
