"""Where CloudTrail and the account's IAM state are read from: the only modules that call AWS APIs.

A source lists inputs, a worker fetches each one's bytes, and the source
acknowledges them once ingest committed them (`source.Source`). A new kind of source is a module with
its source class and `fetch`, and an entry in each registry of `registry`."""
