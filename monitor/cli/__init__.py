"""The `trailguard` command line: one small module per command group, which parses and prints."""
