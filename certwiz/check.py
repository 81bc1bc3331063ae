"""Is a profile consistent? Checked under the lock before every change.

`openssl ca` trusts its database blindly: a truncated index.txt or serial
makes it reuse serials or drop certificates. certwiz refuses to change a
profile that does not add up, names the file and line at fault, and
overwrites nothing. Crash recovery (certwiz/recover.py) runs first and uses
the readers here; this module never imports it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import database, der, derived, journal, names
from .der import DERError, pem_to_der
from .errors import ProfileCorrupt as ProfileCorrupt
from .fsutil import not_plain_dir
from .profile import Profile, refuse_foreign
from .render import UnsafeValue, nginx_escape

SCRATCH_PREFIX = journal.SCRATCH_PREFIX
# openssl ca rewrites these as NAME.new, then renames NAME -> NAME.old, NAME.new -> NAME.
ROTATED = ("index.txt", "index.txt.attr", "serial", "crlnumber")
_PEM_LINE = re.compile(r"[A-Za-z0-9+/]{1,76}={0,2}")


@dataclass
class Report:
    """What `verify_profile` found: hard problems, and revocations the CRL lacks."""

    problems: list[str] = field(default_factory=list)
    missing_from_crl: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # killed runs' journals (journal.py)
    # the same at the root of a two-level profile: only a change that signs its CRL fixes it
    root_missing_from_crl: list[str] = field(default_factory=list)
    # PROFILE/nginx sites that name another directory and cannot be rewritten for this
    # one: reported, not a reason to refuse a change (--reload's check guards NGINX)
    stale_sites: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and not self.missing_from_crl
            and not self.unfinished
            and not self.root_missing_from_crl
            and not self.stale_sites
        )

    def root_messages(self, profile: Profile) -> list[str]:
        return [
            f"revoked serial {s} is not in {profile.root.crl}; run: {crl_gen(profile.root)}"
            for s in self.root_missing_from_crl
        ]

    def messages(self, profile: Profile) -> list[str]:
        """Every finding as one line a user can act on."""
        return (
            self.problems
            + [
                f"revoked serial {s} is not in {profile.crl}; run: {crl_gen(profile)}"
                for s in self.missing_from_crl
            ]
            + self.root_messages(profile)
            + self.unfinished
            + self.stale_sites
        )


def _hex_file(path: Path) -> int:
    """The one hex number in serial/crlnumber; ProfileCorrupt naming line 1 otherwise."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise ProfileCorrupt(f"{path}: missing") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise ProfileCorrupt(f"{path}:1: not readable as ASCII ({exc})") from None
    lines = text.splitlines()
    if len(lines) != 1 or not re.fullmatch(r"[0-9A-Fa-f]{2,64}", lines[0]):
        raise ProfileCorrupt(f"{path}:1: expected one line holding a hexadecimal number")
    return int(lines[0], 16)


def crl_der(path: Path) -> bytes:
    """The DER inside crl.pem, checking the PEM armour line by line."""
    try:
        lines = path.read_bytes().decode("ascii").splitlines()
    except FileNotFoundError:
        raise ProfileCorrupt(f"{path}: missing") from None
    except UnicodeDecodeError:
        raise ProfileCorrupt(f"{path}: not ASCII text (PEM expected)") from None
    if not lines or lines[0] != "-----BEGIN X509 CRL-----":
        raise ProfileCorrupt(f"{path}:1: expected -----BEGIN X509 CRL-----")
    body: list[str] = []
    for number, line in enumerate(lines[1:], 2):
        if line == "-----END X509 CRL-----":
            if number != len(lines):
                raise ProfileCorrupt(f"{path}:{number + 1}: text after the END line")
            break
        if not _PEM_LINE.fullmatch(line):
            raise ProfileCorrupt(f"{path}:{number}: not a base64 line")
        body.append(line)
    else:
        raise ProfileCorrupt(f"{path}:{len(lines) + 1}: truncated, no -----END X509 CRL-----")
    try:
        return base64.b64decode("".join(body), validate=True)
    except binascii.Error as exc:
        raise ProfileCorrupt(f"{path}: bad base64 ({exc})") from None


def _crl_signed_by(profile: Profile, signer: Path) -> None:
    """crl.pem must carry the signature of SIGNER (ca.crt, or the intermediate's).

    Checked in process with cryptography; the tests keep `openssl verify -crl_check`
    as the second opinion.
    """
    try:
        problem = der.crl_signature_problem(crl_der(profile.crl), signer.read_bytes())
    except OSError as exc:
        problem = str(exc.strerror)
    if problem is not None:
        raise ProfileCorrupt(
            f"{profile.crl}: not a CRL signed by {signer} ({problem}); "
            f"repair it: {crl_gen(profile)}"
        )


_DIR_LINE = re.compile(r"dir\s*=\s*(.*?)\s*")


def cnf_dir_line(text: str) -> tuple[int, str] | None:
    """(index, directory) of openssl.cnf's top-level `dir =` line, unescaped."""
    for number, line in enumerate(text.split("\n")):
        if line.lstrip().startswith("["):
            return None
        match = _DIR_LINE.fullmatch(line.strip())
        if match:
            return number, re.sub(r"\\(.)", r"\1", match.group(1))
    return None


def misplaced_cnf(profile: Profile) -> str | None:
    """The directory openssl.cnf names if it is not this profile's (a copied or moved
    profile: openssl would work on the old directory's database); None if it is."""
    try:
        found = cnf_dir_line(profile.cnf.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None  # verify_profile reports a missing or unreadable config
    if found is None or found[1] == str(profile.dir):
        return None
    with contextlib.suppress(OSError):
        if os.path.samefile(found[1], profile.dir):  # the same directory by another path
            return None
    return found[1]


def _names_dir(profile: Profile, directory: Path) -> bool:
    """Does PROFILE's openssl.cnf name DIRECTORY (PROFILE is a copy of what lives there)?"""
    old = misplaced_cnf(profile)
    if old is None:
        return False
    if old == str(directory):
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(old, directory)
    return False


def _ca_key_set(profile: Profile) -> set[bytes]:
    """The keys of PROFILE's CA certificates: ca.crt, and intermediate.crt if it has one."""
    found: set[bytes] = set()
    for path in (profile.ca_cert, profile.intermediate_cert):
        with contextlib.suppress(OSError, ValueError):
            found.update(der.key_of_cert(cert) for cert in der.pem_certificates(path.read_bytes()))
    return found


def live_copy(profile: Profile) -> str | None:
    """Why PROFILE must not change: another profile of its home holds its CA (a key of
    ca.crt or intermediate.crt), so the two would sign the same serials with one key and
    revoke into two CRLs (a `cp -a HOME/p HOME/p-backup`, attack round 10, F10). The
    original (the one the other's openssl.cnf names: that one is the copy) is not
    refused; when neither names the other, both are. None when no other profile does.
    A copy whose original is gone (mv, a restored backup) is not one: recovery points
    it at where it is now."""
    if profile.level == "root":
        return None
    mine: set[bytes] | None = None
    try:
        with os.scandir(profile.home) as listing:
            others = sorted(e.name for e in listing if e.name != profile.name and e.is_dir())
    except OSError:
        return None
    for name in others:
        other = Profile(name, profile.home)
        if not names.PROFILE_RE.fullmatch(name) or not other.has_ca():  # as `profiles`
            continue
        with contextlib.suppress(OSError):
            if os.path.samefile(other.dir, profile.dir):
                continue  # the same directory by another name
        if mine is None:
            mine = _ca_key_set(profile)
        if not mine or not mine & _ca_key_set(other):
            continue
        if _names_dir(other, profile.dir):
            continue  # the other is the copy: this is the original
        shared = "both would sign the same serials with one key and revoke into different CRLs"
        if profile.name.startswith("."):  # `ca adopt` building it (HOME/.NAME.init-*)
            return (
                f"profile {other.name} ({other.dir}) already holds this CA (its key): "
                f"{shared}; use profile {other.name}"
            )
        if _names_dir(profile, other.dir):
            return (
                f"{profile.dir} is a copy of profile {other.name} ({other.dir}): {shared}; "
                f"if it is a backup, keep it outside the certwiz home (mv {profile.dir} "
                f"BACKUPDIR); to work on this copy instead, move {other.dir} out of the home first"
            )
        return (
            f"{profile.dir} and profile {other.name} ({other.dir}) hold the same CA key: "
            f"{shared}; keep one of them: move the other (a backup) out of the certwiz home "
            f"{profile.home}"
        )
    return _copy_of_elsewhere(profile, mine)


def _copy_of_elsewhere(profile: Profile, mine: set[bytes] | None) -> str | None:
    """Why PROFILE is a live copy of the directory its openssl.cnf names, or None: that
    directory, in any home, still exists and holds the same CA (a `cp -a HOME HOME2`
    while HOME is in use; attack round 12, F5: the copy issued production's next serial
    and production's nginx admitted it). Gone (mv, a backup restored after a loss) or
    holding another CA, it is not the original: recovery repoints openssl.cnf."""
    old = misplaced_cnf(profile)
    if old is None or not Path(old).is_absolute():
        return None
    original = Profile(Path(old).name, Path(old).parent)
    try:
        if not original.has_ca() or os.path.samefile(original.dir, profile.dir):
            return None
    except OSError:
        return None
    mine = _ca_key_set(profile) if mine is None else mine
    if not mine or not mine & _ca_key_set(original):
        return None
    return (
        f"{profile.dir} is a copy of {original.dir} (its openssl.cnf names it, and it "
        "holds this CA's key): both would sign the same serials with one key and revoke "
        f"into different CRLs; work on {original.dir}, or, if this is a backup, keep it "
        f"outside any certwiz home; to work on this copy instead, move {original.dir} away first"
    )


def refuse_live_copy(profile: Profile) -> None:
    """ProfileCorrupt (exit 4) when `live_copy` has a reason: every change (recovery runs
    first) and every long-running reader (`ocsp serve`, `certwiz serve`: a responder on a
    copy answered "good" for what the original revoked, attack round 11, F4) refuse it."""
    copy = live_copy(profile)
    if copy is not None:
        raise ProfileCorrupt(f"{copy}; nothing was changed")


# The first line of a site `nginx render` wrote, and the directive that names the CA file
# (ca.crt or chain.pem, both directly in the profile directory it was rendered for).
SITE_HEADER = re.compile(r"# mTLS reverse proxy for (\S+) \(certwiz profile (.+)\)\.")
_CLIENT_CA = re.compile(r'^\s*ssl_client_certificate "([^"]*)";', re.M)
NGINX_DIR = "nginx"  # where `nginx render` writes by default, inside the profile


def ca_keys(path: Path) -> tuple[bytes, ...] | None:
    """The public keys (DER SPKI) of the certificates in PATH, in order: a CA file as nginx
    reads it. A renewed CA (`ca renew`: same key) has the same; None if unreadable."""
    try:
        return tuple(der.spki(cert) for cert in der.pem_certificates(path.read_bytes()))
    except (OSError, ValueError, DERError):
        return None


def nginx_files(profile: Profile) -> list[Path]:
    """The plain files of PROFILE/nginx/ (none if it is missing or a link)."""
    out = profile.dir / NGINX_DIR
    if not_plain_dir(out):
        return []
    with contextlib.suppress(OSError):
        return sorted(p for p in out.iterdir() if p.is_file() and not p.is_symlink())
    return []


def misplaced_nginx(profile: Profile) -> list[tuple[Path, str]]:
    """(site file, directory it names) for each site `nginx render` wrote into PROFILE/nginx/
    that names another profile directory: a copy of this one (a copied or moved profile),
    so NGINX would load the other's CA, CRL and server key. A site of another CA rendered
    here (`--out`) is not this profile's and is left out."""
    found = []
    for path in nginx_files(profile):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        header, ca_file = SITE_HEADER.match(text), _CLIENT_CA.search(text)
        if header is None or ca_file is None:
            continue
        named = Path(ca_file.group(1))
        old = named.parent
        if old == profile.dir:
            continue
        with contextlib.suppress(OSError):
            if os.path.samefile(old, profile.dir):
                continue
        if named.exists():  # the old directory still there: a copy has the same CA keys
            keys = ca_keys(named)
            mine = keys is not None and keys == ca_keys(profile.chain)
        else:  # moved away: rendered for the profile that lived there
            mine = header.group(2) == old.name
        if mine:
            found.append((path, str(old)))
    return found


def nginx_unsafe(path: Path) -> str | None:
    """Why PATH cannot go into an nginx config (`nginx render` refuses it too), or None."""
    try:
        nginx_escape(path)
    except UnsafeValue as exc:
        return exc.rule
    return None


def crl_gen(profile: Profile) -> str:
    """The command that rewrites PROFILE's CRL (root/ of a two-level profile: its parent's)."""
    command = f"certwiz crl gen -p {profile.cli_name}"
    if profile.level == "root" and not profile.ca_key.exists():
        return f"{command} --root-key FILE"
    return command


def refuse_links(profile: Profile) -> None:
    """ProfileCorrupt if a link was planted where certwiz or openssl would write or delete.

    Checked before anything else under the lock, recovery included: a directory
    replaced by a link would make recovery delete and write in the link's target.
    """
    refuse_foreign(profile)
    for sub in (profile.private, profile.newcerts, profile.issued, profile.reqs):
        problem = not_plain_dir(sub)
        if problem:
            raise ProfileCorrupt(problem)
    # openssl ca writes newcerts/SERIAL.pem and NAME.new with fopen(): it would follow a
    # planted link, and its rename would then move the link into place.
    database_files = [profile.dir / base for base in ROTATED]
    planted = [
        p
        for p in (
            profile.dir / "audit.log",
            profile.cnf,
            profile.ca_cert,
            profile.ca_key,
            *database_files,
            *(path.with_name(path.name + ".new") for path in database_files),
        )
        if p.is_symlink()
    ]
    if planted:
        raise ProfileCorrupt(f"{planted[0]}: is a symlink; certwiz never writes through one")


def _require_files(profile: Profile, key_offline: bool) -> None:
    """What every check needs in place: config, CA certificate(s) and key, no half-rotated
    database file, no planted link (ProfileCorrupt naming the file otherwise)."""
    needed = [profile.cnf, profile.ca_cert] + ([] if key_offline else [profile.ca_key])
    if profile.two_level:
        needed.append(profile.intermediate_cert)
    for path in needed:
        if not path.is_file():
            raise ProfileCorrupt(f"{path}: missing")
    for base in ROTATED:
        path = profile.dir / base
        if not path.exists() and path.with_name(base + ".new").is_file():
            raise ProfileCorrupt(
                f"{path}: missing, {base}.new is there: an interrupted "
                "openssl ca; the next change restores it"
            )
    refuse_links(profile)


def _cross_check(
    profile: Profile,
    entries: list[database.Entry],
    next_serial: int,
    revoked_in_crl: set[int] | None,
    report: Report,
) -> None:
    """index.txt against serial, newcerts/ and the CRL, in one pass over the entries
    (the certificate files are listed once, not stat'ed each)."""
    in_newcerts = file_names(profile.newcerts)
    seen: dict[int, int] = {}
    for number, entry in enumerate(entries, 1):
        serial = int(entry.serial, 16)
        if serial in seen:
            report.problems.append(
                f"{profile.index}:{number}: serial {entry.serial} repeats line {seen[serial]}"
            )
        seen[serial] = number
        if serial >= next_serial:
            report.problems.append(
                f"{profile.serial}:1: next serial {next_serial:X} is not "
                f"above serial {entry.serial} issued at {profile.index}:{number}"
            )
        if entry.flag == "V" and f"{entry.serial}.pem" not in in_newcerts:
            report.problems.append(
                f"{profile.index}:{number}: {profile.newcert_path(entry.serial)} is missing"
            )
        if entry.flag == "R" and revoked_in_crl is not None and serial not in revoked_in_crl:
            report.missing_from_crl.append(entry.serial)


def verify_profile(
    profile: Profile, *, check_crl: bool = True, key_offline: bool = False, copies: bool = True
) -> Report:
    """Check index.txt, serial, crlnumber and crl.pem against each other.

    Raises ProfileCorrupt on the first file that does not parse; collects
    cross-file contradictions in the report. `check_crl=False` is for `crl gen`,
    which replaces a missing or damaged crl.pem and must not be refused for it.
    `copies=False`: the copies built from other files (derived) are not compared, for a
    change, whose recovery has just rebuilt them (which lists issued/ once, not twice).
    """
    report = Report()
    _require_files(profile, key_offline)
    copy = live_copy(profile)
    if copy is not None:  # changes are refused: nothing is re-rendered
        report.problems.append(copy)
    elsewhere = None if copy else misplaced_cnf(profile)
    if elsewhere is not None:
        report.problems.append(
            f"{profile.cnf}: names the directory {elsewhere}, not this profile's {profile.dir} "
            "(a copied or moved profile): openssl would work on that one's database; "
            "the next change re-renders it"
        )
    unsafe = nginx_unsafe(profile.dir)
    for site, old in [] if copy else misplaced_nginx(profile):
        line = (
            f"{site}: names the directory {old}, not this profile's {profile.dir} "
            "(a copied or moved profile): nginx would enforce that one's CA and CRL; "
        )
        if unsafe:
            report.stale_sites.append(
                f"{line}it cannot name this directory ({unsafe}): move the profile to a "
                "path without that character, or delete the site"
            )
        else:
            report.problems.append(f"{line}the next change re-renders it")
    if profile.private.stat().st_mode & 0o077:
        raise ProfileCorrupt(f"{profile.private}: readable by others; chmod 700 it")
    try:
        entries = database.read(profile.index)
    except FileNotFoundError:
        raise ProfileCorrupt(f"{profile.index}: missing") from None
    except database.DatabaseError as exc:
        raise ProfileCorrupt(str(exc)) from None
    next_serial = _hex_file(profile.serial)
    _hex_file(profile.crlnumber)
    # openssl ca fopen()s only the next serial's file (even-length hex, as it prints it).
    next_hex = f"{next_serial:X}"
    next_cert = profile.newcert_path("0" * (len(next_hex) % 2) + next_hex)
    if next_cert.is_symlink():
        raise ProfileCorrupt(f"{next_cert}: is a symlink; certwiz never writes through one")
    revoked_in_crl: set[int] | None = None
    if check_crl:
        try:
            revoked_in_crl = der.crl_serials(crl_der(profile.crl))
        except (DERError, IndexError, ValueError) as exc:
            raise ProfileCorrupt(f"{profile.crl}: not a DER CRL ({exc})") from None
        except ProfileCorrupt as exc:
            raise ProfileCorrupt(f"{exc}; repair it: {crl_gen(profile)}") from None
        _crl_signed_by(profile, profile.intermediate_cert if profile.two_level else profile.ca_cert)
    _cross_check(profile, entries, next_serial, revoked_in_crl, report)
    if copies:
        report.problems += [
            f"{item.problem}; run: {crl_gen(profile)}" for item in derived.behind(profile)
        ]
    report.unfinished = [_unfinished(profile, owed) for owed in journal.pending(profile)]
    if profile.two_level:
        _verify_root(profile, report, check_crl)
    return report


def _unfinished(profile: Profile, owed: journal.Owed) -> str:
    if not owed.delivered:
        what = "never delivered: it is revoked"
    elif owed.old is not None:
        what = "its files are installed, the certificate it renews superseded"
    else:
        what = "its files are installed"
    return (
        f"{owed.work}: a run killed after signing serial {owed.serial} left its journal "
        f"({what} by the next change); run: {crl_gen(profile)}"
    )


def _verify_root(profile: Profile, report: Report, check_crl: bool) -> None:
    """The root of a two-level profile is checked like a profile; its key may be offline."""
    root = profile.root
    found = verify_profile(root, check_crl=check_crl, key_offline=True)
    report.problems += found.problems
    report.root_missing_from_crl += found.missing_from_crl


def file_names(directory: Path) -> set[str]:
    """The names of the regular files (not links) in DIRECTORY: one listing, no stat each."""
    try:
        with os.scandir(directory) as found:
            return {e.name for e in found if e.is_file(follow_symlinks=False)}
    except FileNotFoundError:
        return set()


def require_consistent(
    profile: Profile, *, check_crl: bool = True, root_crl_follows: bool = False
) -> Report:
    """verify_profile, raising ProfileCorrupt when a hard problem was found.

    A revocation the root's CRL lacks (a root revoke killed before its CRL) is one,
    unless ROOT_CRL_FOLLOWS: the change publishes the root's CRL (revoke of what the
    root signed: its rerun finishes the job)."""
    try:
        # copies=False: recover, just before, rebuilt every copy from whole sources
        report = verify_profile(profile, check_crl=check_crl, copies=False)
    except ProfileCorrupt as exc:
        raise ProfileCorrupt(f"{exc}; nothing was changed") from None
    problems = report.problems + ([] if root_crl_follows else report.root_messages(profile))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ProfileCorrupt(
            f"{problems[0]}{more}; nothing was changed; see: certwiz check -p {profile.cli_name}"
        )
    return report


def require_whole(*paths: Path) -> None:
    """Refuse files openssl cut short: it exits 0 even when a write fails (full disk).

    PEM: armour from BEGIN to END with base64 in between; DER (PKCS#12): one
    element whose length is the file's length.
    """
    for path in paths:
        data = path.read_bytes()
        try:
            if data.startswith(b"-----BEGIN "):
                lines = data.decode("ascii").split("\n")
                body = [x for x in lines[1:] if x and not x.startswith("-----END ")]
                if not any(x.startswith("-----END ") for x in lines) or not body:
                    raise ValueError("no END line")
                base64.b64decode("".join(x for x in body if ":" not in x), validate=True)
            else:
                if der.outer_length(data) != len(data):
                    raise ValueError("length mismatch")
        except (ValueError, DERError, binascii.Error, UnicodeDecodeError) as exc:
            raise ProfileCorrupt(
                f"{path.name}: openssl wrote it incompletely (is the disk "
                f"full?): {exc}; nothing was installed"
            ) from None


def _damage(profile: Profile, before: list[database.Entry]) -> str | None:
    """What is wrong with the database files after an `openssl ca` run, if anything."""
    try:
        after = database.read(profile.index)
        _hex_file(profile.serial)
        _hex_file(profile.crlnumber)
    except (OSError, database.DatabaseError, ProfileCorrupt) as exc:
        return str(exc)
    serials = {e.serial_int for e in after}
    lost = [e.serial for e in before if e.serial_int not in serials]
    if lost or len(after) < len(before):
        return f"{profile.index}: {len(after)} entries where {len(before)} were"
    old = {e.serial_int for e in before}
    for entry in after:
        if entry.serial_int not in old:
            try:
                pem_to_der(profile.newcert_path(entry.serial).read_bytes())
            except (OSError, DERError, ValueError):
                return f"{profile.newcert_path(entry.serial)}: not a whole certificate"
    return None


@contextlib.contextmanager
def guarded(profile: Profile) -> Iterator[None]:
    """Roll back index.txt, serial and crlnumber if `openssl ca` leaves them damaged.

    openssl 3.0 does not check its writes: on a full disk `openssl ca -revoke`
    exits 0 after replacing index.txt with an empty file. Before it runs, each
    file gets a hard link (no space needed); if the files do not add up
    afterwards, the links are renamed back and the change is refused.
    """
    before = database.read(profile.index)
    keep: dict[Path, Path] = {}
    try:
        for base in ROTATED:
            path = profile.dir / base
            link = profile.dir / f".{base}.keep.tmp"
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            with contextlib.suppress(OSError):  # no hard links here: detect, cannot roll back
                os.link(path, link)
                keep[path] = link
        failure: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            failure = exc
        problem = _damage(profile, before)
        if problem is not None:
            for path, link in keep.items():
                os.replace(link, path)
            restored = "the previous files were restored" if keep else "restore by hand"
            raise ProfileCorrupt(
                f"{problem}: openssl left a damaged database (is the disk "
                f"full?); {restored}; nothing was changed"
            ) from failure
        if failure is not None:
            raise failure
    finally:
        for link in keep.values():
            with contextlib.suppress(OSError):
                link.unlink()
