"""Notification delivery: the outbox dispatcher, the channel senders and their arq jobs.

The alerting engine queues messages with `db.outbox.enqueue` (in its own
transaction); `jobs.CRON_JOBS` delivers them; `jobs.FUNCTIONS` holds
`test_channel`, behind the `testNotificationChannel` mutation.
"""
