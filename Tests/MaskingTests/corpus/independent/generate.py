#!/usr/bin/env python3
"""Generate the red-team positive corpus: realistic command output with planted, labelled,
random (fake) secrets. Each pos/NAME.txt has pos/NAME.secrets.json = [{secret,type,group}]."""
import base64, json, os, secrets, string, subprocess, tempfile, random, hashlib, uuid

OUT = os.path.dirname(os.path.abspath(__file__))
os.makedirs(OUT, exist_ok=True)
R = random.Random(secrets.randbits(64))

AL = string.ascii_letters + string.digits
UP = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = string.ascii_letters + string.digits + "+/"
B64U = string.ascii_letters + string.digits + "-_"

def rs(chars, n): return "".join(secrets.choice(chars) for _ in range(n))
def alnum(n): return rs(AL, n)
def hexs(n): return rs(HEX, n)
def b64(nbytes): return base64.b64encode(secrets.token_bytes(nbytes)).decode()
def b64u(nbytes): return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode().rstrip("=")
def pw(n=None):
    n = n or R.randint(12, 22)
    while True:
        p = rs(AL + "!#%^*-_+.", n)
        if any(c.isdigit() for c in p) and any(c.isupper() for c in p): return p
def urlpw(n=None):
    n = n or R.randint(14, 24)
    return rs(AL + "-._~", n)
def human_pw():
    w = R.choice(["Summer", "Winter", "Falcon", "Orange", "Paris", "Dragon", "Monkey", "Tiger"])
    return f"{w}{R.randint(1980,2031)}{R.choice('!@#$%&')}{R.choice(['Prod','Db','x','Ops',''])}{secrets.randbelow(100)}"

CORE = {"aws-access-key-id", "github-pat", "github-oauth", "github-app", "github-refresh", "github-fine-grained",
        "gitlab-pat", "gitlab-runner", "gitlab-deploy", "gitlab-cicd-job", "slack-bot", "slack-user", "slack-app", "slack-webhook",
        "stripe-secret", "stripe-restricted", "stripe-webhook", "google-api-key", "google-oauth-secret",
        "google-oauth-access", "openai-key", "openai-legacy", "anthropic-key"}
EXT = {"npm-token", "pypi-token", "huggingface", "sendgrid", "twilio-api-key", "mailgun-key", "digitalocean",
       "shopify", "vault-token", "dockerhub-pat", "grafana-sa", "postman", "linear", "databricks", "pulumi",
       "atlassian", "newrelic", "doppler", "age-key", "heroku-new", "jwt", "sentry-dsn", "terraform-cloud",
       "github-fine-grained-old", "sq-access", "figma", "supabase", "notion", "airtable", "telegram-bot",
       "discord-bot", "mailchimp"}

def group(t):
    if t.startswith("private-key"): return "pem"
    if t in CORE: return "core-prefixed"
    if t in EXT: return "ext-prefixed"
    return "generic"

# ---------- token shapes ----------
def aws_id(p="AKIA"): return p + rs("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
def aws_secret(): return rs(AL + "/+", 40)
def aws_session(): return "IQoJb3JpZ2luX2VjE" + rs(AL + "/+", 600) + "=="
def ghp(p="ghp_"): return p + alnum(36)
def gh_fine(): return "github_pat_11" + rs(UP, 20) + "_" + alnum(59)
def glpat(): return "glpat-" + rs(AL + "-_", 20)
def glpat_new(): return "glpat-" + rs(B64U, 27) + ".01." + rs(string.ascii_lowercase + string.digits, 9)
def glrt(): return "glrt-" + rs(AL + "-_", 20)
def gldt(): return "gldt-" + rs(AL + "-_", 20)
def glcbt(): return "glcbt-64_" + rs(AL + "-_", 20)
def xoxb(): return f"xoxb-{R.randint(10**10, 10**12)}-{R.randint(10**12, 10**13)}-{alnum(24)}"
def xoxp(): return f"xoxp-{R.randint(10**10, 10**12)}-{R.randint(10**10, 10**12)}-{R.randint(10**12, 10**13)}-{hexs(32)}"
def xapp(): return f"xapp-1-A{rs(UP, 10)}-{R.randint(10**12, 10**13)}-{hexs(64)}"
def slack_hook(): return f"T{rs(UP,8)}/B{rs(UP,10)}/{alnum(24)}"
def sk_live(p="sk_live_"): return p + alnum(R.choice([24, 99]))
def whsec(): return "whsec_" + alnum(32)
def aiza(): return "AIza" + rs(AL + "-_", 35)
def gocspx(): return "GOCSPX-" + rs(AL + "-_", 28)
def ya29(): return "ya29.a0A" + rs(AL + "-_", 180)
def openai_proj(): return "sk-proj-" + rs(AL + "-_", 74) + "T3BlbkFJ" + rs(AL + "-_", 74)
def openai_legacy(): return "sk-" + alnum(20) + "T3BlbkFJ" + alnum(20)
def openai_svc(): return "sk-svcacct-" + rs(AL + "-_", 74) + "T3BlbkFJ" + rs(AL + "-_", 74)
def anthropic(): return "sk-ant-api03-" + rs(AL + "-_", 93) + "AA"
def npm(): return "npm_" + alnum(36)
def pypi(): return "pypi-AgEIcHlwaS5vcmc" + rs(B64U, 150)
def hf(): return "hf_" + rs(string.ascii_letters, 34)
def sendgrid(): return "SG." + rs(AL + "-_", 22) + "." + rs(AL + "-_", 43)
def twilio_sk(): return "SK" + hexs(32)
def mailgun(): return "key-" + hexs(32)
def dop(): return "dop_v1_" + hexs(64)
def shpat(): return "shpat_" + hexs(32)
def hvs(): return "hvs.CAESI" + rs(AL + "-_", 86)
def dckr(): return "dckr_pat_" + rs(AL + "-_", 27)
def glsa(): return "glsa_" + alnum(32) + "_" + hexs(8)
def pmak(): return "PMAK-" + hexs(24) + "-" + hexs(34)
def linear(): return "lin_api_" + alnum(40)
def dapi(): return "dapi" + hexs(32)
def pulumi(): return "pul-" + hexs(40)
def atlassian(): return "ATATT3xFfGF0" + rs(AL + "-_", 180) + "=" + hexs(8).upper()
def nrak(): return "NRAK-" + rs(UP, 27)
def doppler(): return "dp.st.prd." + alnum(43)
def agekey(): return "AGE-SECRET-KEY-1" + rs("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L".upper(), 58)
def hrku(): return "HRKU-AA" + rs(AL + "-_", 58)
def tfc(): return alnum(14) + ".atlasv1." + alnum(67)
def figma(): return "figd_" + rs(AL + "-_", 40)
def supabase(): return "sbp_" + hexs(40)
def notion(): return "ntn_" + alnum(46)
def telegram(): return f"{R.randint(10**8, 10**10)}:AA{rs(AL + '-_', 33)}"
def mailchimp(): return hexs(32) + "-us" + str(R.randint(1, 21))
def sq(): return "EAAA" + rs(AL + "-_", 60)
def azure_key(): return b64(64)
def azure_client_secret(): return alnum(3) + "8Q~" + rs(AL + "-_.~", 34)
def django_key(): return "django-insecure-" + rs(string.ascii_lowercase + string.digits + "!@#%^&*(-_=+)", 50)
def jwt(alg="RS256", typ=True, kid=True, claims=None, sig_bytes=256):
    h = {"alg": alg}
    if typ: h["typ"] = "JWT"
    if kid: h["kid"] = b64u(20)
    c = claims or {"sub": str(uuid.uuid4()), "iss": "https://auth.example-corp.io/", "aud": "api",
                   "iat": 1714000000 + R.randint(0, 10**6), "exp": 1715000000 + R.randint(0, 10**6),
                   "scope": "read:orders write:orders"}
    enc = lambda o: base64.urlsafe_b64encode(json.dumps(o, separators=(",", ":")).encode()).decode().rstrip("=")
    return enc(h) + "." + enc(c) + "." + b64u(sig_bytes)

_keycache = {}
def pem(kind):
    d = tempfile.mkdtemp()
    f = os.path.join(d, "k")
    if kind == "rsa":
        out = subprocess.run(["openssl", "genrsa", "-traditional", "2048"], capture_output=True, text=True).stdout
    elif kind == "rsa4096":
        out = subprocess.run(["openssl", "genrsa", "-traditional", "4096"], capture_output=True, text=True).stdout
    elif kind == "ec":
        out = subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout"], capture_output=True, text=True).stdout
    elif kind == "pkcs8":
        out = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], capture_output=True, text=True).stdout
    elif kind == "ed25519-pkcs8":
        out = subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519"], capture_output=True, text=True).stdout
    elif kind == "pkcs8-enc":
        out = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                              "-aes-256-cbc", "-pass", "pass:" + alnum(20)], capture_output=True, text=True).stdout
    elif kind == "rsa-enc":
        k = subprocess.run(["openssl", "genrsa", "-traditional", "2048"], capture_output=True, text=True).stdout
        out = subprocess.run(["openssl", "rsa", "-traditional", "-aes256", "-passout", "pass:" + alnum(20)], input=k,
                             capture_output=True, text=True).stdout
    elif kind in ("openssh", "openssh-rsa", "openssh-enc"):
        t = "rsa" if kind == "openssh-rsa" else "ed25519"
        args = ["ssh-keygen", "-q", "-t", t, "-f", f, "-N", alnum(16) if kind == "openssh-enc" else "", "-C", "deploy@ci"]
        if t == "rsa": args[4:4] = ["-b", "3072"]
        subprocess.run(args, check=True)
        out = open(f).read()
    else:
        raise ValueError(kind)
    assert "PRIVATE KEY" in out, (kind, out)
    return out

def pem_body(p):
    """The secret part of a PEM: everything between BEGIN and END lines (headers+base64)."""
    lines = p.strip("\n").split("\n")
    return "\n".join(lines[1:-1])

# ---------- corpus writer ----------
FILES = []
class Doc:
    def __init__(self, name):
        self.name, self.secrets = name, []
    def s(self, typ, value, label=None):
        self.secrets.append({"secret": label if label is not None else value, "type": typ})
        return value
    def key(self, kind, typ=None, p=None):
        p = p or pem(kind)
        self.secrets.append({"secret": pem_body(p), "type": typ or ("private-key-" + kind)})
        return p
    def write(self, text, binary=False):
        path = os.path.join(OUT, self.name)
        with open(path, "wb") as f:
            f.write(text if binary else text.encode())
        data = open(path, "rb").read().decode("utf-8", "replace")
        for s in self.secrets:
            s["group"] = group(s["type"])
            chk = s["secret"]
            if s["type"].startswith("private-key") and chk not in data:
                chk = chk.replace("\n", "\\n")
                if chk in data: s["escaped"] = "json"
            if chk not in data:
                # indented in YAML
                parts = [l.strip() for l in s["secret"].split("\n") if l.strip()]
                assert all(p in data for p in parts), (self.name, s["type"], s["secret"][:40])
        json.dump(self.secrets, open(path + ".secrets.json", "w"), indent=1)
        FILES.append(self.name)

def gen():
    # 1 env dump (developer laptop)
    d = Doc("01_env_dev.txt")
    d.write(f"""SHELL=/bin/bash
COLORTERM=truecolor
HISTCONTROL=ignoredups:erasedups
PWD=/home/maria/src/billing-service
LOGNAME=maria
XDG_SESSION_TYPE=tty
AWS_ACCESS_KEY_ID={d.s('aws-access-key-id', aws_id())}
AWS_SECRET_ACCESS_KEY={d.s('aws-secret-access-key', aws_secret())}
AWS_DEFAULT_REGION=eu-west-1
HOME=/home/maria
LANG=en_US.UTF-8
GITHUB_TOKEN={d.s('github-pat', ghp())}
OPENAI_API_KEY={d.s('openai-key', openai_proj())}
ANTHROPIC_API_KEY={d.s('anthropic-key', anthropic())}
DATABASE_URL=postgres://billing:{d.s('url-password', urlpw())}@pg-primary.internal:5432/billing?sslmode=require
LS_COLORS=rs=0:di=01;34:ln=01;36:mh=00:pi=40;33:so=01;35:do=01;35:bd=40;33;01:cd=40;33;01:or=40;31;01:mi=00:su=37;41:sg=30;43:ca=00:tw=30;42:ow=34;42:st=37;44:ex=01;32
SSH_CONNECTION=10.0.4.17 51234 10.0.9.2 22
LESSCLOSE=/usr/bin/lesspipe %s %s
TERM=xterm-256color
USER=maria
SHLVL=1
HF_TOKEN={d.s('huggingface', hf())}
SSH_CLIENT=10.0.4.17 51234 22
PATH=/home/maria/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
STRIPE_SECRET_KEY={d.s('stripe-secret', sk_live())}
MAIL=/var/mail/maria
SSH_TTY=/dev/pts/0
_=/usr/bin/env
""")
    # 2 CI runner env
    d = Doc("02_env_ci_runner.txt")
    d.write(f"""CI=true
CI_COMMIT_SHA={hashlib.sha1(os.urandom(8)).hexdigest()}
CI_COMMIT_REF_NAME=main
CI_JOB_ID=6234{R.randint(100000,999999)}
CI_JOB_TOKEN={d.s('gitlab-cicd-job', glcbt())}
CI_PIPELINE_ID=128{R.randint(10000,99999)}
CI_PROJECT_PATH=platform/payments-api
CI_REGISTRY=registry.gitlab.com
CI_REGISTRY_USER=gitlab-ci-token
CI_REGISTRY_PASSWORD={d.s('gitlab-cicd-job', glcbt())}
CI_SERVER_URL=https://gitlab.com
GITLAB_USER_EMAIL=dev@example.org
NPM_TOKEN={d.s('npm-token', npm())}
SENTRY_AUTH_TOKEN=sntrys_{d.s('sentry-auth', b64u(60))}
DOCKERHUB_TOKEN={d.s('dockerhub-pat', dckr())}
SLACK_BOT_TOKEN={d.s('slack-bot', xoxb())}
DIGITALOCEAN_ACCESS_TOKEN={d.s('digitalocean', dop())}
VAULT_TOKEN={d.s('vault-token', hvs())}
VAULT_ADDR=https://vault.internal:8200
TWINE_PASSWORD={d.s('pypi-token', pypi())}
TWINE_USERNAME=__token__
DD_API_KEY={d.s('datadog-api-key', hexs(32))}
HOSTNAME=runner-xk2j-project-4411-concurrent-0
HOME=/root
PATH=/usr/local/bin:/usr/bin:/bin
""")
    # 3 .env rails
    d = Doc("03_dotenv_rails.env")
    d.write(f"""# Local development settings -- do not commit
RAILS_ENV=development
SECRET_KEY_BASE={d.s('rails-secret-key-base', hexs(128))}
DATABASE_URL=postgresql://rails:{d.s('url-password', urlpw())}@localhost/shop_development
REDIS_URL=redis://:{d.s('url-password', urlpw())}@redis.internal:6379/0
SMTP_USERNAME=apikey
SMTP_PASSWORD={d.s('sendgrid', sendgrid())}
STRIPE_PUBLISHABLE_KEY=pk_test_{alnum(24)}
STRIPE_SECRET_KEY={d.s('stripe-secret', sk_live('sk_test_'))}
STRIPE_WEBHOOK_SECRET={d.s('stripe-webhook', whsec())}
AWS_ACCESS_KEY_ID={d.s('aws-access-key-id', aws_id())}
AWS_SECRET_ACCESS_KEY={d.s('aws-secret-access-key', aws_secret())}
S3_BUCKET=shop-dev-uploads
GOOGLE_MAPS_API_KEY={d.s('google-api-key', aiza())}
DEVISE_JWT_SECRET_KEY={d.s('generic-secret', hexs(64))}
""")
    # 4 .env node with quotes, export, comments
    d = Doc("04_dotenv_node.env")
    d.write(f"""# API
PORT=3000
NODE_ENV=production
export JWT_SECRET="{d.s('generic-secret', pw(32))}"
SESSION_SECRET='{d.s('generic-secret', alnum(40))}'
MONGODB_URI="mongodb+srv://appuser:{d.s('url-password', urlpw())}@cluster0.ab1cd.mongodb.net/app?retryWrites=true&w=majority"
SENDGRID_API_KEY="{d.s('sendgrid', sendgrid())}"
TWILIO_ACCOUNT_SID=AC{hexs(32)}
TWILIO_AUTH_TOKEN={d.s('twilio-auth-token', hexs(32))}
TWILIO_API_KEY={d.s('twilio-api-key', twilio_sk())}
TWILIO_API_SECRET={d.s('generic-secret', alnum(32))}
MAILGUN_API_KEY={d.s('mailgun-key', mailgun())}
MAILGUN_DOMAIN=mg.example.com
DISCORD_BOT_TOKEN={d.s('discord-bot', 'MT' + alnum(24) + '.' + rs(AL+'-_', 6) + '.' + rs(AL+'-_', 38))}
TELEGRAM_BOT_TOKEN={d.s('telegram-bot', telegram())}
LINEAR_API_KEY={d.s('linear', linear())}
POSTMAN_API_KEY={d.s('postman', pmak())}
ADMIN_PASSWORD={d.s('password', human_pw())}
""")
    # 5 django .env and settings
    d = Doc("05_django_settings.py")
    d.write(f"""import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# SECURITY WARNING: keep the secret key used in production secret!
SECRET_KEY = '{d.s('django-secret-key', django_key())}'

DEBUG = False
ALLOWED_HOSTS = ['api.example.com']

DATABASES = {{
    'default': {{
        'ENGINE': 'django.db.backends.postgresql',
        'NAME': 'orders',
        'USER': 'orders_app',
        'PASSWORD': '{d.s('password', pw())}',
        'HOST': 'db.prod.internal',
        'PORT': '5432',
    }}
}}

EMAIL_HOST = 'smtp.mailgun.org'
EMAIL_HOST_USER = 'postmaster@mg.example.com'
EMAIL_HOST_PASSWORD = '{d.s('password', hexs(32) + '-' + hexs(8) + '-' + hexs(8))}'

AWS_STORAGE_BUCKET_NAME = 'orders-static'
AWS_S3_ACCESS_KEY_ID = '{d.s('aws-access-key-id', aws_id())}'
AWS_S3_SECRET_ACCESS_KEY = '{d.s('aws-secret-access-key', aws_secret())}'
SENTRY_DSN = 'https://{d.s('sentry-dsn', hexs(32))}@o{R.randint(100000,999999)}.ingest.sentry.io/{R.randint(1000000,9999999)}'
""")
    # 6 docker inspect
    d = Doc("06_docker_inspect.json")
    envs = [f"POSTGRES_PASSWORD={d.s('password', pw())}", "POSTGRES_USER=app", "POSTGRES_DB=app",
            f"API_TOKEN={d.s('generic-token', alnum(40))}", f"GITLAB_TOKEN={d.s('gitlab-pat', glpat())}",
            f"REDIS_URL=redis://default:{d.s('url-password', urlpw())}@redis:6379",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOSU_VERSION=1.17", "LANG=en_US.utf8",
            "PG_MAJOR=16", "PGDATA=/var/lib/postgresql/data"]
    cid = hexs(64)
    insp = [{"Id": cid, "Created": "2024-05-02T09:14:11.123456789Z", "Path": "docker-entrypoint.sh", "Args": ["postgres"],
             "State": {"Status": "running", "Running": True, "Paused": False, "Pid": 2311, "ExitCode": 0,
                       "StartedAt": "2024-05-02T09:14:12.001Z"},
             "Image": "sha256:" + hexs(64), "ResolvConfPath": f"/var/lib/docker/containers/{cid}/resolv.conf",
             "Name": "/app-db-1", "RestartCount": 0, "Driver": "overlay2", "Platform": "linux",
             "HostConfig": {"Binds": ["pgdata:/var/lib/postgresql/data"], "NetworkMode": "app_default",
                            "PortBindings": {"5432/tcp": [{"HostIp": "", "HostPort": "5432"}]}},
             "Config": {"Hostname": cid[:12], "Env": envs, "Cmd": ["postgres"], "Image": "postgres:16",
                        "Labels": {"com.docker.compose.project": "app", "com.docker.compose.service": "db"}},
             "NetworkSettings": {"IPAddress": "", "Networks": {"app_default": {"IPAddress": "172.18.0.2",
                                 "MacAddress": "02:42:ac:12:00:02", "NetworkID": hexs(64), "EndpointID": hexs(64)}}}}]
    d.write(json.dumps(insp, indent=4) + "\n")
    # 7 docker compose config
    d = Doc("07_docker_compose_config.yaml")
    d.write(f"""name: shop
services:
  api:
    build:
      context: /srv/shop/api
      dockerfile: Dockerfile
    environment:
      DATABASE_URL: postgres://shop:{d.s('url-password', urlpw())}@db:5432/shop
      JWT_SIGNING_KEY: {d.s('generic-secret', b64(32))}
      OPENAI_API_KEY: {d.s('openai-legacy', openai_legacy())}
      RABBITMQ_URL: amqp://shop:{d.s('url-password', urlpw())}@mq:5672/
      LOG_LEVEL: info
    networks:
      default: null
    ports:
      - mode: ingress
        target: 8080
        published: "8080"
        protocol: tcp
  db:
    environment:
      MYSQL_ROOT_PASSWORD: {d.s('password', pw())}
      MYSQL_PASSWORD: {d.s('password', human_pw())}
      MYSQL_USER: shop
    image: mysql:8.0
networks:
  default:
    name: shop_default
""")
    # 8 kubectl get secret -o yaml
    d = Doc("08_kubectl_secret.yaml")
    v1, v2, v3 = pw(), alnum(32), "postgres://app:" + urlpw() + "@pg:5432/app"
    d.write(f"""apiVersion: v1
data:
  DB_PASSWORD: {d.s('k8s-secret-data', base64.b64encode(v1.encode()).decode())}
  api-key: {d.s('k8s-secret-data', base64.b64encode(v2.encode()).decode())}
  database-url: {d.s('k8s-secret-data', base64.b64encode(v3.encode()).decode())}
  username: YXBw
kind: Secret
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {{"apiVersion":"v1","kind":"Secret","metadata":{{"annotations":{{}},"name":"app-credentials","namespace":"prod"}},"type":"Opaque"}}
  creationTimestamp: "2024-04-11T08:21:44Z"
  name: app-credentials
  namespace: prod
  resourceVersion: "{R.randint(10**6,10**8)}"
  uid: {uuid.uuid4()}
type: Opaque
""")
    # 9 kubectl get secret -o json
    d = Doc("09_kubectl_secret.json")
    vals = {"AWS_ACCESS_KEY_ID": aws_id(), "AWS_SECRET_ACCESS_KEY": aws_secret(), "redis-password": pw()}
    data = {k: d.s('k8s-secret-data', base64.b64encode(v.encode()).decode()) for k, v in vals.items()}
    d.write(json.dumps({"apiVersion": "v1", "data": data, "kind": "Secret",
                        "metadata": {"creationTimestamp": "2024-03-01T10:00:00Z", "name": "s3-creds", "namespace": "etl",
                                     "resourceVersion": "99812", "uid": str(uuid.uuid4())}, "type": "Opaque"}, indent=4) + "\n")
    # 10 TLS secret
    d = Doc("10_kubectl_secret_tls.yaml")
    crt_b = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(os.urandom(900)) + b"-----END CERTIFICATE-----\n").decode()
    key_b = base64.b64encode(pem("rsa").encode()).decode()
    d.write(f"""apiVersion: v1
data:
  tls.crt: {crt_b}
  tls.key: {d.s('k8s-secret-data', key_b)}
kind: Secret
metadata:
  name: ingress-tls
  namespace: web
type: kubernetes.io/tls
""")
    # 11 dockerconfigjson secret
    d = Doc("11_kubectl_secret_regcred.yaml")
    auth = base64.b64encode(("robot$ci:" + alnum(32)).encode()).decode()
    dcj = json.dumps({"auths": {"harbor.example.com": {"username": "robot$ci", "password": "x", "auth": auth}}})
    d.write(f"""apiVersion: v1
kind: Secret
metadata:
  name: regcred
  namespace: default
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: {d.s('k8s-secret-data', base64.b64encode(dcj.encode()).decode())}
""")
    # 12 list of secrets with stringData and a service account token secret
    d = Doc("12_kubectl_get_secrets_list.yaml")
    sa = jwt(kid=True, typ=False, claims={"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": "ci",
                                          "kubernetes.io/serviceaccount/secret.name": "deployer-token-x7k2p",
                                          "kubernetes.io/serviceaccount/service-account.name": "deployer",
                                          "sub": "system:serviceaccount:ci:deployer"})
    d.write(f"""apiVersion: v1
items:
- apiVersion: v1
  data:
    ca.crt: {base64.b64encode(os.urandom(800)).decode()}
    namespace: Y2k=
    token: {d.s('k8s-secret-data', base64.b64encode(sa.encode()).decode())}
  kind: Secret
  metadata:
    annotations:
      kubernetes.io/service-account.name: deployer
      kubernetes.io/service-account.uid: {uuid.uuid4()}
    name: deployer-token-x7k2p
    namespace: ci
  type: kubernetes.io/service-account-token
- apiVersion: v1
  kind: Secret
  metadata:
    name: webhook-config
    namespace: ci
  stringData:
    slack_webhook_url: https://hooks.slack.com/services/{d.s('slack-webhook', slack_hook())}
    github_app_private_key_passphrase: {d.s('password', pw())}
  type: Opaque
kind: List
metadata:
  resourceVersion: ""
""")
    # 13 kubeconfig with token
    d = Doc("13_kubeconfig_token.yaml")
    d.write(f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {base64.b64encode(os.urandom(1000)).decode()}
    server: https://10.20.0.1:6443
  name: prod
contexts:
- context:
    cluster: prod
    namespace: default
    user: deployer
  name: deployer@prod
current-context: deployer@prod
kind: Config
preferences: {{}}
users:
- name: deployer
  user:
    token: {d.s('jwt', jwt(typ=False))}
- name: legacy-admin
  user:
    token: {d.s('generic-token', alnum(6).lower() + '.' + alnum(16).lower())}
- name: basic
  user:
    username: admin
    password: {d.s('password', pw())}
""")
    # 14 kubeconfig with client-key-data
    d = Doc("14_kubeconfig_certs.yaml")
    ck = base64.b64encode(pem("ec").encode()).decode()
    d.write(f"""apiVersion: v1
kind: Config
clusters:
- name: kind-dev
  cluster:
    server: https://127.0.0.1:40213
    certificate-authority-data: {base64.b64encode(os.urandom(1050)).decode()}
users:
- name: kind-dev
  user:
    client-certificate-data: {base64.b64encode(os.urandom(1100)).decode()}
    client-key-data: {d.s('kube-client-key-data', ck)}
contexts:
- name: kind-dev
  context:
    cluster: kind-dev
    user: kind-dev
current-context: kind-dev
""")
    # 15 aws credentials
    d = Doc("15_aws_credentials")
    d.write(f"""[default]
aws_access_key_id = {d.s('aws-access-key-id', aws_id())}
aws_secret_access_key = {d.s('aws-secret-access-key', aws_secret())}

[prod-admin]
aws_access_key_id={d.s('aws-access-key-id', aws_id())}
aws_secret_access_key={d.s('aws-secret-access-key', aws_secret())}
region=us-east-1

[temp]
aws_access_key_id = {d.s('aws-access-key-id', aws_id('ASIA'))}
aws_secret_access_key = {d.s('aws-secret-access-key', aws_secret())}
aws_session_token = {d.s('aws-session-token', aws_session())}
""")
    # 16 aws config
    d = Doc("16_aws_config")
    d.write(f"""[default]
region = eu-central-1
output = json

[profile ci]
role_arn = arn:aws:iam::{R.randint(10**11, 10**12-1)}:role/ci-deployer
source_profile = default
external_id = {alnum(24)}

[profile legacy]
aws_access_key_id = {d.s('aws-access-key-id', aws_id())}
aws_secret_access_key = {d.s('aws-secret-access-key', aws_secret())}
""")
    # 17 sts assume role
    d = Doc("17_aws_sts_assume_role.json")
    d.write(json.dumps({"Credentials": {"AccessKeyId": d.s('aws-access-key-id', aws_id('ASIA')),
                                        "SecretAccessKey": d.s('aws-secret-access-key', aws_secret()),
                                        "SessionToken": d.s('aws-session-token', aws_session()),
                                        "Expiration": "2024-05-02T11:14:11+00:00"},
                        "AssumedRoleUser": {"AssumedRoleId": "AROA" + rs(UP, 17) + ":ci", "Arn": "arn:aws:sts::123456789012:assumed-role/ci/ci"}},
                       indent=4) + "\n")
    # 18 netrc
    d = Doc("18_netrc")
    d.write(f"""machine github.com
  login maria
  password {d.s('github-pat', ghp())}
machine api.heroku.com
  login maria@example.com
  password {d.s('heroku-api-key', str(uuid.uuid4()))}
machine nexus.internal login deploy password {d.s('password', pw())}
default login anonymous password guest@
""")
    # 19 npmrc
    d = Doc("19_npmrc")
    d.write(f"""registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={d.s('npm-token', npm())}
@acme:registry=https://npm.pkg.github.com
//npm.pkg.github.com/:_authToken={d.s('github-pat', ghp())}
//nexus.internal/repository/npm/:_auth={d.s('npm-basic-auth', base64.b64encode(('deploy:' + pw()).encode()).decode())}
always-auth=true
save-exact=true
""")
    # 20 pypirc
    d = Doc("20_pypirc")
    d.write(f"""[distutils]
index-servers =
    pypi
    internal

[pypi]
username = __token__
password = {d.s('pypi-token', pypi())}

[internal]
repository = https://pypi.internal.example.com/simple/
username = ci-bot
password = {d.s('password', pw())}
""")
    # 21 docker config.json
    d = Doc("21_docker_config.json")
    d.write(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": d.s('docker-auth', base64.b64encode(("maria:" + dckr()).encode()).decode())},
                                  "ghcr.io": {"auth": d.s('docker-auth', base64.b64encode(("maria:" + ghp()).encode()).decode())},
                                  "123456789012.dkr.ecr.eu-west-1.amazonaws.com": {"identitytoken": d.s('generic-token', b64(120))}},
                        "credsStore": "", "currentContext": "default",
                        "HttpHeaders": {"User-Agent": "Docker-Client/24.0.7 (linux)"}}, indent="\t") + "\n")
    # 22 git remote -v
    d = Doc("22_git_remote_v.txt")
    t1, t2, t3 = d.s('github-app', ghp('ghs_')), d.s('gitlab-pat', glpat_new()), d.s('url-password', urlpw())
    t4 = d.s('github-fine-grained', gh_fine())
    d.write(f"""$ git remote -v
origin\thttps://x-access-token:{t1}@github.com/acme/payments.git (fetch)
origin\thttps://x-access-token:{t1}@github.com/acme/payments.git (push)
gitlab\thttps://oauth2:{t2}@gitlab.com/acme/payments.git (fetch)
gitlab\thttps://oauth2:{t2}@gitlab.com/acme/payments.git (push)
bb\thttps://maria:{t3}@bitbucket.org/acme/payments.git (fetch)
bb\thttps://maria:{t3}@bitbucket.org/acme/payments.git (push)
mirror\thttps://{t4}@github.com/acme/payments-mirror.git (fetch)
mirror\thttps://{t4}@github.com/acme/payments-mirror.git (push)
""")
    # 23 .git/config
    d = Doc("23_git_config")
    basic = base64.b64encode(("x-access-token:" + ghp('ghs_')).encode()).decode()
    d.write(f"""[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = false
\tlogallrefupdates = true
[remote "origin"]
\turl = https://{d.s('github-oauth', ghp('gho_'))}@github.com/acme/infra.git
\tfetch = +refs/heads/*:refs/remotes/origin/*
[http "https://github.com/"]
\textraheader = AUTHORIZATION: basic {d.s('basic-auth', basic)}
[branch "main"]
\tremote = origin
\tmerge = refs/heads/main
""")
    # 24 GitHub Actions log with timestamps + ANSI
    d = Doc("24_github_actions.log")
    ts = lambda i: f"2024-05-02T10:{i//60:02d}:{i%60:02d}.{R.randint(1000000,9999999)}Z"
    lines = []
    i = 0
    def L(s):
        nonlocal i; i += 1; lines.append(f"{ts(i)} {s}")
    L("##[group]Run actions/checkout@v4"); L("with:"); L("  repository: acme/web"); L("  token: ***"); L("##[endgroup]")
    L("##[group]Run ./scripts/deploy.sh"); L("\x1b[36;1m./scripts/deploy.sh\x1b[0m")
    L("shell: /usr/bin/bash -e {0}"); L("env:"); L("  NODE_VERSION: 20")
    L("##[endgroup]")
    L(f"+ curl -sS -H 'Authorization: token {d.s('github-pat', ghp())}' https://api.github.com/repos/acme/web/releases")
    L(f"+ export AWS_ACCESS_KEY_ID={d.s('aws-access-key-id', aws_id())}")
    L(f"+ export AWS_SECRET_ACCESS_KEY={d.s('aws-secret-access-key', aws_secret())}")
    L(f"\x1b[32mdebug\x1b[0m config loaded: {{\"slackToken\":\"{d.s('slack-bot', xoxb())}\",\"region\":\"eu-west-1\"}}")
    L(f"\x1b[33mwarning\x1b[0m: using fallback key {d.s('anthropic-key', anthropic())}")
    L(f"Deploying with NPM_TOKEN={d.s('npm-token', npm())}")
    L(f"Run echo \"::add-mask::{d.s('github-refresh', ghp('ghr_'))}\"")
    L("Error: Process completed with exit code 1.")
    d.write("\n".join(lines) + "\n")
    # 25 GitLab CI log
    d = Doc("25_gitlab_ci.log")
    pwd = d.s('password', pw())
    d.write(f"""\x1b[0KRunning with gitlab-runner 16.11.0 (91a27b2a)\x1b[0;m
\x1b[0K  on docker-autoscaler-01 xT3kq9, system ID: s_{hexs(12)}\x1b[0;m
\x1b[0K\x1b[36;1mPreparing the "docker" executor\x1b[0;m\x1b[0;m
Using Docker executor with image docker:24.0.5 ...
\x1b[32;1mGetting source from Git repository\x1b[0;m
Fetching changes with git depth set to 20...
Initialized empty Git repository in /builds/acme/api/.git/
Created fresh repository.
\x1b[32;1m$ docker login -u deploy -p {pwd} registry.acme.io\x1b[0;m
WARNING! Using --password via the CLI is insecure. Use --password-stdin.
Login Succeeded
\x1b[32;1m$ echo "$KUBE_TOKEN" | head -c 400\x1b[0;m
{d.s('jwt', jwt())}
\x1b[32;1m$ helm upgrade --install api ./chart --set image.tag=1.4.2 --set secrets.gitlabToken={d.s('gitlab-pat', glpat())} --set db.password={d.s('password', pw())}\x1b[0;m
Release "api" has been upgraded. Happy Helming!
\x1b[32;1m$ curl --header "PRIVATE-TOKEN: {d.s('gitlab-pat', glpat_new())}" "https://gitlab.com/api/v4/projects/1234/releases"\x1b[0;m
[{{"name":"v1.4.2","tag_name":"v1.4.2"}}]
\x1b[32;1m$ gitlab-runner register --url https://gitlab.com --token {d.s('gitlab-runner', glrt())}\x1b[0;m
\x1b[32;1mJob succeeded\x1b[0;m
""")
    # 26 terraform state
    d = Doc("26_terraform.tfstate")
    st = {"version": 4, "terraform_version": "1.7.5", "serial": 42, "lineage": str(uuid.uuid4()), "outputs": {
        "db_password": {"value": d.s('password', pw()), "type": "string", "sensitive": True}},
          "resources": [
              {"mode": "managed", "type": "aws_iam_access_key", "name": "ci", "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
               "instances": [{"schema_version": 0, "attributes": {"create_date": "2024-01-10T10:00:00Z", "encrypted_secret": None,
                   "id": d.s('aws-access-key-id', aws_id()), "pgp_key": None, "secret": d.s('aws-secret-access-key', aws_secret()),
                   "ses_smtp_password_v4": d.s('password', b64(33)), "status": "Active", "user": "ci"},
                   "sensitive_attributes": []}]},
              {"mode": "managed", "type": "random_password", "name": "db", "provider": "provider[\"registry.terraform.io/hashicorp/random\"]",
               "instances": [{"schema_version": 3, "attributes": {"bcrypt_hash": d.s('bcrypt-hash', "$2a$10$" + rs(AL + "./", 53)),
                   "id": "none", "length": 24, "lower": True, "min_numeric": 0, "result": d.s('password', pw(24)), "special": True}}]},
              {"mode": "managed", "type": "tls_private_key", "name": "deploy", "provider": "provider[\"registry.terraform.io/hashicorp/tls\"]",
               "instances": [{"schema_version": 1, "attributes": {"algorithm": "RSA", "ecdsa_curve": "P224",
                   "id": hashlib.sha1(os.urandom(8)).hexdigest(), "private_key_pem": d.key("rsa"),
                   "public_key_fingerprint_md5": ":".join(hexs(2) for _ in range(16)), "rsa_bits": 2048}}]},
              {"mode": "managed", "type": "aws_db_instance", "name": "main",
               "instances": [{"attributes": {"address": "main.c1x2y3.eu-west-1.rds.amazonaws.com", "engine": "postgres",
                   "password": d.s('password', human_pw()), "username": "dbadmin", "port": 5432}}]}]}
    d.write(json.dumps(st, indent=2) + "\n")
    # 27 spring application.yml
    d = Doc("27_application.yml")
    d.write(f"""server:
  port: 8080
spring:
  application:
    name: inventory
  datasource:
    url: jdbc:postgresql://pg.prod.internal:5432/inventory?user=inventory&password={d.s('password', urlpw())}&ssl=true
    username: inventory
    password: {d.s('password', pw())}
    hikari:
      maximum-pool-size: 20
  data:
    mongodb:
      uri: mongodb://inv:{d.s('url-password', urlpw())}@mongo-0.mongo,mongo-1.mongo/inventory?replicaSet=rs0&authSource=admin
  rabbitmq:
    host: mq.internal
    username: inventory
    password: "{d.s('password', human_pw())}"
app:
  jwt:
    secret: {d.s('generic-secret', b64(48))}
    expiration-ms: 3600000
  oauth2:
    client-id: inventory-service
    client-secret: {d.s('generic-secret', alnum(32))}
  google:
    client-secret: {d.s('google-oauth-secret', gocspx())}
management:
  endpoints:
    web:
      exposure:
        include: health,info
""")
    # 28 appsettings.json
    d = Doc("28_appsettings.json")
    d.write(json.dumps({"Logging": {"LogLevel": {"Default": "Information", "Microsoft.AspNetCore": "Warning"}},
        "AllowedHosts": "*",
        "ConnectionStrings": {
            "DefaultConnection": f"Server=tcp:sql-prod.database.windows.net,1433;Initial Catalog=Orders;Persist Security Info=False;User ID=ordersapp;Password={d.s('password', pw())};MultipleActiveResultSets=False;Encrypt=True;",
            "Redis": f"redis-prod.redis.cache.windows.net:6380,password={d.s('password', b64(32))},ssl=True,abortConnect=False",
            "Storage": f"DefaultEndpointsProtocol=https;AccountName=ordersprod;AccountKey={d.s('azure-storage-key', azure_key())};EndpointSuffix=core.windows.net",
            "ServiceBus": f"Endpoint=sb://orders.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={d.s('azure-sas-key', b64(32))}"},
        "AzureAd": {"Instance": "https://login.microsoftonline.com/", "TenantId": str(uuid.uuid4()), "ClientId": str(uuid.uuid4()),
                    "ClientSecret": d.s('azure-client-secret', azure_client_secret())},
        "Jwt": {"Issuer": "orders", "Key": d.s('generic-secret', b64(48))}}, indent=2) + "\n")
    # 29 connection strings in a runbook / psql history
    d = Doc("29_connection_strings.txt")
    d.write(f"""# prod connection cheat-sheet (ops only)
psql "postgresql://reporting:{d.s('url-password', urlpw())}@pg-replica.internal:5432/analytics?sslmode=verify-full"
mongosh "mongodb+srv://admin:{d.s('url-password', urlpw())}@prod.x1y2z.mongodb.net/?retryWrites=true"
redis-cli -u redis://:{d.s('url-password', urlpw())}@cache.internal:6379/2
mysql://wp:{d.s('url-password', urlpw())}@mysql.internal:3306/wordpress
amqps://orders:{d.s('url-password', urlpw())}@b-1234.mq.eu-west-1.amazonaws.com:5671
jdbc:mysql://mysql.internal:3306/billing?user=billing&password={d.s('password', urlpw())}&useSSL=true
jdbc:sqlserver://sql.internal:1433;databaseName=hr;user=hr_app;password={d.s('password', pw())};encrypt=true
Data Source=sql02;Initial Catalog=Payroll;User Id=payroll;Password={d.s('password', pw())};
ftp://backup:{d.s('url-password', urlpw())}@ftp.example.com/dumps/
https://admin:{d.s('url-password', urlpw())}@grafana.internal/api/dashboards
""")
    # 30 curl -v
    d = Doc("30_curl_verbose.txt")
    tok = d.s('jwt', jwt())
    d.write(f"""*   Trying 203.0.113.10:443...
* Connected to api.example.com (203.0.113.10) port 443 (#0)
* ALPN: offers h2,http/1.1
* TLSv1.3 (OUT), TLS handshake, Client hello (1):
* TLSv1.3 (IN), TLS handshake, Server hello (2):
* SSL connection using TLSv1.3 / TLS_AES_256_GCM_SHA384
* Server certificate:
*  subject: CN=api.example.com
*  start date: Mar  1 00:00:00 2024 GMT
*  expire date: May 30 23:59:59 2024 GMT
*  issuer: C=US; O=Let's Encrypt; CN=R3
*  SSL certificate verify ok.
> GET /v2/orders?limit=5 HTTP/2
> Host: api.example.com
> user-agent: curl/8.5.0
> accept: */*
> authorization: Bearer {tok}
> x-api-key: {d.s('generic-token', alnum(40))}
>
< HTTP/2 200
< date: Thu, 02 May 2024 10:14:11 GMT
< content-type: application/json
< set-cookie: session={d.s('session-cookie', b64u(48))}; Path=/; HttpOnly; Secure; SameSite=Lax
< x-request-id: {uuid.uuid4()}
<
{{"orders":[],"next":null}}
* Connection #0 to host api.example.com left intact
$ curl -u admin:{d.s('password', pw())} https://jenkins.internal/api/json
$ curl -H "Authorization: Basic {d.s('basic-auth', base64.b64encode(('svc:' + pw()).encode()).decode())}" https://nexus.internal/service/rest/v1/status
$ curl -H "X-Auth-Token: {d.s('generic-token', hexs(40))}" https://api.cloudflare.example/client/v4/zones
""")
    # 31 OAuth HTTP response
    d = Doc("31_oauth_response.json")
    d.write(json.dumps({"access_token": d.s('google-oauth-access', ya29()), "expires_in": 3599,
                        "refresh_token": d.s('generic-token', "1//0" + rs(AL + "-_", 99)),
                        "scope": "https://www.googleapis.com/auth/cloud-platform", "token_type": "Bearer",
                        "id_token": d.s('jwt', jwt())}) + "\n")
    # 32 PEM RSA (cat id_rsa)
    d = Doc("32_pem_rsa.txt"); d.write("$ cat ~/.ssh/id_rsa_legacy\n" + d.key("rsa", "private-key-rsa"))
    d = Doc("33_pem_ec.txt"); d.write(d.key("ec", "private-key-ec"))
    d = Doc("34_pem_pkcs8.txt"); d.write("server.key:\n" + d.key("pkcs8", "private-key-pkcs8") + "\nserver.crt:\n-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(os.urandom(700)).decode() + "-----END CERTIFICATE-----\n")
    d = Doc("35_pem_openssh.txt"); d.write("$ cat ~/.ssh/id_ed25519\n" + d.key("openssh", "private-key-openssh") + "$ cat ~/.ssh/id_rsa\n" + d.key("openssh-rsa", "private-key-openssh"))
    d = Doc("36_pem_encrypted.txt"); d.write(d.key("pkcs8-enc", "private-key-encrypted") + "\n" + d.key("rsa-enc", "private-key-encrypted") + d.key("openssh-enc", "private-key-encrypted"))
    # 37 GCP service account
    d = Doc("37_gcp_service_account.json")
    k = pem("pkcs8")
    d.s("private-key-pkcs8-json", pem_body(k))
    d.write(json.dumps({"type": "service_account", "project_id": "acme-prod-31337",
                        "private_key_id": d.s('gcp-private-key-id', hexs(40)), "private_key": k,
                        "client_email": "deployer@acme-prod-31337.iam.gserviceaccount.com", "client_id": str(R.randint(10**20, 10**21)),
                        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token",
                        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/deployer%40acme-prod-31337.iam.gserviceaccount.com",
                        "universe_domain": "googleapis.com"}, indent=2) + "\n")
    # 38 helm values with indented PEM
    d = Doc("38_helm_values_indented_key.yaml")
    k = pem("ec")
    ind = "\n".join("      " + l for l in k.strip().split("\n"))
    d.secrets.append({"secret": pem_body(k), "type": "private-key-ec-indented"})
    k2 = pem("openssh")
    ind2 = "\n".join("    " + l for l in k2.strip().split("\n"))
    d.secrets.append({"secret": pem_body(k2), "type": "private-key-openssh-indented"})
    d.write(f"""# helm get values gateway -n edge
USER-SUPPLIED VALUES:
gateway:
  tls:
    enabled: true
    key: |
{ind}
    cert: /etc/tls/tls.crt
gitSync:
  sshKey: |
{ind2}
  repo: git@github.com:acme/dags.git
""")
    # 39 JWTs in logs
    d = Doc("39_jwt_logs.txt")
    d.write(f"""2024-05-02 10:01:22,114 INFO  [auth] issued token for user=4411 token={d.s('jwt', jwt('HS256', sig_bytes=32))}
2024-05-02 10:01:23,991 DEBUG [gateway] upstream headers: {{'Authorization': 'Bearer {d.s('jwt', jwt('ES256', sig_bytes=64))}'}}
2024-05-02 10:01:25,004 WARN  [auth] expired: {d.s('jwt', jwt('RS256', typ=True, kid=False))}
2024-05-02 10:01:26,777 INFO  [cookie] Set-Cookie: id_token={d.s('jwt', jwt('HS512', kid=False, sig_bytes=64))}; Secure
2024-05-02 10:01:27,000 INFO  [cli] firebase login:ci printed {d.s('jwt', jwt('RS256', typ=False, kid=True))}
""")
    # 40 ssh-agent env + sshpass
    d = Doc("40_ssh_agent_env.txt")
    d.write(f"""$ eval "$(ssh-agent -s)"
Agent pid 48211
$ ssh-agent -s
SSH_AUTH_SOCK=/tmp/ssh-XXXXwq3N2k/agent.48210; export SSH_AUTH_SOCK;
SSH_AGENT_PID=48211; export SSH_AGENT_PID;
echo Agent pid 48211;
$ env | grep -i ssh
SSH_AUTH_SOCK=/tmp/ssh-XXXXwq3N2k/agent.48210
SSH_AGENT_PID=48211
SSHPASS={d.s('password', pw())}
SSH_ASKPASS=/usr/lib/ssh/ssh-askpass
GIT_SSH_COMMAND=ssh -i ~/.ssh/deploy_ed25519 -o IdentitiesOnly=yes
$ sshpass -p '{d.s('password', pw())}' ssh deploy@10.0.3.4 uptime
 10:14:11 up 41 days,  2:01,  1 user,  load average: 0.08, 0.03, 0.01
""")
    # 41 bash history
    d = Doc("41_bash_history.txt")
    d.write(f"""ls -la
cd ~/src/infra
export GH_TOKEN={d.s('github-pat', ghp())}
export X_TOKEN={d.s('generic-token', alnum(32))}
export CLOUDFLARE_API_TOKEN={d.s('generic-token', rs(AL + '-_', 40))}
export HEROKU_API_KEY={d.s('heroku-new', hrku())}
mysql -u root -p'{d.s('password', pw())}' -h db01 -e 'show databases'
mysql -uroot -p{d.s('password', alnum(16))} billing < dump.sql
PGPASSWORD={d.s('password', pw())} psql -h pg01 -U postgres
docker login -u maria -p {d.s('dockerhub-pat', dckr())}
aws configure set aws_secret_access_key {d.s('aws-secret-access-key', aws_secret())}
htpasswd -b -c /etc/nginx/.htpasswd admin {d.s('password', pw())}
git clone https://maria:{d.s('github-pat', ghp())}@github.com/acme/secret-repo.git
kubectl create secret generic db --from-literal=password={d.s('password', pw())}
vault login {d.s('vault-token', hvs())}
curl -X POST -d '{{"text":"deploy done"}}' https://hooks.slack.com/services/{d.s('slack-webhook', slack_hook())}
openssl enc -aes-256-cbc -k {d.s('password', pw())} -in backup.tar -out backup.tar.enc
git push
""")
    # 42 ps aux with secrets in args
    d = Doc("42_ps_aux_args.txt")
    d.write(f"""USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
root           1  0.0  0.1 167744 11640 ?        Ss   Apr30   0:12 /sbin/init
mysql       1123  1.2  8.4 2475612 690120 ?      Ssl  Apr30  81:02 /usr/sbin/mysqld
backup      9921  0.0  0.0   8912  3320 ?        S    02:00   0:00 mysqldump -u backup --password={d.s('password', pw())} --all-databases
app        10011  3.1  2.2 1248812 181220 ?      Sl   09:12   1:01 java -Dspring.datasource.password={d.s('password', pw())} -jar /opt/app/app.jar
app        10090  0.0  0.3 101020 24120 ?        S    09:13   0:00 redis-server *:6379 --requirepass {d.s('password', alnum(32))}
root       11200  0.0  0.0   7060  1920 pts/0    R+   10:14   0:00 ps aux
""")
    # 43 python source
    d = Doc("43_python_source.py")
    d.write(f'''"""Integration clients."""
import openai
import stripe
from slack_sdk import WebClient

OPENAI_API_KEY = "{d.s('openai-key', openai_svc())}"
stripe.api_key = "{d.s('stripe-restricted', sk_live('rk_live_'))}"
SLACK_TOKEN = '{d.s('slack-user', xoxp())}'
SLACK_APP_TOKEN = '{d.s('slack-app', xapp())}'
HUGGINGFACE_HUB_TOKEN = "{d.s('huggingface', hf())}"

client = openai.OpenAI(api_key="{d.s('openai-legacy', openai_legacy())}")
slack = WebClient(token=SLACK_TOKEN)

def connect():
    return psycopg2.connect(host="db", user="etl", password="{d.s('password', pw())}")

DATADOG = {{"api_key": "{d.s('datadog-api-key', hexs(32))}", "app_key": "{d.s('datadog-app-key', hexs(40))}"}}
''')
    # 44 node source
    d = Doc("44_node_source.js")
    d.write(f"""const firebaseConfig = {{
  apiKey: "{d.s('google-api-key', aiza())}",
  authDomain: "acme-app.firebaseapp.com",
  projectId: "acme-app",
}};

const stripe = require('stripe')('{d.s('stripe-secret', sk_live())}');
const shopify = new Shopify({{ accessToken: '{d.s('shopify', shpat())}', shop: 'acme.myshopify.com' }});
const sg = require('@sendgrid/mail'); sg.setApiKey('{d.s('sendgrid', sendgrid())}');
const octokit = new Octokit({{ auth: `{d.s('github-fine-grained', gh_fine())}` }});
const anthropic = new Anthropic({{ apiKey: process.env.KEY || '{d.s('anthropic-key', anthropic())}' }});
const db = knex({{ client: 'pg', connection: {{ host: 'db', user: 'app', password: '{d.s('password', pw())}', database: 'app' }} }});
module.exports = {{ firebaseConfig }};
""")
    # 45 heroku config
    d = Doc("45_heroku_config.txt")
    d.write(f"""=== acme-web Config Vars
DATABASE_URL:             postgres://u{alnum(12).lower()}:{d.s('url-password', 'p' + hexs(64))}@ec2-52-1-2-3.compute-1.amazonaws.com:5432/d{alnum(12).lower()}
REDIS_URL:                rediss://:{d.s('url-password', 'p' + hexs(64))}@ec2-34-5-6-7.compute-1.amazonaws.com:12345
SECRET_KEY_BASE:          {d.s('rails-secret-key-base', hexs(128))}
SENDGRID_API_KEY:         {d.s('sendgrid', sendgrid())}
PAPERTRAIL_API_TOKEN:     {d.s('generic-token', alnum(20))}
NEW_RELIC_LICENSE_KEY:    {d.s('newrelic-license', hexs(36) + 'NRAL')}
NEW_RELIC_API_KEY:        {d.s('newrelic', nrak())}
LANG:                     en_US.UTF-8
RACK_ENV:                 production
""")
    # 46 twilio / mailgun / datadog config files
    d = Doc("46_datadog_agent.yaml")
    d.write(f"""## Datadog agent main config
site: datadoghq.eu
api_key: {d.s('datadog-api-key', hexs(32))}
app_key: {d.s('datadog-app-key', hexs(40))}
hostname: web-01
logs_enabled: true
apm_config:
  enabled: true
process_config:
  process_collection:
    enabled: false
""")
    # 47 azure
    d = Doc("47_azure_cli.txt")
    d.write(f"""$ az storage account show-connection-string -n acmeprodstore -g prod
{{
  "connectionString": "DefaultEndpointsProtocol=https;EndpointSuffix=core.windows.net;AccountName=acmeprodstore;AccountKey={d.s('azure-storage-key', azure_key())};BlobEndpoint=https://acmeprodstore.blob.core.windows.net/"
}}
$ az storage account keys list -n acmeprodstore -o table
KeyName    Permissions    Value
---------  -------------  ----------------------------------------------------------------------------------------
key1       FULL           {d.s('azure-storage-key', azure_key())}
key2       FULL           {d.s('azure-storage-key', azure_key())}
$ az ad sp create-for-rbac --name ci-deployer
{{
  "appId": "{uuid.uuid4()}",
  "displayName": "ci-deployer",
  "password": "{d.s('azure-client-secret', azure_client_secret())}",
  "tenant": "{uuid.uuid4()}"
}}
$ az storage blob generate-sas ... --full-uri
"https://acmeprodstore.blob.core.windows.net/backups/db.bak?se=2024-06-01&sp=r&sv=2022-11-02&sr=b&sig={d.s('azure-sas-sig', b64(32).replace('+', '%2B').replace('/', '%2F').replace('=', '%3D'))}"
""")
    # 48 INI database
    d = Doc("48_app_config.ini")
    d.write(f"""[server]
host = 0.0.0.0
port = 8080

[database]
driver = postgresql
host = db.internal
user = reporting
password = {d.s('password', pw())}

[smtp]
server = smtp.office365.com
user = alerts@example.com
pass = {d.s('password', human_pw())}

[api]
secret_key = {d.s('generic-secret', alnum(48))}
""")
    # 49 my.cnf
    d = Doc("49_my_cnf.txt")
    d.write(f"""$ cat ~/.my.cnf
[client]
user=root
password="{d.s('password', pw())}"
host=127.0.0.1

[mysqldump]
user=backup
password={d.s('password', pw())}
""")
    # 50 htpasswd
    d = Doc("50_htpasswd.txt")
    d.write(f"""$ cat /etc/nginx/.htpasswd
admin:{d.s('htpasswd-hash', '$apr1$' + rs(AL, 8) + '$' + rs(AL + './', 22))}
deploy:{d.s('htpasswd-hash', '$2y$05$' + rs(AL + './', 53))}
legacy:{d.s('htpasswd-hash', '{SHA}' + b64(20))}
""")
    # 51 wp-config.php
    d = Doc("51_wp_config.php")
    salts = "\n".join(f"define( '{k}', '{d.s('generic-secret', rs(AL + '!#%^*()-_=+[]{}<>~;:,.?|', 64))}' );" for k in
                      ["AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY"])
    d.write(f"""<?php
define( 'DB_NAME', 'wordpress' );
define( 'DB_USER', 'wp_prod' );
define( 'DB_PASSWORD', '{d.s('password', pw())}' );
define( 'DB_HOST', 'mysql.internal' );
define( 'DB_CHARSET', 'utf8mb4' );
{salts}
$table_prefix = 'wp_';
""")
    # 52 laravel .env
    d = Doc("52_laravel.env")
    d.write(f"""APP_NAME=Shop
APP_ENV=production
APP_KEY=base64:{d.s('generic-secret', b64(32))}
APP_DEBUG=false
DB_CONNECTION=mysql
DB_HOST=127.0.0.1
DB_PORT=3306
DB_DATABASE=shop
DB_USERNAME=shop
DB_PASSWORD={d.s('password', pw())}
MAIL_PASSWORD={d.s('password', pw())}
PUSHER_APP_SECRET={d.s('generic-secret', hexs(20))}
AWS_ACCESS_KEY_ID={d.s('aws-access-key-id', aws_id())}
AWS_SECRET_ACCESS_KEY={d.s('aws-secret-access-key', aws_secret())}
""")
    # 53 rails secrets.yml / credentials
    d = Doc("53_rails_credentials.yml")
    d.write(f"""$ bin/rails credentials:show
secret_key_base: {d.s('rails-secret-key-base', hexs(128))}
aws:
  access_key_id: {d.s('aws-access-key-id', aws_id())}
  secret_access_key: {d.s('aws-secret-access-key', aws_secret())}
stripe:
  secret_key: {d.s('stripe-secret', sk_live())}
  signing_secret: {d.s('stripe-webhook', whsec())}
github:
  client_id: Iv1.{hexs(16)}
  client_secret: {d.s('generic-secret', hexs(40))}
""")
    # 54 .pgpass
    d = Doc("54_pgpass.txt")
    d.write(f"""$ cat ~/.pgpass
pg-primary.internal:5432:billing:billing:{d.s('password', pw())}
*:*:*:replicator:{d.s('password', pw())}
""")
    # 55 json logs
    d = Doc("55_json_logs.ndjson")
    rows = []
    for _ in range(6):
        rows.append(json.dumps({"ts": "2024-05-02T10:14:%02d.%03dZ" % (R.randint(0, 59), R.randint(0, 999)), "level": "info",
                                "msg": "request", "method": "GET", "path": "/api/v1/items", "status": 200, "duration_ms": R.randint(1, 400),
                                "request_id": str(uuid.uuid4())}))
    rows.insert(2, json.dumps({"ts": "2024-05-02T10:14:11.001Z", "level": "debug", "msg": "outgoing request",
                               "headers": {"authorization": "Bearer " + d.s('openai-key', openai_proj()), "content-type": "application/json"}}))
    rows.insert(4, json.dumps({"ts": "2024-05-02T10:14:12.001Z", "level": "error", "msg": "auth failed",
                               "config": {"stripe_key": d.s('stripe-secret', sk_live()), "db_password": d.s('password', pw())}}))
    rows.insert(6, json.dumps({"ts": "2024-05-02T10:14:13.001Z", "level": "debug", "msg": "env",
                               "payload": json.dumps({"GITHUB_TOKEN": d.s('github-pat', ghp()), "API_SECRET": d.s('generic-secret', alnum(40))})}))
    d.write("\n".join(rows) + "\n")
    # 56 vault token create
    d = Doc("56_vault_token_create.txt")
    d.write(f"""$ vault token create -policy=deploy -ttl=1h
Key                  Value
---                  -----
token                {d.s('vault-token', hvs())}
token_accessor       {alnum(24)}
token_duration       1h
token_renewable      true
token_policies       ["default" "deploy"]
identity_policies    []
policies             ["default" "deploy"]
$ vault kv get -format=json secret/db
{{"data": {{"data": {{"password": "{d.s('password', pw())}", "username": "app"}}, "metadata": {{"version": 3}}}}}}
""")
    # 57 gh hosts.yml + glab config
    d = Doc("57_gh_hosts.yml")
    d.write(f"""github.com:
    users:
        maria:
            oauth_token: {d.s('github-oauth', ghp('gho_'))}
    git_protocol: https
    oauth_token: {d.s('github-oauth', ghp('gho_'))}
    user: maria
github.acme.internal:
    oauth_token: {d.s('github-pat', ghp())}
    user: maria
""")
    # 58 gitlab runner config.toml
    d = Doc("58_gitlab_runner_config.toml")
    d.write(f"""concurrent = 4
check_interval = 0

[[runners]]
  name = "docker-autoscaler-01"
  url = "https://gitlab.com/"
  id = 31337
  token = "{d.s('gitlab-runner', glrt())}"
  token_obtained_at = 2024-01-10T10:00:00Z
  executor = "docker"
  [runners.cache]
    Type = "s3"
    [runners.cache.s3]
      ServerAddress = "s3.amazonaws.com"
      AccessKey = "{d.s('aws-access-key-id', aws_id())}"
      SecretKey = "{d.s('aws-secret-access-key', aws_secret())}"
      BucketName = "runner-cache"
  [runners.docker]
    image = "alpine:3.19"
    privileged = false
""")
    # 59 misc SaaS tokens (extended prefixes) in a secrets manager dump
    d = Doc("59_saas_tokens_dump.txt")
    d.write(f"""$ doppler secrets download --no-file --format env
DOPPLER_TOKEN="{d.s('doppler', doppler())}"
GRAFANA_SERVICE_ACCOUNT_TOKEN="{d.s('grafana-sa', glsa())}"
DATABRICKS_TOKEN="{d.s('databricks', dapi())}"
PULUMI_ACCESS_TOKEN="{d.s('pulumi', pulumi())}"
JIRA_API_TOKEN="{d.s('atlassian', atlassian())}"
TF_TOKEN_app_terraform_io="{d.s('terraform-cloud', tfc())}"
FIGMA_TOKEN="{d.s('figma', figma())}"
SUPABASE_ACCESS_TOKEN="{d.s('supabase', supabase())}"
NOTION_TOKEN="{d.s('notion', notion())}"
MAILCHIMP_API_KEY="{d.s('mailchimp', mailchimp())}"
SQUARE_ACCESS_TOKEN="{d.s('sq-access', sq())}"
SOPS_AGE_KEY="{d.s('age-key', agekey())}"
GITLAB_DEPLOY_TOKEN="{d.s('gitlab-deploy', gldt())}"
GOOGLE_OAUTH_CLIENT_SECRET="{d.s('google-oauth-secret', gocspx())}"
""")
    # 60 bare tokens, no key (prefix-only detection)
    d = Doc("60_bare_tokens.txt")
    d.write(f"""$ gh auth token
{d.s('github-oauth', ghp('gho_'))}
$ gcloud auth print-access-token
{d.s('google-oauth-access', ya29())}
$ aws iam create-access-key --user-name ci --output text
ACCESSKEY	{d.s('aws-access-key-id', aws_id())}	2024-05-02T10:14:11+00:00	{d.s('aws-secret-access-key', aws_secret())}	Active	ci
$ cat token.txt
{d.s('gitlab-pat', glpat())}
$ stripe config --list | grep key
live_mode_api_key = '{d.s('stripe-secret', sk_live())}'
$ echo $KEY
{d.s('anthropic-key', anthropic())}
$ huggingface-cli whoami --token {d.s('huggingface', hf())}
$ npm token create
┌────────────────┬──────────────────────────────────────────┐
│ token          │ {d.s('npm-token', npm())}     │
│ created        │ 2024-05-02T10:14:11.000Z                 │
└────────────────┴──────────────────────────────────────────┘
$ op read op://prod/openai/credential
{d.s('openai-key', openai_proj())}""")  # no trailing newline at EOF
    # 61 long mixed stream with secrets spanning > 4 KiB lines and near window boundaries
    d = Doc("61_long_mixed_stream.txt")
    parts = []
    for n in range(40):
        parts.append(f"[{n:04d}] " + " ".join(R.choice(["GET", "POST", "ok", "retry", "cache", "miss", "200", "304", "upstream", "timeout"]) for _ in range(R.randint(5, 30))))
        if n % 8 == 3:
            parts.append("payload=" + "x" * R.randint(4000, 4100) + f" key={d.s('github-pat', ghp())}")
        if n % 8 == 5:
            parts.append(("A" * 4090)[:R.randint(4080, 4095)] + f" {d.s('aws-access-key-id', aws_id())}")
        if n % 13 == 7:
            parts.append(f"slack: {d.s('slack-bot', xoxb())} gitlab: {d.s('gitlab-pat', glpat())} google: {d.s('google-api-key', aiza())}")
    d.write("\n".join(parts) + "\n")
    # 62 CRLF windows output
    d = Doc("62_windows_crlf.txt")
    d.write(f"PS C:\\> Get-Content .\\secrets.env\r\nAZURE_CLIENT_SECRET={d.s('azure-client-secret', azure_client_secret())}\r\nGITHUB_TOKEN={d.s('github-pat', ghp())}\r\nSQL_PASSWORD={d.s('password', pw())}\r\nAWS_SECRET_ACCESS_KEY={d.s('aws-secret-access-key', aws_secret())}\r\n")
    # 63 encrypted/odd PEM variants: DSA, PEM inside JSON escaped in a log line, PGP private key
    d = Doc("63_pem_variants.txt")
    k = pem("ed25519-pkcs8")
    d.secrets.append({"secret": pem_body(k), "type": "private-key-pkcs8-json"})
    pgp_body = "\n".join(base64.encodebytes(os.urandom(1500)).decode().split("\n"))
    d.secrets.append({"secret": pgp_body.strip(), "type": "private-key-pgp"})
    k3 = pem("rsa")
    d.secrets.append({"secret": pem_body(k3), "type": "private-key-rsa-prefixed-lines"})
    d.write("vault read -format=json pki/issue/web:\n" + json.dumps({"data": {"private_key": k.strip(), "private_key_type": "ed25519", "serial_number": ":".join(hexs(2) for _ in range(20))}}) +
            "\n$ gpg --export-secret-keys --armor ops@example.com\n-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n" + pgp_body.strip() + "\n=" + b64(3) + "\n-----END PGP PRIVATE KEY BLOCK-----\n"
            + "$ tail -c +1 key.pem | sed 's/^/> /'\n" + "\n".join("> " + l for l in k3.strip().split("\n")) + "\n")
    # 64 kubectl describe/get pods -o yaml with env values
    d = Doc("64_kubectl_pod_env.yaml")
    d.write(f"""apiVersion: v1
kind: Pod
metadata:
  name: worker-7d9f8b6c5-x2k9p
  namespace: jobs
spec:
  containers:
  - name: worker
    image: ghcr.io/acme/worker:2.3.1
    env:
    - name: QUEUE_URL
      value: amqp://worker:{d.s('url-password', urlpw())}@rabbitmq.jobs.svc:5672/
    - name: OPENAI_API_KEY
      value: {d.s('openai-key', openai_proj())}
    - name: S3_SECRET_KEY
      value: {d.s('aws-secret-access-key', aws_secret())}
    - name: WEBHOOK_SIGNING_SECRET
      value: "{d.s('generic-secret', alnum(32))}"
    - name: DB_PASSWORD
      valueFrom:
        secretKeyRef:
          key: password
          name: db-credentials
    resources:
      limits:
        memory: 512Mi
""")
    # 65 systemd unit + ansible inventory
    d = Doc("65_systemd_ansible.txt")
    d.write(f"""$ systemctl cat exporter.service
# /etc/systemd/system/exporter.service
[Unit]
Description=Metrics exporter
[Service]
Environment="API_TOKEN={d.s('generic-token', alnum(40))}"
Environment=DATA_SOURCE_NAME=postgresql://exporter:{d.s('url-password', urlpw())}@localhost:5432/postgres?sslmode=disable
ExecStart=/usr/local/bin/postgres_exporter
[Install]
WantedBy=multi-user.target
$ cat inventory.ini
[web]
web01 ansible_host=10.0.1.11 ansible_user=deploy ansible_password={d.s('password', pw())} ansible_become_pass={d.s('password', pw())}
""")
    # 66 redis / mongo configs
    d = Doc("66_redis_conf.txt")
    d.write(f"""$ grep -v '^#' /etc/redis/redis.conf | grep .
bind 127.0.0.1 -::1
port 6379
requirepass {d.s('password', alnum(32))}
masterauth {d.s('password', alnum(32))}
$ redis-cli CONFIG GET requirepass
1) "requirepass"
2) "{d.s('password', alnum(24))}"
""")
    # 67 openai/anthropic tool config toml + yaml
    d = Doc("67_llm_tool_config.toml")
    d.write(f"""[providers.openai]
api_key = "{d.s('openai-key', openai_proj())}"
model = "gpt-4o"

[providers.anthropic]
api_key = "{d.s('anthropic-key', anthropic())}"

[providers.azure]
endpoint = "https://acme.openai.azure.com"
api-key = "{d.s('generic-token', hexs(32))}"
""")

    # 68 ECS task definition: name/value pairs
    d = Doc("68_ecs_task_definition.json")
    d.write(json.dumps({"taskDefinition": {"family": "api", "containerDefinitions": [{"name": "api", "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:1.2.3",
        "environment": [{"name": "DB_PASSWORD", "value": d.s('password', pw())}, {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "STRIPE_API_KEY", "value": d.s('stripe-secret', sk_live())},
                        {"name": "JWT_SECRET", "value": d.s('generic-secret', alnum(40))},
                        {"name": "AWS_SECRET_ACCESS_KEY", "value": d.s('aws-secret-access-key', aws_secret())}],
        "secrets": [{"name": "API_KEY", "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/api/key"}]}]}}, indent=4) + "\n")
    # 69 kubectl get pod -o json env
    d = Doc("69_kubectl_pod.json")
    d.write(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-5c9d", "namespace": "prod"},
        "spec": {"containers": [{"name": "api", "image": "ghcr.io/acme/api:3.1.0", "env": [
            {"name": "REDIS_PASSWORD", "value": d.s('password', pw())},
            {"name": "GITHUB_TOKEN", "value": d.s('github-pat', ghp())},
            {"name": "SIGNING_KEY", "value": d.s('generic-secret', b64(32))},
            {"name": "PORT", "value": "8080"}]}]}}, indent=4) + "\n")
    # 70 GitHub workflow with hardcoded env, docker run -e
    d = Doc("70_workflow_and_docker_run.txt")
    d.write(f"""$ cat .github/workflows/deploy.yml
name: deploy
on: push
env:
  AWS_ACCESS_KEY_ID: {d.s('aws-access-key-id', aws_id())}
  AWS_SECRET_ACCESS_KEY: {d.s('aws-secret-access-key', aws_secret())}
  SLACK_WEBHOOK_URL: https://hooks.slack.com/services/{d.s('slack-webhook', slack_hook())}
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: docker run -e DB_PASSWORD={d.s('password', pw())} -e API_TOKEN={d.s('generic-token', alnum(32))} --env OPENAI_API_KEY={d.s('openai-key', openai_proj())} acme/migrate:latest
$ history | grep kubectl
  512  kubectl get secret db -o jsonpath='{{.data.password}}' | base64 -d; echo
{d.s('password', pw())}
""")
    # 71 PEM keys in env vars (escaped \\n, and collapsed by unquoted echo)
    d = Doc("71_pem_in_env.txt")
    k1 = pem("pkcs8"); k2 = pem("rsa"); k3 = pem("ec")
    d.secrets.append({"secret": pem_body(k1), "type": "private-key-pkcs8-json"})
    d.secrets.append({"secret": pem_body(k2), "type": "private-key-rsa-spaces"})
    d.secrets.append({"secret": pem_body(k3), "type": "private-key-ec-crlf"})
    d.write("$ cat .env\nGITHUB_APP_ID=123456\nGITHUB_APP_PRIVATE_KEY=\"" + k1.strip().replace("\n", "\\n") + "\\n\"\nWEBHOOK_SECRET=" + d.s('generic-secret', hexs(40)) +
            "\n$ echo $DEPLOY_KEY\n" + k2.strip().replace("\n", " ") + "\n$ type key.pem\r\n" + k3.strip().replace("\n", "\r\n") + "\r\n")
    # 72 terraform output / PEM JSON with a non-obvious key
    d = Doc("72_terraform_output.txt")
    k = pem("rsa")
    d.secrets.append({"secret": pem_body(k), "type": "private-key-rsa-json"})
    d.write("$ terraform output -json\n" + json.dumps({"db_admin_password": {"sensitive": True, "type": "string", "value": d.s('password', pw())},
        "ssh_key": {"sensitive": True, "type": "string", "value": k}, "endpoint": {"sensitive": False, "type": "string", "value": "db.internal"},
        "api_token": {"sensitive": True, "type": "string", "value": d.s('generic-token', alnum(40))}}, indent=2) + "\n")
    print(len(FILES), "files,", sum(len(json.load(open(os.path.join(OUT, f + ".secrets.json")))) for f in FILES), "secrets")

gen()
