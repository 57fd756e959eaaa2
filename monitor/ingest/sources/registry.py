"""Every kind of source, by the scheme of its URI, and how a worker fetches each kind of input. A module of its
own, so that reading a source's settings (the configuration does) never loads the AWS SDK."""

from collections.abc import Callable

from monitor.ingest.limits import Limits
from monitor.ingest.sources import local, lookup, s3, securitylake, sqs
from monitor.ingest.sources.inputs import Work
from monitor.ingest.sources.settings import SourceSettings
from monitor.ingest.sources.source import Source

# by the scheme of the source's URI ("" for a local path)
SOURCES: dict[str, Callable[[SourceSettings, Limits], Source]] = {
    "s3": s3.S3Source.from_settings,
    "sqs": sqs.SqsSource.from_settings,
    "lookup": lookup.LookupSource.from_settings,
    "securitylake": securitylake.SecurityLakeSource.from_settings,
    "": local.LocalSource.from_settings,
}

# by the kind of input (`Work.source`): how a worker gets its bytes
FETCH: dict[str, Callable[[Work, Limits], bytes]] = {"file": local.fetch, "s3": s3.fetch, "lookup": lookup.fetch}
