"""One SQLite state file, one migration list, and narrow stores over it: the ledger (inputs, cursors,
activity), the outbox (findings, deliveries, summaries) and the organization's accounts."""
