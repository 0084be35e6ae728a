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


SEED_3 = 20_2026_1207
LOCALES_3 = ("ru_RU", "zh_CN", "ko_KR", "tr_TR", "sv_SE", "cs_CZ", "hi_IN", "he_IL", "el_GR", "uk_UA",
             "fi_FI", "vi_VN")
"""Round 3 (issue 20): a new seed and locales no earlier corpus used (native scripts, diacritics)."""
PER_CATEGORY_3 = 24


def third(seed: int = SEED_3) -> list[Value]:
    """A new corpus for the round-3 doors: every category of ``positive()`` generated afresh from new
    locales, plus categories no earlier corpus had (IPv6 with zones, MACs in dash notation, medical
    record numbers, PEM keys, git remotes with tokens, Windows paths with user names, IDN e-mails,
    E.164 numbers, native-script names, account numbers as they appear in integers)."""
    from faker import Faker

    rng = random.Random(seed)
    fakers = [Faker(loc) for loc in LOCALES_3]
    for i, f in enumerate(fakers):
        f.seed_instance(seed + i)
    alnum = string.ascii_letters + string.digits

    def f() -> Faker:
        return rng.choice(fakers)

    def pem() -> str:
        body = base64.b64encode(bytes(rng.randrange(256) for _ in range(48))).decode()
        return f"pem:-----BEGIN PRIVATE KEY-----{body}-----END PRIVATE KEY-----"

    def idn_email() -> str:
        g = f()
        tld = rng.choice(["рф", "中国", "com.tr", "se", "cz"])
        return f"{g.first_name().lower()}.{g.last_name().lower()}@{g.last_name().lower()}.{tld}"

    gens = {
        "native_name": lambda: f().name(),
        "name_ascii_handle": lambda: f"{fakers[rng.randrange(len(fakers))].user_name()}{rng.randrange(100, 999)}",
        "email_3": lambda: f().email(),
        "idn_email": idn_email,
        "phone_3": lambda: f().phone_number(),
        "e164": lambda: "+" + str(rng.choice([7, 86, 82, 90, 46, 420, 91, 972, 30, 380, 358, 84]))
                        + str(rng.randrange(10**8, 10**10)),
        "address_3": lambda: f().address().replace("\n", ", "),
        "iban_3": lambda: f().iban(),
        "passport_3": lambda: f().passport_number() + rng.choice("KLMNPQRS") + str(rng.randrange(10, 99)),
        "medical_record": lambda: f"MRN-{rng.randrange(10**7, 10**8)}-{rng.choice('ABCDEFGH')}",
        "license_plate_3": lambda: f().license_plate(),
        "mac_dash": lambda: "-".join(f"{rng.randrange(256):02X}" for _ in range(6)),
        "ipv6_zone": lambda: f"fe80::{rng.randrange(1, 65535):x}:{rng.randrange(1, 65535):x}%eth{rng.randrange(9)}",
        "ipv6_3": lambda: f().ipv6(),
        "coordinates_3": lambda: f"{f().latitude():.6f},{f().longitude():.6f}",
        "pem_key": pem,
        "git_remote_token": lambda: (f"https://oauth2:glpat-{''.join(rng.choice(alnum) for _ in range(20))}"
                                     f"@git.{f().domain_word()}.internal/{f().user_name()}/repo.git"),
        "windows_home": lambda: f"C:\\Users\\{f().user_name()}\\Documents\\{f().word()}.xlsx",
        "discord_token": lambda: ("M" + "".join(rng.choice(alnum) for _ in range(23)) + "."
                                  + "".join(rng.choice(alnum) for _ in range(6)) + "."
                                  + "".join(rng.choice(alnum + "_-") for _ in range(27))),
        "gcp_key": lambda: "AIza" + "".join(rng.choice(alnum + "_-") for _ in range(35)),
        "company_3": lambda: f().company(),
        "ssn_3": lambda: f().ssn(),
        "account_number": lambda: str(rng.randrange(10**11, 10**13)),
        "password_3": lambda: f().password(length=rng.randrange(12, 20)),
    }
    out: list[Value] = []
    seen: set[str] = set()
    for category, gen in gens.items():
        count = tries = 0
        while count < PER_CATEGORY_3 and tries < PER_CATEGORY_3 * 6:
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
