"""The exceptions certwiz raises; each carries the exit code the CLI uses.

A library caller needs only these: `InputError` and `StateError` (2), `LockTimeout` (3),
`ProfileCorrupt` (4), `RefusedByServer` (5), any other `CertwizError` (1). Subclasses
elsewhere (`issue.NotDelivered`, `audit.NotRecorded`, `nginx.NginxError`, ...) keep these codes.
"""

from __future__ import annotations


class CertwizError(Exception):
    """Base of every error certwiz reports to a user as one line."""

    exit_code = 1


class InputError(CertwizError):
    """A value given by the user breaks a rule; nothing was written."""

    exit_code = 2

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class StateError(CertwizError):
    """The request does not fit the profile's state (no CA, already issued, ...)."""

    exit_code = 2


class OpenSSLError(CertwizError):
    """`openssl` exited non-zero; the message holds its most telling line."""

    def __init__(self, command: str, detail: str, returncode: int, stderr: str = "") -> None:
        super().__init__(f"openssl {command} failed: {detail}")
        self.command = command
        self.detail = detail
        self.returncode = returncode
        self.stderr = stderr  # all of it, for callers that tell failures apart


class ProfileCorrupt(CertwizError):
    """A profile file does not parse or contradicts another; nothing was changed.

    Raised by `check` (which re-exports it); here so that a caller catches every
    kind of failure from this one module.
    """

    exit_code = 4


class LockTimeout(CertwizError):
    """Another certwiz process held the profile's lock for too long."""

    exit_code = 3


class RefusedByServer(CertwizError):
    """A server (the EST service, or NGINX before it) answered 4xx: retrying will not help.

    Its own code, so a timer tells "try again later" (1) from "enroll again" (5).
    """

    exit_code = 5
