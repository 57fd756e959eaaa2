"""CloudTrail configuration changed: CIS AWS Foundations 4.5, as a table of events."""

from __future__ import annotations

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names


class CloudtrailChanges(ChangeDetector):
    id = "cloudtrail-changes"
    title = "CloudTrail configuration changed"
    references = ("CIS AWS Foundations 4.5 (3.5 in v1.2)", "AWS Security Hub CloudWatch.5", "MITRE ATT&CK T1562.008")
    tactics = ("defense-evasion",)
    service = "cloudtrail.amazonaws.com"
    cis_names = names("CreateTrail UpdateTrail DeleteTrail StartLogging StopLogging")
    added = names("PutEventSelectors PutInsightSelectors DeleteEventDataStore StopEventDataStoreIngestion")
    critical = names("StopLogging DeleteTrail DeleteEventDataStore StopEventDataStoreIngestion")
    any_source = True
    guide = Guide(
        triage=(
            "Is the trail still logging, and does it still select management events in every region? A stopped "
            "or narrowed trail blinds this monitor.",
            "Ask the principal's owner why the trail changed.",
        ),
        investigation=(
            "Look for the principal's other activity right before and after: changes made while logging was off"
            " are missing from the lake.",
        ),
        false_positives=("Planned trail migrations by the logging team, announced beforehand.",),
        response=(
            "Start logging again (StartLogging), restore the selectors, and restrict cloudtrail:* write actions"
            " with an SCP.",
        ),
        kinds=change_kinds(service, added),
    )
