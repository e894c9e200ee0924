"""Training of the EdgeRec re-ranker and the paper's baselines."""
