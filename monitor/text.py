"""Making attacker-controlled text safe to show: CloudTrail fields (user agents, user names, role
session names, error messages) and file names can carry terminal escape sequences."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Control characters (C0, DEL, C1: ESC, CSI, OSC...) become visible `\\xNN` escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
