//! `GET /demo`: one static page (`demo.html`, embedded) that uploads a file the way a frontend
//! would: `/upload/sts/info`, a browser POST of the answer's `form`, the callback when the
//! cloud needs one, then the ledger record. See docs/demo.md.
//!
//! The page gets its configuration (enabled clouds, module names) as a JSON data block that
//! the server fills in before serving. Its one script and one style sheet are inline and
//! allowed by their SHA-256 in the `Content-Security-Policy`, so nothing else can run.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::app::AppState;
use crate::providers::CloudType;
use crate::upload::module::UploadModule;

/// The page as written.
pub const PAGE: &str = include_str!("demo.html");

/// Replaced by the JSON configuration before the page is served.
pub const CONFIG_PLACEHOLDER: &str = "/*STSGATE_DEMO_CONFIG*/null";

/// Whether `/demo` is served: `server.demo`, off when absent (for now).
pub fn enabled(state: &AppState) -> bool {
    state.config.server.demo.unwrap_or(state.storage.is_some())
}

/// The route when [`enabled`], else nothing (so `/demo` is the usual 404 envelope).
pub fn router(state: &AppState) -> Router<AppState> {
    if enabled(state) {
        Router::new().route("/demo", get(page))
    } else {
        Router::new()
    }
}

/// Whether the page must POST `callbackInfo` itself after uploading to `cloud`: not for the
/// clouds that sign their own callback to stsgate (Qiniu, Aliyun OSS), nor for a provider
/// whose store records uploads itself (the embedded store).
pub fn needs_client_callback(cloud: CloudType, records_uploads: bool) -> bool {
    !records_uploads && !matches!(cloud, CloudType::Qiniu | CloudType::Aliyun)
}

/// The configuration the page reads: the enabled clouds and the upload modules.
pub fn page_config(state: &AppState) -> Value {
    let clouds: Vec<Value> = state
        .providers
        .enabled()
        .into_iter()
        .map(|c| {
            let store = state.providers.get(c).is_some_and(|p| p.records_uploads());
            json!({
                "type": c.code(),
                "name": if store { "embedded store" } else { c.name() },
                "callback": needs_client_callback(c, store),
            })
        })
        .collect();
    let modules: Vec<Value> = UploadModule::ALL
        .into_iter()
        .map(|m| {
            let rules = state.config.upload.rules(m);
            let requires = match m {
                UploadModule::BsProject => Some("projectId"),
                UploadModule::MaterialTemplate => Some("uuid"),
                _ => None,
            };
            json!({
                "name": m.as_str(),
                "requires": requires,
                "extensions": rules.extensions,
                "maxBytes": rules.max_bytes,
            })
        })
        .collect();
    json!({ "clouds": clouds, "modules": modules })
}

/// `value` as JSON that is safe inside a `<script>` element: `<`, `>`, `&` and the two JS
/// line separators are `\u` escapes (only possible inside strings, where they mean the same).
pub fn script_safe_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The page with `config` in place of [`CONFIG_PLACEHOLDER`].
pub fn render(config: &Value) -> String {
    PAGE.replacen(CONFIG_PLACEHOLDER, &script_safe_json(config), 1)
}

/// The text between the only `open` and the `close` after it.
fn inline_block<'a>(page: &'a str, open: &str, close: &str) -> &'a str {
    let start = page.find(open).expect("the page has the block") + open.len();
    let len = page[start..].find(close).expect("the block is closed");
    &page[start..start + len]
}

fn sha256_source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// The `Content-Security-Policy`: only the page's own script and style (by hash), requests
/// to any origin (the form's URL is the cloud's, known only from the answer), no plugins,
/// frames, form submissions, base changes or framing.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    let script = sha256_source(inline_block(PAGE, "<script>", "</script>"));
    let style = sha256_source(inline_block(PAGE, "<style>", "</style>"));
    format!(
        "default-src 'none'; script-src {script}; style-src {style}; connect-src *; \
         img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
});

async fn page(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP.as_str()),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        render(&page_config(&state)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_one_placeholder_one_script_and_one_style() {
        assert_eq!(PAGE.matches(CONFIG_PLACEHOLDER).count(), 1);
        // The executable script is the bare `<script>`; the config is a JSON data block.
        assert_eq!(PAGE.matches("<script>").count(), 1);
        assert_eq!(PAGE.matches("<script").count(), 2);
        assert!(PAGE.contains(&format!(
            "<script type=\"application/json\" id=\"demo-config\">{CONFIG_PLACEHOLDER}</script>"
        )));
        assert_eq!(PAGE.matches("<style>").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        // No external resource of any kind.
        for s in ["src=", "href=\"http", "@import", "url(http", "//cdn"] {
            assert!(!PAGE.contains(s), "{s}");
        }
        let script = inline_block(PAGE, "<script>", "</script>");
        assert!(script.contains("/upload/sts/info"));
    }

    #[test]
    fn injected_config_cannot_leave_its_script_element() {
        let evil = json!({"clouds": [], "modules": [{"name": "</script><script>alert(1)</script>&\u{2028}"}]});
        let page = render(&evil);
        assert!(!page.contains(CONFIG_PLACEHOLDER));
        let block = inline_block(
            &page,
            "<script type=\"application/json\" id=\"demo-config\">",
            "</script>",
        );
        assert!(!block.contains('<') && !block.contains('>') && !block.contains('&'));
        assert!(!block.contains('\u{2028}'));
        // Still the same JSON.
        let back: Value = serde_json::from_str(block).unwrap();
        assert_eq!(back, evil);
        // The page's own script is untouched, so its hash in the CSP still matches.
        assert_eq!(
            inline_block(&page, "<script>", "</script>"),
            inline_block(PAGE, "<script>", "</script>")
        );
    }

    #[test]
    fn csp_allows_only_the_page_itself_by_hash() {
        let csp = CSP.as_str();
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        let script = sha256_source(inline_block(PAGE, "<script>", "</script>"));
        assert!(csp.contains(&format!("script-src {script};")), "{csp}");
        assert_eq!(script.len(), "'sha256-'".len() + 44);
        assert!(csp.contains("connect-src *;"));
    }

    #[test]
    fn clouds_that_sign_their_own_callback_get_none_from_the_page() {
        assert!(!needs_client_callback(CloudType::Qiniu, false));
        assert!(!needs_client_callback(CloudType::Aliyun, false));
        // The embedded store records the upload itself.
        assert!(!needs_client_callback(CloudType::Aws, true));
        for c in [
            CloudType::Tencent,
            CloudType::Aws,
            CloudType::Baidu,
            CloudType::Huawei,
            CloudType::Ksyun,
        ] {
            assert!(needs_client_callback(c, false), "{c:?}");
        }
    }
}
