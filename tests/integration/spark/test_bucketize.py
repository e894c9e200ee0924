import numpy as np
import pytest
from pyspark.sql import functions as F

from spark_jobs.bucketize import _quantiles, exact_percentiles

pytestmark = pytest.mark.integration


def test_exact_percentiles_interpolate_between_the_closest_ranks():
    values = np.array([8.0, 1.0, 4.0, 2.0])
    # positions (n - 1) * p: 0.75 -> 1 + 0.75 * (2 - 1); 1.5 -> 2 + 0.5 * (4 - 2); 3 -> the largest
    assert exact_percentiles(values, [0.25, 0.5, 1.0]) == [1.75, 3.0, 8.0]
    assert exact_percentiles(np.array([5.0]), [0.1, 0.9]) == [5.0, 5.0]


def test_the_driver_computes_what_sparks_percentile_computes_bit_for_bit(spark):
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.lognormal(0, 3, 2_000), -rng.random(500) * 1e-3, np.full(300, 0.1),
                             rng.integers(0, 50, 1_000).astype(float), [np.inf] * 200, [-np.inf] * 200])
    df = spark.createDataFrame([(float(v), None) for v in values], "x double, empty double").repartition(5)
    for buckets in (7, 10, 100):
        qs = [i / buckets for i in range(1, buckets)]
        expected = df.agg(F.percentile("x", qs)).first()[0]
        assert exact_percentiles(values, qs) == expected  # exact equality: the same arithmetic as Spark's
        assert _quantiles(df, ("x", "empty"), buckets) == {"x": sorted(set(expected)), "empty": []}
