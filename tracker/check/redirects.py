"""Where a source's page really came from: redirects that leave the declared host.

Following a redirect to another host means another site's page is recorded as the policy (a
moved page, a domain sold, a hijacked link). By default the tracker follows it and flags the host
change wherever sources are shown (`sources list`, the sources page, the digest's source health);
a source with `options.offhost_redirects: refuse` records a failed check instead
(spiders.middlewares.OffHostRedirectMiddleware).
"""

from __future__ import annotations

from urllib.parse import urlparse

from tracker.store.models import Source


def url_host(url: str) -> str:
    """The host name of a URL, lower-cased, without port or scheme (http->https is not a host change)."""
    return (urlparse(url).hostname or "").lower()


def redirected_host(source: Source) -> str | None:
    """The other host a source's last fetch was redirected to, or None when it stayed on its own host."""
    if not source.final_url:
        return None
    host = url_host(source.final_url)
    return host if host != url_host(source.url) else None
