"""Property-based tests: random text never escapes the validator or the renderer.

The renderer claim: whatever text reaches an OpenSSL config value, the
rendered file has the same lines and sections as with a harmless value, and
OpenSSL's value syntax reads back exactly that text with no `$variable`
reference. One property goes all the way through the real openssl binary.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from certwiz import database, names
from certwiz.errors import InputError
from certwiz.openssl_args import subject as subject_arg
from certwiz.render import render_openssl

PLACEHOLDER = "placeholder"
_ESCAPES = {"n": "\n", "r": "\r", "b": "\b", "t": "\t"}


def read_cnf_value(raw: str) -> tuple[str, int, int]:
    """(value, variable references, unescaped quotes) as OpenSSL's NCONF reads `raw`.

    The rules of crypto/conf/conf_def.c: `\\` escapes the next character
    (\\n, \\r, \\b, \\t become controls), `#` starts a comment, `$` starts a
    variable reference, quotes (\", ' and `) group, trailing white space is dropped.
    """
    out: list[str] = []
    refs = quotes = 0
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "#":
            break
        if ch == "\\" and i + 1 < len(raw):
            out.append(_ESCAPES.get(raw[i + 1], raw[i + 1]))
            i += 2
            continue
        if ch == "$":
            refs += 1
        if ch in "\"'`":
            quotes += 1
        out.append(ch)
        i += 1
    return "".join(out).rstrip(" \t"), refs, quotes


def sections(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("[")]


def render_leaf(value: str) -> str:
    return render_openssl(
        "leaf_ext.cnf.j2", kind="server", rsa=False, sans=[names.San("URI", value)]
    )


def render_ca(value: str) -> str:
    return render_openssl(
        "openssl.cnf.j2", profile="p", dir=value, cnf_path="/x/openssl.cnf", crl_days=30, rsa=False
    )


@pytest.mark.parametrize(("render", "prefix"), [(render_leaf, "URI.1 = "), (render_ca, "dir = ")])
@settings(max_examples=400, deadline=None)
@given(text=st.text())
def test_rendered_config_never_gains_a_line_section_or_variable(
    render, prefix: str, text: str
) -> None:
    try:
        rendered = render(text)
    except ValueError:
        # Refused on purpose: a control character or edge white space.
        assert (
            any(ord(c) < 0x20 or ord(c) == 0x7F or c in "\u2028\u2029\x85" for c in text)
            or text != text.strip()
        )
        return
    baseline = render(PLACEHOLDER)
    assert len(rendered.splitlines()) == len(baseline.splitlines())
    assert sections(rendered) == sections(baseline)
    for got, want in zip(rendered.splitlines(), baseline.splitlines(), strict=True):
        if want.startswith("#"):  # a comment may quote the value; it stays a comment
            assert got.startswith("#")
        elif want.startswith(prefix):
            assert read_cnf_value(got[len(prefix) :]) == (text, 0, 0)
        else:
            assert got == want


def split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, i = [], "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if text[i] == sep:
            parts.append(current)
            current = ""
        else:
            current += text[i]
        i += 1
    return [*parts, current]


def parse_subj(arg: str) -> list[list[tuple[str, str]]]:
    """RDNs of a -subj argument as openssl's parse_name reads it."""
    assert arg.startswith("/")
    rdns = []
    for rdn in split_unescaped(arg[1:], "/"):
        avas = []
        for ava in split_unescaped(rdn, "+"):
            key, _, value = ava.partition("=")
            unescaped, i = "", 0
            while i < len(value):
                if value[i] == "\\" and i + 1 < len(value):
                    i += 1
                unescaped += value[i]
                i += 1
            avas.append((key, unescaped))
        rdns.append(avas)
    return rdns


@settings(max_examples=1000, deadline=None)
@given(text=st.text(max_size=80))
def test_client_name_is_refused_or_becomes_exactly_one_cn(text: str) -> None:
    try:
        names.client_name(text)
    except InputError as exc:
        assert exc.field == "name"
        return
    assert 1 <= len(text) <= names.MAX_CN
    assert "/" not in text and "\\" not in text and not text.startswith(".")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)
    assert parse_subj(subject_arg(text)) == [[("CN", text)]]
    assert database.common_name(database.oneline(text)) == text


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=70))
def test_profile_name_is_refused_or_a_plain_directory_name(text: str) -> None:
    try:
        names.profile_name(text)
    except InputError as exc:
        assert exc.field == "profile"
        return
    assert text not in (".", "..") and "/" not in text and text.isascii()
    assert text[0].isalnum() and len(text) <= 64


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key and CSR to self-sign test certificates with the real openssl."""
    work = tmp_path_factory.mktemp("prop")
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=p",
            "-keyout",
            work / "k.pem",
            "-out",
            work / "r.csr",
        ],
        check=True,
        capture_output=True,
    )
    return work


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
    )
)
def test_openssl_reads_back_the_exact_san(signer: Path, text: str) -> None:
    """End to end: openssl parses the rendered extension file; the URI SAN is the text."""
    uri = "urn:" + text
    try:
        parsed = names.san("uri:" + uri)
    except InputError:
        parsed = None
    assume(parsed == names.San("URI", uri))
    ext = signer / "ext.cnf"
    ext.write_text(render_leaf(uri))
    proc = subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            signer / "r.csr",
            "-signkey",
            signer / "k.pem",
            "-extfile",
            ext,
            "-extensions",
            "leaf_ext",
            "-days",
            "1",
        ],
        capture_output=True,
        check=True,
    )
    cert = x509.load_pem_x509_certificate(proc.stdout)
    san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert [v.value for v in san] == [uri]
    assert not cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca
