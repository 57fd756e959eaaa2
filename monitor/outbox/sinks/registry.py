"""The sinks by name, in delivery order."""

from monitor.outbox.sinks import console, jsonl, log, slack, slack_webhook
from monitor.outbox.sinks.kind import Kind

REGISTRY: dict[str, Kind] = {
    "log": log.KIND,
    "jsonl": jsonl.KIND,
    slack_webhook.SINK: slack_webhook.KIND,
    "console": console.KIND,
    slack.SINK: slack.KIND,
}
