"""Credentials kept out of what is printed and logged: the password of every URL in a text
(`s3://KEY:SECRET@host/bucket` -> `s3://KEY:***@host/bucket`, `redis://:pw@h` ->
`redis://:***@h`). The ready line, the log formatters and URL errors go through it."""

from __future__ import annotations

import re

# scheme://user:password@: the password runs to the last "@" of the word (an
# unescaped "@" or "/" in it is not valid, but must not leak either).
_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^\s]*)@", re.I)


def redacted(text: str) -> str:
    """`text` with the password of each URL in it replaced by `***`."""
    return _USERINFO.sub(lambda m: f"{m['head']}***@" if m["password"] else m[0], text)
