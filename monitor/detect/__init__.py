"""Lake to findings: the detection pipeline over time slices, baselines, suppressions, `scan`, and the
Dask engine."""
