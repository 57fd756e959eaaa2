"""The organization's member accounts from AWS Organizations (`ListAccounts`, from the management or a
delegated administrator account)."""

from __future__ import annotations

from typing import Any

from monitor.ingest.sources import aws


def list_accounts(role_arn: str | None = None) -> list[dict[str, Any]]:
    """Every account of the organization: id, name, email and status (ACTIVE, SUSPENDED, ...)."""
    client = aws.session(role_arn).client("organizations", config=aws.config())
    found = []
    for page in client.get_paginator("list_accounts").paginate():
        found += [{k: a.get(k) for k in ("Id", "Name", "Email", "Status")} for a in page["Accounts"]]
    return found
