//! S3's POST policy rules (expiry, every condition, every field covered) and the IAM
//! session-policy check the fake S3 applies to each upload.

use serde_json::Value;

/// Why a form was refused: (HTTP status, S3 code, message).
pub type Refusal = (u16, &'static str, String);

fn deny(msg: impl Into<String>) -> Refusal {
    (
        403,
        "AccessDenied",
        format!("Invalid according to Policy: {}", msg.into()),
    )
}

/// Checks a decoded POST policy against the submitted fields (names as sent; `key` with
/// `${filename}` already substituted), the bucket, the file size and the time, as S3 does:
/// the policy has not expired, every condition holds, and every field except `file`,
/// `policy`, `x-amz-signature` and `x-ignore-*` is covered by a condition.
pub fn check_policy(
    policy: &Value,
    fields: &[(String, String)],
    bucket: &str,
    size: u64,
    now: i64,
) -> Result<(), Refusal> {
    let exp = policy["expiration"]
        .as_str()
        .ok_or_else(|| deny("Policy has no expiration"))?;
    let exp = time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339)
        .map_err(|_| deny("Policy expiration is malformed"))?;
    if exp.unix_timestamp() <= now {
        return Err(deny("Policy expired."));
    }
    let field = |name: &str| -> Option<String> {
        if name == "bucket" {
            return Some(bucket.to_string());
        }
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut covered: Vec<String> = Vec::new();
    let conditions = policy["conditions"]
        .as_array()
        .ok_or_else(|| deny("Policy has no conditions"))?;
    for c in conditions {
        match c {
            Value::Object(o) if o.len() == 1 => {
                let (k, v) = o.iter().next().unwrap();
                let want = v.as_str().ok_or_else(|| deny("condition value"))?;
                if field(k).as_deref() != Some(want) {
                    return Err(deny(format!(
                        "Policy Condition failed: [\"eq\", \"${k}\", \"{want}\"]"
                    )));
                }
                covered.push(k.to_ascii_lowercase());
            }
            Value::Array(a) if a.len() == 3 => {
                let op = a[0].as_str().unwrap_or("");
                match op {
                    "content-length-range" => {
                        let (min, max) = (a[1].as_u64().unwrap_or(0), a[2].as_u64().unwrap_or(0));
                        if size > max {
                            return Err((
                                400,
                                "EntityTooLarge",
                                "Your proposed upload exceeds the maximum allowed size".into(),
                            ));
                        }
                        if size < min {
                            return Err((
                                400,
                                "EntityTooSmall",
                                "Your proposed upload is smaller than the minimum allowed size"
                                    .into(),
                            ));
                        }
                    }
                    "eq" | "starts-with" => {
                        let name = a[1].as_str().unwrap_or("").trim_start_matches('$');
                        let want = a[2].as_str().unwrap_or("");
                        let got = field(name).unwrap_or_default();
                        let ok = if op == "eq" {
                            got == want
                        } else {
                            got.starts_with(want)
                        };
                        // A starts-with "" condition on an absent field is satisfied.
                        if !ok || (op == "eq" && field(name).is_none()) {
                            return Err(deny(format!(
                                "Policy Condition failed: [\"{op}\", \"${name}\", \"{want}\"]"
                            )));
                        }
                        covered.push(name.to_ascii_lowercase());
                    }
                    _ => return Err(deny("unknown condition")),
                }
            }
            _ => return Err(deny("malformed condition")),
        }
    }
    let extra: Vec<&str> = fields
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| {
            let l = k.to_ascii_lowercase();
            !(l == "file"
                || l == "policy"
                || l == "x-amz-signature"
                || l.starts_with("x-ignore-")
                || covered.contains(&l))
        })
        .collect();
    if !extra.is_empty() {
        return Err(deny(format!("Extra input fields: {}", extra.join(", "))));
    }
    Ok(())
}

/// Whether an IAM resource pattern (`*` and `?` wildcards) matches `arn`.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), arn.as_bytes())
}

/// Whether a session policy allows `action` on `arn` (Allow statements only; stsgate's
/// policies have no Deny).
pub fn session_policy_allows(policy: &str, action: &str, arn: &str) -> bool {
    let Ok(p) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => vec![],
        }
    };
    p["Statement"].as_array().into_iter().flatten().any(|st| {
        st["Effect"] == "Allow"
            && list(&st["Action"]).iter().any(|a| arn_matches(a, action))
            && list(&st["Resource"]).iter().any(|r| arn_matches(r, arn))
    })
}
