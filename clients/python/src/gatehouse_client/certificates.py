"""Trading an OIDC token for a short-lived OpenSSH user certificate: `POST /v1/certificates`."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from .errors import (
    CertificateRequestError,
    GatehouseConnectionError,
    error_for_status,
)

__all__ = [
    "Certificate",
    "ensure_key",
    "make_context",
    "obtain_certificate",
    "obtain_certificate_async",
    "certificate_path_for",
]

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class Certificate:
    """What the server granted, as it answered (plus where the certificate was written)."""

    certificate: str
    serial: int
    key_id: str
    principals: list[str]
    scopes: list[str]
    context: str
    valid_after: int
    valid_before: int
    key_path: Path
    certificate_path: Path
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def lifetime(self) -> int:
        return self.valid_before - self.valid_after


def certificate_path_for(key_path: PathLike) -> Path:
    """OpenSSH's convention: the certificate of key `id_x` is `id_x-cert.pub`."""
    return Path(f"{os.fspath(key_path)}-cert.pub")


def ensure_key(key_path: PathLike) -> str:
    """Generates an Ed25519 key at `key_path` (0600, OpenSSH format, `.pub` beside it) unless one
    exists, and returns the public key as one OpenSSH line."""
    import asyncssh  # imported here so the HTTP part works without it installed

    path = Path(key_path)
    if path.exists():
        key = asyncssh.read_private_key(str(path))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="gatehouse-agent")
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.export_private_key("openssh"))
        Path(f"{path}.pub").write_bytes(key.export_public_key("openssh"))
    return key.export_public_key("openssh").decode().strip()


def make_context(
    task_id: Optional[str] = None,
    prompt: Optional[str] = None,
    reason: Optional[str] = None,
    *,
    send_prompt: bool = False,
) -> dict:
    """A request context: the prompt is hashed (SHA-256, hex) and the hash goes into the
    certificate; its text is sent only with `send_prompt=True`, and the server then keeps it in
    the issuance audit record (as its `issuance.audit_prompt` says: full, hash or none) so an
    auditor can read it beside every session of the task."""
    ctx: dict[str, Any] = {}
    if task_id is not None:
        ctx["task_id"] = task_id
    if prompt is not None:
        ctx["prompt_sha256"] = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        if send_prompt:
            ctx["prompt"] = prompt
    if reason is not None:
        ctx["reason"] = reason
    return ctx


def _normalise_context(context: Optional[Mapping[str, Any]]) -> Optional[dict]:
    if context is None:
        return None
    ctx = {k: v for k, v in dict(context).items() if v is not None}
    if "prompt" in ctx and "prompt_sha256" not in ctx:
        ctx["prompt_sha256"] = hashlib.sha256(str(ctx["prompt"]).encode("utf-8")).hexdigest()
    return ctx


def _string_list(name: str, values: Optional[Sequence[str]]) -> Optional[list[str]]:
    if values is None:
        return None
    if isinstance(values, str):
        raise ValueError(f"{name} must be a list of strings, not one string")
    out = list(values)
    if not out or not all(isinstance(v, str) and v for v in out):
        raise ValueError(f"{name} must be a non-empty list of non-empty strings")
    return out


def build_request(
    public_key: str,
    ttl: Optional[int] = None,
    context: Optional[Mapping[str, Any]] = None,
    *,
    scopes: Optional[Sequence[str]] = None,
    targets: Optional[Sequence[str]] = None,
    commands: Optional[Sequence[str]] = None,
    max_sessions: Optional[int] = None,
) -> dict:
    """The request body. `scopes`, `targets`, `commands` and `max_sessions` narrow the
    certificate to one task; the server refuses (403 `not_granted`) anything the token does not
    grant rather than trimming it."""
    body: dict[str, Any] = {"public_key": public_key}
    if ttl is not None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
        body["ttl"] = ttl
    ctx = _normalise_context(context)
    if ctx is not None:
        body["context"] = ctx
    for name, values in (("scopes", scopes), ("targets", targets), ("commands", commands)):
        checked = _string_list(name, values)
        if checked is not None:
            body[name] = checked
    if max_sessions is not None:
        if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions <= 0:
            raise ValueError(f"max_sessions must be a positive whole number, not {max_sessions!r}")
        body["max_sessions"] = max_sessions
    return body


def _ssl_context(ca_file: Optional[PathLike]) -> Optional[ssl.SSLContext]:
    if ca_file is None:
        return None
    return ssl.create_default_context(cafile=os.fspath(ca_file))


def post_certificate_request(
    server_url: str, token: str, body: dict, ca_file: Optional[PathLike] = None, timeout: float = 30.0
) -> dict:
    """POSTs the request and returns the decoded 200 answer, or raises the typed error."""
    if not token:
        raise ValueError("an OIDC token is required")
    url = server_url.rstrip("/") + "/v1/certificates"
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    handlers: list = [urllib.request.ProxyHandler({})] if _is_loopback(url) else []
    ctx = _ssl_context(ca_file)
    if ctx is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            status, raw, headers = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        status, raw, headers = e.code, e.read(), e.headers
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise GatehouseConnectionError(f"cannot reach {url}: {reason}") from e
    if status == 200:
        try:
            answer = json.loads(raw)
        except ValueError as e:
            raise CertificateRequestError(status, "bad_response", "body", f"the server answered 200 with a body that is not JSON: {raw[:200]!r}") from e
        if not isinstance(answer, dict) or not isinstance(answer.get("certificate"), str):
            raise CertificateRequestError(status, "bad_response", "certificate", "the server's answer has no certificate")
        return answer
    raise error_for_status(status, raw, headers)


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    return host in ("127.0.0.1", "::1", "localhost")


def obtain_certificate(
    server_url: str,
    token: str,
    key_path: PathLike,
    ttl: Optional[int] = None,
    context: Optional[Mapping[str, Any]] = None,
    ca_file: Optional[PathLike] = None,
    *,
    scopes: Optional[Sequence[str]] = None,
    targets: Optional[Sequence[str]] = None,
    commands: Optional[Sequence[str]] = None,
    max_sessions: Optional[int] = None,
    timeout: float = 30.0,
) -> Certificate:
    """Trades `token` for a certificate on `key_path`'s public key (an Ed25519 key is generated
    there if missing) and writes it to `<key_path>-cert.pub` (0644). Raises a subclass of
    `CertificateRequestError` (with `.status`, `.error`, `.check`, `.message`) on refusal.

    `scopes`, `targets`, `commands` (exact command lines or policy patterns) and `max_sessions`
    narrow the certificate to one task: the bastion then refuses everything else the token's
    scopes would allow."""
    public_key = ensure_key(key_path)
    body = build_request(public_key, ttl, context, scopes=scopes, targets=targets, commands=commands, max_sessions=max_sessions)
    answer = post_certificate_request(server_url, token, body, ca_file=ca_file, timeout=timeout)
    cert_line = answer["certificate"].strip()
    _check_certifies(cert_line, public_key)
    cert_path = certificate_path_for(key_path)
    tmp = cert_path.with_name(cert_path.name + ".tmp")
    tmp.write_text(cert_line + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, cert_path)
    return Certificate(
        certificate=cert_line,
        serial=int(answer.get("serial", 0)),
        key_id=str(answer.get("key_id", "")),
        principals=list(answer.get("principals") or []),
        scopes=list(answer.get("scopes") or []),
        context=str(answer.get("context", "")),
        valid_after=int(answer.get("valid_after", 0)),
        valid_before=int(answer.get("valid_before", 0)),
        key_path=Path(key_path),
        certificate_path=cert_path,
        raw=answer,
    )


def _check_certifies(cert_line: str, public_key: str) -> None:
    """The answer must be an OpenSSH user certificate on exactly our key."""
    import asyncssh

    try:
        cert = asyncssh.import_certificate(cert_line)
    except (asyncssh.KeyImportError, ValueError) as e:
        raise CertificateRequestError(200, "bad_response", "certificate", f"the server's certificate does not parse: {e}") from e
    ours = asyncssh.import_public_key(public_key)
    if cert.key.public_data != ours.public_data:
        raise CertificateRequestError(200, "bad_response", "certificate", "the server's certificate does not certify this key")
    if getattr(cert, "_cert_type", 1) != 1:  # asyncssh CERT_TYPE_USER
        raise CertificateRequestError(200, "bad_response", "certificate", "the server's certificate is not a user certificate")


async def obtain_certificate_async(*args, **kwargs) -> Certificate:
    """`obtain_certificate` in a worker thread, for event loops (AutoGen)."""
    return await asyncio.to_thread(obtain_certificate, *args, **kwargs)
