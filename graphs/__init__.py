"""Benchmark workloads: stored models, tiny hand-written graphs and generators."""
