"""obtain_certificate against a scripted HTTP server on 127.0.0.1: the request it sends
(the API contract) and how each error answer maps to a typed exception."""
import hashlib
import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncssh
import pytest

from gatehouse_client import (
    BadRequest,
    CertificateRequestError,
    Forbidden,
    GatehouseConnectionError,
    InvalidToken,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    make_context,
    obtain_certificate,
)


class Scripted:
    def __init__(self):
        self.requests = []
        self.answer = (200, {}, {})


@pytest.fixture
def server():
    script = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            script.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status, payload, headers = script.answer
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield script
    httpd.shutdown()
    httpd.server_close()
    t.join(5)


def _signed_cert_line(tmp_path, key_path):
    """A real OpenSSH certificate on the agent's key (what the server would answer)."""
    ca = asyncssh.generate_private_key("ssh-ed25519")
    pub = asyncssh.read_public_key(f"{key_path}.pub")
    cert = ca.generate_user_certificate(pub, "oidc:alice", principals=["alice"])
    return cert.export_certificate("openssh").decode().strip()


def test_request_contract_and_certificate_written(server, tmp_path):
    key = tmp_path / "agent"
    # First call generates the key; answer needs it, so pre-generate via ensure_key.
    from gatehouse_client import ensure_key

    public_line = ensure_key(key)
    assert public_line.startswith("ssh-ed25519 ")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    cert_line = _signed_cert_line(tmp_path, key)
    server.answer = (200, {"certificate": cert_line, "serial": 42, "key_id": "oidc:alice", "principals": ["alice"],
                           "scopes": ["ops"], "context": '{"task_id":"t-1"}', "valid_after": 100, "valid_before": 700}, {})
    ctx = make_context(task_id="t-1", prompt="restart nginx", reason="deploy")
    c = obtain_certificate(server.url, "tok.en.x", key, ttl=600, context=ctx)
    req = server.requests[-1]
    assert req["path"] == "/v1/certificates"
    assert req["headers"]["Authorization"] == "Bearer tok.en.x"
    assert req["headers"]["Content-Type"] == "application/json"
    body = json.loads(req["body"])
    assert body == {"public_key": public_line, "ttl": 600,
                    "context": {"task_id": "t-1", "prompt_sha256": hashlib.sha256(b"restart nginx").hexdigest(),
                                "reason": "deploy"}}
    assert c.serial == 42 and c.key_id == "oidc:alice" and c.principals == ["alice"] and c.scopes == ["ops"]
    assert c.valid_before - c.valid_after == 600 and c.lifetime == 600
    assert c.certificate_path == tmp_path / "agent-cert.pub"
    assert (tmp_path / "agent-cert.pub").read_text().strip() == cert_line
    asyncssh.read_certificate(str(tmp_path / "agent-cert.pub"))  # parses as a certificate


def test_certificate_for_another_key_is_refused(server, tmp_path):
    from gatehouse_client import ensure_key

    ensure_key(tmp_path / "other")
    cert_line = _signed_cert_line(tmp_path, tmp_path / "other")
    server.answer = (200, {"certificate": cert_line, "serial": 1, "key_id": "x", "principals": [], "scopes": [],
                           "context": "", "valid_after": 0, "valid_before": 1}, {})
    with pytest.raises(CertificateRequestError) as info:
        obtain_certificate(server.url, "t", tmp_path / "agent")
    assert info.value.error == "bad_response" and "does not certify this key" in info.value.message
    assert not (tmp_path / "agent-cert.pub").exists()
    server.answer = (200, {"certificate": "ssh-ed25519-cert-v01@openssh.com AAAA", "serial": 1}, {})
    with pytest.raises(CertificateRequestError, match="does not parse"):
        obtain_certificate(server.url, "t", tmp_path / "agent")


def test_key_generated_when_missing_and_optional_fields_omitted(server, tmp_path):
    key = tmp_path / "sub" / "id_agent"
    server.answer = (403, {"code": "no_scopes", "rule": "scopes", "reason": "Your groups map to no scope."}, {})
    with pytest.raises(Forbidden):
        obtain_certificate(server.url, "t", key)
    assert key.exists() and (tmp_path / "sub" / "id_agent.pub").exists()
    body = json.loads(server.requests[-1]["body"])
    assert set(body) == {"public_key"}


def test_prompt_text_hashed_when_sent(server, tmp_path):
    server.answer = (400, {"code": "bad_request", "rule": "context.prompt", "reason": "no"}, {})
    with pytest.raises(BadRequest):
        obtain_certificate(server.url, "t", tmp_path / "k", context={"prompt": "p", "task_id": None})
    body = json.loads(server.requests[-1]["body"])
    assert body["context"] == {"prompt": "p", "prompt_sha256": hashlib.sha256(b"p").hexdigest()}


@pytest.mark.parametrize("status,cls,error,check", [
    (400, BadRequest, "bad_public_key", "public_key"),
    (401, InvalidToken, "token_expired", "exp"),
    (401, InvalidToken, "bad_signature", "signature"),
    (403, Forbidden, "no_scopes", "scopes"),
    (413, PayloadTooLarge, "too_large", "authorization"),
    (429, RateLimited, "rate_limited", "rate_limit"),
    (503, ServerError, "keys_unavailable", "jwks"),
])
def test_error_mapping(server, tmp_path, status, cls, error, check):
    headers = {"Retry-After": "17"} if status == 429 else {}
    server.answer = (status, {"code": error, "rule": check, "reason": f"The {check} check failed."}, headers)
    with pytest.raises(cls) as info:
        obtain_certificate(server.url, "t", tmp_path / "k")
    e = info.value
    assert isinstance(e, CertificateRequestError)
    assert (e.status, e.code, e.rule, e.reason) == (status, error, check, f"The {check} check failed.")
    assert (e.error, e.check, e.message) == (e.code, e.rule, e.reason), "the earlier names still read"
    assert e.retry_after == (17 if status == 429 else None)
    assert error in str(e) and check in str(e)
    assert not (tmp_path / "k-cert.pub").exists()


def test_error_without_json_body(server, tmp_path):
    server.answer = (401, b"Unauthorized", {})
    with pytest.raises(InvalidToken) as info:
        obtain_certificate(server.url, "t", tmp_path / "k")
    assert info.value.error == "http_401" and "Unauthorized" in info.value.message


def test_200_without_certificate_is_an_error(server, tmp_path):
    server.answer = (200, {"serial": 1}, {})
    with pytest.raises(CertificateRequestError) as info:
        obtain_certificate(server.url, "t", tmp_path / "k")
    assert info.value.error == "bad_response"


def test_unreachable_server(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(GatehouseConnectionError):
        obtain_certificate(f"http://127.0.0.1:{port}", "t", tmp_path / "k", timeout=5)


def test_bad_ttl_refused_locally(tmp_path):
    with pytest.raises(ValueError):
        obtain_certificate("http://127.0.0.1:1", "t", tmp_path / "k", ttl=0)
    with pytest.raises(ValueError):
        obtain_certificate("http://127.0.0.1:1", "", tmp_path / "k")
