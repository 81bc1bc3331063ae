"""The real-client matrix: every bundle certwiz makes works in every client a user has.

For the three bundles certwiz makes (compat and modern with a password, and -u: the
empty password, MAC and encrypted key bag kept) each client completes an mTLS request
through one real nginx, or, where a client only imports, imports the key with its
certificate: curl, requests-pkcs12, httpx (PEM files), cryptography, openssl s_client,
Java (keytool and a Client.java program, compiled once per session), NSS (pk12util) and
headless Chromium with that NSS store. The old -u bundle (no MAC, no encryption) is kept
as the case that Java and NSS refuse, and `p12 inspect` is checked against what the clients did.
Every browser run is under `timeout`: Chromium waits for ever on a certificate choice.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests_pkcs12
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import REPO, clean_env, load_cert, openssl, run_certwiz
from tests.nginx_support import (
    certwiz_ok,
    curl,
    require_curl,
    require_nginx,
    require_tool,
    secret_file,
)

pytestmark = pytest.mark.nginx

SERVER = "localhost"
PASSWORD = "correct horse battery staple"
CA_CN = "prod-x Root CA"
JAVA_CLIENT = REPO / "tests" / "clients" / "Client.java"
BROWSER_TIMEOUT = "60"


@dataclass(frozen=True)
class Bundle:
    name: str
    password: str  # "" for the -u bundle


# The three bundles certwiz makes; "empty" is -u.
BUNDLES = {
    "compat": Bundle("carol", PASSWORD),
    "modern": Bundle("dave", PASSWORD),
    "empty": Bundle("bot", ""),
}
FORMATS = list(BUNDLES)


@dataclass
class Matrix:
    home: Path
    site: Path
    root: Path
    port: int
    backend: EchoBackend
    nginx: LocalNginx
    password_file: Path
    old_u: Path  # bot's key and certificate as the old -u bundle (no MAC, nothing encrypted)

    @property
    def ca(self) -> Path:
        return self.site / "ca.crt"

    def url(self, path: str = "/hello") -> str:
        return f"https://{SERVER}:{self.port}{path}"

    def p12(self, name: str) -> Path:
        return self.site / "private" / f"{name}.p12"

    def work(self, label: str) -> Path:
        """A fresh directory for one case."""
        path = self.root / "cases" / label
        path.mkdir(parents=True)
        return path

    def secret_file(self, bundle: Bundle, work: Path) -> Path:
        """The password as a 0600 file (empty file for the empty password)."""
        return secret_file(work / "p12.pass", bundle.password)


def _env() -> dict[str, str]:
    return clean_env()


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    require_nginx()
    require_curl()
    root = tmp_path_factory.mktemp("matrix")
    home = root / "certs"
    pw = secret_file(root / "p12pass", PASSWORD + "\n")
    cw = certwiz_ok(home)
    cw("ca", "init", "-p", "prod-x")
    cw("server", "issue", "-p", "prod-x", "-n", SERVER, "--san", "127.0.0.1")
    for fmt, bundle in BUNDLES.items():
        if bundle.password:
            cw("client", "issue", "-p", "prod-x", "-n", bundle.name, "--p12-format", fmt,
               "--p12-passphrase-file", str(pw))  # fmt: skip
        else:
            cw("client", "issue", "-p", "prod-x", "-n", bundle.name, "-u")
    cw("client", "issue", "-p", "prod-x", "-n", "gone", "-u")
    cw("revoke", "-p", "prod-x", "-n", "gone")
    site = home / "prod-x"
    old_u = root / "old-u.p12"  # what `-u` made before: Java and NSS cannot use it
    openssl("pkcs12", "-export", "-inkey", str(site / "private/bot.key"),
            "-in", str(site / "issued/bot.crt"), "-certfile", str(site / "ca.crt"),
            "-name", "bot", "-out", str(old_u), "-certpbe", "NONE", "-keypbe", "NONE",
            "-nomac", "-passout", "pass:")  # fmt: skip
    backend = EchoBackend().start()
    port = free_port()
    cw("nginx", "render", "-p", "prod-x", "--server", SERVER,
       "--upstream", f"http://127.0.0.1:{backend.port}", "--listen", f"127.0.0.1:{port}",
       "--out", str(root / "conf"))  # fmt: skip
    server = LocalNginx(root / "nginx", root / "conf" / "mtls_proxy.conf")
    try:
        server.start()
        yield Matrix(home, site, root, port, backend, server, pw, old_u)
    finally:
        server.stop()
        backend.stop()


def echoed_cn(body: str) -> list[str]:
    """The CN(s) the backend saw in X-Client-Cert-Subject, from its JSON echo."""
    headers = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    assert headers["x-client-verify"] == "SUCCESS"
    return re.findall(r"(?:^|,)CN=([^,]+)", headers["x-client-cert-subject"])


def echoed_in_page(page: str) -> list[str]:
    """The same, from a browser's DOM (the JSON is the text of the page)."""
    match = re.search(r"\{.*\}", page, re.S)
    assert match, page[:2000]
    text = match.group(0).replace("&amp;", "&").replace("&quot;", '"')
    return echoed_cn(text)


# ---- curl, Python, openssl ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_curl_p12(matrix: Matrix, fmt: str) -> None:
    bundle = BUNDLES[fmt]
    r = curl(matrix.url(), matrix.work(f"curl-{fmt}"), ca=matrix.ca,
             resolve=f"{SERVER}:{matrix.port}:127.0.0.1", p12=matrix.p12(bundle.name),
             password=bundle.password)  # fmt: skip
    assert (r.returncode, r.status) == (0, 200), r.stderr
    assert echoed_cn(r.body) == [bundle.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_requests_pkcs12(matrix: Matrix, fmt: str) -> None:
    bundle = BUNDLES[fmt]
    r = requests_pkcs12.get(
        f"https://127.0.0.1:{matrix.port}/hello",
        pkcs12_filename=str(matrix.p12(bundle.name)),
        pkcs12_password=bundle.password,
        verify=str(matrix.ca),
        timeout=30,
    )
    assert r.status_code == 200
    assert echoed_cn(r.text) == [bundle.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_httpx_with_the_pem_files(matrix: Matrix, fmt: str) -> None:
    bundle = BUNDLES[fmt]
    ctx = ssl.create_default_context(cafile=str(matrix.ca))
    ctx.load_cert_chain(
        str(matrix.site / "issued" / f"{bundle.name}.crt"),
        str(matrix.site / "private" / f"{bundle.name}.key"),
        password=bundle.password or None,  # -u: the key file is not encrypted
    )
    r = httpx.get(f"https://127.0.0.1:{matrix.port}/hello", verify=ctx, timeout=30)
    assert r.status_code == 200
    assert echoed_cn(r.text) == [bundle.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_cryptography_loads_key_and_matching_certificate(matrix: Matrix, fmt: str) -> None:
    bundle = BUNDLES[fmt]
    data = matrix.p12(bundle.name).read_bytes()
    passwords = [bundle.password.encode()] if bundle.password else [b"", None]
    for password in passwords:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password)
        assert key is not None and cert is not None
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        assert key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)
        assert cert == load_cert(matrix.site / "issued" / f"{bundle.name}.crt")
        assert [c.subject.rfc4514_string() for c in extra] == [f"CN={CA_CN}"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_openssl_s_client_with_the_pem_export(matrix: Matrix, fmt: str) -> None:
    bundle, work = BUNDLES[fmt], matrix.work(f"s_client-{fmt}")
    pem = work / "client.pem"
    passin = f"file:{matrix.secret_file(bundle, work)}" if bundle.password else "pass:"
    openssl("pkcs12", "-in", str(matrix.p12(bundle.name)), "-nodes", "-out", str(pem),
            "-passin", passin)  # fmt: skip
    request = f"GET /hello HTTP/1.1\r\nHost: {SERVER}\r\nConnection: close\r\n\r\n"
    proc = subprocess.run(
        ["openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{matrix.port}",
         "-servername", SERVER, "-verify_return_error", "-CAfile", str(matrix.ca),
         "-cert", str(pem), "-key", str(pem)],
        input=request, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    head, _, body = proc.stdout.partition("\n\n")  # text mode made \r\n into \n
    assert head.startswith("HTTP/1.1 200"), (proc.stdout, proc.stderr)
    assert echoed_cn(body) == [bundle.name]


# ---- Java --------------------------------------------------------------------------------


def keytool_list(p12: Path, password_file: Path) -> str:
    keytool = require_tool("keytool", "default-jdk-headless")
    proc = subprocess.run(
        [keytool, "-list", "-storetype", "PKCS12", "-keystore", str(p12),
         "-storepass:file", str(password_file)],
        capture_output=True, text=True, timeout=60, check=False, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("fmt", FORMATS)
def test_keytool_lists_one_private_key_entry(matrix: Matrix, fmt: str) -> None:
    bundle, work = BUNDLES[fmt], matrix.work(f"keytool-{fmt}")
    out = keytool_list(matrix.p12(bundle.name), matrix.secret_file(bundle, work))
    assert "Your keystore contains 1 entry" in out
    assert len(re.findall(r"PrivateKeyEntry", out)) == 1
    assert re.search(rf"^{bundle.name}, .*PrivateKeyEntry", out, re.M), out


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Client.java compiled once per session (`java Client.java` compiled it on every run)."""
    javac = require_tool("javac", "default-jdk-headless")
    out = tmp_path_factory.mktemp("java-classes")
    subprocess.run([javac, "-d", str(out), str(JAVA_CLIENT)], check=True, capture_output=True,
                   timeout=300)  # fmt: skip
    return out


def java_client(
    matrix: Matrix, classes: Path, p12: Path, password: str
) -> subprocess.CompletedProcess[str]:
    java = require_tool("java", "default-jdk-headless")
    return subprocess.run(
        ["timeout", "120", java, "-cp", str(classes), "Client", str(p12), str(matrix.ca),
         f"https://127.0.0.1:{matrix.port}/hello"],
        input=password + "\n", capture_output=True, text=True, timeout=150, check=False,
        env=_env(),
    )  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS)
def test_java_client_gets_200_with_its_cn(matrix: Matrix, java_classes: Path, fmt: str) -> None:
    bundle = BUNDLES[fmt]
    proc = java_client(matrix, java_classes, matrix.p12(bundle.name), bundle.password)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["entries=1", "status=200"], proc.stdout
    assert echoed_cn("\n".join(lines[2:])) == [bundle.name]


def test_java_cannot_use_the_old_u_bundle_and_inspect_says_so(
    matrix: Matrix, java_classes: Path
) -> None:
    """Why -u changed: Java loads 0 entries from it without an error and sends nothing."""
    proc = java_client(matrix, java_classes, matrix.old_u, "")
    assert proc.stdout.splitlines()[:2] == ["entries=0", "status=400"], proc.stdout + proc.stderr
    report = inspect_json(matrix.old_u)
    assert report["clients"]["java"]["accepts"] is False
    assert report["clients"]["nss"]["accepts"] is False
    assert {c for c, v in report["clients"].items() if not v["accepts"]} == {"java", "nss"}


# ---- NSS and Chromium --------------------------------------------------------------------


def nss_db(path: Path) -> Path:
    certutil = require_tool("certutil", "libnss3-tools")
    path.mkdir(parents=True)
    subprocess.run([certutil, "-N", "-d", f"sql:{path}", "--empty-password"], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    return path


def nss_import(db: Path, p12: Path, password_file: Path) -> subprocess.CompletedProcess[str]:
    pk12util = require_tool("pk12util", "libnss3-tools")
    # -w reads the password from a file; pk12util refuses an empty file, so the empty
    # password (not a secret) goes as -W ''.
    given = ["-w", str(password_file)] if password_file.stat().st_size else ["-W", ""]
    return subprocess.run([pk12util, "-i", str(p12), "-d", f"sql:{db}", *given],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def nss_keys(db: Path) -> str:
    return subprocess.run(["certutil", "-K", "-d", f"sql:{db}"], capture_output=True,
                          text=True, timeout=60, check=False).stdout  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS)
def test_pk12util_imports_key_with_its_certificate(matrix: Matrix, fmt: str) -> None:
    bundle, work = BUNDLES[fmt], matrix.work(f"nss-{fmt}")
    db = nss_db(work / "db")
    proc = nss_import(db, matrix.p12(bundle.name), matrix.secret_file(bundle, work))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A key listed under the nickname has its certificate in the store (matched by key).
    assert re.search(rf"^<\s*\d+>\s+ec\s+[0-9a-f]+\s+{bundle.name}$", nss_keys(db), re.M)
    exported = subprocess.run(["certutil", "-L", "-d", f"sql:{db}", "-n", bundle.name, "-a"],
                              capture_output=True, timeout=60, check=True).stdout  # fmt: skip
    cert = x509.load_pem_x509_certificate(exported)
    assert cert == load_cert(matrix.site / "issued" / f"{bundle.name}.crt")


def test_pk12util_refuses_the_old_u_bundle(matrix: Matrix) -> None:
    work = matrix.work("nss-old-u")
    db = nss_db(work / "db")
    proc = nss_import(db, matrix.old_u, matrix.secret_file(Bundle("bot", ""), work))
    assert proc.returncode != 0
    assert "SEC_ERROR_BAD_DER" in proc.stdout + proc.stderr
    assert "bot" not in nss_keys(db)


def chromium(matrix: Matrix, label: str, p12: Path | None, password: str = "") -> str:
    """One headless Chromium start: a fresh HOME whose NSS store holds the bundle (if
    any) and trusts the CA, and a fresh profile with an auto-select rule for this
    origin. Returns the page's DOM."""
    browser = require_tool("chromium", "chromium")
    work = matrix.work(label)
    home = work / "home"
    db = nss_db(home / ".pki" / "nssdb")
    if p12 is not None:
        proc = nss_import(db, p12, matrix.secret_file(Bundle("", password), work))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", CA_CN, "-t", "C,,",
                    "-i", str(matrix.ca)], check=True, capture_output=True, timeout=60)  # fmt: skip
    rule = {
        f"https://{SERVER}:{matrix.port},*": {
            "last_modified": "13300000000000000",
            "setting": {"filters": [{"ISSUER": {"CN": CA_CN}}]},
        }
    }
    prefs = {"profile": {"content_settings": {"exceptions": {"auto_select_certificate": rule}}}}
    (work / "udd" / "Default").mkdir(parents=True)
    (work / "udd" / "Default" / "Preferences").write_text(json.dumps(prefs))
    proc = subprocess.run(
        ["timeout", BROWSER_TIMEOUT, browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={work / 'udd'}",
         "--dump-dom", matrix.url()],
        capture_output=True, text=True, timeout=int(BROWSER_TIMEOUT) + 30, check=False,
        env={**_env(), "HOME": str(home)},
    )  # fmt: skip
    assert proc.returncode == 0, f"chromium exit {proc.returncode}: {proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.parametrize("fmt", FORMATS)
def test_chromium_reaches_the_backend_with_the_bundle(matrix: Matrix, fmt: str) -> None:
    bundle = BUNDLES[fmt]
    before = len(matrix.backend.requests)
    page = chromium(matrix, f"chromium-{fmt}", matrix.p12(bundle.name), bundle.password)
    assert echoed_in_page(page) == [bundle.name]
    assert len(matrix.backend.requests) > before


def test_chromium_with_a_revoked_bundle_sees_the_rejection_page(matrix: Matrix) -> None:
    before = len(matrix.backend.requests)
    page = chromium(matrix, "chromium-revoked", matrix.p12("gone"))
    assert "<h1>Client certificate rejected</h1>" in page, page[:2000]
    assert len(matrix.backend.requests) == before


def test_chromium_without_a_bundle_sees_the_required_page(matrix: Matrix) -> None:
    before = len(matrix.backend.requests)
    page = chromium(matrix, "chromium-none", None)
    assert "<h1>Client certificate required</h1>" in page, page[:2000]
    assert len(matrix.backend.requests) == before


# ---- what a rejected client reads ------------------------------------------------------


@pytest.mark.parametrize(
    ("p12", "title"),
    [(None, "Client certificate required"), ("gone", "Client certificate rejected")],
)
def test_html_page_only_for_clients_that_accept_html(
    matrix: Matrix, p12: str | None, title: str
) -> None:
    work = matrix.work(f"html-{p12}")
    common: dict[str, Any] = {"ca": matrix.ca, "resolve": f"{SERVER}:{matrix.port}:127.0.0.1"}
    if p12:
        common["p12"] = matrix.p12(p12)
    html = curl(matrix.url(), work, headers={"Accept": "text/html,*/*;q=0.8"},
                extra=("-D", str(work / "headers")), **common)  # fmt: skip
    assert html.status == 400
    assert f"<title>{title}</title>" in html.body
    headers = (work / "headers").read_text().lower()
    assert "content-type: text/html" in headers
    for detail in (CA_CN, SERVER, "prod-x", "nginx", "openssl", "crl", str(matrix.port)):
        assert detail.lower() not in html.body.lower()  # nothing an attacker could use
    plain = curl(matrix.url(), work, **common)
    assert plain.status == 400
    assert plain.body in (
        "client certificate required\n",
        "client certificate rejected: unknown CA, expired or revoked\n",
    )


# ---- p12 inspect agrees with the clients ----------------------------------------------


def inspect_json(p12: Path, password_file: Path | None = None) -> dict[str, Any]:
    args = ["p12", "inspect", str(p12), "--json"]
    if password_file is not None:
        args += ["--p12-passphrase-file", str(password_file)]
    result = run_certwiz(Path("/nonexistent-home"), *args)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["ok"] is (result.returncode == 0)
    return report


@pytest.mark.parametrize("fmt", FORMATS)
def test_inspect_says_every_tested_client_takes_the_bundles_certwiz_makes(
    matrix: Matrix, fmt: str
) -> None:
    bundle = BUNDLES[fmt]
    password_file = matrix.password_file if bundle.password else None
    report = inspect_json(matrix.p12(bundle.name), password_file)
    tested = {c: v["accepts"] for c, v in report["clients"].items() if v["source"] == "tested"}
    assert set(tested.values()) == {True}, report["problems"]
    assert report["key_matches"] is True and report["chain_complete"] is True
    assert report["password"] == ("given" if bundle.password else "empty")
    assert report["mac"] == ("sha256" if fmt == "modern" else "sha1")
    assert report["key_encryption"] and report["certificate_encryption"]
    # modern is the one macOS and older Windows refuse: inspect says so, and exits 1
    assert report["ok"] is (fmt != "modern")


# ---- the onboarding README's steps, run as written ----------------------------------------


def readme_blocks(readme: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", readme, re.S | re.M)


@pytest.mark.parametrize("fmt", ["compat", "empty"])
def test_onboarding_readme_steps_work_as_written(matrix: Matrix, fmt: str) -> None:
    """curl and the two Python snippets of `client bundle`'s README, pasted with the
    service's address, reach the backend with the bundle's identity."""
    bundle, work = BUNDLES[fmt], matrix.work(f"onboarding-{fmt}")
    out = work / "handout"
    args = ["client", "bundle", "-p", "prod-x", "-n", bundle.name, "--out", str(out)]
    if bundle.password:
        args += ["--p12-passphrase-file", str(matrix.password_file)]
    certwiz_ok(matrix.home)(*args)
    if bundle.password:  # the README has the owner put the password in p12.pass
        secret_file(out / "p12.pass", bundle.password + "\n")
    readme = (out / "README.md").read_text().replace("https://SERVER/", matrix.url())
    (shell,) = readme_blocks(readme, "sh")[:1]
    proc = subprocess.run(["bash", "-euc", shell], cwd=out, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert echoed_cn(proc.stdout) == [bundle.name]
    for snippet in readme_blocks(readme, "python"):
        proc = subprocess.run([sys.executable, "-c", snippet], cwd=out, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert bundle.name in proc.stdout and "SUCCESS" in proc.stdout, proc.stdout
