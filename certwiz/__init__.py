"""certwiz: a small private CA for mutual TLS on top of the openssl binary.

The library is usable on its own::

    from certwiz import ca, issue, open_profile
    ca.init("my-app", home="certs")
    profile = open_profile("my-app", home="certs")
    issue.issue_client(profile, "bot-01")
"""

__version__ = "0.1.0"  # the one place; pyproject.toml reads it

from .errors import CertwizError, InputError, OpenSSLError, StateError
from .profile import Profile, open_profile

__all__ = [
    "CertwizError",
    "InputError",
    "OpenSSLError",
    "Profile",
    "StateError",
    "__version__",
    "open_profile",
]
