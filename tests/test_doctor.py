"""certwiz doctor: a gallery of broken NGINX configs, each one `nginx -t` accepts and
each caught by its finding id; the rendered configs and a hand-written good one stay clean.

One CA per module ("site", plus "other" as a foreign CA); certificates and CRLs that
certwiz would never make (expired, mismatched, a CRL past its nextUpdate) are made
here with `cryptography`, signed with the profile's CA key, as an attacker or an
unlucky operator would have them.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certwiz import ca, der, doctor, issue, revoke
from certwiz import nginx as nginx_lib
from certwiz.errors import InputError
from certwiz.profile import Profile
from tests.conftest import invoke, killed_at, openssl, snapshot
from tests.nginx_support import require_nginx

SERVER = "myserver.local"


@dataclass
class Lab:
    home: Path
    site: Profile
    other: Profile
    work: Path
    old_crl: Path  # the site CRL from before a revocation
    files: dict[str, Path]

    def conf(self, text: str, name: str) -> Path:
        """Write a whole nginx.conf for case NAME under its own prefix."""
        prefix = self.work / name
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        path = prefix / "nginx.conf"
        path.write_text(text.replace("@PREFIX@", str(prefix)))
        return path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ca_key(profile: Profile) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(profile.ca_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def craft_server_cert(
    profile: Profile, not_after: datetime, dns: str = SERVER
) -> tuple[bytes, bytes]:
    """A server certificate signed by the profile's CA with any validity (PEM cert, PEM key)."""
    ca_cert = x509.load_pem_x509_certificate(profile.ca_cert.read_bytes())
    key = _key()
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, not_after) - timedelta(days=30))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(_ca_key(profile), hashes.SHA256())
    )
    return _pem(cert), _key_pem(key)


def craft_crl(profile: Profile, last: datetime, nxt: datetime, number: int) -> bytes:
    ca_cert = x509.load_pem_x509_certificate(profile.ca_cert.read_bytes())
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(last)
        .next_update(nxt)
        .add_extension(x509.CRLNumber(number), critical=False)
        .sign(_ca_key(profile), hashes.SHA256())
    )
    return _pem(crl)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    root = tmp_path_factory.mktemp("doctor")
    home = root / "certs"
    site = ca.init("site", home)
    other = ca.init("other", home)
    issue.issue_server(site, SERVER, sans=["127.0.0.1"])
    issue.issue_server(site, "second.local")
    issue.issue_server(other, "other.local")
    issue.issue_client(site, "bob")
    work = root / "work"
    work.mkdir()
    old_crl = work / "old-crl.pem"
    shutil.copy(site.crl, old_crl)
    revoke.revoke(site, name="bob")  # the profile's CRL now lists bob; old-crl.pem does not
    now = datetime.now(UTC)
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        files[name] = work / name
        files[name].write_bytes(data)

    put("two-cas.pem", site.ca_cert.read_bytes() + other.ca_cert.read_bytes())
    trusted = base64.encodebytes(der.pem_to_der(other.ca_cert.read_bytes()) + b"\x30\x00")
    put("trusted-other.pem", b"-----BEGIN TRUSTED CERTIFICATE-----\n%s"
        b"-----END TRUSTED CERTIFICATE-----\n" % trusted)  # fmt: skip
    put("two-crls.pem", site.crl.read_bytes() + other.crl.read_bytes())
    put("expired-crl.pem", craft_crl(site, now - timedelta(days=40), now - timedelta(days=1), 99))
    put("expiring-crl.pem", craft_crl(site, now - timedelta(days=60), now + timedelta(days=2), 98))
    cert, key = craft_server_cert(site, now - timedelta(days=1))
    put("expired.crt", cert)
    put("expired.key", key)
    cert, key = craft_server_cert(site, now + timedelta(days=5))
    put("expiring.crt", cert)
    put("expiring.key", key)
    return Lab(home, site, other, work, old_crl, files)


def good_conf(lab: Lab, **over: str) -> str:
    """A hand-written, correct mTLS server for profile site; OVER replaces single lines."""
    site = lab.site
    lines = {
        "listen": "listen 127.0.0.1:18443 ssl;",
        "server_name": f"server_name {SERVER};",
        "cert": f"ssl_certificate {site.fullchain_path(SERVER)};",
        "key": f"ssl_certificate_key {site.key_path(SERVER)};",
        "trust": f"ssl_client_certificate {site.ca_cert};",
        "crl": f"ssl_crl {site.crl};",
        "verify": "ssl_verify_client on;",
        "depth": "ssl_verify_depth 1;",
        "protocols": "ssl_protocols TLSv1.2 TLSv1.3;",
        "ciphers": "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384;",
        "cache": "ssl_session_cache off;",
        "tickets": "ssl_session_tickets off;",
        "server_extra": "",
        "http_extra": "",
        "location_extra": "",
        "upstream": "proxy_pass http://127.0.0.1:18080;",
        "headers": "proxy_set_header X-Client-Verify $ssl_client_verify;\n"
        "            proxy_set_header X-Client-Cert-Subject $ssl_client_s_dn;",
        "more_servers": "",
    }
    lines.update(over)
    return f"""# hand-written for the doctor gallery
worker_processes 1;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log;
events {{ worker_connections 16; }}
http {{
    access_log off;
    client_body_temp_path @PREFIX@/tmp/body;
    proxy_temp_path @PREFIX@/tmp/proxy;
    fastcgi_temp_path @PREFIX@/tmp/fastcgi;
    uwsgi_temp_path @PREFIX@/tmp/uwsgi;
    scgi_temp_path @PREFIX@/tmp/scgi;
    {lines["http_extra"]}
    server {{
        {lines["listen"]}
        {lines["server_name"]}
        {lines["cert"]}
        {lines["key"]}
        {lines["trust"]}
        {lines["crl"]}
        {lines["verify"]}
        {lines["depth"]}
        {lines["protocols"]}
        {lines["ciphers"]}
        {lines["cache"]}
        {lines["tickets"]}
        {lines["server_extra"]}
        location / {{
            {lines["headers"]}
            {lines["location_extra"]}
            {lines["upstream"]}
        }}
    }}
    {lines["more_servers"]}
}}
"""


def nginx_t(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_nginx(), "-t", "-p", str(conf.parent), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )


def ids(found: list[doctor.Finding]) -> set[str]:
    return {f.id for f in found}


def other_server(lab: Lab, listen: str = "127.0.0.1:18443", guard: str = "") -> str:
    other = lab.other
    return f"""
    server {{
        listen {listen} ssl;
        server_name other.local;
        ssl_certificate {other.fullchain_path("other.local")};
        ssl_certificate_key {other.key_path("other.local")};
        ssl_client_certificate {other.ca_cert};
        ssl_crl {other.crl};
        ssl_verify_client on;
        {guard}
        location / {{ proxy_pass http://127.0.0.1:18081; }}
    }}"""


# A server without client certificates in front of UPSTREAM (attack round 12, F12).
PLAIN_SERVER = "server {{ listen 127.0.0.1:18089; location / {{ proxy_pass {upstream}; }} }}"


VERIFY_CHECK = 'if ($ssl_client_verify != "SUCCESS") { return 403; }'


# A named location that proxies with the identity headers (so only the error page is wrong).
def app_named(guard: str = "") -> str:
    return (
        f"location @app {{ {guard} proxy_set_header X-Client-Verify $ssl_client_verify; "
        "proxy_set_header X-Client-Cert-Subject $ssl_client_s_dn; "
        "proxy_pass http://127.0.0.1:18080; }"
    )


# The identity headers of good_conf, as a FastCGI app receives them (proxy_set_header
# does not reach fastcgi_pass).
FASTCGI_IDENTITY = (
    "fastcgi_param HTTP_X_CLIENT_VERIFY $ssl_client_verify; "
    "fastcgi_param HTTP_X_CLIENT_CERT_SUBJECT $ssl_client_s_dn;"
)


def other_pass(passing: str, own: str = "") -> Callable[[Lab], dict[str, str]]:
    """A second location that hands requests to PASSING with OWN directives (attack
    round 11, F1: proxy_set_header applies to proxy_pass only)."""
    return lambda lab: {"server_extra": f"location /api/ {{ {own} {passing}; }}"}


# case -> (lines to replace, the ids doctor must report: exactly these)
GALLERY: dict[str, tuple[Callable[[Lab], dict[str, str]], set[str]]] = {
    "verify-off": (lambda lab: {"verify": "ssl_verify_client off;"}, {"verify-client-off"}),
    "verify-missing": (lambda lab: {"verify": ""}, {"verify-client-off"}),
    "optional-no-ca": (
        lambda lab: {"verify": "ssl_verify_client optional_no_ca;"},
        {"verify-optional-unchecked"},
    ),
    "optional": (
        lambda lab: {"verify": "ssl_verify_client optional;"},
        {"verify-optional-unchecked"},
    ),
    "no-crl": (lambda lab: {"crl": ""}, {"revocation-off"}),
    # attack round 14, F3: nginx reads an empty ssl_crl as no CRL
    "empty-crl": (lambda lab: {"crl": 'ssl_crl "";'}, {"revocation-off"}),
    "old-crl": (lambda lab: {"crl": f"ssl_crl {lab.old_crl};"}, {"crl-not-current"}),
    "expired-crl": (
        lambda lab: {"crl": f"ssl_crl {lab.files['expired-crl.pem']};"},
        {"crl-expired", "crl-not-current"},
    ),
    "expiring-crl": (
        lambda lab: {"crl": f"ssl_crl {lab.files['expiring-crl.pem']};"},
        {"crl-expiring", "crl-not-current"},
    ),
    "crl-of-another-ca": (
        lambda lab: {"crl": f"ssl_crl {lab.other.crl};"},
        {"crl-missing-for-ca"},
    ),
    "second-ca-trusted": (
        lambda lab: {
            "trust": f"ssl_client_certificate {lab.files['two-cas.pem']};",
            "crl": f"ssl_crl {lab.files['two-crls.pem']};",
        },
        {"trust-too-wide"},
    ),
    "system-bundle-trusted": (
        lambda lab: {"server_extra": "ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;"},
        {"trust-too-wide"},
    ),
    # attack round 14, F3: nginx trusts a CA file in the old spelling (with trust settings)
    "trusted-spelling": (
        lambda lab: {"server_extra": f"ssl_trusted_certificate {lab.files['trusted-other.pem']};"},
        {"trust-too-wide"},
    ),
    "depth-zero": (lambda lab: {"depth": "ssl_verify_depth 0;"}, {"verify-depth-too-small"}),
    "expired-server-cert": (
        lambda lab: {
            "cert": f"ssl_certificate {lab.files['expired.crt']};",
            "key": f"ssl_certificate_key {lab.files['expired.key']};",
        },
        {"server-cert-expired"},
    ),
    "expiring-server-cert": (
        lambda lab: {
            "cert": f"ssl_certificate {lab.files['expiring.crt']};",
            "key": f"ssl_certificate_key {lab.files['expiring.key']};",
        },
        {"server-cert-expiring"},
    ),
    "name-not-in-san": (
        lambda lab: {"server_name": f"server_name {SERVER} api.example.com;"},
        {"server-cert-name-missing"},
    ),
    "header-from-client": (
        lambda lab: {"headers": "proxy_set_header X-Client-Verify $http_x_client_verify;"},
        {"header-forgeable"},
    ),
    # attack round 12, F3: literals only, but the client picks which
    "header-set-under-a-client-if": (
        lambda lab: {
            "headers": "set $verified NONE; if ($http_x_role = admin) { set $verified SUCCESS; } "
            "proxy_set_header X-Client-Verify $verified;"
        },
        {"header-forgeable"},
    ),
    "header-from-a-uri-capture": (
        lambda lab: {
            "server_extra": "location ~ ^/u/(.+)$ { proxy_set_header X-Client-Cert-Subject $1; "
            "proxy_pass http://127.0.0.1:18080; }"
        },
        {"header-forgeable"},
    ),
    "location-drops-headers": (
        lambda lab: {
            "server_extra": "location /api { proxy_set_header Host $host; "
            "proxy_pass http://127.0.0.1:18080; }"
        },
        {"header-forgeable"},
    ),
    "scgi-pass-without-scgi-param": (
        other_pass("scgi_pass 127.0.0.1:9001", "include /etc/nginx/scgi_params;"),
        {"header-forgeable"},
    ),
    "uwsgi-pass-without-uwsgi-param": (
        other_pass("uwsgi_pass 127.0.0.1:9001", "include /etc/nginx/uwsgi_params;"),
        {"header-forgeable"},
    ),
    "fastcgi-pass-without-fastcgi-param": (
        other_pass("fastcgi_pass 127.0.0.1:9001", "include /etc/nginx/fastcgi_params;"),
        {"header-forgeable"},
    ),
    "fastcgi-param-of-one-header-only": (
        other_pass("fastcgi_pass 127.0.0.1:9001", FASTCGI_IDENTITY.split(";")[0] + ";"),
        {"header-forgeable"},
    ),
    "fastcgi-param-with-a-dash": (  # HTTP_X-CLIENT-VERIFY replaces no client header
        other_pass(
            "fastcgi_pass 127.0.0.1:9001",
            FASTCGI_IDENTITY.replace("HTTP_X_CLIENT_VERIFY", "HTTP_X-CLIENT-VERIFY"),
        ),
        {"header-forgeable"},
    ),
    "fastcgi-param-from-the-client": (
        other_pass(
            "fastcgi_pass 127.0.0.1:9001",
            FASTCGI_IDENTITY.replace("$ssl_client_verify", "$http_x_client_verify"),
        ),
        {"header-forgeable"},
    ),
    "identity-set-in-http": (
        lambda lab: {
            "http_extra": "proxy_set_header X-Client-Verify $ssl_client_verify;",
            "headers": "",
            "server_extra": "location /api/ { scgi_pass 127.0.0.1:9001; }",
        },
        {"header-forgeable"},
    ),
    "grpc-pass-without-grpc-set-header": (
        other_pass("grpc_pass grpc://127.0.0.1:9001"),
        {"header-forgeable"},
    ),
    "underscores": (
        lambda lab: {"http_extra": "underscores_in_headers on;"},
        {"header-underscores"},
    ),
    "remote-plain-upstream": (
        lambda lab: {"upstream": "proxy_pass http://192.0.2.10:8080;"},
        {"upstream-plain-http"},
    ),
    "remote-upstream-block": (
        lambda lab: {
            "http_extra": "upstream app { server 192.0.2.10:8080; }",
            "upstream": "proxy_pass http://app;",
        },
        {"upstream-plain-http"},
    ),
    "session-cache": (
        lambda lab: {"cache": "ssl_session_cache shared:SSL:10m;"},
        {"session-resumption"},
    ),
    "session-tickets-default": (lambda lab: {"tickets": ""}, {"session-resumption"}),
    "tls1": (
        lambda lab: {"protocols": "ssl_protocols TLSv1 TLSv1.1 TLSv1.2;"},
        {"weak-protocol"},
    ),
    "protocols-default": (lambda lab: {"protocols": ""}, {"weak-protocol"}),
    "weak-ciphers": (
        lambda lab: {"ciphers": "ssl_ciphers HIGH:RC4-SHA:DES-CBC3-SHA;"},
        {"weak-cipher"},
    ),
    "ocsp-without-responder": (
        lambda lab: {"server_extra": "ssl_ocsp leaf;"},
        {"ocsp-no-responder"},
    ),
    "plain-listen-too": (
        lambda lab: {"server_extra": "listen 127.0.0.1:18081;"},
        {"listen-without-ssl"},
    ),
    "error-page-to-the-app": (
        lambda lab: {
            "server_extra": "error_page 495 496 = @app; "
            "location @app { proxy_pass http://127.0.0.1:18080; }"
        },
        {"error-page-passes", "header-forgeable"},
    ),
    "shared-listen": (lambda lab: {"more_servers": other_server(lab)}, {"shared-listen-unguarded"}),
    # attack round 12, F12: the same application served by a server without mTLS
    "plain-server-to-the-same-upstream": (
        lambda lab: {"more_servers": PLAIN_SERVER.format(upstream="http://127.0.0.1:18080/x")},
        {"upstream-without-mtls"},
    ),
    "plain-server-to-a-member-of-the-upstream-block": (
        lambda lab: {
            "http_extra": "upstream app { server 192.0.2.7:8080; server 127.0.0.1:18080; }",
            "upstream": "proxy_pass https://app;",
            "more_servers": PLAIN_SERVER.format(upstream="http://localhost:18080"),
        },
        {"upstream-without-mtls"},
    ),
    # attack round 14, F4: other spellings of the local address
    "plain-server-to-the-mapped-ipv4-address": (
        lambda lab: {
            "more_servers": PLAIN_SERVER.format(upstream="http://[::ffff:127.0.0.1]:18080")
        },
        {"upstream-without-mtls"},
    ),
    "plain-server-to-0": (
        lambda lab: {"more_servers": PLAIN_SERVER.format(upstream="http://0:18080")},
        {"upstream-without-mtls"},
    ),
    "plain-server-to-0.0.0.0": (
        lambda lab: {"more_servers": PLAIN_SERVER.format(upstream="http://0.0.0.0:18080")},
        {"upstream-without-mtls"},
    ),
    "plain-server-to-an-upstream-block-of-0.0.0.0": (
        lambda lab: {
            "http_extra": "upstream any { server 0.0.0.0:18080; }",
            "more_servers": PLAIN_SERVER.format(upstream="http://any"),
        },
        {"upstream-without-mtls"},
    ),
    "other-profiles-server-to-the-same-upstream": (
        lambda lab: {
            "more_servers": other_server(lab, "127.0.0.1:18444").replace("18081", "18080")
        },
        {"upstream-without-mtls"},
    ),
    # attack round 10, F4: what a guard returns, and what nginx refuses before the check
    "error-page-for-the-guards-421": (
        lambda lab: {
            "server_extra": 'if ($ssl_server_name !~* "^myserver[.]local$") { return 421; } '
            f"error_page 421 = @app; {app_named()}"
        },
        {"error-page-passes"},
    ),
    "error-page-of-a-location-guard": (
        lambda lab: {
            "verify": "ssl_verify_client optional;",
            "server_extra": "location /admin/ { "
            'if ($ssl_client_verify != "SUCCESS") { return 403; } '
            f"error_page 403 = @app; return 404; }} {app_named()}",
        },
        {"error-page-passes", "verify-optional-unchecked"},  # location / has no guard
    ),
    "error-page-uri-to-the-app": (
        lambda lab: {"server_extra": "error_page 495 496 /certificate-help;"},
        {"error-page-passes"},
    ),
    "error-page-uri-to-a-regex": (
        lambda lab: {
            "server_extra": "error_page 497 /help.php; "
            f"location ~ [.]php$ {{ {FASTCGI_IDENTITY} fastcgi_pass 127.0.0.1:9000; }}"
        },
        {"error-page-passes"},
    ),
}


@pytest.mark.parametrize("case", sorted(GALLERY))
def test_gallery_case_passes_nginx_t_and_is_caught(lab: Lab, case: str) -> None:
    change, expected = GALLERY[case]
    conf = lab.conf(good_conf(lab, **change(lab)), case)
    checked = nginx_t(conf)
    assert checked.returncode == 0, checked.stderr  # nginx itself sees nothing wrong
    found = doctor.diagnose(lab.site, conf).findings
    assert ids(found) == expected, [f.text() for f in found]
    for finding in found:
        assert finding.file.startswith(str(conf.parent)) or finding.file.startswith("/")
        assert finding.line > 0 or finding.id == "no-server-for-profile"
        assert finding.message and finding.fix


def test_good_hand_written_config_is_clean(lab: Lab) -> None:
    conf = lab.conf(good_conf(lab), "good")
    assert nginx_t(conf).returncode == 0
    found = doctor.diagnose(lab.site, conf).findings
    assert found == [], [f.text() for f in found]


@pytest.mark.parametrize(
    ("passing", "own"),
    [
        ("fastcgi_pass 127.0.0.1:9001", "include /etc/nginx/fastcgi_params; " + FASTCGI_IDENTITY),
        ("scgi_pass 127.0.0.1:9001", FASTCGI_IDENTITY.replace("fastcgi_", "scgi_")),
        ("uwsgi_pass 127.0.0.1:9001", FASTCGI_IDENTITY.replace("fastcgi_", "uwsgi_")
         .replace("$ssl_client_s_dn", '""')),  # cleared is as good as set
        ("uwsgi_pass 127.0.0.1:9001", "uwsgi_pass_request_headers off;"),
        ("grpc_pass grpc://127.0.0.1:9001", "grpc_set_header X-Client-Verify $ssl_client_verify; "
         "grpc_set_header X-Client-Cert-Subject $ssl_client_s_dn;"),
        ("memcached_pass 127.0.0.1:9001", "set $memcached_key $uri;"),  # sends no header
    ],
)  # fmt: skip
def test_a_pass_that_sets_the_identity_with_its_own_directive_is_clean(
    lab: Lab, passing: str, own: str
) -> None:
    conf = lab.conf(
        good_conf(lab, **other_pass(passing, own)(lab)), f"own-{passing.split()[0]}-{len(own)}"
    )
    assert nginx_t(conf).returncode == 0, nginx_t(conf).stderr
    found = doctor.diagnose(lab.site, conf).findings
    assert found == [], [f.text() for f in found]


@pytest.mark.parametrize(
    ("label", "more"),
    [
        ("different-upstream", PLAIN_SERVER.format(upstream="http://127.0.0.1:18081")),
        ("ipv6-loopback", PLAIN_SERVER.format(upstream="http://[::1]:18080")),
        ("another-ipv4-loopback", PLAIN_SERVER.format(upstream="http://127.0.0.2:18080")),
        ("unknown-upstream", PLAIN_SERVER.format(upstream="http://127.0.0.1:$arg_port")),
        ("second-mtls-server", "server { listen 127.0.0.1:18444 ssl; server_name second.local; "
         "ssl_certificate {cert}; ssl_certificate_key {key}; include {common}; "
         "location / { proxy_set_header X-Client-Verify $ssl_client_verify; "
         "proxy_pass http://127.0.0.1:18080; } }"),
    ],
)  # fmt: skip
def test_other_servers_that_do_not_open_the_upstream_are_clean(
    lab: Lab, label: str, more: str
) -> None:
    """A server without mTLS to another upstream, and a second mTLS server of the same
    profile to the same one, open no other way in."""
    common = lab.work / "common-mtls.inc"
    site = lab.site
    common.write_text(
        f"ssl_client_certificate {site.ca_cert}; ssl_crl {site.crl}; ssl_verify_client on; "
        "ssl_verify_depth 1; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; "
        "ssl_session_tickets off;\n"
    )
    more = more.replace("{cert}", str(site.fullchain_path("second.local")))
    more = more.replace("{key}", str(site.key_path("second.local"))).replace(
        "{common}", str(common)
    )
    conf = lab.conf(good_conf(lab, more_servers=more), f"clean-reach-{label}")
    assert nginx_t(conf).returncode == 0, nginx_t(conf).stderr
    found = doctor.diagnose(lab.site, conf).findings
    assert found == [], [f.text() for f in found]


def test_identity_set_from_a_capture_of_the_subject_is_clean(lab: Lab) -> None:
    """A `set` under an `if` on $ssl_client_s_dn: its capture is the certificate's."""
    headers = 'if ($ssl_client_s_dn ~ "CN=([^,]+)") { set $cn $1; } ' + (
        "proxy_set_header X-Client-Verify $ssl_client_verify; proxy_set_header X-Client-Cn $cn;"
    )
    conf = lab.conf(good_conf(lab, headers=headers), "clean-set-capture")
    assert nginx_t(conf).returncode == 0, nginx_t(conf).stderr
    found = doctor.diagnose(lab.site, conf).findings
    assert found == [], [f.text() for f in found]


def test_optional_with_a_verify_check_is_clean(lab: Lab) -> None:
    guard = 'if ($ssl_client_verify != "SUCCESS") { return 403; }'
    conf = lab.conf(
        good_conf(lab, verify="ssl_verify_client optional;", server_extra=guard), "guarded"
    )
    assert nginx_t(conf).returncode == 0
    assert doctor.diagnose(lab.site, conf).findings == []


@pytest.mark.parametrize(
    ("label", "extra"),
    [
        ("static-page", 'error_page 496 /help.html; location = /help.html { return 200 "x"; }'),
        ("prefix-before-regex", "error_page 497 /x/y.php; location ^~ /x/ { return 404; } "
         f"location ~ [.]php$ {{ {FASTCGI_IDENTITY} fastcgi_pass 127.0.0.1:9000; }}"),
        ("not-a-refusal", f"error_page 404 = @app; {app_named()}"),
        # nginx answers its own refusals with the server's pages, before any location
        ("a-location-page", "location /static/ { error_page 400 495 496 = @app; return 404; } "
         + app_named()),
        ("own-guard", "error_page 403 = @app; " + app_named(VERIFY_CHECK)),
    ],
)  # fmt: skip
def test_error_pages_that_reach_no_unguarded_proxy_are_clean(
    lab: Lab, label: str, extra: str
) -> None:
    """The error page's target as nginx routes it: an exact location that answers itself,
    a `^~` prefix that wins over a regex, a status no check returns, a named location
    that checks the certificate itself."""
    over = {"server_extra": f"{VERIFY_CHECK} {extra}", "verify": "ssl_verify_client optional;"}
    conf = lab.conf(good_conf(lab, **over), f"clean-page-{label}")
    assert nginx_t(conf).returncode == 0
    assert doctor.diagnose(lab.site, conf).findings == []


@pytest.mark.parametrize(
    ("label", "before"),
    [
        ("rewrite-last", "rewrite ^/legacy/(.*)$ /$1 last;"),
        ("rewrite-break", "rewrite ^/legacy/(.*)$ /$1 break;"),
        ("break", "break;"),
        ("if-break", "if ($uri ~ ^/legacy) { break; }"),
    ],
)
def test_a_guard_behind_a_rewrite_stop_is_no_guard(lab: Lab, label: str, before: str) -> None:
    """nginx runs a server's rewrite directives in order: after `break` or `rewrite ...
    last|break` the `if ... return` checks below are skipped (a cert-less request to
    /legacy/ reached the app, and doctor said clean)."""
    guard = 'if ($ssl_client_verify != "SUCCESS") { return 403; }'
    text = good_conf(lab, verify="ssl_verify_client optional;", server_extra=f"{before} {guard}")
    conf = lab.conf(text, f"guard-after-{label}")
    assert nginx_t(conf).returncode == 0
    assert ids(doctor.diagnose(lab.site, conf).findings) == {"verify-optional-unchecked"}
    # the same lines with the guard first are clean
    text = good_conf(lab, verify="ssl_verify_client optional;", server_extra=f"{guard} {before}")
    conf = lab.conf(text, f"guard-before-{label}")
    assert doctor.diagnose(lab.site, conf).findings == []


def test_a_quote_inside_a_word_is_read_as_nginx_reads_it(lab: Lab) -> None:
    """nginx opens a string only at the start of a token: in `it's` the quote is a plain
    character, so the `ssl_verify_client off;` after it is real and the commented line is a
    comment (doctor read it the other way round and reported nothing)."""
    extra = "add_header X-Note it's;\n ssl_verify_client off;\n # ' ; ssl_verify_client on;"
    conf = lab.conf(good_conf(lab, verify="", server_extra=extra), "quote-in-word")
    assert nginx_t(conf).returncode == 0
    assert ids(doctor.diagnose(lab.site, conf).findings) == {"verify-client-off"}


def test_the_lexer_keeps_what_nginx_keeps(tmp_path: Path) -> None:
    from certwiz.doctor.conf import tokenize

    text = 'a it\'s "q\\"x" b}c ${v}w \\.php$ "s";#c\nx \'y\'{'
    words = [t[0] for t in tokenize(text, tmp_path / "t.conf")]
    assert words == ["a", "it's", 'q"x', "b}c", "${v}w", "\\.php$", "s", ";", "x", "y", "{"]
    with pytest.raises(InputError, match="after a quoted string"):
        tokenize('"a"b;', tmp_path / "t.conf")


def test_shared_listen_with_only_an_issuer_guard_is_flagged(lab: Lab) -> None:
    """An issuer-DN check is no guard: two profiles' CAs may share a CN (ca init --cn), and
    the rendered handshake guard's e2e proves it with four same-CN CAs on one port."""
    issuer = "CN=site Root CA"
    guard = f'if ($ssl_client_i_dn != "{issuer}") {{ return 421; }}'
    text = good_conf(
        lab,
        server_extra=guard,
        more_servers=other_server(
            lab, guard='if ($ssl_client_i_dn != "CN=other Root CA") { return 421; }'
        ),
    )
    conf = lab.conf(text, "shared-issuer-guard")
    assert nginx_t(conf).returncode == 0
    assert "shared-listen-unguarded" in ids(doctor.diagnose(lab.site, conf).findings)


def test_a_guard_that_admits_every_name_is_flagged(lab: Lab) -> None:
    guard = 'if ($ssl_server_name !~* "^.*$") { return 421; }'
    text = good_conf(lab, server_extra=guard, more_servers=other_server(lab, guard=guard))
    conf = lab.conf(text, "shared-loose-guard")
    assert nginx_t(conf).returncode == 0
    assert "shared-listen-unguarded" in ids(doctor.diagnose(lab.site, conf).findings)


# (this server's listen, the other profile's server's listen, one socket for nginx?)
SPELLINGS = [
    ("18443 ssl", '"0.0.0.0:18443"', True),
    ("*:18443 ssl", "18443", True),
    ('"18443"', "0.0.0.0:18443 ssl", True),  # no ssl here: the other listen's makes it TLS
    ("[::]:18443 ssl", "[0::0]:18443", True),
    ("127.0.0.1:18443 ssl", "127.000.000.001:18443", True),
    ("127.0.0.1:18443 ssl", "0x7f.1:18443", True),
    ("127.0.0.1:18443 ssl", "18443", False),  # nginx sends 127.0.0.1's connections here only
    ("127.0.0.1:18443 ssl", "0177.0.0.1:18443", False),  # decimal for nginx: 177.0.0.1
    ("[::]:18443 ssl", "18443", False),
]


@pytest.mark.parametrize(("mine", "theirs", "same"), SPELLINGS)
def test_a_socket_is_one_however_its_listen_is_spelled(
    lab: Lab, mine: str, theirs: str, same: bool
) -> None:
    """Attack round 10, F3: doctor grouped listens by their text (`18443` and
    `"0.0.0.0:18443"` are one socket) and skipped a listen without ssl on a TLS socket.
    nginx itself says which spellings are one socket: two default servers on it are
    "a duplicate default server"."""
    from certwiz.doctor.listen import address_key
    from examples.local_nginx import free_port

    port = str(free_port())
    mine, theirs = mine.replace("18443", port), theirs.replace("18443", port)
    name = f"spelled-{mine}-{theirs}".replace('"', "q").replace(" ", "_")
    both_default = good_conf(
        lab,
        listen=f"listen {mine} default_server;",
        more_servers=other_server(lab, listen=f"{theirs} default_server"),
    )
    checked = nginx_t(lab.conf(both_default, name + "-defaults"))  # refused before any bind
    assert ("a duplicate default server" in checked.stderr) is same, checked.stderr
    keys = {address_key(listen.split()[0].strip('"')) for listen in (mine, theirs)}
    assert (len(keys) == 1) is same
    text = good_conf(
        lab,
        listen=f"listen {mine};",
        more_servers=other_server(lab, listen=f"{theirs} default_server"),
    )
    conf = lab.conf(text, name)
    if all(key.startswith("127.") for key in keys):  # nginx -t binds: loopback only here
        assert nginx_t(conf).returncode == 0
    found = ids(doctor.diagnose(lab.site, conf).findings)
    assert found == ({"shared-listen-unguarded"} if same else set())


@pytest.mark.parametrize(("mine", "theirs", "flagged"), [
    ("127.0.0.1:18443 ssl", "127.1:18443", False),  # the first server is the default
    ("127.0.0.1:18443 ssl", "127.1:18443 default", True),  # `default`: the old spelling
    ("127.0.0.1:18443 ssl default", "127.1:18443", False),
])  # fmt: skip
def test_a_guard_admitting_no_sni_is_sound_on_the_socket_default_only(
    lab: Lab, mine: str, theirs: str, flagged: bool
) -> None:
    """Without SNI the socket's default server makes the handshake: the one written
    `default_server` (or `default`) on any spelling of it, else the first server."""
    guard = 'if ($ssl_server_name !~* "^(myserver[.]local)?$") { return 421; }'
    text = good_conf(
        lab,
        listen=f"listen {mine};",
        server_extra=guard,
        more_servers=other_server(lab, listen=theirs),
    )
    conf = lab.conf(text, f"default-{mine}-{theirs}".replace(" ", "_"))
    assert nginx_t(conf).returncode == 0
    found = ids(doctor.diagnose(lab.site, conf).findings)
    assert found == ({"shared-listen-unguarded"} if flagged else set())


@pytest.mark.parametrize(("first", "flagged"), [
    ("break;", True),
    ("rewrite ^ /elsewhere last;", True),
    ("rewrite ^ /elsewhere break;", True),
    ("", False),
    ("set $refused 1;", False),
])  # fmt: skip
def test_a_handshake_guard_counts_only_when_its_return_runs(
    lab: Lab, first: str, flagged: bool
) -> None:
    """Attack round 13, F3: nginx runs an `if` block's rewrite directives in order, so
    `{ break; return 421; }` returns nothing and the other server's client gets in."""
    guard = f'if ($ssl_server_name !~* "^myserver[.]local$") {{ {first} return 421; }}'
    text = good_conf(lab, server_extra=guard, more_servers=other_server(lab))
    conf = lab.conf(text, "sni-guard-" + ("-".join(re.findall(r"\w+", first)) or "return"))
    assert nginx_t(conf).returncode == 0
    found = ids(doctor.diagnose(lab.site, conf).findings)
    assert ("shared-listen-unguarded" in found) is flagged, found


def test_key_mismatch_is_caught_before_nginx_refuses_to_load(lab: Lab) -> None:
    """nginx -t refuses it too; doctor names the file and line and the fix."""
    change = {"key": f"ssl_certificate_key {lab.site.key_path('second.local')};"}
    conf = lab.conf(good_conf(lab, **change), "mismatch")
    assert "key values mismatch" in nginx_t(conf).stderr
    found = doctor.diagnose(lab.site, conf).findings
    assert ids(found) == {"server-cert-key-mismatch"}
    assert found[0].line == conf.read_text().splitlines().index(f"        {change['key']}") + 1


def test_config_without_the_profile_is_reported(lab: Lab) -> None:
    text = good_conf(lab).replace(str(lab.site.ca_cert), str(lab.other.ca_cert))
    text = text.replace(
        str(lab.site.fullchain_path(SERVER)), str(lab.other.fullchain_path("other.local"))
    )
    text = text.replace(str(lab.site.key_path(SERVER)), str(lab.other.key_path("other.local")))
    text = text.replace(str(lab.site.crl), str(lab.other.crl))
    conf = lab.conf(text, "unrelated")
    assert nginx_t(conf).returncode == 0
    assert ids(doctor.diagnose(lab.site, conf).findings) == {"no-server-for-profile"}


def test_includes_with_globs_relative_to_the_prefix(lab: Lab) -> None:
    """nginx resolves `include sites/*.conf` against the directory of nginx.conf."""
    prefix = lab.work / "globs"
    (prefix / "sites").mkdir(parents=True)
    full = good_conf(lab, verify="ssl_verify_client optional_no_ca;")
    head, _, rest = full.partition("    server {")
    server_text, _, tail = ("    server {" + rest).rpartition("}")
    (prefix / "sites" / "b-site.conf").write_text(server_text)
    (prefix / "sites" / "a-empty.conf").write_text("# nothing here\n")
    conf = lab.conf(head + "    include sites/*.conf;\n" + tail + "}\n", "globs")
    assert nginx_t(conf).returncode == 0
    found = doctor.diagnose(lab.site, conf).findings
    assert ids(found) == {"verify-optional-unchecked"}
    site_file = prefix / "sites" / "b-site.conf"
    assert found[0].file == str(site_file)
    assert found[0].line == next(
        n for n, line in enumerate(site_file.read_text().splitlines(), 1) if "proxy_pass" in line
    )


def test_the_attackers_negated_set_reads_the_site_nginx_serves(lab: Lab) -> None:
    """`include sites/[^_]*.conf`: nginx loads app.conf (optional_no_ca, no guard), not
    the disabled _k-mtls.conf (a correct server); doctor read the other one."""
    prefix = lab.work / "negated"
    (prefix / "sites").mkdir(parents=True)
    bad, good = (
        good_conf(lab, verify="ssl_verify_client optional_no_ca;"),
        good_conf(lab),
    )
    head, _, rest = bad.partition("    server {")
    server_text, _, tail = ("    server {" + rest).rpartition("}")
    (prefix / "sites" / "app.conf").write_text(server_text)
    good_server = ("    server {" + good.partition("    server {")[2]).rpartition("}")[0]
    (prefix / "sites" / "_k-mtls.conf").write_text(good_server)
    conf = lab.conf(head + "    include sites/[^_]*.conf;\n" + tail + "}\n", "negated")
    assert nginx_t(conf).returncode == 0
    found = doctor.diagnose(lab.site, conf).findings
    assert ids(found) == {"verify-optional-unchecked"}
    assert found[0].file == str(prefix / "sites" / "app.conf")


def test_a_site_file_with_a_relative_include_is_not_guessed(lab: Lab) -> None:
    """nginx resolves a site file's `include snippets/x.conf` from the main nginx.conf's
    directory; doctor took the site file's own and read another file (attack round 6:
    nginx ran `ssl_verify_client off`, doctor read `on` and said clean)."""
    prefix = lab.work / "relative"
    (prefix / "sites" / "snippets").mkdir(parents=True)
    (prefix / "snippets").mkdir()
    (prefix / "snippets" / "verify.conf").write_text("ssl_verify_client off;\n")
    (prefix / "sites" / "snippets" / "verify.conf").write_text("ssl_verify_client on;\n")
    full = good_conf(lab, verify="include snippets/verify.conf;")
    head, _, rest = full.partition("    server {")
    server_text, _, tail = ("    server {" + rest).rpartition("}")
    site = prefix / "sites" / "site.conf"
    site.write_text(server_text)
    conf = lab.conf(head + "    include sites/*.conf;\n" + tail + "}\n", "relative")
    assert nginx_t(conf).returncode == 0
    # the main file: resolved as nginx does, the real (off) snippet is read
    assert ids(doctor.diagnose(lab.site, conf).findings) == {"verify-client-off"}
    with pytest.raises(InputError, match=r"nginx-conf: .*relative include in a site file"):
        doctor.diagnose(lab.site, site)
    # told where the main nginx.conf lives, the site file alone is read right too
    found = doctor.diagnose(lab.site, site, conf.parent).findings
    assert ids(found) == {"verify-client-off"}


def test_rendered_config_is_clean(lab: Lab) -> None:
    out = lab.work / "rendered"
    nginx_lib.render(lab.site, SERVER, "http://127.0.0.1:18080", listen="127.0.0.1:18443", out=out)
    prefix = lab.work / "rendered-run"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_lib.render_standalone(prefix, out / nginx_lib.SITE_CONF))
    assert nginx_t(conf).returncode == 0
    assert doctor.diagnose(lab.site, conf).findings == []
    assert doctor.diagnose(lab.site, out / nginx_lib.SITE_CONF).findings == []


def test_rendered_profiles_sharing_a_port_are_clean_and_without_guard_caught(lab: Lab) -> None:
    """issue 13 item 1: two profiles on one listen address, as `nginx render` writes them."""
    confs = []
    # each its own application: one upstream behind both would let the other profile's
    # clients into this one's (upstream-without-mtls)
    for profile, server, sni_only, port in (
        (lab.site, SERVER, False, 18080),
        (lab.other, "other.local", True, 18081),
    ):
        out = lab.work / f"shared-{profile.name}"
        nginx_lib.render(profile, server, f"http://127.0.0.1:{port}", listen="127.0.0.1:18444",
                         out=out, sni_only=sni_only)  # fmt: skip
        confs.append(out / nginx_lib.SITE_CONF)
    prefix = lab.work / "shared-run"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_lib.render_standalone(prefix, confs))
    assert nginx_t(conf).returncode == 0
    assert doctor.diagnose(lab.site, conf).findings == []
    assert doctor.diagnose(lab.other, conf).findings == []
    site_text = confs[0].read_text()
    start = site_text.index("    if ($ssl_server_name")
    end = site_text.index("}", start) + 1
    confs[0].write_text(site_text[:start] + site_text[end:])  # the guard removed
    assert nginx_t(conf).returncode == 0
    found = doctor.diagnose(lab.site, conf).findings
    assert ids(found) == {"shared-listen-unguarded"}
    assert found[0].file == str(confs[0])
    assert ids(doctor.diagnose(lab.other, conf).findings) == set()


def test_two_level_profile_rendered_is_clean_and_a_missing_root_crl_is_caught(lab: Lab) -> None:
    """An intermediate signs the leaves: nginx needs both CRLs (crl-chain.pem)."""
    from certwiz import intermediate

    profile = intermediate.init("layered", lab.home)
    issue.issue_server(profile, "layered.local")
    issue.issue_client(profile, "carol")
    revoke.revoke(profile, name="carol")
    out = lab.work / "layered"
    nginx_lib.render(profile, "layered.local", "http://127.0.0.1:18080",
                     listen="127.0.0.1:18445", out=out)  # fmt: skip
    site = out / nginx_lib.SITE_CONF
    assert f'ssl_crl "{profile.nginx_crl}";' in site.read_text()
    prefix = lab.work / "layered-run"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_lib.render_standalone(prefix, site))
    assert nginx_t(conf).returncode == 0
    assert doctor.diagnose(profile, conf).findings == []
    # only the intermediate's CRL: nginx then refuses every client (no CRL for the root)
    site.write_text(site.read_text().replace(str(profile.nginx_crl), str(profile.crl)))
    assert nginx_t(conf).returncode == 0
    found = doctor.diagnose(profile, conf).findings
    assert ids(found) == {"crl-missing-for-ca"}
    assert "CN=layered Root CA" in found[0].message
    # only the root's CRL: the intermediate's revocations are missing
    site.write_text(site.read_text().replace(str(profile.crl), str(profile.root.crl)))
    assert ids(doctor.diagnose(profile, conf).findings) == {"crl-missing-for-ca"}
    # OCSP for the leaf only, no CRL: a revoked intermediate would let its clients in
    text = site.read_text()
    crl_line = next(line for line in text.splitlines() if "ssl_crl " in line)
    site.write_text(
        text.replace(crl_line, "    ssl_ocsp leaf; ssl_ocsp_responder http://127.0.0.1:9/;")
    )
    assert nginx_t(conf).returncode == 0
    assert ids(doctor.diagnose(profile, conf).findings) == {"ocsp-leaf-only"}
    # and render refuses to write that shape: --revocation both keeps the root's CRL
    with pytest.raises(InputError, match=r"revocation: .*use --revocation both"):
        nginx_lib.render(profile, "layered.local", "http://127.0.0.1:18080", out=out,
                         revocation="ocsp", ocsp_responder="http://127.0.0.1:9/")  # fmt: skip


def test_a_stale_crl_chain_is_fixed_by_crl_gen_not_by_pointing_at_crl_pem(lab: Lab) -> None:
    """Attack round 10, F18: for the profile's own crl-chain.pem left behind by a revoke
    killed before rebuilding it, the fix said "point ssl_crl at the profile's crl.pem",
    which drops the root's CRL (nginx then refuses every client). The file is the right
    one: certwiz crl gen rebuilds it. A stale copy elsewhere is pointed at crl-chain.pem."""
    from certwiz import intermediate

    profile = intermediate.init("behind", lab.home)
    issue.issue_server(profile, "behind.local")
    issue.issue_client(profile, "dave")
    out = lab.work / "behind"
    nginx_lib.render(profile, "behind.local", "http://127.0.0.1:18080",
                     listen="127.0.0.1:18446", out=out)  # fmt: skip
    prefix = lab.work / "behind-run"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_lib.render_standalone(prefix, out / nginx_lib.SITE_CONF))
    copy = lab.work / "behind-crl-copy.pem"
    copy.write_bytes(profile.nginx_crl.read_bytes())
    killed_at("certwiz.intermediate.write_crl_chain", lambda: revoke.revoke(profile, name="dave"))
    found = doctor.diagnose(profile, conf).findings
    assert ids(found) == {"crl-not-current"}
    assert found[0].fix.startswith("certwiz crl gen -p behind ")
    assert "crl.pem" not in found[0].fix.replace("crl-chain.pem", "")
    site = out / nginx_lib.SITE_CONF
    site.write_text(site.read_text().replace(str(profile.nginx_crl), str(copy)))
    found = doctor.diagnose(profile, conf).findings
    assert ids(found) == {"crl-not-current"}
    assert found[0].fix.startswith(f"point ssl_crl at {profile.nginx_crl} ")


def test_rendered_ocsp_config_is_clean(lab: Lab) -> None:
    out = lab.work / "rendered-ocsp"
    responder = "http://127.0.0.1:18888/"
    nginx_lib.render(lab.site, SERVER, "http://127.0.0.1:18080", listen="127.0.0.1:18446",
                     out=out, revocation="ocsp", ocsp_responder=responder)  # fmt: skip
    assert "ssl_crl" not in (out / nginx_lib.SITE_CONF).read_text()
    assert doctor.diagnose(lab.site, out / nginx_lib.SITE_CONF).findings == []


def _rendered_enroll(lab: Lab, label: str, app: str = "generic") -> tuple[Path, Path]:
    """`nginx render --enroll` (site, standalone nginx.conf around it)."""
    out = lab.work / label
    nginx_lib.render(lab.site, SERVER, "http://127.0.0.1:18080", listen="127.0.0.1:18447",
                     out=out, app=app, enroll="unix:/run/certwiz/est.sock")  # fmt: skip
    prefix = lab.work / f"{label}-run"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_lib.render_standalone(prefix, out / nginx_lib.SITE_CONF))
    return out / nginx_lib.SITE_CONF, conf


@pytest.mark.parametrize("app", ["generic", "ollama"])
def test_rendered_enroll_config_is_clean(lab: Lab, app: str) -> None:
    """`optional` for EST: the rendered shape (only cacerts and simpleenroll admit a
    request without a certificate, every other location refuses it) is accepted."""
    site, conf = _rendered_enroll(lab, f"enroll-{app}", app)
    text = site.read_text()
    assert "ssl_verify_client optional;" in text and "ssl_verify_client on;" not in text
    assert nginx_t(conf).returncode == 0
    assert doctor.diagnose(lab.site, conf).findings == []


def test_enroll_shape_with_an_unguarded_location_is_flagged(lab: Lab) -> None:
    site, conf = _rendered_enroll(lab, "enroll-unguarded")
    text = site.read_text()
    guard = "        if ($ssl_client_verify != SUCCESS) {\n            return 496;\n        }\n"
    assert text.count(guard) == 2  # location / and location /.well-known/est/
    # the guard of location / removed: the application is open to anyone
    site.write_text(text.replace(guard, "", 1))
    assert nginx_t(conf).returncode == 0
    found = doctor.diagnose(lab.site, conf).findings
    assert ids(found) == {"verify-optional-unchecked"}
    assert len(found) == 1 and found[0].line == _line_of(
        site, 'proxy_pass "http://127.0.0.1:18080"'
    )
    # an extra cert-less EST path (not cacerts or simpleenroll) is flagged too
    extra = (
        "    location = /.well-known/est/serverkeygen {\n"
        f'        include "{site.parent / nginx_lib.PROXY_CONF}";\n'
        "        proxy_pass http://127.0.0.1:18085;\n    }\n"
    )
    site.write_text(
        text.replace(
            "    location = /.well-known/est/cacerts {",
            extra + "    location = /.well-known/est/cacerts {",
        )
    )
    assert nginx_t(conf).returncode == 0
    found = doctor.diagnose(lab.site, conf).findings
    assert ids(found) == {"verify-optional-unchecked"} and len(found) == 1
    # optional_no_ca lets a failed certificate through: the EST exemption does not apply
    site.write_text(
        text.replace("ssl_verify_client optional;", "ssl_verify_client optional_no_ca;")
    )
    assert nginx_t(conf).returncode == 0
    found = doctor.diagnose(lab.site, conf).findings
    assert ids(found) == {"verify-optional-unchecked"} and len(found) == 2


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# ---- the profile itself ---------------------------------------------------------------


def test_profile_findings(tmp_path: Path) -> None:
    home = tmp_path / "certs"
    profile = ca.init("young", home, ca.CAOptions(days=30))
    issue.issue_server(profile, SERVER, days=20)
    ext = tmp_path / "ext.cnf"
    ext.write_text(
        "[both]\nbasicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth,serverAuth\n"
        "[ca_leaf]\nbasicConstraints=critical,CA:TRUE\nextendedKeyUsage=clientAuth\n"
    )
    for cn, section in (("both", "both"), ("signer", "ca_leaf")):
        key, csr, crt = tmp_path / f"{cn}.key", tmp_path / f"{cn}.csr", tmp_path / f"{cn}.crt"
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(key), "-subj", f"/CN={cn}", "-out", str(csr))  # fmt: skip
        openssl("ca", "-batch", "-config", str(profile.cnf), "-in", str(csr), "-out", str(crt),
                "-extfile", str(ext), "-extensions", section, "-days", "10")  # fmt: skip
    now = datetime.now(UTC)
    soon, ago = ((now + timedelta(days=d)).strftime("%Y%m%d%H%M%SZ") for d in (1, -30))
    openssl("ca", "-gencrl", "-config", str(profile.cnf), "-crl_lastupdate", ago,
            "-crl_nextupdate", soon, "-out", str(profile.crl))  # fmt: skip
    rendered = nginx_lib.render(profile, SERVER, "http://127.0.0.1:18080")
    found = doctor.diagnose(profile).findings
    assert ids(found) == {"ca-expiring", "crl-expiring", "client-cert-server-auth", "leaf-is-ca"}
    lines = profile.index.read_text().splitlines()
    by_id = {f.id: f for f in found}
    assert "CN=both" in lines[by_id["client-cert-server-auth"].line - 1]
    assert "CN=signer" in lines[by_id["leaf-is-ca"].line - 1]
    assert by_id["crl-expiring"].file == str(profile.crl)
    assert rendered.files["site"] == str(doctor.default_conf(profile))


# ---- the command ----------------------------------------------------------------------


def test_cli_json_and_exit_codes(lab: Lab) -> None:
    good = lab.conf(good_conf(lab), "cli-good")
    warn = lab.conf(good_conf(lab, tickets=""), "cli-warn")
    bad = lab.conf(good_conf(lab, verify=""), "cli-bad")
    before = snapshot(lab.site.dir)
    results = {}
    for name, conf in (("good", good), ("warn", warn), ("bad", bad)):
        results[name] = invoke(
            lab.home, "doctor", "-p", "site", "--nginx-conf", str(conf), "--json"
        )
    assert [results[n].returncode for n in ("good", "warn", "bad")] == [0, 1, 2]
    report = json.loads(results["bad"].stdout)
    (finding,) = report["findings"]
    assert set(finding) == {"id", "severity", "file", "line", "message", "fix"}
    assert (finding["id"], finding["severity"], finding["file"]) == (
        "verify-client-off",
        "error",
        str(bad),
    )
    assert json.loads(results["good"].stdout)["findings"] == []
    text = invoke(lab.home, "doctor", "-p", "site", "--nginx-conf", str(warn))
    assert text.returncode == 1
    assert "session-resumption" in text.stdout and f"{warn}:" in text.stdout
    assert snapshot(lab.site.dir) == before  # read-only


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--nginx-conf", "/nonexistent/nginx.conf"], "nginx-conf"),
        (["--nginx-conf", "UNBALANCED"], "nginx-conf"),
        (["--nginx-conf", "GOOD", "--nginx-prefix", "/nonexistent"], "nginx-prefix"),
        (["-p", "../x"], "profile"),
    ],
)
def test_cli_bad_input_is_one_line(lab: Lab, args: list[str], field: str) -> None:
    unbalanced = lab.work / "unbalanced.conf"
    unbalanced.write_text("http {\n  server {\n    listen 443 ssl;\n}\n")
    good = lab.conf(good_conf(lab), "cli-input")
    argv = [a.replace("UNBALANCED", str(unbalanced)).replace("GOOD", str(good)) for a in args]
    if "-p" not in argv:
        argv = ["-p", "site", *argv]
    result = invoke(lab.home, "doctor", *argv)
    assert result.returncode == 2
    assert result.stderr.startswith(f"certwiz: error: {field}: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
