"""The HTTP plumbing every adapter shares: one session, timeouts on every call, evidence of
each exchange with secrets redacted, and the constant-time checksum comparison."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

import requests

from storefront.gateways.base import EventKind, Gateway, GatewayError, Journal
from storefront.ops import observe

_SECRET_NAMES = re.compile(r"pass|secret|token|key|checksum|authorization|pan|cvc|cvv", re.I)


def redact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` fit for the evidence log: secrets replaced by a marker."""
    return {k: ("[redacted]" if _SECRET_NAMES.search(str(k)) else v) for k, v in fields.items()}


def checksums_match(given: str, expected: str) -> bool:
    """Whether a callback's checksum is the one we compute, in constant time (the comparison
    must not tell an attacker how much of it was right). As bytes: ``compare_digest`` refuses
    a str with non-ASCII characters, which a forged callback may well send."""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


class HttpGateway(Gateway):
    """Shared plumbing: one ``requests.Session`` per adapter, timeouts on every call, evidence.

    ``retry_safe`` calls (status queries, and registrations that reuse the same reference) are
    tried once more after a transport fault; everything else is tried exactly once.
    """

    def __init__(self, connect_timeout: float, read_timeout: float):
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "Storefront/0.1 (+payments)"
        observe.instrument(self.http, self.name)

    def send(
        self,
        method: str,
        url: str,
        journal: Journal,
        *,
        data: Mapping[str, Any] | None = None,
        json_body: Any = None,
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_safe: bool = False,
        log_fields: Mapping[str, Any] | None = None,
        operation: str = "",
    ) -> requests.Response:
        """Send one request and return the response, or raise :class:`GatewayError`.

        ``operation`` names the message where the URL does not (InterPay posts every message
        to one address): the evidence then reads "GetResult · POST /svra/".
        """
        shown = redact(log_fields if log_fields is not None else (data or json_body or {}))
        named = f"{operation} · " if operation else ""
        journal.record(EventKind.REQUEST, f"{named}{method} {_path(url)}", _dump(shown))
        tries = 2 if retry_safe else 1
        for attempt in range(1, tries + 1):
            try:
                response = self.http.request(
                    method,
                    url,
                    data=data,
                    json=json_body,
                    auth=auth,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                journal.record(
                    EventKind.ERROR, f"{type(exc).__name__} on try {attempt}", str(exc)[:500]
                )
                if attempt == tries:
                    raise GatewayError(f"{self.name}: no answer ({type(exc).__name__})") from exc
                continue
            journal.record(
                EventKind.RESPONSE,
                f"{named}HTTP {response.status_code} from {_path(url)}",
                _body(response),
            )
            if response.status_code >= 500 and attempt < tries:
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def _path(url: str) -> str:
    return re.sub(r"^[a-z]+://[^/]+", "", url) or "/"


def _dump(fields: Any) -> str:
    try:
        return json.dumps(fields, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    except TypeError:
        return repr(fields)


_BODY_SECRETS = re.compile(
    r'("?(?:password|PASS|secret|token|TOKEN|checksum)"?\s*[:=]\s*"?)([^"&,<\s]+)', re.I
)


def _body(response: requests.Response, limit: int = 20_000) -> str:
    text = response.text[:limit]
    return _BODY_SECRETS.sub(r"\1[redacted]", text)
