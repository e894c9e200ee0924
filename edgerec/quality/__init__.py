"""Data-quality gates (Great Expectations) over the raw zone, the Spark outputs and the marts."""
