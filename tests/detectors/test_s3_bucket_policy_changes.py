from detectors.s3_bucket_policy_changes import S3BucketPolicyChanges
from tests.cloudtrail import event, findings, iam_user


def test_removing_the_public_access_block_is_caught() -> None:
    found = findings(S3BucketPolicyChanges, event("DeleteBucketPublicAccessBlock", "s3.amazonaws.com", iam_user()))
    assert list(found["kind"]) == ["change"]


def test_negative_same_name_on_s3_outposts() -> None:
    """The CIS filter pins s3.amazonaws.com, and so does the detector."""
    assert findings(S3BucketPolicyChanges, event("PutBucketPolicy", "s3-outposts.amazonaws.com", iam_user())).empty


def test_negative_reading_a_policy() -> None:
    assert findings(S3BucketPolicyChanges, event("GetBucketPolicy", "s3.amazonaws.com", iam_user())).empty
