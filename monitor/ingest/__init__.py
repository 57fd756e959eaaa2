"""Sources to lake: the sources, the decoding of every shape CloudTrail comes in, the containment
boundary and the worker processes, and ingest, the only writer of the lake and its ledger."""
