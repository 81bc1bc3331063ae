"""`certwiz doctor`: find what lets a revoked or foreign client certificate in.

It reads a profile and the NGINX configuration that is meant to enforce it
(`conf`), and reports each problem as a Finding (`findings`) from the checks
in `checks`. Read-only: it takes no lock, writes nothing and connects nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..nginx import SITE_CONF
from ..profile import Profile
from .findings import Finding, exit_code


@dataclass(frozen=True)
class Diagnosis:
    profile: str
    nginx_conf: str
    files: list[str]
    findings: list[Finding]

    @property
    def exit_code(self) -> int:
        return exit_code(self.findings)

    def as_dict(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "nginx_conf": self.nginx_conf,
            "files": self.files,
            "findings": [f.as_dict() for f in self.findings],
            "errors": sum(f.severity == "error" for f in self.findings),
            "warnings": sum(f.severity == "warning" for f in self.findings),
        }


def default_conf(profile: Profile) -> Path:
    return profile.dir / "nginx" / SITE_CONF


def diagnose(
    profile: Profile, nginx_conf: Path | None = None, prefix: Path | None = None
) -> Diagnosis:
    """Every finding for PROFILE and NGINX_CONF (default: the rendered one).

    PREFIX is where nginx resolves relative paths (default: the directory of
    NGINX_CONF, as nginx does for the file given with -c).
    """
    from . import checks, conf, pki
    from .facts import profile_facts

    if nginx_conf is None:
        nginx_conf = default_conf(profile)
        if not nginx_conf.is_file():
            raise InputError(
                "nginx-conf",
                f"no rendered config at {nginx_conf}; give --nginx-conf FILE or run: "
                f"certwiz nginx render -p {profile.name} ...",
            )
    if prefix is not None and not prefix.is_dir():
        raise InputError("nginx-prefix", f"{prefix} is not a directory")
    root = conf.load(nginx_conf, prefix)
    try:
        facts = profile_facts(profile)
    except pki.Unreadable as exc:
        raise InputError("profile", str(exc)) from None
    found = facts.findings + checks.diagnose_servers(root, facts)
    files = sorted({str(d.file) for d in [root, *root.walk()]})
    return Diagnosis(profile.name, str(root.file), files, found)
