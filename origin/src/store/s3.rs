//! Chunks in any S3-compatible object store (AWS S3, Garage, MinIO, Ceph RGW, R2…) through
//! `object_store`, with path-style addressing.
//!
//! Where and as whom come from the standard variables: `AWS_ENDPOINT_URL` (or
//! `AWS_ENDPOINT`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and
//! `AWS_ALLOW_HTTP` (`true` for a plain-HTTP endpoint on a private network). The bucket and
//! an optional key prefix come from `--blobs s3://BUCKET[/PREFIX]`; chunk `ID` is stored at
//! `PREFIX/chunks/ID[..2]/ID`.
//!
//! Requests are retried a little (a blip should not fail an upload) but not for long: when
//! the store is down, calls fail within seconds with [`BlobError::Unavailable`], which the API
//! answers `503`, and an upload publishes nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use protocol::ChunkId;

use super::blobs::{BlobError, BlobStore};

/// An S3 bucket (and key prefix) holding chunks.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    describe: String,
}

/// Parses `s3://BUCKET[/PREFIX]` into the bucket and the prefix (without slashes at its ends).
pub fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} is not an s3://BUCKET[/PREFIX] URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(format!(
            "{bucket:?} is not a bucket name (3 to 63 of a-z, 0-9, '-' and '.')"
        ));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// Where the object store is and as whom to sign: the standard `AWS_*` variables
/// ([`S3Access::from_env`]), or given (tests, tools).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Access {
    /// `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`): the store's base URL; AWS itself when absent.
    pub endpoint: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// `AWS_REGION` (Garage's default is `garage`).
    pub region: Option<String>,
    /// `AWS_ALLOW_HTTP=true`: allow a plain-HTTP endpoint.
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "…"),
            )
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl S3Access {
    /// From the standard variables.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        Self {
            endpoint: var("AWS_ENDPOINT_URL").or_else(|| var("AWS_ENDPOINT")),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            allow_http: var("AWS_ALLOW_HTTP").is_some_and(|value| value == "true" || value == "1"),
        }
    }
}

impl S3Blobs {
    /// The bucket `bucket` under `prefix`, reached and signed for as `access` says.
    pub fn open(bucket: &str, prefix: &str, access: &S3Access) -> Result<Self, BlobError> {
        let endpoint = access.endpoint.clone();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(5),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_timeout(Duration::from_secs(30)),
            );
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = &access.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &access.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(region) = &access.region {
            builder = builder.with_region(region);
        }
        builder = builder.with_allow_http(access.allow_http);
        let store = builder
            .build()
            .map_err(|error| BlobError::Backend(format!("S3 settings: {error}")))?;
        let shown_prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("/{prefix}")
        };
        Ok(Self {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_string(),
            describe: format!(
                "s3://{bucket}{shown_prefix} at {}",
                endpoint.as_deref().unwrap_or("AWS")
            ),
        })
    }

    fn path(&self, id: &ChunkId) -> Path {
        let hex = id.to_hex();
        if self.prefix.is_empty() {
            Path::from(format!("chunks/{}/{hex}", &hex[..2]))
        } else {
            Path::from(format!("{}/chunks/{}/{hex}", self.prefix, &hex[..2]))
        }
    }
}

/// An `object_store` error as a [`BlobError`]: refusals of the credentials are backend
/// errors; everything else (connection refused, timeouts, 5xx after retries) is an outage.
fn s3_error(error: object_store::Error) -> BlobError {
    match error {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented => BlobError::Backend(error.to_string()),
        other => BlobError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, id: &ChunkId, data: Bytes) -> Result<(), BlobError> {
        self.store
            .put(&self.path(id), data.into())
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    async fn get(&self, id: &ChunkId) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(&self.path(id)).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(s3_error)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(s3_error(error)),
        }
    }

    async fn remove(&self, id: &ChunkId) -> Result<(), BlobError> {
        match self.store.delete(&self.path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(s3_error(error)),
        }
    }

    async fn contains(&self, id: &ChunkId) -> Result<bool, BlobError> {
        match self.store.head(&self.path(id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(s3_error(error)),
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn blob_urls_name_a_bucket_and_a_prefix() {
        assert_eq!(
            parse_url("s3://chorus").unwrap(),
            ("chorus".into(), String::new())
        );
        assert_eq!(
            parse_url("s3://chorus/eu/origin-1/").unwrap(),
            ("chorus".into(), "eu/origin-1".into())
        );
        assert!(parse_url("https://chorus").is_err());
        assert!(parse_url("s3://Upper").is_err());
        assert!(parse_url("s3://ab").is_err());
    }
}
