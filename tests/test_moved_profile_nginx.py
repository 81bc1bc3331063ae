"""A copied or moved profile's rendered NGINX site enforces its own CA and CRL.

Attack round on issue 13, D4: item 4 made openssl.cnf follow a `cp -a` of the home, but
PROFILE/nginx/mtls_proxy.conf still named the original's CRL, CA and server key. A
staging NGINX including the copy's site loaded the original's CRL, so `revoke --reload`
in the copy reloaded a config where the revoked client still got 200, and `check` said
nothing. Now `check` reports the site and the next change (recovery, under the lock)
re-renders its paths for where the profile is. Real nginx, real curl, one of each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from certwiz import audit
from certwiz.profile import Profile
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import invoke, snapshot
from tests.nginx_support import certwiz_ok, curl_as, require_curl, require_nginx

pytestmark = pytest.mark.nginx

SERVER = "app.test"


def test_revoke_reload_in_a_copy_enforces_the_copys_crl(tmp_path: Path) -> None:
    require_nginx()
    require_curl()
    home = tmp_path / "certs"
    cw = certwiz_ok(home)
    backend = EchoBackend().start()
    port = free_port()
    try:
        cw("ca", "init", "-p", "app")
        cw("server", "issue", "-p", "app", "-n", SERVER)
        for name in ("bot", "other"):
            cw("client", "issue", "-p", "app", "-n", name, "-u")
        upstream, listen = f"http://127.0.0.1:{backend.port}", f"127.0.0.1:{port}"
        cw("nginx", "render", "-p", "app", "--server", SERVER, "--upstream", upstream,
           "--listen", listen)  # fmt: skip
        staging = tmp_path / "staging"
        shutil.copytree(home, staging, symlinks=True)  # cp -a: a staging copy
        original, copy = Profile("app", home), Profile("app", staging)
        site = copy.dir / "nginx" / "mtls_proxy.conf"
        assert str(original.dir) in site.read_text()  # what the copy inherits
        before = snapshot(home)

        found = invoke(staging, "check", "-p", "app", "--json")
        assert found.returncode == 4, found.stderr
        text = json.dumps(json.loads(found.stdout))
        assert f"{site}: names the directory {original.dir}" in text

        nginx = LocalNginx(tmp_path / "nginx", site)
        try:
            nginx.start()
            assert curl_as(copy.dir, "bot", SERVER, port, tmp_path).status == 200
            with nginx.reloading():
                done = invoke(staging, "revoke", "-p", "app", "-n", "bot", "--reload",
                              "--nginx-cmd", nginx.command)  # fmt: skip
            assert done.returncode == 0, done.stderr
            refused = curl_as(copy.dir, "bot", SERVER, port, tmp_path)
            assert refused.status == 400, refused.body
            assert curl_as(copy.dir, "other", SERVER, port, tmp_path).status == 200
        finally:
            nginx.stop()
        assert str(original.dir) not in site.read_text()
        assert "(certwiz profile app)" in site.read_text().split("\n", 1)[0]
        recovered = audit.read(copy)[-1]["recovered"]
        assert any(str(site) in line for line in recovered)  # type: ignore[union-attr]
        assert invoke(staging, "check", "-p", "app").returncode == 0
        assert snapshot(home) == before  # the original and its CRL are untouched
    finally:
        backend.stop()


def test_a_profile_copied_under_another_name_renders_its_own_name(
    profile: Profile, tmp_path: Path
) -> None:
    """`cp -a HOME/my-app HOME/my-app2`: the site's first line names my-app2, so the
    copy's own `nginx render` is not refused as another profile's site."""
    cw = certwiz_ok(profile.home)
    cw("server", "issue", "-p", "my-app", "-n", SERVER)
    argv = ("nginx", "render", "--server", SERVER, "--upstream", "http://127.0.0.1:9")
    cw(argv[0], argv[1], "-p", "my-app", *argv[2:])
    shutil.copytree(profile.dir, profile.home / "my-app2", symlinks=True)
    copy = Profile("my-app2", profile.home)
    cw(argv[0], argv[1], "-p", "my-app2", *argv[2:])
    text = (copy.dir / "nginx" / "mtls_proxy.conf").read_text()
    assert text.startswith(f"# mTLS reverse proxy for {SERVER} (certwiz profile my-app2).")
    assert f"{profile.dir}/" not in text and f'"{copy.dir}/' in text


def test_another_cas_site_rendered_into_the_directory_is_left_alone(
    profile: Profile, tmp_path: Path
) -> None:
    """A site of another profile rendered into this one's nginx/ with --out names that
    profile on purpose: not reported, not rewritten."""
    cw = certwiz_ok(profile.home)
    cw("ca", "init", "-p", "b")
    cw("server", "issue", "-p", "b", "-n", SERVER)
    out = profile.dir / "nginx"
    cw("nginx", "render", "-p", "b", "--server", SERVER, "--upstream", "http://127.0.0.1:9",
       "--out", str(out))  # fmt: skip
    text = (out / "mtls_proxy.conf").read_text()
    assert invoke(profile.home, "check", "-p", "my-app").returncode == 0
    cw("client", "issue", "-p", "my-app", "-n", "bot", "-u")
    assert (out / "mtls_proxy.conf").read_text() == text
