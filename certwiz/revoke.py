"""Revoking certificates and (re)generating the profile's CRL."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from . import check, database, der, intermediate, inventory, names, upkeep
from .crl import crl_version as crl_version
from .crl import regenerate_crl as regenerate_crl
from .crl import revoke_entry as revoke_entry
from .errors import InputError, StateError
from .est import invites
from .passphrase import Source, signing_passphrase
from .profile import Profile
from .transaction import Transaction, joined, transaction


@dataclass(frozen=True)
class Revoked:
    serials: list[str]
    reason: str
    crl: str
    purged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # server keys --purge leaves for NGINX
    finished: list[str] = field(default_factory=list)  # revoked by a killed run; now in the CRL
    # revoked and on the CRL already (a rerun of a revoke killed before NGINX reloaded)
    already_revoked: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CRLRenewed:
    profile: str
    crl: str
    notes: list[str] = field(default_factory=list)


def generate_crl(
    profile: Profile,
    *,
    days: int | None = None,
    ca_passphrase: Source = None,
    root_key: Path | None = None,
    timeout: float | None = None,
) -> CRLRenewed:
    """A fresh CRL; superseded certificates whose grace ended are revoked first.

    In a two-level profile the root's CRL is re-signed too whenever the root key is
    at hand (in the profile, or `root_key` once exported).
    """
    if days is not None:
        names.days(days)
    sign_root = profile.two_level and (root_key is not None or profile.root.ca_key.is_file())
    keyfile = None
    if root_key is not None or not profile.two_level:
        keyfile = intermediate.root_keyfile(profile, root_key, "re-signing the root CRL")
    secret = signing_passphrase(profile, ca_passphrase)
    # check_crl=False: it repairs a missing or damaged crl.pem
    with transaction(profile, "crl gen", timeout=timeout, check_crl=False) as tx:
        notes = []
        if sign_root:
            regenerate_crl(profile.root, secret, None, keyfile)
            notes.append(f"renewed the root CRL {profile.root.crl}")
        notes += upkeep.tidy(profile, tx, secret, crl_follows=True)
        regenerate_crl(profile, secret, days)
    crl = profile.nginx_crl
    return CRLRenewed(profile.name, str(crl), notes)


def revoke(
    profile: Profile,
    *,
    name: str | None = None,
    serial: str | None = None,
    reason: str = "unspecified",
    ca_passphrase: Source = None,
    crl_days: int | None = None,
    purge: bool = False,
    root_key: Path | None = None,
    timeout: float | None = None,
    tx: Transaction | None = None,
    command: str = "revoke",
) -> Revoked:
    """Revoke every valid certificate of NAME (or the one with SERIAL), then renew the CRL.

    A SERIAL of a CA certificate takes every valid CA certificate of its key with it
    (the ones `ca renew` replaced: the rule of revoke_intermediate, which is this on the
    profile's own intermediate).

    With `purge`, the revoked name's private key and PKCS#12 bundle are deleted
    once it has no valid certificate left: a revoked key lying around is a risk.
    A SERIAL the root of a two-level profile signed (`ca sign-intermediate`) is
    revoked by the root, which needs its key (`root_key` once exported), and the
    root's CRL and crl-chain.pem are published. `tx`: one operation of that transaction.
    """
    names.reason(reason)
    if (name is None) == (serial is None):
        raise InputError("name", "give exactly one of --name or --serial")
    wanted = names.serial(serial) if serial is not None else None
    if crl_days is not None:
        names.days(crl_days, "crl-days")
    if name is not None:
        names.client_name(name)
    by_root = None
    purpose = "revoking what the root signed"
    crossing = False  # a key compromise reaching what the root signed
    with contextlib.suppress(database.DatabaseError, OSError):  # reported under the lock
        by_root = root_target(profile, wanted)
        # before the lock too: a refusal leaves no trace
        level = profile.root if by_root else profile
        found = _targets(level, name, wanted)
        if reason in inventory.KEY_REASONS:
            up = [
                e
                for other, e in inventory.same_key(profile, level, found.revoke)
                if other != profile
            ]
            crossing = bool(up)
            if up and by_root is None:
                purpose = (
                    f"revoking {up[0].serial} ({up[0].common_name or up[0].subject}), which the "
                    "root signed for the same key,"
                )
    keyfile = None
    if by_root is not None or root_key is not None or crossing:
        keyfile = intermediate.root_keyfile(profile, root_key, purpose)
    secret = signing_passphrase(profile, ca_passphrase)
    # the root's CRL is published: its rerun finishes a root revoke killed before it
    follows = by_root is not None or crossing
    with joined(
        profile, tx, command, [name] if name else [], timeout=timeout, root_crl_follows=follows
    ) as tx:
        by_root = root_target(profile, wanted)
        level = profile.root if by_root is not None else profile
        if by_root is not None:
            keyfile = keyfile or intermediate.root_keyfile(profile, root_key, "revoking it")
            tx.note("level", "root")
        found = _targets(level, name, wanted)
        targets, unfinished = found.revoke, found.finish
        mine = targets + unfinished + found.done  # a rerun: what the killed run had taken
        # A key compromise is the key's, not one certificate's: every name carrying it goes
        # (at the root: the profile's own intermediate renewed by ca renew, a re-signed
        # subordinate), on both levels of a two-level profile (a leaf and a subordinate
        # CA certified for one key); also when a killed run of it had not reached them yet
        # (index.txt says the key was compromised, whatever --reason the rerun gives).
        recorded = [str(e.reason) for e in mine if e.reason in inventory.KEY_REASONS]
        compromise = reason if reason in inventory.KEY_REASONS else next(iter(recorded), None)
        same = inventory.same_key(profile, level, mine) if compromise else []
        # A CA certificate's: every valid certificate of that CA key goes with it, whatever
        # the reason (revoke-intermediate's rule): a bundle carries the one it was issued
        # with, and a chain through an older one would still verify.
        if wanted is not None:
            held = {e.serial_int for e in targets} | {e.serial_int for o, e in same if o == level}
            same += [(level, e) for e in _same_ca_key(level, mine) if e.serial_int not in held]
        if any(other != profile for other, _ in same):
            keyfile = keyfile or intermediate.root_keyfile(profile, root_key, "revoking it")
        for entry in targets:
            revoke_entry(level, entry, reason, secret, keyfile if by_root else None)
            tx.note_serial(entry.serial)
        for other, entry in same:
            why = compromise or reason
            revoke_entry(other, entry, why, secret, keyfile if other != profile else None)
            tx.note_serial(entry.serial)
        # an unused invite of a revoked name would enroll it again (attack round 12, F6)
        revoked_names = {e.common_name for e in mine} | {e.common_name for _, e in same}
        cancelled = invites.cancel(tx, {n for n in revoked_names | {name} if n})
        publish = bool(targets or same or unfinished)
        # the CRLs of the levels that revoked something (a key compromise may reach both)
        root_publish = publish and (by_root is not None or any(o != profile for o, _ in same))
        leaf_publish = publish and (by_root is None or any(o == profile for o, _ in same))
        finished = [e.serial for e in unfinished]
        if finished:
            tx.note("finished", finished)
        # the CRL already lists it: nothing to revoke or publish
        already = [] if publish else [e.serial for e in found.done]
        if already:
            tx.note("already_revoked", already)
        if same:
            tx.note("same_key", [e.serial for _, e in same])
        notes = [
            f"revoked {e.serial} ({e.common_name or e.subject}"
            f"{', signed by the root' if other != profile else ''}): it carries the same key"
            for other, e in same
        ]
        notes += cancelled
        if already:  # what recovery caught up (crl-chain.pem left behind by the killed run)
            notes += tx.recovered
        serials = [e.serial for e in targets] + [e.serial for _, e in same]
        if by_root is not None:
            if leaf_publish:  # a leaf of the compromised key
                notes += upkeep.tidy(profile, tx, secret, crl_follows=True)
                regenerate_crl(profile, secret, crl_days)
            else:
                notes += upkeep.tidy(profile, tx, secret)
            if root_publish:
                regenerate_crl(profile.root, secret, None, keyfile)  # and crl-chain.pem
            crl = str(profile.nginx_crl)
            return Revoked(
                serials, reason, crl, notes=notes, finished=finished, already_revoked=already
            )
        if root_publish:  # a subordinate CA of the compromised key
            regenerate_crl(profile.root, secret, None, keyfile)  # and crl-chain.pem
        if leaf_publish:
            notes += upkeep.tidy(profile, tx, secret, crl_follows=True)
            regenerate_crl(profile, secret, crl_days)
        else:  # the CRL lists it; upkeep renews it only if due (as any change)
            notes += upkeep.tidy(profile, tx, secret)
        purged, kept = _purge(profile, mine) if purge else ([], [])
        tx.note("purged", purged)
        if kept:
            tx.note("kept", kept)
    return Revoked(serials, reason, str(profile.nginx_crl), purged, notes, kept, finished, already)


def revoke_intermediate(
    profile: Profile,
    *,
    reason: str = "unspecified",
    ca_passphrase: Source = None,
    root_key: Path | None = None,
    timeout: float | None = None,
    tx: Transaction | None = None,
) -> Revoked:
    """The root revokes the intermediate: every leaf it signed stops verifying at once.

    Every valid certificate of its key is revoked, the ones `ca renew` replaced too:
    a client's bundle carries the intermediate it was issued with, and a verifier
    given that chain would otherwise still accept it. Needs the root key (`root_key`
    once it was exported). NGINX then refuses every client, because the root's CRL in
    crl-chain.pem lists the intermediate.
    """
    names.reason(reason)
    if not profile.two_level:
        raise StateError(f"profile {profile.name} has no intermediate (ca init --intermediate)")
    intermediate.root_keyfile(profile, root_key, "revoking the intermediate")  # says which
    try:
        serial = der.cert_serial(der.pem_to_der(profile.intermediate_cert.read_bytes()))
    except (OSError, ValueError) as exc:
        raise check.ProfileCorrupt(f"{profile.intermediate_cert}: {exc}") from None
    # revoke --serial of it, so a rerun finishes what a killed run left (_targets)
    return revoke(
        profile,
        serial=serial,
        reason=reason,
        ca_passphrase=ca_passphrase,
        root_key=root_key,
        timeout=timeout,
        tx=tx,
        command="ca revoke-intermediate",
    )


def root_target(profile: Profile, wanted: int | None) -> database.Entry | None:
    """The entry with serial WANTED that only the root of a two-level profile holds (an
    intermediate it signed for another system, or the profile's own), valid or not: a
    revoke of it killed before the root's CRL or before the reload is finished at the
    root like a leaf's (`_targets`)."""
    if wanted is None or not profile.two_level:
        return None
    if any(e.serial_int == wanted for e in database.read(profile.index)):
        return None
    for entry in database.read(profile.root.index):
        if entry.serial_int == wanted:
            return entry
    return None


def _same_ca_key(level: Profile, mine: list[database.Entry]) -> list[database.Entry]:
    """The valid CA certificates at LEVEL with the key of a CA certificate in MINE (the
    ones `ca renew` replaced, a re-signed subordinate): revoked with it."""
    cas = [e for e in mine if inventory.is_ca(level, e)]
    if not cas:
        return []
    return [e for _, e in inventory.same_key(level, level, cas) if inventory.is_ca(level, e)]


@dataclass(frozen=True)
class _Targets:
    """What a revoke of NAME (or SERIAL) has to do; see _targets."""

    revoke: list[database.Entry]  # valid: revoke them
    finish: list[database.Entry]  # R in index.txt, not on the CRL yet: publish it
    done: list[database.Entry]  # the latest is R and on the CRL: only NGINX may lag


def _targets(profile: Profile, name: str | None, wanted: int | None) -> _Targets:
    """What to revoke (the valid certificate with serial `wanted`, or every one of `name`),
    and what a killed run of the same revoke left to finish, so that running it again
    finishes the job instead of refusing it:

    - killed between `openssl ca -revoke` and its CRL: index.txt says R, the CRL does
      not list it (`finish`: the CRL is published);
    - killed after the CRL and before NGINX reloaded: nothing is valid, the latest
      certificate is R and on the CRL (`done`: nothing to write; --reload reloads).
    """
    entries = database.read(profile.index)
    if wanted is not None:
        mine = [e for e in entries if e.serial_int == wanted]
        targets = [e for e in mine if e.flag == "V"]
        what = f"serial {wanted:X}"
    else:
        mine = inventory.named(profile, str(name), entries)
        targets = [e for e in mine if e.status() == "valid"]
        what = str(name)
        _refuse_mixed(profile, str(name), targets)
    unfinished: list[database.Entry] = []
    done: list[database.Entry] = []
    if any(e.flag == "R" for e in mine):
        try:
            listed = der.crl_serials(check.crl_der(profile.crl))
        except (check.ProfileCorrupt, ValueError):
            listed = set()  # a damaged CRL: the change is refused under the lock, naming it
        unfinished = [e for e in mine if e.flag == "R" and e.serial_int not in listed]
        latest = mine[-1]  # index.txt order is issue order
        if not targets and not unfinished and latest.flag == "R":
            done = [latest]  # listed: it is R and not unfinished
    if not targets and not unfinished and not done:
        if name is not None:
            _refuse_ca(profile, name)
        raise StateError(
            f"{what} has no valid certificate in profile {profile.cli_name}; "
            f"see: certwiz list -p {profile.cli_name}"
        )
    return _Targets(targets, unfinished, done)


def _refuse_mixed(profile: Profile, name: str, targets: list[database.Entry]) -> None:
    """A client and a server whose names differ only in letter case (issued before issue
    refused such pairs) are both NAME's only by accident: revoking one by name must never
    take the other; refuse, naming each serial."""
    if len({e.common_name for e in targets}) < 2:
        return
    if all(inventory.serves_tls(profile, e) for e in targets):
        return  # one DNS name spelled twice: every one of them is NAME's
    found = ", ".join(f"{e.common_name} (serial {e.serial})" for e in targets)
    raise StateError(
        f"{name} names a client and a server spelled in another letter case: {found}; "
        f"revoke the one you mean by serial: certwiz revoke -p {profile.cli_name} --serial SERIAL"
    )


def _refuse_ca(profile: Profile, name: str) -> None:
    """`revoke -n` takes leaves only: a CA of that name (a subordinate CA the root signed,
    the profile's own intermediate) is refused with the command that revokes it."""
    p = profile.cli_name
    for clash in inventory.clashes(profile, name, fold=True):
        if clash.ca:
            raise StateError(
                f"{name} is a CA certificate (serial {clash.entry.serial}), not a leaf; "
                f"revoke -n never takes a CA; revoke it with: certwiz revoke -p {p} "
                f"--serial {clash.entry.serial}"
            )
    if profile.two_level:
        own = intermediate.key_certificates(profile)
        if any(e.common_name == name and e.flag == "V" for e in own):
            raise StateError(
                f"{name} is profile {p}'s own intermediate CA, not a leaf; "
                f"revoke it with: certwiz ca revoke-intermediate -p {p}"
            )


def _purge(profile: Profile, revoked: list[database.Entry]) -> tuple[list[str], list[str]]:
    """Delete key and bundle of each revoked name that has no valid certificate left.

    A server's key is kept (and returned as kept): a rendered NGINX config names it,
    and without it every later `nginx -t`, so every reload and every new CRL, fails.
    certwiz cannot know every config that names it; the operator deletes it after
    taking the server out of NGINX.
    """
    entries = database.read(profile.index)
    purged: list[str] = []
    kept: list[str] = []
    for entry in sorted(revoked, key=lambda e: e.common_name or ""):
        name = entry.common_name
        if not name or not names.names_files(name):
            continue
        if str(profile.key_path(name)) in purged + kept:
            continue
        if inventory.valid_named(profile, name, entries):
            continue
        if inventory.serves_tls(profile, entry):
            if profile.key_path(name).exists():
                kept.append(str(profile.key_path(name)))
            continue
        for path in (profile.key_path(name), profile.p12_path(name)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # unlink removes a symlink itself, never its target
                purged.append(str(path))
    return purged, kept
