"""Crash recovery: finish what a killed run left behind, under the lock, before the check.

openssl's half-rotated `.new` files, stale scratch directories and temp files, an issued
certificate that was signed but never copied out of newcerts/, a fullchain left holding
another key's certificate, and openssl.cnf or nginx sites still naming the directory a
copied or moved profile came from. Each step is reported; the consistency check
(`check.require_consistent`) runs after it.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import check, database, der, derived, journal, names
from .errors import ProfileCorrupt
from .fsutil import not_plain_dir, write_atomic
from .profile import ROOT_DIR, Profile
from .render import cnf_escape


def _relocate_cnf(profile: Profile, done: list[str]) -> None:
    """Point openssl.cnf at where the profile is now: its `dir =` line, and the paths in
    its comments. Every other line (an operator's edits too) stays as it is."""
    old = check.misplaced_cnf(profile)
    if old is None:
        return
    text = profile.cnf.read_text(encoding="utf-8")
    lines = text.split("\n")
    number, _ = check.cnf_dir_line(text) or (0, "")
    before, after = cnf_escape(old), cnf_escape(profile.dir)
    lines[number] = f"dir = {after}"
    lines = [x.replace(before, after) if x.startswith("#") else x for x in lines]
    write_atomic(profile.cnf, "\n".join(lines), profile.cnf.stat().st_mode & 0o777)
    done.append(
        f"re-rendered {profile.cnf} for {profile.dir}: it named {old} (a copied or moved profile)"
    )


def _relocate_nginx(profile: Profile, done: list[str]) -> None:
    """Point the sites in PROFILE/nginx/ at where the profile is now: every quoted path
    under the old directory, and the profile's name in the first line. Everything else
    (server, listen, upstream, the options it was rendered with) stays as rendered."""
    if check.nginx_unsafe(profile.dir):  # left naming the old directory; check says why
        return
    for site, old in check.misplaced_nginx(profile):
        for path in check.nginx_files(profile):
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            new = text.replace(f'"{old}/', f'"{profile.dir}/')
            if path == site:
                new = check.SITE_HEADER.sub(
                    lambda m: (
                        f"# mTLS reverse proxy for {m.group(1)} (certwiz profile {profile.name})."
                    ),
                    new,
                    count=1,
                )
            if new != text:
                mode = path.stat().st_mode & 0o777
                write_atomic(path, new.encode("utf-8", "surrogateescape"), mode)
                done.append(
                    f"re-rendered {path} for {profile.dir}: it named {old} "
                    "(a copied or moved profile)"
                )


def _finish_rotations(profile: Profile, done: list[str]) -> None:
    """openssl was killed between its two renames: NAME is gone, NAME.new is whole."""
    for base in check.ROTATED:
        path = profile.dir / base
        new = path.with_name(base + ".new")
        if not path.exists() and new.is_file() and not new.is_symlink():
            os.replace(new, path)
            done.append(f"restored {path} from {new.name} (openssl was interrupted)")


def _remove_scratch(profile: Profile, done: list[str]) -> set[str]:
    """Scratch directories and temp files of a killed certwiz (they may hold keys).

    Returns the names of issued/'s regular files: listed here anyway, recovery's
    _restore_issued needs them too (one listing of a 100,000-file directory, not two).
    """
    issued: set[str] = set()
    for parent in (profile.dir, profile.private, profile.issued, profile.reqs):
        if not parent.is_dir():
            continue
        if parent == profile.issued:
            hidden = []
            with os.scandir(parent) as listing:
                for found in listing:
                    if found.name.startswith("."):
                        hidden.append(Path(found.path))
                    elif found.is_file(follow_symlinks=False):
                        issued.add(found.name)
        else:  # names only, a Path for the few hidden ones: private/ may hold 100,000 files
            hidden = [parent / name for name in os.listdir(parent) if name.startswith(".")]
        for entry in hidden:
            if entry.is_symlink():
                continue
            if entry.name.startswith(check.SCRATCH_PREFIX) and entry.is_dir():
                if parent == profile.dir and journal.recover(profile, entry, done):
                    continue  # it owes revocations: the command's upkeep settles them
                journal.discard(entry)
                done.append(f"removed stale scratch directory {entry}")
            elif entry.name.endswith(".tmp") and entry.is_file():
                entry.unlink()
                done.append(f"removed stale temporary file {entry}")
    return issued


def _delivered_key(profile: Profile, name: str, cert_pem: bytes) -> bool:
    """Did certwiz get as far as installing this certificate's key for NAME?

    `issue` installs key, then reqs/NAME.csr, then issued/NAME.crt: a CSR holding the
    certificate's public key means the key beside it is that certificate's too.
    """
    try:
        return der.same_public_key(cert_pem, profile.csr_path(name).read_bytes())
    except OSError:
        return False


def _restore_issued(profile: Profile, done: list[str], killed: bool, present: set[str]) -> None:
    """A valid certificate in the database whose issued/NAME.crt was never installed.

    Only when its key was delivered (see _delivered_key): a certificate signed by a run
    killed before that is never paired with another key or with none; a journal says it
    is owed a withdrawal (see journal), else its name stays blocked until it is revoked.

    A missing issued/NAME.crt is looked for on every change (PRESENT: issued/'s files, from
    the listing _remove_scratch made).
    One still holding an older certificate can only be left by a certwiz run killed
    between signing and installing, and such a run leaves its scratch directory
    (`killed`): only then is every issued/NAME.crt compared with newcerts/, which reads
    two files per valid name (180,000 reads at 100,000 entries).
    """
    withdrawn = {int(o.serial, 16) for o in journal.pending(profile) if not o.delivered}
    try:
        entries = database.read(profile.index)
    except (OSError, database.DatabaseError):
        return  # verify_profile reports it
    newest: dict[str, database.Entry] = {}
    for entry in entries:
        named = entry.common_name is not None and entry.serial_int not in withdrawn
        if named and entry.status() == "valid":
            newest[str(entry.common_name)] = entry
    for name, entry in newest.items():
        if not killed and f"{name}.crt" in present:
            continue
        if not names.names_files(name):
            continue
        target, source = profile.cert_path(name), profile.newcert_path(entry.serial)
        try:
            pem = source.read_bytes() if source.is_file() else b""
            current = target.read_bytes() if target.is_file() else None
            if pem and current != pem and _delivered_key(profile, name, pem):
                write_atomic(target, pem, 0o644)
                done.append(f"restored {target} from {source}")
        except OSError as exc:  # e.g. a hand-made CN too long for a file name
            done.append(f"could not restore {target.name} from {source}: {exc.strerror}")


def _repair_fullchains(profile: Profile, done: list[str]) -> None:
    """issued/NAME.fullchain.pem whose leaf is not issued/NAME.crt and not the certificate
    of private/NAME.key, while NAME.crt is: rebuilt as NAME.crt + chain.pem, so NGINX's
    pair (fullchain, key) matches again. Left by a renew killed between those renames
    before deliveries were journalled; looked for when a killed run left its scratch
    directory (like _restore_issued's full comparison)."""
    end = b"-----END CERTIFICATE-----\n"
    for path in sorted(profile.issued.glob("*.fullchain.pem")):
        name = path.name.removesuffix(".fullchain.pem")
        crt, key = profile.cert_path(name), profile.private / f"{name}.key"
        try:
            if path.is_symlink() or not crt.is_file() or not key.is_file():
                continue
            chain, cert = path.read_bytes(), crt.read_bytes()
            if chain.split(end, 1)[0] + end == cert:
                continue  # the usual case: no key parsed
            key_pem = key.read_bytes()
            if der.key_matches(chain, key_pem) is False and der.key_matches(cert, key_pem):
                write_atomic(path, cert + profile.chain.read_bytes(), 0o644)
                done.append(f"rebuilt {path} from {crt.name}: it held another key's certificate")
        except (OSError, ValueError):
            continue


def recover(profile: Profile) -> list[str]:
    """Undo the traces of an interrupted run; call only while holding the lock.

    Every directory it deletes or writes in is checked for links first (check.refuse_links),
    on both levels of a two-level profile, before any step on either level.
    """
    levels = [profile]
    if profile.two_level or (profile.dir / ROOT_DIR).is_symlink():
        levels.append(profile.root)
    try:
        for level in levels:
            problem = not_plain_dir(level.dir) if level is not profile else None
            if problem:  # root/ replaced by a link: recovery would delete in its target
                raise ProfileCorrupt(problem)
            check.refuse_links(level)
    except ProfileCorrupt as exc:
        raise ProfileCorrupt(f"{exc}; nothing was changed") from None
    check.refuse_live_copy(profile)  # before relocating: that would make a copy a second CA
    done: list[str] = []
    killed = _has_scratch(profile)  # a killed run's scratch directory: see _restore_issued
    present: set[str] = set()
    for level in levels:  # the root too: hand-run or certwiz openssl ca on it may have died
        _relocate_cnf(level, done)
        _relocate_nginx(level, done)
        _finish_rotations(level, done)
        listed = _remove_scratch(level, done)
        if level is profile:
            present = listed
    _restore_issued(profile, done, killed, present)
    if killed:
        _repair_fullchains(profile, done)
    for item in derived.rebuild(profile, present):  # after every step that writes a source
        done.append(f"rebuilt {item.path} from {item.built_from} (a killed run left it behind)")
    return done


def _has_scratch(profile: Profile) -> bool:
    """Did a certwiz run die in this profile (its scratch directory is still there)?"""
    with os.scandir(profile.dir) as listing:
        return any(e.name.startswith(check.SCRATCH_PREFIX) for e in listing)
