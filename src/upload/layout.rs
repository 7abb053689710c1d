//! Object key layout (docs/contract.md §1.3):
//! `{key_prefix}/{module dir}/{yyyy}/{mm}/{dd}/{objectId}/{nonce}.{extension}`, or the folder
//! `…/{objectId}/` with `isDir`. UTC date; the nonce is a fresh random UUID per request, and
//! the objectId is unique, so two allocations never share a key.

use time::Date;
use uuid::Uuid;

use crate::upload::module::UploadModule;

/// The module's directory.
pub fn module_dir(module: UploadModule, project_id: Option<i64>, uuid: Option<&str>) -> String {
    match module {
        UploadModule::ResourceVideo => "resource/video".into(),
        UploadModule::ResourceImage => "resource/image".into(),
        UploadModule::BsProject => format!("project/bs/{}", project_id.unwrap_or_default()),
        UploadModule::AppProject => "project/app".into(),
        UploadModule::MaterialTemplate => format!("material/template/{}", uuid.unwrap_or_default()),
        UploadModule::DirectoryTemp => "temp".into(),
    }
}

/// The full `relativePath`.
pub fn relative_path(
    key_prefix: &str,
    module_dir: &str,
    date: Date,
    object_id: i64,
    nonce: Uuid,
    extension: &str,
    is_dir: bool,
) -> String {
    let folder = format!(
        "{key_prefix}/{module_dir}/{:04}/{:02}/{:02}/{object_id}/",
        date.year(),
        u8::from(date.month()),
        date.day()
    );
    if is_dir {
        folder
    } else {
        format!("{folder}{}.{extension}", nonce.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    #[test]
    fn the_seed_example() {
        let nonce = Uuid::parse_str("0df00d20-5e55-4914-95f0-e02ff0abbfb8").unwrap();
        assert_eq!(
            relative_path(
                "test",
                &module_dir(UploadModule::ResourceVideo, None, None),
                date!(2020 - 12 - 25),
                10503,
                nonce,
                "mp4",
                false
            ),
            "test/resource/video/2020/12/25/10503/0df00d20-5e55-4914-95f0-e02ff0abbfb8.mp4"
        );
        assert_eq!(
            relative_path(
                "test",
                &module_dir(UploadModule::BsProject, Some(8357), None),
                date!(2021 - 01 - 02),
                7,
                nonce,
                "json",
                true
            ),
            "test/project/bs/8357/2021/01/02/7/"
        );
        assert_eq!(
            module_dir(UploadModule::MaterialTemplate, None, Some("ab-1")),
            "material/template/ab-1"
        );
        assert_eq!(module_dir(UploadModule::DirectoryTemp, None, None), "temp");
        assert_eq!(
            module_dir(UploadModule::AppProject, None, None),
            "project/app"
        );
        assert_eq!(
            module_dir(UploadModule::ResourceImage, None, None),
            "resource/image"
        );
    }

    proptest! {
        #[test]
        fn keys_are_well_formed(id in 1i64..i64::MAX, ext in "[a-z0-9]{1,16}", dir in any::<bool>(), pid in 1i64..1_000_000, u in "[A-Za-z0-9_-]{1,64}", m in 0usize..6) {
            let module = UploadModule::ALL[m];
            let k = relative_path("test", &module_dir(module, Some(pid), Some(&u)), date!(2024 - 02 - 29), id, Uuid::new_v4(), &ext, dir);
            prop_assert!(k.starts_with("test/"));
            prop_assert!(!k.contains("//") && !k.contains(".."));
            let id_segment = format!("/{id}/");
            prop_assert!(k.contains(&id_segment));
            let suffix = format!(".{}", ext);
            if dir { prop_assert!(k.ends_with('/')); } else { prop_assert!(k.ends_with(&suffix)); }
        }
    }
}
