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
from certwiz.nginx import enforce
from certwiz.profile import Profile
from examples.echo_backend import EchoBackend
from examples.local_nginx import LocalNginx, free_port
from tests.conftest import invoke, snapshot
from tests.nginx_support import certwiz_ok, curl_as, require_curl, require_nginx

pytestmark = pytest.mark.nginx

SERVER = "app.test"


def retire(original: Profile) -> None:
    """The original's CA key gone (a retired directory whose files nginx may still name):
    a copy beside an original that still signs is refused outright (round 12, F5)."""
    original.ca_key.unlink()


def test_revoke_reload_in_a_copy_enforces_the_copys_crl(tmp_path: Path) -> None:
    """The copy's own site follows it; a site rendered elsewhere (--out) for the original,
    which certwiz may not rewrite, makes `revoke --reload` refuse to reload (exit 1) with
    the command that renders it for the copy, and that command works."""
    require_nginx()
    require_curl()
    home = tmp_path / "certs"
    cw = certwiz_ok(home)
    backend = EchoBackend().start()
    port, port2 = free_port(), free_port()
    try:
        cw("ca", "init", "-p", "app")
        cw("server", "issue", "-p", "app", "-n", SERVER)
        for name in ("bot", "other"):
            cw("client", "issue", "-p", "app", "-n", name, "-u")
        upstream = f"http://127.0.0.1:{backend.port}"
        render = ("nginx", "render", "-p", "app", "--server", SERVER, "--upstream", upstream)
        cw(*render, "--listen", f"127.0.0.1:{port}")  # into the profile: PROFILE/nginx/
        outside = tmp_path / "sites" / "app"  # like /etc/nginx/sites-available/app
        cw(*render, "--listen", f"127.0.0.1:{port2}", "--out", str(outside))
        staging = tmp_path / "staging"
        shutil.copytree(home, staging, symlinks=True)  # cp -a: a staging copy
        original, copy = Profile("app", home), Profile("app", staging)
        retire(original)
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

            # + the original's site from outside the profile: it enforces the original's CRL
            nginx.serve([site, outside / "mtls_proxy.conf"])
            workers = nginx.workers()
            done = invoke(staging, "revoke", "-p", "app", "-n", "other", "--reload",
                          "--nginx-cmd", nginx.command)  # fmt: skip
            assert done.returncode == 1, (done.stdout, done.stderr)
            assert "nginx was NOT reloaded" in done.stdout
            assert f"ssl_crl {original.crl} is not profile app's current CRL" in done.stderr
            assert "re-render it: " in done.stderr, done.stderr
            fix = done.stderr.split("re-render it: ", 1)[1].strip()
            assert fix == (
                f"certwiz nginx render -p app --server {SERVER} --upstream {upstream} "
                f"--listen 127.0.0.1:{port2} --out {outside}"
            )
            assert nginx.workers() == workers  # nothing was reloaded
            assert curl_as(copy.dir, "other", SERVER, port2, tmp_path).status == 200
            rerender = invoke(staging, *fix.split()[1:])  # the command as printed
            assert rerender.returncode == 0, rerender.stderr
            with nginx.reloading():
                done = invoke(staging, "crl", "gen", "-p", "app", "--reload",
                              "--nginx-cmd", nginx.command)  # fmt: skip
            assert done.returncode == 0, done.stderr
            for listen in (port, port2):
                assert curl_as(copy.dir, "other", SERVER, listen, tmp_path).status == 400
        finally:
            nginx.stop()
        assert str(original.dir) not in site.read_text()
        assert "(certwiz profile app)" in site.read_text().split("\n", 1)[0]
        recovered = [line for r in audit.read(copy) for line in r.get("recovered") or []]
        assert any(str(site) in line for line in recovered)
        assert invoke(staging, "check", "-p", "app").returncode == 0
        assert snapshot(home) == before  # the original and its CRL are untouched
    finally:
        backend.stop()


def test_a_profile_copied_under_another_name_renders_its_own_name(
    profile: Profile, tmp_path: Path
) -> None:
    """`cp -a HOME/my-app HOME/my-app2`, the original then set aside out of the home (two
    live copies in one home are refused, F10): the site's first line names my-app2, so
    the copy's own `nginx render` is not refused as another profile's site."""
    cw = certwiz_ok(profile.home)
    cw("server", "issue", "-p", "my-app", "-n", SERVER)
    argv = ("nginx", "render", "--server", SERVER, "--upstream", "http://127.0.0.1:9")
    cw(argv[0], argv[1], "-p", "my-app", *argv[2:])
    shutil.copytree(profile.dir, profile.home / "my-app2", symlinks=True)
    shutil.move(profile.dir, tmp_path / "my-app")
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


def test_the_refusal_names_the_render_command_with_the_sites_options(
    profile: Profile, tmp_path: Path
) -> None:
    """The command a refused reload prints renders the site as it was (--sni-only,
    --app, --tls, --error-log, --out), and after it runs nothing is refused."""
    cw = certwiz_ok(profile.home)
    cw("server", "issue", "-p", "my-app", "-n", SERVER)
    out, log = tmp_path / "sites", tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    cw("nginx", "render", "-p", "my-app", "--server", SERVER, "--upstream",
       "http://127.0.0.1:9", "--listen", "127.0.0.1:8443", "--sni-only", "--app", "ollama",
       "--tls", "modern", "--error-log", str(log), "--out", str(out))  # fmt: skip
    shutil.copytree(profile.home, tmp_path / "copy", symlinks=True)
    copy = Profile("my-app", tmp_path / "copy")
    retire(profile)
    cw_copy = certwiz_ok(copy.home)
    cw_copy("crl", "gen", "-p", "my-app")  # the copy's CRL is no longer the original's
    main = tmp_path / "nginx.conf"
    main.write_text(f'events {{}}\nhttp {{\n    include "{out}/mtls_proxy.conf";\n}}\n')
    dump = f"nginx: the configuration file {main} syntax is ok\n# configuration file {main}:\n"
    (stale,) = enforce.stale_servers(copy, dump)
    command = stale.split("re-render it: ", 1)[1]
    assert command == (
        f"certwiz nginx render -p my-app --server {SERVER} --upstream http://127.0.0.1:9 "
        f"--listen 127.0.0.1:8443 --sni-only --app ollama --tls modern --error-log {log} "
        f"--out {out}"
    )
    cw_copy(*command.split()[1:])
    assert enforce.stale_servers(copy, dump) == []
    assert enforce.stale_servers(profile, dump) != []  # now the original's is the stale one


def test_a_moved_profile_renamed_has_its_site_follow(profile: Profile, tmp_path: Path) -> None:
    """`mv HOME/my-app OTHER/renamed`: the old directory is gone, the site's first line names
    the profile that lived there, so it is this one's; the next change rewrites it."""
    cw = certwiz_ok(profile.home)
    cw("server", "issue", "-p", "my-app", "-n", SERVER)
    cw("nginx", "render", "-p", "my-app", "--server", SERVER, "--upstream", "http://127.0.0.1:9")
    (tmp_path / "other").mkdir(mode=0o700)
    shutil.move(profile.dir, tmp_path / "other" / "renamed")
    moved = Profile("renamed", tmp_path / "other")
    site = moved.dir / "nginx" / "mtls_proxy.conf"
    assert invoke(moved.home, "check", "-p", "renamed").returncode == 4
    certwiz_ok(moved.home)("client", "issue", "-p", "renamed", "-n", "bot", "-u")
    text = site.read_text()
    assert f"{profile.dir}/" not in text and f'ssl_crl "{moved.crl}";' in text
    assert text.startswith(f"# mTLS reverse proxy for {SERVER} (certwiz profile renamed).")
    assert invoke(moved.home, "check", "-p", "renamed").returncode == 0


def test_a_copy_whose_original_renewed_its_ca_still_has_its_site_follow(
    profile: Profile, tmp_path: Path
) -> None:
    """`ca renew` in the original after the copy (same key, a new certificate): the copy's
    site names a CA file that is no longer byte for byte its own, but admits the same
    clients; it is still the copy's to re-render, and --reload's check still sees it."""
    cw = certwiz_ok(profile.home)
    cw("server", "issue", "-p", "my-app", "-n", SERVER)
    out = tmp_path / "sites"
    render = ("nginx", "render", "-p", "my-app", "--server", SERVER,
              "--upstream", "http://127.0.0.1:9")  # fmt: skip
    cw(*render)
    cw(*render, "--out", str(out))
    shutil.copytree(profile.home, tmp_path / "copy", symlinks=True)
    copy = Profile("my-app", tmp_path / "copy")
    cw("ca", "renew", "-p", "my-app")
    assert profile.ca_cert.read_bytes() != copy.ca_cert.read_bytes()
    retire(profile)
    main = tmp_path / "nginx.conf"
    main.write_text(f'events {{}}\nhttp {{\n    include "{out}/mtls_proxy.conf";\n}}\n')
    dump = f"# configuration file {main}:\n"
    certwiz_ok(copy.home)("crl", "gen", "-p", "my-app")  # the copy's own CRL from now on
    site = (copy.dir / "nginx" / "mtls_proxy.conf").read_text()
    assert f"{profile.dir}/" not in site and f'ssl_crl "{copy.crl}";' in site
    (stale,) = enforce.stale_servers(copy, dump)  # the original's --out site
    assert f"ssl_crl {profile.crl} is not profile my-app's current CRL" in stale


def test_a_copy_where_nginx_cannot_name_its_paths_is_not_rewritten(
    profile: Profile, tmp_path: Path
) -> None:
    """A copy in `re$tored` (openssl.cnf escapes it): an nginx path with `$` is a variable
    (`unknown "tored" variable`, nginx -t fails), so the site is left as it was, and
    `check` says why and what to do instead of "the next change re-renders it"."""
    cw = certwiz_ok(profile.home)
    cw("server", "issue", "-p", "my-app", "-n", SERVER)
    cw("nginx", "render", "-p", "my-app", "--server", SERVER, "--upstream", "http://127.0.0.1:9")
    shutil.copytree(profile.home, tmp_path / "re$tored", symlinks=True)
    copy = Profile("my-app", tmp_path / "re$tored")
    retire(profile)
    site = copy.dir / "nginx" / "mtls_proxy.conf"
    text = site.read_text()
    certwiz_ok(copy.home)("client", "issue", "-p", "my-app", "-n", "bot", "-u")
    assert site.read_text() == text
    found = invoke(copy.home, "check", "-p", "my-app")
    assert found.returncode == 4
    assert "cannot name this directory" in found.stdout + found.stderr
    assert "'$'" in found.stdout + found.stderr


def test_the_reload_check_never_breaks_a_reload_it_cannot_read(
    profile: Profile, tmp_path: Path
) -> None:
    """A configuration its reader cannot follow (a link loop; nginx in a container whose
    paths are not this host's): no finding, and no traceback after the revocation."""
    loop = tmp_path / "loop.conf"
    loop.symlink_to(loop)
    assert enforce.stale_servers(profile, f"# configuration file {loop}:\n") == []
    gone = tmp_path / "elsewhere" / "nginx.conf"
    assert enforce.stale_servers(profile, f"# configuration file {gone}:\n") == []
