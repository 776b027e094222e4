"""Cross-site refusal for what changes something (`service.api.auth.operator_only`): a browser sends an
operator's Basic credentials along with any request to Warden, whichever site made it, so a page
elsewhere could otherwise post a form to the dashboard's routes. Browsers say where a request comes
from, and Warden refuses (403, whatever the credentials) one that comes from anywhere but Warden's own
pages:

- `Sec-Fetch-Site` (every current browser sends it): `same-origin` (the dashboard's own pages) and
  `none` (the user's own doing: a bookmark, the address bar) pass; `cross-site` is refused, and so is
  `same-site`, another origin of the same registrable domain (a sibling host under the company's
  domain, another port of this host): Warden serves its forms from its own origin only, and a sibling
  host (a wiki, a preview deployment, user content) is no more trusted to act than any other site.
  A value Warden does not know is refused too.
- `Origin` (older browsers send it without the former): it must be this very site. Its host and port
  are the `Host` header's (a missing port being the default of the Origin's scheme). Its scheme is the
  request's as uvicorn has it (`X-Forwarded-Proto` counts only from the addresses in
  `FORWARDED_ALLOW_IPS`, loopback by default), or `https` where Warden is reached over plain HTTP: TLS
  ended at a proxy whose headers uvicorn does not trust; an `http` page is never taken for an `https`
  Warden's own. `X-Forwarded-Host` is never read: nothing vouches for it. `Origin: null` (a sandboxed
  frame, a `file:` page) is another site.

A request with neither header (curl, the CLI, a script) is not a browser's and passes: its credentials
were sent on purpose."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

PASSING_FETCH_SITES = ("same-origin", "none")
DEFAULT_PORTS = {"http": 80, "https": 443}


def cross_site_refusal(request: Request) -> str | None:
    """Why the request is refused as another site's (None when it is Warden's own, or no browser's)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in PASSING_FETCH_SITES:
        return (
            "refused: this request comes from another site (its Sec-Fetch-Site is not same-origin); "
            "only Warden's own pages, the CLI or a script may change something"
        )
    origin = request.headers.get("origin")
    if origin is not None and not same_origin(origin, request):
        return (
            "refused: this request comes from another site (its Origin is not this Warden's); "
            "only Warden's own pages, the CLI or a script may change something"
        )
    return None


def same_origin(origin: str, request: Request) -> bool:
    """Whether `origin` (an Origin header's value) is the origin `request` was sent to."""
    try:
        theirs = urlsplit(origin.strip())
        ours = urlsplit(f"//{request.headers.get('host', '')}")
        default = DEFAULT_PORTS.get(theirs.scheme)
        if default is None or not theirs.hostname or theirs.path or theirs.query or theirs.username:
            return False
        their_port, our_port = theirs.port or default, ours.port or default
    except ValueError:  # a port that is not a number, or out of range
        return False
    scheme = request.url.scheme
    scheme_ok = theirs.scheme == scheme or (theirs.scheme == "https" and scheme == "http")
    return scheme_ok and theirs.hostname == ours.hostname and their_port == our_port
