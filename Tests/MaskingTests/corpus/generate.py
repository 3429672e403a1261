#!/usr/bin/env python3
"""Writes the masking corpus: positive cases (realistic command output with planted, labelled,
synthetic secrets) and negative cases (ordinary output with none). Deterministic: the same
seed gives the same files. Every secret is random, shaped like the real thing, and fake.

    python3 Tests/MaskingTests/corpus/generate.py

Negative text that comes from this repository (its own sources and git history) is read from
the working tree; everything else is generated here.
"""
import base64, hashlib, json, os, random, string, subprocess, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
R = random.Random(15)
ALNUM = string.ascii_letters + string.digits
UPPERNUM = string.ascii_uppercase + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"


def rnd(alphabet, n):
    return "".join(R.choice(alphabet) for _ in range(n))


def b64(data):
    return base64.b64encode(data).decode()


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# ---------------------------------------------------------------- secret makers

def aws_key_id(prefix="AKIA"): return prefix + rnd(UPPERNUM, 16)
def aws_secret(): return rnd(B64, 40)
def aws_session_token(): return "IQoJb3JpZ2luX2Vj" + rnd(B64, 340) + "=="
def github_token(p="ghp_"): return p + rnd(ALNUM, 36)
def github_pat(): return "github_pat_" + rnd(ALNUM, 22) + "_" + rnd(ALNUM, 59)
def gitlab_token(p="glpat-"): return p + rnd(ALNUM + "-_", 20)
def slack_token(p="xoxb-"): return p + rnd(string.digits, 12) + "-" + rnd(string.digits, 13) + "-" + rnd(ALNUM, 24)
def slack_webhook_path(): return "T" + rnd(UPPERNUM, 8) + "/B" + rnd(UPPERNUM, 10) + "/" + rnd(ALNUM, 24)
def stripe_key(p="sk_live_"): return p + rnd(ALNUM, 99 if p.startswith("sk_") else 32)
def google_api_key(): return "AIza" + rnd(B64URL, 35)
def google_client_secret(): return "GOCSPX-" + rnd(B64URL, 28)
def openai_key(): return "sk-proj-" + rnd(B64URL, 74) + "T3BlbkFJ" + rnd(B64URL, 74)
def openai_legacy(): return "sk-" + rnd(ALNUM, 20) + "T3BlbkFJ" + rnd(ALNUM, 20)
def anthropic_key(): return "sk-ant-api03-" + rnd(B64URL, 93) + "AA"
def npm_token(): return "npm_" + rnd(ALNUM, 36)
def pypi_token(): return "pypi-AgEIcHlwaS5vcmc" + rnd(B64URL, 150)
def hf_token(): return "hf_" + rnd(ALNUM, 34)
def vault_token(): return "hvs." + rnd(B64URL, 90)
def do_token(): return "dop_v1_" + rnd(HEX, 64)
def shopify_token(): return "shpat_" + rnd(HEX, 32)
def sendgrid_key(): return "SG." + rnd(B64URL, 22) + "." + rnd(B64URL, 43)
def age_key(): return "AGE-SECRET-KEY-1" + rnd(UPPERNUM, 58)
def password(n=None):
    n = n or R.randint(12, 24)
    return rnd(ALNUM, n - 3) + R.choice("!#%+-_.@") + rnd(string.digits, 2)
def hexsecret(n=64): return rnd(HEX, n)


def jwt(claims=None):
    header = b64url(json.dumps({"alg": R.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}, separators=(",", ":")).encode())
    payload = claims or {"sub": str(uuid.UUID(int=R.getrandbits(128))), "iat": 1764600000 + R.randint(0, 99999), "scope": "read write"}
    body = b64url(json.dumps(payload, separators=(",", ":")).encode())
    return header + "." + body + "." + b64url(bytes(R.getrandbits(8) for _ in range(R.choice([32, 64, 256]))))


def pem(kind="RSA PRIVATE KEY", der_len=1190, width=64, headers=None):
    der = bytes([0x30, 0x82]) + bytes(R.getrandbits(8) for _ in range(der_len))
    body = b64(der)
    lines = [body[i:i + width] for i in range(0, len(body), width)]
    head = [f"-----BEGIN {kind}-----"] + (headers or [])
    if headers:
        head.append("")
    return "\n".join(head + lines + [f"-----END {kind}-----"])


def openssh_key():
    raw = b"openssh-key-v1\x00" + bytes(R.getrandbits(8) for _ in range(370))
    body = b64(raw)
    return "\n".join(["-----BEGIN OPENSSH PRIVATE KEY-----"] + [body[i:i + 70] for i in range(0, len(body), 70)] + ["-----END OPENSSH PRIVATE KEY-----"])


# ---------------------------------------------------------------- positive cases

cases = {}


class Case:
    def __init__(self, name):
        self.name, self.parts, self.secrets = name, [], []

    def text(self, s):
        self.parts.append(s)
        return self

    def secret(self, value, rule):
        self.secrets.append({"rule": rule, "value": value})
        return value


def case(name):
    c = Case(name)
    cases[name] = c
    return c


c = case("env-dump.txt")
lines = ["SHELL=/bin/bash", "COLORTERM=truecolor", "HISTCONTROL=ignoreboth", "HOSTNAME=build-7f9c4d6b8-xk2lp",
         "PWD=/srv/app", "LOGNAME=deploy", "HOME=/home/deploy", "LANG=C.UTF-8", "TERM=xterm-256color", "USER=deploy",
         f"AWS_ACCESS_KEY_ID={c.secret(aws_key_id(), 'aws-access-key-id')}",
         f"AWS_SECRET_ACCESS_KEY={c.secret(aws_secret(), 'aws-secret-access-key')}",
         "AWS_DEFAULT_REGION=eu-west-1",
         f"GITHUB_TOKEN={c.secret(github_token(), 'github-token')}",
         f"OPENAI_API_KEY={c.secret(openai_key(), 'openai-api-key')}",
         f"ANTHROPIC_API_KEY={c.secret(anthropic_key(), 'anthropic-api-key')}",
         f"SLACK_BOT_TOKEN={c.secret(slack_token(), 'slack-token')}",
         f"STRIPE_SECRET_KEY={c.secret(stripe_key(), 'stripe-key')}",
         "STRIPE_PUBLISHABLE_KEY=pk_live_" + rnd(ALNUM, 99),
         f"REDIS_PASSWORD={c.secret(password(), 'secret-assignment')}",
         f"NPM_TOKEN={c.secret(npm_token(), 'npm-token')}",
         f"HF_TOKEN={c.secret(hf_token(), 'huggingface-token')}",
         f"VAULT_TOKEN={c.secret(vault_token(), 'vault-token')}",
         "VAULT_ADDR=https://vault.internal.example:8200",
         "SHLVL=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "OLDPWD=/home/deploy",
         "KUBECONFIG=/home/deploy/.kube/config", "_=/usr/bin/env"]
c.text("\n".join(lines) + "\n")

c = case("dotenv.txt")
db_pw = password()
c.text(f"""# Application settings — copied from 1Password, do not commit
APP_ENV=production
APP_DEBUG=false
APP_URL=https://shop.example.com
LOG_LEVEL=info

DB_CONNECTION=pgsql
DB_HOST=10.20.0.15
DB_PORT=5432
DB_DATABASE=shop
DB_USERNAME=shop_app
DB_PASSWORD="{c.secret(db_pw, 'secret-assignment')}"

DATABASE_URL=postgres://shop_app:{c.secret(password(), 'url-credentials')}@10.20.0.15:5432/shop?sslmode=require
REDIS_URL=redis://:{c.secret(password(16), 'url-credentials')}@cache.internal:6379/0
JWT_SECRET={c.secret(hexsecret(64), 'secret-assignment')}
SESSION_SECRET='{c.secret(rnd(B64, 44), 'secret-assignment')}'
SENDGRID_API_KEY={c.secret(sendgrid_key(), 'sendgrid-key')}
GOOGLE_MAPS_API_KEY={c.secret(google_api_key(), 'google-api-key')}
SLACK_WEBHOOK_URL=https://hooks.slack.com/services/{c.secret(slack_webhook_path(), 'slack-webhook')}
MAIL_FROM_ADDRESS=noreply@shop.example.com
export PAYMENT_API_KEY={c.secret(rnd(ALNUM, 32), 'secret-assignment')}
SHOPIFY_ACCESS_TOKEN={c.secret(shopify_token(), 'shopify-token')}
DIGITALOCEAN_TOKEN={c.secret(do_token(), 'digitalocean-token')}
FEATURE_FLAGS=checkout_v2,new_search
""")

c = case("kubeconfig.txt")
c.text(f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {b64(bytes(R.getrandbits(8) for _ in range(800)))}
    server: https://k8s-api.prod.example.com:6443
  name: prod
contexts:
- context:
    cluster: prod
    namespace: payments
    user: ci-deployer
  name: prod
current-context: prod
kind: Config
preferences: {{}}
users:
- name: ci-deployer
  user:
    token: {c.secret(jwt({"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": "payments", "sub": "system:serviceaccount:payments:ci-deployer"}), 'jwt')}
- name: admin
  user:
    client-certificate-data: {b64(bytes(R.getrandbits(8) for _ in range(600)))}
    client-key-data: {c.secret(b64(pem().encode()), 'secret-assignment')}
- name: legacy-basic
  user:
    username: admin
    password: {c.secret(password(), 'secret-assignment')}
""")

c = case("secret-yaml.txt")
vals = [b64(password().encode()), b64(rnd(ALNUM, 40).encode()), b64(("postgres://app:" + password() + "@db:5432/app").encode())]
c.text(f"""apiVersion: v1
data:
  DB_PASSWORD: {c.secret(vals[0], 'kubernetes-secret-data')}
  api-key: {c.secret(vals[1], 'kubernetes-secret-data')}
  database-url: {c.secret(vals[2], 'kubernetes-secret-data')}
kind: Secret
metadata:
  creationTimestamp: "2026-11-30T09:12:44Z"
  name: payments-env
  namespace: payments
  resourceVersion: "48213377"
  uid: {uuid.UUID(int=R.getrandbits(128))}
type: Opaque
---
apiVersion: v1
kind: Secret
metadata:
  name: smtp-relay
  namespace: mail
type: Opaque
stringData:
  username: {c.secret('relay@example.com', 'kubernetes-secret-data')}
  password: {c.secret(password(), 'kubernetes-secret-data')}
  config.ini: |
    {c.secret('[smtp]', 'kubernetes-secret-data')}
    {c.secret('host = smtp.example.com', 'kubernetes-secret-data')}
    token = {c.secret(rnd(ALNUM, 30), 'kubernetes-secret-data')}
""")

c = case("secret-json.txt")
v1, v2 = b64(rnd(ALNUM, 24).encode()), b64(password().encode())
c.text(f"""{{
    "apiVersion": "v1",
    "data": {{
        "client-secret": "{c.secret(v1, 'kubernetes-secret-data')}",
        "password": "{c.secret(v2, 'kubernetes-secret-data')}"
    }},
    "kind": "Secret",
    "metadata": {{
        "name": "oauth-client",
        "namespace": "auth"
    }},
    "type": "Opaque"
}}
""")

c = case("tls-secret-yaml.txt")
crt = b64(("-----BEGIN CERTIFICATE-----\n" + b64(bytes(R.getrandbits(8) for _ in range(1400))) + "\n-----END CERTIFICATE-----\n").encode())
key = b64((pem("PRIVATE KEY", 1216) + "\n").encode())
c.text(f"""apiVersion: v1
data:
  tls.crt: {c.secret(crt, 'kubernetes-secret-data')}
  tls.key: {c.secret(key, 'kubernetes-secret-data')}
kind: Secret
metadata:
  name: www-tls
  namespace: ingress
type: kubernetes.io/tls
""")

c = case("docker-inspect.txt")
c.text(f"""[
    {{
        "Id": "{hexsecret(64)}",
        "Created": "2026-12-01T07:41:12.348221904Z",
        "Path": "docker-entrypoint.sh",
        "Args": [
            "postgres"
        ],
        "State": {{
            "Status": "running",
            "Running": true,
            "Pid": 48211,
            "ExitCode": 0,
            "StartedAt": "2026-12-01T07:41:13.012903113Z"
        }},
        "Image": "sha256:{hexsecret(64)}",
        "Name": "/payments-db",
        "Config": {{
            "Hostname": "{hexsecret(12)}",
            "Env": [
                "POSTGRES_USER=payments",
                "POSTGRES_PASSWORD={c.secret(password(), 'secret-assignment')}",
                "POSTGRES_DB=payments",
                "API_TOKEN={c.secret(rnd(ALNUM, 40), 'secret-assignment')}",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "GOSU_VERSION=1.17",
                "PG_MAJOR=16"
            ],
            "Labels": {{
                "com.docker.compose.project": "payments",
                "com.docker.compose.service": "db"
            }}
        }}
    }}
]
""")

c = case("ci-log.txt")
ghs = github_token("ghs_")
c.text(f"""2026-12-01T08:14:02.1184025Z ##[group]Run actions/checkout@v4
2026-12-01T08:14:02.1185312Z with:
2026-12-01T08:14:02.1185771Z   repository: acme/payments
2026-12-01T08:14:02.1186402Z   token: ***
2026-12-01T08:14:02.1186944Z ##[endgroup]
2026-12-01T08:14:03.0021932Z [command]/usr/bin/git remote add origin https://x-access-token:{c.secret(ghs, 'github-token')}@github.com/acme/payments
2026-12-01T08:14:04.7710023Z Fetching the repository
2026-12-01T08:14:09.2291442Z + export GITLAB_TOKEN={c.secret(gitlab_token(), 'gitlab-token')}
2026-12-01T08:14:09.2301123Z + curl -sS -v -H 'Authorization: Bearer {c.secret(rnd(B64URL, 48), 'authorization-header')}' https://api.example.com/v2/deployments
2026-12-01T08:14:09.5120012Z > GET /v2/deployments HTTP/2
2026-12-01T08:14:09.5120433Z > Host: api.example.com
2026-12-01T08:14:09.5120921Z > user-agent: curl/8.5.0
2026-12-01T08:14:09.5121203Z > accept: */*
2026-12-01T08:14:09.6623409Z < HTTP/2 200
2026-12-01T08:14:09.6623777Z < content-type: application/json
2026-12-01T08:14:10.0012211Z + docker login -u ci --password {c.secret(password(), 'secret-assignment')} registry.example.com
2026-12-01T08:14:10.9918230Z WARNING! Using --password via the CLI is insecure. Use --password-stdin.
2026-12-01T08:14:11.2204981Z Login Succeeded
2026-12-01T08:14:12.4410032Z npm notice using token {c.secret(npm_token(), 'npm-token')} from environment
2026-12-01T08:14:15.1029931Z + twine upload --username __token__ --password {c.secret(pypi_token(), 'pypi-token')} dist/*
2026-12-01T08:14:18.7741010Z Uploading payments_client-2.4.1-py3-none-any.whl
2026-12-01T08:14:20.0040112Z ##[group]Run ./deploy.sh
2026-12-01T08:14:20.0041234Z env:
2026-12-01T08:14:20.0041877Z   DEPLOY_ENV: production
2026-12-01T08:14:20.0042301Z   SLACK_TOKEN: {c.secret(slack_token('xoxp-'), 'slack-token')}
2026-12-01T08:14:21.8812339Z Deployment 4812 finished in 91s
""")

c = case("git-remotes.txt")
c.text(f"""$ git remote -v
origin\thttps://oauth2:{c.secret(gitlab_token(), 'gitlab-token')}@gitlab.example.com/platform/infra.git (fetch)
origin\thttps://oauth2:{c.secret(gitlab_token(), 'gitlab-token')}@gitlab.example.com/platform/infra.git (push)
upstream\thttps://{c.secret(github_token(), 'github-token')}@github.com/acme/infra.git (fetch)
upstream\thttps://{c.secret(github_pat(), 'github-fine-grained-token')}@github.com/acme/infra.git (push)
mirror\tssh://git@git.example.org:2222/platform/infra.git (fetch)
$ cat .git/config
[core]
\trepositoryformatversion = 0
\tfilemode = true
[remote "deploy"]
\turl = https://deploy:{c.secret(password(), 'url-credentials')}@git.example.net/platform/infra.git
\tfetch = +refs/heads/*:refs/remotes/deploy/*
[branch "main"]
\tremote = origin
\tmerge = refs/heads/main
""")

c = case("aws-cli.txt")
c.text(f"""$ cat ~/.aws/credentials
[default]
aws_access_key_id = {c.secret(aws_key_id(), 'aws-access-key-id')}
aws_secret_access_key = {c.secret(aws_secret(), 'aws-secret-access-key')}

[ci]
aws_access_key_id = {c.secret(aws_key_id(), 'aws-access-key-id')}
aws_secret_access_key = {c.secret(aws_secret(), 'aws-secret-access-key')}
region = us-east-2
$ aws sts assume-role --role-arn arn:aws:iam::481516234200:role/deployer --role-session-name ci
{{
    "Credentials": {{
        "AccessKeyId": "{c.secret(aws_key_id('ASIA'), 'aws-access-key-id')}",
        "SecretAccessKey": "{c.secret(aws_secret(), 'aws-secret-access-key')}",
        "SessionToken": "{c.secret(aws_session_token(), 'secret-assignment')}",
        "Expiration": "2026-12-01T09:14:03+00:00"
    }},
    "AssumedRoleUser": {{
        "AssumedRoleId": "AROA{rnd(UPPERNUM, 17)}:ci",
        "Arn": "arn:aws:sts::481516234200:assumed-role/deployer/ci"
    }}
}}
$ aws configure list
      Name                    Value             Type    Location
      ----                    -----             ----    --------
   profile                <not set>             None    None
access_key     ****************{rnd(UPPERNUM, 4)} shared-credentials-file
secret_key     ****************{rnd(B64, 4)} shared-credentials-file
    region                eu-west-1      config-file    ~/.aws/config
""")

c = case("gcloud.txt")
sa_key = pem("PRIVATE KEY", 1216).replace("\n", "\\n") + "\\n"
c.text(f"""$ cat service-account.json
{{
  "type": "service_account",
  "project_id": "acme-prod-3121",
  "private_key_id": "{c.secret(hexsecret(40), 'secret-assignment')}",
  "private_key": "{c.secret(sa_key[:-2], 'private-key')}\\n",
  "client_email": "deployer@acme-prod-3121.iam.gserviceaccount.com",
  "client_id": "{rnd(string.digits, 21)}",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token",
  "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
  "universe_domain": "googleapis.com"
}}
$ cat ~/.config/gcloud/application_default_credentials.json
{{
  "account": "",
  "client_id": "{rnd(string.digits, 12)}-{rnd(string.ascii_lowercase + string.digits, 32)}.apps.googleusercontent.com",
  "client_secret": "{c.secret(google_client_secret(), 'google-oauth-secret')}",
  "quota_project_id": "acme-prod-3121",
  "refresh_token": "{c.secret('1//0' + rnd(B64URL, 99), 'secret-assignment')}",
  "type": "authorized_user"
}}
$ gcloud auth print-access-token
{c.secret('ya29.' + rnd(B64URL + '.', 180), 'google-oauth-secret')}
""")

c = case("pem-keys.txt")
c.text("$ cat ~/.ssh/id_rsa\n" + c.secret(pem("RSA PRIVATE KEY", 1190), "private-key") + "\n")
c.text("$ cat /etc/ssl/private/api.key\n" + c.secret(pem("PRIVATE KEY", 1216), "private-key") + "\n")
c.text("$ cat ~/.ssh/id_ed25519\n" + c.secret(openssh_key(), "private-key") + "\n")
c.text("$ cat ec.pem\n" + c.secret(pem("EC PRIVATE KEY", 117), "private-key") + "\n")
c.text("$ cat legacy.key\n" + c.secret(pem("RSA PRIVATE KEY", 1190, headers=["Proc-Type: 4,ENCRYPTED", "DEK-Info: AES-128-CBC," + rnd(HEX.upper(), 32)]), "private-key") + "\n")
c.text("$ cat big.key\n" + c.secret(pem("RSA PRIVATE KEY", 4700), "private-key") + "\n")
c.text("$ cat cert.pem\n-----BEGIN CERTIFICATE-----\n" + "\n".join(rnd(B64, 64) for _ in range(18)) + "\n-----END CERTIFICATE-----\n$ ls\ncert.pem  big.key  ec.pem  legacy.key\n")

c = case("api-responses.txt")
c.text(f"""$ curl -s -X POST https://auth.example.com/oauth/token -d grant_type=client_credentials
{{"access_token":"{c.secret(jwt(), 'jwt')}","token_type":"Bearer","expires_in":3600,"refresh_token":"{c.secret(rnd(ALNUM, 43), 'secret-assignment')}","scope":"deploy"}}
$ curl -s https://api.stripe.com/v1/webhook_endpoints -u {c.secret(stripe_key('sk_test_'), 'stripe-key')}:
{{
  "object": "webhook_endpoint",
  "id": "we_{rnd(ALNUM, 24)}",
  "secret": "{c.secret(stripe_key('whsec_'), 'stripe-key')}",
  "status": "enabled",
  "url": "https://shop.example.com/stripe/webhook"
}}
$ curl -s https://api.example.com/v1/users/me -H "X-Api-Key: {c.secret(rnd(ALNUM, 40), 'secret-assignment')}"
{{"id": 4821, "login": "deploy-bot", "created_at": "2025-03-02T10:11:12Z", "api_key_last4": "x9Qz"}}
$ vault login -method=userpass username=ci
Success! You are now authenticated.
Key                  Value
---                  -----
token                {c.secret(vault_token(), 'vault-token')}
token_accessor       {rnd(ALNUM, 24)}
token_duration       768h
$ age-keygen
# created: 2026-12-01T08:00:00Z
# public key: age1{rnd(string.ascii_lowercase + string.digits, 58)}
{c.secret(age_key(), 'age-secret-key')}
""")

c = case("app-config.txt")
c.text(f"""$ cat /etc/payments/application.properties
server.port=8080
spring.datasource.url=jdbc:postgresql://db.internal:5432/payments
spring.datasource.username=payments
spring.datasource.password={c.secret(password(), 'secret-assignment')}
spring.jpa.hibernate.ddl-auto=validate
payments.gateway.api-key={c.secret(rnd(ALNUM, 32), 'secret-assignment')}
$ cat /etc/payments/settings.ini
[database]
host = db.internal
user = payments
password = {c.secret(password(), 'secret-assignment')}

[smtp]
server = smtp.example.com
secret_key = {c.secret(rnd(B64, 32), 'secret-assignment')}
$ cat config.yaml
server:
  listen: 0.0.0.0:8443
database:
  dsn: mongodb+srv://payments:{c.secret(password(), 'url-credentials')}@cluster0.abcde.mongodb.net/payments
  pool_size: 20
auth:
  client_id: payments-web
  client_secret: "{c.secret(rnd(ALNUM, 36), 'secret-assignment')}"
  signing_key: {c.secret(rnd(B64, 44), 'secret-assignment')}
  session_cookie_name: pay_session
$ cat ~/.npmrc
registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={c.secret(npm_token(), 'npm-token')}
$ cat ~/.docker/config.json
{{
  "auths": {{
    "registry.example.com": {{
      "auth": "{c.secret(b64(('ci:' + password()).encode()), 'high-entropy-assignment')}"
    }}
  }}
}}
$ ps aux | grep worker
app       2231  0.4  1.2 812344 98812 ?  Sl   07:41   0:12 /usr/bin/worker --queue=payments --api-token={c.secret(rnd(ALNUM, 32), 'secret-assignment')} --verbose
$ cat docker-compose.yml
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: {c.secret(password(), 'secret-assignment')}
      MYSQL_ROOT_PASSWORD: "{c.secret(password(), 'secret-assignment')}"
""")

c = case("app-log.txt")
c.text(f"""{{"level":"info","ts":"2026-12-01T08:00:01.221Z","msg":"request","method":"POST","path":"/v1/login","status":200,"duration_ms":41}}
{{"level":"debug","ts":"2026-12-01T08:00:01.223Z","msg":"issued session","user":"alice","session_token":"{c.secret(rnd(B64URL, 48), 'secret-assignment')}"}}
level=info ts=2026-12-01T08:00:02Z msg="calling upstream" url=https://api.partner.example/v1/orders api_key={c.secret(rnd(ALNUM, 32), 'secret-assignment')} attempt=1
time="2026-12-01T08:00:03Z" level=warning msg="retrying with new bearer" Authorization="Bearer {c.secret(jwt(), 'jwt')}"
2026-12-01 08:00:04,112 INFO  [main] c.a.p.Config - loaded config: {{"db_password": "{c.secret(password(), 'secret-assignment')}", "pool": 10}}
2026-12-01 08:00:05,912 ERROR [http-1] webhook failed: POST https://hooks.slack.com/services/{c.secret(slack_webhook_path(), 'slack-webhook')} returned 404
2026-12-01 08:00:06,004 INFO  [main] secrets manager: {{"SecretString": "{{\\"username\\":\\"svc\\",\\"password\\":\\"{c.secret(password(), 'secret-assignment')}\\"}}"}}
2026-12-01 08:00:07,100 DEBUG connecting to amqp://worker:{c.secret(password(), 'url-credentials')}@mq.internal:5672/
""")

# A long stream: many secrets in a big env-like dump with noise between, to test windows and holdback.
c = case("mixed-long.txt")
makers = [(github_token, "github-token"), (lambda: gitlab_token(), "gitlab-token"), (slack_token, "slack-token"),
          (lambda: stripe_key(), "stripe-key"), (google_api_key, "google-api-key"), (openai_key, "openai-api-key"),
          (anthropic_key, "anthropic-api-key"), (lambda: aws_key_id(), "aws-access-key-id"), (jwt, "jwt"), (npm_token, "npm-token"),
          (hf_token, "huggingface-token"), (github_pat, "github-fine-grained-token"), (sendgrid_key, "sendgrid-key")]
for n in range(60):
    maker, rule = makers[n % len(makers)]
    c.text(f"[{n:04d}] {rnd(string.ascii_lowercase + ' ', R.randint(40, 900))}\n")
    style = n % 4
    value = maker()
    if style == 0:
        c.text(f"found credential {c.secret(value, rule)} in build cache\n")
    elif style == 1:
        c.text(f'  "credential": "{c.secret(value, rule)}",\n')
    elif style == 2:
        c.text(f"CRED_{n}={c.secret(value, rule)}\n")
    else:
        c.text(f"{c.secret(value, rule)}\n")

# ---------------------------------------------------------------- negative cases

neg = {}

words = ("the of and to in is for on with as by at from that this be are or it an was which not can have has will all if one "
         "file files option options default value process system service server client request response connection user "
         "group directory path output input error warning status mode level time start stop run running read write list "
         "configuration command argument kernel module device driver memory network interface address port socket "
         "package version install update remove depends build source target cache index key keys token tokens password "
         "secret session cookie credentials authentication certificate signature hash digest checksum random seed").split()


def sentence(n=None):
    n = n or R.randint(6, 18)
    s = " ".join(R.choice(words) for _ in range(n))
    return s[0].upper() + s[1:] + "."


def manpage():
    out = []
    for cmd in ["rsync", "curl", "mysql", "psql", "openssl", "ssh-keygen", "git-credential", "docker-login", "gpg", "vault", "kubectl", "aws", "redis-cli", "htpasswd", "pass"]:
        out.append(f"{cmd.upper()}(1)                    User Commands                    {cmd.upper()}(1)\n\nNAME\n       {cmd} - {sentence(8)}\n\nSYNOPSIS\n       {cmd} [OPTION]... [ARGS]\n\nDESCRIPTION")
        for _ in range(R.randint(6, 14)):
            out.append("       " + " ".join(sentence() for _ in range(R.randint(2, 5))))
        out.append("\nOPTIONS")
        for opt in ["-p, --password=PASSWORD", "--password-file=FILE", "-t, --token TOKEN", "--token-file=PATH", "-k, --key=KEYFILE",
                    "--api-key=KEY", "--secret-id ID", "-u, --user=USER[:PASSWORD]", "--auth-type=TYPE", "--no-password",
                    "--key-type=TYPE", "--session-timeout=SECONDS", "--cookie-jar=FILE", "--hash=ALGORITHM", "-v, --verbose", "--help"]:
            out.append(f"       {opt}\n              {sentence()} {sentence()}")
        out.append("\nENVIRONMENT\n       " + cmd.upper().replace("-", "_") + "_PASSWORD\n              If set, the password is read from this variable instead of the terminal. " + sentence())
        out.append("       " + cmd.upper().replace("-", "_") + "_TOKEN\n              The token used to authenticate. Never pass it on the command line; use --token-file.")
        out.append("\nEXAMPLES\n       export " + cmd.upper().replace("-", "_") + "_TOKEN=<your token>\n       " + cmd + " --password=$PASSWORD --user admin\n       " + cmd + " --token \"$(cat ~/.config/" + cmd + "/token)\" status\n       PGPASSWORD=${DB_PASSWORD} psql -h db -U app\n")
        out.append("SEE ALSO\n       ssh(1), gpg(1), pass(1)\n\n")
    return "\n".join(out)


def ps_aux():
    out = ["USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND"]
    cmds = ["/sbin/init", "[kthreadd]", "[rcu_gp]", "[kworker/0:1H-events_highpri]", "/lib/systemd/systemd-journald", "/lib/systemd/systemd-udevd",
            "/usr/sbin/cron -f", "/usr/sbin/sshd -D", "sshd: deploy [priv]", "sshd: deploy@pts/0", "-bash", "postgres: 16/main: checkpointer",
            "postgres: 16/main: walwriter", "postgres: payments payments 10.20.0.31(51412) idle", "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",
            "nginx: worker process", "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
            "/usr/bin/containerd-shim-runc-v2 -namespace moby -id {h} -address /run/containerd/containerd.sock",
            "java -Xms512m -Xmx2g -Dfile.encoding=UTF-8 -Dspring.profiles.active=prod -jar /opt/app/app.jar --spring.config.location=/etc/app/",
            "node /srv/web/server.js --port=3000 --session-store=redis --token-file=/run/secrets/web_token",
            "/usr/local/bin/vault agent -config=/etc/vault/agent.hcl", "python3 -m gunicorn app:app --workers=4 --bind=0.0.0.0:8000 --access-logfile=-",
            "/usr/bin/redis-server 127.0.0.1:6379", "kubelet --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml --container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            "ssh-agent -s", "gpg-agent --homedir /home/deploy/.gnupg --use-standard-socket --daemon", "ps aux"]
    for pid in range(1, 2600):
        cmd = R.choice(cmds).replace("{h}", hexsecret(64))
        user = R.choice(["root", "root", "deploy", "postgres", "www-data", "redis", "systemd+", "message+"])
        out.append(f"{user:<8} {pid:>7} {R.random()*3:4.1f} {R.random()*5:4.1f} {R.randint(0, 3000000):>7} {R.randint(0, 900000):>6} {R.choice(['?', 'pts/0', 'pts/1']):<8} {R.choice(['Ss', 'S', 'Sl', 'I<', 'R+', 'S<s']):<4} {R.randint(0,23):02d}:{R.randint(0,59):02d}   {R.randint(0,9)}:{R.randint(0,59):02d} {cmd}")
    return "\n".join(out) + "\n"


def dmesg():
    out = []
    t = 0.0
    msgs = ["Linux version 6.1.0-27-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)",
            "Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-amd64 root=UUID={u} ro quiet",
            "x86/fpu: Supporting XSAVE feature 0x002: 'SSE registers'", "ACPI: RSDP 0x00000000000F0490 000024 (v02 BOCHS )",
            "PCI: Using configuration type 1 for base access", "EXT4-fs (vda1): mounted filesystem {u} with ordered data mode. Quota mode: none.",
            "audit: type=1400 audit({ts}:{n}): apparmor=\"STATUS\" operation=\"profile_load\" profile=\"unconfined\" name=\"/usr/bin/man\" pid={n} comm=\"apparmor_parser\"",
            "virtio_net virtio1 enp1s0: renamed from eth0", "random: crng init done", "systemd[1]: Started systemd-journald.service - Journal Service.",
            "IPv6: ADDRCONF(NETDEV_CHANGE): enp1s0: link becomes ready", "usb 1-1: new high-speed USB device number 2 using xhci_hcd",
            "usb 1-1: New USB device found, idVendor=0627, idProduct=0001, bcdDevice= 0.00", "input: QEMU QEMU USB Tablet as /devices/pci0000:00/0000:00:1d.0/usb1/1-1/1-1:1.0/0003:0627:0001.0001/input/input5",
            "TCP: request_sock_TCP: Possible SYN flooding on port 22. Sending cookies.  Check SNMP counters.",
            "Key type asymmetric registered", "Asymmetric key parser 'x509' registered", "Loaded X.509 cert 'Debian Secure Boot CA: {h}'",
            "integrity: Loaded X.509 cert 'Debian Secure Boot Signer 2022 - linux: {h}'", "zram0: detected capacity change from 0 to 8388608",
            "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/app.service,task=java,pid={n},uid=1001",
            "docker0: port 1(veth{s}) entered forwarding state", "nf_conntrack: default automatic helper assignment has been turned off for security reasons"]
    for _ in range(7000):
        t += R.random() * 0.8
        m = R.choice(msgs).replace("{u}", str(uuid.UUID(int=R.getrandbits(128)))).replace("{h}", hexsecret(40)).replace("{n}", str(R.randint(100, 99999))).replace("{ts}", str(1764600000 + R.randint(0, 99999)) + "." + str(R.randint(100, 999))).replace("{s}", hexsecret(7))
        out.append(f"[{t:12.6f}] {m}")
    return "\n".join(out) + "\n"


def hashes():
    out = []
    for _ in range(2500):
        name = "/".join(R.choice(["usr", "lib", "share", "bin", "x86_64-linux-gnu", "python3", "dist-packages", "node_modules", "src", "assets"]) for _ in range(R.randint(2, 5))) + "/" + rnd(string.ascii_lowercase, R.randint(3, 12)) + R.choice([".so", ".py", ".js", ".tar.gz", ".deb", ".png", ""])
        kind = R.random()
        if kind < 0.5:
            out.append(f"{hexsecret(64)}  {name}")
        elif kind < 0.75:
            out.append(f"{hexsecret(40)}  {name}")
        else:
            out.append(f"{hexsecret(32)}  {name}")
    for _ in range(400):
        out.append(f"sha512-{b64(bytes(R.getrandbits(8) for _ in range(64)))} integrity for {rnd(string.ascii_lowercase, 8)}@{R.randint(1,9)}.{R.randint(0,30)}.{R.randint(0,20)}")
    return "\n".join(out) + "\n"


def ids():
    out = ["NAME                                   READY   STATUS    RESTARTS   AGE   IP            NODE          UID"]
    for _ in range(1500):
        out.append(f"{R.choice(['web', 'api', 'worker', 'payments', 'auth'])}-{hexsecret(10)}-{rnd(string.ascii_lowercase + string.digits, 5)}   1/1     Running   {R.randint(0,4)}          {R.randint(1,90)}d   10.42.{R.randint(0,255)}.{R.randint(0,255)}   node-{R.randint(1,9)}   {uuid.UUID(int=R.getrandbits(128))}")
    out.append("CONTAINER ID   IMAGE                                COMMAND                  CREATED        STATUS        NAMES")
    for _ in range(600):
        out.append(f"{hexsecret(12)}   registry.example.com/app@sha256:{hexsecret(64)}   \"/entrypoint.sh\"   {R.randint(1,9)} days ago   Up {R.randint(1,9)} days   app_{rnd(string.ascii_lowercase, 6)}")
    for _ in range(900):
        out.append(f"Dec 01 08:{R.randint(0,59):02d}:{R.randint(0,59):02d} web-01 app[{R.randint(100,9999)}]: request_id={uuid.UUID(int=R.getrandbits(128))} trace_id={hexsecret(32)} span_id={hexsecret(16)} status=200 bytes={R.randint(100, 99999)}")
    return "\n".join(out) + "\n"


def base64_blobs():
    out = []
    for _ in range(60):
        data = bytes(R.getrandbits(8) for _ in range(R.randint(300, 3000)))
        body = b64(data)
        out.append("$ base64 " + rnd(string.ascii_lowercase, 8) + ".bin")
        out.extend(body[i:i + 76] for i in range(0, len(body), 76))
    for _ in range(30):
        out.append("-----BEGIN CERTIFICATE-----")
        body = b64(bytes([0x30, 0x82]) + bytes(R.getrandbits(8) for _ in range(900)))
        out.extend(body[i:i + 64] for i in range(0, len(body), 64))
        out.append("-----END CERTIFICATE-----")
    for _ in range(30):
        out.append("-----BEGIN PUBLIC KEY-----")
        body = b64(bytes([0x30, 0x82]) + bytes(R.getrandbits(8) for _ in range(290)))
        out.extend(body[i:i + 64] for i in range(0, len(body), 64))
        out.append("-----END PUBLIC KEY-----")
    for _ in range(200):
        out.append(f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{rnd(B64, 43)} {rnd(string.ascii_lowercase, 6)}@{rnd(string.ascii_lowercase, 5)}")
    for _ in range(50):
        out.append(f"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ{rnd(B64, 540)} deploy@ci")
    for _ in range(100):
        payload = b64(json.dumps({"name": rnd(string.ascii_lowercase, 8), "replicas": R.randint(1, 9), "image": "nginx:1.27"}).encode())
        out.append(f'{{"kind":"ConfigMapSnapshot","payload":"{payload}","encoding":"base64"}}')
    for _ in range(40):
        out.append('<img src="data:image/png;base64,' + b64(b"\x89PNG\r\n\x1a\n" + bytes(R.getrandbits(8) for _ in range(600))) + '">')
    return "\n".join(out) + "\n"


def code():
    snippets = [
        'def login(username: str, password: str) -> Session:\n    """Authenticate and return a session; the password is never logged."""\n    token = auth_client.exchange(username, password)\n    if token is None:\n        raise AuthError("invalid credentials")\n    return Session(token=token, expires_at=time.time() + TOKEN_TTL)\n',
        'class Settings(BaseSettings):\n    database_url: PostgresDsn\n    secret_key: SecretStr\n    api_token: str = ""\n    password_min_length: int = 12\n    token_ttl_seconds: int = 3600\n',
        'func (c *Client) Authenticate(ctx context.Context, password string) error {\n\ttoken, err := c.auth.Token(ctx, c.user, password)\n\tif err != nil {\n\t\treturn fmt.Errorf("authenticate: %w", err)\n\t}\n\tc.token = token\n\treturn nil\n}\n',
        'type Config struct {\n\tPassword string `json:"password" yaml:"password"`\n\tToken    string `json:"token,omitempty"`\n\tAPIKey   string `json:"api_key"`\n}\n',
        'export async function refresh(session) {\n  const token = session.refreshToken;\n  const res = await fetch(TOKEN_URL, { method: "POST", body: JSON.stringify({ token }) });\n  if (!res.ok) throw new Error(`refresh failed: ${res.status}`);\n  const { access_token: accessToken, expires_in: expiresIn } = await res.json();\n  return { accessToken, expiresIn };\n}\n',
        'const config = {\n  password: process.env.DB_PASSWORD,\n  apiKey: process.env.API_KEY,\n  secret: options.secret,\n  tokenTtl: 3600,\n};\n',
        'public final class Credentials {\n    private final String username;\n    private final char[] password;\n\n    public Credentials(String username, char[] password) {\n        this.username = username;\n        this.password = password.clone();\n    }\n}\n',
        'struct LoginRequest: Codable {\n    let username: String\n    let password: String\n    let token: String?\n}\n\nfunc hashPassword(_ password: String, salt: [UInt8]) -> [UInt8] {\n    let secret = Array(password.utf8) + salt\n    return SHA256.hash(data: secret).map { $0 }\n}\n',
        'fn verify(token: &str, secret: &[u8]) -> Result<Claims, Error> {\n    let key = DecodingKey::from_secret(secret);\n    let data = decode::<Claims>(token, &key, &Validation::default())?;\n    Ok(data.claims)\n}\n',
        '#!/bin/sh\nset -eu\nPASSWORD="$(cat /run/secrets/db_password)"\nTOKEN=${GITHUB_TOKEN:?set GITHUB_TOKEN}\ncurl -fsS -H "Authorization: Bearer ${TOKEN}" "$API/repos"\nmysql --user=app --password="$PASSWORD" -e "select 1"\n',
        'if password == confirm_password and len(password) >= settings.password_min_length:\n    user.set_password(password)\n    user.save(update_fields=["password"])\nelse:\n    errors["password"] = "passwords do not match"\n',
        'secret_name = f"projects/{project}/secrets/{name}/versions/latest"\nresponse = client.access_secret_version(request={"name": secret_name})\npayload = response.payload.data.decode("UTF-8")\n',
        'apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          env:\n            - name: DB_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: payments-env\n                  key: DB_PASSWORD\n            - name: API_TOKEN\n              valueFrom:\n                secretKeyRef: {name: api, key: token}\n',
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  LOG_LEVEL: info\n  FEATURE_FLAGS: "checkout_v2,new_search"\n  TOKEN_URL: https://auth.example.com/oauth/token\n  nginx.conf: |\n    server {\n      listen 80;\n      location / { proxy_pass http://api:8000; }\n    }\n',
        'postgresql:\n  auth:\n    existingSecret: payments-db\n    secretKeys:\n      adminPasswordKey: postgres-password\n      userPasswordKey: password\n  primary:\n    persistence:\n      size: 50Gi\n',
        'level=info msg="token refreshed" expires_in=3600 token_type=Bearer user=alice\nlevel=warn msg="invalid token: expected 3 parts, got 2" remote=10.0.3.7\nlevel=info msg="password changed" user=bob password_changed_at=2026-11-30T12:00:00Z\n',
        '{"level":"info","msg":"login ok","user":"carol","token_type":"Bearer","expires_in":3600,"password_expires_in_days":12}\n{"usage":{"prompt_tokens":812,"completion_tokens":144,"total_tokens":956},"model":"gpt-4o"}\n',
        'ssh-keygen -t ed25519 -C "deploy@ci" -f ~/.ssh/deploy_key -N ""\nGenerating public/private ed25519 key pair.\nYour identification has been saved in /home/deploy/.ssh/deploy_key\nYour public key has been saved in /home/deploy/.ssh/deploy_key.pub\nThe key fingerprint is:\nSHA256:' + rnd(B64, 43) + ' deploy@ci\n',
    ]
    out = []
    for _ in range(900):
        out.append(R.choice(snippets))
    return "\n".join(out)


def git_log():
    try:
        return subprocess.run(["git", "-C", REPO, "log", "--stat", "-n", "400", "2a364d9"], capture_output=True, text=True, check=True).stdout
    except Exception:
        return ""


def own_sources():
    out = []
    for root in ["Sources/Bastion", "Sources/Recording", "Sources/Issuance", "Sources/Policy", "Sources/CertificateAuthority", "Sources/gatehouse", "scripts"]:
        for dirpath, _, files in sorted(os.walk(os.path.join(REPO, root))):
            for f in sorted(files):
                if f.endswith((".swift", ".sh", ".py")):
                    path = os.path.join(dirpath, f)
                    out.append(f"$ cat {os.path.relpath(path, REPO)}\n" + open(path, encoding="utf-8").read())
    return "\n".join(out)


def packages():
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Version}\t${Architecture}\t${Installed-Size}\n"], capture_output=True, text=True, check=True).stdout
    except Exception:
        return ""


neg["manpages.txt"] = manpage()
neg["ps-aux.txt"] = ps_aux()
neg["dmesg.txt"] = dmesg()
neg["hashes.txt"] = hashes()
neg["ids.txt"] = ids()
neg["base64-blobs.txt"] = base64_blobs()
neg["code-snippets.txt"] = code()
neg["git-log.txt"] = git_log()
neg["gatehouse-sources.txt"] = own_sources()[:700_000]
neg["packages.txt"] = packages()

# ---------------------------------------------------------------- write

pos_dir, neg_dir = os.path.join(HERE, "positive"), os.path.join(HERE, "negative")
os.makedirs(pos_dir, exist_ok=True)
os.makedirs(neg_dir, exist_ok=True)
for name, c in cases.items():
    text = "".join(c.parts)
    for s in c.secrets:
        assert s["value"] in text, (name, s)
    with open(os.path.join(pos_dir, name), "w") as f:
        f.write(text)
    with open(os.path.join(pos_dir, name.rsplit(".", 1)[0] + ".secrets.json"), "w") as f:
        json.dump({"case": name, "secrets": c.secrets}, f, indent=1)
        f.write("\n")
total = 0
for name, text in neg.items():
    if text:
        with open(os.path.join(neg_dir, name), "w") as f:
            f.write(text)
        total += len(text.encode())
print(f"{len(cases)} positive cases, {sum(len(c.secrets) for c in cases.values())} secrets; negative {total / 1048576:.2f} MiB")
