"""Postgres access: migrations, the pool, units of work and one repository per aggregate.

Nothing here imports from the rest of the project.
"""
