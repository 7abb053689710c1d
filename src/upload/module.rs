//! Upload modules and their fixed properties (`docs/contract.md` §1.3). Cloud types live
//! with the providers ([`crate::providers::CloudType`]).

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
