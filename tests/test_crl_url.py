"""CRL distribution point: `ca init --crl-url` and `ca set --crl-url` write it into new leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import load_cert, snapshot
from tests.test_library import make_csr

URL = "http://pki.example.com/crl/site.crl"


def cdp(cert: x509.Certificate) -> list[str]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [name.value for point in points for name in (point.full_name or [])]


@pytest.mark.parametrize("two_level", [False, True])
def test_crl_url_goes_into_every_new_leaf(cli, home: Path, tmp_path: Path, two_level: bool) -> None:
    init = ["ca", "init", "-p", "site", "--crl-url", URL] + (
        ["--intermediate"] if two_level else []
    )
    assert cli(*init).returncode == 0
    prof = home / "site"
    assert cli("server", "issue", "-p", "site", "-n", "www.example.com").returncode == 0
    assert cli("client", "issue", "-p", "site", "-n", "bot", "-u").returncode == 0
    csr = tmp_path / "dev.csr"
    csr.write_bytes(make_csr("dev"))
    assert cli("client", "sign", "-p", "site", "--csr", str(csr)).returncode == 0
    for name in ("www.example.com", "bot", "dev"):
        assert cdp(load_cert(prof / "issued" / f"{name}.crt")) == [URL]
    assert cdp(load_cert(prof / "ca.crt")) == []  # the root names none for itself
    # changed for leaves issued from now on; the old ones keep theirs
    other = "http://127.0.0.1:8080/site.crl"
    changed = cli("ca", "set", "-p", "site", "--crl-url", other, "--json")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["crl_url"] == other
    assert cli("client", "issue", "-p", "site", "-n", "bot-2", "-u").returncode == 0
    assert cdp(load_cert(prof / "issued" / "bot-2.crt")) == [other]
    assert cdp(load_cert(prof / "issued" / "bot.crt")) == [URL]
    cleared = cli("ca", "set", "-p", "site", "--no-crl-url")
    assert cleared.returncode == 0, cleared.stderr
    assert "leaves issued from now on name no CRL distribution point" in cleared.stdout
    assert cli("client", "issue", "-p", "site", "-n", "bot-3", "-u").returncode == 0
    assert cdp(load_cert(prof / "issued" / "bot-3.crt")) == []
    records = json.loads(cli("audit", "-p", "site", "--json").stdout)
    assert [r.get("crl_url") for r in records if r.get("command") == "ca set"] == [other, None]


@pytest.mark.parametrize(
    "url",
    [
        "https://x.example/c.crl",
        "ldap://x/",
        "http://x.example/a b",
        "http://u:p@x/",
        "http://x/$y",
        'http://x/"',
        "http://x/c.crl#frag",
    ],
)
def test_bad_crl_url_is_refused(cli, home: Path, url: str) -> None:
    assert cli("ca", "init", "-p", "site").returncode == 0
    before = snapshot(home)
    for args in (["ca", "set", "-p", "site", "--crl-url", url],
                 ["ca", "init", "-p", "fresh", "--crl-url", url]):  # fmt: skip
        result = cli(*args)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("certwiz: error: crl-url: "), lines
    assert snapshot(home) == before


def test_ca_set_needs_exactly_one_of_each(cli, home: Path) -> None:
    assert cli("ca", "init", "-p", "site").returncode == 0
    before = snapshot(home)
    both = cli("ca", "set", "-p", "site", "--crl-url", URL, "--no-crl-url")
    assert both.returncode == 2 and "not both" in both.stderr
    nothing = cli("ca", "set", "-p", "site")
    assert nothing.returncode == 2 and "nothing to set" in nothing.stderr
    assert snapshot(home) == before
