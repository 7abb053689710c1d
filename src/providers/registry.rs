//! Every cloud stsgate knows, in one table: its wire number, its `[providers.<name>]`
//! section and its constructor. Adding a cloud is one folder under `src/providers/` plus a
//! variant, a config field and a row here (`docs/adding-a-cloud.md`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::config::{self as section, ProviderSection};
use super::http::Upstream;
use super::{aliyun, aws, baidu, huawei, ksyun, qiniu, tencent, CredentialProvider};
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;

/// The seed's cloud `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CloudType {
    /// 0
    Qiniu,
    /// 1
    Tencent,
    /// 2
    Aws,
    /// 3
    Aliyun,
    /// 4
    Baidu,
    /// 6
    Huawei,
    /// 7
    Ksyun,
}

impl CloudType {
    /// Every cloud type.
    pub const ALL: [CloudType; 7] = [
        CloudType::Qiniu,
        CloudType::Tencent,
        CloudType::Aws,
        CloudType::Aliyun,
        CloudType::Baidu,
        CloudType::Huawei,
        CloudType::Ksyun,
    ];

    /// From the wire number.
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|c| i64::from(c.code()) == code)
    }

    /// The wire number and the `[providers.<name>]` section name: the one place a cloud
    /// type's two spellings are written.
    const fn wire(self) -> (u8, &'static str) {
        match self {
            CloudType::Qiniu => (0, "qiniu"),
            CloudType::Tencent => (1, "tencent"),
            CloudType::Aws => (2, "aws"),
            CloudType::Aliyun => (3, "aliyun"),
            CloudType::Baidu => (4, "baidu"),
            CloudType::Huawei => (6, "huawei"),
            CloudType::Ksyun => (7, "ksyun"),
        }
    }

    /// The wire number.
    pub fn code(self) -> u8 {
        self.wire().0
    }

    /// The `[providers.<name>]` section and metrics label.
    pub fn name(self) -> &'static str {
        self.wire().1
    }

    /// Whether the cloud can scope credentials to a prefix (`isDir=1`). Tencent LKE
    /// grants exactly one object.
    pub fn supports_dir(self) -> bool {
        self != CloudType::Tencent
    }
}

/// `[providers]`: one section per cloud.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    /// Fixed addresses for cloud hosts, as curl's `--resolve`: host name → `ip:port`. Every
    /// provider's client connects there instead of asking DNS (a private endpoint, split
    /// DNS, or a local fake whose bucket virtual hosts `{bucket}.localhost` have no DNS).
    pub resolve: std::collections::BTreeMap<String, std::net::SocketAddr>,
    /// type 1
    pub tencent: tencent::config::TencentConfig,
    /// type 2
    pub aws: aws::config::AwsConfig,
    /// type 3
    pub aliyun: aliyun::config::AliyunConfig,
    /// type 0
    pub qiniu: qiniu::config::QiniuConfig,
    /// type 6
    pub huawei: huawei::config::HuaweiConfig,
    /// type 7
    pub ksyun: ksyun::config::KsyunConfig,
    /// type 4
    pub baidu: baidu::config::BaiduConfig,
}

/// What a provider's constructor may use besides its own section.
pub struct Context<'a> {
    /// The whole (validated) configuration: `[upload]` and `[server]` matter to some clouds.
    pub config: &'a Config,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// The Redis coordinator, when replicas share a budget.
    pub cluster: Option<&'a Cluster>,
}

impl Context<'_> {
    /// The retrying HTTP driver for cloud `name` with the section's limits.
    pub fn upstream(
        &self,
        name: &'static str,
        rate_limit_per_sec: u32,
        connect_timeout_ms: u64,
        timeout_ms: u64,
    ) -> Upstream {
        Upstream::new(
            name,
            rate_limit_per_sec,
            connect_timeout_ms,
            timeout_ms,
            self.metrics.clone(),
            self.cluster,
        )
        .with_resolve(&self.config.providers.resolve)
    }

    /// The credential lifetime to ask for: the section's `duration_secs`, else
    /// `upload.duration_secs`, clamped to what the cloud accepts.
    pub fn duration_secs(
        &self,
        configured: Option<u64>,
        accepted: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        configured
            .unwrap_or(self.config.upload.duration_secs)
            .clamp(*accepted.start(), *accepted.end())
    }
}

/// A cloud: its provider type, its section and how to build it. Every provider folder's
/// `mod.rs` implements this once.
pub trait Cloud: CredentialProvider + Sized {
    /// The cloud type it serves.
    const TYPE: CloudType;
    /// Its `[providers.<name>]` section.
    type Config: ProviderSection + Clone;
    /// Its section within `[providers]`.
    fn section(providers: &ProvidersConfig) -> &Self::Config;
    /// Builds the provider from its (enabled) section.
    fn new(cfg: Self::Config, ctx: &Context<'_>) -> Result<Self, ConfigError>;
    /// Whether a callback with these headers claims to be signed by this cloud (§1.4 of
    /// `docs/contract.md`): only clouds that sign their upload callbacks say yes.
    fn claims_callback(_headers: &HeaderMap) -> bool {
        false
    }
}

/// How a row builds its provider.
type Build = fn(&ProvidersConfig, &Context<'_>) -> Result<Arc<dyn CredentialProvider>, ConfigError>;

/// One row of [`CLOUDS`].
pub struct Row {
    /// The cloud type.
    pub cloud: CloudType,
    enabled: fn(&ProvidersConfig) -> Result<bool, ConfigError>,
    build: Build,
    claims_callback: fn(&HeaderMap) -> bool,
}

const fn row<P: Cloud>() -> Row {
    Row {
        cloud: P::TYPE,
        enabled: enabled::<P>,
        build: build::<P>,
        claims_callback: P::claims_callback,
    }
}

fn enabled<P: Cloud>(providers: &ProvidersConfig) -> Result<bool, ConfigError> {
    section::enabled(P::section(providers)).map_err(ConfigError)
}

fn build<P: Cloud>(
    providers: &ProvidersConfig,
    ctx: &Context<'_>,
) -> Result<Arc<dyn CredentialProvider>, ConfigError> {
    Ok(Arc::new(P::new(P::section(providers).clone(), ctx)?))
}

/// Every cloud. The order is the order in which a callback's headers are matched
/// ([`callback_origin`]): OSS's `x-oss-pub-key-url` before Qiniu's `Authorization`.
pub const CLOUDS: [Row; 7] = [
    row::<aliyun::AliyunProvider>(),
    row::<qiniu::QiniuProvider>(),
    row::<tencent::TencentProvider>(),
    row::<aws::AwsProvider>(),
    row::<baidu::BaiduProvider>(),
    row::<huawei::HuaweiProvider>(),
    row::<ksyun::KsyunProvider>(),
];

/// The cloud types whose sections are enabled; `Err` names the first half-set key.
pub fn enabled_clouds(providers: &ProvidersConfig) -> Result<Vec<CloudType>, ConfigError> {
    let mut on = Vec::new();
    for row in &CLOUDS {
        if (row.enabled)(providers)? {
            on.push(row.cloud);
        }
    }
    on.sort();
    Ok(on)
}

/// Who a callback claims to come from, decided by its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOrigin {
    /// Signed by a cloud; verified only by that cloud's signature.
    Cloud(CloudType),
    /// The uploading user, with a JWT.
    User,
}

/// The first cloud (in [`CLOUDS`] order) that claims the callback, else the user.
pub fn callback_origin(headers: &HeaderMap) -> CallbackOrigin {
    CLOUDS
        .iter()
        .find(|row| (row.claims_callback)(headers))
        .map_or(CallbackOrigin::User, |row| CallbackOrigin::Cloud(row.cloud))
}

/// The enabled providers.
#[derive(Clone, Default)]
pub struct Registry {
    by_type: BTreeMap<CloudType, Arc<dyn CredentialProvider>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.by_type.iter().map(|(c, p)| {
                if p.records_uploads() {
                    "aws (embedded store)"
                } else {
                    c.name()
                }
            }))
            .finish()
    }
}

impl Registry {
    /// Builds every enabled cloud of `ctx.config`.
    pub fn build(ctx: &Context<'_>) -> Result<Registry, ConfigError> {
        let providers = &ctx.config.providers;
        let mut reg = Registry::default();
        for row in &CLOUDS {
            if (row.enabled)(providers)? {
                reg.by_type.insert(row.cloud, (row.build)(providers, ctx)?);
            }
        }
        // The embedded store serves cloud type 2 when no cloud does (`[storage] mode`).
        let storage = &ctx.config.storage;
        if storage
            .is_on(reg.by_type.contains_key(&CloudType::Aws))
            .map_err(ConfigError)?
        {
            reg.insert(Arc::new(super::embedded::EmbeddedProvider::new(
                storage.clone(),
                ctx,
            )?));
        }
        Ok(reg)
    }

    /// Adds a provider.
    pub fn insert(&mut self, p: Arc<dyn CredentialProvider>) {
        self.by_type.insert(p.cloud_type(), p);
    }

    /// The provider for `cloud`, when enabled.
    pub fn get(&self, cloud: CloudType) -> Option<&Arc<dyn CredentialProvider>> {
        self.by_type.get(&cloud)
    }

    /// Enabled cloud types.
    pub fn enabled(&self) -> Vec<CloudType> {
        self.by_type.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cloud_type_has_exactly_one_row() {
        let mut rows: Vec<CloudType> = CLOUDS.iter().map(|r| r.cloud).collect();
        rows.sort();
        assert_eq!(rows, CloudType::ALL.to_vec());
    }

    #[test]
    fn codes_and_names_round_trip() {
        for c in CloudType::ALL {
            assert_eq!(CloudType::from_code(i64::from(c.code())), Some(c));
        }
        assert_eq!(CloudType::from_code(5), None);
        let names: std::collections::BTreeSet<_> =
            CloudType::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), 7);
    }

    #[test]
    fn callback_origin_follows_header_precedence() {
        let mut h = HeaderMap::new();
        assert_eq!(callback_origin(&h), CallbackOrigin::User);
        h.insert("authorization", "Bearer x".parse().unwrap());
        assert_eq!(callback_origin(&h), CallbackOrigin::User);
        h.insert("authorization", "QBox ak:sig".parse().unwrap());
        assert_eq!(callback_origin(&h), CallbackOrigin::Cloud(CloudType::Qiniu));
        h.insert("authorization", "Qiniu ak:sig".parse().unwrap());
        assert_eq!(callback_origin(&h), CallbackOrigin::Cloud(CloudType::Qiniu));
        h.insert("x-oss-pub-key-url", "aHR0cA==".parse().unwrap());
        assert_eq!(
            callback_origin(&h),
            CallbackOrigin::Cloud(CloudType::Aliyun)
        );
    }

    #[test]
    fn no_section_set_enables_nothing() {
        assert_eq!(enabled_clouds(&ProvidersConfig::default()).unwrap(), vec![]);
    }
}
