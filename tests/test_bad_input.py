"""Bad input: exit code 2, one line naming the field, and the profile byte for byte as before."""

from __future__ import annotations

import pytest

from certwiz import issue
from tests.conftest import load_cert, snapshot

CASES = [
    # (field named in the message, argv after "certwiz")
    ("profile", ["ca", "init", "-p", "../escape"]),
    ("profile", ["ca", "init", "-p", "/abs/path"]),
    ("profile", ["server", "issue", "-p", "my-app/../other", "-n", "a.local"]),
    ("profile", ["list", "-p", ".hidden"]),
    ("profile", ["list", "-p", "x" * 65]),
    ("name", ["server", "issue", "-p", "my-app", "-n", "bob/O=x/CN=admin"]),
    ("name", ["server", "issue", "-p", "my-app", "-n", "under_score.local"]),
    ("name", ["server", "issue", "-p", "my-app", "-n", "*.example.com"]),
    ("name", ["server", "issue", "-p", "my-app", "-n", "a" * 64 + ".local"]),
    ("name", ["server", "issue", "-p", "my-app", "-n", "-lead.local"]),
    ("name", ["server", "issue", "-p", "my-app", "-n", "a\nb"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", "bob/O=x/CN=admin", "-u"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", "../../etc/passwd", "-u"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", "line\nbreak", "-u"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", "tab\there", "-u"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", "rtl\u202eevil", "-u"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", "", "-u"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", "x" * 65, "-u"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", "back\\slash", "-u"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", " padded", "-u"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", "ca", "-u"]),
    ("name", ["server", "issue", "-p", "my-app", "-n", "CA"]),
    ("name", ["client", "issue", "-p", "my-app", "-n", "bot-\U0001f600", "-u"]),
    ("name", ["server", "issue", "-p", "my-app", "-n", "fe80::1%eth0"]),
    ("name", ["server", "issue", "-p", "my-app", "-n", "a" * 63 + ".example"]),
    ("san", ["server", "issue", "-p", "my-app", "-n", "a.local", "--san", "a.local\nDNS.9=x"]),
    ("san", ["server", "issue", "-p", "my-app", "-n", "a.local", "--san", "email:nobody"]),
    ("san", ["server", "issue", "-p", "my-app", "-n", "a.local", "--san", "uri:no scheme"]),
    ("san", ["server", "issue", "-p", "my-app", "-n", "a.local", "--san", "a.*.example.com"]),
    ("san", ["server", "issue", "-p", "my-app", "-n", "a.local", "--san", "$HOME"]),
    ("san", ["server", "issue", "-p", "my-app", "-n", "a.local", "--san", "[ca]"]),
    ("san", ["server", "issue", "-p", "my-app", "-n", "a.local", "--san", "300.1.1.1"]),
    ("name", ["server", "issue", "-p", "my-app", "-n", "10.0.0.256"]),
    (
        "p12-passphrase-file",
        ["client", "issue", "-p", "my-app", "-n", "bot", "--p12-passphrase-file", "/dev/zero"],
    ),
    ("days", ["server", "issue", "-p", "my-app", "-n", "a.local", "-d", "0"]),
    ("days", ["server", "issue", "-p", "my-app", "-n", "a.local", "-d", "-5"]),
    ("days", ["client", "issue", "-p", "my-app", "-n", "bot", "-u", "-d", "36501"]),
    ("days", ["client", "issue", "-p", "my-app", "-n", "bot", "-u", "-d", "1e3"]),
    ("days", ["crl", "gen", "-p", "my-app", "--days", "0"]),
    ("key-type", ["client", "issue", "-p", "my-app", "-n", "bot", "-u", "--key-type", "dsa"]),
    ("reason", ["revoke", "-p", "my-app", "-n", "bot-01", "--reason", "removeFromCRL"]),
    ("serial", ["revoke", "-p", "my-app", "--serial", "xyz"]),
    (
        "p12-format",
        ["client", "issue", "-p", "my-app", "-n", "bot", "-u", "--p12-format", "legacy"],
    ),
    (
        "p12-passphrase-file",
        [
            "client",
            "issue",
            "-p",
            "my-app",
            "-n",
            "bot",
            "--p12-passphrase-file",
            "/nonexistent/file",
        ],
    ),
]


@pytest.mark.parametrize(("field", "argv"), CASES, ids=[repr(c[1][-1])[:30] for c in CASES])
def test_bad_value_is_refused_without_a_trace(cli, profile, field: str, argv: list[str]) -> None:
    issue.issue_client(profile, "bot-01")
    before = snapshot(profile.home)
    result = cli(*argv)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"certwiz: error: {field}: "), lines[0]
    assert "Traceback" not in result.stderr
    assert snapshot(profile.home) == before


def test_subject_injection_cannot_add_an_rdn(profile) -> None:
    """'+', '=' and ',' are escaped: the subject keeps exactly one CN, equal to the name."""
    for name in ("alice+CN=admin", "x,O=evil", "CN=root"):
        issue.issue_client(profile, name)
        cert = load_cert(profile.cert_path(name))
        assert len(cert.subject.rdns) == 1
        assert [a.value for a in cert.subject] == [name]


def test_paths_that_are_not_utf8_are_refused_and_nothing_is_written(cli, profile, tmp_path) -> None:
    """Issue 13 item 13: non-UTF-8 bytes in --home or --out gave a traceback (and left 2 of
    3 NGINX files written). They are one `home:`/`out:` line now, and nothing is written."""
    issue.issue_server(profile, "a.local")
    bad = str(tmp_path / "dir") + "\udcff"  # the byte 0xFF, as Python gets it from argv
    render = ["nginx", "render", "-p", "my-app", "--server", "a.local"]
    cases = [
        ("home", ["ca", "init", "-p", "x", "--home", bad], {}),
        ("home", ["ca", "init", "-p", "x"], {"CERTWIZ_HOME": bad}),
        ("home", ["list", "-p", "my-app", "--home", bad], {}),
        ("out", [*render, "--upstream", "http://127.0.0.1:8080", "--out", bad], {}),
        ("out", [*render, "--upstream", "http://127.0.0.1:8080", "--out", bad + "/x"], {}),
    ]
    before = snapshot(tmp_path)
    for field, argv, env in cases:
        result = cli(*argv, env=env)
        assert result.returncode == 2, (argv, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"certwiz: error: {field}: "), lines
        assert "UTF-8" in lines[0]
        assert snapshot(tmp_path) == before
