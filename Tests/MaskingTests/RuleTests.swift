import XCTest
@testable import Masking

/// Each rule on a line it must catch and on look-alikes it must leave alone. Secrets here are
/// made up at run time in the right shape.
final class RuleTests: XCTestCase {
    var rng = SeededGenerator(seed: 7)
    func random(_ alphabet: String, _ n: Int) -> String { String((0..<n).map { _ in alphabet.randomElement(using: &rng)! }) }
    let alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    let upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    let b64 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
    let b64url = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

    func assertMasked(_ secret: String, in text: String, by rule: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(rulesMasking(secret, in: text), [rule], "in: \(text)", file: file, line: line)
        XCTAssertFalse(mask(text).contains(secret), file: file, line: line)
    }

    func assertUntouched(_ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(mask(text), text, file: file, line: line)
    }

    func testAWS() {
        let id = "AKIA" + random(upperDigits, 16), secret = random(b64, 40)
        assertMasked(id, in: "aws_access_key_id = \(id)\n", by: "aws-access-key-id")
        assertMasked(id, in: "found \(id) in logs", by: "aws-access-key-id")
        assertMasked(secret, in: "aws_secret_access_key = \(secret)\n", by: "aws-secret-access-key")
        assertMasked(secret, in: "  \"SecretAccessKey\": \"\(secret)\",\n", by: "aws-secret-access-key")
        let slash = "/" + random(b64, 39)   // not a path: 40 characters of base64 after the key's name
        assertMasked(slash, in: "aws_secret_access_key = \(slash)\n", by: "aws-secret-access-key")
        assertUntouched("AKIA\(random(upperDigits, 15)) is too short\n")
        assertUntouched("XAKIA\(random(upperDigits, 16)) is glued\n")
        assertUntouched("BREAKIA is not a key; AKIAL10N\n")
    }

    func testGitHubGitLabSlackStripe() {
        let ghp = "ghp_" + random(alnum, 36), pat = "github_pat_" + random(alnum, 22) + "_" + random(alnum, 59)
        assertMasked(ghp, in: "token \(ghp)\n", by: "github-token")
        assertMasked(pat, in: "GH=\(pat)\n", by: "github-fine-grained-token")
        let glpat = "glpat-" + random(alnum, 20)
        assertMasked(glpat, in: "https://oauth2:\(glpat)@gitlab.com/a/b.git", by: "gitlab-token")
        let xoxb = "xoxb-" + random("0123456789", 12) + "-" + random(alnum, 24)
        assertMasked(xoxb, in: "SLACK=\(xoxb)", by: "slack-token")
        let path = "T" + random(upperDigits, 8) + "/B" + random(upperDigits, 10) + "/" + random(alnum, 24)
        assertMasked(path, in: "url: https://hooks.slack.com/services/\(path)\n", by: "slack-webhook")
        let sk = "sk_live_" + random(alnum, 40)
        assertMasked(sk, in: "key=\(sk)", by: "stripe-key")
        assertUntouched("ghp_short and gho_ and github_pat_x\n")
        assertUntouched("pk_live_\(random(alnum, 40)) is a publishable key\n")
    }

    func testCloudAndAIKeys() {
        let google = "AIza" + random(b64url, 35)
        assertMasked(google, in: "key: \(google)\n", by: "google-api-key")
        let openai = "sk-proj-" + random(b64url, 80)
        assertMasked(openai, in: "OPENAI_API_KEY=\(openai)\n", by: "openai-api-key")
        let anthropic = "sk-ant-api03-" + random(b64url, 90)
        assertMasked(anthropic, in: "x \(anthropic) y", by: "anthropic-api-key")
        assertUntouched("pip install scikit-learn; see sk-learn docs; disk-usage sk-1\n")
        for (value, rule) in [("npm_" + random(alnum, 36), "npm-token"), ("hf_" + random(alnum, 34), "huggingface-token"),
                              ("hvs." + random(b64url, 90), "vault-token"), ("dop_v1_" + random("0123456789abcdef", 64), "digitalocean-token"),
                              ("shpat_" + random("0123456789abcdef", 32), "shopify-token"), ("SG." + random(b64url, 22) + "." + random(b64url, 43), "sendgrid-key"),
                              ("AGE-SECRET-KEY-1" + random(upperDigits, 58), "age-secret-key"), ("GOCSPX-" + random(b64url, 28), "google-oauth-secret")] {
            assertMasked(value, in: "value \(value)\n", by: rule)
        }
    }

    func testJWT() {
        func b64u(_ s: String) -> String { Data(s.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "") }
        let token = b64u(#"{"alg":"HS256","typ":"JWT"}"#) + "." + b64u(#"{"sub":"42","iat":1700000000}"#) + "." + random(b64url, 43)
        assertMasked(token, in: "Authorization: Bearer \(token)\n", by: "jwt")
        assertMasked(token, in: "jwt=\(token)", by: "jwt")
        // Base64 of some other JSON starts eyJ too.
        let other = b64u(#"{"name":"web","replicas":3}"#) + "." + b64u(#"{"a":1,"b":2,"c":3}"#) + "." + random(b64url, 20)
        assertUntouched("payload \(other)\n")
    }

    func testPrivateKeys() {
        let body = (0..<20).map { _ in random(b64, 64) }.joined(separator: "\n")
        let key = "-----BEGIN RSA PRIVATE KEY-----\n\(body)\n-----END RSA PRIVATE KEY-----"
        let text = "$ cat id_rsa\n\(key)\n$ ls\n"
        assertMasked(key, in: text, by: "private-key")
        XCTAssertEqual(mask(text), "$ cat id_rsa\n[masked:private-key]\n$ ls\n")
        let sameWidth = mask(text, mode: .sameWidth)
        XCTAssertEqual(sameWidth.count, text.count)
        XCTAssertEqual(sameWidth.split(separator: "\n").map(\.count), text.split(separator: "\n").map(\.count))
        let escaped = key.replacingOccurrences(of: "\n", with: "\\n")
        assertMasked(escaped, in: "  \"private_key\": \"\(escaped)\\n\",\n", by: "private-key")
        // A certificate or a public key is not secret.
        assertUntouched("-----BEGIN CERTIFICATE-----\n\(body)\n-----END CERTIFICATE-----\n-----BEGIN PUBLIC KEY-----\n\(body)\n-----END PUBLIC KEY-----\n")
        // A key longer than one window is masked whole.
        let long = "-----BEGIN RSA PRIVATE KEY-----\n" + (0..<140).map { _ in random(b64, 64) }.joined(separator: "\n") + "\n-----END RSA PRIVATE KEY-----"
        XCTAssertEqual(mask("a\n\(long)\nb\n"), "a\n[masked:private-key]\nb\n")
        // A key cut short (no END) is masked up to where it stops looking like one.
        XCTAssertEqual(mask("-----BEGIN OPENSSH PRIVATE KEY-----\n\(random(b64, 70))\n\(random(b64, 70))\n$ echo done\n"), "[masked:private-key]\n$ echo done\n")
    }

    func testURLCredentials() {
        let pw = random(alnum, 14) + "!"
        assertMasked(pw, in: "DATABASE_URL=postgres://app:\(pw)@db.internal:5432/app\n", by: "url-credentials")
        XCTAssertEqual(mask("redis://:\(pw)@cache:6379/0"), "redis://:[masked:url-credentials]@cache:6379/0")
        let ghs = "ghs_" + random(alnum, 36)
        assertMasked(ghs, in: "https://x-access-token:\(ghs)@github.com/o/r", by: "github-token")
        assertUntouched("see https://user@example.com/path and ssh://git@github.com:22/o/r and https://example.com/a:b@c\n")
        assertUntouched("ftp://user:password@host and https://user:${PASSWORD}@host\n")
    }

    func testSecretAssignments() {
        let pw = random(alnum, 16)
        for text in ["DB_PASSWORD=\(pw)\n", "export DB_PASSWORD=\"\(pw)\"\n", "password: \(pw)\n", "  \"client_secret\": \"\(pw)\",\n",
                     "password = \(pw)\n", "app --api-token=\(pw) --verbose\n", "\"API_KEY=\(pw)\",\n", "spring.datasource.password=\(pw)\n",
                     "PGPASSWORD='\(pw)' psql\n", "{\\\"password\\\":\\\"\(pw)\\\"}", "secret_key: '\(pw)' # rotated\n", "x-api-key: \(pw)\n"] {
            assertMasked(pw, in: text, by: "secret-assignment")
        }
        assertMasked(pw, in: "Authorization: Basic \(pw)\n", by: "authorization-header")
        let random40 = random(b64, 40)
        assertMasked(random40, in: "signing key: x\nkey: \(random40)\n", by: "high-entropy-assignment")
        // Things that sit where secrets could but are not.
        for text in ["password: String\n", "let token = self.token\n", "token = get_token()\n", "password=$PASSWORD\n", "PASSWORD=${DB_PASSWORD}\n",
                     "password_file=/run/secrets/db\n", "token_type: Bearer\n", "max_tokens: 4096\n", "secretName: payments-db\n",
                     "--password=PASSWORD\n", "password: <your password>\n", "token: expected 3 parts, got 2\n", "api_key = API_KEY\n",
                     "password: ********\n", "password = None\n", "if password == confirm:\n", "key: value\n", "session: 4f2a9c1e7b3d\n",
                     "key: 3f786850e387550fdab836ed7e6dc881de23001b\n", "PWD=/home/deploy\n", "password_changed_at=2026-11-30T12:00:00Z\n",
                     "token: true\n", "  password: hashedPassword,\n", "secret: 3\n"] {
            assertUntouched(text)
        }
    }

    func testKubernetesSecretData() {
        let v1 = Data(random(alnum, 20).utf8).base64EncodedString(), v2 = Data(random(alnum, 9).utf8).base64EncodedString()
        let yaml = "apiVersion: v1\ndata:\n  password: \(v1)\n  user: \(v2)\nkind: Secret\nmetadata:\n  name: x\n"
        assertMasked(v1, in: yaml, by: "kubernetes-secret-data")
        assertMasked(v2, in: yaml, by: "kubernetes-secret-data")
        let plain = random(alnum, 12)
        assertMasked(plain, in: "kind: Secret\nstringData:\n  token: \(plain)\n  conf: |\n    a = \(plain)x\nmetadata: {}\n", by: "kubernetes-secret-data")
        assertMasked(v1, in: "{\n  \"data\": {\n    \"password\": \"\(v1)\"\n  },\n  \"kind\": \"Secret\"\n}\n", by: "kubernetes-secret-data")
        // A ConfigMap's data is not secret.
        assertUntouched("apiVersion: v1\ndata:\n  LOG_LEVEL: info\n  nginx.conf: |\n    listen 80;\nkind: ConfigMap\n")
    }

    func testSelection() throws {
        let ghp = "ghp_" + random(alnum, 36)
        let without = try MaskingRules(exclude: ["github-token"])
        XCTAssertEqual(mask("t \(ghp)\n", rules: without), "t \(ghp)\n")
        let only = try MaskingRules(rules: ["github-token"])
        XCTAssertEqual(only.ruleNames, ["github-token"])
        XCTAssertEqual(mask("t \(ghp)\npassword: \(random(alnum, 12))x1\n", rules: only).hasPrefix("t [masked:github-token]\npassword: "), true)
        XCTAssertThrowsError(try MaskingRules(rules: ["no-such-rule"])) { XCTAssertTrue("\($0)".contains("unknown masking rule \"no-such-rule\"")) }
        let narrowed = try only.selecting(rules: nil, exclude: ["github-token"])
        XCTAssertEqual(narrowed.ruleNames, [])
    }

    func testBuiltinRuleNamesAreStableAndDocumented() {
        XCTAssertEqual(Set(BuiltinRules.names).count, BuiltinRules.names.count)
        let reported = Set(MaskingRules.builtin.detectors.flatMap(\.ruleNames))
        XCTAssertEqual(reported, Set(BuiltinRules.names))
    }

    /// Passwords with punctuation after a key on a line of its own: the whole value, whatever
    /// its first character; comments, references and code are still left alone.
    func testWholeLineValuesWithPunctuation() {
        let punct = alnum + "!#%&*()[]{}<>,;:^~+=.-_@?/"
        for shape in ["DB_PASSWORD=%@\n", "export API_SECRET=%@\n", "password = %@\n", "      MYSQL_ROOT_PASSWORD: %@\n", "  password: %@ # rotated\n"] {
            for _ in 0..<20 {
                let value = "x" + random(punct, 15) + "9"
                let scrambled = String(value.shuffled(using: &rng))
                let text = shape.replacingOccurrences(of: "%@", with: scrambled)
                XCTAssertFalse(mask(text).contains(scrambled), "in: \(text) -> \(mask(text))")
            }
        }
        assertUntouched("  password: # set me in the vault\n")
        assertUntouched("    token = get_token(request)\n")
        assertUntouched("secret = os.environ[\"APP_SECRET\"]\n")
        assertUntouched("PASSWORD=${DB_PASSWORD}\nTOKEN=$GITHUB_TOKEN\n  password: &pw defaults\n")
        assertUntouched("        \"jsonwebtoken\": \"^9.0.2\",\n        \"@types/jsonwebtoken\": \"~9.0.6\",\n")
    }

    func testNameValuePairsAndSensitiveOutputs() {
        let v = random(alnum, 20)
        assertMasked(v, in: "        env:\n        - name: DB_PASSWORD\n          value: \(v)\n", by: "secret-assignment")
        assertMasked(v, in: "{\"name\": \"STRIPE_SECRET\", \"value\": \"\(v)\"}\n", by: "secret-assignment")
        assertMasked(v, in: "  \"db_password\": {\n    \"sensitive\": true,\n    \"type\": \"string\",\n    \"value\": \"\(v)\"\n  },\n", by: "secret-assignment")
        assertUntouched("        - name: LOG_LEVEL\n          value: debug42info\n")
        assertUntouched("{\"name\": \"region\", \"value\": \"eu-west-1a\"}\n")
    }

    func testDirectivesAndCommandLines() {
        let p = "Qk" + random(alnum, 14) + "!"
        assertMasked(p, in: "machine nexus.internal login deploy password \(p)\n", by: "secret-assignment")
        assertMasked(p, in: "machine a\n  login deploy\n  password \(p)\n", by: "secret-assignment")
        assertMasked(p, in: "requirepass \(p)\n", by: "secret-assignment")
        assertMasked(p, in: "masterauth \(p)\n", by: "secret-assignment")
        assertMasked(p, in: "SSHPASS=\(p)\n", by: "secret-assignment")
        assertMasked(p, in: "mysql -u root -p'\(p)' -h db01 -e 'show databases'\n", by: "secret-assignment")
        assertMasked(p, in: "mysqldump -uroot -p\(p) billing > dump.sql\n", by: "secret-assignment")
        assertMasked(p, in: "$ sshpass -p '\(p)' ssh deploy@10.0.3.4 uptime\n", by: "secret-assignment")
        assertMasked(p, in: "$ docker login -u deploy -p \(p) registry.acme.io\n", by: "secret-assignment")
        assertMasked(p, in: "$ curl -u admin:\(p) https://jenkins.internal/api/json\n", by: "secret-assignment")
        assertMasked(p, in: "htpasswd -b -c /etc/nginx/.htpasswd admin \(p)\n", by: "secret-assignment")
        assertMasked(p, in: "openssl enc -aes-256-cbc -k \(p) -in a -out b\n", by: "secret-assignment")
        assertMasked(p, in: "openssl rsa -in k.pem -passin pass:\(p)\n", by: "secret-assignment")
        assertMasked(p, in: "redis-server *:6379 --requirepass \(p)\n", by: "secret-assignment")
        let aws = random(b64, 40)
        assertMasked(aws, in: "aws configure set aws_secret_access_key \(aws)\n", by: "aws-secret-access-key")
        assertUntouched("password required for user root\nrequirepass\nmysql -p -u root mydb\ncurl -u admin https://x\n")
        assertUntouched("Password authentication failed\nthe password changed\nmysql -pydb\n".replacingOccurrences(of: "-pydb", with: "-p $MYSQL_PWD"))
    }

    func testPHPDefinitionsAndBase64StartingWithASlash() {
        let salt = "qEJ?G)" + random(alnum, 58)
        assertMasked(salt, in: "define( 'AUTH_KEY', '\(salt)' );\n", by: "secret-assignment")
        let pw = random(alnum, 18)
        assertMasked(pw, in: "define('DB_PASSWORD', '\(pw)');\n", by: "secret-assignment")
        assertUntouched("define( 'DB_NAME', 'wordpress_prod_01' );\ndefine('WP_DEBUG', false);\ndefine( 'DB_PASSWORD', '' );\n")
        let token = "/" + random(b64, 120)
        assertMasked(token, in: "\t\t\t\"identitytoken\": \"\(token)\"\n", by: "secret-assignment")
        assertUntouched("  token_file: /var/run/secrets/kubernetes.io/serviceaccount/token\n  secret: /run/secrets/db_password\n")
    }

    func testMoreProviderPrefixes() {
        let hex = "0123456789abcdef"
        for (value, rule) in [("dckr_pat_" + random(b64url, 27), "docker-hub-token"), ("glsa_" + random(alnum, 32) + "_" + random(hex, 8), "grafana-token"),
                              ("PMAK-" + random(hex, 24) + "-" + random(hex, 34), "postman-api-key"), ("lin_api_" + random(alnum, 40), "linear-api-key"),
                              ("dapi" + random(hex, 31) + "a", "databricks-token"), ("pul-" + random(hex, 40), "pulumi-token"),
                              ("NRAK-" + random(upperDigits, 27), "new-relic-key"), ("dp.st.prd." + random(alnum, 40), "doppler-token"),
                              ("HRKU-" + random(b64url, 36), "heroku-token"), ("figd_" + random(b64url, 40), "figma-token"),
                              ("sbp_" + random(hex, 40), "supabase-token"), ("ntn_" + random(alnum, 46), "notion-token"),
                              ("SK" + random(hex, 31) + "1", "twilio-api-key"), ("key-" + random(hex, 31) + "b", "mailgun-key")] {
            assertMasked(value, in: "docker login -u x --password-stdin <<< \(value)\n", by: rule)
        }
        assertUntouched("a key-value store; the DISK is SKIPPED; dapi-docs; pul-request\n")
    }
}
