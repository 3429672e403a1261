#!/usr/bin/env python3
"""A static OIDC provider for the issuance benchmark: writes discovery + JWKS into DIR (served by
`python3 -m http.server`), and prints one ES256 ID token for the given issuer. Uses the
`cryptography` package; no network."""
import base64, json, os, sys, time, uuid
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def main():
    directory, issuer, lifetime = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3600
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "kid": "bench-1", "use": "sig", "alg": "ES256",
           "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
    os.makedirs(os.path.join(directory, ".well-known"), exist_ok=True)
    with open(os.path.join(directory, "jwks.json"), "w") as f:
        json.dump({"keys": [jwk]}, f)
    with open(os.path.join(directory, ".well-known", "openid-configuration"), "w") as f:
        json.dump({"issuer": issuer, "jwks_uri": issuer + "/jwks.json"}, f)
    now = int(time.time())
    header = {"alg": "ES256", "kid": "bench-1", "typ": "JWT"}
    claims = {"iss": issuer, "sub": "bench-agent", "aud": "gatehouse", "iat": now, "exp": now + lifetime,
              "groups": ["ops"], "jti": str(uuid.uuid4())}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    print(signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big")))

if __name__ == "__main__":
    main()
