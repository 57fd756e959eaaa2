"""The transports findings are delivered through: Slack, a Slack webhook, JSON Lines, structured logs,
the console."""
