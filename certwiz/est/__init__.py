"""Enrollment over Secure Transport (RFC 7030, updated by RFC 8951): the service
certwiz runs behind NGINX (`service`), its one-time enrollment tokens (`tokens`),
and the body codecs the service and the renewal agent share (`wire`)."""
