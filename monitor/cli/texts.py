"""What `--help` says of each command: (one line for the list of commands, the paragraph of its own help)."""

SOURCES = (
    "s3://bucket[/prefix] (the trail bucket, listed), sqs://<region>/<account-id>/<queue> (new-object notifications), "
    "lookup://<region>[,<region>...] (the LookupEvents API), securitylake://bucket[/prefix] (Amazon Security Lake's "
    "CloudTrail, OCSF), or a local path; options in the query, e.g. ?role_arn=ARN. Without --since/--until S3 and "
    "Security Lake list today and yesterday; with them they backfill those days."
)

COMMANDS: dict[str, tuple[str, str | None]] = {
    "scan": (
        "run the detectors over local CloudTrail files and print the findings",
        "Read CloudTrail data in any shape (S3 delivery .json/.json.gz, JSON Lines, a JSON array, a single record, "
        "`aws cloudtrail lookup-events` output, EventBridge envelopes, CloudTrail Lake and Athena query results as "
        "JSON or CSV, OpenSearch hits, Splunk exports, or directories of them), run the detectors and "
        "print one finding per line. Exit status: 2 if any input could not be read (wins), else 1 if --fail-on was "
        "given and a finding at or above it exists, else 0.",
    ),
    "detectors": ("list the detectors in the catalog", None),
    "demo": (
        "run the whole flow on a generated day of three accounts, with no AWS account and no Slack",
        "Generate a realistic day of CloudTrail activity with a story inside it, ingest it into a local lake, run "
        "every detector into the outbox, show the findings, and write the exact Slack messages that would be posted "
        "to a file. With --live: the real service's cycle runs every few seconds on a folder into which new activity "
        "lands, the story told beat by beat, and each new finding is shown as it would reach Slack.",
    ),
    "notebooks": (
        "the investigation notebooks in a folder, served by Jupyter Lab",
        "Write the investigation notebooks into a folder (a copy already there is kept) and serve it with Jupyter "
        "Lab, headless: it prints the address and token to open. The notebooks read the lake and state file given "
        "(default: the configuration's, else the demo's). Needs trailguard[notebooks] unless --no-start.",
    ),
    "generate": ("write a generated day of CloudTrail activity as S3-shaped .json.gz objects", None),
    "ingest": (
        "fill the Parquet lake from S3, SQS, LookupEvents or local files",
        f"Ingest CloudTrail events into the lake, exactly once after de-duplication. Sources: {SOURCES} Re-running "
        "is a no-op. Exit status 2 if any input could not be read or any read was incomplete.",
    ),
    "compact": (
        "rewrite a closed day of the lake into few large sorted files",
        "Rewrite one day of the lake into few large files sorted for reading, without losing or repeating an event. "
        "Today and the two days before may still receive events: they are refused unless --force is given.",
    ),
    "detect": (
        "run the detectors over a time range of the lake and store the findings",
        "Run every enabled detector over the lake between --since and --until and store the findings in the state "
        "file's outbox: a finding already stored grows instead of repeating. With --alert, new findings are also "
        "queued for delivery and shown on the console; a range that ended more than a day ago (a backfill) gets one "
        "summary per Slack channel.",
    ),
    "findings": ("list, show, retry or resolve stored findings", None),
    "incidents": ("list, show or resolve incidents: findings linked into one story per attacker", None),
    "incidents list": (
        "the stored incidents, newest first",
        "Incidents, newest first, as JSON lines or a table: findings that share an identity (a role session counts "
        "as its role and as whoever assumed it) or an unusual source address within incidents.window_hours of each "
        "other, linked transitively; with each one's severity, accounts, status and summary.",
    ),
    "incidents show": ("one incident with its timeline, identities and addresses, as indented JSON", None),
    "incidents resolve": (
        "close an incident with a note: each of its open findings is resolved",
        "Resolve every open finding of the incident with the note; each one's Slack thread gets it when a bot token "
        "is set. An incident whose findings are all resolved stays as it is.",
    ),
    "rules": ("Sigma rules run as detectors, and the detectors on burn-in", None),
    "rules report": (
        "the detectors on burn-in: their findings per day, stored but not sent",
        "A detector or Sigma rule added to a running service starts on burn-in (service.burn_in_days, default 7): its "
        "findings are stored and counted but not sent. This lists each one with when its burn-in ends, its findings "
        "per day and the newest one's summary.",
    ),
    "rules promote": ("end a detector's burn-in: its next findings are sent", None),
    "rules check": (
        "which Sigma rules load as detectors, and why each other one does not",
        "Read Sigma rule files or folders (default: the configuration's [sigma] paths) and print, per rule, loaded "
        "(its detector id and level) or refused and why: an unknown field, an unsupported modifier, a logsource that "
        "is not AWS CloudTrail, a file that is no rule. Exit status 2 when any rule was refused.",
    ),
    "findings list": (
        "the stored findings, newest first",
        "The stored findings, newest first, as JSON lines (the findings contract, with their status) or a table; "
        "filtered by status, time, detector, severity and account.",
    ),
    "findings show": ("one finding with its deliveries, as indented JSON", None),
    "findings retry": (
        "queue failed deliveries again",
        "Queue the failed deliveries of these findings (or of all) again: the process delivering sends them "
        "on its next pass.",
    ),
    "findings resolve": (
        "close a finding with a note",
        "Close a finding; the note is posted to its Slack thread when a bot token is set. A resolved finding "
        "stays as it is.",
    ),
    "run": (
        "run the monitor: a cycle now and then on the configured schedule, with /livez, /healthz and /metrics",
        "Ingest from the configured sources, detect, and deliver alerts, every schedule.interval_seconds (with "
        "jitter), until SIGTERM or SIGINT: the cycle in flight then commits and the process exits 0. Needs --config "
        "with sources, lake.uri and state.path (TRAILGUARD__SECTION__KEY variables override any key). Logs are JSON "
        "lines on stderr. Exit status 2 for an invalid configuration (a sink's missing secret included).",
    ),
    "check": (
        "validate the configuration, try every source and Slack channel, print the IAM policy it needs",
        "Validate the configuration, show the AWS identity in use when anything reads AWS (sts:GetCallerIdentity), "
        "try each source's read "
        "permissions without consuming anything, check the Slack token and every routed channel, and print the "
        "least-privilege IAM policy the configured sources need. Exit status 2 if anything failed.",
    ),
    "state": (
        "verify a state file without changing it",
        "check: open the state file without upgrading or creating it, run SQLite's integrity check, and show its "
        "version, ledger, outbox and who holds its delivery lock. Exit status 2 if it cannot be used (missing, empty, "
        "corrupt, from a newer TrailGuard) or fails the integrity check.",
    ),
    "hygiene": (
        "read IAM state now: store what is wrong, resolve what was fixed, print the open findings",
        "Read each configured account's IAM state (credential report, account summary, users with their keys, MFA "
        "devices, groups and policies, password policy) with the [hygiene] accounts and role_arn (default: the "
        "account of the credentials in use), store every problem as a finding, and resolve the findings whose problem "
        "is gone. Prints the open findings as JSON lines. The service does the same every hygiene.interval_hours when "
        "hygiene.enabled is true. Exit status 2 if an account could not be read.",
    ),
}
