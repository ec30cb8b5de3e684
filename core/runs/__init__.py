"""Runs: the store, worker processes and their manager, recording, studies, benchmarks."""
