"""THE hostile-input table: every refused value of every command, in one place.

A refused value must give exit 2, exactly one stderr line `certwiz: error: FIELD: RULE`
naming the field, no traceback, nothing on stdout, and leave every file below the test
directory (the profile, its home and the neighbours a path attack aims at) byte for byte
as it was (a hash of each file and its mode, taken before and after each row).

Rows are (id, argv, field[, env, says]). A new command joins by adding its argv to the
`*_TAKERS` tables (it then meets every value refused everywhere) and its own rows to
CASES. Each row runs in this process through Typer's CliRunner (the same app, parsing,
library and error reporting as the program, without a 0.3 s interpreter start per row);
the first row of each field also runs as a real `python -m certwiz` process
(test_real_processes_refuse_the_same_way), so the in-process path cannot drift from
what a user's process does. `{base}` is the directory above the home.

Merged from tests/test_bad_input.py, the nginx render table of test_nginx_render.py
and the earlier version of this file (issue 14).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from certwiz import issue, names, revoke
from certwiz.errors import InputError
from certwiz.profile import Profile
from tests.conftest import Result, invoke, load_cert, run_certwiz, snapshot
from tests.security.conftest import one_error_line


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]
    field: str  # "" for a request that does not fit the profile (no field to name)
    env: dict[str, str] = field(default_factory=dict)
    says: str = ""  # text the error line must also contain


CI = ["client", "issue", "-p", "victim", "-u"]  # + -n NAME
SI = ["server", "issue", "-p", "victim"]  # + -n NAME
REV = ["revoke", "-p", "victim"]
UPSTREAM = "http://127.0.0.1:8080"
RENDER = ["nginx", "render", "-p", "victim", "--server", "www.example.com"]
AGENT = ["agent", "renew", "--url", "https://127.0.0.1:1", "-u"]  # + --p12, --ca
AGENT_ENROLL = ["agent", "enroll", "--url", "https://127.0.0.1:1", "--token", "t0k", "-u",
                "--ca", "{base}/certs/victim/ca.crt"]  # fmt: skip
SIGN_INT = [
    "ca",
    "sign-intermediate",
    "-p",
    "victim",
    "--csr",
    "{base}/int.csr",
    "--out",
    "{base}/int.crt",
]  # fmt: skip; the last --csr/--out given wins
INVITE = ["client", "invite", "-p", "victim", "-n", "dev-1"]
SERVE = ["serve", "-p", "victim", "--listen"]  # + ADDRESS
NOT_UTF8 = "{base}/dir\udcff"  # the byte 0xFF, as Python gets it from argv

# ---- values refused by every command that takes the option, x those commands ----------
# {v} is the value. A new command taking --profile or --name: one line here.
PROFILE_TAKERS: dict[str, list[str]] = {
    "ca-init": ["ca", "init", "--profile={v}"],
    "ca-set": ["ca", "set", "--profile={v}", "--crl-url", "http://crl.example/x.crl"],
    "client-issue": ["client", "issue", "--profile={v}", "-u", "-n", "bob"],
    "client-renew": ["client", "renew", "--profile={v}", "-n", "alice"],
    "server-issue": ["server", "issue", "--profile={v}", "-n", "a.example.com"],
    "revoke": ["revoke", "--profile={v}", "-n", "alice"],
    "crl-gen": ["crl", "gen", "--profile={v}"],
    "list": ["list", "--profile={v}"],
    "show": ["show", "--profile={v}", "-n", "alice"],
    "check": ["check", "--profile={v}"],
    "audit": ["audit", "--profile={v}"],
    "status": ["status", "--profile={v}"],
    "nginx-render": [
        "nginx",
        "render",
        "--profile={v}",
        "--server",
        "www.example.com",
        "--upstream",
        UPSTREAM,
    ],
    "export": ["export", "--profile={v}", "-n", "alice", "--out", "{base}/alice.pem"],
    "ca-sign-intermediate": [*SIGN_INT[:2], "--profile={v}", *SIGN_INT[4:]],
    "client-invite": ["client", "invite", "--profile={v}", "-n", "dev-1"],
    "serve": ["serve", "--profile={v}", "--listen", "127.0.0.1:1"],
    "client-issue-batch": [
        "client",
        "issue-batch",
        "--profile={v}",
        "-u",
        "--from",
        "{base}/fleet.csv",
    ],
}
PROFILES_REFUSED = {
    "dotdot": "..",
    "traversal": "../victim",
    "absolute": "/etc",
    "slash": "a/b",
    "dot-start": ".hidden",
    "dash-start": "-rf",
    "65-chars": "p" * 65,
    "empty": "",
    "newline": "vic\ntim",
    "rtl-override": "vic\u202etim",
    "section": "[ca]",
}
NAME_TAKERS: dict[str, list[str]] = {
    "client-issue": [*CI, "--name", "{v}"],
    "server-issue": [*SI, "--name", "{v}"],
    "client-renew": ["client", "renew", "-p", "victim", "--name", "{v}"],
    "server-renew": ["server", "renew", "-p", "victim", "--name", "{v}"],
    "revoke": [*REV, "--name", "{v}"],
    "show": ["show", "-p", "victim", "--name", "{v}"],
    "client-rebundle": ["client", "rebundle", "-p", "victim", "--name", "{v}"],
    "client-bundle": [
        "client",
        "bundle",
        "-p",
        "victim",
        "--name",
        "{v}",
        "--out",
        "{base}/handout",
    ],
    "export": ["export", "-p", "victim", "--name", "{v}", "--out", "{base}/x.pem"],
    "agent-enroll": [*AGENT_ENROLL, "--out", "{base}/dev.p12", "--name", "{v}"],
    "client-invite": ["client", "invite", "-p", "victim", "--name", "{v}"],
}
NAMES_REFUSED = {
    "traversal": "../../etc/passwd",
    "absolute": "/etc/passwd",
    "dotdot": "..",
    "dot-start": ".lock",
    "backslash": "..\\evil",
    "newline": "bob\nbasicConstraints=CA:TRUE",
    "escape": "bob\x1b[31m",
    "empty": "",
    "300-chars": "n" * 300,
    "rtl-override": "bob\u202egpj.exe",
    "zero-width": "ali\u200bce",
}


def _crossed(takers: dict[str, list[str]], values: dict[str, str], fld: str) -> list[Case]:
    return [
        Case(f"{fld}-{vid}-x-{cid}", [a.replace("{v}", value) for a in argv], fld)
        for cid, argv in takers.items()
        for vid, value in values.items()
    ]


# ---- values particular to one command or option ---------------------------------------
CASES: list[Case] = [
    *_crossed(PROFILE_TAKERS, PROFILES_REFUSED, "profile"),
    *_crossed(NAME_TAKERS, NAMES_REFUSED, "name"),
    # --profile
    Case("profile-escape-init", ["ca", "init", "-p", "../escape"], "profile"),
    Case("profile-abs-init", ["ca", "init", "-p", "/abs/path"], "profile"),
    Case("profile-inner-dotdot", [*SI[:2], "-p", "victim/../other", "-n", "a.local"], "profile"),
    Case("profile-dot-start-list", ["list", "-p", ".hidden"], "profile"),
    Case("profile-65-chars-list", ["list", "-p", "x" * 65], "profile"),
    Case("profile-dotdot", [*CI[:2], "-p", "..", "-u", "-n", "bob"], "profile"),
    Case("profile-traversal", [*CI[:2], "-p", "../victim", "-u", "-n", "bob"], "profile"),
    Case("profile-absolute", [*CI[:2], "-p", "/etc", "-u", "-n", "bob"], "profile"),
    Case("profile-slash", ["ca", "init", "-p", "a/b"], "profile"),
    Case("profile-dot-start", ["ca", "init", "-p", ".hidden"], "profile"),
    Case("profile-dash-start", ["ca", "init", "--profile=-rf"], "profile"),
    Case("profile-65-chars", ["ca", "init", "-p", "p" * 65], "profile"),
    Case("profile-300-chars", ["ca", "init", "-p", "p" * 300], "profile"),
    Case("profile-empty", ["ca", "init", "-p", ""], "profile"),
    Case("profile-newline", ["ca", "init", "-p", "new\nline"], "profile"),
    Case("profile-cr", ["ca", "init", "-p", "new\rline"], "profile"),
    Case("profile-dollar", ["ca", "init", "-p", "$HOME"], "profile"),
    Case("profile-hash", ["ca", "init", "-p", "a#b"], "profile"),
    Case("profile-space", ["ca", "init", "-p", "my app"], "profile"),
    Case("profile-semicolon", ["crl", "gen", "-p", "victim;rm"], "profile"),
    Case("profile-rtl-mark", ["ca", "init", "-p", "vic\u202etim"], "profile"),
    Case("profile-homoglyph", [*CI[:2], "-p", "v\u0456ctim", "-u", "-n", "bob"], "profile"),
    Case("profile-section", ["ca", "init", "-p", "[ca]"], "profile"),
    # client --name: it names files and is the subject CN
    Case("name-traversal", [*CI, "-n", "../../etc/passwd"], "name"),
    Case("name-absolute", [*CI, "-n", "/etc/passwd"], "name"),
    Case("name-slash-subject", [*CI, "-n", "bob/O=x/CN=admin"], "name"),
    Case("name-backslash", [*CI, "-n", "..\\evil"], "name"),
    Case("name-backslash-inner", [*CI, "-n", "back\\slash"], "name"),
    Case("name-dotdot", [*CI, "-n", ".."], "name"),
    Case("name-dot-start", [*CI, "-n", ".lock"], "name"),
    Case("name-newline", [*CI, "-n", "bob\nbasicConstraints=CA:TRUE"], "name"),
    Case("name-line-break", [*CI, "-n", "line\nbreak"], "name"),
    Case("name-cr", [*CI, "-n", "bob\rx"], "name"),
    Case("name-tab", [*CI, "-n", "bob\tx"], "name"),
    Case("name-tab-inner", [*CI, "-n", "tab\there"], "name"),
    Case("name-escape", [*CI, "-n", "bob\x1b[31m"], "name"),
    Case("name-del", [*CI, "-n", "bob\x7f"], "name"),
    Case("name-bell", [*CI, "-n", "\x07bob"], "name"),
    Case("name-65-chars", [*CI, "-n", "n" * 65], "name"),
    Case("name-65-x", [*CI, "-n", "x" * 65], "name"),
    Case("name-300-chars", [*CI, "-n", "n" * 300], "name"),
    Case("name-empty", [*CI, "-n", ""], "name"),
    Case("name-leading-space", [*CI, "-n", " alice"], "name"),
    Case("name-leading-space-new", [*CI, "-n", " padded"], "name"),
    Case("name-trailing-space", [*CI, "-n", "alice "], "name"),
    Case("name-rtl-override", [*CI, "-n", "bob\u202egpj.exe"], "name"),
    Case("name-rtl-override-inner", [*CI, "-n", "rtl\u202eevil"], "name"),
    Case("name-rtl-mark", [*CI, "-n", "\u200fbob"], "name"),
    Case("name-zero-width", [*CI, "-n", "ali\u200bce"], "name"),
    Case("name-bom", [*CI, "-n", "\ufeffbob"], "name"),
    Case("name-line-separator", [*CI, "-n", "bob\u2028x"], "name"),
    Case("name-private-use", [*CI, "-n", "bob\ue000"], "name"),
    Case("name-nbsp-edge", [*CI, "-n", "bob\u00a0"], "name"),
    Case("name-emoji", [*CI, "-n", "bot-\U0001f600"], "name"),
    Case("name-reserved-ca", [*CI, "-n", "ca"], "name"),
    # server --name: an LDH host name or an IP address
    Case("server-slash-subject", [*SI, "-n", "bob/O=x/CN=admin"], "name"),
    Case("server-underscore-local", [*SI, "-n", "under_score.local"], "name"),
    Case("server-wildcard-name", [*SI, "-n", "*.example.com"], "name"),
    Case("server-64-byte-label", [*SI, "-n", "a" * 64 + ".local"], "name"),
    Case("server-65-byte-label", [*SI, "-n", "a" * 65 + ".example.com"], "name"),
    Case("server-300-chars", [*SI, "-n", ("a" * 60 + ".") * 5 + "com"], "name"),
    Case("server-empty-label", [*SI, "-n", "foo..example.com"], "name"),
    Case("server-hyphen-start", [*SI, "-n", "-foo.example.com"], "name"),
    Case("server-hyphen-start-local", [*SI, "-n", "-lead.local"], "name"),
    Case("server-underscore", [*SI, "-n", "foo_bar.example.com"], "name"),
    Case("server-homoglyph", [*SI, "-n", "ex\u0430mple.com"], "name"),
    Case("server-traversal", [*SI, "-n", "../etc"], "name"),
    Case("server-newline", [*SI, "-n", "www.example.com\n[ ca ]"], "name"),
    Case("server-newline-short", [*SI, "-n", "a\nb"], "name"),
    Case("server-cidr", [*SI, "-n", "10.0.0.0/8"], "name"),
    Case("server-reserved-ca", [*SI, "-n", "CA"], "name"),
    Case("server-ipv6-zone", [*SI, "-n", "fe80::1%eth0"], "name"),
    Case("server-63-label-65-chars", [*SI, "-n", "a" * 63 + ".example"], "name"),
    Case("server-ip-octet-256", [*SI, "-n", "10.0.0.256"], "name"),
    # an IPv4-mapped IPv6 address is its IPv4 address: 10.9.8.7 has a valid certificate
    Case(
        "server-ipv4-mapped-taken",
        [*SI, "-n", "::ffff:10.9.8.7"],
        "",
        says="10.9.8.7 already has a valid certificate",
    ),
    Case(
        "san-ipv4-mapped-taken",
        [*SI, "-n", "a.local", "--san", "::ffff:a09:807"],
        "",
        says="10.9.8.7 is already covered by 10.9.8.7",
    ),
    # --san: config injection into the extension file, wildcards, schemes
    Case(
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
    Case("san-inject-dns-line", [*SI, "-n", "a.local", "--san", "a.local\nDNS.9=x"], "san"),
    Case("san-inject-comma", [*SI, "-n", "a.example.com", "--san", "b.com,IP:1.2.3.4"], "san"),
    Case("san-dollar", [*SI, "-n", "a.example.com", "--san", "$dir.example.com"], "san"),
    Case("san-dollar-home", [*SI, "-n", "a.local", "--san", "$HOME"], "san"),
    Case("san-section", [*SI, "-n", "a.local", "--san", "[ca]"], "san"),
    Case("san-bare-wildcard", [*SI, "-n", "a.example.com", "--san", "*"], "san"),
    Case("san-inner-wildcard", [*SI, "-n", "a.example.com", "--san", "foo.*.example.com"], "san"),
    Case("san-inner-wildcard-2", [*SI, "-n", "a.local", "--san", "a.*.example.com"], "san"),
    Case("san-tld-wildcard", [*SI, "-n", "a.example.com", "--san", "*.com"], "san"),
    Case("san-partial-wildcard", [*SI, "-n", "a.example.com", "--san", "f*.example.com"], "san"),
    Case("san-email-newline", [*SI, "-n", "a.example.com", "--san", "email:a@b.com\nx"], "san"),
    Case("san-email-no-at", [*SI, "-n", "a.example.com", "--san", "email:nobody"], "san"),
    Case("san-uri-rtl", [*SI, "-n", "a.example.com", "--san", "uri:https://x/\u202e"], "san"),
    Case("san-uri-space", [*SI, "-n", "a.example.com", "--san", "uri:https://x/a b"], "san"),
    Case("san-uri-no-scheme", [*SI, "-n", "a.example.com", "--san", "uri:no-scheme"], "san"),
    Case("san-uri-no-scheme-space", [*SI, "-n", "a.local", "--san", "uri:no scheme"], "san"),
    Case("san-ip-octet-300", [*SI, "-n", "a.local", "--san", "300.1.1.1"], "san"),
    Case("san-empty", [*SI, "-n", "a.example.com", "--san", ""], "san"),
    # --days (issue, CRL, CA)
    Case("days-zero", [*CI, "-n", "bob", "-d", "0"], "days"),
    Case("days-zero-server", [*SI, "-n", "a.local", "-d", "0"], "days"),
    Case("days-negative", [*CI, "-n", "bob", "-d", "-1"], "days"),
    Case("days-negative-server", [*SI, "-n", "a.local", "-d", "-5"], "days"),
    Case("days-huge", [*CI, "-n", "bob", "-d", "36501"], "days"),
    Case("days-overflow", [*CI, "-n", "bob", "-d", "9" * 30], "days"),
    Case("days-float", [*CI, "-n", "bob", "-d", "1.5"], "days"),
    Case("days-exponent", [*CI, "-n", "bob", "-d", "1e3"], "days"),
    Case("days-hex", [*CI, "-n", "bob", "-d", "0x10"], "days"),
    Case("days-arabic-digits", [*CI, "-n", "bob", "-d", "\u0661\u0662"], "days"),
    Case("days-empty", [*CI, "-n", "bob", "-d", ""], "days"),
    Case("crl-days-zero", ["crl", "gen", "-p", "victim", "--days", "0"], "days"),
    Case("crl-days-negative", ["crl", "gen", "-p", "victim", "-d", "-5"], "days"),
    Case("ca-crl-days-zero", ["ca", "init", "-p", "fresh", "--crl-days", "0"], "crl-days"),
    Case("ca-days-huge", ["ca", "init", "-p", "fresh", "--days", "100000"], "days"),
    # --reason and --serial of revoke
    Case("reason-remove-from-crl", [*REV, "-n", "alice", "--reason", "removeFromCRL"], "reason"),
    Case("reason-newline", [*REV, "-n", "alice", "--reason", "keyCompromise\n"], "reason"),
    Case("reason-case", [*REV, "-n", "alice", "--reason", "KEYCOMPROMISE"], "reason"),
    Case("reason-empty", [*REV, "-n", "alice", "--reason", ""], "reason"),
    Case("serial-not-hex", [*REV, "--serial", "xyz"], "serial"),
    Case("serial-negative", [*REV, "--serial", "-1"], "serial"),
    Case("serial-too-long", [*REV, "--serial", "1" * 41], "serial"),
    Case("revoke-name-traversal", [*REV, "-n", "../alice"], "name"),
    Case("show-name-traversal", ["show", "-p", "victim", "-n", "../../etc/passwd"], "name"),
    Case("revoke-name-and-serial", [*REV, "-n", "alice", "--serial", "01"], "name"),
    # --key-type: a whitelist, so no openssl option can ride along
    Case("key-type-dsa", [*CI, "-n", "bob", "--key-type", "dsa"], "key-type"),
    Case("key-type-weak-rsa", [*CI, "-n", "bob", "--key-type", "rsa:512"], "key-type"),
    Case(
        "key-type-option-smuggle",
        [*CI, "-n", "bob", "--key-type", "ec:P-256 -out /tmp/x"],
        "key-type",
    ),
    Case("key-type-unknown", ["ca", "init", "-p", "fresh", "--key-type", "ed25519"], "key-type"),
    Case("p12-format-unknown", [*CI, "-n", "bob", "--p12-format", "legacy"], "p12-format"),
    # passphrase files
    Case(
        "p12-pass-missing",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}/nope"],
        "p12-passphrase-file",
    ),
    Case(
        "p12-pass-missing-dir",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "/nonexistent/file"],
        "p12-passphrase-file",
    ),
    Case(
        "p12-pass-dev-zero",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "/dev/zero"],
        "p12-passphrase-file",
    ),
    Case(
        "p12-pass-short",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}/short.pass"],
        "p12-passphrase-file",
    ),
    Case(
        "p12-pass-empty",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}/empty.pass"],
        "p12-passphrase-file",
    ),
    Case(
        "p12-pass-binary",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}/bin.pass"],
        "p12-passphrase-file",
    ),
    Case(
        "p12-pass-nul",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}/nul.pass"],
        "p12-passphrase-file",
    ),
    Case(
        "p12-pass-directory",
        [*CI[:-1], "-n", "bob", "--p12-passphrase-file", "{base}"],
        "p12-passphrase-file",
    ),
    Case(
        "ca-pass-missing",
        ["ca", "init", "-p", "fresh", "--ca-passphrase-file", "{base}/nope"],
        "ca-passphrase-file",
    ),
    Case(
        "ca-pass-short",
        ["ca", "init", "-p", "fresh", "--ca-passphrase-file", "{base}/short.pass"],
        "ca-passphrase-file",
    ),
    # bundles after issuance: rebundle, the onboarding handout, p12 inspect
    Case("rebundle-name-traversal", ["client", "rebundle", "-p", "victim", "-n", "../ca"], "name"),
    Case(
        "rebundle-format",
        ["client", "rebundle", "-p", "victim", "-n", "alice", "--p12-format", "legacy"],
        "p12-format",
    ),
    Case(
        "bundle-name-newline",
        ["client", "bundle", "-p", "victim", "-n", "al\nice", "--out", "{base}/handout"],
        "name",
    ),
    Case(
        "bundle-out-is-a-file",
        ["client", "bundle", "-p", "victim", "-n", "alice", "--out", "{base}/short.pass"],
        "out",
    ),
    Case(
        "bundle-out-not-empty",
        ["client", "bundle", "-p", "victim", "-n", "alice", "--out", "{base}"],
        "out",
    ),
    Case("p12-inspect-directory", ["p12", "inspect", "{base}"], "file"),
    Case("p12-inspect-not-a-bundle", ["p12", "inspect", "{base}/short.pass"], "file"),
    Case(
        "p12-inspect-pass-nul",
        ["p12", "inspect", "{base}/short.pass", "--p12-passphrase-file", "{base}/nul.pass"],
        "p12-passphrase-file",
    ),
    # certwiz agent (no profile: the device's files, the URL, the token)
    Case(
        "agent-url-http",
        [*AGENT, "--url", "http://h", "--p12", "{base}/x", "--ca", "{base}/x"],
        "url",
    ),
    Case(
        "agent-url-path",
        [*AGENT, "--url", "https://h/est", "--p12", "{base}/x", "--ca", "x"],
        "url",
    ),
    Case("agent-url-port-0", [*AGENT, "--url", "https://h:0", "--p12", "x", "--ca", "x"], "url"),
    Case(
        "agent-url-unparsable", [*AGENT, "--url", "https://[::1/", "--p12", "x", "--ca", "x"], "url"
    ),
    Case("agent-before-zero", [*AGENT, "--before", "0", "--p12", "x", "--ca", "x"], "before"),
    Case("agent-before-words", [*AGENT, "--before", "soon", "--p12", "x", "--ca", "x"], "before"),
    Case("agent-ca-not-pem", [*AGENT, "--p12", "{base}/x", "--ca", "{base}/short.pass"], "ca"),
    Case("agent-ca-directory", [*AGENT, "--p12", "{base}/x", "--ca", "{base}"], "ca"),
    Case(
        "agent-p12-not-a-bundle",
        [*AGENT, "--p12", "{base}/short.pass", "--ca", "{base}/certs/victim/ca.crt"],
        "p12",
    ),
    Case(
        "agent-p12-directory",
        [*AGENT, "--p12", "{base}", "--ca", "{base}/certs/victim/ca.crt"],
        "p12",
    ),
    Case(
        "agent-token-space",
        [*AGENT_ENROLL[:-2], "--token", "a b", "--ca", "x", "-n", "bob", "--out", "{base}/dev.p12"],
        "token",
    ),
    Case(
        "agent-token-file-empty",
        [
            *AGENT_ENROLL,
            "--token-file",
            "{base}/empty.pass",
            "-n",
            "bob",
            "--out",
            "{base}/dev.p12",
        ],
        "token-file",
    ),
    # EST: client invite, certwiz serve, nginx render --enroll (nothing starts, nothing written)
    Case("invite-ttl-zero", [*INVITE, "--ttl", "0m"], "ttl"),
    Case("invite-ttl-too-long", [*INVITE, "--ttl", "31d"], "ttl"),
    Case("invite-days-words", [*INVITE, "-d", "forever"], "days"),
    Case(
        "invite-name-has-cert",
        ["client", "invite", "-p", "victim", "-n", "alice"],
        "",
        says="already has a valid certificate",
    ),
    # HTTP Basic ends the user name at the first ':' (attack round 12, F10)
    Case(
        "invite-name-colon",
        ["client", "invite", "-p", "victim", "-n", "bot:1"],
        "name",
        says="HTTP Basic cannot carry it",
    ),
    Case(
        "agent-enroll-name-colon",
        [*AGENT_ENROLL, "--out", "{base}/dev.p12", "--name", "bot:1"],
        "name",
        says="HTTP Basic cannot carry it",
    ),
    Case("serve-listen-hostname", [*SERVE, "localhost:8085"], "listen"),
    Case("serve-listen-port-0", [*SERVE, "127.0.0.1:0"], "listen"),
    Case("serve-listen-no-port", [*SERVE, "127.0.0.1"], "listen"),
    Case("serve-listen-unix-relative", [*SERVE, "unix:est.sock"], "listen"),
    Case("serve-listen-unix-a-file", [*SERVE, "unix:{base}/short.pass"], "listen"),
    Case(
        "serve-trusted-proxy-name",
        [*SERVE, "127.0.0.1:1", "--trusted-proxy", "nginx"],
        "trusted-proxy",
    ),
    Case(
        "serve-socket-mode-exec",
        [*SERVE, "unix:{base}/e.sock", "--socket-mode", "777"],
        "socket-mode",
    ),
    Case("serve-grace-words", [*SERVE, "127.0.0.1:1", "--grace", "a while"], "grace"),
    # issue 12/13 (finding C): the proxy secret goes only where no other local user can
    # listen first: a port below 1024, a socket in a directory nobody else may write
    Case("serve-listen-unprivileged-port", [*SERVE, "127.0.0.1:8085"], "listen", says="below"),
    Case("serve-listen-unix-in-tmp", [*SERVE, "unix:/tmp/certwiz-est.sock"], "listen"),
    Case("serve-listen-unix-in-home", [*SERVE, "unix:{base}/certs/victim/est.sock"], "listen"),
    Case(
        "enroll-unprivileged-port",
        [*RENDER, "--upstream", UPSTREAM, "--enroll", "http://127.0.0.1:8085"],
        "enroll",
        says="below",
    ),
    Case(
        "enroll-unix-in-tmp",
        [*RENDER, "--upstream", UPSTREAM, "--enroll", "unix:/tmp/certwiz-est.sock"],
        "enroll",
        says="writable by others",
    ),
    Case(
        "enroll-unix-under-tmp-missing-dir",
        [*RENDER, "--upstream", UPSTREAM, "--enroll", "unix:/tmp/certwiz-no-such/est.sock"],
        "enroll",
        says="writable by others",
    ),
    Case(
        "enroll-unix-in-home",
        [*RENDER, "--upstream", UPSTREAM, "--enroll", "unix:{base}/certs/est.sock"],
        "enroll",
        says="certwiz home",
    ),
    Case(
        "enroll-https",
        [*RENDER, "--upstream", UPSTREAM, "--enroll", "https://127.0.0.1:1"],
        "enroll",
    ),
    Case(
        "enroll-path",
        [*RENDER, "--upstream", UPSTREAM, "--enroll", "http://127.0.0.1:1/est"],
        "enroll",
    ),
    Case(
        "enroll-unix-relative",
        [*RENDER, "--upstream", UPSTREAM, "--enroll", "unix:e.sock"],
        "enroll",
    ),
    Case(
        "enroll-unix-semicolon",
        [*RENDER, "--upstream", UPSTREAM, "--enroll", "unix:/run/e.sock;evil"],
        "enroll",
    ),
    Case(
        "enroll-unix-space",
        [*RENDER, "--upstream", UPSTREAM, "--enroll", "unix:/run/e sock"],
        "enroll",
    ),
    Case("agent-out-exists", [*AGENT_ENROLL, "-n", "bob", "--out", "{base}/short.pass"], "out"),
    # --home (and CERTWIZ_HOME), --out paths, the global --lock-timeout
    Case("home-newline", ["ca", "init", "-p", "fresh", "--home", "{base}/new\nhome"], "home"),
    Case("home-cr", ["ca", "init", "-p", "fresh", "--home", "{base}/ho\rme"], "home"),
    Case("home-tab", ["ca", "init", "-p", "fresh", "--home", "{base}/ho\tme"], "home"),
    Case("home-is-a-file", ["ca", "init", "-p", "fresh", "--home", "{base}/short.pass"], "home"),
    Case("home-not-utf8-init", ["ca", "init", "-p", "x", "--home", NOT_UTF8], "home", says="UTF-8"),
    Case(
        "home-not-utf8-env",
        ["ca", "init", "-p", "x"],
        "home",
        env={"CERTWIZ_HOME": NOT_UTF8},
        says="UTF-8",
    ),
    Case("home-not-utf8-list", ["list", "-p", "victim", "--home", NOT_UTF8], "home", says="UTF-8"),
    Case("out-not-utf8", [*RENDER, "--upstream", UPSTREAM, "--out", NOT_UTF8], "out", says="UTF-8"),
    Case(
        "out-not-utf8-below",
        [*RENDER, "--upstream", UPSTREAM, "--out", NOT_UTF8 + "/x"],
        "out",
        says="UTF-8",
    ),
    Case(
        "lock-timeout-negative",
        ["--lock-timeout", "-1", "crl", "gen", "-p", "victim"],
        "lock-timeout",
    ),
    Case(
        "lock-timeout-nan", ["--lock-timeout", "nan", "crl", "gen", "-p", "victim"], "lock-timeout"
    ),
    Case(
        "lock-timeout-env",
        ["crl", "gen", "-p", "victim"],
        "CERTWIZ_LOCK_TIMEOUT",
        env={"CERTWIZ_LOCK_TIMEOUT": "soon"},
    ),
    # requests that do not fit the profile
    Case(
        "client-issue-duplicate",
        [*CI, "-n", "alice"],
        "",
        says="alice already has a valid certificate",
    ),
    Case(
        "revoke-unknown-name",
        [*REV, "-n", "nobody"],
        "",
        says="nobody has no valid certificate",
    ),
    # nginx render: --server, --upstream, --listen, --tls, --out
    Case(
        "render-server-unknown",
        [*RENDER[:4], "--server", "nobody.local", "--upstream", UPSTREAM],
        "server",
    ),
    Case(
        "render-server-is-a-client",
        [*RENDER[:4], "--server", "alice", "--upstream", UPSTREAM],
        "server",
    ),
    Case(
        "render-server-bad-name",
        [*RENDER[:4], "--server", "bad name", "--upstream", UPSTREAM],
        "server",
    ),
    Case(
        "render-server-revoked",
        [*RENDER[:4], "--server", "gone.example.com", "--upstream", UPSTREAM],
        "server",
        says="gone.example.com has no valid certificate",
    ),
    *[
        Case(
            f"render-{opt}-{i}",
            [*RENDER, *({"upstream": []}.get(opt, ["--upstream", UPSTREAM])), f"--{opt}", value],
            opt,
        )
        for opt, values in {
            "upstream": [
                "ftp://127.0.0.1/",
                "127.0.0.1:8080",
                "http://127.0.0.1:8080/;deny all",
                'http://x"; include /etc/passwd; "',
                "http://$host/",
                "http://user:pw@127.0.0.1/",
                "http://127.0.0.1:99999",
                "http://",
                "http://[fe80::1%25eth0]:8080",
            ],
            "listen": [
                "0",
                "65536",
                "443 ssl; include /x",
                "::1:443",
                "[zz]:443",
                "[fe80::1%eth0]:443",
                '[fe80::1%a"b]:443',
                "1.2.3:443x",
            ],
            "tls": ["old"],
            "out": ["{base}/with$dollar", "{base}/short.pass"],
        }.items()
        for i, value in enumerate(values)
    ],
    # client issue-batch --from FILE.csv: the file's line and column (tests/test_issue_batch.py
    # has the whole table of broken files, in process)
    *[
        Case(
            f"issue-batch-{i}",
            ["client", "issue-batch", "-p", "victim", "-u", "--from", f"{{base}}/{file}"],
            "",
            says=says,
        )
        for i, (file, says) in enumerate(
            [
                ("nul.csv", "nul.csv:3: contains a NUL byte"),
                ("password.csv", "password.csv:1: password: a password column is refused"),
                ("latin1.csv", "latin1.csv:2: not UTF-8"),
                ("taken.csv", "taken.csv:3: name: www.example.com already has a valid"),
                ("no-such.csv", "cannot read"),
            ]
        )
    ],
    # ca sign-intermediate (its own file: tests/test_sign_intermediate.py)
    *[
        Case(f"sign-intermediate-{fld}-{i}", [*SIGN_INT, opt, value], fld)
        for fld, opt, values in [
            ("csr", "--csr", ["{base}/short.pass", "{base}/no-such.csr", "/dev/zero"]),
            ("pathlen", "--pathlen", ["-1", "9"]),
            ("days", "--days", ["0", "-5", "ten"]),
            (
                "permitted-dns",
                "--permitted-dns",
                ["*.example.com", "10.0.0.1", "exa mple.com", "example.com.", "", "a..b"],
            ),
            ("out", "--out", ["{base}/certs/victim/int.crt", "{base}/short.pass", "{base}"]),
        ]
        for i, value in enumerate(values)
    ],
]


@pytest.fixture(scope="module")
def base(victim: Profile) -> Path:
    """The directory above the home, with passphrase files of every broken kind, and a
    revoked server certificate (gone.example.com) next to the victim's valid ones, and a
    valid one for the IP address 10.9.8.7."""
    root = victim.home.parent
    (root / "short.pass").write_text("abc\n")
    (root / "short.pass").chmod(0o600)  # a secret file: only ours
    (root / "empty.pass").write_text("")
    (root / "empty.pass").chmod(0o600)  # a secret file: only ours
    (root / "bin.pass").write_bytes(b"\xff\xfe\xfd\xfc\n")
    (root / "bin.pass").chmod(0o600)  # a secret file: only ours
    (root / "nul.pass").write_bytes(b"pass\x00word\n")
    (root / "nul.pass").chmod(0o600)  # a secret file: only ours
    header = b"name,days,unencrypted,p12_format\n"
    (root / "fleet.csv").write_bytes(header + b"bot-1,,,\n")
    (root / "nul.csv").write_bytes(header + b"bot-1,,,\nbo\x00t,,,\n")
    (root / "password.csv").write_bytes(b"name,password\nbot-1,hunter2\n")
    (root / "latin1.csv").write_bytes(header + b"b\xf6t,,,\n")
    (root / "taken.csv").write_bytes(header + b"bot-1,,,\nwww.example.com,,,\n")
    issue.issue_server(victim, "gone.example.com")
    revoke.revoke(victim, name="gone.example.com")
    issue.issue_server(victim, "10.9.8.7")
    return root


def argv_of(case: Case, base: Path) -> tuple[list[str], dict[str, str]]:
    def fill(text: str) -> str:
        return text.replace("{base}", str(base))

    return [fill(a) for a in case.argv], {k: fill(v) for k, v in case.env.items()}


def assert_refused(result: Result, case: Case) -> None:
    assert result.returncode == 2, (case.id, result.stdout, result.stderr)
    line = one_error_line(result)  # exactly one line, no traceback
    prefix = f"certwiz: error: {case.field}: " if case.field else "certwiz: error: "
    assert line.startswith(prefix), (case.id, line)
    assert case.says in line, (case.id, line)
    assert result.stdout == "", (case.id, result.stdout)


def test_case_ids_are_unique_and_the_table_did_not_shrink() -> None:
    assert len({case.id for case in CASES}) == len(CASES)
    # 186 cases of the three tables merged here, plus the crossed rows (issue 14).
    assert len(CASES) >= 186 + len(PROFILE_TAKERS) * len(PROFILES_REFUSED)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_value_is_refused_and_changes_no_byte(base: Path, case: Case) -> None:
    before = snapshot(base)
    argv, env = argv_of(case, base)
    assert_refused(invoke(base / "certs", *argv, env=env), case)
    assert snapshot(base) == before, case.id


def one_per_field() -> list[Case]:
    """The first row of each field, and each row about the process's own input (environment
    variables, argv bytes that are not UTF-8): what a real process must also show."""
    seen: set[str] = set()
    chosen = []
    for case in CASES:
        if case.field not in seen or case.env or case.says == "UTF-8":
            seen.add(case.field)
            chosen.append(case)
    return chosen


def test_real_processes_refuse_the_same_way(base: Path, victim: Profile) -> None:
    """What a user's process shows; four at a time (each is a 0.3 s interpreter start)."""
    sample = one_per_field()
    assert len(sample) >= 25
    before = snapshot(base)

    def run(case: Case) -> tuple[Case, Result]:
        argv, env = argv_of(case, base)
        return case, run_certwiz(victim.home, *argv, env=env)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for case, result in pool.map(run, sample):
            assert_refused(result, case)
    assert snapshot(base) == before
    assert sorted(p.name for p in victim.home.iterdir()) == ["victim"]


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
    result = invoke(victim.home, *CI, "-n", name, "--json")
    assert result.returncode == 0, result.stderr
    cert = load_cert(victim.cert_path(name))
    attributes = list(cert.subject)
    assert [a.oid for a in attributes] == [NameOID.COMMON_NAME]
    assert attributes[0].value == name
    assert victim.cert_path(name).parent == victim.issued  # the file is where it belongs


def test_subject_injection_cannot_add_an_rdn(victim: Profile) -> None:
    """'+', '=' and ',' are escaped: the subject keeps exactly one CN, equal to the name."""
    for name in ("alice+CN=admin", "x,O=evil", "CN=root"):
        issue.issue_client(victim, name)
        cert = load_cert(victim.cert_path(name))
        assert len(cert.subject.rdns) == 1
        assert [a.value for a in cert.subject] == [name]


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
    result = invoke(victim.home, *SI, "-n", server, "--san", san)
    assert result.returncode == 0, result.stderr
    ext = (
        load_cert(victim.cert_path(server))
        .extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        .value
    )
    got = [str(v) for v in ext.get_values_for_type(kind)]
    assert got[-1] == value
    assert len(list(ext)) == 2  # the server name and this SAN: nothing injected
