"""The sinks findings are delivered to. A new sink is a module with its transport and a `Kind` (when it is
wanted, how its route is built), and an entry in `registry`. Writing findings to a file needs no Slack client:
only the registry loads every sink."""
