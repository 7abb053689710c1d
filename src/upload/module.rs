//! Upload modules, cloud types and their fixed properties (PRODUCT §1.3).

use std::fmt;

/// `uploadModule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UploadModule {
    /// `bs_project`
    BsProject,
    /// `app_project`
    AppProject,
    /// `resource_video`
    ResourceVideo,
    /// `resource_image`
    ResourceImage,
    /// `material_template`
    MaterialTemplate,
    /// `directorytemp`
    DirectoryTemp,
}

/// Executables and scripts refused by modules without an allow-list.
pub const DENIED_EXTENSIONS: &[&str] = &[
    "exe", "bat", "cmd", "com", "msi", "sh", "ps1", "dll", "html", "htm", "js", "svg", "scr",
    "vbs", "jar", "app", "php", "xhtml", "mjs",
];

impl UploadModule {
    /// Every module, in the seed's order.
    pub const ALL: [UploadModule; 6] = [
        UploadModule::BsProject,
        UploadModule::AppProject,
        UploadModule::ResourceVideo,
        UploadModule::ResourceImage,
        UploadModule::MaterialTemplate,
        UploadModule::DirectoryTemp,
    ];

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadModule::BsProject => "bs_project",
            UploadModule::AppProject => "app_project",
            UploadModule::ResourceVideo => "resource_video",
            UploadModule::ResourceImage => "resource_image",
            UploadModule::MaterialTemplate => "material_template",
            UploadModule::DirectoryTemp => "directorytemp",
        }
    }

    /// `resourceType` in callbacks.
    pub fn resource_type(self) -> u8 {
        match self {
            UploadModule::ResourceVideo => 1,
            UploadModule::ResourceImage => 2,
            UploadModule::BsProject => 3,
            UploadModule::AppProject => 4,
            UploadModule::MaterialTemplate => 5,
            UploadModule::DirectoryTemp => 6,
        }
    }

    /// The built-in extension allow-list (`None`: anything but [`DENIED_EXTENSIONS`]).
    pub fn default_extensions(self) -> Option<&'static [&'static str]> {
        match self {
            UploadModule::ResourceImage => {
                Some(&["png", "jpg", "jpeg", "gif", "webp", "bmp", "heic"])
            }
            UploadModule::ResourceVideo => Some(&[
                "mp4", "mov", "m4v", "webm", "mkv", "avi", "flv", "m3u8", "ts",
            ]),
            _ => None,
        }
    }

    /// The built-in largest object size.
    pub fn default_max_bytes(self) -> u64 {
        const MIB: u64 = 1024 * 1024;
        match self {
            UploadModule::ResourceImage => 20 * MIB,
            UploadModule::ResourceVideo => 2048 * MIB,
            UploadModule::BsProject | UploadModule::AppProject => 200 * MIB,
            _ => 100 * MIB,
        }
    }
}

impl fmt::Display for UploadModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

    /// The wire number.
    pub fn code(self) -> u8 {
        match self {
            CloudType::Qiniu => 0,
            CloudType::Tencent => 1,
            CloudType::Aws => 2,
            CloudType::Aliyun => 3,
            CloudType::Baidu => 4,
            CloudType::Huawei => 6,
            CloudType::Ksyun => 7,
        }
    }

    /// The `[providers.<name>]` section and metrics label.
    pub fn name(self) -> &'static str {
        match self {
            CloudType::Qiniu => "qiniu",
            CloudType::Tencent => "tencent",
            CloudType::Aws => "aws",
            CloudType::Aliyun => "aliyun",
            CloudType::Baidu => "baidu",
            CloudType::Huawei => "huawei",
            CloudType::Ksyun => "ksyun",
        }
    }

    /// Whether the cloud can scope credentials to a prefix (`isDir=1`). Tencent LKE
    /// grants exactly one object.
    pub fn supports_dir(self) -> bool {
        self != CloudType::Tencent
    }
}
