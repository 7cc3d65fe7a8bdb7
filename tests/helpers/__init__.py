"""Helpers of the tests: shared targets and recurrences, the input-check fixtures, the sharding scripts."""
