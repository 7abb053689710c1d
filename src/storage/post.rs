//! POST Object (the browser form upload), handled by stsgate rather than `s3s`: `s3s` 0.12
//! reads a POST's whole file into memory before any check and enforces none of the policy's
//! conditions. Here the fields before the file are read (small, bounded), the SigV4 POST
//! signature, the session token and every policy condition are checked, and only then is
//! the file streamed to disk, counted against the smaller of the policy's
//! `content-length-range` and the grant's size.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use futures_util::StreamExt as _;
use http::{HeaderValue, Response, StatusCode};
use s3s::{s3_error, S3Error, S3ErrorCode};
use serde_json::Value;
use subtle::ConstantTimeEq as _;

use super::disk::{self, WriteError};
use super::paths;
use super::s3::{bad_key, token_error};
use super::Core;
use crate::providers::aws::sign::post_policy_signature;
use crate::providers::embedded::sign;
use crate::providers::embedded::sts::ACCESS_KEY_PREFIX;

/// Largest text field before the file.
const MAX_FIELD_BYTES: u64 = 64 * 1024;
/// Most fields before the file.
const MAX_FIELDS: usize = 64;

/// The XML error answer S3 gives.
pub fn error_response(err: &S3Error) -> Response<Body> {
    let status = err.status_code().unwrap_or(StatusCode::BAD_REQUEST);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message></Error>",
        xml_escape(err.code().as_str()),
        xml_escape(err.message().unwrap_or(""))
    );
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    resp
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn denied(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, msg.into())
}

fn invalid(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, msg.into())
}

/// The form fields before the file, names as sent.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &str) -> Result<&str, S3Error> {
        self.get(name)
            .ok_or_else(|| invalid(format!("Bucket POST must contain a field named '{name}'.")))
    }
}

/// A policy's size range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthRange {
    /// Smallest file.
    pub min: u64,
    /// Largest file.
    pub max: u64,
}

/// Checks a decoded policy against the fields (`bucket` is the URL's) at `now`: not
/// expired, every condition met, every field named by a condition. Returns the size range.
pub fn check_policy(
    policy: &Value,
    bucket: &str,
    fields: &[(String, String)],
    now: i64,
) -> Result<Option<LengthRange>, S3Error> {
    let policy_err = |m: &str| {
        S3Error::with_message(
            S3ErrorCode::InvalidPolicyDocument,
            format!("Invalid Policy: {m}"),
        )
    };
    let expiration = policy
        .get("expiration")
        .and_then(Value::as_str)
        .ok_or_else(|| policy_err("no expiration"))?;
    let expires =
        time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339)
            .map_err(|_| policy_err("the expiration is not ISO 8601"))?
            .unix_timestamp();
    if now >= expires {
        return Err(denied("Invalid according to Policy: Policy expired."));
    }
    let conditions = policy
        .get("conditions")
        .and_then(Value::as_array)
        .ok_or_else(|| policy_err("no conditions"))?;
    let value_of = |name: &str| -> Option<&str> {
        if name.eq_ignore_ascii_case("bucket") {
            return Some(bucket);
        }
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut named: Vec<String> = Vec::new();
    let mut range = None;
    let failed = |name: &str| {
        denied(format!(
            "Invalid according to Policy: Policy Condition failed: [\"{name}\"]"
        ))
    };
    for cond in conditions {
        match cond {
            Value::Object(map) if map.len() == 1 => {
                let (name, want) = map.iter().next().expect("one entry");
                let want = want
                    .as_str()
                    .ok_or_else(|| policy_err("a condition value is not a string"))?;
                if value_of(name) != Some(want) {
                    return Err(failed(name));
                }
                named.push(name.to_ascii_lowercase());
            }
            Value::Array(a) if a.len() == 3 => {
                let op = a[0].as_str().unwrap_or("").to_ascii_lowercase();
                if op == "content-length-range" {
                    let (Some(min), Some(max)) = (a[1].as_u64(), a[2].as_u64()) else {
                        return Err(policy_err("content-length-range needs two integers"));
                    };
                    range = Some(LengthRange { min, max });
                    continue;
                }
                let field = a[1]
                    .as_str()
                    .and_then(|f| f.strip_prefix('$'))
                    .ok_or_else(|| policy_err("a condition names no $field"))?;
                let want = a[2]
                    .as_str()
                    .ok_or_else(|| policy_err("a condition value is not a string"))?;
                let have = value_of(field);
                let ok = match op.as_str() {
                    "eq" => have == Some(want),
                    "starts-with" => have.is_some_and(|h| h.starts_with(want)),
                    _ => return Err(policy_err("unknown condition")),
                };
                // A field that is absent fails `eq`, and `starts-with` unless the prefix is "".
                let absent_allowed = op == "starts-with" && want.is_empty() && have.is_none();
                if !(ok || absent_allowed) {
                    return Err(failed(field));
                }
                named.push(field.to_ascii_lowercase());
            }
            _ => {
                return Err(policy_err(
                    "a condition is neither {field: value} nor a 3-element list",
                ))
            }
        }
    }
    for (name, _) in fields {
        let lower = name.to_ascii_lowercase();
        let exempt = matches!(lower.as_str(), "policy" | "x-amz-signature" | "file")
            || lower.starts_with("x-ignore-");
        if !exempt && !named.contains(&lower) {
            return Err(denied(format!(
                "Invalid according to Policy: Extra input fields: {name}"
            )));
        }
    }
    Ok(range)
}

/// The signing day of an `x-amz-date` (`yyyymmddThhmmssZ`).
fn signing_time(amz_date: &str) -> Option<SystemTime> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(amz_date, &fmt)
        .ok()?
        .assume_utc();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.unix_timestamp()).ok()?))
}

/// What the form's fields authorise, once checked.
struct Authorised {
    grant: sign::Grant,
    key_field: String,
    limit: u64,
    min: u64,
    content_type: Option<String>,
    success_status: StatusCode,
}

fn authorise(core: &Core, bucket: &str, fields: &Fields) -> Result<Authorised, S3Error> {
    let algorithm = fields.require("x-amz-algorithm")?;
    if algorithm != "AWS4-HMAC-SHA256" {
        return Err(invalid(
            "Only AWS4-HMAC-SHA256 POST signatures are accepted.",
        ));
    }
    let credential = fields.require("x-amz-credential")?;
    let amz_date = fields.require("x-amz-date")?;
    let signature = fields.require("x-amz-signature")?;
    let policy_b64 = fields.require("policy")?;
    let key_field = fields.require("key")?.to_string();
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, day, region, "s3", "aws4_request"] = parts.as_slice() else {
        return Err(invalid(
            "x-amz-credential is not <key>/<date>/<region>/s3/aws4_request.",
        ));
    };
    if !amz_date.starts_with(day) || day.len() != 8 {
        return Err(invalid("x-amz-credential's date is not x-amz-date's."));
    }
    if !access_key.starts_with(ACCESS_KEY_PREFIX) {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidAccessKeyId,
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    }
    let time =
        signing_time(amz_date).ok_or_else(|| invalid("x-amz-date is not yyyymmddThhmmssZ."))?;
    let secret = sign::derive_secret(core.server_key(), access_key);
    let expected = post_policy_signature(&secret, time, region, "s3", policy_b64);
    if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
        return Err(S3Error::with_message(
            S3ErrorCode::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    let token = fields.get("x-amz-security-token").ok_or_else(|| {
        S3Error::with_message(
            S3ErrorCode::InvalidToken,
            "The request carries no session token (x-amz-security-token).",
        )
    })?;
    let now = core.clock.now_unix();
    let grant = sign::open(core.server_key(), token, access_key, now).map_err(token_error)?;
    let policy_json = crate::providers::crypto::b64_decode(policy_b64)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidPolicyDocument,
                "Invalid Policy: not base64 JSON",
            )
        })?;
    let range = check_policy(&policy_json, bucket, &fields.0, now)?;
    let success_status = match fields.get("success_action_status") {
        Some("200") => StatusCode::OK,
        Some("201") => StatusCode::CREATED,
        _ => StatusCode::NO_CONTENT,
    };
    Ok(Authorised {
        limit: range.map_or(grant.max_bytes, |r| r.max.min(grant.max_bytes)),
        min: range.map_or(0, |r| r.min),
        content_type: fields.get("content-type").map(str::to_string),
        grant,
        key_field,
        success_status,
    })
}

/// Handles `POST /{bucket}` with a `multipart/form-data` body.
pub async fn handle(core: &Core, bucket: &str, content_type: &str, body: Body) -> Response<Body> {
    match run(core, bucket, content_type, body).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

async fn run(
    core: &Core,
    bucket: &str,
    content_type: &str,
    body: Body,
) -> Result<Response<Body>, S3Error> {
    let malformed =
        |m: &str| S3Error::with_message(S3ErrorCode::MalformedPOSTRequest, m.to_string());
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        malformed("The body of your POST request is not well-formed multipart/form-data.")
    })?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .per_field(MAX_FIELD_BYTES)
            .for_field("file", u64::MAX),
    );
    let mut form =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut fields = Fields(Vec::new());
    let mut file = loop {
        let field = form
            .next_field()
            .await
            .map_err(|_| {
                malformed("The body of your POST request is not well-formed multipart/form-data.")
            })?
            .ok_or_else(|| invalid("POST requires exactly one file upload per request."))?;
        let name = field.name().unwrap_or("").to_string();
        if name.eq_ignore_ascii_case("file") {
            break field;
        }
        if fields.0.len() >= MAX_FIELDS {
            return Err(malformed("Too many form fields."));
        }
        let value = field
            .text()
            .await
            .map_err(|_| malformed("A form field is too long or not text."))?;
        fields.0.push((name, value));
    };
    let auth = authorise(core, bucket, &fields)?;
    let filename = file.file_name().unwrap_or("").to_string();
    let key = auth.key_field.replace("${filename}", &filename);
    if !auth.grant.covers(bucket, &key) {
        return Err(denied("These credentials do not allow writing this key."));
    }
    let dest = paths::object_path(&core.dir, bucket, &key).map_err(bad_key)?;
    let stream = futures_util::stream::poll_fn(move |cx| file.poll_next_unpin(cx));
    let staged = match disk::stage(&core.dir, stream, auth.limit).await {
        Ok(s) => s,
        Err(WriteError::TooLarge) => {
            return Err(S3Error::with_message(
                S3ErrorCode::EntityTooLarge,
                format!(
                    "Your proposed upload exceeds the maximum allowed size of {} bytes.",
                    auth.limit
                ),
            ))
        }
        Err(WriteError::Body(_)) => return Err(s3_error!(IncompleteBody, "The upload broke off.")),
        Err(WriteError::Io(e)) => {
            tracing::error!(error = %e, "embedded store: disk write failed");
            return Err(s3_error!(InternalError, "The store could not write."));
        }
    };
    if staged.size < auth.min {
        return Err(S3Error::with_message(
            S3ErrorCode::EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed size.",
        ));
    }
    let (size, etag) = (staged.size, staged.etag());
    staged.persist(&dest).await.map_err(|e| {
        tracing::error!(error = %e, "embedded store: rename failed");
        s3_error!(InternalError, "The store could not write.")
    })?;
    core.record(&auth.grant, &key, size, &etag, auth.content_type.as_deref())
        .await;
    let location = format!("{}/{}/{}", core.public_url, bucket, key);
    let body = if auth.success_status == StatusCode::CREATED {
        Body::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
            xml_escape(&location),
            xml_escape(bucket),
            xml_escape(&key),
            xml_escape(&etag)
        ))
    } else {
        Body::empty()
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = auth.success_status;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert("location", v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn policy(conditions: Value) -> Value {
        json!({"expiration": "2030-01-01T00:00:00Z", "conditions": conditions})
    }

    #[test]
    fn every_condition_is_enforced() {
        let f = fields(&[("key", "a/b.png"), ("Content-Type", "image/png")]);
        let ok = policy(json!([
            {"bucket": "local"}, ["starts-with", "$key", "a/"], {"Content-Type": "image/png"},
            ["content-length-range", 0, 10]
        ]));
        assert_eq!(
            check_policy(&ok, "local", &f, 0).unwrap(),
            Some(LengthRange { min: 0, max: 10 })
        );
        let cases = [
            (
                json!([{"bucket": "other"}, {"key": "a/b.png"}, {"Content-Type": "image/png"}]),
                "Policy Condition failed: [\"bucket\"]",
            ),
            (
                json!([{"bucket": "local"}, {"key": "a/c.png"}, {"Content-Type": "image/png"}]),
                "Policy Condition failed: [\"key\"]",
            ),
            (
                json!([{"bucket": "local"}, ["starts-with", "$key", "b/"], {"Content-Type": "image/png"}]),
                "Policy Condition failed: [\"key\"]",
            ),
            (
                json!([{"bucket": "local"}, ["eq", "$Content-Type", "image/gif"], {"key": "a/b.png"}]),
                "Policy Condition failed: [\"Content-Type\"]",
            ),
            (
                json!([{"bucket": "local"}, {"key": "a/b.png"}]),
                "Extra input fields: Content-Type",
            ),
        ];
        for (conds, msg) in cases {
            let err = check_policy(&policy(conds), "local", &f, 0).unwrap_err();
            assert_eq!(err.code(), &S3ErrorCode::AccessDenied);
            assert!(
                err.message().unwrap().contains(msg),
                "{:?} vs {msg}",
                err.message()
            );
        }
        let expired = json!({"expiration": "2020-01-01T00:00:00Z", "conditions": []});
        let err = check_policy(&expired, "local", &[], 1_700_000_000).unwrap_err();
        assert!(err.message().unwrap().contains("Policy expired"));
        for bad in [
            json!({"conditions": []}),
            json!({"expiration": "2030-01-01T00:00:00Z"}),
            policy(json!([["between", "$key", "a"]])),
            policy(json!([42])),
        ] {
            let err = check_policy(&bad, "local", &[], 0).unwrap_err();
            assert_eq!(err.code(), &S3ErrorCode::InvalidPolicyDocument, "{bad}");
        }
    }

    #[test]
    fn x_ignore_and_the_signature_need_no_condition() {
        let f = fields(&[
            ("policy", "p"),
            ("x-amz-signature", "s"),
            ("x-ignore-me", "1"),
        ]);
        assert_eq!(
            check_policy(&policy(json!([])), "local", &f, 0).unwrap(),
            None
        );
    }

    #[test]
    fn errors_are_s3_xml() {
        let resp = error_response(&S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            "too <big>",
        ));
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let resp = error_response(&S3Error::with_message(S3ErrorCode::AccessDenied, "no"));
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(signing_time("20261203T120000Z").is_some());
        assert!(signing_time("2026-12-03").is_none());
    }
}
