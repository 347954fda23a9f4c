"""Who is calling: the one place both services ask.

Today a caller names itself in the ``x-wharf-caller`` metadata entry (a
buyer's ``--as`` flag, a party's configured name). When mutual TLS arrives
this function reads the certificate's subject from
``context.auth_context()`` instead, and no handler changes.
"""

from __future__ import annotations

import re
from typing import Any

from datawharf.errors import InvalidArgument

CALLER_KEY = "x-wharf-caller"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str, what: str = "name") -> str:
    if not _NAME.match(name or ""):
        raise InvalidArgument(
            f"{what} {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def caller_metadata(name: str) -> tuple[tuple[str, str], ...]:
    return ((CALLER_KEY, check_name(name, "caller name")),)


def caller(context: Any) -> str:
    """The authenticated name of the peer of a server-side call."""
    for key, value in context.invocation_metadata() or ():
        if key == CALLER_KEY:
            return check_name(str(value), "caller name")
    raise InvalidArgument(
        f"the call carries no caller identity; send metadata {CALLER_KEY!r} (the buyer's name; the CLI's --as)"
    )
