"""Which `response_url`s Baton answers: Slack's own, and nothing else.

A request's `response_url` (and its copy in a modal's private_metadata) is data the
request carries: anyone who can sign a request, or a bug that echoes a value, could point
it at another host, and Baton would POST its reply there. So a URL is used only when its
origin (scheme, host, port) is Slack's, `https://hooks.slack.com`, or the origin of
`SLACK_API_URL` (the sandbox and the tests serve their response URLs there). Anything else
is dropped and logged, and the reply goes by `chat.postEphemeral` or DM instead.

The check parses the URL with httpx, the client that posts it, so what is checked is what
is reached; a URL with user info, whitespace or a backslash is refused outright, since
other parsers read those differently.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import structlog

log = structlog.get_logger("baton.slack")

SLACK_HOOKS = "https://hooks.slack.com"
# Slack's response URLs work for 30 minutes (and five replies).
LIFETIME = timedelta(minutes=30)
MAX_LENGTH = 2000

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of an absolute http(s) URL without user info; None otherwise."""
    if not url or len(url) > MAX_LENGTH or not url.isascii() or not url.isprintable() \
            or any(ch in url for ch in " \\"):
        return None
    try:
        parsed = httpx.URL(url)
        # `host` decodes an IDNA name (`xn--...`) and raises on one that is not valid IDNA
        scheme, host, port, userinfo = parsed.scheme, parsed.host, parsed.port, parsed.userinfo
    except (httpx.InvalidURL, ValueError, TypeError):  # idna's errors are ValueErrors too
        return None
    if scheme not in ("http", "https") or not host or userinfo:
        return None
    return scheme, host.lower(), port or (443 if scheme == "https" else 80)


class ResponseUrls:
    def __init__(self, slack_api_url: str | None = None) -> None:
        allowed = {origin_of(SLACK_HOOKS)}
        if slack_api_url:
            allowed.add(origin_of(slack_api_url))
        self.origins: frozenset[Origin] = frozenset(o for o in allowed if o is not None)

    def allows(self, url: object) -> bool:
        return isinstance(url, str) and origin_of(url) in self.origins

    def slack_only(self, url: object, **context: object) -> str | None:
        """`url` when it is one of Slack's; otherwise None, and the refusal logged."""
        if url is None or url == "":
            return None
        if self.allows(url):
            return str(url)
        shown = origin_of(url) if isinstance(url, str) else None
        log.warning("response_url_refused", origin="://".join(shown[:2]) if shown else "invalid",
                    why="not Slack's origin: the reply goes by chat.postEphemeral or DM",
                    **context)
        return None
