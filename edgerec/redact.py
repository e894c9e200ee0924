"""The one way to print what may hold a secret: URLs without their passwords, and known secret values masked.

Every log record of the process goes through the installed `Redactor` (`install`), so a password in a store's URL
or a webhook's token never reaches a log line, whichever library logs it; the stores keep only the redacted form
of their URL as their name (errors, audit lines, journal keys and registry tags are made from it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# query parameters that carry credentials (AWS presigned URLs, SAS tokens, API keys, ...)
_SECRET_PARAM = re.compile(r"token|secret|passw|key|sig|credential|auth", re.IGNORECASE)
# user:password@ in any URL inside a text
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s/]+)@",
                       re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL with its password and any credential-like query value replaced by ***; the rest (host, port, path,
    other parameters) stays, so two stores stay told apart."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url  # a path: nothing secret in it
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{MASK}@" + netloc.rpartition("@")[2]
    query = urlencode([(k, MASK if _SECRET_PARAM.search(k) else v) for k, v in parse_qsl(parts.query, True)],
                      safe="*/:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def host_only(url: str) -> str:
    """scheme://host[:port] and /*** for the rest: for URLs whose path is the credential (chat webhooks)."""
    parts = urlsplit(url)
    if not parts.scheme:
        return MASK
    port = f":{parts.port}" if parts.port else ""
    rest = f"/{MASK}" if parts.path.strip("/") or parts.query or parts.username or parts.password else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{rest}"


class Redactor:
    """Replaces each known secret value by its shown form, then masks the password of any URL left in the text."""

    def __init__(self, secrets: Mapping[str, str] | None = None):
        # longest first, so a secret that contains another is replaced whole
        self.secrets = sorted(((v, shown) for v, shown in (secrets or {}).items() if v), key=lambda p: -len(p[0]))

    def __call__(self, text: str) -> str:
        for value, shown in self.secrets:
            text = text.replace(value, shown)
        return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)


_installed: Redactor | None = None
_factory = logging.getLogRecordFactory()


def install(redactor: Redactor) -> None:
    """Every log record created from now on in this process carries its message redacted (the last one installed
    wins)."""
    global _installed
    _installed = redactor
    logging.setLogRecordFactory(_redacting_record)


def scrub(text: str) -> str:
    """Text as it may be printed, by the installed redactor (URL passwords alone when none is)."""
    return (_installed or Redactor())(text)


def uninstall() -> None:
    global _installed
    _installed = None
    logging.setLogRecordFactory(_factory)


def _redacting_record(*args, **kwargs) -> logging.LogRecord:
    record = _factory(*args, **kwargs)
    if _installed is not None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record is logging's to report, unchanged
            return record
        record.msg, record.args = _installed(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _installed(logging.Formatter().formatException(record.exc_info))
    return record
