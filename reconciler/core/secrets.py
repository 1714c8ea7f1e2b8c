"""Secrets the reconciler knows, hidden by value wherever they appear.

A process-wide set of secret values: the token we generate, values read from env files and
configs under secret-looking names, `--token`/`--password` arguments, `Authorization:`
credentials. `learn_secrets` finds them in any text (an env file, a unit, a command line, a
config in JSON or YAML shape, a comment); `mask_secrets` replaces every known value in a text
we are about to print or write. Renderers, saved plans, snapshots, run records and logs pass
what they write through it (render/redaction.py, unattended/). Not pure, but without effects
on the host: a memory of what must never be shown, shared by the whole process.
"""

from __future__ import annotations

import os
import re
import threading

MASK = "(sensitive)"
MIN_SECRET_CHARS = 8  # shorter "secrets" (`true`, a port) would mask ordinary words

# Names that say "what follows is a secret", in any case and as part of a longer name
# (GATEWAY_PASS, AUTH_BEARER, CLAWDBOT_GATEWAY_TOKEN, apiKey, client_secret, ...).
_NAME = (
    r"[\w.-]*?(?:token|passw(?:or)?d|pass|secret|key|auth|bearer|credential|cookie|session)[\w.-]*"
)
_VALUE = r"(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"',;]+)"
# The shapes below are pattern texts, compiled by `re` (and kept in its cache) on first use:
# compiling all of them at import cost every command's start-up 19 M instructions
# (bench/instructions.py), most commands print no line with a secret hint, and most lines
# that have one need only one or two of them.
# Authorization: Bearer X / Basic X, also URL-encoded (Bearer%20X) or inside another value.
_CREDENTIAL = r"(?i:\b(?:bearer|basic)(?:\s+|%20|\+))(?P<v>[A-Za-z0-9._~+/=-]{8,})"
# Every other shape a secret is written in; the group that matched is the value.
_SHAPES = "|".join(
    (
        # NAME=value (env files, Environment=NAME=value, "NAME=value", --token=value), also
        # `name = value` (INI: ~/.aws/credentials' aws_secret_access_key = ...)
        rf"(?i:(?<![\w-]){_NAME})[ \t]*=[ \t]*(?P<v1>{_VALUE})",
        # name: value (YAML, `# token: X`, headers), "name": "value" (JSON)
        rf"(?i:(?<![\w-])[\"']?{_NAME}[\"']?)[ \t]*:[ \t]*(?P<v2>{_VALUE})",
        # --token X, --password X
        rf"(?i:(?<![\w-])--{_NAME})[ \t]+(?P<v3>(?!-){_VALUE})",
    )
)
# A password in a URL's userinfo, any scheme and nested (`rest:https://u:PW@host/`,
# `postgres://u:PW@db/x`, `sftp://u:PW@host/`, `s3:https://KEY:SECRET@...`): hidden by shape,
# whatever its length (a short one is still a password), and learnt by value when long enough.
_URL_PASSWORD = r"(?i:\b[a-z][a-z0-9+.-]*://)[^\s/?#@:\"']*:(?P<v>[^\s/?#@\"']+)@"
# Values whose shape alone says "credential", under any name or none (issue 22's red team):
# provider tokens with fixed prefixes, AWS access key ids, JWTs, PEM private key bodies.
_TOKEN_SHAPES = (
    r"\b(?P<v>(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"
    r"|A(?:KIA|SIA)[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}))"
)
# A Telegram bot token (`123456789:AAH...`, 35 characters after the bot's id): no prefix of
# its own, and in `https://api.telegram.org/bot<token>/` it follows `bot` directly.
_TELEGRAM = r"(?<![0-9])(?P<v>[0-9]{6,12}:[A-Za-z0-9_-]{35})(?![A-Za-z0-9_-])"
# What follows `Authorization:` is a credential however short (`Bearer abc123`, `token X`,
# `Basic X`): hidden by its shape, never learnt as a value (a short one would mask words).
_AUTH_HEADER = (
    r"(?i:\bauthorization(?:\\?[\"'])?[ \t]*[:=][ \t]*(?:\\?[\"'])?"
    r"(?:(?:bearer|basic|token|bot|digest)(?:[ \t]+|%20|\+))?)(?P<v>(?![{\[])[^\s\"',;\\]+)"
)
_TOKEN_PREFIXES = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "sk-",
                   "akia", "asia", "eyj")  # fmt: skip
# A signed URL's signature (`X-Amz-Signature=...`, `Signature=...`): its own pattern, as a name
# in _NAME it made every scan of a large plan 40 % slower.
_SIGNATURE = r"(?i:signature)=(?P<v>[^&\s\"']+)"
_PEM_KEY = r"(?s)-----BEGIN (?P<kind>[A-Z0-9 ]*PRIVATE KEY)-----(?P<v>.*?)-----END (?P=kind)-----"
# sudoers' tags (`NOPASSWD: /usr/bin/loginctl ...` in `sudo -l` output and in our own hints) name
# no secret: what follows them is a command. Case-sensitive, as sudoers writes them.
_SUDOERS_TAGS = r"\b(?:NO)?PASSWD:"
# Plain substring tests: an alternation regex with IGNORECASE cost 2.8 s on a 2,000-profile plan.
_HINT_WORDS = (
    "token",
    "pass",
    "secret",
    "key",
    "auth",
    "bearer",
    "credential",
    "cookie",
    "session",
    "basic",
    "://",
    "signature",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xox",
    "sk-",
    "akia",
    "asia",
    "eyj",
)

_known: set[str] = set()
_known_lock = threading.Lock()
_known_pattern: re.Pattern[str] | None = None


def _new_lock_in_child() -> None:
    # A child forked while another thread held the lock (reconciler.system.as_user forks during
    # probes) would wait for it forever.
    global _known_lock
    _known_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def known_secrets() -> frozenset[str]:
    """Every value masked so far (a child acting as the user hands the new ones back)."""
    return frozenset(_known)


def remember_secret(value: str) -> None:
    """Mask `value` wherever it appears from now on (a generated token, an env file's value)."""
    global _known_pattern
    value = value.strip().strip("\"'")
    if len(value) < MIN_SECRET_CHARS or value == MASK or value in _known:
        return
    with _known_lock:
        _known.add(value)
        ordered = sorted(_known, key=len, reverse=True)  # longest first: no partial masks
        _known_pattern = re.compile("|".join(re.escape(v) for v in ordered))


def learn_secrets(text: str) -> None:
    """Remember every value `text` writes in a secret-looking shape (`_CREDENTIAL`, `_SHAPES`).

    A value must look like a credential (8+ characters with a digit, or 16+), so that settings
    that merely sit under a secret-sounding name (`auth.mode: loopback`) stay readable.
    """
    telegram = [m.group("v") for m in re.finditer(_TELEGRAM, text)] if ":" in text else []
    for value in telegram:
        remember_secret(value)
    if not has_secret_hint(text):
        return
    text = re.sub(_SUDOERS_TAGS, "tag:", text)
    values = [m.group("v") for m in re.finditer(_CREDENTIAL, text)]
    # Each shape only where its marker is (plain substring tests: cheap on a large plan).
    if "@" in text and "://" in text:
        values += [m.group("v") for m in re.finditer(_URL_PASSWORD, text)]
    low = text.lower()
    if any(prefix in low for prefix in _TOKEN_PREFIXES):
        # The shape says "credential": no length or digit rule (`xoxa-AAAAAAAAAA` showed).
        for match in re.finditer(_TOKEN_SHAPES, text):
            remember_secret(match.group("v"))
    if "signature" in low:
        values += [m.group("v") for m in re.finditer(_SIGNATURE, text)]
    if "PRIVATE KEY-----" in text:  # every line of the body: a key is never shown whole
        for key in re.finditer(_PEM_KEY, text):
            values += [line.strip() for line in key.group("v").splitlines() if line.strip()]
    for match in re.finditer(_SHAPES, text):
        values.append(next(v for v in match.group("v1", "v2", "v3") if v is not None))
    for value in values:
        bare = value.strip("\"'")
        if MASK in bare or bare.startswith("$"):
            continue
        if len(bare) >= 16 or (len(bare) >= MIN_SECRET_CHARS and any(c.isdigit() for c in bare)):
            remember_secret(bare)


def mask_secrets(text: str, *, learn: bool = True) -> str:
    """`text` with every secret it names, and every secret learnt before, replaced by MASK."""
    if learn:
        learn_secrets(text)
    pattern = _known_pattern
    masked = text if pattern is None else pattern.sub(MASK, text)
    if "://" in masked and "@" in masked:  # a short URL password is masked by its shape
        masked = re.sub(_URL_PASSWORD, _mask_value, masked)
    if "uthorization" in masked or "UTHORIZATION" in masked:
        masked = re.sub(_AUTH_HEADER, _mask_value, masked)
    if "PRIVATE KEY-----" in masked:
        masked = re.sub(_PEM_KEY, lambda m: m.group(0).replace(m.group("v"), f"\n{MASK}\n"), masked)
    return masked


def _mask_value(match: re.Match[str]) -> str:
    """The match with its `v` group (the secret) replaced by MASK."""
    start, end = match.span("v")
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + MASK + whole[end - offset :]


def has_secret_hint(text: str) -> bool:
    """Cheap pre-check: could `text` name a secret at all?"""
    low = text.lower()
    return any(word in low for word in _HINT_WORDS)
