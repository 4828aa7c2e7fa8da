"""Thin resolvers: authorize, call db/ or enqueue a job, map rows to types."""
