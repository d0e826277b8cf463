//! The event worker of `patchbay serve`: polls Twilio for each instance whose events are
//! on, and POSTs every new event to its callback, signed when the instance has a key,
//! retrying failures with backoff. What it found and delivered is kept by the core, so
//! a restart neither loses nor repeats an event.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use patchbay_core::Patchbay;
use patchbay_core::destination::{CheckedResolver, Destinations, Refusal};
use patchbay_core::events::Delivery;
pub use patchbay_core::events::sign;

/// The header that carries `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Patchbay-Signature";
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct EventWorker {
    core: Arc<Patchbay>,
    http: reqwest::Client,
    /// Overrides every instance's poll interval (`Config::event_poll_interval`).
    poll_override: Option<Duration>,
    destinations: Destinations,
}

impl EventWorker {
    pub fn new(core: Arc<Patchbay>) -> Self {
        let poll_override = core.config().event_poll_interval;
        let destinations = core.config().callback_destinations();
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            // A redirect could lead anywhere, and a proxy would resolve the name itself.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // Each resolved address is checked, and the connection goes to a checked one.
            .dns_resolver(Arc::new(CheckedResolver(destinations.clone())))
            .build()
            .expect("a plain HTTP client");
        Self { core, http, poll_override, destinations }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let tick = self.poll_override.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
        let mut interval = tokio::time::interval(tick);
        loop {
            interval.tick().await;
            self.poll_due().await;
            self.deliver_due().await;
            if let Err(err) = self.core.forget_delivered_payloads() {
                tracing::warn!(code = err.code(), "cannot forget old event payloads: {err}");
            }
        }
    }

    async fn poll_due(&self) {
        let instances = match self.core.event_instances() {
            Ok(instances) => instances,
            Err(err) => return tracing::warn!(code = err.code(), "cannot list instances with events: {err}"),
        };
        for instance in instances {
            let every = self.poll_override.unwrap_or(Duration::from_secs(u64::from(instance.refresh_minutes) * 60));
            let due = instance
                .polled_at
                .is_none_or(|at| Utc::now().signed_duration_since(at).to_std().unwrap_or_default() >= every);
            if !due {
                continue;
            }
            if let Err(err) = self.core.poll_events(&instance.connection_id).await {
                tracing::warn!(instance = %instance.connection_id, code = err.code(), "polling Twilio for events failed: {err}");
            }
        }
    }

    async fn deliver_due(&self) {
        let due = match self.core.due_deliveries(100) {
            Ok(due) => due,
            Err(err) => return tracing::warn!(code = err.code(), "cannot read pending events: {err}"),
        };
        for delivery in due {
            let outcome = self.deliver(&delivery).await;
            if let Err(reason) = &outcome {
                tracing::warn!(instance = %delivery.connection_id, message = %delivery.message_sid, "event delivery failed: {reason}");
            }
            if let Err(err) = self.core.record_delivery(&delivery, outcome) {
                tracing::warn!(code = err.code(), "cannot record an event delivery: {err}");
            }
        }
    }

    /// Posts the event. Failures say what a receiver's owner can act on, never what
    /// would map the network (refused, reset, or unreachable all read the same).
    async fn deliver(&self, delivery: &Delivery) -> Result<(), String> {
        // Addresses written in the URL are not resolved, so they are checked here.
        self.destinations
            .check_url(&delivery.callback_url)
            .map_err(|refusal| format!("the callback URL is refused: {refusal}"))?;
        let mut request = self
            .http
            .post(&delivery.callback_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(delivery.payload.clone());
        let signature =
            self.core.delivery_signature(delivery).await.map_err(|err| format!("{} [{}]", err, err.code()))?;
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("the callback answered HTTP {}", response.status().as_u16())),
            Err(err) => match Refusal::behind(&err) {
                Some(refusal) => Err(format!("the callback URL is refused: {refusal}")),
                None => Err("the callback could not be reached or did not answer in time".into()),
            },
        }
    }
}
