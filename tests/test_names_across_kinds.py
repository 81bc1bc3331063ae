"""Which certificates a name denotes, across kinds (attack round 10, F7 and F8).

F7: `client issue -n Web.Test` then `server issue -n web.test` were both accepted, and
`revoke -n Web.Test` revoked the client AND the server (the other order was refused).
F8: a client `carol` and a subordinate CA `CN=carol` (`ca sign-intermediate`) were both
accepted, and `revoke -n carol` revoked the client and the CA; `client issue -n 'K8s Int'`
was refused with advice to revoke it, which would have revoked the CA.
Now a client and a server whose names differ only in letter case refuse each other in
either order, a client never shares a name with a subordinate CA either way, and
`revoke -n` never takes a CA (it names `revoke --serial` / `ca revoke-intermediate`).
Real openssl; revocations checked with `openssl verify -crl_check`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certwiz import ca, database, intermediate, subordinate
from certwiz.profile import Profile
from tests.conftest import crl_check, hand_sign, invoke, load_cert, openssl, snapshot
from tests.test_compromised_key import request

Cli = Callable[..., object]


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Profile]:
    """One single-level profile for the module: each test uses its own names."""
    home = tmp_path_factory.mktemp("names") / "certs"
    yield ca.init("one", home)


def run(profile: Profile, *args: str) -> tuple[int, str, str]:
    done = invoke(profile.home, *args)
    return done.returncode, done.stdout, done.stderr


def openssl_hex(number: int) -> str:
    """A serial as openssl ca writes it: upper-case hex of even length (a leading 0 nibble,
    one random serial in 16, is kept)."""
    text = f"{number:X}"
    return "0" * (len(text) % 2) + text


def serial_of(profile: Profile, name: str) -> str:
    return openssl_hex(load_cert(profile.cert_path(name)).serial_number)


def flags(profile: Profile) -> dict[str, str]:
    return {e.serial: e.flag for e in database.read(profile.index)}


def test_a_client_and_a_server_differing_in_case_refuse_each_other(one: Profile) -> None:
    p = ("-p", "one")
    assert run(one, "client", "issue", *p, "-n", "Web.Test", "-u")[0] == 0
    client = serial_of(one, "Web.Test")
    before = snapshot(one.dir)
    code, _, err = run(one, "server", "issue", *p, "-n", "web.test")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"differs only in letter case from Web.Test (serial {client}" in err
    assert f"certwiz revoke -p one --serial {client}" in err  # never -n: it names the client
    assert snapshot(one.dir) == before
    # the other order, the same rule
    assert run(one, "server", "issue", *p, "-n", "api.test")[0] == 0
    server = serial_of(one, "api.test")
    before = snapshot(one.dir)
    code, _, err = run(one, "client", "issue", *p, "-n", "Api.Test", "-u")
    assert code == 2 and f"from api.test (serial {server}" in err, err
    assert snapshot(one.dir) == before
    # two clients in two letter cases stay two names
    assert run(one, "client", "issue", *p, "-n", "web.test", "-u")[0] == 0


def test_revoking_a_client_never_takes_a_server_spelled_otherwise(
    one: Profile, tmp_path: Path
) -> None:
    """A pair made before the rule (here by hand-run openssl): `revoke -n` of the client's
    spelling is refused naming both serials; the server's own name revokes the server only;
    then the client's name revokes the client only."""
    assert run(one, "client", "issue", "-p", "one", "-n", "Mail.Test", "-u")[0] == 0
    client = one.cert_path("Mail.Test")
    server = hand_sign(one.cnf, tmp_path, "mail.test", "-extensions", "server_ext")
    before = snapshot(one.dir)
    code, _, err = run(one, "revoke", "-p", "one", "-n", "Mail.Test")
    assert code == 2, err
    assert openssl_hex(load_cert(client).serial_number) in err
    assert openssl_hex(load_cert(server).serial_number) in err and "--serial" in err
    assert snapshot(one.dir) == before
    shown = json.loads(run(one, "show", "-p", "one", "-n", "mail.test", "--json")[1])
    assert int(str(shown["serial"]), 16) == load_cert(server).serial_number
    shown = json.loads(run(one, "show", "-p", "one", "-n", "Mail.Test", "--json")[1])
    assert int(str(shown["serial"]), 16) == load_cert(client).serial_number  # never the server
    assert shown["history"] == []
    assert run(one, "revoke", "-p", "one", "-n", "MAIL.test")[0] == 0
    assert crl_check(one.ca_cert, one.crl, server).returncode != 0
    assert crl_check(one.ca_cert, one.crl, client).returncode == 0  # the client still verifies
    code, out, err = run(one, "revoke", "-p", "one", "-n", "Mail.Test", "--json")
    assert code == 0, err
    assert json.loads(out)["serials"] == [openssl_hex(load_cert(client).serial_number)]
    assert crl_check(one.ca_cert, one.crl, client).returncode != 0


def test_a_client_and_a_subordinate_ca_never_share_a_name(one: Profile, tmp_path: Path) -> None:
    assert run(one, "client", "issue", "-p", "one", "-n", "carol", "-u")[0] == 0
    carol = serial_of(one, "carol")
    csr = tmp_path / "carol.csr"
    csr.write_bytes(request(ec.generate_private_key(ec.SECP256R1()), "carol"))
    sign = ("ca", "sign-intermediate", "-p", "one", "--csr", str(csr))
    before = snapshot(one.dir)
    code, _, err = run(one, *sign, "--out", str(tmp_path / "carol-int.crt"))
    assert code == 2 and f"carol (serial {carol})" in err and "--cn NAME" in err, err
    assert snapshot(one.dir) == before and not (tmp_path / "carol-int.crt").exists()
    # the other order: the CA first, then a client of its name (any letter case)
    code, out, err = run(
        one, *sign, "--cn", "K8s Int", "--out", str(tmp_path / "k8s.crt"), "--json"
    )
    assert code == 0, err
    ca_serial = json.loads(out)["serial"]
    before = snapshot(one.dir)
    for spelling in ("K8s Int", "k8s int"):
        code, _, err = run(one, "client", "issue", "-p", "one", "-n", spelling, "-u")
        assert code == 2 and f"subordinate CA K8s Int (serial {ca_serial}" in err, err
        assert "revoke" not in err  # the advice must not revoke the CA
    assert snapshot(one.dir) == before


def test_revoke_by_name_never_takes_a_ca(
    one: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client and a subordinate CA of one CN (made before the rule): `revoke -n` revokes
    the client only; the CA's name alone is refused with the command that revokes it."""
    assert run(one, "client", "issue", "-p", "one", "-n", "dave", "-u")[0] == 0
    monkeypatch.setattr(subordinate, "check_leaf_names", lambda *a: None, raising=False)
    sub = subordinate.sign_intermediate(
        one, request(ec.generate_private_key(ec.SECP256R1()), "dave"), tmp_path / "dave-int.crt"
    )
    monkeypatch.undo()
    code, out, err = run(one, "revoke", "-p", "one", "-n", "dave", "--json")
    assert code == 0, err
    assert json.loads(out)["serials"] == [serial_of(one, "dave")]
    assert flags(one)[sub.serial] == "V"
    assert crl_check(one.ca_cert, one.crl, tmp_path / "dave-int.crt").returncode == 0
    code, out, err = run(one, "revoke", "-p", "one", "-n", "dave")
    assert code == 0 and "already revoked" in out, err  # the client's rerun, not the CA
    edge = tmp_path / "edge.csr"
    edge.write_bytes(request(ec.generate_private_key(ec.SECP256R1()), "Edge Int"))
    sign = ("ca", "sign-intermediate", "-p", "one", "--csr", str(edge))
    assert run(one, *sign, "--out", str(tmp_path / "edge.crt"))[0] == 0
    before = snapshot(one.dir)
    code, _, err = run(one, "revoke", "-p", "one", "-n", "Edge Int")
    assert code == 2, err
    fix = err.split("revoke it with: ", 1)[1].strip()
    assert fix.startswith("certwiz revoke -p one --serial "), err
    assert snapshot(one.dir) == before
    code, _, err = run(one, *fix.split()[1:])  # the command as printed
    assert code == 0, err
    assert crl_check(one.ca_cert, one.crl, tmp_path / "edge.crt").returncode != 0


def test_a_two_level_profile_names_its_cas_by_serial(tmp_path: Path) -> None:
    """In a two-level profile the root's CAs live in root/index.txt: `revoke -n` of the
    profile's own intermediate names `ca revoke-intermediate`, of a subordinate CA
    `revoke --serial`; a client of a subordinate CA's name is refused there too."""
    fleet = intermediate.init("fleet", tmp_path / "certs")
    sub = subordinate.sign_intermediate(
        fleet, request(ec.generate_private_key(ec.SECP256R1()), "Vault Int"), tmp_path / "v.crt"
    )
    own = load_cert(fleet.intermediate_cert).subject.rfc4514_string().removeprefix("CN=")
    before = snapshot(fleet.dir)
    code, _, err = run(fleet, "revoke", "-p", "fleet", "-n", own)
    assert code == 2 and "certwiz ca revoke-intermediate -p fleet" in err, err
    code, _, err = run(fleet, "revoke", "-p", "fleet", "-n", "Vault Int")
    assert code == 2 and f"certwiz revoke -p fleet --serial {sub.serial}" in err, err
    code, _, err = run(fleet, "client", "issue", "-p", "fleet", "-n", "vault int", "-u")
    assert code == 2 and f"subordinate CA Vault Int (serial {sub.serial}" in err, err
    assert snapshot(fleet.dir) == before
    verdict = openssl("verify", "-crl_check", "-CAfile", str(fleet.ca_cert), "-CRLfile",
                      str(fleet.root.crl), str(tmp_path / "v.crt"), check=False)  # fmt: skip
    assert verdict.returncode == 0, verdict.stderr


def test_a_batch_row_follows_the_same_rule(one: Profile, tmp_path: Path) -> None:
    """`client issue-batch` takes names by the same rule: a row named like a server in
    another letter case or like a subordinate CA is refused with its line, by serial."""
    assert run(one, "server", "issue", "-p", "one", "-n", "batch.test")[0] == 0
    server = serial_of(one, "batch.test")
    csr = tmp_path / "b.csr"
    csr.write_bytes(request(ec.generate_private_key(ec.SECP256R1()), "Batch Int"))
    signed = run(one, "ca", "sign-intermediate", "-p", "one", "--csr", str(csr),
                 "--out", str(tmp_path / "b.crt"), "--json")  # fmt: skip
    assert signed[0] == 0, signed[2]
    sub = json.loads(signed[1])["serial"]
    for row, says in (("Batch.Test", f"from batch.test (serial {server}"),
                      ("batch int", f"subordinate CA Batch Int (serial {sub}")):  # fmt: skip
        fleet = tmp_path / "fleet.csv"
        fleet.write_text(f"name\nbot-x\n{row}\n")
        before = snapshot(one.dir)
        code, _, err = run(one, "client", "issue-batch", "-p", "one", "--from", str(fleet), "-u")
        assert code == 2 and f"{fleet}:3" in err and says in err, err
        assert "-n " not in err  # no advice to revoke by name
        assert snapshot(one.dir) == before
