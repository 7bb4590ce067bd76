"""Who is calling, from the wire: the client's network address.

Behind Envoy (`use_remote_address: true`) the address Envoy saw is the LAST entry of
`x-forwarded-for`: Envoy appends it to whatever the client sent, and the entries before
it are the client's own claims, so they are never trusted. A call made straight to a
server process (internal clients only: the workers listen behind Envoy) has no such
header and is keyed by its TCP peer.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from server import metadata

FORWARDED_FOR = "x-forwarded-for"


def client_address(context: Any) -> str:
    """The calling client's IP address (or the peer string when it has none)."""
    forwarded = (metadata.values(context, FORWARDED_FOR) or [""])[-1]
    last = forwarded.rsplit(",", 1)[-1].strip()
    return last or _peer_host(str(context.peer() or ""))


def _peer_host(peer: str) -> str:
    """`ipv4:1.2.3.4:5678` → `1.2.3.4`; `ipv6:[::1]:5678` (maybe %-encoded) → `::1`."""
    kind, _, rest = urllib.parse.unquote(peer).partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0] if rest.startswith("[") else rest
        return host.strip("[]")
    return peer or "unknown"
