"""`certwiz nginx render`, the CRL file contract, and `--reload` / `--nginx-cmd`."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from certwiz import nginx as certwiz_nginx
from tests.conftest import REPO, Result, invoke, load_crl, missing, snapshot
from tests.nginx_support import require_nginx

UPSTREAM = "http://127.0.0.1:8080"
RENDER = ["nginx", "render", "-p", "site", "--server", "myserver.local"]


def make_site(home: Path) -> Path:
    """Profile 'site' with server myserver.local and client bot; returns the profile dir."""
    for args in (
        ("ca", "init", "-p", "site"),
        ("server", "issue", "-p", "site", "-n", "myserver.local"),
        ("client", "issue", "-p", "site", "-n", "bot", "-u"),
    ):
        r = invoke(home, *args)
        assert r.returncode == 0, r.stderr
    return home / "site"


@pytest.fixture
def site(home: Path) -> Path:
    """A fresh site for tests that change it (revoke, CRL)."""
    return make_site(home)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One site for the tests that only render from it (starting certwiz costs ~0.3 s)."""
    home = tmp_path_factory.mktemp("render") / "certs"
    make_site(home)
    return home


@pytest.fixture
def rcli(shared_home: Path) -> Callable[..., Result]:
    def call(*args: str, **kwargs: object) -> Result:
        return invoke(shared_home, *args, **kwargs)  # type: ignore[arg-type]

    return call


def directives(text: str) -> dict[str, list[str]]:
    """Directive name -> its argument strings, ignoring comments (a tiny nginx parser)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.strip().startswith("return") else line
        line = line.strip().rstrip(";").strip()
        if not line or line in ("}",) or line.endswith("{"):
            continue
        name, _, args = line.partition(" ")
        found.setdefault(name, []).append(args.strip())
    return found


def nginx_test(binary: str, tmp: Path, site_conf: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a wrapper nginx.conf that includes the rendered site in http {}."""
    prefix = tmp / "prefix"
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(certwiz_nginx.render_standalone(prefix, site_conf))
    return subprocess.run(
        [binary, "-p", str(prefix), "-c", str(conf), "-t"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_render_writes_three_files_with_absolute_profile_paths(rcli, shared_home: Path) -> None:
    site = shared_home / "site"
    r = rcli(
        *RENDER,
        "--upstream",
        UPSTREAM,
        "--listen",
        "127.0.0.1:8443",
    )
    assert r.returncode == 0, r.stderr
    out = site / "nginx"
    assert sorted(p.name for p in out.iterdir()) == ["mtls_proxy.conf", "proxy.inc", "ssl.inc"]
    d = directives((out / "mtls_proxy.conf").read_text())
    assert d["listen"] == ['"127.0.0.1:8443" ssl default_server']
    assert d["server_name"] == ['"myserver.local"']
    assert d["ssl_certificate"] == [f'"{site}/issued/myserver.local.fullchain.pem"']
    assert d["ssl_certificate_key"] == [f'"{site}/private/myserver.local.key"']
    assert d["ssl_client_certificate"] == [f'"{site}/ca.crt"']
    assert d["ssl_crl"] == [f'"{site}/crl.pem"']
    assert d["ssl_verify_client"] == ["on"]
    assert d["ssl_verify_depth"] == ["1"]  # root signs the leaves directly
    assert d["include"] == [f'"{out}/ssl.inc"', f'"{out}/proxy.inc"']
    assert d["proxy_pass"] == [f'"{UPSTREAM}"']
    assert d["error_page"] == [
        "421 @misdirected",
        "496 @no_client_cert",
        "495 @bad_client_cert",
    ]
    # The handshake guard (tests/security/test_nginx_isolation.py proves it end to end).
    guard = 'if ($ssl_server_name !~* "^(myserver[.]local[.]?)?$") {\n        return 421;\n    }'
    assert guard in (out / "mtls_proxy.conf").read_text()
    for path in re.findall(r'"(/[^"]+)"', (out / "mtls_proxy.conf").read_text()):
        assert Path(path).is_file(), path
    for name in ("mtls_proxy.conf", "proxy.inc", "ssl.inc"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644


def test_ssl_conf_intermediate_and_modern(rcli, tmp_path: Path) -> None:
    base = [*RENDER, "--upstream", UPSTREAM]
    assert rcli(*base, "--out", str(tmp_path / "i")).returncode == 0
    d = directives((tmp_path / "i" / "ssl.inc").read_text())
    assert d["ssl_protocols"] == ["TLSv1.2 TLSv1.3"]
    assert d["ssl_ecdh_curve"] == ["X25519:prime256v1:secp384r1"]
    ciphers = d["ssl_ciphers"][0].split(":")
    assert ciphers and all(
        c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c) for c in ciphers
    )
    assert d["ssl_prefer_server_ciphers"] == ["off"]
    # No resumption: a resumed session skips the CRL check (test_nginx_e2e proves it).
    assert d["ssl_session_tickets"] == ["off"]
    assert d["ssl_session_cache"] == ["off"]
    assert "ssl_session_timeout" not in d
    assert d["add_header"] == [
        'Strict-Transport-Security "max-age=63072000; includeSubDomains" always'
    ]
    r = rcli(*base, "--tls", "modern", "--out", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    m = directives((tmp_path / "m" / "ssl.inc").read_text())
    assert m["ssl_protocols"] == ["TLSv1.3"]
    assert "ssl_ciphers" not in m
    assert m["add_header"] == d["add_header"]
    assert (m["ssl_session_cache"], m["ssl_session_tickets"]) == (["off"], ["off"])


def test_proxy_conf_sets_every_identity_header(rcli, shared_home: Path) -> None:
    site = shared_home / "site"
    r = rcli(*RENDER, "--upstream", UPSTREAM)
    assert r.returncode == 0, r.stderr
    sets = dict(
        a.split(" ", 1)
        for a in directives((site / "nginx" / "proxy.inc").read_text())["proxy_set_header"]
    )
    assert sets["X-Client-Cert-Subject"] == "$ssl_client_s_dn"
    assert sets["X-Client-Verify"] == "$ssl_client_verify"
    assert sets["X-Client-Cert-Serial"] == "$ssl_client_serial"
    assert sets["X-Client-Cert-Fingerprint"] == "$ssl_client_fingerprint"
    assert sets["X-Client-Cert-Not-After"] == "$ssl_client_v_end"
    assert sets["Host"] == "$server_name"
    assert sets["X-Forwarded-Proto"] == "$scheme"
    assert sets["X-Forwarded-For"] == sets["X-Real-IP"] == "$remote_addr"
    assert sets["X-Client-Cert"] == "$ssl_client_escaped_cert"
    assert sets["X-Forwarded-Host"] == "$server_name"
    assert sets["Forwarded"] == '""'
    site_conf = directives((site / "nginx" / "mtls_proxy.conf").read_text())
    assert site_conf["underscores_in_headers"] == ["off"]
    assert site_conf["ignore_invalid_headers"] == ["on"]


@pytest.mark.nginx
@pytest.mark.parametrize("tls", ["intermediate", "modern"])
def test_nginx_accepts_rendered_files_as_they_are(
    rcli, shared_home: Path, tmp_path: Path, tls: str
) -> None:
    binary = require_nginx()
    r = rcli(
        *RENDER,
        "--upstream",
        UPSTREAM,
        "--tls",
        tls,
        "--listen",
        "127.0.0.1:8443",
        "--out",
        str(tmp_path / "o"),
    )
    assert r.returncode == 0, r.stderr
    proc = nginx_test(binary, tmp_path, tmp_path / "o" / "mtls_proxy.conf")
    assert proc.returncode == 0, proc.stderr
    assert "test is successful" in proc.stderr
    # no warning either (the removed-header list outgrew nginx's default header hash)
    assert "[warn]" not in proc.stderr, proc.stderr


def test_json_output(rcli, shared_home: Path) -> None:
    site = shared_home / "site"
    import json

    r = rcli(
        *RENDER,
        "--upstream",
        UPSTREAM,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["files"]["site"] == str(site / "nginx" / "mtls_proxy.conf")
    assert data["listen"] == "443" and data["tls"] == "intermediate"


# Refused --server/--upstream/--listen/--tls/--out values: the render rows of the one
# hostile-input table, tests/security/test_hostile_input.py.


# ---- the CRL file: atomic replacement, mode kept ---------------------------------------


@pytest.mark.parametrize("command", [["crl", "gen"], ["revoke", "-n", "bot"]])
def test_crl_is_replaced_atomically_and_keeps_its_mode(cli, site: Path, command: list[str]) -> None:
    crl = site / "crl.pem"
    os.chmod(crl, 0o640)
    before = crl.stat()
    old_number = load_crl(crl).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    with open(crl, "rb") as reader:  # a reader holding the old file keeps a whole old CRL
        r = cli(*command, "-p", "site")
        assert r.returncode == 0, r.stderr
        old_bytes = reader.read()
    x509.load_pem_x509_crl(old_bytes)
    after = crl.stat()
    assert after.st_ino != before.st_ino, "crl.pem was rewritten in place, not renamed"
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert after.st_gid == before.st_gid
    new = load_crl(crl)
    assert new.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > old_number
    assert not [p for p in site.iterdir() if p.name.startswith(".certwiz-")]


# ---- --reload / --nginx-cmd -------------------------------------------------------------


def test_without_reload_prints_the_one_command(cli, site: Path) -> None:
    r = cli("crl", "gen", "-p", "site", "--nginx-cmd", "nginx -c '/etc/my nginx.conf'")
    assert r.returncode == 0, r.stderr
    expected = "nginx -c '/etc/my nginx.conf' -t && nginx -c '/etc/my nginx.conf' -s reload"
    assert r.stdout.strip().splitlines()[-1].endswith(f"run: {expected}")
    r = cli("revoke", "-p", "site", "-n", "bot", env={"CERTWIZ_NGINX_CMD": "/opt/ng -p /x"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("run: /opt/ng -p /x -t && /opt/ng -p /x -s reload")


def test_unparsable_nginx_cmd_is_bad_input_and_revokes_nothing(cli, site: Path, home: Path) -> None:
    before = snapshot(home)
    r = cli("revoke", "-p", "site", "-n", "bot", "--reload", "--nginx-cmd", "nginx 'oops")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        'certwiz: error: nginx-cmd: "nginx \'oops" does not parse as a command: '
        "No closing quotation"
    ]
    assert snapshot(home) == before


def test_reload_with_missing_nginx_fails_before_revoking(cli, site: Path, home: Path) -> None:
    before = snapshot(home)
    r = cli("revoke", "-p", "site", "-n", "bot", "--reload", "--nginx-cmd", "/nonexistent/nginx")
    assert r.returncode == 1
    assert "nginx not found" in r.stderr and "apt-get install nginx" in r.stderr
    assert snapshot(home) == before


@pytest.mark.nginx
def test_failing_nginx_t_is_reported_and_nothing_reloaded(cli, site: Path, tmp_path: Path) -> None:
    """A config nginx -t rejects: exit 1, nginx's [emerg] line, and no `-s reload` ran."""
    binary = require_nginx()
    broken = tmp_path / "broken.conf"
    broken.write_text("server {\n    listen 127.0.0.1:1;\n    ssl_verify_client sometimes;\n}\n")
    prefix = tmp_path / "prefix"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(certwiz_nginx.render_standalone(prefix, broken))
    # A wrapper that records each call, then runs the real nginx.
    calls = tmp_path / "calls"
    wrapper = tmp_path / "nginx-wrapper"
    wrapper.write_text(
        f'#!/bin/sh\necho "$*" >> {shlex.quote(str(calls))}\nexec {shlex.quote(binary)} "$@"\n'
    )
    wrapper.chmod(0o755)
    cmd = shlex.join([str(wrapper), "-p", str(prefix), "-c", str(conf)])
    r = cli("crl", "gen", "-p", "site", "--reload", "--nginx-cmd", cmd)
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("certwiz: error: nginx -t failed, nginx NOT reloaded: nginx: [emerg]")
    assert 'invalid value "sometimes"' in err[0]
    assert "NOT reloaded" in r.stdout and "New CRL" in r.stdout
    assert calls.read_text().splitlines() == [f"-p {prefix} -c {conf} -V -T"]


def test_missing_nginx_skips_on_a_dev_machine_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tests.nginx_support as support

    monkeypatch.setattr(support, "find_binary", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install nginx"):
        support.require_nginx()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="nginx is missing"):
        support.require_nginx()
    monkeypatch.setenv("CI", "false")  # what some runners set outside CI
    with pytest.raises(pytest.skip.Exception):
        support.require_nginx()


def test_a_skip_fails_under_ci(pytester: pytest.Pytester) -> None:
    """The conftest hook: under CI a skipped test is reported as failed, whatever skipped."""
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401")
    pytester.makepyfile("import pytest\n\ndef test_x():\n    pytest.skip('no widget')\n")
    pytester.syspathinsert(str(REPO))
    for ci, outcome in (("true", {"failed": 1}), ("", {"skipped": 1})):
        pytester._monkeypatch.setenv("CI", ci)
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
        result.assert_outcomes(**outcome)
        if ci:
            result.stdout.fnmatch_lines(["*CI is set, so this test may not skip: *no widget*"])


def test_nginx_found_in_sbin_when_path_lacks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    binary = require_nginx()
    monkeypatch.setenv("PATH", "/nonexistent")
    if not binary.startswith(("/usr/sbin/", "/sbin/", "/usr/local/sbin/")):
        missing(f"nginx in an sbin directory (it is at {binary})", "apt-get install nginx")
    assert certwiz_nginx.find_binary("nginx") == binary


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("443", "443"),
        ("127.0.0.1:8443", "127.0.0.1:8443"),
        ("[::1]:8443", "[::1]:8443"),
        ("*:443", "*:443"),
        ("localhost:8443", "localhost:8443"),
        (" 8443 ", "8443"),
    ],
)
def test_listen_values_accepted(value: str, expected: str) -> None:
    assert certwiz_nginx.check_listen(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "http://127.0.0.1:8080",
        "https://backend.internal/app/",
        "http://[::1]:8080",
        "http://localhost",
    ],
)
def test_upstream_values_accepted(value: str) -> None:
    assert certwiz_nginx.check_upstream(value) == value


@pytest.mark.nginx
def test_nginx_parses_ipv6_listen_and_upstream(rcli, tmp_path: Path) -> None:
    binary = require_nginx()
    r = rcli(
        *RENDER,
        "--upstream",
        "http://[::1]:8080/app/",
        "--listen",
        "[::1]:8443",
        "--out",
        str(tmp_path / "o"),
    )
    assert r.returncode == 0, r.stderr
    proc = nginx_test(binary, tmp_path, tmp_path / "o" / "mtls_proxy.conf")
    assert proc.returncode == 0, proc.stderr


def test_crl_gen_json_says_not_reloaded_and_how(cli, site: Path) -> None:
    import json

    r = cli("crl", "gen", "-p", "site", "--json", env={"CERTWIZ_NGINX_CMD": "nginx -c /x.conf"})
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["reloaded"] is False
    assert data["reload_command"] == "nginx -c /x.conf -t && nginx -c /x.conf -s reload"
    assert data["crl"] == str(site / "crl.pem")


def test_render_is_audited(rcli, shared_home: Path) -> None:
    import json

    audit_log = shared_home / "site" / "audit.log"
    before = audit_log.read_text().splitlines()
    r = rcli(*RENDER, "--upstream", UPSTREAM)
    assert r.returncode == 0, r.stderr
    after = audit_log.read_text().splitlines()
    assert after[: len(before)] == before
    (record,) = [json.loads(line) for line in after[len(before) :]]
    assert (record["command"], record["names"], record["result"]) == (
        "nginx render",
        ["myserver.local"],
        "ok",
    )
    assert record["out"] == str(shared_home / "site" / "nginx")
