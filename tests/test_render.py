"""The cnf filter: values reach OpenSSL literally, never as config syntax."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certwiz import render
from certwiz.names import San

NASTY = [
    "$HOME",
    "${ENV::PATH}",
    "a#comment",
    'quo"te',
    "it's",
    "back\\slash",
    "a = b",
    "[section]",
    "x,DNS:evil.com",
    "::1",
    "café",
]


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "nul\0", "tab\tx", " lead", "trail "])
def test_control_characters_and_edge_spaces_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        render.cnf_escape(value)


def test_rendered_extension_file_round_trips_through_openssl(tmp_path: Path) -> None:
    """openssl parses every escaped value back to exactly the text we put in."""
    sans = [San("URI", f"urn:x:{v}") for v in NASTY]
    extfile = tmp_path / "ext.cnf"
    extfile.write_text(
        render.render_openssl("leaf_ext.cnf.j2", kind="server", rsa=False, sans=sans)
    )
    text = extfile.read_text()
    sections = [line for line in text.splitlines() if line.lstrip().startswith("[")]
    assert sections == ["[ leaf_ext ]", "[ alt_names ]"]  # no section was added
    key = tmp_path / "k.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-subj",
            "/CN=t",
            "-extensions",
            "leaf_ext",
            "-config",
            str(extfile),
            "-out",
            str(tmp_path / "c.pem"),
        ],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/should-not-appear"},
    )
    cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [s.value for s in sans]
    assert san.get_values_for_type(x509.DNSName) == []


def test_openssl_cnf_escapes_the_directory(tmp_path: Path) -> None:
    """A home with `$`, `#`, spaces and quotes: hand-run openssl still finds the profile."""
    from certwiz import ca

    home = tmp_path / "we$ird #dir 'q"
    profile = ca.init("p", home, ca.CAOptions(crl_days=30))
    out = tmp_path / "hand.pem"
    subprocess.run(["openssl", "ca", "-config", str(profile.cnf), "-gencrl", "-out", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    crl = x509.load_pem_x509_crl(out.read_bytes())
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=30)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == 2  # openssl read and advanced this profile's crlnumber
    assert (profile.crlnumber).read_text().strip() == "03"
