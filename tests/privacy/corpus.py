"""A generated corpus of personal and secret data (Faker, ten locales, seeded) and a negative corpus.

``positive()``: >= 2,000 values in >= 30 categories that must never appear anywhere we store or send.
Each value carries ``needles``: the value itself and its distinctive substrings (tokens of 6+
characters with a letter, digit runs of 9+), so a partial leak (a surname, the middle of an IBAN) is
found too. ``negative()``: ordinary program text (command names, versions, file names, units...) whose
over-redaction is measured, not forbidden. Reproducible: the same seed gives the same corpus.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass

SEED = 16_2026
LOCALES = ("en_US", "de_DE", "fr_FR", "ja_JP", "pt_BR", "en_GB", "es_ES", "it_IT", "nl_NL", "pl_PL")
PER_CATEGORY = 70


@dataclass(frozen=True)
class Value:
    category: str
    text: str
    needles: tuple[str, ...]


def _needles(text: str) -> tuple[str, ...]:
    out = {text}
    token: list[str] = []
    for ch in text + " ":
        if ch.isalnum() or ch in "@._-+'":
            token.append(ch)
            continue
        word = "".join(token).strip("._-+'")
        token = []
        if (len(word) >= 6 and any(c.isalpha() for c in word)) or (len(word) >= 11 and word.isdigit()):
            out.add(word)
    return tuple(sorted(out, key=len, reverse=True))


def _distinctive(values: list[Value]) -> list[Value]:
    """Drop substrings shared by 3+ values (``Password``, ``Street``, ``internal``): the structure of a
    category, not anybody's data."""
    from collections import Counter

    counts = Counter(n for v in values for n in v.needles[1:] if n != v.text)
    return [Value(v.category, v.text, tuple(n for n in v.needles if n == v.text or counts[n] < 3))
            for v in values]


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def positive(seed: int = SEED) -> list[Value]:
    """The PII corpus: every category, PER_CATEGORY values each, deduplicated."""
    from faker import Faker

    Faker.seed(seed)
    rng = random.Random(seed)
    fakers = [Faker(loc) for loc in LOCALES]
    for i, f in enumerate(fakers):
        f.seed_instance(seed + i)
    alnum = string.ascii_letters + string.digits
    hexd = "0123456789abcdef"

    def f() -> Faker:
        return rng.choice(fakers)

    def mac(sep: str) -> str:
        octets = [f"{rng.randrange(256):02x}" for _ in range(6)]
        if sep == ".":
            joined = "".join(octets)
            return ".".join(joined[i:i + 4] for i in range(0, 12, 4))
        return sep.join(octets)

    def jwt() -> str:
        def b64(raw: bytes) -> str:
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        head = b64(b'{"alg":"HS256","typ":"JWT"}')
        body = b64(json.dumps({"sub": str(rng.randrange(10**9)), "name": fakers[0].name()}).encode())
        return f"{head}.{body}.{_rand(rng, alnum + '-_', 43)}"

    def iban_spaced() -> str:
        raw = f().iban()
        return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))

    def host() -> str:
        g = f()
        return (f"{g.domain_word()}-{rng.choice(['db', 'ci', 'build', 'vault', 'k8s'])}{rng.randrange(1, 99):02d}"
                f".{rng.choice(['corp', 'int', 'prod', 'lan'])}.{g.domain_word()}.internal")

    def home_path() -> str:
        user = fakers[rng.randrange(len(fakers))].user_name()
        return rng.choice([f"/home/{user}/projects/app", f"/Users/{user}/Library/tool.cfg",
                           f"C:\\Users\\{user}\\AppData\\Local\\tool"])

    gens = {
        "person_name": lambda: f().name(),
        "first_last": lambda: f"{f().first_name()} {f().last_name()}",
        "email": lambda: f().email(),
        "user_handle": lambda: f().user_name() + str(rng.randrange(10, 99)),
        "phone_national": lambda: f().phone_number(),
        "phone_e164": lambda: "+" + f().msisdn()[:12],
        "street_address": lambda: f().street_address().replace("\n", ", "),
        "full_address": lambda: f().address().replace("\n", ", "),
        "iban": lambda: f().iban(),
        "iban_spaced": iban_spaced,
        "ssn_us": lambda: fakers[0].ssn(),
        "national_id": lambda: rng.choice(fakers[1:]).ssn(),
        "passport": lambda: f().passport_number() + rng.choice("ABCDEFGH"),
        "date_of_birth": lambda: f().date_of_birth().strftime(rng.choice(["%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y"])),
        "coordinates": lambda: f"{f().latitude():.5f}, {f().longitude():.5f}",
        "mac_colon": lambda: mac(":"),
        "mac_dotted": lambda: mac("."),
        "internal_host": host,
        "ipv4_private": lambda: f().ipv4_private(),
        "ipv6": lambda: f().ipv6(),
        "credit_card": lambda: f().credit_card_number(),
        "password": lambda: f().password(length=rng.randrange(10, 18)),
        "aws_key": lambda: "AKIA" + _rand(rng, string.ascii_uppercase + string.digits, 16),
        "github_token": lambda: "ghp_" + _rand(rng, alnum, 36),
        "gitlab_token": lambda: "glpat-" + _rand(rng, alnum, 20),
        "slack_token": lambda: "xoxb-" + "-".join(_rand(rng, string.digits, 11) for _ in range(2)) + "-"
                               + _rand(rng, alnum, 24),
        "jwt": jwt,
        "hex_key": lambda: _rand(rng, hexd, 40),
        "conn_string_ado": lambda: (f"Server={f().domain_word()}.db.internal;User ID={f().user_name()};"
                                    f"Password={f().password(length=12)};"),
        "conn_string_libpq": lambda: f"host=db.internal user={f().user_name()} password={f().password(length=12)}",
        "home_path": home_path,
        "license_plate": lambda: f().license_plate(),
        "company_email_name": lambda: f"{f().name()} <{f().company_email()}>",
        "uuid": lambda: str(f().uuid4()),
    }
    out: list[Value] = []
    seen: set[str] = set()
    for category, gen in gens.items():
        count = 0
        tries = 0
        while count < PER_CATEGORY and tries < PER_CATEGORY * 5:
            tries += 1
            text = str(gen()).strip()
            if len(text) < 6 or text in seen or text.startswith("-"):
                continue
            seen.add(text)
            out.append(Value(category, text, _needles(text)))
            count += 1
    return _distinctive(out)


NEGATIVE: dict[str, tuple[str, ...]] = {
    "command_names": ("deploy", "sync", "remote add", "db migrate", "build", "init", "status", "config set",
                      "cache clear", "login", "plugin list", "export", "import", "run", "test", "lint",
                      "format", "release", "rollback", "upgrade", "version", "help", "serve", "watch",
                      "logs tail", "auth refresh", "secrets list", "user list", "token create", "key rotate"),
    "versions": ("1.0.0", "2.3.4-rc.1", "0.9.12", "3.11.4", "v1.2.3", "2024.1.0", "1.0.0-beta.2", "10.2",
                 "4.0.0a1", "22.04", "1.2.3.post1", "0.0.1.dev5", "5.4.0-1051-azure", "7.1", "18.20.4",
                 "v0.66b1", "2.0.0+build", "1.45.1", "8.5.1", "3.12.0rc2"),
    "file_names": ("report.csv", "config.toml", "main.py", "README.md", "data.json", "setup.cfg", "index.html",
                   "Dockerfile", "Makefile", "output.parquet", "backup.tar.gz", "notes.txt", "app.log",
                   "schema.sql", "package.json", "pyproject.toml", "requirements.txt", "style.css",
                   "image.png", "archive.zip"),
    "system_paths": ("/usr/local/bin", "/etc/hosts", "/var/log/syslog", "/tmp/build", "/opt/app/bin",
                     "./src/main.py", "../data/input.csv", "~/config", "/proc/self/status", "/dev/null",
                     "lib/python3.12/site-packages", "C:\\Program Files\\Tool", "/usr/share/zoneinfo",
                     "/etc/ssl/certs", "bin/activate"),
    "durations_sizes": ("2.5s", "150ms", "3m20s", "1h", "10MB", "512 KiB", "4 GiB", "99.9%", "0.75",
                        "1024", "42", "3 retries", "5 minutes", "timeout=30", "limit=100", "page=2",
                        "batch 17 of 20", "100 items", "60 seconds", "12 workers"),
    "http_status": ("Not Found", "Bad Request", "Internal Server Error", "Service Unavailable", "Forbidden",
                    "Too Many Requests", "Gateway Timeout", "Conflict", "Unauthorized", "OK", "Created",
                    "No Content", "Moved Permanently", "Payload Too Large", "Unprocessable Entity"),
    "log_levels_enums": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "READY", "PENDING", "RUNNING",
                         "FAILED", "SUCCEEDED", "CANCELLED", "active", "inactive", "enabled", "disabled",
                         "true", "false", "none", "unknown", "default"),
    "package_names": ("requests", "numpy", "pandas", "click", "typer", "opentelemetry-sdk", "protobuf",
                      "django", "flask", "fastapi", "pydantic", "sqlalchemy", "pytest", "ruff", "mypy",
                      "boto3", "kubernetes", "docker", "uvicorn", "httpx"),
    "technical_words": ("connection refused", "permission denied", "file not found", "invalid syntax",
                        "unexpected token", "missing argument", "unknown option", "out of memory",
                        "disk full", "checksum mismatch", "rate limited", "retrying request",
                        "cache miss", "lock held", "deadline exceeded", "schema migrated", "index rebuilt",
                        "dry run", "no changes", "up to date"),
    "identifiers": ("user_id", "order_count", "max_tokens", "build_number", "retry_after", "CamelCaseName",
                    "snake_case_name", "kebab-case-name", "feature.flag", "db.system", "http.method",
                    "service.name", "os.type", "host.arch", "cli.command.name", "exportCsv", "parseArgs",
                    "getUserById", "HTTPServer", "JSONDecodeError"),
    "iso_timestamps": ("2024-05-01T12:00:00Z", "12:30:45", "2023-12-31", "Mon", "Q3 2024", "week 42",
                       "1714564800", "1714564800123", "UTC", "+02:00"),
    "hosts_public": ("localhost", "localhost:8080", "example.com", "api.example.com", "pypi.org", "github.com",
                     "docs.python.org", "127.0.0.1:4318", "0.0.0.0", "registry.npmjs.org"),
    "languages_os": ("python", "linux", "darwin", "windows", "amd64", "arm64", "cpython", "pypy", "x86_64",
                     "ubuntu", "debian", "alpine", "macOS", "English", "Deutsch"),
    "sentences": ("Build finished without errors", "Uploading artifacts to the registry",
                  "Press Ctrl-C to stop", "Use --help for more information", "See the documentation for details",
                  "Configuration reloaded", "Nothing to commit, working tree clean", "All checks passed",
                  "Downloading dependencies", "Starting development server"),
    "numbers_units": ("3.14159", "-40", "1e-9", "65535", "8080", "443", "0x1F", "255.255", "1/2", "100%",
                      "7 days", "24h", "2.0x", "0.001", "1,000"),
}


def negative() -> list[Value]:
    """Ordinary program text: over-redaction of these is measured and reported per category."""
    return [Value(cat, text, (text,)) for cat, texts in NEGATIVE.items() for text in texts]
