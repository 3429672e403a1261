"""scripts/oidc/glewlwyd_provider.py: discovery, JWKS, and tokens whose signatures verify
against the published key and carry the expected claims."""
from __future__ import annotations

import base64
import json
import subprocess
import urllib.request

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conftest import PROVIDER, start_provider, stop_provider

pytestmark = pytest.mark.e2e


def _get(url: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as r:
        return json.loads(r.read())


def _b64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _verify(token: str, jwks: dict) -> tuple[dict, dict]:
    h, p, s = token.split(".")
    header, payload = json.loads(_b64(h)), json.loads(_b64(p))
    jwk = next(k for k in jwks["keys"] if k.get("kid") == header["kid"])
    pub = rsa.RSAPublicNumbers(int.from_bytes(_b64(jwk["e"]), "big"), int.from_bytes(_b64(jwk["n"]), "big")).public_key()
    assert header["alg"] == "RS256"
    pub.verify(_b64(s), f"{h}.{p}".encode(), padding.PKCS1v15(), hashes.SHA256())  # raises if bad
    return header, payload


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    p = start_provider(tmp_path_factory.mktemp("glewlwyd"), ["alice=ops,dev", "bob=web"])
    yield p
    stop_provider(p)


def test_discovery_and_jwks(idp):
    info = idp.info
    assert {u["username"]: u["groups"] for u in info["users"]} == {"alice": ["ops", "dev"], "bob": ["web"]}
    assert info["scope"] == "openid gatehouse" and info["api_scope"] == "gatehouse"
    assert info["issuer"] == f"http://127.0.0.1:{info['port']}/api/oidc"
    disc = _get(info["discovery"])
    assert disc["issuer"] == info["issuer"]
    assert disc["token_endpoint"] == info["token_endpoint"]
    jwks = _get(disc["jwks_uri"])
    assert jwks["keys"] and all(k["kty"] == "RSA" for k in jwks["keys"])


def test_id_and_access_tokens(idp):
    jwks = _get(idp.info["jwks_uri"])
    _, id_claims = _verify(idp.token("alice", "id"), jwks)
    assert id_claims["iss"] == idp.info["issuer"]
    assert id_claims["aud"] == idp.info["client_id"]
    assert id_claims["groups"] == ["ops", "dev"]
    assert id_claims["preferred_username"] == "alice"
    assert id_claims["sub"] and id_claims["sub"] != "alice"  # opaque
    header, at = _verify(idp.token("bob", "access"), jwks)
    assert header["typ"] == "at+jwt"
    assert at["groups"] == "web"
    _, at2 = _verify(idp.token("alice", "access"), jwks)
    assert at2["groups"] == "ops,dev"
    assert "gatehouse" in at2["scope"].split()
    assert at2["aud"] == idp.info["access_token_audience"]
    _, cc = _verify(subprocess.run(["python3", str(PROVIDER), "token", "--dir", str(idp.directory), "--kind", "client"],
                                   capture_output=True, text=True, timeout=30, check=True).stdout.strip(), jwks)
    assert cc["sub"] == idp.info["client_id"] and cc["scope"] == "gatehouse"


def test_defaults_as_the_swift_tests_use_them(tmp_path):
    """`start --dir D` alone: a free port, one user alice in ops and dev."""
    r = subprocess.run(["python3", str(PROVIDER), "start", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    try:
        info = json.loads(r.stdout)
        assert info["port"] > 0 and info["users"][0]["username"] == "alice" and info["users"][0]["groups"] == ["ops", "dev"]
        assert _get(info["discovery"])["issuer"] == info["issuer"]
    finally:
        subprocess.run(["python3", str(PROVIDER), "stop", "--dir", str(tmp_path)], capture_output=True, timeout=30)


def test_unknown_user_and_stop_is_idempotent(idp, tmp_path):
    r = subprocess.run(["python3", str(PROVIDER), "token", "--dir", str(idp.directory), "--user", "nobody"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no user 'nobody'" in r.stderr
    r = subprocess.run(["python3", str(PROVIDER), "stop", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
