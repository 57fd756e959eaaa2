"""A source's settings are typed once, from a URI's query or a configuration table, and every problem is named."""

import pytest

from monitor.ingest.sources.settings import SourceError, SourceSettings, parse


def test_options_in_the_query_and_from_a_table_are_the_same_settings() -> None:
    role = "arn:aws:iam::444455556666:role/read"
    from_query = parse(f"s3://org-trail/logs?role_arn={role}&accounts=111122223333,222233334444&regions=eu-west-1")
    from_table = parse("s3://org-trail/logs", role_arn=role, accounts=("111122223333", "222233334444"))
    assert from_query == SourceSettings("s3://org-trail/logs", role, ("111122223333", "222233334444"), ("eu-west-1",))
    assert from_table == SourceSettings("s3://org-trail/logs", role, ("111122223333", "222233334444"))
    assert (from_query.scheme, from_query.place, from_query.name) == (
        "s3",
        ["org-trail", "logs"],
        f"s3://org-trail/logs (as {role})",
    )
    assert parse("sqs://us-east-1/123456789012/q?visibility=60").visibility == 60
    assert parse("/var/trail").scheme == ""


@pytest.mark.parametrize(
    ("uri", "problems"),
    [
        ("s3://?role_arn=x", ["uri", "role_arn"]),
        ("lookup://", ["uri"]),
        ("lookup://us-east-1,nowhere", ["uri"]),
        ("sqs://a/b", ["uri"]),
        ("sqs://us-east-1/123456789012/q?visibility=99999", ["visibility"]),
        ("sqs://us-east-1/123456789012/q?visibility=soon", ["visibility"]),
        ("lookup://us-east-1?accounts=111122223333", ["accounts"]),
        ("s3://trail?accounts=1,222233334444", ["accounts"]),
        ("s3://trail?colour=blue", ["colour"]),
        ("s3://trail?%zz", ["uri"]),
        ("ftp://x", ["uri"]),
        ("securitylake://", ["uri"]),
        ("securitylake://lake?visibility=5", ["visibility"]),
    ],
)
def test_every_problem_of_a_hostile_uri_is_named(uri: str, problems: list[str]) -> None:
    with pytest.raises(SourceError) as info:
        parse(uri)
    assert [option for option, _ in info.value.problems] == problems
