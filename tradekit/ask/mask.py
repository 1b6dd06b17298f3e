"""Masking for everything ``ask`` sends to a model: secrets and phone numbers become ``***``.

Four nets, each for what the others miss (stdlib only):

- **Structure.** A parsed document (JSON, TOML, a manifest, a report) loses the value of every
  key that names a secret (:func:`secretish`: key, secret, token, password, passphrase,
  private, auth, cookie, credential, ...), whole sub-tables included, at any depth.
- **Key and value in text** (INI, env, YAML, JSON lines, logs, notes): ``name = value``,
  ``name: value``, ``"name": "value"``, ``export NAME='value'``, ``--name value``, a URL's
  ``?name=value``, whatever the quoting: triple-quoted and multi-line strings, ``{...}`` and
  ``[...]`` values, an INI/TOML ``[section]`` named like a secret (every value in it), and a
  YAML key whose value is the indented block below it.
- **Formats**: PEM blocks (cut at the end when unterminated), ``Bearer``/``Basic``
  credentials, passwords in URLs, LLM and other vendors' key prefixes (``sk-ant-``, ``sk-``,
  ``ghp_``, ``AKIA``, JWTs, ...) and long base64 runs such as Kraken's API secrets (mixed case
  and digits, at least 32 characters; a hex hash, a path or a word is left alone).
- **Known values**: every configured secret, the values of secret-named environment
  variables, the ``[notify]`` numbers and ids (with or without ``+``/``00``, spaced or not),
  and any number that looks like E.164 (``+`` and 7-15 digits, not a signed decimal).

Ordinary figures (prices, P&L, percentages, dates, epoch milliseconds, hashes) pass unchanged.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradekit.config import Config

MASK = "***"

# A name is split into words at non-alphanumerics and camelCase humps: "apiKey", "API_KEY",
# "x-api-key" and "ApiKey" all hold the word "key".
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
SECRET_WORDS = frozenset(
    {
        "key", "keys", "apikey", "secret", "secrets", "token", "password", "passwords",
        "passwd", "pwd", "pw", "pass", "passphrase", "private", "privkey", "auth", "oauth",
        "authorization", "authentication", "cookie", "cookies", "credential", "credentials",
        "creds", "bearer", "signature", "mnemonic", "sessionid", "otp",
    }
)  # fmt: skip
# Joined words that hold a secret word inside ("clientsecret", "accesstoken", "hmackey").
SECRET_PARTS = ("secret", "passw", "passphrase", "apikey", "credential", "cookie", "privkey")
SECRET_SUFFIXES = ("key", "token")


def secretish(name: str) -> bool:
    """Whether a key or section name names a secret (``api_key``, ``"Authorization"``,
    ``clientSecret``, ``[credentials]``); ``max_tokens`` or ``monkey_patch`` do not."""
    words = [w.lower() for w in _WORDS.findall(name)]
    if any(w in SECRET_WORDS for w in words):
        return True
    if any(w.endswith(SECRET_SUFFIXES) and len(w) > 5 for w in words):
        return not any(w in ("monkey", "turkey", "hockey", "jockey", "donkey") for w in words)
    joined = "".join(words)
    return any(p in joined for p in SECRET_PARTS)


# -- key and value in text ---------------------------------------------------------------------

_KEY = re.compile(
    r"""(?P<lead>^[ \t]*(?:export[ \t]+|-[ \t]+|set[ \t]+)?)?"""
    r"""(?:(?P<q>["'`])(?P<qname>[^"'`\n]{1,80})(?P=q)|(?P<dash>--?)?(?P<name>[A-Za-z_@$][\w.@$-]*))"""
    r"""[ \t]*(?P<sep>:=|=>|=|:(?!//)|(?<=[\w-])[ \t](?=[^\s=:]))[ \t]*""",
    re.MULTILINE,
)
_SECTION = re.compile(r"^[ \t]*\[\[?(?P<name>[^\]\n]{1,80})\]\]?[ \t]*(?:[#;].*)?$", re.MULTILINE)
_INI_KEY = re.compile(r"^[ \t]*[^=:\n]*?[ \t]*[=:]")
_BARE_END = re.compile(r"""[\s,;&)}\]>"'<]""")
_CLOSE = {"{": "}", "[": "]"}


def _quoted_end(text: str, i: int) -> int:
    """End of the string value starting at ``text[i]`` (a quote); the line's end when it is
    not closed (a broken file still loses the value)."""
    q = text[i]
    if text.startswith(q * 3, i):
        end = text.find(q * 3, i + 3)
        return len(text) if end < 0 else end + 3
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\" and q == '"':
            j += 2
            continue
        if c == q:
            return j + 1
        if c == "\n" and q != '"':
            break
        j += 1
    nl = text.find("\n", i)
    return len(text) if nl < 0 else nl


def _bracket_end(text: str, i: int) -> int:
    """End of the ``{...}`` or ``[...]`` value at ``text[i]``, quotes respected; the line's end
    when it never closes."""
    stack = [_CLOSE[text[i]]]
    j = i + 1
    while j < len(text) and stack:
        c = text[j]
        if c in "\"'":
            j = _quoted_end(text, j)
            continue
        if c in _CLOSE:
            stack.append(_CLOSE[c])
        elif c == stack[-1]:
            stack.pop()
        j += 1
    if stack:
        nl = text.find("\n", i)
        return len(text) if nl < 0 else nl
    return j


def _line_end(text: str, i: int) -> int:
    nl = text.find("\n", i)
    return len(text) if nl < 0 else nl


def _block_end(text: str, key_start: int, after: int) -> int:
    """A YAML-style block: the lines after ``after`` indented deeper than the key's line (a
    ``- item`` list may sit at the key's own indent)."""
    line_start = text.rfind("\n", 0, key_start) + 1
    indent = len(text[line_start:key_start]) - len(text[line_start:key_start].lstrip(" \t"))
    end = _line_end(text, after)
    pos = end
    while pos < len(text):
        nxt = _line_end(text, pos + 1)
        line = text[pos + 1 : nxt]
        stripped = line.lstrip(" \t")
        depth = len(line) - len(stripped)
        if stripped and not (depth > indent or (depth == indent and stripped.startswith("- "))):
            break
        pos = nxt
    return pos


def _value_span(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    """Where the value after key match ``m`` lies, or None when there is none to mask."""
    i = m.end()
    if i >= len(text):
        return None
    c = text[i]
    # A --flag's value is one word even at a line's start; a config line's runs to its end.
    at_line_start = m.group("lead") is not None and not m.group("dash")
    if c in "\"'`":
        return i, _quoted_end(text, i)
    if c in _CLOSE:
        return i, _bracket_end(text, i)
    if c == "\n" or (c in "|>" and text[i + 1 : _line_end(text, i)].strip() in ("", "-", "+")):
        if not at_line_start or m.group("sep") not in (":", "="):
            return None
        return i, _block_end(text, m.end("lead"), i)
    if at_line_start:
        end = _line_end(text, i)
        comment = re.search(r"[ \t]+[#;]", text[i:end])  # a trailing INI/env comment stays
        return i, (i + comment.start()) if comment else end
    stop = _BARE_END.search(text, i)
    return i, stop.start() if stop else len(text)


def _mask_value(text: str, start: int, end: int) -> str:
    """The masked form of a value: quotes kept (``"***"``), a block keeps its line breaks."""
    raw = text[start:end]
    if raw[:1] in "\"'`" and len(raw) >= 2 and raw[-1] == raw[0]:
        q = raw[:3] if raw[:3] in ('"""', "'''") and len(raw) >= 6 else raw[0]
        return f"{q}{MASK}{q}"
    if "\n" in raw and raw[:1] not in "{[":
        first, *rest = raw.split("\n")
        head = MASK if first.strip() and first.strip() not in "|>-+" else first
        return "\n".join([head, *(_mask_line(x) for x in rest)])
    return MASK


def _mask_line(line: str) -> str:
    stripped = line.lstrip(" \t")
    return line[: len(line) - len(stripped)] + MASK if stripped else line


def mask_pairs(text: str) -> str:
    """Mask the values of secret-named keys in free text (see the module doc)."""
    out: list[str] = []
    pos = 0
    for m in _KEY.finditer(text):
        if m.start() < pos:
            continue  # inside a value already masked
        name = m.group("qname") or m.group("name") or ""
        if not secretish(name):
            continue
        if m.group("sep").isspace() and not (m.group("dash") or "pass" in name.lower()):
            continue  # "key value" only as a --flag, or netrc's "password value"
        span = _value_span(text, m)
        if span is None:
            continue
        start, end = span
        if end <= start or text[start:end].strip() in ("", MASK, f'"{MASK}"', f"'{MASK}'"):
            continue
        out.append(text[pos:start])
        out.append(_mask_value(text, start, end))
        pos = end
    out.append(text[pos:])
    return _mask_sections("".join(out))


def _mask_sections(text: str) -> str:
    """Every value inside an INI/TOML ``[section]`` named like a secret."""
    heads = list(_SECTION.finditer(text))
    if not any(secretish(h.group("name")) for h in heads):
        return text
    out: list[str] = []
    pos = 0
    for k, h in enumerate(heads):
        if not secretish(h.group("name")):
            continue
        body_start = h.end()
        body_end = heads[k + 1].start() if k + 1 < len(heads) else len(text)
        out.append(text[pos:body_start])
        lines = []
        for line in text[body_start:body_end].split("\n"):
            s = line.strip()
            if not s or s[0] in "#;":
                lines.append(line)
                continue
            kv = _INI_KEY.match(line)
            lines.append(f"{kv.group(0)} {MASK}" if kv else _mask_line(line))
        out.append("\n".join(lines))
        pos = body_end
    out.append(text[pos:])
    return "".join(out)


# -- formats -----------------------------------------------------------------------------------

_FORMATS = [
    # PEM (private keys, certificates); an unterminated block runs to the end.
    re.compile(r"-----BEGIN[A-Z0-9 ]*-----[\s\S]*?(?:-----END[A-Z0-9 ]*-----|\Z)"),
    # LLM and other vendors' API keys by prefix.
    re.compile(r"(?<![\w-])sk-(?:ant-|proj-|live-|test-|or-)?[A-Za-z0-9][\w\-…]{8,}"),
    re.compile(r"(?<![\w-])(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"),
    re.compile(r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,})"),
    re.compile(r"(?<![\w-])(?:xox[abposr]-[\w-]{10,}|glpat-[\w-]{16,}|hf_[A-Za-z0-9]{20,})"),
    re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"),
    re.compile(r"(?<![\w-])AIza[\w-]{30,}"),
    re.compile(r"(?<![\w-])eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*"),  # JWT
]
_AUTH = re.compile(r"(?i)\b(bearer|basic)([ \t]+)([^\s'\"`]{6,})")
_URL_USER = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/@:]+(?::[^\s/@]*)?)@")
_B64 = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/_\-]{32,}={0,2}(?![A-Za-z0-9+/=_\-])")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_E164 = re.compile(r"(?<![\w+.,])\+[1-9]\d{0,3}(?:[ \-]?\d{2,5}){1,6}(?![\d]|[.,]\d)")


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def looks_random(run: str) -> bool:
    """A base64/base64url run that is a key, not a word, path or hash: both cases and digits,
    upper case and digits at least a quarter of it, and high entropy. A long run may lack
    digits (one random 56-character Kraken key in about 13,000 has none) when its entropy is
    that of random text (4.3 bits a character and more; long CamelCase words stay near 4.1)."""
    core = run.rstrip("=")
    upper = sum(c.isupper() for c in core)
    digits = sum(c.isdigit() for c in core)
    lower = sum(c.islower() for c in core)
    if not (upper and lower):
        return False
    if (upper + digits) / len(core) < 0.25:
        return False
    if digits:
        return _entropy(core) >= 4.0
    return len(core) >= 48 and _entropy(core) >= 4.3


def mask_formats(text: str) -> str:
    for rx in _FORMATS:
        text = rx.sub(MASK, text)
    text = _AUTH.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _URL_USER.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _B64.sub(lambda m: MASK if looks_random(m.group(0)) else m.group(0), text)
    return _E164.sub(_phone, text)


def _phone(m: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in m.group(0))
    if not 7 <= digits <= 15 or _DATE.search(m.group(0)):
        return m.group(0)  # "+20 2024-03-10" is a figure and a date
    return MASK


# -- the masker --------------------------------------------------------------------------------


def _number_pattern(number: str) -> re.Pattern[str] | None:
    """A configured phone number in any usual spelling: +43 660 1234567, 0043-660..., 43660..."""
    digits = re.sub(r"\D", "", number)
    if len(digits) < 7:
        return None
    body = r"[ \-/()]*".join(digits)
    return re.compile(rf"(?<!\d)(?:\+|00)?[ ]*{body}(?!\d|[.,]\d)")


class Masker:
    """Masks text and parsed documents; built once per ``ask`` from the config's secrets,
    the environment and the ``[notify]`` numbers."""

    def __init__(self, literals: Iterable[str] = (), numbers: Iterable[str] = ()) -> None:
        self.literals = sorted({v for v in literals if len(v) >= 6}, key=len, reverse=True)
        pats = [_number_pattern(n) for n in numbers]
        self.numbers = [p for p in pats if p is not None]

    @classmethod
    def for_config(cls, cfg: Config, environ: Mapping[str, str] | None = None) -> Masker:
        from tradekit.config import SECRET_ENV, secret_values

        env = os.environ if environ is None else environ
        values = set(secret_values(cfg))
        values.update(v for k in SECRET_ENV.values() if (v := env.get(k)))
        # Any secret-named variable (AWS_SECRET_ACCESS_KEY, SIGNAL_TOKEN, ...) counts too.
        values.update(v for k, v in env.items() if v and secretish(k) and not _harmless(v))
        n = cfg.notify
        ids = [*n.recipients, *n.allow, n.sender]
        values.update(i for i in ids if i and not i.lstrip("+").isdigit())  # group ids, UUIDs
        return cls(values, [i for i in ids if i and i.lstrip("+").replace(" ", "").isdigit()])

    def text(self, text: str) -> str:
        for v in self.literals:
            text = text.replace(v, MASK)
        for rx in self.numbers:
            text = rx.sub(MASK, text)
        # Formats first: "Authorization: Bearer xyz" keeps no word of the credential.
        return mask_pairs(mask_formats(text))

    def tree(self, doc: Any) -> Any:
        """A parsed document with secret-named keys' values masked and every string masked."""
        if isinstance(doc, Mapping):
            out: dict[str, Any] = {}
            for k, v in doc.items():
                key = self.text(str(k))
                secret = secretish(str(k)) and v is not None and not isinstance(v, bool)
                out[key] = MASK if secret else self.tree(v)
            return out
        if isinstance(doc, list | tuple):
            return [self.tree(v) for v in doc]
        if isinstance(doc, str):
            return self.text(doc)
        return doc


def _harmless(value: str) -> bool:
    """Environment values that are not secrets even under a secret-ish name (flags, paths)."""
    return len(value) < 6 or value.lower() in ("true", "false") or value.startswith("/")
