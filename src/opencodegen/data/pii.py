"""PII redaction: e-mail addresses, IP addresses and secret-looking keys and tokens become placeholders
(`<EMAIL>`, `<IP_ADDRESS>`, `<KEY>`, as in StarCoder's pipeline), counted per kind.

What is *not* redacted, on purpose: IPs that identify nobody (loopback, private, link-local, documentation and
reserved ranges, and dotted version numbers such as 1.2.3.4.5), and strings that look random but sit in no
key/secret/token assignment unless they carry a known provider prefix. Secrets use detect-secrets' ideas: known
formats by prefix, private-key blocks, and high-entropy values assigned to names like `api_key` or `password`."""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter

from datatrove.pipeline.base import PipelineStep

# Each pattern starts with a character class (or a look-ahead for one) so the regex engine can skip ahead; boundaries
# are checked in Python on the (few) matches instead of with look-behinds tried at every position.
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
IPV6 = re.compile(r"[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){7}")
KEY_PREFIXES = ("AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "sk-", "AIza", "glpat-")
KNOWN_KEYS = re.compile(
    r"(?:AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{60,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|sk-[A-Za-z0-9]{32,}"  # OpenAI-style secret keys
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|glpat-[A-Za-z0-9_-]{20})"  # GitLab
)
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
ASSIGNED_SECRET = re.compile(
    r"(?i)(?=[aspt])(?:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key|auth)[\w-]*['\"]?\s*[:=]\s*"
    r"(['\"])([A-Za-z0-9+/_=.-]{16,})\1"
)
# characters that may not touch a match (so 1.2.3.4.5 or foo@bar.com.evil are not cut out of something longer)
_EDGE = {"email": "", "ip_address": ".:", "key": ""}

PLACEHOLDERS = {"email": "<EMAIL>", "ip_address": "<IP_ADDRESS>", "key": "<KEY>"}


def _entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _looks_secret(value: str) -> bool:
    """High entropy for its alphabet (detect-secrets: base64 > 4.5, hex > 3.0 bits/char), and not a word/path."""
    if re.fullmatch(r"[0-9a-fA-F]+", value):
        return _entropy(value) > 3.0
    has_mix = bool(re.search(r"\d", value)) and bool(re.search(r"[A-Za-z]", value))
    return has_mix and _entropy(value) > min(4.5, math.log2(len(value)) - 0.5)


def _public_ip(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


def _isolated(text: str, m: re.Match, extra: str) -> bool:
    """No word character (or one of `extra`) directly before or after the match."""
    before = text[m.start() - 1] if m.start() else " "
    after = text[m.end()] if m.end() < len(text) else " "
    return not (before.isalnum() or before == "_" or before in extra or after.isalnum() or after == "_"
                or after in extra)


def redact(text: str) -> tuple[str, Counter]:
    """(redacted text, count per kind)."""
    counts: Counter = Counter()

    def sub(kind: str, pattern: re.Pattern, keep=None, group: int = 0):
        nonlocal text
        source = text

        def repl(m: re.Match) -> str:
            value = m.group(group)
            if group == 0 and not _isolated(source, m, _EDGE[kind]):
                return m.group(0)
            if keep is not None and not keep(value):
                return m.group(0)
            counts[kind] += 1
            if group == 0:
                return PLACEHOLDERS[kind]
            s, e = m.start(group) - m.start(0), m.end(group) - m.start(0)
            return m.group(0)[:s] + PLACEHOLDERS[kind] + m.group(0)[e:]

        text = pattern.sub(repl, text)

    if "PRIVATE KEY-----" in text:
        sub("key", PRIVATE_KEY)
    if any(p in text for p in KEY_PREFIXES):
        sub("key", KNOWN_KEYS)
    sub("key", ASSIGNED_SECRET, keep=_looks_secret, group=2)
    if "@" in text:
        sub("email", EMAIL)
    sub("ip_address", IPV4, keep=_public_ip)
    if ":" in text:
        sub("ip_address", IPV6, keep=_public_ip)
    return text, counts


class RedactPII(PipelineStep):
    type = "🔏 - PII"
    name = "🕵 redact"

    def run(self, data, rank: int = 0, world_size: int = 1):
        for doc in data:
            with self.track_time():
                doc.text, counts = redact(doc.text)
            for kind, n in counts.items():
                self.stat_update(f"pii/{kind}", value=n)
            if counts:
                self.stat_update("pii/files_redacted")
            yield doc
