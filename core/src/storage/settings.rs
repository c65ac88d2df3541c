//! The `storage` section of the settings: which backend keeps the media,
//! and how to reach an S3-compatible bucket.

use serde::{Deserialize, Serialize};

use super::Backend;
use crate::model::settings::InvalidSetting;

/// `storage`: where media bytes live. Read at start: a change applies to
/// the next start of each process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `local` (the download directory, the default) or `s3`.
    pub backend: Backend,
    /// The bucket, when `backend` is `s3`.
    pub s3: S3Settings,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            s3: S3Settings::default(),
        }
    }
}

/// `storage.s3`: an S3-compatible bucket (MinIO, Garage, SeaweedFS, Ceph
/// RGW, AWS S3, Backblaze B2, Cloudflare R2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// The service's URL (`http://minio:9000`); empty for AWS itself.
    pub endpoint: String,
    /// The bucket's name (required with `backend = "s3"`).
    pub bucket: String,
    /// The region (`us-east-1` for most self-hosted servers).
    pub region: String,
    /// Address the bucket as `endpoint/bucket/key` (self-hosted servers)
    /// rather than `bucket.endpoint/key`.
    pub path_style: bool,
    /// Keys start with this (`media/`), so one bucket can hold more than mediadl.
    pub prefix: String,
    /// The access key id; empty to use `AWS_ACCESS_KEY_ID` from the environment.
    pub access_key_id: String,
    /// The secret key (masked on the way out); empty to use
    /// `AWS_SECRET_ACCESS_KEY` from the environment.
    pub secret_access_key: String,
    /// Answer `GET /downloads/{id}/file` with a redirect to a presigned URL
    /// instead of streaming the bytes through mediadl.
    pub presigned_redirect: bool,
    /// How long a presigned URL stays valid (60–604800 seconds).
    pub presigned_ttl_seconds: u32,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            path_style: true,
            prefix: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            presigned_redirect: false,
            presigned_ttl_seconds: 3600,
        }
    }
}

impl StorageSettings {
    /// Checks what can be checked without reaching the bucket.
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming the first unacceptable field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let s3 = &self.s3;
        if self.backend == Backend::S3 && s3.bucket.trim().is_empty() {
            return Err(InvalidSetting {
                field: "storage.s3.bucket".into(),
                reason: "required when storage.backend is \"s3\"".into(),
            });
        }
        if !s3.endpoint.is_empty() {
            let scheme = url::Url::parse(&s3.endpoint).map(|url| url.scheme().to_owned());
            if !matches!(scheme.as_deref(), Ok("http" | "https")) {
                return Err(InvalidSetting {
                    field: "storage.s3.endpoint".into(),
                    reason: format!("not an http(s) URL: {:?}", s3.endpoint),
                });
            }
        }
        let prefix = s3.prefix.trim_matches('/');
        if !prefix.is_empty() && super::StorageKey::new(prefix).is_err() {
            return Err(InvalidSetting {
                field: "storage.s3.prefix".into(),
                reason: "must be `/`-separated names without `.` or `..`".into(),
            });
        }
        if !(60..=604_800).contains(&s3.presigned_ttl_seconds) {
            return Err(InvalidSetting {
                field: "storage.s3.presigned_ttl_seconds".into(),
                reason: format!(
                    "must be between 60 and 604800, got {}",
                    s3.presigned_ttl_seconds
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_needs_a_bucket_and_a_usable_endpoint() {
        assert!(StorageSettings::default().validate().is_ok());
        let mut settings = StorageSettings {
            backend: Backend::S3,
            ..StorageSettings::default()
        };
        let field = |s: &StorageSettings| s.validate().unwrap_err().field;
        assert_eq!(field(&settings), "storage.s3.bucket");
        settings.s3.bucket = "media".into();
        assert!(settings.validate().is_ok());
        settings.s3.endpoint = "ftp://x".into();
        assert_eq!(field(&settings), "storage.s3.endpoint");
        settings.s3.endpoint = "http://127.0.0.1:9000".into();
        settings.s3.prefix = "a/../b".into();
        assert_eq!(field(&settings), "storage.s3.prefix");
        settings.s3.prefix = "/mediadl/".into();
        settings.s3.presigned_ttl_seconds = 5;
        assert_eq!(field(&settings), "storage.s3.presigned_ttl_seconds");
    }
}
