"""`trailguard run` and what keeps it honest: the scheduler, health and metrics, the watchdog, `check`,
IAM hygiene and the account inventory."""
