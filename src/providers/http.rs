//! The shared upstream driver: one reqwest client per provider (rustls, timeouts from
//! config), and [`Upstream::call`], which spends budget per send and retries retryable
//! failures with exponential backoff and equal jitter inside the request's deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng as _;
use tokio::time::Instant;

use super::budget::Budget;
use super::ProviderError;
use crate::cluster::Cluster;
use crate::metrics::Metrics;

/// First backoff; doubles per retry up to [`MAX_BACKOFF`], with equal jitter (see [`backoff`]).
pub const BASE_BACKOFF: Duration = Duration::from_millis(50);
/// Largest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_millis(1000);

/// A provider's connection to its cloud.
#[derive(Clone)]
pub struct Upstream {
    /// The HTTP client (connect timeout configured).
    pub client: reqwest::Client,
    /// The call budget.
    pub budget: Arc<Budget>,
    /// Total timeout of one call.
    pub timeout: Duration,
    /// Connect timeout (the client's).
    pub connect_timeout: Duration,
    /// Provider name (metrics label).
    pub name: &'static str,
    /// Metrics.
    pub metrics: Metrics,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Where one upstream call goes: the full URL, and the `Host` and path exactly as reqwest
/// sends them (so a signer can sign what goes on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `endpoint` + `path` (+ `?query`).
    pub url: String,
    /// `host[:port]`, the port only when it is not the scheme's default.
    pub host: String,
    /// The path as sent (percent-encoded), the endpoint's own path prefix included.
    pub path: String,
}

impl Target {
    /// `endpoint` (e.g. `https://sts.bj.baidubce.com`, maybe with a path prefix) joined with
    /// `path` and the `query` pairs; `key` names the config key in the error.
    pub fn new(
        endpoint: &str,
        path: &str,
        query: &[(&str, &str)],
        key: &str,
    ) -> Result<Self, String> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", endpoint.trim_end_matches('/')))
            .map_err(|_| format!("{key} is not a URL"))?;
        let host = url.host_str().ok_or_else(|| format!("{key} has no host"))?;
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(Target {
            host,
            path: url.path().to_string(),
            url: url.to_string(),
        })
    }
}

/// Builds the reqwest client every provider uses. It follows no redirect: a cloud API
/// answers where it is asked, and a redirect (e.g. from an OSS public-key URL) could lead a
/// request to an address that was never checked.
pub fn client(connect_timeout: Duration) -> reqwest::Client {
    client_resolving(connect_timeout, &std::collections::BTreeMap::new())
}

/// [`client`], connecting to fixed addresses for the hosts in `resolve` (`[providers]
/// resolve`).
pub fn client_resolving(
    connect_timeout: Duration,
    resolve: &std::collections::BTreeMap<String, std::net::SocketAddr>,
) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("stsgate/", env!("CARGO_PKG_VERSION")));
    for (host, addr) in resolve {
        b = b.resolve(host, *addr);
    }
    b.build().expect("reqwest client with rustls")
}

/// Sends `req` and reads the whole answer; maps transport failures.
pub async fn send(req: reqwest::RequestBuilder) -> Result<(u16, Bytes), ProviderError> {
    let res = req.send().await.map_err(transport_error)?;
    let status = res.status().as_u16();
    let body = res.bytes().await.map_err(transport_error)?;
    Ok((status, body))
}

/// A reqwest failure as a [`ProviderError`] (timeout, or the transport error without URL).
pub fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        // without_url: never echo a URL (some clouds sign in the query).
        let e = e.without_url();
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        ProviderError::Network(msg)
    }
}

/// Backoff before retry `attempt` (1-based): equal jitter over an exponential cap (a
/// uniformly random wait between half the cap and the cap).
pub fn backoff(attempt: u32) -> Duration {
    let cap = BASE_BACKOFF
        .saturating_mul(1u32 << attempt.min(10))
        .min(MAX_BACKOFF);
    let ms = rand::thread_rng().gen_range(cap.as_millis() as u64 / 2..=cap.as_millis() as u64);
    Duration::from_millis(ms)
}

impl Upstream {
    /// Builds an upstream from config values; with `shared` (Redis) the budget is
    /// cluster-wide.
    pub fn new(
        name: &'static str,
        rate_limit_per_sec: u32,
        connect_timeout_ms: u64,
        timeout_ms: u64,
        metrics: Metrics,
        cluster: Option<&Cluster>,
    ) -> Self {
        let timeout = Duration::from_millis(timeout_ms);
        let budget = match cluster {
            Some(s) => Budget::clustered(rate_limit_per_sec, s.clone(), name, timeout),
            None => Budget::new(rate_limit_per_sec),
        };
        Upstream {
            client: client(Duration::from_millis(connect_timeout_ms)),
            budget,
            timeout,
            connect_timeout: Duration::from_millis(connect_timeout_ms),
            name,
            metrics,
        }
    }

    /// The same upstream, its client connecting to fixed addresses for the hosts in
    /// `resolve` (unchanged when it is empty).
    pub fn with_resolve(
        mut self,
        resolve: &std::collections::BTreeMap<String, std::net::SocketAddr>,
    ) -> Self {
        if !resolve.is_empty() {
            self.client = client_resolving(self.connect_timeout, resolve);
        }
        self
    }

    /// Runs `attempt` until it succeeds, fails for good, or `deadline` passes. Each
    /// attempt first takes one send from the budget; each is bounded by the per-call
    /// timeout and the time left.
    pub async fn call<T, F, Fut>(
        &self,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut tries: u32 = 0;
        let mut last: Option<ProviderError> = None;
        // The last failure that was an answer (not a timeout): a cloud that answered
        // "try again" and then had its last attempt cut short by the deadline kept
        // failing (503); it did not merely fail to answer (504).
        let mut last_answer: Option<ProviderError> = None;
        loop {
            let waited_from = Instant::now();
            let permit = match self.budget.acquire(deadline).await {
                Ok((permit, waited)) => {
                    if waited > Duration::from_millis(1) {
                        self.metrics
                            .budget_wait(self.name, "sent", waited.as_secs_f64());
                    }
                    permit
                }
                Err(retry_after) => {
                    self.metrics.budget_wait(
                        self.name,
                        "exhausted",
                        waited_from.elapsed().as_secs_f64(),
                    );
                    return Err(finish(last, last_answer, retry_after, true));
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(finish(last, last_answer, Duration::from_secs(1), false));
            }
            let per_call = self.timeout.min(left);
            tries += 1;
            let started = Instant::now();
            let outcome = match tokio::time::timeout(per_call, attempt(per_call)).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::Timeout),
            };
            drop(permit);
            let secs = started.elapsed().as_secs_f64();
            match outcome {
                Ok(v) => {
                    self.metrics.upstream_call(self.name, "ok", secs);
                    return Ok(v);
                }
                Err(e) => {
                    let label = match &e {
                        ProviderError::Timeout => "timeout",
                        ProviderError::Network(_) => "network",
                        ProviderError::Refused {
                            retryable: true, ..
                        } => "retryable",
                        _ => "refused",
                    };
                    self.metrics.upstream_call(self.name, label, secs);
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    tracing::debug!(provider = self.name, attempt = tries, error = %e, "retryable upstream failure");
                    if !matches!(e, ProviderError::Timeout) {
                        last_answer = Some(e.clone());
                    }
                    last = Some(e);
                    let pause = backoff(tries);
                    if Instant::now() + pause >= deadline {
                        return Err(finish(last, last_answer, Duration::from_secs(1), false));
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// The error once time or budget ran out: a cloud that only ever timed out is 504; one
/// that kept failing retryably (even if its last attempt then timed out), or a spent
/// budget, is 503 with `Retry-After`.
fn finish(
    last: Option<ProviderError>,
    last_answer: Option<ProviderError>,
    retry_after: Duration,
    budget: bool,
) -> ProviderError {
    let last = match (last, last_answer) {
        (Some(ProviderError::Timeout), Some(answer)) => Some(answer),
        (last, _) => last,
    };
    match last {
        Some(ProviderError::Timeout) if !budget => ProviderError::Timeout,
        Some(e) => ProviderError::Unavailable {
            retry_after,
            last: e.to_string(),
        },
        None if budget => ProviderError::Unavailable {
            retry_after,
            last: "upstream call budget spent".into(),
        },
        None => ProviderError::Timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn upstream(limit: u32, timeout_ms: u64) -> Upstream {
        Upstream::new("test", limit, 100, timeout_ms, Metrics::new(), None)
    }

    #[tokio::test]
    async fn retryable_answers_then_a_cut_short_attempt_is_503_not_504() {
        let u = upstream(100, 1000);
        let n = AtomicU32::new(0);
        let r: Result<(), _> = u
            .call(Instant::now() + Duration::from_millis(600), |_| async {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(ProviderError::Refused {
                        code: "InternalError".into(),
                        message: String::new(),
                        retryable: true,
                    })
                } else {
                    // Every later attempt hangs until the deadline cuts it.
                    futures::future::pending().await
                }
            })
            .await;
        match r {
            Err(ProviderError::Unavailable { last, .. }) => {
                assert!(last.contains("InternalError"), "{last}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(n.load(Ordering::SeqCst) >= 2, "the hanging attempt ran");
    }

    #[tokio::test]
    async fn retries_retryable_then_succeeds() {
        let u = upstream(100, 1000);
        let n = AtomicU32::new(0);
        let r = u
            .call(Instant::now() + Duration::from_secs(5), |_| async {
                if n.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(ProviderError::Refused {
                        code: "InternalError".into(),
                        message: String::new(),
                        retryable: true,
                    })
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn non_retryable_is_returned_at_once() {
        let u = upstream(100, 1000);
        let n = AtomicU32::new(0);
        let r: Result<(), _> = u
            .call(Instant::now() + Duration::from_secs(5), |_| async {
                n.fetch_add(1, Ordering::SeqCst);
                Err(ProviderError::Refused {
                    code: "AuthFailure".into(),
                    message: String::new(),
                    retryable: false,
                })
            })
            .await;
        assert!(matches!(
            r,
            Err(ProviderError::Refused {
                retryable: false,
                ..
            })
        ));
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retryable_until_deadline_is_unavailable_and_hang_is_timeout() {
        let u = upstream(100, 1000);
        let r: Result<(), _> = u
            .call(Instant::now() + Duration::from_millis(300), |_| async {
                Err(ProviderError::Network("refused".into()))
            })
            .await;
        assert!(matches!(r, Err(ProviderError::Unavailable { .. })), "{r:?}");
        let r: Result<(), _> = u
            .call(Instant::now() + Duration::from_millis(300), |_| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await;
        assert_eq!(r.unwrap_err(), ProviderError::Timeout);
    }

    #[test]
    fn target_has_the_host_and_path_reqwest_sends() {
        let t = Target::new(
            "http://127.0.0.1:9404/",
            "/v1/sessionToken",
            &[("durationSeconds", "900")],
            "k",
        )
        .unwrap();
        assert_eq!(
            t.url,
            "http://127.0.0.1:9404/v1/sessionToken?durationSeconds=900"
        );
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:9404", "/v1/sessionToken")
        );
        let t = Target::new("https://iam.example.com:443/proxy", "/v3.0/x", &[], "k").unwrap();
        assert_eq!(t.url, "https://iam.example.com/proxy/v3.0/x");
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("iam.example.com", "/proxy/v3.0/x")
        );
        assert_eq!(
            Target::new("nope", "/x", &[], "providers.x.endpoint"),
            Err("providers.x.endpoint is not a URL".into())
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let b = backoff(attempt);
            assert!(b <= MAX_BACKOFF);
            assert!(b >= BASE_BACKOFF / 2);
        }
    }
}
