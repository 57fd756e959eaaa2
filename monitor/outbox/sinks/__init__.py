"""The sinks findings are delivered to, by name, in delivery order.

A new sink is a module with its transport and a `Kind` (when it is wanted, how its route is built),
and an entry here.
"""

from monitor.outbox.sinks import console, jsonl, log, slack, slack_webhook
from monitor.outbox.sinks.kind import Kind

REGISTRY: dict[str, Kind] = {
    "log": log.KIND,
    "jsonl": jsonl.KIND,
    slack_webhook.SINK: slack_webhook.KIND,
    "console": console.KIND,
    slack.SINK: slack.KIND,
}
