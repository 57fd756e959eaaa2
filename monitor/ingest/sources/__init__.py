"""Where CloudTrail and the account's IAM state are read from: the only modules that call AWS APIs."""
