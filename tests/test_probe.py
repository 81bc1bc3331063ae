"""certwiz probe against a real nginx: set up right (every case PASS) and set up wrong
in each way the issue lists (no ssl_crl, optional_no_ca with no check, a CRL not
reloaded after a revocation, a trust file with a second CA): each must be caught.

One nginx serves the module, one server block per setup, each on its own port on
127.0.0.1; the right one is exactly what `certwiz nginx render` writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certwiz import ca, database, issue, probe
from certwiz import nginx as nginx_lib
from certwiz.profile import Profile
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import crl_check, invoke, load_crl, snapshot
from tests.nginx_support import require_nginx

pytestmark = pytest.mark.nginx

SERVER = "myserver.local"
SETUPS = ("right", "no-crl", "optional-no-ca", "two-cas")


@dataclass
class Lab:
    home: Path
    site: Profile
    other: Profile
    nginx: LocalNginx
    ports: dict[str, int]
    backend: EchoBackend
    crls: Path  # the two-cas setup's ssl_crl: both profiles' CRLs

    def reload(self) -> None:
        """Copy the CRLs (as an operator's deploy step would), then reload nginx and wait."""
        self.crls.write_bytes(self.site.crl.read_bytes() + self.other.crl.read_bytes())
        self.nginx.reload()  # nginx -t, -s reload, then wait until only new workers serve

    def target(self, setup: str) -> probe.Target:
        port = self.ports[setup]
        return probe.target(f"https://{SERVER}:{port}/", f"{SERVER}:{port}:127.0.0.1")

    def url(self, setup: str) -> str:
        return f"https://{SERVER}:{self.ports[setup]}/"

    def resolve(self, setup: str) -> str:
        return f"{SERVER}:{self.ports[setup]}:127.0.0.1"


def _variant(text: str, setup: str, lab_files: dict[str, Path]) -> str:
    if setup == "no-crl":
        lines = [line for line in text.splitlines() if "ssl_crl " not in line]
        return "\n".join(lines) + "\n"
    if setup == "optional-no-ca":
        return text.replace("ssl_verify_client on;", "ssl_verify_client optional_no_ca;")
    if setup == "two-cas":
        out = []
        for line in text.splitlines():
            if line.strip().startswith("ssl_client_certificate "):
                line = f'    ssl_client_certificate "{lab_files["cas"]}";'
            elif line.strip().startswith("ssl_crl "):
                line = f'    ssl_crl "{lab_files["crls"]}";'
            out.append(line)
        return "\n".join(out) + "\n"
    return text


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_nginx()
    root = tmp_path_factory.mktemp("probe")
    home = root / "certs"
    site = ca.init("site", home)
    other = ca.init("other", home)
    issue.issue_server(site, SERVER, sans=["127.0.0.1"])
    files = {"cas": root / "cas.pem", "crls": root / "crls.pem"}
    files["cas"].write_bytes(site.ca_cert.read_bytes() + other.ca_cert.read_bytes())
    files["crls"].write_bytes(site.crl.read_bytes() + other.crl.read_bytes())
    backend = EchoBackend().start()
    ports = {setup: free_port() for setup in SETUPS}
    sites = []
    for setup in SETUPS:
        out = root / "conf" / setup
        nginx_lib.render(
            site,
            SERVER,
            f"http://127.0.0.1:{backend.port}",
            listen=f"127.0.0.1:{ports[setup]}",
            out=out,
        )
        conf = out / nginx_lib.SITE_CONF
        conf.write_text(_variant(conf.read_text(), setup, files))
        sites.append(conf)
    combined = root / "all-sites.conf"
    combined.write_text("".join(f'include "{s}";\n' for s in sites))
    server = LocalNginx(root / "nginx", combined)
    try:
        server.start()
        yield Lab(home, site, other, server, ports, backend, files["crls"])
    finally:
        server.stop()
        backend.stop()


def results(report: probe.ProbeReport) -> dict[str, str]:
    return {c.case: c.result for c in report.cases}


def run(lab: Lab, setup: str, *, reload: bool) -> probe.ProbeReport:
    return probe.run(lab.site, lab.target(setup), reload=lab.reload if reload else None)


def test_right_setup_passes_every_case(lab: Lab) -> None:
    report = run(lab, "right", reload=True)
    assert results(report) == {
        "none": "PASS",
        "valid": "PASS",
        "foreign": "PASS",
        "unknown-ca": "PASS",
        "expired": "PASS",
        "revoked": "PASS",
        "trust": "PASS",
    }, report.table()
    assert report.exit_code == 0
    observed = {c.case: c.observed for c in report.cases}
    assert observed["valid"] == "HTTP 200"
    assert observed["none"] == observed["foreign"] == observed["unknown-ca"] == "HTTP 400"


def test_probe_certificates_are_revoked_audited_and_keyless(lab: Lab) -> None:
    before = {e.serial for e in database.read(lab.site.index)}
    report = run(lab, "right", reload=True)
    entries = [e for e in database.read(lab.site.index) if e.serial not in before]
    assert sorted(e.common_name or "" for e in entries) == sorted(report.probe_names)
    assert all(n.startswith("certwiz-probe-") for n in report.probe_names)
    assert {e.flag for e in entries} == {"R"}  # every probe certificate revoked afterwards
    crl = load_crl(lab.site.crl)
    assert {e.serial_int for e in entries} <= {r.serial_number for r in crl}
    for entry in entries:  # short-lived: an hour at most
        assert (entry.not_after - entry.revoked_at).total_seconds() <= 3600 + 60  # type: ignore[operator]
        assert not lab.site.key_path(entry.common_name or "x").exists()
        assert not lab.site.p12_path(entry.common_name or "x").exists()
    records = [json.loads(x) for x in (lab.site.dir / "audit.log").read_text().splitlines()]
    commands = [r["command"] for r in records[-2:]]
    assert commands == ["probe issue", "probe retire"]
    assert set(records[-2]["names"]) == set(report.probe_names)


def test_no_crl_lets_the_revoked_probe_in(lab: Lab) -> None:
    report = run(lab, "no-crl", reload=True)
    got = results(report)
    assert got["revoked"] == "FAIL-OPEN", report.table()
    assert [k for k, v in got.items() if v != "PASS"] == ["revoked"]
    assert report.exit_code == 1


def test_optional_no_ca_without_a_check_lets_unknown_cas_in(lab: Lab) -> None:
    """nginx still refuses a bad signature, an expiry or a revocation with optional_no_ca,
    but lets through no certificate at all and one from a CA it does not know."""
    report = run(lab, "optional-no-ca", reload=True)
    got = results(report)
    assert {k for k, v in got.items() if v != "PASS"} == {"none", "unknown-ca"}, report.table()
    assert got["none"] == got["unknown-ca"] == "FAIL-OPEN"
    assert report.exit_code == 1


def test_a_crl_not_reloaded_after_a_revocation_is_caught(lab: Lab) -> None:
    report = run(lab, "right", reload=False)
    case = next(c for c in report.cases if c.case == "revoked")
    assert case.result == "FAIL-OPEN", report.table()
    assert "predates the probe's revocation" in case.note
    assert report.exit_code == 1


def test_a_second_trusted_ca_is_caught(lab: Lab) -> None:
    report = run(lab, "two-cas", reload=True)
    got = results(report)
    assert got["trust"] == "FAIL", report.table()
    trust = next(c for c in report.cases if c.case == "trust")
    assert "CN=other Root CA" in trust.note
    assert {k for k, v in got.items() if v != "PASS"} == {"trust"}


def test_foreign_probe_copies_the_ca_subject(tmp_path: Path, lab: Lab) -> None:
    """A DN-only check would be fooled: same issuer name, wrong signature."""
    cert_path, _ = probe.foreign_client(lab.site.cert_path(SERVER), tmp_path, "certwiz-probe-x")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca_cert = x509.load_pem_x509_certificate(lab.site.ca_cert.read_bytes())
    assert cert.issuer == ca_cert.subject
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "certwiz-probe-x"
    verdict = crl_check(lab.site.ca_cert, lab.site.crl, cert_path)
    assert verdict.returncode != 0  # openssl itself refuses it


def test_cli_table_json_and_exit_code(lab: Lab) -> None:
    setup = "no-crl"
    result = invoke(
        lab.home, "probe", lab.url(setup), "-p", "site", "--resolve", lab.resolve(setup), "--json"
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    got = {c["case"]: c["result"] for c in report["cases"]}
    assert got["revoked"] == "FAIL-OPEN"
    text = invoke(lab.home, "probe", lab.url("right"), "-p", "site",
                       "--resolve", lab.resolve("right"))  # fmt: skip
    assert text.stdout.splitlines()[0].split() == ["CASE", "EXPECTED", "OBSERVED", "RESULT"]
    assert any(line.startswith("revoked") and line.endswith("FAIL-OPEN")
               for line in text.stdout.splitlines())  # fmt: skip


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["http://x.example/"], "url"),
        (["https://myserver.local/", "--resolve", "other.example:443:127.0.0.1"], "resolve"),
        (["https://myserver.local/", "--resolve", "myserver.local:443:localhost"], "resolve"),
        (["https://user:pw@myserver.local/"], "url"),
    ],
)
def test_cli_bad_input_changes_nothing(lab: Lab, args: list[str], field: str) -> None:
    before = snapshot(lab.site.dir)
    result = invoke(lab.home, "probe", *args, "-p", "site")
    assert result.returncode == 2
    assert result.stderr.startswith(f"certwiz: error: {field}: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(lab.site.dir) == before


def test_unreachable_endpoint_issues_nothing(lab: Lab) -> None:
    before = snapshot(lab.site.dir)
    port = free_port()
    result = invoke(lab.home, "probe", f"https://127.0.0.1:{port}/", "-p", "site")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr
    assert snapshot(lab.site.dir) == before
