"""Files certwiz reads on the operator's word are refused when another user could have
chosen what they say (attack round 10): a CA passphrase file owned by nobody, 0666, in a
0777 directory was used without a word (F13: that user chose, or can read, the CA
passphrase), and `nginx render --upstream-ca` in nobody's directory was accepted though
root's nginx re-reads it at every reload (F12: that user swaps the CA and impersonates
the upstream). Round 11 (F5): a path that only began like a descriptor,
/proc/self/fd/../../../DIR/pass or /dev/fd/../../../DIR/pass, skipped every check."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from certwiz import fsutil
from tests.conftest import snapshot

NOBODY = 65534
PASSPHRASE = "correct horse battery\n"
UPSTREAM = "https://localhost:8443"


def as_root() -> None:
    if os.geteuid() != 0:  # CI runs as root: there this never skips
        pytest.skip("giving a file away needs root")


def made(where: Path, mode: int = 0o600, text: str = PASSPHRASE) -> Path:
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(text)
    where.chmod(mode)
    return where


def refused(result, field: str, says: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"certwiz: error: {field}: "), lines
    assert says in lines[0], lines[0]


def spellings(path: Path) -> list[str]:
    """PATH as given, and by way of this process's descriptor directories (/proc/self/fd
    and /dev/fd are three levels below /): the same file, which must be checked the same."""
    return [str(path), f"/proc/self/fd/../../..{path}", f"/dev/fd/../../..{path}"]


def unsafe_files(tmp_path: Path) -> list[tuple[Path, str]]:
    """A file of each kind that must be refused, and what the refusal says."""
    cases = [
        (made(tmp_path / "ours" / "0666", 0o666), "writable by group or others (mode 666)"),
        (made(tmp_path / "ours" / "0620", 0o620), "writable by group or others (mode 620)"),
        (made(tmp_path / "ours" / "0644", 0o644), "readable by others (mode 644)"),
    ]
    (tmp_path / "open").mkdir(mode=0o777)
    (tmp_path / "open").chmod(0o777)
    cases.append((made(tmp_path / "open" / "pass"), f"{tmp_path / 'open'} is writable"))
    if os.geteuid() == 0:
        # the attack's: nobody's file, 0666, in a 0777 directory; and each part alone
        theirs = made(tmp_path / "open" / "theirs", 0o666)
        os.chown(theirs, NOBODY, NOBODY)
        cases.append((theirs, "writable"))
        file = made(tmp_path / "ours" / "nobodys", 0o600)
        os.chown(file, NOBODY, NOBODY)
        cases.append((file, f"owned by uid {NOBODY}"))
        (tmp_path / "nobody").mkdir(mode=0o700)
        os.chown(tmp_path / "nobody", NOBODY, NOBODY)
        cases.append((made(tmp_path / "nobody" / "pass"), f"owned by uid {NOBODY}"))
        link = tmp_path / "ours" / "link"
        link.symlink_to(made(tmp_path / "ours" / "good"))
        os.lchown(link, NOBODY, NOBODY)
        cases.append((link, f"owned by uid {NOBODY}"))
    return cases


def test_a_ca_passphrase_file_another_user_could_choose_or_read_is_refused(
    cli: Callable[..., object], home: Path, tmp_path: Path
) -> None:
    """ca init (the attack) and a command signing with an encrypted CA: exit 2, one line
    naming the field, nothing created or changed."""
    for path, says in unsafe_files(tmp_path):
        for spelled in spellings(path):
            refused(cli("ca", "init", "-p", "a", "--ca-passphrase-file", spelled),
                    "ca-passphrase-file", says)  # fmt: skip
        assert not home.exists() or not (home / "a").exists()
    good = made(tmp_path / "ours" / "ca-pass", 0o640)  # a group may read it, on purpose
    assert cli("ca", "init", "-p", "a", "--ca-passphrase-file", str(good)).returncode == 0
    before = snapshot(home)
    for path, says in unsafe_files(tmp_path / "again"):
        path.write_text(PASSPHRASE)  # the right passphrase, from the wrong file
        for spelled in spellings(path):
            refused(cli("client", "issue", "-p", "a", "-n", "bot", "-u",
                        "--ca-passphrase-file", spelled), "ca-passphrase-file", says)  # fmt: skip
    assert snapshot(home) == before


def test_bundle_passwords_and_tokens_follow_the_same_rule(
    cli: Callable[..., object], home: Path, tmp_path: Path
) -> None:
    """The decision for bundle passwords (SECURITY.md 7): the same rule, readable by others
    included (the password of a bundle that travels, in a file every local user reads,
    gives its key to whoever gets the bundle); the agent's one-time token too (another
    user could enroll with it first)."""
    assert cli("ca", "init", "-p", "a").returncode == 0
    before = snapshot(home)
    for path, says in unsafe_files(tmp_path):
        for spelled in spellings(path):
            refused(cli("client", "issue", "-p", "a", "-n", "bot",
                        "--p12-passphrase-file", spelled), "p12-passphrase-file", says)  # fmt: skip
            refused(cli("agent", "enroll", "--url", "https://127.0.0.1:1", "-n", "bot",
                        "--token-file", spelled, "--ca", str(home / "a" / "ca.crt"), "-u",
                        "--out", str(tmp_path / "bot.p12")), "token-file", says)  # fmt: skip
    assert snapshot(home) == before
    assert not (tmp_path / "bot.p12").exists()


def test_a_passphrase_from_a_pipe_still_works(
    cli_process: Callable[..., object], home: Path
) -> None:
    """/dev/stdin, /dev/fd/N and /proc/self/fd/N are this process's own descriptors: a
    pipe from the shell is the caller's, whoever owns the pipe's inode."""
    result = cli_process("ca", "init", "-p", "a", "--ca-passphrase-file", "/dev/stdin",
                         stdin=PASSPHRASE)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert b"ENCRYPTED" in (home / "a" / "private" / "ca.key").read_bytes()
    result = cli_process("client", "issue", "-p", "a", "-n", "bot", "-u",
                         "--ca-passphrase-file", "/dev/stdin", stdin=PASSPHRASE)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for spelled in ("/dev/fd/0", "/proc/self/fd/0"):
        result = cli_process("crl", "gen", "-p", "a", "--ca-passphrase-file", spelled,
                             stdin=PASSPHRASE)  # fmt: skip
        assert result.returncode == 0, (spelled, result.stderr)


def test_an_upstream_ca_another_user_could_change_is_refused(
    cli: Callable[..., object], home: Path, tmp_path: Path
) -> None:
    """nginx render --upstream-ca: the same rule but for reading (a CA certificate is
    public: readable by others is fine), exit 2 and nothing written (F12)."""
    assert cli("ca", "init", "-p", "a").returncode == 0
    assert cli("server", "issue", "-p", "a", "-n", "web.local").returncode == 0
    pem = (home / "a" / "ca.crt").read_text()
    render = ["nginx", "render", "-p", "a", "--server", "web.local", "--upstream", UPSTREAM,
              "--out", str(tmp_path / "site")]  # fmt: skip
    before = snapshot(home)
    for path, says in unsafe_files(tmp_path):
        if "readable" in says:
            continue
        path.write_text(pem)
        for spelled in spellings(path):
            refused(cli(*render, "--upstream-ca", spelled), "upstream-ca", says)
        assert snapshot(home) == before and not (tmp_path / "site").exists()
    # nginx opens the file by name at every reload, in its own process: there a
    # descriptor path names whatever nginx has open under that number
    for spelled in ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"):
        done = cli(*render, "--upstream-ca", spelled, stdin=pem)
        refused(done, "upstream-ca", f"{spelled} is a descriptor of certwiz itself")
        assert snapshot(home) == before and not (tmp_path / "site").exists()
    good = made(tmp_path / "ours" / "upstream-ca.pem", 0o644, pem)
    assert cli(*render, "--upstream-ca", str(good)).returncode == 0
    assert str(good) in (tmp_path / "site" / "mtls_proxy.conf").read_text()


def test_the_attacks_file_is_refused_as_root(cli: Callable[..., object], tmp_path: Path) -> None:
    """Exactly the report's: F mode 0666 owned by nobody in a 0777 directory."""
    as_root()
    open_dir = tmp_path / "shared"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    passfile = made(open_dir / "F", 0o666)
    os.chown(passfile, NOBODY, NOBODY)
    refused(cli("ca", "init", "-p", "t", "--ca-passphrase-file", str(passfile)),
            "ca-passphrase-file", "is writable by group or others (mode 777)")  # fmt: skip


def test_the_agents_ca_files_another_user_could_change_are_refused(
    cli: Callable[..., object], home: Path, tmp_path: Path
) -> None:
    """agent enroll/renew --ca and --server-ca (attack round 12, F7): whoever can write
    them chooses the server the agent sends its token to and the certificate it installs.
    Exit 2, one line naming the option, before anything is sent or written."""
    assert cli("ca", "init", "-p", "a").returncode == 0
    pem = (home / "a" / "ca.crt").read_text()
    good = made(tmp_path / "ours" / "ca.pem", 0o644, pem)
    device = tmp_path / "device"
    device.mkdir(mode=0o700)
    url = "https://127.0.0.1:1"
    enroll = ["agent", "enroll", "--url", url, "-n", "bot", "--token", "t", "-u",
              "--out", str(device / "bot.p12")]  # fmt: skip
    renew = ["agent", "renew", "--url", url, "--p12", str(device / "bot.p12"), "-u"]
    for path, says in unsafe_files(tmp_path):
        if "readable" in says:
            continue
        path.write_text(pem)
        for spelled in spellings(path):
            refused(cli(*enroll, "--ca", spelled), "ca", says)
        refused(cli(*renew, "--ca", str(path)), "ca", says)
        refused(cli(*enroll, "--ca", str(good), "--server-ca", str(path)), "server-ca", says)
        refused(cli(*renew, "--ca", str(good), "--server-ca", str(path)), "server-ca", says)
    assert list(device.iterdir()) == []
    # the same files, safe: past the check (nothing listens on port 1)
    done = cli(*enroll, "--ca", str(good), "--server-ca", str(good))
    assert done.returncode == 1 and "127.0.0.1:1" in done.stderr, done.stderr


def with_acl(path: Path, *entries: tuple[int, int, int]) -> Path:
    """PATH with a POSIX access ACL of ENTRIES (tag, perm, id) besides its mode's three,
    as setfacl writes it (version 2, little-endian); the test fails where the
    filesystem refuses ACLs only outside CI."""
    mode = path.stat().st_mode
    base = [(0x01, (mode >> 6) & 7, 0xFFFFFFFF), (0x04, (mode >> 3) & 7, 0xFFFFFFFF),
            (0x20, mode & 7, 0xFFFFFFFF)]  # fmt: skip
    raw = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", *e) for e in sorted(base + list(entries))
    )
    try:
        os.setxattr(path, "system.posix_acl_access", raw)
    except OSError as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"this filesystem refuses POSIX ACLs: {error}")
    return path


def test_a_secret_file_an_acl_opens_to_another_user_is_refused(
    cli: Callable[..., object], home: Path, tmp_path: Path
) -> None:
    """Attack round 12 (F9): a 0600 passphrase file with ACL user:nobody:r was used; the
    mode bits said nobody else could read it. A named entry that may read (a secret) or
    write under the mask counts as others; one the mask cuts off, the owner's own uid or
    the file's own group (a group may read a secret, as 0640 says) does not."""
    user, group, mask = 0x02, 0x08, 0x10
    gid = os.getegid()
    refused_cases = [
        (with_acl(made(tmp_path / "u-r"), (user, 4, NOBODY), (mask, 4, 0)), "uid 65534 read"),
        (with_acl(made(tmp_path / "g-r"), (group, 4, NOBODY), (mask, 4, 0)), "gid 65534 read"),
        (with_acl(made(tmp_path / "u-rw"), (user, 6, NOBODY), (mask, 4, 0)), "uid 65534 read"),
    ]
    assert oct(refused_cases[0][0].stat().st_mode & 0o777) == "0o640"  # the mask shows as group r
    for path, says in refused_cases:
        assert fsutil.unsafe_file(path, secret=True) is not None
        refused(cli("ca", "init", "-p", "a", "--ca-passphrase-file", str(path)),
                "ca-passphrase-file", says)  # fmt: skip
    assert not (home / "a").exists()
    # a certificate (not secret) may be read through an ACL, never written
    assert fsutil.unsafe_file(refused_cases[0][0]) is None
    writable = made(tmp_path / "u-w", 0o600)
    with_acl(writable, (user, 6, NOBODY), (mask, 6, 0))
    writable.chmod(0o600)  # mode's group bits are the mask: now --- (rw- still in the entry)
    assert (
        fsutil.unsafe_file(writable) is None and fsutil.unsafe_file(writable, secret=True) is None
    )
    with_acl(writable, (user, 2, NOBODY), (mask, 2, 0))  # the mode says so too (620)
    assert "writable by group or others" in str(fsutil.unsafe_file(writable))
    fine = [
        with_acl(made(tmp_path / "own"), (user, 6, os.geteuid()), (mask, 0, 0)),
        with_acl(made(tmp_path / "grp"), (group, 4, gid), (mask, 4, 0)),
    ]
    for path in fine:
        assert fsutil.unsafe_file(path, secret=True) is None, path
    assert cli("ca", "init", "-p", "a", "--ca-passphrase-file", str(fine[1])).returncode == 0
