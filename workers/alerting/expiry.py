"""Credentials about to expire: a WARNING ahead of time, when the provider says when.

The hourly scan opens an AUTH_FAILURE alert with the fingerprint "expiring"
(kept apart from a rejected-credentials alert of the same integration) for
credentials whose `expires_at` falls within `rules.EXPIRY_WARNING_WINDOW`, and
resolves it once `expires_at` moves out of the window (renewed) or the
credentials are gone.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from uuid import UUID

import asyncpg

from db import alert_rules, alerts, incidents
from db.alerts import Alert
from workers.alerting import engine, rules

KIND, FINGERPRINT = rules.EXPIRING


async def scan_credential_expiry(conn: asyncpg.Connection, now: datetime) -> list[Alert]:
    """One pass over every org; returns the alerts it opened, updated or resolved."""
    expiring = await incidents.expiring_credentials(conn, before=now + rules.EXPIRY_WARNING_WINDOW)
    firing = {
        (f.alert.org_id, f.alert.integration_type): f
        for f in await incidents.firing_across_orgs(conn, kind=KIND, fingerprint=FINGERPRINT)
    }
    keys: set[tuple[UUID, str]] = {(c.org_id, c.integration_type) for c in expiring}
    effective = await alert_rules.effective_rules(conn, sorted(keys | set(firing)))
    names = await engine.display_names(conn)
    batch = engine.Batch()

    for credentials in expiring:
        key = (credentials.org_id, credentials.integration_type)
        provider = names.get(credentials.integration_type, credentials.integration_type)
        text = rules.expiry_text(provider, credentials.expires_at, now)
        current = firing.get(key)
        if current is not None and current.alert.title == text.title:
            alert = current.alert  # nothing new to record: no occurrence per hourly tick
        else:
            alert, _ = await alerts.open_or_repeat(
                conn,
                org_id=credentials.org_id,
                integration_type=credentials.integration_type,
                kind=KIND,
                severity="WARNING",
                category="AUTH",
                title=text.title,
                message=text.message,
                guidance=text.guidance,
                fingerprint=FINGERPRINT,
                now=now,
            )
            batch.alert_changed(alert)
        # A reminder a day is plenty for something two weeks away.
        policy = engine.policy_of(effective[key])
        policy = dataclasses.replace(
            policy, repeat_interval=max(policy.repeat_interval, rules.EXPIRY_MIN_REPEAT)
        )
        if engine.notification_due(alert, policy, now):
            batch.alert_changed(alert)
            batch.announce(alert, engine.firing_item(alert, policy))

    for key, stale in sorted(firing.items()):
        if key in keys:
            continue
        resolved = await incidents.resolve_alerts(
            conn, org_id=key[0], integration_type=key[1], keys=[rules.EXPIRING], now=now
        )
        if stale.integration_exists:
            provider = names.get(key[1], key[1])
            engine.tell_resolved(batch, resolved, engine.policy_of(effective[key]), provider)
        else:
            for alert in resolved:  # the integration was removed: nothing to tell
                batch.alert_changed(alert)
    return await engine.flush(conn, batch, now)
