"""Benchmarks: programs that measure, compare against a floor and a naive
baseline in the same run, and write a JSON record to benchmarks/results/."""
