//! Events by polling: new inbound messages of an instance's number become events,
//! remembered in the store so that a restart neither loses nor repeats one. Delivery
//! (the HTTP POST to the callback) is the API server's; its outcome is recorded here.

use chrono::{DateTime, Duration, Timelike, Utc};
use hmac::{Hmac, Mac};
use rusqlite::params;
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;

use crate::Patchbay;
use crate::connections;
use crate::error::Result;
use crate::store::now;
use crate::twilio::Credentials;
use crate::vault::VaultKey;

/// One event waiting to be POSTed.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub connection_id: String,
    pub message_sid: String,
    pub payload: String,
    pub callback_url: String,
    pub attempts: u32,
    /// The instance signs its events: a missing key stops delivery, never unsigns it.
    pub signed: bool,
}

/// What `GET /instances/{id}/events` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    pub message_sid: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
}

/// Waiting after the n-th failed attempt: 1 s, 2 s, 4 s … then every 512 s (8.5 min).
pub fn backoff(attempts: u32) -> Duration {
    Duration::seconds(1_i64 << attempts.saturating_sub(1).min(9))
}

/// An instance whose message events are on: how often it wants them and when it last got them.
#[derive(Debug, Clone)]
pub struct EventInstance {
    pub connection_id: String,
    pub refresh_minutes: u32,
    pub polled_at: Option<DateTime<Utc>>,
}

impl Patchbay {
    /// Forgets the event cursor of an instance whose events are turned off: turned on
    /// again, they start from that moment, with no replay of the time they were off.
    pub(crate) fn stop_events(&self, connection_id: &str) -> Result<()> {
        self.store.write(|tx| {
            tx.execute("DELETE FROM event_cursors WHERE connection_id = ?1", [connection_id])?;
            Ok(())
        })
    }

    /// Starts (or keeps) the event cursor of an instance whose events are enabled:
    /// messages sent from now on are its events.
    pub(crate) fn start_events(&self, connection_id: &str) -> Result<()> {
        self.store.conn().execute(
            "INSERT OR IGNORE INTO event_cursors (connection_id, enabled_at) VALUES (?1, ?2)",
            params![connection_id, now()],
        )?;
        Ok(())
    }

    /// Instances whose events are on, with when they were last polled.
    pub fn event_instances(&self) -> Result<Vec<EventInstance>> {
        let conn = self.store.conn();
        let mut statement = conn.prepare(
            "SELECT i.connection_id, i.settings, e.polled_at FROM instances i
                 JOIN event_cursors e ON e.connection_id = i.connection_id",
        )?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<String>>(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, settings, polled)| {
                let settings: crate::instances::InstanceSettings = serde_json::from_str(&settings).ok()?;
                settings.events.enabled.then(|| EventInstance {
                    connection_id: id,
                    refresh_minutes: settings.events.refresh_minutes,
                    polled_at: polled.and_then(|p| DateTime::parse_from_rfc3339(&p).ok()).map(Into::into),
                })
            })
            .collect())
    }

    /// Asks Twilio for the instance's new inbound messages and queues one event for each
    /// message not seen before. Returns how many were new.
    pub async fn poll_events(&self, connection_id: &str) -> Result<usize> {
        let attempted_at = now();
        let polled = self.poll_new_messages(connection_id, &attempted_at).await;
        // The outcome is kept with the cursor, so a failing poll is visible to whoever
        // looks at the instance, not only in a log.
        let (code, message) = match &polled {
            Ok(_) => (None, None),
            Err(err) => (Some(err.code()), Some(err.to_string())),
        };
        self.store.write(|tx| {
            tx.execute(
                "UPDATE event_cursors SET last_attempt_at = ?2, last_error_code = ?3, last_error_message = ?4
                 WHERE connection_id = ?1",
                params![connection_id, attempted_at, code, message],
            )?;
            Ok(())
        })?;
        polled
    }

    async fn poll_new_messages(&self, connection_id: &str, polled_at: &str) -> Result<usize> {
        let (stored, enabled_at, last_polled) = {
            let conn = self.store.conn();
            let stored = connections::load(&conn, connection_id)?;
            let (enabled_at, last_polled): (String, Option<String>) = conn.query_row(
                "SELECT enabled_at, polled_at FROM event_cursors WHERE connection_id = ?1",
                [connection_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            (stored, enabled_at, last_polled)
        };
        let token = self.token_of(&stored).await?;
        let parse = |stamp: &str| DateTime::parse_from_rfc3339(stamp).map(DateTime::<Utc>::from).ok();
        // Twilio's dates have whole seconds: a message of the same second counts, rather
        // than risk losing it.
        let enabled_at =
            parse(&enabled_at).unwrap_or_else(Utc::now).with_nanosecond(0).expect("zero nanoseconds is valid");
        // Twilio filters by day only: ask from the day before the last poll (its clock
        // and ours may straddle midnight), never before events were enabled. So a poll
        // reads a day or two of messages however old the instance is; the exact start is
        // checked below, and messages seen before are ignored by the delivery table's key.
        let since = last_polled
            .as_deref()
            .and_then(parse)
            .map_or(enabled_at, |last| (last - Duration::days(1)).max(enabled_at));
        let since_day = since.format("%Y-%m-%d").to_string();
        let credentials = Credentials { account_sid: &stored.account_sid, auth_token: &token };
        let messages = self
            .twilio
            .list_messages_to(credentials, stored.phone(), &since_day)
            .await
            .map_err(|err| crate::Error::Connect(err.into()))?;

        self.store.write(|tx| {
            let mut new = 0;
            for message in messages.iter().filter(|m| m.direction.as_deref() == Some("inbound")) {
                let sent = message
                    .date_sent
                    .as_deref()
                    .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                    .map(DateTime::<Utc>::from);
                if sent.is_some_and(|sent| sent < enabled_at) {
                    continue;
                }
                let payload = json!({
                    "instanceId": connection_id,
                    "eventType": "message.received",
                    "messageSid": message.sid,
                    "from": message.from,
                    "to": message.to,
                    "body": message.body,
                    "date": sent.map(|d| d.to_rfc3339()),
                });
                new += tx.execute(
                    "INSERT OR IGNORE INTO event_deliveries (connection_id, message_sid, payload, state, next_attempt_at, created_at)
                     VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
                    params![connection_id, message.sid, payload.to_string(), polled_at],
                )?;
            }
            tx.execute("UPDATE event_cursors SET polled_at = ?2 WHERE connection_id = ?1", params![connection_id, polled_at])?;
            Ok(new)
        })
    }

    /// Events whose next attempt is due, oldest first.
    pub fn due_deliveries(&self, limit: u32) -> Result<Vec<Delivery>> {
        let conn = self.store.conn();
        let mut statement = conn.prepare(
            "SELECT d.connection_id, d.message_sid, d.payload, d.attempts, i.settings FROM event_deliveries d
                 JOIN instances i ON i.connection_id = d.connection_id
                 WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 ORDER BY d.created_at LIMIT ?2",
        )?;
        let rows = statement
            .query_map(params![now(), limit], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, u32>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(connection_id, message_sid, payload, attempts, settings)| {
                let settings: crate::instances::InstanceSettings = serde_json::from_str(&settings).ok()?;
                let callback_url = settings.events.callback_url?;
                Some(Delivery {
                    connection_id,
                    message_sid,
                    payload,
                    callback_url,
                    attempts,
                    signed: settings.signing_key,
                })
            })
            .collect())
    }

    /// Records a delivery attempt: delivered, or failed with the reason and a later retry.
    pub fn record_delivery(&self, delivery: &Delivery, outcome: std::result::Result<(), String>) -> Result<()> {
        let conn = self.store.conn();
        match outcome {
            Ok(()) => conn.execute(
                "UPDATE event_deliveries SET state = 'delivered', attempts = attempts + 1, last_error = NULL, delivered_at = ?3
                 WHERE connection_id = ?1 AND message_sid = ?2",
                params![delivery.connection_id, delivery.message_sid, now()],
            ),
            Err(reason) => {
                let next = Utc::now() + backoff(delivery.attempts + 1);
                conn.execute(
                    "UPDATE event_deliveries SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4
                     WHERE connection_id = ?1 AND message_sid = ?2",
                    params![
                        delivery.connection_id,
                        delivery.message_sid,
                        reason,
                        next.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    ],
                )
            }
        }?;
        Ok(())
    }

    /// Blanks the payloads (message bodies) of events delivered longer ago than the
    /// retention setting. The rows stay, so a message is still never delivered twice.
    pub fn forget_delivered_payloads(&self) -> Result<usize> {
        let retention = Duration::from_std(self.config.event_retention).unwrap_or(Duration::MAX);
        let cutoff = (Utc::now() - retention).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.store.write(|tx| {
            Ok(tx.execute(
                "UPDATE event_deliveries SET payload = '' WHERE state = 'delivered' AND delivered_at < ?1 AND payload != ''",
                [cutoff],
            )?)
        })
    }

    /// Every event of an instance and where its delivery stands, newest first.
    pub fn deliveries(&self, connection_id: &str) -> Result<Vec<DeliveryStatus>> {
        self.connection(connection_id)?;
        let conn = self.store.conn();
        let mut statement = conn.prepare(
            "SELECT message_sid, state, attempts, last_error, next_attempt_at, delivered_at FROM event_deliveries
                 WHERE connection_id = ?1 ORDER BY created_at DESC",
        )?;
        statement
            .query_map([connection_id], |row| {
                let state: String = row.get(1)?;
                Ok(DeliveryStatus {
                    message_sid: row.get(0)?,
                    next_attempt_at: if state == "pending" { row.get(4)? } else { None },
                    state,
                    attempts: row.get(2)?,
                    last_error: row.get(3)?,
                    delivered_at: row.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(crate::Error::from)
    }

    /// `sha256=<hex HMAC>` of the event's body under its instance's signing key, when the
    /// instance signs its events. The key itself never leaves the core; a key missing
    /// from the vault fails the delivery (`vault_secret_missing`) rather than send it
    /// unsigned.
    pub async fn delivery_signature(&self, delivery: &Delivery) -> Result<Option<String>> {
        if !delivery.signed {
            return Ok(None);
        }
        let key = self.vault.get(&VaultKey::EventSigningKey(delivery.connection_id.clone())).await?;
        Ok(Some(format!("sha256={}", sign(key.expose(), &delivery.payload))))
    }
}

/// Hex HMAC-SHA256 of `body` under `key`, as event receivers check it.
pub fn sign(key: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_match_the_rfc_4231_vector() {
        // RFC 4231, test case 2.
        assert_eq!(
            super::sign("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_then_levels_off() {
        let seconds: Vec<i64> = [1, 2, 3, 4, 11, 30].iter().map(|n| super::backoff(*n).num_seconds()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 512, 512]);
    }
}
