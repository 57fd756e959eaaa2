"""slack_sdk's WebClient as the Slack transport needs it: retries that never repeat a post that may have
arrived, an injectable sleep, the bot token from the environment, and the access check of `check`."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState


class _Sleeping(RetryHandler):
    """A retry handler whose wait is computed by `delay` and slept through an injectable sleep (slack_sdk's own
    handlers call time.sleep directly), so tests need not wait."""

    def __init__(self, sleep: Callable[[float], None], max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.sleep = sleep

    def delay(self, state: RetryState, response: HttpResponse | None) -> float:
        raise NotImplementedError

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        self.sleep(self.delay(state, response))
        state.increment_current_attempt()


class RateLimitHandler(_Sleeping):
    """Honours `Retry-After` (seconds or an HTTP date), waiting at most a minute."""

    def __init__(self, max_retry_count: int = 5, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(sleep, max_retry_count)

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code == 429

    def delay(self, state: RetryState, response: HttpResponse | None) -> float:
        value = next(
            (v[0] for k, v in (response.headers if response else {}).items() if k.lower() == "retry-after"), "1"
        )
        try:
            wait = float(value)
        except ValueError:  # an HTTP date, or nonsense: then a second
            try:
                wait = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                wait = 1.0
        return max(0.0, min(wait, 60.0))


def _creates(request: HttpRequest) -> bool:
    """A call that makes a new message each time it succeeds: never repeated unless it surely never arrived."""
    return request.url.rstrip("/").endswith("/chat.postMessage")


def _never_sent(error: Exception | None) -> bool:
    """The connection was refused or the name did not resolve: Slack cannot have received the request."""
    reason = error.reason if isinstance(error, URLError) else error
    return isinstance(reason, ConnectionRefusedError | socket.gaierror)


class _Careful(_Sleeping):
    """slack_sdk's own handler, its backoff slept through the injected sleep, repeating a post only when
    `_may_repeat_post` says the request cannot have reached Slack."""

    interval_calculator: Any

    def __init__(self, sleep: Callable[[float], None], max_retry_count: int = 2) -> None:
        super().__init__(sleep, max_retry_count)

    def _may_repeat_post(self, error: Exception | None) -> bool:
        return False

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        possible = super()._can_retry(state=state, request=request, response=response, error=error)
        return possible and (not _creates(request) or self._may_repeat_post(error))

    def delay(self, state: RetryState, response: HttpResponse | None) -> float:
        return float(self.interval_calculator.calculate_sleep_duration(state.current_attempt))


class ServerErrorHandler(_Careful, ServerErrorRetryHandler):
    """5xx: Slack may have posted before failing, so a post is left to the history lookup, never repeated."""


class ConnectionErrorHandler(_Careful, ConnectionErrorRetryHandler):
    """A dropped connection or a timeout after the request went out may hide a post Slack accepted: a post is
    repeated here only when the request never left (a refused connection, a name that did not resolve)."""

    def _may_repeat_post(self, error: Exception | None) -> bool:
        return _never_sent(error)


def client(token: str, base_url: str | None = None, sleep: Callable[[float], None] = time.sleep) -> WebClient:
    """slack_sdk's WebClient with retries for rate limits (honouring Retry-After), server and connection errors."""
    handlers: list[RetryHandler] = [
        RateLimitHandler(sleep=sleep),
        ServerErrorHandler(sleep),
        ConnectionErrorHandler(sleep),
    ]
    return WebClient(token=token, base_url=base_url or "https://slack.com/api/", retry_handlers=handlers)


def token_from_environment(env: Mapping[str, str] = os.environ) -> str | None:
    """The bot token, from SLACK_BOT_TOKEN or the file named by SLACK_BOT_TOKEN_FILE; never from the config. One
    of only blanks (a variable set from an empty secret) is no token: missing, as `run` says at start."""
    if env.get("SLACK_BOT_TOKEN", "").strip():
        return env["SLACK_BOT_TOKEN"].strip()
    path = env.get("SLACK_BOT_TOKEN_FILE")
    return (Path(path).read_text().strip() or None) if path else None


def check_access(web: WebClient, channels: Collection[str]) -> list[tuple[str, str | None]]:
    """(what was checked, problem or None): the token (`auth.test`) and every routed channel (`conversations.info`)."""
    try:
        who = web.auth_test()
    except (SlackApiError, OSError) as exc:
        return [("slack token", reason(exc))]
    results: list[tuple[str, str | None]] = [(f"slack token: bot {who.get('user')} in {who.get('team')}", None)]
    for channel in sorted(channels):
        try:
            info = web.conversations_info(channel=channel)["channel"]
        except (SlackApiError, OSError) as exc:
            results.append((f"slack channel {channel}", reason(exc) + " (use the channel id; invite the bot)"))
            continue
        problem = None if info.get("is_member", True) else "the bot is not a member: /invite it"
        results.append((f"slack channel {channel} (#{info.get('name')})", problem))
    return results


def reason(exc: Exception) -> str:
    return str(exc.response.get("error", exc)) if isinstance(exc, SlackApiError) else f"{type(exc).__name__}: {exc}"
