//! Signed webhooks (`[notify]`): the delivery task. Events are written to the outbox by the
//! store in the transaction of the state change they report ([`crate::store::NewEvent`]);
//! this task claims due events with a lease, POSTs each body to `notify.url` signed with
//! `notify.secret`, and records the outcome: delivered on 2xx, otherwise retried after an
//! exponential backoff with jitter until `created_at + max_age_secs`, then dead. Every time
//! decision uses the app's clock. See `docs/webhooks.md`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tokio::sync::watch;

use crate::app::AppState;
use crate::store::OutboxEvent;

/// The event id header.
pub const EVENT_ID_HEADER: &str = "Stsgate-Event-Id";
/// The signature header: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "Stsgate-Signature";

/// Events claimed (and delivered concurrently) per pass.
pub const BATCH: u32 = 32;
/// First retry delay; it doubles per failed attempt.
pub const BACKOFF_BASE_SECS: i64 = 1;
/// Longest retry delay.
pub const BACKOFF_CAP_SECS: i64 = 3600;
/// How long the task waits between passes that found nothing (or less than a batch) due.
const POLL: Duration = Duration::from_millis(250);

/// The `Stsgate-Signature` value of `body` sent at `t` (Unix seconds).
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delay before the next attempt after `attempts` failed ones: 1 s doubling, capped at
/// 1 h, with "equal jitter" (a uniform draw from the upper half), never under 1 s.
pub fn backoff_secs(attempts: i64, rng: &mut impl Rng) -> i64 {
    let exp = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let full = BACKOFF_BASE_SECS
        .saturating_mul(1i64 << exp)
        .min(BACKOFF_CAP_SECS);
    let half = full / 2;
    (half + rng.gen_range(0..=full - half)).max(1)
}

/// When a failed attempt is retried: after the backoff, but never later than the event's
/// last chance (`created_at + max_age`); `None` (dead) once `now` has reached it.
pub fn retry_at(
    now: i64,
    created_at: i64,
    max_age_secs: i64,
    attempts: i64,
    rng: &mut impl Rng,
) -> Option<i64> {
    let last = created_at.saturating_add(max_age_secs);
    if now >= last {
        return None;
    }
    Some(now.saturating_add(backoff_secs(attempts, rng)).min(last))
}

/// Idle passes between two refreshes of the pending gauge (about 5 s).
const GAUGE_EVERY_IDLE: u32 = 20;

async fn refresh_pending(state: &AppState) {
    match state.store.outbox_pending().await {
        Ok(n) => state.metrics.webhook_pending(n),
        Err(e) => tracing::warn!(error = %e, "webhook outbox count failed"),
    }
}

/// What the task needs besides the state.
struct Sender {
    client: reqwest::Client,
    url: String,
    lease_secs: i64,
}

/// Runs the delivery task until `stop` changes. Started by [`crate::serve`] when
/// `notify.url` is set.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let timeout = Duration::from_millis(state.config.notify.timeout_ms);
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("stsgate-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks off: cannot build the HTTP client");
            return;
        }
    };
    let sender = Sender {
        client,
        url: state.config.notify.url.clone(),
        // Longer than one delivery can take, so no other replica claims it meanwhile.
        lease_secs: state.config.notify.timeout_ms.div_ceil(1000) as i64 + 30,
    };
    tracing::info!("webhook delivery on");
    let mut idle_passes = 0u32;
    refresh_pending(&state).await;
    loop {
        if *stop.borrow() {
            return;
        }
        let claimed = pass(&state, &sender).await;
        // The gauge after every pass that sent something, else every few seconds (other
        // replicas' work and new events).
        idle_passes = if claimed == 0 { idle_passes + 1 } else { 0 };
        if claimed > 0 || idle_passes % GAUGE_EVERY_IDLE == 0 {
            refresh_pending(&state).await;
        }
        if claimed < BATCH as usize {
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// One pass: claims the due events and delivers them concurrently; returns how many it
/// claimed.
async fn pass(state: &AppState, sender: &Sender) -> usize {
    let now = state.clock.now_unix();
    let events = match state
        .store
        .claim_events(now, now + sender.lease_secs, BATCH)
        .await
    {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "webhook outbox claim failed");
            return 0;
        }
    };
    let n = events.len();
    futures_util::future::join_all(events.into_iter().map(|e| deliver(state, sender, e))).await;
    n
}

/// Sends one claimed event and records the outcome.
async fn deliver(state: &AppState, sender: &Sender, e: OutboxEvent) {
    let t = state.clock.now_unix();
    let sig = signature(
        state.config.notify.secret.expose().as_bytes(),
        t,
        e.body.as_bytes(),
    );
    let sent = sender
        .client
        .post(&sender.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_ID_HEADER, &e.event_id)
        .header(SIGNATURE_HEADER, sig)
        .body(e.body.clone())
        .send()
        .await;
    let failure = match sent {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
        Err(err) if err.is_timeout() => Some("timeout".to_string()),
        Err(err) => Some(describe(&err)),
    };
    let now = state.clock.now_unix();
    let Some(error) = failure else {
        match state.store.event_delivered(&e.event_id, now).await {
            Ok(()) => state.metrics.webhook("delivered"),
            Err(err) => {
                tracing::warn!(event_id = %e.event_id, error = %err, "webhook delivered but not recorded; it will be sent again")
            }
        }
        tracing::debug!(event_id = %e.event_id, event_type = %e.event_type, attempts = e.attempts, "webhook delivered");
        return;
    };
    let max_age = state.config.notify.max_age_secs as i64;
    let next = retry_at(
        now,
        e.created_at,
        max_age,
        e.attempts,
        &mut rand::thread_rng(),
    );
    if let Err(err) = state
        .store
        .event_failed(&e.event_id, next, now, &error)
        .await
    {
        tracing::warn!(event_id = %e.event_id, error = %err, "webhook failure not recorded; retried when its lease ends");
        return;
    }
    match next {
        Some(at) => {
            state.metrics.webhook("retried");
            tracing::info!(
                event_id = %e.event_id,
                event_type = %e.event_type,
                object_id = e.object_id,
                attempts = e.attempts,
                retry_in_secs = at - now,
                error = %error,
                "webhook delivery failed; retrying"
            );
        }
        None => {
            state.metrics.webhook("dead");
            tracing::warn!(
                event_id = %e.event_id,
                event_type = %e.event_type,
                object_id = e.object_id,
                attempts = e.attempts,
                error = %error,
                "webhook event dead: not delivered within notify.max_age_secs"
            );
        }
    }
}

/// A send error with its causes, without the URL (it may carry a token); at most 200 bytes.
fn describe(err: &reqwest::Error) -> String {
    let mut text = String::from("unreachable");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let url = err.url().map(|u| u.as_str().to_string());
    if let Some(u) = url.filter(|u| !u.is_empty()) {
        text = text.replace(&u, "<url>");
    }
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn signature_format_and_value() {
        // Independently: printf '1700000000.{"id":"e"}' | openssl dgst -sha256 -hmac whsec-test
        let s = signature(b"whsec-test", 1_700_000_000, br#"{"id":"e"}"#);
        assert_eq!(
            s,
            "t=1700000000,v1=0e68b6bd2f2758246a65c81526ba18d2c67c2e2c60495cda118b546b427a3708"
        );
        let (t, v1) = s.split_once(',').unwrap();
        assert_eq!(t, "t=1700000000");
        let hex = v1.strip_prefix("v1=").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // Another body, time or key changes it.
        assert_ne!(s, signature(b"whsec-test", 1_700_000_001, br#"{"id":"e"}"#));
        assert_ne!(s, signature(b"whsec-test", 1_700_000_000, br#"{"id":"f"}"#));
        assert_ne!(s, signature(b"whsec-tesT", 1_700_000_000, br#"{"id":"e"}"#));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempts in 1..=40 {
            let full = (1i64 << (attempts - 1).min(30)).min(BACKOFF_CAP_SECS);
            for _ in 0..50 {
                let d = backoff_secs(attempts, &mut rng);
                assert!(d >= (full / 2).max(1) && d <= full, "{attempts}: {d}");
            }
        }
        assert_eq!(backoff_secs(1, &mut rng), 1);
        // The jitter spreads retries: not every draw is the same.
        let draws: std::collections::BTreeSet<i64> =
            (0..50).map(|_| backoff_secs(12, &mut rng)).collect();
        assert!(draws.len() > 10, "{draws:?}");
    }

    #[test]
    fn retries_end_at_max_age() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        // Scheduled within the window, never past its end.
        assert_eq!(retry_at(100, 100, 10, 1, &mut rng), Some(101));
        assert_eq!(retry_at(109, 100, 10, 20, &mut rng), Some(110));
        // At or past the end: dead.
        assert_eq!(retry_at(110, 100, 10, 1, &mut rng), None);
        assert_eq!(retry_at(500, 100, 10, 3, &mut rng), None);
    }
}
