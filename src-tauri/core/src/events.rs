//! Events by polling: new inbound messages of an instance's number become events,
//! remembered in the store so that a restart neither loses nor repeats one. Delivery
//! (the HTTP POST to the callback) is the API server's; its outcome is recorded here.

use chrono::{DateTime, Duration, Timelike, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;

use crate::Patchbay;
use crate::connections;
use crate::connectors::TwilioAccount;
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
        self.store.write(|tx| rows::delete_cursor(tx, connection_id))
    }

    /// Starts (or keeps) the event cursor of an instance whose events are enabled:
    /// messages sent from now on are its events.
    pub(crate) fn start_events(&self, connection_id: &str) -> Result<()> {
        rows::start_cursor(&self.store.conn(), connection_id)
    }

    /// Instances whose events are on, with when they were last polled.
    pub fn event_instances(&self) -> Result<Vec<EventInstance>> {
        Ok(rows::instances_with_cursor(&self.store.conn())?
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
        self.store.write(|tx| rows::record_poll(tx, connection_id, &attempted_at, code, message.as_deref()))?;
        polled
    }

    async fn poll_new_messages(&self, connection_id: &str, polled_at: &str) -> Result<usize> {
        let (stored, enabled_at, last_polled) = {
            let conn = self.store.conn();
            let stored = connections::load(&conn, connection_id)?;
            let (enabled_at, last_polled) = rows::cursor(&conn, connection_id)?;
            (stored, enabled_at, last_polled)
        };
        // Through the asset's home (OS vault or credential store), and only where it may go.
        let destination = crate::Destination::of(&stored.connector, &stored.fields);
        let token = self
            .secret_for(&stored, &destination, false)
            .await?
            .ok_or_else(|| crate::Error::invalid("auth_method", "events need a connection with an Auth Token"))?;
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
        let account = TwilioAccount::of(&stored.fields);
        let credentials = Credentials::auth_token(account.sid, &token);
        let messages = self
            .services
            .twilio
            .list_messages_to(credentials, account.phone, &since_day)
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
                new += rows::queue_delivery(tx, connection_id, &message.sid, &payload.to_string(), polled_at)?;
            }
            rows::set_polled(tx, connection_id, polled_at)?;
            Ok(new)
        })
    }

    /// Events whose next attempt is due, oldest first.
    pub fn due_deliveries(&self, limit: u32) -> Result<Vec<Delivery>> {
        Ok(rows::due(&self.store.conn(), limit)?
            .into_iter()
            .filter_map(|due| {
                let settings: crate::instances::InstanceSettings = serde_json::from_str(&due.settings).ok()?;
                let callback_url = settings.events.callback_url?;
                Some(Delivery {
                    connection_id: due.connection_id,
                    message_sid: due.message_sid,
                    payload: due.payload,
                    callback_url,
                    attempts: due.attempts,
                    signed: settings.signing_key,
                })
            })
            .collect())
    }

    /// Records a delivery attempt: delivered, or failed with the reason and a later retry.
    pub fn record_delivery(&self, delivery: &Delivery, outcome: std::result::Result<(), String>) -> Result<()> {
        let conn = self.store.conn();
        match outcome {
            Ok(()) => rows::delivered(&conn, delivery),
            Err(reason) => {
                let next = Utc::now() + backoff(delivery.attempts + 1);
                rows::failed(&conn, delivery, &reason, &next.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            }
        }
    }

    /// Blanks the payloads (message bodies) of events delivered longer ago than the
    /// retention setting. The rows stay, so a message is still never delivered twice.
    pub fn forget_delivered_payloads(&self) -> Result<usize> {
        let retention = Duration::from_std(self.config.event_retention).unwrap_or(Duration::MAX);
        let cutoff = (Utc::now() - retention).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.store.write(|tx| rows::forget_payloads_before(tx, &cutoff))
    }

    /// Every event of an instance and where its delivery stands, newest first.
    pub fn deliveries(&self, connection_id: &str) -> Result<Vec<DeliveryStatus>> {
        self.connection(connection_id)?;
        rows::of_instance(&self.store.conn(), connection_id)
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

pub(crate) use rows::poller_status;

/// The event cursors (one per instance with events on) and the deliveries they queued.
mod rows {
    use rusqlite::{Connection, OptionalExtension, params};

    use super::{Delivery, DeliveryStatus};
    use crate::error::Result;
    use crate::instances::PollerStatus;
    use crate::store::now;

    pub(super) fn delete_cursor(db: &Connection, connection_id: &str) -> Result<()> {
        db.execute("DELETE FROM event_cursors WHERE connection_id = ?1", [connection_id])?;
        Ok(())
    }

    /// Messages sent from now on are the instance's events; an existing cursor is kept.
    pub(super) fn start_cursor(db: &Connection, connection_id: &str) -> Result<()> {
        db.execute(
            "INSERT OR IGNORE INTO event_cursors (connection_id, enabled_at) VALUES (?1, ?2)",
            params![connection_id, now()],
        )?;
        Ok(())
    }

    /// When events were enabled and when the last poll succeeded.
    pub(super) fn cursor(db: &Connection, connection_id: &str) -> Result<(String, Option<String>)> {
        Ok(db.query_row(
            "SELECT enabled_at, polled_at FROM event_cursors WHERE connection_id = ?1",
            [connection_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Each instance with a cursor: its id, settings (JSON) and last successful poll.
    pub(super) fn instances_with_cursor(db: &Connection) -> Result<Vec<(String, String, Option<String>)>> {
        let mut statement = db.prepare(
            "SELECT i.connection_id, i.settings, e.polled_at FROM instances i
                 JOIN event_cursors e ON e.connection_id = i.connection_id",
        )?;
        Ok(statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn record_poll(
        db: &Connection,
        connection_id: &str,
        attempted_at: &str,
        code: Option<&str>,
        message: Option<&str>,
    ) -> Result<()> {
        db.execute(
            "UPDATE event_cursors SET last_attempt_at = ?2, last_error_code = ?3, last_error_message = ?4
             WHERE connection_id = ?1",
            params![connection_id, attempted_at, code, message],
        )?;
        Ok(())
    }

    pub(super) fn set_polled(db: &Connection, connection_id: &str, polled_at: &str) -> Result<()> {
        db.execute(
            "UPDATE event_cursors SET polled_at = ?2 WHERE connection_id = ?1",
            params![connection_id, polled_at],
        )?;
        Ok(())
    }

    /// Queues a message's event; 0 when it was queued before (the key is instance + message).
    pub(super) fn queue_delivery(
        db: &Connection,
        connection_id: &str,
        message_sid: &str,
        payload: &str,
        at: &str,
    ) -> Result<usize> {
        Ok(db.execute(
            "INSERT OR IGNORE INTO event_deliveries (connection_id, message_sid, payload, state, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            params![connection_id, message_sid, payload, at],
        )?)
    }

    /// A pending delivery whose attempt is due, with its instance's settings (JSON).
    pub(super) struct Due {
        pub connection_id: String,
        pub message_sid: String,
        pub payload: String,
        pub attempts: u32,
        pub settings: String,
    }

    /// Pending deliveries whose attempt is due, oldest first.
    pub(super) fn due(db: &Connection, limit: u32) -> Result<Vec<Due>> {
        let mut statement = db.prepare(
            "SELECT d.connection_id, d.message_sid, d.payload, d.attempts, i.settings FROM event_deliveries d
                 JOIN instances i ON i.connection_id = d.connection_id
                 WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 ORDER BY d.created_at LIMIT ?2",
        )?;
        Ok(statement
            .query_map(params![now(), limit], |row| {
                Ok(Due {
                    connection_id: row.get(0)?,
                    message_sid: row.get(1)?,
                    payload: row.get(2)?,
                    attempts: row.get(3)?,
                    settings: row.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn delivered(db: &Connection, delivery: &Delivery) -> Result<()> {
        db.execute(
            "UPDATE event_deliveries SET state = 'delivered', attempts = attempts + 1, last_error = NULL, delivered_at = ?3
             WHERE connection_id = ?1 AND message_sid = ?2",
            params![delivery.connection_id, delivery.message_sid, now()],
        )?;
        Ok(())
    }

    pub(super) fn failed(db: &Connection, delivery: &Delivery, reason: &str, next_attempt_at: &str) -> Result<()> {
        db.execute(
            "UPDATE event_deliveries SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4
             WHERE connection_id = ?1 AND message_sid = ?2",
            params![delivery.connection_id, delivery.message_sid, reason, next_attempt_at],
        )?;
        Ok(())
    }

    /// Blanks the payloads of events delivered before `cutoff`; the rows stay.
    pub(super) fn forget_payloads_before(db: &Connection, cutoff: &str) -> Result<usize> {
        Ok(db.execute(
            "UPDATE event_deliveries SET payload = '' WHERE state = 'delivered' AND delivered_at < ?1 AND payload != ''",
            [cutoff],
        )?)
    }

    /// How the instance's last poll went; None when its events are off.
    pub(crate) fn poller_status(db: &Connection, connection_id: &str) -> Result<Option<PollerStatus>> {
        Ok(db
            .query_row(
                "SELECT polled_at, last_attempt_at, last_error_code, last_error_message FROM event_cursors
                 WHERE connection_id = ?1",
                [connection_id],
                |row| {
                    Ok(PollerStatus {
                        last_polled_at: row.get(0)?,
                        last_attempt_at: row.get(1)?,
                        last_error_code: row.get(2)?,
                        last_error_message: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Every event of an instance and where its delivery stands, newest first.
    pub(super) fn of_instance(db: &Connection, connection_id: &str) -> Result<Vec<DeliveryStatus>> {
        let mut statement = db.prepare(
            "SELECT message_sid, state, attempts, last_error, next_attempt_at, delivered_at FROM event_deliveries
                 WHERE connection_id = ?1 ORDER BY created_at DESC",
        )?;
        Ok(statement
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
            .collect::<rusqlite::Result<_>>()?)
    }
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
