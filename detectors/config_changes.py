"""AWS Config recording changed: CIS AWS Foundations 4.9, as a table of events."""

from __future__ import annotations

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names


class ConfigChanges(ChangeDetector):
    id = "config-changes"
    title = "AWS Config recording changed"
    references = ("CIS AWS Foundations 4.9 (3.9 in v1.2)", "AWS Security Hub CloudWatch.9", "MITRE ATT&CK T1562")
    tactics = ("defense-evasion",)
    service = "config.amazonaws.com"
    cis_names = names(
        """
        StopConfigurationRecorder DeleteDeliveryChannel PutDeliveryChannel PutConfigurationRecorder
        """
    )
    added = names("DeleteConfigurationRecorder")
    critical = names("StopConfigurationRecorder DeleteConfigurationRecorder DeleteDeliveryChannel")
    guide = Guide(
        triage=(
            "Is the configuration recorder still recording and delivering? A stopped recorder hides resource changes.",
        ),
        investigation=("Look for resource changes the principal made while Config was not recording.",),
        false_positives=("Account baselining (Control Tower, landing zone pipelines) reconfiguring the recorder.",),
        response=("Start the recorder again and restrict config:Stop*/Delete* with an SCP.",),
        kinds=change_kinds(service, added),
    )
