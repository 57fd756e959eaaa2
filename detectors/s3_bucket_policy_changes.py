"""S3 bucket policy or access changed: CIS AWS Foundations 4.8, as a table of events."""

from __future__ import annotations

from detectors.core.base import Guide
from detectors.core.changes import ChangeDetector, change_kinds, names


class S3BucketPolicyChanges(ChangeDetector):
    id = "s3-bucket-policy-changes"
    title = "S3 bucket policy or access changed"
    references = ("CIS AWS Foundations 4.8 (3.8 in v1.2)", "AWS Security Hub CloudWatch.8", "MITRE ATT&CK T1530")
    tactics = ("exfiltration",)
    service = "s3.amazonaws.com"
    cis_names = names(
        """
        PutBucketAcl PutBucketPolicy PutBucketCors PutBucketLifecycle PutBucketReplication
        DeleteBucketPolicy DeleteBucketCors DeleteBucketLifecycle DeleteBucketReplication
        """
    )
    added = names("PutBucketPublicAccessBlock DeleteBucketPublicAccessBlock PutBucketOwnershipControls")
    guide = Guide(
        triage=(
            "Read the new policy or ACL in the request parameters: does it grant access to everyone or to "
            "another account?",
        ),
        investigation=("Check the bucket's contents and its data events: was anything read after the change?",),
        false_positives=("Buckets managed by infrastructure-as-code; suppress their deployment role.",),
        response=("Restore the previous policy and turn on Block Public Access for the bucket and the account.",),
        kinds=change_kinds(service, added),
    )
