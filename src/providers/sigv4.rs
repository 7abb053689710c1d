//! AWS Signature Version 4 through AWS's own `aws-sigv4` crate (no hand-written SigV4), shared
//! by every cloud that speaks it: AWS STS and S3-compatible stores, and KSyun STS.
//!
//! - [`sign_request`] signs one HTTP request (STS query protocol: a form POST; KSyun's ks3sdk
//!   shape: a GET with a query and a JSON body) and returns the headers to add.
//! - [`amz_date`], [`credential`] and [`signing_key`] are the scheme's public stages (the
//!   browser POST forms and the vector tests use them).
//! - [`form_encode`] builds a body byte-identical to botocore's (`quote_plus`, nothing safe
//!   but `A-Za-z0-9-_.~`); the signature covers the exact bytes, so any valid encoding works,
//!   but matching botocore makes the official vectors reproducible to the byte.
//!
//! The AWS-only pieces (S3 presigning, the S3 POST policy signature) stay in
//! [`crate::providers::aws::sign`].

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::providers::crypto::percent_encode;

/// The algorithm name (`x-amz-algorithm`).
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Who signs. `Debug` shows only the access key id's first four characters.
#[derive(Clone, Copy)]
pub struct SigV4Key<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// Session token when the signer itself holds temporary credentials (then sent and
    /// signed as `X-Amz-Security-Token`).
    pub session_token: Option<&'a str>,
}

impl std::fmt::Debug for SigV4Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Key")
            .field("access_key_id", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One request to sign.
#[derive(Debug, Clone, Copy)]
pub struct SigV4Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// Full URL, already percent-encoded, with its query (`https://sts.us-east-1.amazonaws.com/`).
    /// Its authority is the signed `host`.
    pub url: &'a str,
    /// Headers to sign besides `host` and `x-amz-date` (e.g. `content-type` for AWS STS;
    /// none for KSyun's ks3sdk shape). Send them with exactly these values.
    pub signed_headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
    /// Signing region (`sts_region`).
    pub region: &'a str,
    /// Signing service (`sts`, `s3`).
    pub service: &'a str,
    /// Signing time.
    pub time: SystemTime,
}

/// The headers to add to the request (`x-amz-date`, `authorization`, and
/// `x-amz-security-token` when the key has one), plus the bare signature.
pub struct Signed {
    /// Header name (lower case) and value.
    pub headers: Vec<(&'static str, String)>,
    /// Hex signature.
    pub signature: String,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signature is not a secret, but the security-token header is.
        f.debug_struct("Signed")
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("signature", &self.signature)
            .finish()
    }
}

/// Signs `req` with `key`. Errors name what was wrong (never a secret).
pub fn sign_request(key: SigV4Key<'_>, req: &SigV4Request<'_>) -> Result<Signed, String> {
    let identity = Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        key.session_token.map(str::to_string),
        None,
        "stsgate",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(req.region)
        .name(req.service)
        .time(req.time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("sigv4 parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        req.method,
        req.url,
        req.signed_headers.iter().copied(),
        SignableBody::Bytes(req.body),
    )
    .map_err(|e| format!("sigv4 request: {e}"))?;
    // aws-sigv4 traces the request and the signing identity, access key id included; run it
    // with no subscriber so nothing of the key reaches stsgate's logs at any level.
    let none = tracing::Dispatch::none();
    let (instructions, signature) =
        tracing::dispatcher::with_default(&none, || sign(signable, &params))
            .map_err(|e| format!("sigv4 signing: {e}"))?
            .into_parts();
    let (headers, _) = instructions.into_parts();
    let headers = headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_string()))
        .collect();
    Ok(Signed { headers, signature })
}

/// `x-amz-date` for `time`: `YYYYMMDD'T'HHMMSS'Z'`.
pub fn amz_date(time: SystemTime) -> String {
    let t = time::OffsetDateTime::from(time);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `{access_key_id}/{YYYYMMDD}/{region}/{service}/aws4_request` (`x-amz-credential`).
pub fn credential(access_key_id: &str, time: SystemTime, region: &str, service: &str) -> String {
    let date = &amz_date(time)[..8];
    format!("{access_key_id}/{date}/{region}/{service}/aws4_request")
}

/// The SigV4 signing key, `HMAC chain("AWS4"+secret, date, region, service, "aws4_request")`.
pub fn signing_key(secret: &str, time: SystemTime, region: &str, service: &str) -> Vec<u8> {
    v4::generate_signing_key(secret, time, region, service)
        .as_ref()
        .to_vec()
}

/// Form-encodes `pairs` as botocore does (`urllib.parse.urlencode`: unreserved
/// `A-Za-z0-9-_.~` kept, space as `+`, everything else `%XX` of the UTF-8 bytes).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&percent_encode(k).replace("%20", "+"));
        out.push('=');
        out.push_str(&percent_encode(v).replace("%20", "+"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The STS query protocol's content type (what AWS sends; any value is signed as given).
    const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

    #[test]
    fn signing_logs_nothing_even_at_trace() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::trace!("before");
            sign_request(
                SigV4Key {
                    access_key_id: "AKIDLEAKCHECK",
                    secret_access_key: "s3cr3t",
                    session_token: Some("tok3n"),
                },
                &SigV4Request {
                    method: "POST",
                    url: "https://sts.us-east-1.amazonaws.com/",
                    signed_headers: &[("content-type", FORM_CONTENT_TYPE)],
                    body: b"Action=AssumeRole",
                    region: "us-east-1",
                    service: "sts",
                    time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                },
            )
            .unwrap();
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("before"), "the capture works");
        for secret in ["AKIDLEAKCHECK", "s3cr3t", "tok3n"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    #[test]
    fn debug_redacts_keys_and_tokens() {
        let key = SigV4Key {
            access_key_id: "AKIDSECRETID",
            secret_access_key: "s3cr3t",
            session_token: Some("tok3n"),
        };
        let dbg = format!("{key:?}");
        assert!(!dbg.contains("AKIDSECRETID") && !dbg.contains("s3cr3t") && !dbg.contains("tok3n"));
        let signed = sign_request(
            key,
            &SigV4Request {
                method: "POST",
                url: "https://sts.us-east-1.amazonaws.com/",
                signed_headers: &[("content-type", FORM_CONTENT_TYPE)],
                body: b"Action=AssumeRole",
                region: "us-east-1",
                service: "sts",
                time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            },
        )
        .unwrap();
        assert!(signed
            .headers
            .iter()
            .any(|(n, v)| *n == "x-amz-security-token" && v == "tok3n"));
        assert!(!format!("{signed:?}").contains("tok3n"));
    }

    proptest::proptest! {
        #[test]
        fn form_encode_round_trips(k in "[A-Za-z]{1,8}", v in "\\PC{0,40}") {
            let enc = form_encode(&[(&k, &v)]);
            let back: Vec<(String, String)> = form_urlencoded::parse(enc.as_bytes()).into_owned().collect();
            proptest::prop_assert_eq!(back, vec![(k.clone(), v.clone())]);
            proptest::prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%+=".contains(&b)));
        }
    }
}
