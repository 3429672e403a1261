"""Typed errors. The issuance API answers every refusal as
`{"code": CODE, "rule": RULE, "reason": SENTENCE}` with status 400/401/403/413/429 (and
500/503 for the server's own trouble); each status has its exception class."""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional

__all__ = [
    "GatehouseError",
    "GatehouseConnectionError",
    "CertificateRequestError",
    "BadRequest",
    "InvalidToken",
    "Forbidden",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "error_for_status",
]


class GatehouseError(Exception):
    """Base class of everything this package raises on purpose."""


class GatehouseConnectionError(GatehouseError):
    """The issuance endpoint or the bastion could not be reached."""


class CertificateRequestError(GatehouseError):
    """The server refused `POST /v1/certificates`."""

    def __init__(self, status: int, code: str, rule: str, reason: str, *, retry_after: Optional[int] = None,
                 body: Any = None):
        self.status = status
        #: Gatehouse's refusal shape: a stable machine code, the rule that decided, a sentence.
        self.code = code
        self.rule = rule
        self.reason = reason
        self.retry_after = retry_after
        self.body = body
        super().__init__(f"HTTP {status} {code} (rule {rule}): {reason}")

    # The names these fields had before the shared refusal shape (error, check, message).
    @property
    def error(self) -> str:
        return self.code

    @property
    def check(self) -> str:
        return self.rule

    @property
    def message(self) -> str:
        return self.reason


class BadRequest(CertificateRequestError):
    """400: the request body or public key is wrong."""


class InvalidToken(CertificateRequestError):
    """401: the token is missing, malformed, expired, from an unknown issuer, …"""


class Forbidden(CertificateRequestError):
    """403: the token is valid but grants no scope."""


class PayloadTooLarge(CertificateRequestError):
    """413: token or body over the server's limit."""


class RateLimited(CertificateRequestError):
    """429: the subject exceeded its budget; `retry_after` gives seconds when the server said."""


class ServerError(CertificateRequestError):
    """5xx: the server could not issue (keys unavailable, audit failed)."""


_BY_STATUS = {400: BadRequest, 401: InvalidToken, 403: Forbidden, 413: PayloadTooLarge, 429: RateLimited}


def error_for_status(status: int, raw: bytes, headers: Optional[Mapping[str, str]] = None) -> CertificateRequestError:
    """Maps an HTTP error answer to its exception, keeping the server's code, rule and reason."""
    body: Any = None
    error, check, message = f"http_{status}", "", ""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        # {code, rule, reason}; servers before the shared shape answered {error, check, message}.
        error = str(body.get("code") or body.get("error") or error)
        check = str(body.get("rule") or body.get("check") or "")
        message = str(body.get("reason") or body.get("message") or "")
    if not message:
        text = raw.decode("utf-8", "replace").strip() if raw else ""
        message = text[:300] or f"the server answered HTTP {status} without an explanation"
    retry_after = None
    if headers is not None:
        value = headers.get("Retry-After")
        if value is not None:
            try:
                retry_after = int(str(value).strip())
            except ValueError:
                retry_after = None
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else CertificateRequestError
    return cls(status, error, check, message, retry_after=retry_after, body=body)
