"""Alerting: alerts from status changes, noise control, provider-wide incidents,
export-run alerts and credential-expiry warnings.

`rules` holds the decisions as pure functions; `engine` applies them inside
the caller's transaction and writes notifications through the outbox
(`db.outbox.enqueue`); `jobs` is what the worker wires in (the runner's
`on_recorded` hook, arq functions and cron jobs).
"""
