"""The headers proxy.inc removes from every proxied request: the one list.

A backend may read who the client is, or where the request came from, from any of
the conventions other proxies and load balancers use. A client that sends one of
them through certwiz's proxy would speak for the TLS layer, so each is set to ""
(nginx then sends nothing). nginx cannot remove headers by prefix, so every
spelling is listed; the underscore spellings (X_SSL_Client_Cert, which a WSGI or
CGI app reads like X-SSL-Client-Cert) are dropped by the server block itself
(`underscores_in_headers off`). The headers certwiz sets from the connection
(X-Client-*, X-Forwarded-For/-Proto/-Host/-Port, X-Real-IP) are in proxy.conf.j2.
tests/security/test_nginx_headers.py sends each of these, in both spellings,
through a real nginx. A deny-list cannot know every name: the README's rule for the
app is to trust only the headers certwiz sets, never another of these families.
"""

from __future__ import annotations

# The forwarding family: what a client says about where it came from.
FORWARDING = (
    "Forwarded",
    "Forwarded-For",
    "X-Forwarded",
    "X-Forwarded-Server",
    "X-Forwarded-Prefix",
    "X-Forwarded-Ssl",
    "X-Forwarded-Scheme",
    "X-Forwarded-Protocol",
    "X-Forwarded-Uri",
    "X-Original-Forwarded-For",
    "X-Scheme",
    "X-Url-Scheme",
    "Front-End-Https",
    "X-Original-Host",
    "X-Host",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Client-IP",
    "True-Client-IP",
    "X-Cluster-Client-IP",
    "X-ProxyUser-Ip",
    "X-Remote-Addr",
    "X-Originating-IP",
    # CDNs' and Envoy's client address
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Envoy-External-Address",
)

# Who the client is, as auth gateways (oauth2-proxy, Authelia, ...) pass it.
USER = (
    "X-Remote-User",
    "Remote-User",
    "X-Auth-User",
    "X-Authenticated-User",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Preferred-Username",
    "X-Auth-Request-Groups",
    "X-Forwarded-Groups",
    # Authelia, Authentik
    "Remote-Email",
    "Remote-Groups",
    "Remote-Name",
    # Grafana's auth proxy and the plain spellings apps read
    "X-WEBAUTH-USER",
    "X-Auth-Email",
    "X-Email",
    "X-User",
    "X-Username",
    "X-User-Email",
    # Google IAP, Cloudflare Access, AWS ALB (OIDC), Azure App Service authentication
    "X-Goog-Authenticated-User-Email",
    "X-Goog-Authenticated-User-Id",
    "Cf-Access-Authenticated-User-Email",
    "X-Amzn-Oidc-Identity",
    "X-Amzn-Oidc-Data",
    "X-MS-CLIENT-PRINCIPAL",
    "X-MS-CLIENT-PRINCIPAL-NAME",
    "X-MS-CLIENT-PRINCIPAL-ID",
    # Kubernetes' authenticating proxy and impersonation (X-Remote-Extra-* and
    # Impersonate-Extra-* are prefixes: the common keys are listed)
    "X-Remote-Group",
    "X-Remote-Extra-Scopes",
    "X-Remote-Extra-Groups",
    "Impersonate-User",
    "Impersonate-Group",
    "Impersonate-Uid",
    "Impersonate-Extra-Scopes",
    # Kong
    "X-Consumer-Username",
    "X-Consumer-ID",
    "X-Consumer-Custom-ID",
    "X-Consumer-Groups",
    "X-Authenticated-Userid",
    "X-Authenticated-Groups",
    "X-Authenticated-Scope",
    "X-Credential-Identifier",
    "X-Anonymous-Consumer",
    # authentik
    "X-Authentik-Username",
    "X-Authentik-Groups",
    "X-Authentik-Email",
    "X-Authentik-Name",
    "X-Authentik-Uid",
    "X-Authentik-Jwt",
    # oauth2-proxy's tokens, Pomerium, Google IAP, App Engine, Tailscale
    "X-Forwarded-Access-Token",
    "X-Auth-Request-Access-Token",
    "X-Pomerium-Jwt-Assertion",
    "X-Pomerium-Claim-Email",
    "X-Goog-IAP-JWT-Assertion",
    "X-AppEngine-User-Email",
    "X-AppEngine-User-Id",
    "Tailscale-User-Login",
    "Tailscale-User-Name",
    "Tailscale-User-Profile-Pic",
    # the plain spellings apps read
    "X-Groups",
    "X-Roles",
    "X-User-Id",
    "X-User-Name",
    "X-Auth-Username",
    "X-Proxy-User",
    "Proxy-User",
    "X-Webauth-Email",
    "X-Webauth-Name",
    "X-Webauth-Groups",
)

# The client certificate, as other TLS terminators hand it to a backend.
CLIENT_CERT = (
    # RFC 9440
    "Client-Cert",
    "Client-Cert-Chain",
    # Envoy
    "X-Forwarded-Client-Cert",
    # Traefik
    "X-Forwarded-Tls-Client-Cert",
    "X-Forwarded-Tls-Client-Cert-Info",
    # IIS Application Request Routing, Azure App Service
    "X-ARR-ClientCert",
    # AWS Application Load Balancer
    "X-Amzn-Mtls-Clientcert",
    "X-Amzn-Mtls-Clientcert-Leaf",
    "X-Amzn-Mtls-Clientcert-Serial-Number",
    "X-Amzn-Mtls-Clientcert-Issuer",
    "X-Amzn-Mtls-Clientcert-Subject",
    "X-Amzn-Mtls-Clientcert-Validity",
    # Cloudflare
    "Cf-Client-Cert-Der-Base64",
    "Cf-Client-Cert-Sha256",
    # Apache mod_ssl's variables passed as headers (SSL_CLIENT_*)
    "Ssl-Client-Cert",
    "Ssl-Client-Cert-Chain",
    "Ssl-Client-Verify",
    "Ssl-Client-S-Dn",
    "Ssl-Client-S-Dn-Cn",
    "Ssl-Client-I-Dn",
    "Ssl-Client-M-Serial",
    "Ssl-Client-Serial",
    # Kubernetes ingress-nginx (auth-tls-pass-certificate-to-upstream)
    "Ssl-Client-Subject-Dn",
    "Ssl-Client-Issuer-Dn",
    # nginx and HAProxy recipes (X-SSL-*)
    "X-SSL-Cert",
    "X-SSL-Client-Cert",
    "X-SSL-Client-Escaped-Cert",
    "X-SSL-Client-Chain",
    "X-SSL-Client-Verify",
    "X-SSL-Client-Verified",
    "X-SSL-Client-Used",
    "X-SSL-Client-S-DN",
    "X-SSL-Client-I-DN",
    "X-SSL-Client-DN",
    "X-SSL-Client-Subject-DN",
    "X-SSL-Client-Subject-CN",
    "X-SSL-Client-Issuer-DN",
    "X-SSL-Client-CN",
    "X-SSL-Client-Subject",
    "X-SSL-Client-Issuer",
    "X-SSL-Client-Serial",
    "X-SSL-Client-Fingerprint",
    "X-SSL-Client-SHA1",
    "X-SSL-Client-SHA256",
    "X-SSL-Client-Not-Before",
    "X-SSL-Client-Not-After",
    "X-SSL-Client-NotBefore",
    "X-SSL-Client-NotAfter",
    "X-SSL-Subject",
    "X-SSL-Issuer",
    "X-SSL-Verify",
    "X-SSL",
    # X-Client-* names certwiz does not set (Google Cloud's mTLS headers and others):
    # a backend written for them must not read a client's copy.
    "X-Client-Certificate",
    "X-Client-Cert-DN",
    "X-Client-Cert-Chain",
    "X-Client-Cert-Present",
    "X-Client-Cert-Chain-Verified",
    "X-Client-Cert-Error",
    "X-Client-Cert-Hash",
    "X-Client-Cert-Serial-Number",
    "X-Client-Cert-Spiffe",
    "X-Client-Cert-Uri-Sans",
    "X-Client-Cert-Dnsname-Sans",
    "X-Client-Cert-Valid-Not-Before",
    "X-Client-Cert-Valid-Not-After",
    "X-Client-Cert-CN",
    "X-Client-Cert-Subject-CN",
    "X-Original-Client-Cert",
    "X-Client-Cert-Verify",
    "X-Client-DN",
    "X-Client-CN",
    "X-Client-Subject",
    "X-Client-Issuer",
    "X-Client-Serial",
    "X-Client-Verified",
    "X-Client-Cert-Verified",
    "X-Client-Cert-Sha256",
    "X-Client-Ssl-Verify",
    "X-Ssl-Verified",
    "X-Tls-Client-Cert",
    # IIS ARR's "the request came over TLS"
    "X-Arr-Ssl",
)

REMOVED_HEADERS = FORWARDING + USER + CLIENT_CERT
