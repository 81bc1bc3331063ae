"""The library's front door: one `CA` object per profile, for the CLI, services and batch runs.

Everything a caller decides is a parameter, nothing is read from the
environment or printed: the lock timeout, the CA passphrase (a `Secret`, or
a provider called only when the CA key is encrypted), bundle passwords, and
warnings, which come back as values. Input is validated once, here or in the
operation module it calls, before any passphrase is asked for and before the
lock. Give `home`: left None it is found the CLI's way ($CERTWIZ_HOME,
/etc/certwiz.conf, ./certs). Example (tests/test_api_service.py runs a longer one):

    from certwiz.api import CA
    from certwiz.openssl import Secret

    ca = CA.open("my-app", "/srv/certs", lock_timeout=5, ca_passphrase=Secret("..."))
    ca.issue_server("www.example.com", days=90, sans=["10.0.0.5"])
    with ca.transaction("batch issue") as tx:       # one lock, one audit record
        for name in ("bot-1", "bot-2"):
            ca.issue_client(name, unencrypted=True, tx=tx)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from . import audit, check, inventory, issue, nginx
from .openssl import Secret
from .passphrase import Source, resolve, signing_passphrase
from .profile import Profile, open_profile
from .transaction import Transaction, transaction

if TYPE_CHECKING:  # each imported by the method that uses it: `client issue` needs none
    from . import batch, bundle, doctor, rollover, subordinate
    from . import ca as ca_init
    from . import export as exporting
    from . import renew as renewing
    from . import status as status_lib
    from .revoke import CRLRenewed, Revoked


@dataclass(frozen=True)
class Created:
    """A new profile, whether its CA key is encrypted, and what the caller should be told."""

    ca: CA
    key_encrypted: bool
    warnings: list[str] = field(default_factory=list)


class CA:
    """A profile's CA with the caller's settings: lock timeout and CA passphrase source.

    A passphrase provider is called at most once (on the first operation that
    signs with an encrypted key) and its answer kept for the next ones.
    """

    def __init__(
        self, profile: Profile, *, lock_timeout: float | None = None, ca_passphrase: Source = None
    ) -> None:
        self.profile = profile
        self.lock_timeout = lock_timeout
        self._ca_passphrase = ca_passphrase
        self._ca_secret: Secret | None = None

    @classmethod
    def open(
        cls,
        name: str,
        home: Path | str | None = None,
        *,
        lock_timeout: float | None = None,
        ca_passphrase: Source = None,
    ) -> CA:
        """An existing profile (StateError naming `ca init` when it has no CA)."""
        return cls(open_profile(name, home), lock_timeout=lock_timeout, ca_passphrase=ca_passphrase)

    @classmethod
    def create(
        cls,
        name: str,
        home: Path | str | None = None,
        options: ca_init.CAOptions | None = None,
        *,
        passphrase: Source = None,
        unencrypted: bool = False,
        lock_timeout: float | None = None,
        intermediate: bool = False,
        root_days: int | None = None,
        root_crl_days: int | None = None,
    ) -> Created:
        """A new profile; `unencrypted=True` says an unencrypted CA key is meant (no warning).

        `intermediate=True`: a root (root_days, root_crl_days; None: the defaults of
        `intermediate`) and an intermediate that
        signs (`options.days`, default 1825). A passphrase provider is called once, after
        every input was checked, and its answer serves init and later signing.
        """
        from . import ca as ca_init
        from . import intermediate as two_level

        secret = None

        def once() -> Secret | None:  # the same answer for init and later signing
            nonlocal secret
            secret = resolve(passphrase)
            return secret

        if intermediate:
            profile = two_level.init(
                name,
                home,
                options,
                once,
                root_days=root_days or two_level.DEFAULT_ROOT_DAYS,
                root_crl_days=root_crl_days or two_level.DEFAULT_ROOT_CRL_DAYS,
            )
        else:
            profile = ca_init.init(name, home, options, once)
        warnings = [] if secret is not None or unencrypted else [ca_init.UNENCRYPTED_CA_KEY]
        made = cls(profile, lock_timeout=lock_timeout, ca_passphrase=secret)
        return Created(made, secret is not None, warnings)

    @property
    def name(self) -> str:
        return self.profile.name

    def ca_secret(self) -> Secret | None:
        """The CA passphrase if the CA key needs one (InputError if none can be had)."""
        if self._ca_secret is None:
            self._ca_secret = signing_passphrase(self.profile, self._ca_passphrase)
        return self._ca_secret

    @contextlib.contextmanager
    def transaction(self, command: str, names: Iterable[str] = ()) -> Iterator[Transaction]:
        """Lock, recover, check; one audit record for everything done inside."""
        with transaction(self.profile, command, names, timeout=self.lock_timeout) as tx:
            yield tx

    def issue_server(
        self,
        name: str,
        *,
        days: int | str | timedelta = issue.DEFAULT_LEAF_DAYS,
        sans: Sequence[str] = (),
        key_type: str = "ec:P-256",
        tx: Transaction | None = None,
        allow_shared_san: bool = False,
    ) -> issue.Issued:
        """A server certificate (SAN: NAME plus `sans`) and NAME.fullchain.pem for NGINX.

        A host another valid certificate serves is refused unless `allow_shared_san`.
        """
        return issue.issue_server(
            self.profile,
            name,
            days=days,
            sans=sans,
            key_type=key_type,
            ca_passphrase=self.ca_secret,
            timeout=self.lock_timeout,
            tx=tx,
            allow_shared_san=allow_shared_san,
        )

    def issue_client(
        self,
        name: str,
        *,
        days: int | str | timedelta = issue.DEFAULT_LEAF_DAYS,
        bundle_passphrase: Source = None,
        unencrypted: bool = False,
        key_type: str = "ec:P-256",
        p12_format: str = "compat",
        tx: Transaction | None = None,
    ) -> issue.Issued:
        """A client certificate and bundle: a password is required unless `unencrypted`."""
        return issue.issue_client(
            self.profile,
            name,
            days=days,
            passphrase=bundle_passphrase,
            unencrypted=unencrypted,
            key_type=key_type,
            p12_format=p12_format,
            ca_passphrase=self.ca_secret,
            timeout=self.lock_timeout,
            tx=tx,
        )

    def issue_batch(
        self,
        rows: Sequence[batch.Row],
        *,
        bundle_passphrase: Source = None,
        key_type: str = "ec:P-256",
        progress: batch.Progress | None = None,
    ) -> batch.BatchResult:
        """A fleet of client certificates in one transaction (rows from `batch.read_rows`)."""
        from . import batch

        return batch.issue_batch(
            self.profile,
            rows,
            passphrase=bundle_passphrase,
            key_type=key_type,
            ca_passphrase=self.ca_secret,
            timeout=self.lock_timeout,
            progress=progress,
        )

    def sign_csr(
        self,
        csr: Path | bytes,
        name: str | None,
        kind: str,
        *,
        days: int | str | timedelta = issue.DEFAULT_LEAF_DAYS,
        sans: Sequence[str] = (),
        tx: Transaction | None = None,
        allow_shared_san: bool = False,
    ) -> issue.Issued:
        """A CSR made elsewhere (PEM or DER, path or bytes): only its key is used."""
        return issue.sign_csr(
            self.profile,
            csr,
            name,
            kind,
            days=days,
            sans=sans,
            ca_passphrase=self.ca_secret,
            timeout=self.lock_timeout,
            tx=tx,
            allow_shared_san=allow_shared_san,
        )

    def sign_intermediate(
        self,
        csr: Path | bytes,
        out: Path,
        **options: Any,
    ) -> subordinate.SignedIntermediate:
        """`subordinate.sign_intermediate` (pathlen, days, permitted, root_key, ...)
        with this CA's passphrase source and lock timeout."""
        from . import subordinate

        return subordinate.sign_intermediate(
            self.profile,
            csr,
            out,
            ca_passphrase=self.ca_secret,
            timeout=self.lock_timeout,
            **options,
        )

    def revoke(
        self,
        *,
        name: str | None = None,
        serial: str | None = None,
        reason: str = "unspecified",
        purge: bool = False,
        crl_days: int | None = None,
        root_key: Path | None = None,
        tx: Transaction | None = None,
    ) -> Revoked:
        """Revoke NAME's valid certificates (or SERIAL's) and publish the CRL."""
        from . import revoke

        return revoke.revoke(
            self.profile,
            name=name,
            serial=serial,
            reason=reason,
            purge=purge,
            crl_days=crl_days,
            root_key=root_key,
            ca_passphrase=self.ca_secret,
            timeout=self.lock_timeout,
            tx=tx,
        )

    def renew(
        self,
        name: str,
        kind: str,
        *,
        days: int | str | timedelta = issue.DEFAULT_LEAF_DAYS,
        grace_period: str | timedelta | None = None,
        reuse_key: bool = False,
        bundle_passphrase: Source = None,
    ) -> renewing.Renewed:
        """A new certificate for NAME; the old one superseded now or after `grace_period`.

        `bundle_passphrase` is asked only when the old key has a password (the same one).
        """
        from . import renew as renewing

        return renewing.renew(
            self.profile,
            name,
            kind,
            days=days,
            grace_period=grace_period,
            reuse_key=reuse_key,
            passphrase=bundle_passphrase,
            ca_passphrase=self.ca_secret,
            timeout=self.lock_timeout,
        )

    def revoke_intermediate(
        self, *, reason: str = "unspecified", root_key: Path | None = None
    ) -> Revoked:
        """The root revokes the intermediate: every leaf it signed stops verifying."""
        from . import revoke

        return revoke.revoke_intermediate(
            self.profile,
            reason=reason,
            root_key=root_key,
            ca_passphrase=self.ca_secret,
            timeout=self.lock_timeout,
        )

    def renew_ca(
        self, *, days: int | None = None, root: bool = False, root_key: Path | None = None
    ) -> rollover.Renewed:
        """A new certificate for the signing CA (or, `root`, the root), same key and subject."""
        from . import rollover

        return rollover.renew_ca(
            self.profile,
            days=days,
            root=root,
            root_key=root_key,
            ca_passphrase=self.ca_secret,
            timeout=self.lock_timeout,
        )

    def export(
        self,
        name: str,
        fmt: str,
        out: Path,
        *,
        force: bool = False,
        p12_format: str = "compat",
        unencrypted: bool | None = None,
        bundle_passphrase: Source = None,
        key_passphrase: Source = None,
    ) -> exporting.Exported:
        """NAME's certificate (pem, chain, der, or a fresh p12) written to OUT; see export_bytes."""
        from . import export as exporting

        return exporting.export(
            self.profile,
            name,
            fmt,
            out,
            force=force,
            p12_format=p12_format,
            password=bundle_passphrase,
            key_passphrase=key_passphrase,
            unencrypted=unencrypted,
            timeout=self.lock_timeout,
        )

    def export_bytes(
        self,
        name: str,
        fmt: str,
        *,
        p12_format: str = "compat",
        unencrypted: bool | None = None,
        bundle_passphrase: Source = None,
        key_passphrase: Source = None,
    ) -> bytes:
        """The export itself. A p12 needs `bundle_passphrase` unless `unencrypted`
        (None: unencrypted exactly when no password is given); `key_passphrase` is
        asked only for an encrypted key. A p12 export is audited: a key left."""
        from . import export as exporting

        data, _ = exporting.render(
            self.profile,
            name,
            fmt,
            p12_format=p12_format,
            password=bundle_passphrase,
            key_passphrase=key_passphrase,
            unencrypted=unencrypted,
            timeout=self.lock_timeout,
        )
        return data

    def ensure_ocsp_responder(self) -> str | None:
        """Issue or renew the OCSP responder's certificate if due; its new serial, or None.

        The CA passphrase is asked only when there is something to sign.
        """
        from .ocsp import responder

        return responder.ensure_responder(self.profile, self.ca_secret, self.lock_timeout)

    def export_root_key(self, out: Path) -> Path:
        """Move a two-level profile's root key to OUT (a new file, 0600) and off the profile."""
        from . import intermediate as two_level

        return two_level.export_root_key(self.profile, out, timeout=self.lock_timeout)

    def rebundle(
        self, name: str, *, p12_format: str = "compat", key_passphrase: Source = None
    ) -> bundle.Rebundled:
        """Re-make NAME's PKCS#12 from its key and certificate; the key's password (asked
        only for an encrypted key) stays the bundle's."""
        from . import bundle

        return bundle.rebundle(
            self.profile,
            name,
            p12_format=p12_format,
            password=key_passphrase,
            timeout=self.lock_timeout,
        )

    def onboarding_bundle(
        self, name: str, out: Path, *, bundle_passphrase: Source = None
    ) -> bundle.Bundled:
        """NAME.p12, ca.crt and a README in the new directory OUT (the password is checked)."""
        from . import bundle

        return bundle.onboarding_bundle(
            self.profile, name, out, bundle_passphrase, self.lock_timeout
        )

    def generate_crl(self, *, days: int | None = None, root_key: Path | None = None) -> CRLRenewed:
        """A fresh CRL; certificates whose grace ended are revoked first, and a two-level
        profile's root CRL is re-signed when the root key is at hand (or `root_key`)."""
        from . import revoke

        return revoke.generate_crl(
            self.profile,
            days=days,
            root_key=root_key,
            ca_passphrase=self.ca_secret,
            timeout=self.lock_timeout,
        )

    def render_nginx(
        self, server: str, upstream: str, **options: Unpack[nginx.SiteOptions]
    ) -> nginx.Rendered:
        """`nginx.render` (listen, out, tls, sni_only, ...) under this CA's lock timeout."""
        return nginx.render(self.profile, server, upstream, timeout=self.lock_timeout, **options)

    def check(self) -> check.Report:
        """The consistency report, taken under the lock (no writer is half-way)."""
        with self.profile.lock(self.lock_timeout):
            return check.verify_profile(self.profile)

    def status(self, warn: str | timedelta = "30d") -> tuple[int, list[status_lib.Item]]:
        """(Nagios code 0/1/2, `status.Item`s worst first): what a monitor must know.

        Read-only and lock-free, like `certwiz status`.
        """
        from .status import report  # read-only commands import no more than they need

        return report([self.profile], warn)

    def diagnose(
        self, nginx_conf: Path | None = None, prefix: Path | None = None
    ) -> doctor.Diagnosis:
        """`doctor`: the NGINX config (default: the rendered one) against this profile;
        a `doctor.Diagnosis` whose findings say what lets a wrong client in."""
        from .doctor import diagnose

        return diagnose(self.profile, nginx_conf, prefix)

    def certificates(self, where: inventory.Filter | None = None) -> list[inventory.Certificate]:
        """Every certificate of the profile (and what its root signed), read without the lock."""
        return inventory.certificates(self.profile, where=where, with_root=True)

    def show(self, name: str) -> dict[str, object]:
        """NAME's newest certificate (a valid one first), its files and fingerprint."""
        return inventory.show(self.profile, name)

    def audit(self) -> list[dict[str, object]]:
        """The audit log, oldest first: one record per transaction (a torn line as unreadable)."""
        return audit.read(self.profile)
