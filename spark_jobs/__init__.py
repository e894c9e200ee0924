"""Spark jobs of the daily pipeline: pure DataFrame transforms plus a thin main per job."""
