//! The success answer of `/upload/sts/info`: exactly the `data` fields of docs/contract.md §1.3,
//! in the seed's order; optional ones omitted when absent. Its `Debug` redacts secrets.

use secrecy::{ExposeSecret as _, SecretString};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::clock::rfc3339;
use crate::providers::Form;

/// `data.callbackInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackInfo {
    /// Always `application/x-www-form-urlencoded`.
    pub callback_body_type: String,
    /// Where to POST.
    pub callback_url: String,
    /// objectId.
    pub object_id: i64,
    /// resourceType.
    pub resource_type: u8,
    /// Literal body or the cloud's template.
    pub callback_body: String,
    /// OSS only.
    pub callback: Option<String>,
    /// OSS only.
    pub callback_var: Option<String>,
}

impl Serialize for CallbackInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Custom {
            object_id: i64,
            resource_type: u8,
        }
        let n = 4 + usize::from(self.callback.is_some()) + usize::from(self.callback_var.is_some());
        let mut st = s.serialize_struct("CallbackInfo", n)?;
        st.serialize_field("callbackBodyType", &self.callback_body_type)?;
        st.serialize_field("callbackUrl", &self.callback_url)?;
        st.serialize_field(
            "customInfo",
            &Custom {
                object_id: self.object_id,
                resource_type: self.resource_type,
            },
        )?;
        st.serialize_field("callbackBody", &self.callback_body)?;
        if let Some(c) = &self.callback {
            st.serialize_field("callback", c)?;
        } else {
            st.skip_field("callback")?;
        }
        if let Some(c) = &self.callback_var {
            st.serialize_field("callbackVar", c)?;
        } else {
            st.skip_field("callbackVar")?;
        }
        st.end()
    }
}

/// `data` of a successful answer.
#[derive(Clone)]
pub struct StsAnswer {
    /// accessKeyId
    pub access_key_id: String,
    /// secretAccessKey
    pub secret_access_key: SecretString,
    /// securityToken
    pub security_token: SecretString,
    /// bucket
    pub bucket: String,
    /// endpoint (never contains the bucket)
    pub endpoint: String,
    /// region
    pub region: String,
    /// relativePath
    pub relative_path: String,
    /// expiration (Unix seconds)
    pub expiration: i64,
    /// startTime (Unix seconds)
    pub start_time: Option<i64>,
    /// serverTime (Unix seconds), refreshed for idempotent replays
    pub server_time: i64,
    /// objectId
    pub object_id: i64,
    /// callbackInfo
    pub callback_info: Option<CallbackInfo>,
    /// form
    pub form: Option<Form>,
    /// uploadUrl + uploadHeaders
    pub upload: Option<crate::providers::PresignedPut>,
}

impl std::fmt::Debug for StsAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsAnswer")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("relative_path", &self.relative_path)
            .field("expiration", &self.expiration)
            .field("object_id", &self.object_id)
            .finish_non_exhaustive()
    }
}

struct Fields<'a>(&'a [(String, String)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct FormDto<'a> {
    url: &'a str,
    fields: Fields<'a>,
}

impl Serialize for StsAnswer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("StsAnswer", 18)?;
        st.serialize_field("accessKeyId", &self.access_key_id)?;
        st.serialize_field("secretAccessKey", self.secret_access_key.expose_secret())?;
        st.serialize_field("securityToken", self.security_token.expose_secret())?;
        st.serialize_field("bucket", &self.bucket)?;
        st.serialize_field("endpoint", &self.endpoint)?;
        st.serialize_field("region", &self.region)?;
        st.serialize_field("relativePath", &self.relative_path)?;
        st.serialize_field("expiration", &rfc3339(self.expiration))?;
        match self.start_time {
            Some(t) => st.serialize_field("startTime", &rfc3339(t))?,
            None => st.skip_field("startTime")?,
        }
        st.serialize_field("serverTime", &rfc3339(self.server_time))?;
        st.serialize_field("objectId", &self.object_id)?;
        match &self.callback_info {
            Some(c) => st.serialize_field("callbackInfo", c)?,
            None => st.skip_field("callbackInfo")?,
        }
        match &self.form {
            Some(f) => {
                st.serialize_field("signature", &f.signature)?;
                st.serialize_field("policy", &f.policy)?;
                st.serialize_field(
                    "form",
                    &FormDto {
                        url: &f.url,
                        fields: Fields(&f.fields),
                    },
                )?;
            }
            None => {
                st.skip_field("signature")?;
                st.skip_field("policy")?;
                st.skip_field("form")?;
            }
        }
        match &self.upload {
            Some(u) => {
                st.serialize_field("uploadUrl", &u.url)?;
                st.serialize_field("uploadHeaders", &Fields(&u.headers))?;
            }
            None => {
                st.skip_field("uploadUrl")?;
                st.skip_field("uploadHeaders")?;
            }
        }
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(form: Option<Form>) -> StsAnswer {
        StsAnswer {
            access_key_id: "AKIDtmp".into(),
            secret_access_key: SecretString::from("tmpSECRET".to_string()),
            security_token: SecretString::from("tokenTOKEN".to_string()),
            bucket: "b".into(),
            endpoint: "https://cos.ap-guangzhou.myqcloud.com".into(),
            region: "ap-guangzhou".into(),
            relative_path: "k".into(),
            expiration: 1_609_000_000,
            start_time: None,
            server_time: 1_608_999_000,
            object_id: 5,
            callback_info: None,
            form,
            upload: None,
        }
    }

    #[test]
    fn optional_fields_are_omitted_and_order_is_the_seeds() {
        let v = serde_json::to_string(&answer(None)).unwrap();
        assert_eq!(
            v,
            r#"{"accessKeyId":"AKIDtmp","secretAccessKey":"tmpSECRET","securityToken":"tokenTOKEN","bucket":"b","endpoint":"https://cos.ap-guangzhou.myqcloud.com","region":"ap-guangzhou","relativePath":"k","expiration":"2020-12-26T16:26:40Z","serverTime":"2020-12-26T16:10:00Z","objectId":5}"#
        );
    }

    #[test]
    fn form_fields_keep_their_order() {
        let f = Form {
            url: "https://b.example".into(),
            fields: vec![
                ("key".into(), "k".into()),
                ("policy".into(), "P".into()),
                ("a".into(), "1".into()),
            ],
            policy: "P".into(),
            signature: "S".into(),
        };
        let v = serde_json::to_string(&answer(Some(f))).unwrap();
        assert!(v.ends_with(r#""signature":"S","policy":"P","form":{"url":"https://b.example","fields":{"key":"k","policy":"P","a":"1"}}}"#), "{v}");
    }

    #[test]
    fn debug_redacts() {
        let d = format!("{:?}", answer(None));
        assert!(!d.contains("tmpSECRET") && !d.contains("tokenTOKEN") && !d.contains("AKIDtmp"));
    }
}
