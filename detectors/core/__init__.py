"""What detectors are built from: the contract, the catalog, time windows, the CIS change detector and
cross-account call helpers."""
