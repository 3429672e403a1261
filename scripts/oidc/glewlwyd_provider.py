#!/usr/bin/env python3
"""A throwaway OpenID Connect provider for tests: Debian's glewlwyd, headless, on loopback.

    glewlwyd_provider.py start --dir D [--port P] [--spec spec.json] [--user alice=ops,dev]...
        Starts glewlwyd on 127.0.0.1:P (default: a free port) with its SQLite database in D, provisions it through
        its admin REST API (a scope, the OIDC plugin with a fresh RSA key, the users with a
        multi-valued `groups` property, a confidential client allowed the password and
        client_credentials grants) and prints one JSON object:
        {"issuer": "http://127.0.0.1:P/api/oidc", "pid", "port", "dir",
         "client_id", "client_secret",
         "scope": "openid gatehouse"      (what to request: ID token + access token),
         "api_scope": "gatehouse",
         "access_token_audience": "openid gatehouse"  (glewlwyd's access-token `aud` is the
                                           space-joined scope list, not the client id),
         "users": [{"username", "password", "groups": [...], "name", "email"}, ...],
         "token_endpoint", "jwks_uri", "discovery", "userinfo_endpoint"}
    glewlwyd_provider.py token --dir D --user alice [--kind id|access] [--scope S]
        Prints a token for that user (password grant), `--kind client` one for the client
        itself (client_credentials grant).
    glewlwyd_provider.py stop --dir D
        Stops the provider by the pid recorded at start (TERM, then KILL after 10 s).

Claims. The ID token carries `groups` as a JSON array, `preferred_username` (the user name,
readable: `sub` is opaque), `name` and `email`; the access token carries `groups` as one
comma-joined string (glewlwyd's "additional token values" join multiple values).

Spec file (all keys optional):
    {"client_id": "gatehouse-agent", "client_secret": "…", "scope": "gatehouse",
     "access_token_duration": 3600,
     "users": {"alice": {"password": "…", "groups": ["ops", "dev"],
                         "name": "Alice", "email": "alice@example.test"}}}
`--user NAME=g1,g2` adds or overrides users (password defaults to "<name>-password").
Without any user, one user `alice` in groups `ops` and `dev` is created.

Only the standard library is used, so any python3 can run it. Debian packages needed:
`glewlwyd` (preseed `glewlwyd glewlwyd/config_type select No configuration` first) and
`openssl`.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import http.cookiejar
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

GLEWLWYD = os.environ.get("GLEWLWYD_BIN", "/usr/bin/glewlwyd")
SEED_SQL = "/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz"
ADMIN_USER, ADMIN_PASSWORD = "admin", "password"
PLUGIN_NAME = "oidc"
STATE_FILE = "provider.json"
PID_FILE = "glewlwyd.pid"


class ProviderError(Exception):
    pass


def log(msg: str) -> None:
    print(f"glewlwyd_provider: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- HTTP helpers (stdlib only)

class Http:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar),
            urllib.request.ProxyHandler({}),  # never a proxy for loopback
        )

    def call(self, method: str, path: str, body=None, form=None, headers=None, timeout=10.0):
        url = self.base + path
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with self.opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def ok(self, method: str, path: str, body=None, what: str = "") -> bytes:
        status, raw = self.call(method, path, body=body)
        if status != 200:
            raise ProviderError(f"{what or method + ' ' + path} failed: HTTP {status}: {raw[:500]!r}")
        return raw


# ---------------------------------------------------------------- spec

def load_spec(args) -> dict:
    spec: dict = {}
    if args.spec:
        with open(args.spec) as f:
            spec = json.load(f)
    users = dict(spec.get("users") or {})
    for item in args.user or []:
        name, _, groups = item.partition("=")
        name = name.strip()
        if not name:
            raise ProviderError(f"--user {item!r}: expected NAME=group1,group2")
        u = dict(users.get(name) or {})
        u["groups"] = [g for g in groups.split(",") if g]
        users[name] = u
    if not users:
        users = {"alice": {"groups": ["ops", "dev"]}}
    for name, u in users.items():
        u.setdefault("password", f"{name}-password")
        u.setdefault("groups", [])
        u.setdefault("name", name.capitalize())
        u.setdefault("email", f"{name}@example.test")
        if isinstance(u["groups"], str):
            u["groups"] = [g for g in u["groups"].split(",") if g]
    spec["users"] = users
    spec.setdefault("client_id", args.client_id or "gatehouse-agent")
    spec.setdefault("client_secret", args.client_secret or base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("="))
    spec.setdefault("scope", args.scope or "gatehouse")
    spec.setdefault("access_token_duration", 3600)
    return spec


# ---------------------------------------------------------------- start

def write_config(d: str, port: int) -> str:
    conf = os.path.join(d, "glewlwyd.conf")
    # No use_secure_connection at all: plain HTTP on loopback.
    text = f"""
port={port}
bind_address="127.0.0.1"
external_url="http://127.0.0.1:{port}"
login_url="login.html"
api_prefix="api"
static_files_path="/usr/share/glewlwyd/webapp/"
allow_origin="*"
log_mode="file"
log_level="INFO"
log_file="{d}/glewlwyd.log"
cookie_domain="127.0.0.1"
cookie_secure=0
session_expiration=2419200
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="/usr/lib/glewlwyd/user"
user_middleware_module_path="/usr/lib/glewlwyd/user_middleware"
client_module_path="/usr/lib/glewlwyd/client"
user_auth_scheme_module_path="/usr/lib/glewlwyd/scheme"
plugin_module_path="/usr/lib/glewlwyd/plugin"
hash_algorithm = "SHA512"
database =
{{
  type = "sqlite3"
  path = "{d}/glewlwyd.db"
}};
"""
    with open(conf, "w") as f:
        f.write(text)
    return conf


def seed_database(d: str) -> None:
    db = os.path.join(d, "glewlwyd.db")
    if os.path.exists(db):
        os.unlink(db)
    with gzip.open(SEED_SQL, "rt") as f:
        sql = f.read()
    con = sqlite3.connect(db)
    try:
        con.executescript(sql)
        # The database user backend must know `groups` (multi-valued) and the other
        # properties we hand out as claims, or it drops them.
        row = con.execute("SELECT gumi_parameters FROM g_user_module_instance WHERE gumi_name='database'").fetchone()
        params = json.loads(row[0])
        fmt = params.setdefault("data-format", {})
        fmt["groups"] = {"multiple": True, "read": True, "write": True, "profile-read": True, "profile-write": False}
        con.execute("UPDATE g_user_module_instance SET gumi_parameters=? WHERE gumi_name='database'", (json.dumps(params),))
        con.commit()
    finally:
        con.close()


def make_rsa_key(d: str) -> tuple[str, str]:
    key = os.path.join(d, "oidc-rsa.key")
    pub = os.path.join(d, "oidc-rsa.pub.pem")
    subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", key, "-pubout", "-out", pub], check=True, capture_output=True)
    with open(key) as f:
        k = f.read()
    with open(pub) as f:
        p = f.read()
    return k, p


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(pred, deadline_s: float, what: str, proc: subprocess.Popen | None = None, logfile: str | None = None):
    end = time.monotonic() + deadline_s
    last_exc = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            tail = ""
            if logfile and os.path.exists(logfile):
                with open(logfile, errors="replace") as f:
                    tail = f.read()[-2000:]
            raise ProviderError(f"glewlwyd exited with status {proc.returncode} while waiting for {what}:\n{tail}")
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # connection refused while starting
            last_exc = e
        time.sleep(0.1)
    raise ProviderError(f"timed out after {deadline_s}s waiting for {what} (last error: {last_exc})")


def oidc_parameters(issuer: str, key: str, pub: str, spec: dict) -> dict:
    scope = spec["scope"]
    return {
        "iss": issuer,
        "jwt-type": "rsa",
        "jwt-key-size": "256",
        "key": key,
        "cert": pub,
        "jwks-show": True,
        "jwks-private": "",
        "jwks-public": "",
        "jwks-uri": "",
        "jwks-public-uri": "",
        "default-kid": "",
        "jwks-x5c": [],
        "access-token-duration": int(spec["access_token_duration"]),
        "refresh-token-duration": 1209600,
        "code-duration": 600,
        "refresh-token-rolling": True,
        "refresh-token-one-use": "never",
        "allow-non-oidc": True,
        "auth-type-code-enabled": True,
        "auth-type-code-revoke-replayed": False,
        "auth-type-token-enabled": True,
        "auth-type-id-token-enabled": True,
        "auth-type-none-enabled": True,
        "auth-type-password-enabled": True,
        "auth-type-client-enabled": True,
        "auth-type-device-enabled": False,
        "auth-type-refresh-enabled": True,
        "scope": [],
        "allowed-scope": ["openid", scope],
        # access token: `groups` as one comma-joined string
        "additional-parameters": [
            {"user-parameter": "groups", "token-parameter": "groups", "token-changed": False},
        ],
        # ID token / userinfo: `groups` as an array, a readable user name
        "claims": [
            {"name": "groups", "user-property": "groups", "type": "string",
             "boolean-value-true": "", "boolean-value-false": "", "mandatory": True, "on-demand": False, "scope": []},
            {"name": "preferred_username", "user-property": "username", "type": "string",
             "boolean-value-true": "", "boolean-value-false": "", "mandatory": True, "on-demand": False, "scope": []},
        ],
        "name-claim": "mandatory",
        "name-claim-scope": [],
        "email-claim": "mandatory",
        "email-claim-scope": [],
        "scope-claim": "no",
        "scope-claim-scope": [],
        "address-claim": {"type": "no", "formatted": "", "street_address": "", "locality": "", "region": "",
                          "postal_code": "", "country": "", "mandatory": False},
        "secret-type": "pairwise",
        "service-documentation": "",
        "op-policy-uri": "",
        "op-tos-uri": "",
        "request-parameter-allow": True,
        "request-uri-allow-https-non-secure": False,
        "request-parameter-allow-encrypted": True,
        "pkce-allowed": False,
        "introspection-revocation-allowed": True,
        "introspection-revocation-auth-scope": [],
        "introspection-revocation-allow-target-client": True,
        "register-client-allowed": False,
        "session-management-allowed": False,
        "client-pubkey-parameter": "",
        "client-jwks-parameter": "jwks",
        "client-jwks_uri-parameter": "jwks_uri",
        "request-maximum-exp": 3600,
        "encrypt-out-token-allow": False,
    }


def cmd_start(args) -> int:
    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    pidfile = os.path.join(d, PID_FILE)
    if os.path.exists(pidfile):
        with open(pidfile) as f:
            old = int(f.read().strip() or 0)
        if old and process_alive(old):
            raise ProviderError(f"a provider is already running in {d} (pid {old}); stop it first")
    if not os.path.exists(GLEWLWYD):
        raise ProviderError(f"{GLEWLWYD} not found: install the Debian package glewlwyd "
                            "(preseed `glewlwyd glewlwyd/config_type select No configuration` first)")
    spec = load_spec(args)
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    issuer = f"{base}/api/{PLUGIN_NAME}"

    conf = write_config(d, port)
    seed_database(d)
    key, pub = make_rsa_key(d)

    logfile = os.path.join(d, "glewlwyd.stdout.log")
    out = open(logfile, "ab")
    proc = subprocess.Popen([GLEWLWYD, "-c", conf], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            cwd=d, start_new_session=True)
    out.close()
    with open(pidfile, "w") as f:
        f.write(f"{proc.pid}\n")
    try:
        http = Http(base)
        glw_log = os.path.join(d, "glewlwyd.log")
        wait_until(lambda: http.call("GET", "/config")[0] == 200 or http.call("GET", "/api/scope/")[0] in (200, 401),
                   args.timeout, f"glewlwyd on {base}", proc, glw_log)

        # admin session (cookie)
        http.ok("POST", "/api/auth/", {"username": ADMIN_USER, "password": ADMIN_PASSWORD}, "admin login")

        scope = spec["scope"]
        http.ok("POST", "/api/scope/", {"name": scope, "display_name": "Gatehouse",
                                         "description": "Gatehouse certificates", "password_required": False,
                                         "password_max_age": 0, "scheme": {}}, f"create scope {scope}")

        http.ok("POST", "/api/mod/plugin/", {
            "module": "oidc", "name": PLUGIN_NAME, "display_name": "OpenID Connect", "order_rank": 0,
            "readonly": False, "enabled": True, "parameters": oidc_parameters(issuer, key, pub, spec),
        }, "create OIDC plugin")

        users_out = []
        for name, u in spec["users"].items():
            http.ok("POST", "/api/user/", {
                "username": name, "password": u["password"], "name": u["name"], "email": u["email"],
                "enabled": True, "scope": ["openid", scope], "groups": list(u["groups"]),
            }, f"create user {name}")
            users_out.append({"username": name, "password": u["password"], "groups": list(u["groups"]),
                              "name": u["name"], "email": u["email"]})

        http.ok("POST", "/api/client/", {
            "client_id": spec["client_id"], "name": "Gatehouse agent", "description": "AutoGen job",
            "enabled": True, "confidential": True, "client_secret": spec["client_secret"],
            "scope": ["openid", scope],
            "authorization_type": ["password", "client_credentials", "refresh_token"],
            "redirect_uri": [f"{base}/callback"],
            "token_endpoint_auth_method": ["client_secret_basic", "client_secret_post"],
        }, "create client")

        # the plugin is live: discovery and JWKS answer
        disc_raw = wait_until(lambda: (lambda r: r[1] if r[0] == 200 else None)(
            http.call("GET", f"/api/{PLUGIN_NAME}/.well-known/openid-configuration")),
            args.timeout, "OIDC discovery", proc, glw_log)
        disc = json.loads(disc_raw)
        jwks_path = urllib.parse.urlparse(disc["jwks_uri"]).path
        jwks = json.loads(http.ok("GET", jwks_path, what="JWKS"))
        if not jwks.get("keys"):
            raise ProviderError("JWKS has no keys")
    except BaseException:
        _stop_pid(proc.pid)
        raise

    info = {
        "issuer": issuer,
        "pid": proc.pid,
        "port": port,
        "dir": d,
        "client_id": spec["client_id"],
        "client_secret": spec["client_secret"],
        "scope": f"openid {spec['scope']}",
        "api_scope": spec["scope"],
        "access_token_audience": f"openid {spec['scope']}",
        "users": users_out,
        "token_endpoint": disc.get("token_endpoint", f"{issuer}/token"),
        "jwks_uri": disc["jwks_uri"],
        "discovery": f"{issuer}/.well-known/openid-configuration",
        "userinfo_endpoint": disc.get("userinfo_endpoint"),
    }
    with open(os.path.join(d, STATE_FILE), "w") as f:
        json.dump(info, f, indent=2)
    print(json.dumps(info))
    return 0


# ---------------------------------------------------------------- token

def request_token(info: dict, user: str | None, scope: str | None = None) -> dict:
    scope = scope or info["scope"]
    form = {"grant_type": "password", "scope": scope}
    if user is None:
        form = {"grant_type": "client_credentials", "scope": " ".join(w for w in scope.split() if w != "openid") or info["api_scope"]}
    else:
        users = {u["username"]: u for u in info["users"]}
        if user not in users:
            raise ProviderError(f"no user {user!r} in this provider (have: {', '.join(users)})")
        form["username"] = user
        form["password"] = users[user]["password"]
    basic = base64.b64encode(f"{info['client_id']}:{info['client_secret']}".encode()).decode()
    http = Http("")
    status, raw = http.call("POST", info["token_endpoint"], form=form, headers={"Authorization": f"Basic {basic}"})
    if status != 200:
        raise ProviderError(f"token request failed: HTTP {status}: {raw[:500]!r}")
    return json.loads(raw)


def cmd_token(args) -> int:
    info = read_state(args.dir)
    if args.kind == "client":
        resp = request_token(info, None, args.scope)
        print(resp["access_token"])
        return 0
    resp = request_token(info, args.user, args.scope)
    if args.kind == "json":
        print(json.dumps(resp))
        return 0
    key = "id_token" if args.kind == "id" else "access_token"
    if key not in resp:
        raise ProviderError(f"token response has no {key}: {sorted(resp)}")
    print(resp[key])
    return 0


def read_state(d: str) -> dict:
    path = os.path.join(os.path.abspath(d), STATE_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ProviderError(f"no provider started in {d} ({path} missing)")


# ---------------------------------------------------------------- stop

def _stop_pid(pid: int, grace: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        try:
            wpid, _ = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                return
        except ChildProcessError:
            pass
        if not process_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cmd_stop(args) -> int:
    d = os.path.abspath(args.dir)
    pidfile = os.path.join(d, PID_FILE)
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except FileNotFoundError:
        log(f"nothing to stop in {d}")
        return 0
    _stop_pid(pid)
    os.unlink(pidfile)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="start and provision glewlwyd")
    s.add_argument("--dir", required=True)
    s.add_argument("--port", type=int, default=0, help="default: a free port on 127.0.0.1")
    s.add_argument("--spec", help="JSON spec file (users, client, scope)")
    s.add_argument("--user", action="append", metavar="NAME=g1,g2", help="a user and its groups (repeatable)")
    s.add_argument("--client-id")
    s.add_argument("--client-secret")
    s.add_argument("--scope", help="the OAuth scope tokens are issued for (default gatehouse)")
    s.add_argument("--timeout", type=float, default=30.0)
    t = sub.add_parser("token", help="print a token")
    t.add_argument("--dir", required=True)
    t.add_argument("--user", help="user name (password grant)")
    t.add_argument("--kind", choices=["id", "access", "json", "client"], default="id")
    t.add_argument("--scope", help="scope string (default: 'openid <scope>')")
    k = sub.add_parser("stop", help="stop the provider")
    k.add_argument("--dir", required=True)
    args = p.parse_args(argv)
    try:
        if args.cmd == "start":
            return cmd_start(args)
        if args.cmd == "token":
            if args.kind != "client" and not args.user:
                p.error("token: --user is required unless --kind client")
            return cmd_token(args)
        return cmd_stop(args)
    except ProviderError as e:
        log(str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
