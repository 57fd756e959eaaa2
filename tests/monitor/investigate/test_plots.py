"""Figures an analyst can read at their default size."""

import matplotlib
import pandas as pd

from monitor.investigate import plots

matplotlib.use("Agg")


def test_long_arns_become_short_labels_that_keep_what_tells_them_apart() -> None:
    user = "arn:aws:iam::111122223333:user/bob"
    session = (
        "arn:aws:sts::444455556666:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice@example.com"
    )
    table = pd.DataFrame({"with MFA": [1, 0], "without MFA": [0, 2]}, index=[user, session])
    labels = [t.get_text() for t in plots.bars(table, "Console sign-ins").axes[0].get_yticklabels()]
    assert labels[0] == "user/bob (111122223333)"
    assert labels[1].startswith("assumed-role/AWSReserve")
    assert labels[1].endswith(".com (444455556666)")  # which session, in which account
    assert (len(labels[1]), labels[1].count("…")) == (48, 1)
