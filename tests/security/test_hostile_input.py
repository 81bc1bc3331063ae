"""Hostile values for every option that takes one: refused with exit 2, one line, no trace.

Each case runs the real CLI in its own process against a profile that already
holds a CA, a client and a server, and proves that every file below the home
directory is byte-for-byte what it was. Certificates and keys always land in
the profile, so path attacks go through --profile, --name and --home; the one
output-path option, `nginx render --out`, is covered in test_nginx_render.py.
Values that are legitimately accepted (a client name `a+b=c,d`, a URI with `#`
or `$`) are in test_accepted_values.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from certwiz import names
from certwiz.errors import InputError
from certwiz.profile import Profile
from tests.conftest import Result, load_cert, run_certwiz, snapshot
from tests.security.conftest import one_error_line

CI = ["client", "issue", "-p", "victim", "-u"]  # + -n NAME
SI = ["server", "issue", "-p", "victim"]  # + -n NAME
REV = ["revoke", "-p", "victim"]

# (id, argv, field named in the message). "{base}" is the directory above the home.
CASES: list[tuple[str, list[str], str]] = [
    # --profile: traversal, absolute paths, separators, injection, Unicode, length, empty
    ("profile-dotdot", [*CI[:2], "-p", "..", "-u", "-n", "bob"], "profile"),
    ("profile-traversal", [*CI[:2], "-p", "../victim", "-u", "-n", "bob"], "profile"),
    ("profile-absolute", [*CI[:2], "-p", "/etc", "-u", "-n", "bob"], "profile"),
    ("profile-slash", ["ca", "init", "-p", "a/b"], "profile"),
    ("profile-dot-start", ["ca", "init", "-p", ".hidden"], "profile"),
    ("profile-dash-start", ["ca", "init", "--profile=-rf"], "profile"),
    ("profile-65-chars", ["ca", "init", "-p", "p" * 65], "profile"),
    ("profile-300-chars", ["ca", "init", "-p", "p" * 300], "profile"),
    ("profile-empty", ["ca", "init", "-p", ""], "profile"),
    ("profile-newline", ["ca", "init", "-p", "new\nline"], "profile"),
    ("profile-cr", ["ca", "init", "-p", "new\rline"], "profile"),
    ("profile-dollar", ["ca", "init", "-p", "$HOME"], "profile"),
    ("profile-hash", ["ca", "init", "-p", "a#b"], "profile"),
    ("profile-space", ["ca", "init", "-p", "my app"], "profile"),
    ("profile-semicolon", ["crl", "gen", "-p", "victim;rm"], "profile"),
    ("profile-rtl-mark", ["ca", "init", "-p", "vic\u202etim"], "profile"),
    ("profile-homoglyph", [*CI[:2], "-p", "v\u0456ctim", "-u", "-n", "bob"], "profile"),
    ("profile-section", ["ca", "init", "-p", "[ca]"], "profile"),
    # client --name: it names files and is the subject CN
    ("name-traversal", [*CI, "-n", "../../etc/passwd"], "name"),
    ("name-absolute", [*CI, "-n", "/etc/passwd"], "name"),
    ("name-slash-subject", [*CI, "-n", "bob/O=x/CN=admin"], "name"),
    ("name-backslash", [*CI, "-n", "..\\evil"], "name"),
    ("name-dotdot", [*CI, "-n", ".."], "name"),
    ("name-dot-start", [*CI, "-n", ".lock"], "name"),
    ("name-newline", [*CI, "-n", "bob\nbasicConstraints=CA:TRUE"], "name"),
    ("name-cr", [*CI, "-n", "bob\rx"], "name"),
    ("name-tab", [*CI, "-n", "bob\tx"], "name"),
    ("name-escape", [*CI, "-n", "bob\x1b[31m"], "name"),
    ("name-del", [*CI, "-n", "bob\x7f"], "name"),
    ("name-bell", [*CI, "-n", "\x07bob"], "name"),
    ("name-65-chars", [*CI, "-n", "n" * 65], "name"),
    ("name-300-chars", [*CI, "-n", "n" * 300], "name"),
    ("name-empty", [*CI, "-n", ""], "name"),
    ("name-leading-space", [*CI, "-n", " alice"], "name"),
    ("name-trailing-space", [*CI, "-n", "alice "], "name"),
    ("name-rtl-override", [*CI, "-n", "bob\u202egpj.exe"], "name"),
    ("name-rtl-mark", [*CI, "-n", "\u200fbob"], "name"),
    ("name-zero-width", [*CI, "-n", "ali\u200bce"], "name"),
    ("name-bom", [*CI, "-n", "\ufeffbob"], "name"),
    ("name-line-separator", [*CI, "-n", "bob\u2028x"], "name"),
    ("name-private-use", [*CI, "-n", "bob\ue000"], "name"),
    ("name-nbsp-edge", [*CI, "-n", "bob\u00a0"], "name"),
    # server --name: an LDH host name or an IP address
    ("server-wildcard-name", [*SI, "-n", "*.example.com"], "name"),
    ("server-65-byte-label", [*SI, "-n", "a" * 65 + ".example.com"], "name"),
    ("server-300-chars", [*SI, "-n", ("a" * 60 + ".") * 5 + "com"], "name"),
    ("server-empty-label", [*SI, "-n", "foo..example.com"], "name"),
    ("server-hyphen-start", [*SI, "-n", "-foo.example.com"], "name"),
    ("server-underscore", [*SI, "-n", "foo_bar.example.com"], "name"),
    ("server-homoglyph", [*SI, "-n", "ex\u0430mple.com"], "name"),
    ("server-traversal", [*SI, "-n", "../etc"], "name"),
    ("server-newline", [*SI, "-n", "www.example.com\n[ ca ]"], "name"),
    ("server-cidr", [*SI, "-n", "10.0.0.0/8"], "name"),
    # --san: config injection into the extension file, wildcards, schemes
    (
        "san-inject-section",
        [
            *SI,
            "-n",
            "a.example.com",
            "--san",
            "b.example.com\n[ leaf_ext ]\nbasicConstraints=CA:TRUE",
        ],
        "san",
    ),
    ("san-inject-comma", [*SI, "-n", "a.example.com", "--san", "b.com,IP:1.2.3.4"], "san"),
    ("san-dollar", [*SI, "-n", "a.example.com", "--san", "$dir.example.com"], "san"),
    ("san-bare-wildcard", [*SI, "-n", "a.example.com", "--san", "*"], "san"),
    ("san-inner-wildcard", [*SI, "-n", "a.example.com", "--san", "foo.*.example.com"], "san"),
    ("san-tld-wildcard", [*SI, "-n", "a.example.com", "--san", "*.com"], "san"),
    ("san-partial-wildcard", [*SI, "-n", "a.example.com", "--san", "f*.example.com"], "san"),
    ("san-email-newline", [*SI, "-n", "a.example.com", "--san", "email:a@b.com\nx"], "san"),
    ("san-email-no-at", [*SI, "-n", "a.example.com", "--san", "email:nobody"], "san"),
    ("san-uri-rtl", [*SI, "-n", "a.example.com", "--san", "uri:https://x/\u202e"], "san"),
    ("san-uri-space", [*SI, "-n", "a.example.com", "--san", "uri:https://x/a b"], "san"),
    ("san-uri-no-scheme", [*SI, "-n", "a.example.com", "--san", "uri:no-scheme"], "san"),
    ("san-empty", [*SI, "-n", "a.example.com", "--san", ""], "san"),
    # --days (issue, CRL, CA)
    ("days-zero", [*CI, "-n", "bob", "-d", "0"], "days"),
    ("days-negative", [*CI, "-n", "bob", "-d", "-1"], "days"),
    ("days-huge", [*CI, "-n", "bob", "-d", "36501"], "days"),
    ("days-overflow", [*CI, "-n", "bob", "-d", "9" * 30], "days"),
    ("days-float", [*CI, "-n", "bob", "-d", "1.5"], "days"),
    ("days-exponent", [*CI, "-n", "bob", "-d", "1e3"], "days"),
    ("days-hex", [*CI, "-n", "bob", "-d", "0x10"], "days"),
    ("days-arabic-digits", [*CI, "-n", "bob", "-d", "\u0661\u0662"], "days"),
    ("days-empty", [*CI, "-n", "bob", "-d", ""], "days"),
    ("crl-days-negative", ["crl", "gen", "-p", "victim", "-d", "-5"], "days"),
    ("ca-crl-days-zero", ["ca", "init", "-p", "fresh", "--crl-days", "0"], "crl-days"),
    ("ca-days-huge", ["ca", "init", "-p", "fresh", "--days", "100000"], "days"),
    # --reason and --serial of revoke
    ("reason-remove-from-crl", [*REV, "-n", "alice", "--reason", "removeFromCRL"], "reason"),
    ("reason-newline", [*REV, "-n", "alice", "--reason", "keyCompromise\n"], "reason"),
    ("reason-case", [*REV, "-n", "alice", "--reason", "KEYCOMPROMISE"], "reason"),
    ("reason-empty", [*REV, "-n", "alice", "--reason", ""], "reason"),
    ("serial-not-hex", [*REV, "--serial", "xyz"], "serial"),
    ("serial-negative", [*REV, "--serial", "-1"], "serial"),
    ("serial-too-long", [*REV, "--serial", "1" * 41], "serial"),
    ("revoke-name-traversal", [*REV, "-n", "../alice"], "name"),
    ("show-name-traversal", ["show", "-p", "victim", "-n", "../../etc/passwd"], "name"),
    ("revoke-name-and-serial", [*REV, "-n", "alice", "--serial", "01"], "name"),
    # --key-type: a whitelist, so no openssl option can ride along
    ("key-type-weak-rsa", [*CI, "-n", "bob", "--key-type", "rsa:512"], "key-type"),
    (
        "key-type-option-smuggle",
        [*CI, "-n", "bob", "--key-type", "ec:P-256 -out /tmp/x"],
        "key-type",
    ),
    ("key-type-unknown", ["ca", "init", "-p", "fresh", "--key-type", "ed25519"], "key-type"),
    ("p12-format-unknown", [*CI, "-n", "bob", "--p12-format", "legacy"], "p12-format"),
    # passphrase files
    (
        "p12-pass-missing",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}/nope"],
        "p12-passphrase-file",
    ),
    (
        "p12-pass-short",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}/short.pass"],
        "p12-passphrase-file",
    ),
    (
        "p12-pass-empty",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}/empty.pass"],
        "p12-passphrase-file",
    ),
    (
        "p12-pass-binary",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}/bin.pass"],
        "p12-passphrase-file",
    ),
    (
        "p12-pass-nul",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}/nul.pass"],
        "p12-passphrase-file",
    ),
    (
        "p12-pass-directory",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}"],
        "p12-passphrase-file",
    ),
    (
        "ca-pass-missing",
        ["ca", "init", "-p", "fresh", "--ca-passphrase-file", "{base}/nope"],
        "ca-passphrase-file",
    ),
    (
        "ca-pass-short",
        ["ca", "init", "-p", "fresh", "--ca-passphrase-file", "{base}/short.pass"],
        "ca-passphrase-file",
    ),
    # bundles after issuance: rebundle, the onboarding handout, p12 inspect
    ("rebundle-name-traversal", ["client", "rebundle", "-p", "victim", "-n", "../ca"], "name"),
    (
        "rebundle-format",
        ["client", "rebundle", "-p", "victim", "-n", "alice", "--p12-format", "legacy"],
        "p12-format",
    ),
    (
        "bundle-name-newline",
        ["client", "bundle", "-p", "victim", "-n", "al\nice", "--out", "{base}/handout"],
        "name",
    ),
    (
        "bundle-out-is-a-file",
        ["client", "bundle", "-p", "victim", "-n", "alice", "--out", "{base}/short.pass"],
        "out",
    ),
    (
        "bundle-out-not-empty",
        ["client", "bundle", "-p", "victim", "-n", "alice", "--out", "{base}"],
        "out",
    ),
    ("p12-inspect-directory", ["p12", "inspect", "{base}"], "file"),
    ("p12-inspect-not-a-bundle", ["p12", "inspect", "{base}/short.pass"], "file"),
    (
        "p12-inspect-pass-nul",
        ["p12", "inspect", "{base}/short.pass", "--p12-passphrase-file", "{base}/nul.pass"],
        "p12-passphrase-file",
    ),
    # --home, and the global --lock-timeout
    ("home-newline", ["ca", "init", "-p", "fresh", "--home", "{base}/new\nhome"], "home"),
    ("home-cr", ["ca", "init", "-p", "fresh", "--home", "{base}/ho\rme"], "home"),
    ("home-tab", ["ca", "init", "-p", "fresh", "--home", "{base}/ho\tme"], "home"),
    ("home-is-a-file", ["ca", "init", "-p", "fresh", "--home", "{base}/short.pass"], "home"),
    (
        "lock-timeout-negative",
        ["--lock-timeout", "-1", "crl", "gen", "-p", "victim"],
        "lock-timeout",
    ),
    ("lock-timeout-nan", ["--lock-timeout", "nan", "crl", "gen", "-p", "victim"], "lock-timeout"),
]


@pytest.fixture(scope="module")
def base(victim: Profile) -> Path:
    """The directory above the home, with passphrase files of every broken kind."""
    root = victim.home.parent
    (root / "short.pass").write_text("abc\n")
    (root / "empty.pass").write_text("")
    (root / "bin.pass").write_bytes(b"\xff\xfe\xfd\xfc\n")
    (root / "nul.pass").write_bytes(b"pass\x00word\n")
    return root


@pytest.fixture(scope="module")
def refused(victim: Profile, base: Path) -> tuple[dict[str, Result], dict[str, object]]:
    """Every case run once, four at a time (each is a 0.3 s interpreter start).

    The snapshot of everything below `base` is taken before the first and
    after the last case: no case may have changed a single byte.
    """
    before = snapshot(base)

    def run(case: tuple[str, list[str], str]) -> tuple[str, Result]:
        args = [a.replace("{base}", str(base)) for a in case[1]]
        return case[0], run_certwiz(victim.home, *args)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(run, CASES))
    return results, before  # type: ignore[return-value]


def test_case_count() -> None:
    assert len(CASES) >= 60
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("case_id", "field"), [(c[0], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_value_is_refused(
    refused: tuple[dict[str, Result], object], case_id: str, field: str
) -> None:
    result = refused[0][case_id]
    assert result.returncode == 2, result.stderr
    assert one_error_line(result).startswith(f"certwiz: error: {field}: ")
    assert result.stdout == ""


def test_no_hostile_value_changed_a_byte(
    refused: tuple[dict[str, Result], object], base: Path, victim: Profile
) -> None:
    """The profile and its neighbours hold exactly what they held before the cases ran."""
    results, before = refused
    assert len(results) == len(CASES)
    assert snapshot(base) == before
    assert sorted(p.name for p in victim.home.iterdir()) == ["victim"]
    assert not list(base.glob("new*")) and not list(base.glob("ho*"))


def test_duplicate_name_is_refused_without_trace(victim: Profile) -> None:
    before = snapshot(victim.home)
    result = run_certwiz(victim.home, *CI, "-n", "alice")
    assert result.returncode == 2
    assert "alice already has a valid certificate" in one_error_line(result)
    assert snapshot(victim.home) == before


def test_revoking_unknown_name_leaves_no_trace(victim: Profile) -> None:
    before = snapshot(victim.home)
    result = run_certwiz(victim.home, *REV, "-n", "nobody")
    assert result.returncode == 2
    assert "nobody has no valid certificate" in one_error_line(result)
    assert snapshot(victim.home) == before


def test_bad_lock_timeout_from_environment(victim: Profile) -> None:
    before = snapshot(victim.home)
    result = run_certwiz(
        victim.home, "crl", "gen", "-p", "victim", env={"CERTWIZ_LOCK_TIMEOUT": "soon"}
    )
    assert result.returncode == 2
    assert one_error_line(result).startswith("certwiz: error: CERTWIZ_LOCK_TIMEOUT: ")
    assert snapshot(victim.home) == before


@pytest.mark.parametrize("value", ["bob\x00", "\x00", "a\x00/../../etc"])
def test_nul_is_refused_by_the_validators(value: str) -> None:
    """NUL cannot travel through argv; the library entry points refuse it themselves."""
    for check in (
        names.client_name,
        names.profile_name,
        lambda v: names.dns_name(v, "name"),
        names.san,
        names.days,
        names.reason,
        names.key_type,
    ):
        with pytest.raises(InputError):
            check(value)


# Accepted on purpose. Client names are people and machines: any printable
# Unicode (so a Cyrillic homoglyph is a *different* name, shown as such by
# `list`), because openssl gets them with -utf8 and escaped for -subj; only
# invisible or control characters and what breaks a file name are refused.
ACCEPTED_CLIENTS = [
    "a+b=c,d",  # RDN separators: escaped, the subject keeps one CN
    "O=evil",  # looks like an attribute: stays the CN's text
    "x\"y#z$dir'",  # config metacharacters: never rendered into a config
    "Zoë Müller",  # non-ASCII letters
    "\u0430lice",  # Cyrillic a: accepted, a different name from alice
    "שלום",  # right-to-left script (without invisible direction marks)
    "n" * 64,  # the longest CN RFC 5280 allows
    "*",  # a client name is not a host name: no wildcard meaning
]


@pytest.mark.parametrize("name", ACCEPTED_CLIENTS)
def test_accepted_client_name_is_exactly_one_cn(victim: Profile, name: str) -> None:
    result = run_certwiz(victim.home, *CI, "-n", name, "--json")
    assert result.returncode == 0, result.stderr
    cert = load_cert(victim.cert_path(name))
    attributes = list(cert.subject)
    assert [a.oid for a in attributes] == [NameOID.COMMON_NAME]
    assert attributes[0].value == name
    assert victim.cert_path(name).parent == victim.issued  # the file is where it belongs


@pytest.mark.parametrize(
    ("san", "kind", "value"),
    [
        (
            "uri:https://example.com/a#frag",
            x509.UniformResourceIdentifier,
            "https://example.com/a#frag",
        ),
        (
            "uri:https://example.com/$dir/${ENV}",
            x509.UniformResourceIdentifier,
            "https://example.com/$dir/${ENV}",
        ),
        ('uri:urn:x:"q"\'s\\', x509.UniformResourceIdentifier, 'urn:x:"q"\'s\\'),
        ("uri:urn:a`b`c", x509.UniformResourceIdentifier, "urn:a`b`c"),  # found by Hypothesis
        ("xn--bcher-kva.example", x509.DNSName, "xn--bcher-kva.example"),
        ("*.wild.example.com", x509.DNSName, "*.wild.example.com"),
        ("::1", x509.IPAddress, "::1"),
    ],
)
def test_accepted_san_is_written_literally(
    victim: Profile, san: str, kind: type, value: str
) -> None:
    """`#`, `$` and quotes reach openssl's config parser escaped: the SAN is the text given."""
    server = f"s{abs(hash(san)) % 10**8}.example.com"
    result = run_certwiz(victim.home, *SI, "-n", server, "--san", san)
    assert result.returncode == 0, result.stderr
    ext = (
        load_cert(victim.cert_path(server))
        .extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        .value
    )
    got = [str(v) for v in ext.get_values_for_type(kind)]
    assert got[-1] == value
    assert len(list(ext)) == 2  # the server name and this SAN: nothing injected
