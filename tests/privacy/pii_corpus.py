"""A corpus of personal and secret data, and of ordinary strings that must survive untouched.

``PII_CASES``: each ``text`` holds a ``secret`` that must not survive redaction (nor appear anywhere in
exported bytes when the corpus is run through the whole pipeline). Every secret is a distinctive
substring of 6+ characters, so finding it in a blob is proof of a leak, not a coincidence. All
credentials here are random or documentation examples; addresses use the documentation ranges.

``CLEAN_CASES``: strings that must pass through unchanged. Decisions worth knowing:
- ``host:port`` with a host *name* (``localhost:8080``) is kept; any IP address literal is redacted,
  loopback included (``127.0.0.1`` -> ``<ip>``).
- Version strings, dates, times, durations, small numbers, 13-digit millisecond timestamps and
  pytest node ids (``a.py::T::t``) are kept; so are long CamelCase/snake_case/kebab-case names.
- Paths outside home directories are kept (``/usr/local/bin``); ``~/x`` is kept (``~user/x`` is not).
- ``max_tokens``/``tokens_used``/``author`` are not secret-named keys; their values are kept.
The clean cases assume the current user's name (``$USER``) appears in none of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PiiCase:
    category: str
    text: str
    secret: str


_C = PiiCase

PII_CASES: list[PiiCase] = [
    # -- e-mail addresses ---------------------------------------------------------------------------------
    _C("email", "contact qwertina.smith@example.org for access", "qwertina.smith@example.org"),
    _C("email", "mailto:zed.kowalczyk+billing@mail.example.co.uk", "zed.kowalczyk+billing"),
    _C("email", "Author: Ingrid F <ingrid.faulkner@corp.example.com>", "ingrid.faulkner@corp.example.com"),
    _C("email", "git config user.email dev_ops-77@example.net", "dev_ops-77@example.net"),
    _C("email", "ValueError: no account for 'olafur.thorsson@example.is'", "olafur.thorsson"),
    _C("email", "notify=pager.duty.alpha@alerts.example.io,ops", "pager.duty.alpha"),
    _C("email", 'FROM:"Xiomara Q" <xiomara_q@example.travel>', "xiomara_q@example"),
    _C("email", "user UPPER.CASE.PERSON@EXAMPLE.COM logged in", "UPPER.CASE.PERSON"),
    _C("email", "send to a.b.c.d.eleanor@sub.sub2.example.museum now", "a.b.c.d.eleanor"),
    _C("email", "recipients: annika1@example.com;bertrand2@example.com", "bertrand2@example.com"),
    _C("email", "recipients: annika1@example.com;bertrand2@example.com", "annika1@example.com"),
    _C("email", "clone git@github.example.com:secret-org/private-repo.git", "git@github.example.com"),
    # -- IPv4 -------------------------------------------------------------------------------------------
    _C("ipv4", "connect to 203.0.113.77 failed", "203.0.113.77"),
    _C("ipv4", "dial tcp 198.51.100.23:5432: connection refused", "198.51.100.23"),
    _C("ipv4", "X-Forwarded-For: 192.0.2.145, 10.20.30.40", "192.0.2.145"),
    _C("ipv4", "X-Forwarded-For: 192.0.2.145, 10.20.30.40", "10.20.30.40"),
    _C("ipv4", "peer=172.16.254.9", "172.16.254.9"),
    _C("ipv4", "subnet 10.117.0.0/16 unreachable", "10.117.0.0"),
    _C("ipv4", "GET http://100.64.12.34:8080/health", "100.64.12.34"),
    _C("ipv4", "bind [192.168.77.201]", "192.168.77.201"),
    _C("ipv4", "host ip-10-42-7-99.ec2.internal is down", "10-42-7-99"),
    # -- IPv6 -------------------------------------------------------------------------------------------
    _C("ipv6", "listening on 2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::8a2e:370:7334"),
    _C("ipv6", "link-local fe80::1ff:fe23:4567:890a%eth0 up", "fe80::1ff:fe23:4567:890a"),
    _C("ipv6", "addr 2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:0db8:0000:0000:0000:ff00:0042:8329"),
    _C("ipv6", "connect [2001:db8:ab:cd::77]:443", "2001:db8:ab:cd::77"),
    _C("ipv6", "mapped ::ffff:198.51.100.201", "198.51.100.201"),
    _C("ipv6", "ula fd12:3456:789a:1::beef reachable", "fd12:3456:789a:1::beef"),
    _C("ipv6", "FE80::ABCD:EF01%en0", "FE80::ABCD:EF01"),
    _C("ipv6", "upstream=2001:db8::4f:2c1", "2001:db8::4f:2c1"),
    # -- home directories and user names ------------------------------------------------------------------
    _C("path", "/home/qwertina/projects/app/main.py", "qwertina"),
    _C("path", 'File "/Users/bartholomew/Library/app.py", line 3', "bartholomew"),
    _C("path", r"C:\Users\cordelia\AppData\Local\Temp\x.log", "cordelia"),
    _C("path", "C:\\\\Users\\\\dmitriy\\\\Documents\\\\notes.txt", "dmitriy"),
    _C("path", "C:/Users/evangeline/src/tool", "evangeline"),
    _C("path", "cd ~fitzgerald/notes", "fitzgerald"),
    _C("path", "/var/home/gwendolyn/.config/tool.toml", "gwendolyn"),
    _C("path", "open file:///home/horatio/report.pdf", "horatio"),
    _C("path", "/mnt/c/Users/isadora/Downloads/x.zip", "isadora"),
    _C("path", "cannot open /home/jebediah", "jebediah"),
    _C("path", "PYTHONPATH=/home/kasimir/lib:/opt/lib", "kasimir"),
    _C("path", r"\Users\leopoldine\Desktop", "leopoldine"),
    # -- URLs: credentials, query strings, fragments ------------------------------------------------------
    _C("url", "https://deploybot:Hunter2Pw9@git.example.com/org/repo.git", "Hunter2Pw9"),
    _C("url", "https://deploybot:Hunter2Pw9@git.example.com/org/repo.git", "deploybot"),
    _C("url", "postgres://app_rw:S3cr3tPgPass@db.internal:5432/app", "S3cr3tPgPass"),
    _C("url", "redis://:R3disAuthVal@cache:6379/0", "R3disAuthVal"),
    _C("url", "https://api.example.com/v1/reset?reset_code=Kq8zXw2Lm", "Kq8zXw2Lm"),
    _C("url", "https://example.com/callback#access_token=Zy9WvUt8Sr", "Zy9WvUt8Sr"),
    _C("url", "GET https://shop.example.com/orders?customer=marisol-ortega&page=2", "marisol-ortega"),
    _C("url", "amqp://rabbit_guest:Gu3stRabbitPw@mq.example.com/vhost", "Gu3stRabbitPw"),
    _C("url", "ftp://anonymous:nobody-pw-xyz@ftp.example.org/pub", "nobody-pw-xyz"),
    _C("url", "see https://docs.example.com/page?utm_source=newsletter_quintessa.", "newsletter_quintessa"),
    _C("url", "mongodb+srv://mongoadmin:M0ng0Pa55word@cluster0.example.net/db", "M0ng0Pa55word"),
    # -- GitHub tokens ----------------------------------------------------------------------------------
    _C("github", "export GH=ghp_M0XvqZjxTW3xvboSRt5Mh3dAwVtRMflhbmua",
       "M0XvqZjxTW3xvboSRt5Mh3dAwVtRMflhbmua"),
    _C("github", "oauth gho_ptt0Azn0DNRUQxA71p2Td8VKqxryo1nIj7BR", "ptt0Azn0DNRUQxA71p2Td8VKqxryo1nIj7BR"),
    _C("github", "ghu_d03Q2ybv097SHzxgQA6TCvY4dhKMlRdZQ9Qs", "d03Q2ybv097SHzxgQA6TCvY4dhKMlRdZQ9Qs"),
    _C("github", "app token (ghs_TXUuSnH6av1Ib8pp1xxXHU0BScJXj675eVq3)",
       "TXUuSnH6av1Ib8pp1xxXHU0BScJXj675eVq3"),
    _C("github", "refresh=ghr_0XYqaNUDqN9Nifp28uwCDydesokF5NSAllsN", "0XYqaNUDqN9Nifp28uwCDydesokF5NSAllsN"),
    _C("github", "github_pat_dV40J599dTCZWZYvRSZeyx_"
       "4Ag8SsaxTmknuj64AX6VM2ewMuBY6rfNcAKEIOUttYpATIk27f4t3tGolUB",
       "4Ag8SsaxTmknuj64AX6VM2ewMuBY6rfNcAKEIOUttYpATIk27f4t3tGolUB"),
    # -- AWS --------------------------------------------------------------------------------------------
    _C("aws", "AccessKeyId: AKIAYXM13BPAGXIUWP73", "AKIAYXM13BPAGXIUWP73"),
    _C("aws", "using session key ASIA17BD9G2LBC7RD0SM now", "ASIA17BD9G2LBC7RD0SM"),
    _C("aws", "aws_secret_access_key = a5KxxGWfvmaQtKnP/VSGVBrYSuIb9OZiFZ3HLKv7",
       "a5KxxGWfvmaQtKnP/VSGVBrYSuIb9OZiFZ3HLKv7"),
    _C("aws", "secret 97TPNbpjava1bMZwIMlvdp5gjTrD8Osj/LnZ5R+j in log", "97TPNbpjava1bMZwIMlvdp5gjTrD8Osj"),
    _C("aws", "AWS_SECRET_ACCESS_KEY=/8U/m7aSz7NRSOtv75y4SXvE9rwLbAtf6e9cpCGy",
       "m7aSz7NRSOtv75y4SXvE9rwLbAtf6e9cpCGy"),
    _C("aws", "creds bY9lMR4pAwBp3GVy1PixOqoRGrB5Vpg5C6QsyHZy", "bY9lMR4pAwBp3GVy1PixOqoRGrB5Vpg5C6QsyHZy"),
    _C("aws", "example wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    # -- Slack ------------------------------------------------------------------------------------------
    _C("slack", "SLACK_BOT=xoxb-202687496510-0790688086050-A5zbWVb2FaCo7du45pKcP753",
       "A5zbWVb2FaCo7du45pKcP753"),
    _C("slack", "xoxp-250374060955-691136108677-0546144198012-b65ab3adf32b1cc8fa650bdf6593d1b6",
       "b65ab3adf32b1cc8fa650bdf6593d1b6"),
    _C("slack", "legacy xoxa-2-811306544-77781215-aBcDeFgHiJ", "811306544-77781215"),
    _C("slack", "post https://hooks.slack.com/services/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",
       "qrLtCCuFVpoDCIb20W0tvi1j"),
    _C("slack", "hook=https://hooks.slack.com/workflows/T0CWJXCPDX/A0123/456/Zk3Qp9Lm", "Zk3Qp9Lm"),
    # -- JWTs -------------------------------------------------------------------------------------------
    _C("jwt", "id_token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    _C("jwt", "eyJhbGciOiJub25lIn0.eyJ1c2VyIjoiYm9iYnkifQ.", "eyJ1c2VyIjoiYm9iYnkifQ"),
    _C("jwt", "cookie jwt=eyJraWQiOiJrMSIsImFsZyI6IlJTMjU2In0.eyJpc3MiOiJodHRwczovL2F1dGgifQ."
       "c2lnbmF0dXJlX2J5dGVz",
       "eyJpc3MiOiJodHRwczovL2F1dGgifQ"),
    # -- Authorization header values ------------------------------------------------------------------------
    _C("bearer", "Authorization: Bearer smCaDAoZuSEyDvvWq03mSM9B8zhIPT2Q",
       "smCaDAoZuSEyDvvWq03mSM9B8zhIPT2Q"),
    _C("bearer", "curl -H 'Authorization: Basic YWxpY2lhOmhvcnNlYmF0dGVyeQ==' https://x.example.com",
       "YWxpY2lhOmhvcnNlYmF0dGVyeQ"),
    _C("bearer", "sent bearer Fh7QOjWm-jriYGs.u72rik header", "Fh7QOjWm-jriYGs.u72rik"),
    _C("bearer", "Proxy-Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    _C("bearer", "headers={'Authorization': 'Token hONva1lZp814HtFbtfeeHv0fG2xPVD8A'}",
       "hONva1lZp814HtFbtfeeHv0fG2xPVD8A"),
    _C("bearer", "use Bearer dGhpcyBpcyBzZWNyZXQ here", "dGhpcyBpcyBzZWNyZXQ"),
    # -- private keys -----------------------------------------------------------------------------------
    _C("pem", "-----BEGIN RSA PRIVATE KEY-----\n"
       "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----",
       "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"),
    _C("pem", "key: -----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5"
       "\\n-----END EC PRIVATE KEY-----",
       "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5"),
    _C("pem", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n"
       "AAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz",
       "AAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz"),
    _C("pem", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSj\n"
       "-----END PRIVATE KEY-----",
       "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSj"),
    # -- generic high-entropy secrets and vendor keys ------------------------------------------------------
    _C("generic", "key FhQOjWmjriYGsu72rikBd0YG5KE7X5oz used", "FhQOjWmjriYGsu72rikBd0YG5KE7X5oz"),
    _C("generic", "X-Signature: fOTovYGkYSrIiBSed1S3wlj46Fuq3sXR", "fOTovYGkYSrIiBSed1S3wlj46Fuq3sXR"),
    _C("generic", "blob vaQcT7xl2cwC6dT0ctPVnaawqrczLJWImKMG4hEbuUVDPDR/m0k5iqkwUONAIifE",
       "vaQcT7xl2cwC6dT0ctPVnaawqrczLJWImKMG4hEbuUVDPDR"),
    _C("generic", "api 0905f4ec5a399fc47f5edbada514e287ba054769", "0905f4ec5a399fc47f5edbada514e287ba054769"),
    _C("generic", "mailgun ba41cbb44f0753903870712d5f63adfa", "ba41cbb44f0753903870712d5f63adfa"),
    _C("generic", "charge with sk_live_gUsWlY8A1myEVIR6LFYhOTdu", "gUsWlY8A1myEVIR6LFYhOTdu"),
    _C("generic", "CI_JOB=glpat-46PbmT1TOkzfR1wKbPXT", "46PbmT1TOkzfR1wKbPXT"),
    _C("generic", "//registry.npmjs.org/:_authToken npm_WylEHwUwlCyxtq7g5HwjWcbSDS5mZGF2Hlr7",
       "WylEHwUwlCyxtq7g5HwjWcbSDS5mZGF2Hlr7"),
    _C("generic", "maps AIza25MTL3xzfMg5lJYj-loHI3Yhc1OxT_8QY4_", "25MTL3xzfMg5lJYj-loHI3Yhc1OxT_8QY4_"),
    _C("generic", "OPENAI sk-proj-3BMDogiSTRIiP9LJm7R04ZhbGSdGWoZ6axl7KBGgMVGOYn7B",
       "3BMDogiSTRIiP9LJm7R04ZhbGSdGWoZ6axl7KBGgMVGOYn7B"),
    _C("generic", "nonce 3-5SApYXfE_1ds3vbgqMMvFuz4zf3ATNeY2Pseh093F",
       "3-5SApYXfE_1ds3vbgqMMvFuz4zf3ATNeY2Pseh093F"),
    _C("generic", "webhook secret o5QhgYrZJd6F58LKideRuauiFtEvGjfL", "o5QhgYrZJd6F58LKideRuauiFtEvGjfL"),
    # -- secret-named keys: key=value, key: value, JSON, env -------------------------------------------------
    _C("kv", "password=Tr0ub4dor&3 user=admin", "Tr0ub4dor&3"),
    _C("kv", "passwd: correct-horse-battery", "correct-horse-battery"),
    _C("kv", "mysql pwd=letmein42now", "letmein42now"),
    _C("kv", "client_secret: wobbly-penguin-tuesday", "wobbly-penguin-tuesday"),
    _C("kv", '{"api_key": "sunny meadow lantern", "n": 1}', "sunny meadow lantern"),
    _C("kv", "APIKEY=plumtree-orbit-77", "plumtree-orbit-77"),
    _C("kv", "DB_PASSWORD='hazel nut crumble'", "hazel nut crumble"),
    _C("kv", "auth_token=velvet_thunder_9", "velvet_thunder_9"),
    _C("kv", "X-Api-Key: quartz-falcon-ridge", "quartz-falcon-ridge"),
    _C("kv", "private_key=granite-owl-sunrise", "granite-owl-sunrise"),
    _C("kv", "aws_access_key_id=copper-llama-dawn", "copper-llama-dawn"),
    _C("kv", "credentials: maple_syrup_vortex", "maple_syrup_vortex"),
    _C("kv", "Cookie: sessionid=ember-koala-42; csrftoken=frost-lynx-17", "ember-koala-42"),
    _C("kv", "Cookie: sessionid=ember-koala-42; csrftoken=frost-lynx-17", "frost-lynx-17"),
    _C("kv", "secret = 'tangerine dream sequence'", "tangerine dream sequence"),
    _C("kv", "GITHUB_TOKEN=lollipop-canyon-8", "lollipop-canyon-8"),
    _C("kv", "config {passphrase: nebula-drift-3}", "nebula-drift-3"),
    # -- secret-named command-line flags -------------------------------------------------------------------
    _C("flag", "tool login --password hunter2-zebra --verbose", "hunter2-zebra"),
    _C("flag", "tool --token=obsidian-moth-51 deploy", "obsidian-moth-51"),
    _C("flag", "tool --api-key pistachio-glacier", "pistachio-glacier"),
    _C("flag", "java -jar x.jar -password saffron-kite", "saffron-kite"),
    _C("flag", "tool --client-secret=cobalt-heron-6", "cobalt-heron-6"),
    _C("flag", 'tool --auth "Bearer juniper-echo-44"', "juniper-echo-44"),
    _C("flag", "aws --access-key walnut-prism-12", "walnut-prism-12"),
    _C("flag", "db --db-passwd=opal-badger-90 --host db", "opal-badger-90"),
    # -- card numbers (Luhn-valid test numbers) ------------------------------------------------------------
    _C("card", "card 4111111111111111 declined", "4111111111111111"),
    _C("card", "pay with 4012 8888 8888 1881 please", "4012 8888 8888 1881"),
    _C("card", "MC 5555-5555-5555-4444", "5555-5555-5555-4444"),
    _C("card", "amex 3782 822463 10005", "3782 822463 10005"),
    _C("card", "discover=6011111111111117", "6011111111111117"),
    _C("card", "jcb 3530111333300000 exp 12/30", "3530111333300000"),
    _C("card", "diners 30569309025904", "30569309025904"),
    _C("card", "mc2 2223003122003222", "2223003122003222"),
    # -- phone numbers ------------------------------------------------------------------------------------
    _C("phone", "call +1 (555) 201-7788 now", "201-7788"),
    _C("phone", "office +44 20 7946 0958", "7946 0958"),
    _C("phone", "mobile +49 151 23456789", "23456789"),
    _C("phone", "tel +33 6 12 34 56 78", "12 34 56 78"),
    _C("phone", "call (555) 201-9988", "201-9988"),
    _C("phone", "sms 555-201-3344 ok", "555-201-3344"),
    _C("phone", "fax 555.201.4455", "555.201.4455"),
    _C("phone", "london 020 7946 0123", "7946 0123"),
    _C("phone", "whatsapp:+4915112345678", "15112345678"),
    _C("phone", "toll free 1-800-555-0199", "555-0199"),
    # -- hardware and unique ids -----------------------------------------------------------------------
    _C("mac", "ether 3c:22:fb:9a:41:7e brd", "3c:22:fb:9a:41:7e"),
    _C("mac", "hw 3C-22-FB-9A-41-7F", "3C-22-FB-9A-41-7F"),
    _C("uuid", "user f47ac10b-58cc-4372-a567-0e02b2c3d479 missing", "f47ac10b-58cc-4372-a567-0e02b2c3d479"),
]

CLEAN_CASES: list[str] = [
    "remote add",
    "deploy",
    "db migrate --dry-run",
    "git push origin main",
    "npm run build",
    "docker compose up -d",
    "kubectl get pods -n kube-system",
    "1.2.3",
    "v2.10.0-rc.1",
    "v1.28.3+k3s1",
    "Python 3.11.7",
    "2024-01-15",
    "2024-01-15T10:30:00Z",
    "10:30:00",
    "15/01/2024",
    "timeout after 30s",
    "localhost:8080",
    "port 5432",
    "HTTP 404",
    "exit code 137",
    "retry 3 of 5",
    "42",
    "-1",
    "3.14159",
    "1700000000000",
    "1,024 bytes",
    "100%",
    "ConnectionRefusedError",
    "click.exceptions.UsageError",
    "mypkg.errors.ConfigError",
    "AbstractSingletonProxyFactoryBean",
    "test_should_handle_missing_config_file",
    "HTTP_REQUEST_DURATION_SECONDS_BUCKET",
    "opentelemetry-exporter-otlp-proto-http",
    "feature/add-login-page",
    "src/main.py",
    "./scripts/build.sh",
    "node_modules/.bin/tsc",
    "tests/unit/test_api.py::TestClient::test_retry",
    "/usr/local/bin/python3",
    "/etc/hosts",
    "~/.config/tool/config.toml",
    r"C:\Program Files\Tool\tool.exe",
    "https://example.com/docs/getting-started",
    "std::vector<int>",
    "x86_64",
    "darwin-arm64",
    "en_US.UTF-8",
    "application/json",
    "us-east-1",
    "status=ok",
    "author=someone",
    "max_tokens=4096",
    "tokens_used=1200",
    "Basic usage: tool [OPTIONS]",
    "The quick brown fox jumps over the lazy dog",
    "SELECT count(*) FROM runs WHERE ok = 1",
    "kube-system/coredns-5d78c9869d-abcde",
    "--verbose",
    "-v",
]
