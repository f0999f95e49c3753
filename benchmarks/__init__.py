"""Benchmarks: each prints its numbers and records them in benchmarks/results/."""
