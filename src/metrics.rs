//! Prometheus metrics held on `App` (no global recorder). Labels are bounded: route
//! template, method, status, provider, outcome — never a user or a key.

use std::sync::Arc;

use metrics::{Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

static META: Metadata<'static> = Metadata::new("stsgate", metrics::Level::INFO, Some("stsgate"));

/// Names and help texts of every metric (also listed in the README).
pub const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "stsgate_http_requests_total",
        "HTTP requests by route template, method and status",
    ),
    (
        "stsgate_http_request_duration_seconds",
        "HTTP request latency by route template and method",
    ),
    (
        "stsgate_upstream_calls_total",
        "Calls to a cloud by provider and outcome",
    ),
    (
        "stsgate_upstream_call_duration_seconds",
        "Latency of calls to a cloud by provider",
    ),
    (
        "stsgate_pool_hits_total",
        "Tencent credential pool hits by provider",
    ),
    (
        "stsgate_pool_misses_total",
        "Tencent credential pool misses by provider",
    ),
    (
        "stsgate_pool_refills_total",
        "Credentials fetched ahead of demand by provider",
    ),
    (
        "stsgate_budget_waits_total",
        "Upstream sends that had to wait for budget, by provider and outcome",
    ),
    (
        "stsgate_budget_wait_seconds",
        "Time spent waiting for upstream budget by provider",
    ),
    (
        "stsgate_credentials_issued_total",
        "Credentials handed to clients by provider",
    ),
    (
        "stsgate_callbacks_total",
        "Upload callbacks by origin and outcome",
    ),
    (
        "stsgate_webhook_events_pending",
        "Webhook events neither delivered nor dead (all replicas; refreshed by the delivery task)",
    ),
    (
        "stsgate_webhook_delivered_total",
        "Webhook events delivered (answered 2xx)",
    ),
    (
        "stsgate_webhook_retried_total",
        "Webhook deliveries that failed (non-2xx, timeout, unreachable) and were rescheduled",
    ),
    (
        "stsgate_webhook_dead_total",
        "Webhook events given up after notify.max_age_secs",
    ),
    (
        "stsgate_redis_unavailable_total",
        "Redis operations that failed or were skipped (a per-replica fallback was used), by operation",
    ),
];

/// The metrics of [`DESCRIPTIONS`] that are gauges (the others ending in `_seconds` are
/// histograms, the rest counters).
pub const GAUGES: &[&str] = &["stsgate_webhook_events_pending"];

/// The metrics registry of one `App`.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Handles of the per-request metrics already registered, so a request does not build
    /// label strings and look its series up in the registry (a few dozen entries: routes ×
    /// methods × statuses).
    http: Arc<std::sync::RwLock<Vec<HttpSeries>>>,
    issued: Arc<std::sync::RwLock<Vec<(&'static str, metrics::Counter)>>>,
}

/// The two series one kind of HTTP answer updates.
struct HttpSeries {
    route: Box<str>,
    method: Box<str>,
    status: u16,
    duration: metrics::Histogram,
    count: metrics::Counter,
}

/// Entries cached at most; beyond, series are looked up each time (the registry stays
/// right, only slower).
const SERIES_CACHED: usize = 512;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect::<Vec<_>>(),
    )
}

impl Metrics {
    /// A fresh registry with histogram buckets suited to request latencies.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .expect("static buckets")
            .build_recorder();
        let handle = recorder.handle();
        for (name, help) in DESCRIPTIONS {
            let unit = name.ends_with("_seconds").then_some(Unit::Seconds);
            if GAUGES.contains(name) {
                recorder.describe_gauge(KeyName::from(*name), unit, SharedString::from(*help));
            } else if name.ends_with("_seconds") {
                recorder.describe_histogram(KeyName::from(*name), unit, SharedString::from(*help));
            } else {
                recorder.describe_counter(KeyName::from(*name), unit, SharedString::from(*help));
            }
        }
        Metrics {
            recorder: Arc::new(recorder),
            handle,
            http: Arc::default(),
            issued: Arc::default(),
        }
    }

    fn inc(&self, name: &'static str, labels: &[(&'static str, String)]) {
        self.recorder
            .register_counter(&key(name, labels), &META)
            .increment(1);
    }

    fn observe(&self, name: &'static str, labels: &[(&'static str, String)], secs: f64) {
        self.recorder
            .register_histogram(&key(name, labels), &META)
            .record(secs);
    }

    /// One HTTP request.
    pub fn http_request(&self, route: &str, method: &str, status: u16, secs: f64) {
        let found = |series: &[HttpSeries]| {
            series
                .iter()
                .find(|s| s.status == status && &*s.route == route && &*s.method == method)
                .map(|s| (s.duration.clone(), s.count.clone()))
        };
        let cached = found(&self.http.read().unwrap_or_else(|e| e.into_inner()));
        let (duration, count) = match cached {
            Some(handles) => handles,
            None => {
                let l = [("route", route.to_string()), ("method", method.to_string())];
                let duration = self
                    .recorder
                    .register_histogram(&key("stsgate_http_request_duration_seconds", &l), &META);
                let l = [l[0].clone(), l[1].clone(), ("status", status.to_string())];
                let count = self
                    .recorder
                    .register_counter(&key("stsgate_http_requests_total", &l), &META);
                let mut series = self.http.write().unwrap_or_else(|e| e.into_inner());
                if series.len() < SERIES_CACHED && found(&series).is_none() {
                    series.push(HttpSeries {
                        route: route.into(),
                        method: method.into(),
                        status,
                        duration: duration.clone(),
                        count: count.clone(),
                    });
                }
                (duration, count)
            }
        };
        duration.record(secs);
        count.increment(1);
    }

    /// One upstream call attempt.
    pub fn upstream_call(&self, provider: &'static str, outcome: &'static str, secs: f64) {
        self.inc(
            "stsgate_upstream_calls_total",
            &[("provider", provider.into()), ("outcome", outcome.into())],
        );
        self.observe(
            "stsgate_upstream_call_duration_seconds",
            &[("provider", provider.into())],
            secs,
        );
    }

    /// A pool lookup.
    pub fn pool(&self, provider: &'static str, hit: bool) {
        let name = if hit {
            "stsgate_pool_hits_total"
        } else {
            "stsgate_pool_misses_total"
        };
        self.inc(name, &[("provider", provider.into())]);
    }

    /// A credential fetched ahead of demand.
    pub fn pool_refill(&self, provider: &'static str) {
        self.inc(
            "stsgate_pool_refills_total",
            &[("provider", provider.into())],
        );
    }

    /// A send that waited for budget (`outcome`: `sent` or `exhausted`).
    pub fn budget_wait(&self, provider: &'static str, outcome: &'static str, secs: f64) {
        self.inc(
            "stsgate_budget_waits_total",
            &[("provider", provider.into()), ("outcome", outcome.into())],
        );
        self.observe(
            "stsgate_budget_wait_seconds",
            &[("provider", provider.into())],
            secs,
        );
    }

    /// Credentials handed out.
    pub fn issued(&self, provider: &'static str) {
        let cached = self
            .issued
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(p, _)| *p == provider)
            .map(|(_, c)| c.clone());
        let counter = cached.unwrap_or_else(|| {
            let c = self.recorder.register_counter(
                &key(
                    "stsgate_credentials_issued_total",
                    &[("provider", provider.into())],
                ),
                &META,
            );
            let mut issued = self.issued.write().unwrap_or_else(|e| e.into_inner());
            if !issued.iter().any(|(p, _)| *p == provider) {
                issued.push((provider, c.clone()));
            }
            c
        });
        counter.increment(1);
    }

    /// A callback (`origin`: user or a cloud name; `outcome`: a short word).
    pub fn callback(&self, origin: &'static str, outcome: &'static str) {
        self.inc(
            "stsgate_callbacks_total",
            &[("origin", origin.into()), ("outcome", outcome.into())],
        );
    }

    /// A Redis operation that failed or was skipped (`op`: budget, pool, idempotency,
    /// heartbeat, ping).
    pub fn redis_unavailable(&self, op: &'static str) {
        self.inc("stsgate_redis_unavailable_total", &[("op", op.into())]);
    }

    /// Webhook events neither delivered nor dead.
    pub fn webhook_pending(&self, n: i64) {
        self.recorder
            .register_gauge(&key("stsgate_webhook_events_pending", &[]), &META)
            .set(n as f64);
    }

    /// A webhook delivery's outcome: `delivered`, `retried` or `dead`.
    pub fn webhook(&self, outcome: &'static str) {
        let name = match outcome {
            "delivered" => "stsgate_webhook_delivered_total",
            "retried" => "stsgate_webhook_retried_total",
            _ => "stsgate_webhook_dead_total",
        };
        self.inc(name, &[]);
    }

    /// Folds the histogram samples recorded since the last upkeep (or scrape) into their
    /// buckets; until then the recorder holds each sample. The server runs it every few
    /// seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_names_and_describes_every_metric() {
        let readme = include_str!("../README.md");
        for (name, help) in DESCRIPTIONS {
            let row = format!("| `{name}` |");
            let line = readme
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("README has no row for {name}"));
            assert!(
                line.contains(help),
                "README's row for {name} lacks its description"
            );
        }
        let rows = readme
            .lines()
            .filter(|l| l.starts_with("| `stsgate_"))
            .count();
        assert_eq!(
            rows,
            DESCRIPTIONS.len(),
            "README lists a metric the code does not have"
        );
    }

    /// Cached handles update the same series the registry renders.
    #[test]
    fn cached_series_count_every_request() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.http_request("/upload/sts/info", "GET", 200, 0.002);
        }
        m.http_request("/upload/sts/info", "GET", 401, 0.001);
        m.http_request("/healthz", "GET", 200, 0.001);
        for _ in 0..2 {
            m.issued("qiniu");
        }
        m.issued("aws");
        let text = m.render();
        let value = |series: &str| {
            text.lines()
                .find(|l| l.starts_with(series))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{series} in {text}"))
        };
        assert_eq!(
            value(
                r#"stsgate_http_requests_total{route="/upload/sts/info",method="GET",status="200"}"#
            ),
            3.0
        );
        assert_eq!(
            value(
                r#"stsgate_http_requests_total{route="/upload/sts/info",method="GET",status="401"}"#
            ),
            1.0
        );
        assert_eq!(
            value(
                r#"stsgate_http_request_duration_seconds_count{route="/upload/sts/info",method="GET"}"#
            ),
            4.0
        );
        assert_eq!(
            value(r#"stsgate_credentials_issued_total{provider="qiniu"}"#),
            2.0
        );
        assert_eq!(
            value(r#"stsgate_credentials_issued_total{provider="aws"}"#),
            1.0
        );
    }

    /// Upkeep folds samples into the histogram without losing any.
    #[test]
    fn upkeep_keeps_every_sample() {
        let m = Metrics::new();
        for _ in 0..1000 {
            m.http_request("/healthz", "GET", 200, 0.003);
        }
        m.upkeep();
        m.http_request("/healthz", "GET", 200, 0.2);
        m.upkeep();
        let text = m.render();
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} in {text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        };
        assert_eq!(
            line(r#"stsgate_http_request_duration_seconds_count{route="/healthz",method="GET"}"#),
            1001.0
        );
        assert_eq!(
            line(
                r#"stsgate_http_request_duration_seconds_bucket{route="/healthz",method="GET",le="0.005"}"#
            ),
            1000.0
        );
    }

    #[test]
    fn every_rendered_metric_is_described() {
        let m = Metrics::new();
        m.issued("tencent");
        m.callback("user", "uploaded");
        m.pool_refill("tencent");
        m.budget_wait("tencent", "acquired", 0.01);
        m.webhook_pending(3);
        m.webhook("delivered");
        m.webhook("retried");
        m.webhook("dead");
        let text = m.render();
        let mut seen = 0;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                DESCRIPTIONS.iter().any(|(n, _)| *n == base || *n == name),
                "{name} is rendered but not described"
            );
            seen += 1;
        }
        assert!(seen >= 4, "the recorder rendered the metrics: {text}");
    }
}
