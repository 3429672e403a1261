"""Gatehouse client: trade an OIDC token for a short-lived SSH certificate, run commands on
targets through the Gatehouse bastion, and read its denials. AutoGen integration in
`gatehouse_client.autogen` (imported lazily: the core needs only asyncssh)."""
from .certificates import (
    Certificate,
    certificate_path_for,
    ensure_key,
    make_context,
    obtain_certificate,
    obtain_certificate_async,
)
from .errors import (
    BadRequest,
    CertificateRequestError,
    Forbidden,
    GatehouseConnectionError,
    GatehouseError,
    InvalidToken,
    PayloadTooLarge,
    RateLimited,
    ServerError,
)
from .approvals import APPROVAL_EXIT_STATUS, Approval, parse_approval, wait_for_approval
from .ssh import DENIED_EXIT_STATUS, Denial, RunResult, parse_denial, run, run_sync

__version__ = "0.1.0"

__all__ = [
    "Certificate", "certificate_path_for", "ensure_key", "make_context", "obtain_certificate",
    "obtain_certificate_async", "BadRequest", "CertificateRequestError", "Forbidden",
    "GatehouseConnectionError", "GatehouseError", "InvalidToken", "PayloadTooLarge", "RateLimited",
    "ServerError", "DENIED_EXIT_STATUS", "Denial", "RunResult", "parse_denial", "run", "run_sync",
    "APPROVAL_EXIT_STATUS", "Approval", "parse_approval", "wait_for_approval",
    "gatehouse_tool", "GatehouseCodeExecutor", "GatehouseConnection",
]


def __getattr__(name):
    if name in ("gatehouse_tool", "GatehouseCodeExecutor", "GatehouseConnection"):
        from . import autogen

        return getattr(autogen, name)
    raise AttributeError(name)
