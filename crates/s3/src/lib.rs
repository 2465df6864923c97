//! The S3 staging area of staged transfers (wire reference §2.4): a bucket per user with an
//! expiry rule, multipart uploads, and SigV4-presigned URLs for the client (public endpoint)
//! and for the transfer job on the cluster (private endpoint). Signing is aws-sigv4's; this
//! crate only builds S3's requests and reads its answers.

mod url;
mod xml;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningInstructions, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use ironcrest_config::S3Config;
use md5::{Digest, Md5};

/// Longest validity SigV4 allows for a presigned URL.
pub const MAX_PRESIGN_TTL: u64 = 7 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("The S3 storage at {endpoint} could not be reached: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error("The S3 storage refused {operation} ({status} {code}): {message}")]
    Refused {
        operation: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// A user name that cannot name a bucket (S3: 3–63 of `a-z0-9.-`).
    #[error("The user name '{0}' cannot be used as an S3 bucket name")]
    InvalidBucket(String),
    #[error("Signing an S3 request failed: {0}")]
    Signing(String),
}

/// Which of the store's two addresses a URL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Reached from Ironcrest and from the cluster's compute nodes.
    Private,
    /// Reached by API clients.
    Public,
}

/// An object in the staging area: `<bucket>/<uuid>/<file name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    pub bucket: String,
    pub key: String,
}

impl StagedObject {
    /// The object for `file_name` in `bucket` under `id`: a fresh UUID so uploads never
    /// collide, or one a retried request derives again to name the same object.
    pub fn new(bucket: &str, id: uuid::Uuid, file_name: &str) -> Self {
        Self {
            bucket: bucket.to_string(),
            key: format!("{id}/{file_name}"),
        }
    }
}

/// Pages of one listing read at most (S3 answers up to 1,000 entries a page).
pub const MAX_LIST_PAGES: usize = 10;

/// A multipart upload not yet completed or aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInProgress {
    pub key: String,
    pub upload_id: String,
    /// When it was started, epoch seconds.
    pub initiated: Option<i64>,
}

/// An object in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
    /// Epoch seconds.
    pub last_modified: Option<i64>,
}

/// A part uploaded to a multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub number: u64,
    pub size: u64,
    /// Epoch seconds.
    pub last_modified: Option<i64>,
}

/// An S3 time (ISO 8601, `2026-12-07T19:00:00.000Z`) as epoch seconds.
fn epoch(time: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|time| time.timestamp())
}

/// An S3 answer's XML document, or `UnreadableAnswer`.
fn read<T: serde::de::DeserializeOwned>(
    operation: &'static str,
    body: &[u8],
) -> Result<T, S3Error> {
    quick_xml::de::from_reader(body).map_err(|err| S3Error::Refused {
        operation,
        status: 200,
        code: "UnreadableAnswer".into(),
        message: err.to_string(),
    })
}

/// HTTP methods of the presigned URLs.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

pub struct S3Client {
    http: reqwest::Client,
    private_url: String,
    public_url: String,
    region: String,
    credentials: Credentials,
    tenant: Option<String>,
    ttl: Duration,
    lifecycle_days: u32,
    cors_origins: Vec<String>,
}

impl S3Client {
    pub fn new(config: &S3Config, request_timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .build()
            .expect("a plain HTTP client builds");
        Self {
            http,
            private_url: config
                .private_url
                .expose()
                .trim_end_matches('/')
                .to_string(),
            public_url: config.public_url.trim_end_matches('/').to_string(),
            region: config.region.clone(),
            credentials: Credentials::new(
                config.access_key_id.expose(),
                config.secret_access_key.expose(),
                None,
                None,
                "ironcrest-config",
            ),
            tenant: config.tenant.clone(),
            ttl: Duration::from_secs(config.ttl),
            lifecycle_days: config.bucket_lifecycle_configuration.days,
            cors_origins: config.cors_origins.clone(),
        }
    }

    /// How long presigned URLs stay valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The bucket of `username`, which FirecREST names after the user.
    pub fn bucket_for(username: &str) -> Result<String, S3Error> {
        let valid = (3..=63).contains(&username.len())
            && username
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && username.as_bytes()[0].is_ascii_alphanumeric()
            && username.as_bytes()[username.len() - 1].is_ascii_alphanumeric();
        if valid {
            Ok(username.to_string())
        } else {
            Err(S3Error::InvalidBucket(username.to_string()))
        }
    }

    /// Creates `bucket` if it does not exist yet, with the expiry rule that removes staged
    /// objects (and abandoned uploads) after the configured number of days; with
    /// `cors_origins`, (re)sets the CORS rule that lets those pages upload to it.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        self.create_bucket(bucket).await?;
        if self.cors_origins.is_empty() {
            return Ok(());
        }
        let cors = xml::cors(&self.cors_origins).into_bytes();
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&cors));
        self.send(
            "PutBucketCors",
            "PUT",
            &format!("{}?cors=", self.bucket_url(bucket)),
            &[("content-md5", md5.as_str())],
            cors,
        )
        .await?;
        Ok(())
    }

    async fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let head = self
            .send(
                "HeadBucket",
                "HEAD",
                &self.bucket_url(bucket),
                &[],
                Vec::new(),
            )
            .await;
        match head {
            Ok(_) => return Ok(()),
            Err(S3Error::Refused { status: 404, .. }) => {}
            Err(err) => return Err(err),
        }
        let body = if self.region == "us-east-1" {
            Vec::new()
        } else {
            xml::create_bucket(&self.region).into_bytes()
        };
        match self
            .send("CreateBucket", "PUT", &self.bucket_url(bucket), &[], body)
            .await
        {
            Ok(_) => {}
            // Another request created it first; that one sets the rule.
            Err(S3Error::Refused { code, .. }) if code == "BucketAlreadyOwnedByYou" => {
                return Ok(());
            }
            Err(err) => return Err(err),
        }
        let lifecycle = xml::lifecycle(self.lifecycle_days).into_bytes();
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&lifecycle));
        self.send(
            "PutBucketLifecycleConfiguration",
            "PUT",
            &format!("{}?lifecycle=", self.bucket_url(bucket)),
            &[("content-md5", md5.as_str())],
            lifecycle,
        )
        .await?;
        Ok(())
    }

    /// Starts a multipart upload and returns its upload id.
    pub async fn create_multipart_upload(&self, object: &StagedObject) -> Result<String, S3Error> {
        let url = format!("{}?uploads=", self.object_url(Endpoint::Private, object));
        let body = self
            .send("CreateMultipartUpload", "POST", &url, &[], Vec::new())
            .await?;
        let started: xml::InitiateMultipartUploadResult = read("CreateMultipartUpload", &body)?;
        Ok(started.upload_id)
    }

    /// The ids of `object`'s multipart uploads in progress (none once completed or
    /// aborted).
    pub async fn multipart_uploads(&self, object: &StagedObject) -> Result<Vec<String>, S3Error> {
        // A prefix also matches longer keys.
        Ok(self
            .uploads_in_progress(&object.bucket, &object.key)
            .await?
            .into_iter()
            .filter(|upload| upload.key == object.key)
            .map(|upload| upload.upload_id)
            .collect())
    }

    /// The multipart uploads in progress in `bucket` whose key starts with `prefix`; none
    /// in a bucket that does not exist. At most [`MAX_LIST_PAGES`] pages of S3's answer.
    pub async fn uploads_in_progress(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<UploadInProgress>, S3Error> {
        const OPERATION: &str = "ListMultipartUploads";
        let mut uploads = Vec::new();
        let mut marker: Option<(String, String)> = None;
        for _ in 0..MAX_LIST_PAGES {
            let mut query = vec![("prefix", prefix), ("uploads", "")];
            if let Some((key, upload_id)) = &marker {
                query.extend([
                    ("key-marker", key.as_str()),
                    ("upload-id-marker", upload_id),
                ]);
            }
            let url = format!("{}?{}", self.bucket_url(bucket), url::encode_query(query));
            let Some(body) = self.list(OPERATION, &url).await? else {
                break;
            };
            let page: xml::ListMultipartUploadsResult = read(OPERATION, &body)?;
            uploads.extend(page.upload.into_iter().map(|upload| UploadInProgress {
                key: upload.key,
                upload_id: upload.upload_id,
                initiated: upload.initiated.as_deref().and_then(epoch),
            }));
            marker = page.next_key_marker.zip(page.next_upload_id_marker);
            if !page.is_truncated || marker.is_none() {
                break;
            }
        }
        Ok(uploads)
    }

    /// The objects in `bucket` whose key starts with `prefix`; none in a bucket that does
    /// not exist. At most [`MAX_LIST_PAGES`] pages of S3's answer.
    pub async fn objects(&self, bucket: &str, prefix: &str) -> Result<Vec<StoredObject>, S3Error> {
        const OPERATION: &str = "ListObjectsV2";
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(token) = &token {
                query.push(("continuation-token", token.as_str()));
            }
            let url = format!("{}?{}", self.bucket_url(bucket), url::encode_query(query));
            let Some(body) = self.list(OPERATION, &url).await? else {
                break;
            };
            let page: xml::ListBucketResult = read(OPERATION, &body)?;
            objects.extend(page.contents.into_iter().map(|object| StoredObject {
                key: object.key,
                size: object.size,
                last_modified: object.last_modified.as_deref().and_then(epoch),
            }));
            token = page.next_continuation_token;
            if !page.is_truncated || token.is_none() {
                break;
            }
        }
        Ok(objects)
    }

    /// The parts already uploaded to a multipart upload in progress. At most
    /// [`MAX_LIST_PAGES`] pages of S3's answer (1,000 parts each).
    pub async fn parts(
        &self,
        object: &StagedObject,
        upload_id: &str,
    ) -> Result<Vec<UploadedPart>, S3Error> {
        const OPERATION: &str = "ListParts";
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let mut query = vec![("uploadId", upload_id)];
            if let Some(marker) = &marker {
                query.push(("part-number-marker", marker.as_str()));
            }
            let url = format!(
                "{}?{}",
                self.object_url(Endpoint::Private, object),
                url::encode_query(query)
            );
            let body = self.send(OPERATION, "GET", &url, &[], Vec::new()).await?;
            let page: xml::ListPartsResult = read(OPERATION, &body)?;
            parts.extend(page.part.into_iter().map(|part| UploadedPart {
                number: part.part_number,
                size: part.size,
                last_modified: part.last_modified.as_deref().and_then(epoch),
            }));
            marker = page.next_part_number_marker;
            if !page.is_truncated || marker.is_none() {
                break;
            }
        }
        Ok(parts)
    }

    /// A listing's body; `None` when the bucket does not exist (nothing was ever staged).
    async fn list(&self, operation: &'static str, url: &str) -> Result<Option<Vec<u8>>, S3Error> {
        match self.send(operation, "GET", url, &[], Vec::new()).await {
            Ok(body) => Ok(Some(body)),
            Err(S3Error::Refused { code, .. }) if code == "NoSuchBucket" => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Abandons a multipart upload (its parts are dropped).
    pub async fn abort_multipart_upload(
        &self,
        object: &StagedObject,
        upload_id: &str,
    ) -> Result<(), S3Error> {
        let url = format!(
            "{}?{}",
            self.object_url(Endpoint::Private, object),
            url::encode_query([("uploadId", upload_id)])
        );
        self.send("AbortMultipartUpload", "DELETE", &url, &[], Vec::new())
            .await
            .map(drop)
    }

    /// Whether `object` is stored (uploaded whole, or a completed multipart upload).
    pub async fn object_exists(&self, object: &StagedObject) -> Result<bool, S3Error> {
        let url = self.object_url(Endpoint::Private, object);
        match self.send("HeadObject", "HEAD", &url, &[], Vec::new()).await {
            Ok(_) => Ok(true),
            Err(S3Error::Refused { status: 404, .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Deletes `object`; one that is not there is no error (S3 answers 204 either way).
    pub async fn delete_object(&self, object: &StagedObject) -> Result<(), S3Error> {
        let url = self.object_url(Endpoint::Private, object);
        self.send("DeleteObject", "DELETE", &url, &[], Vec::new())
            .await
            .map(drop)
    }

    /// Lists the buckets: the health probe, since it needs nothing but valid credentials.
    pub async fn probe(&self) -> Result<(), S3Error> {
        let url = format!("{}/", self.private_url);
        self.send("ListBuckets", "GET", &url, &[], Vec::new())
            .await
            .map(drop)
    }

    /// A presigned URL for `method` on `object`, with S3 sub-resource `query` such as
    /// `uploadId` and `partNumber`; valid for the configured TTL.
    pub fn presign(
        &self,
        endpoint: Endpoint,
        method: Method,
        object: &StagedObject,
        query: &[(&str, &str)],
    ) -> Result<String, S3Error> {
        let base = self.object_url(endpoint, object);
        let unsigned = if query.is_empty() {
            base
        } else {
            format!("{base}?{}", url::encode_query(query.iter().copied()))
        };
        let instructions = self.instructions(
            SignatureLocation::QueryParams,
            method.as_str(),
            &unsigned,
            &[],
            SignableBody::UnsignedPayload,
        )?;
        let signature = url::encode_query(
            instructions
                .params()
                .iter()
                .map(|(name, value)| (*name, value.as_ref())),
        );
        let separator = if query.is_empty() { '?' } else { '&' };
        Ok(format!("{unsigned}{separator}{signature}"))
    }

    /// What SigV4 adds to a request: query parameters for a presigned URL, headers otherwise.
    fn instructions(
        &self,
        location: SignatureLocation,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: SignableBody<'_>,
    ) -> Result<SigningInstructions, S3Error> {
        let signing_error = |err: &dyn std::fmt::Display| S3Error::Signing(err.to_string());
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(self.settings(location))
            .build()
            .map_err(|err| signing_error(&err))?
            .into();
        let request = SignableRequest::new(method, url, headers.iter().copied(), body)
            .map_err(|err| signing_error(&err))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|err| signing_error(&err))?
            .into_parts();
        Ok(instructions)
    }

    fn settings(&self, location: SignatureLocation) -> SigningSettings {
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent: no second encoding, no `.`/`..` folding.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.signature_location = location;
        match location {
            SignatureLocation::QueryParams => settings.expires_in = Some(self.ttl),
            SignatureLocation::Headers => {
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            }
            _ => {}
        }
        settings
    }

    fn bucket_segment(&self, bucket: &str) -> String {
        match &self.tenant {
            Some(tenant) => format!("{tenant}:{bucket}"),
            None => bucket.to_string(),
        }
    }

    fn bucket_url(&self, bucket: &str) -> String {
        format!("{}/{}", self.private_url, self.bucket_segment(bucket))
    }

    fn object_url(&self, endpoint: Endpoint, object: &StagedObject) -> String {
        let base = match endpoint {
            Endpoint::Private => &self.private_url,
            Endpoint::Public => &self.public_url,
        };
        format!(
            "{base}/{}/{}",
            self.bucket_segment(&object.bucket),
            url::encode_key(&object.key)
        )
    }

    /// Sends a header-signed request to the private endpoint; any non-2xx is `Refused`
    /// with S3's error code. Counted in `ironcrest_s3_requests_total` and timed in
    /// `ironcrest_s3_request_duration_seconds` by operation and outcome.
    #[tracing::instrument(
        name = "s3.request",
        level = "debug",
        skip_all,
        fields(s3.operation = operation, http.request.method = method)
    )]
    async fn send(
        &self,
        operation: &'static str,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Vec<u8>, S3Error> {
        let started = std::time::Instant::now();
        let result = self.exchange(operation, method, url, headers, body).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(S3Error::Unreachable { .. }) => "unreachable",
            Err(S3Error::Refused { .. }) => "refused",
            Err(S3Error::InvalidBucket(_)) => "invalid_bucket",
            Err(S3Error::Signing(_)) => "signing",
        };
        let labels = [("operation", operation), ("outcome", outcome)];
        metrics::counter!("ironcrest_s3_requests_total", &labels).increment(1);
        metrics::histogram!("ironcrest_s3_request_duration_seconds", &labels)
            .record(started.elapsed());
        result
    }

    async fn exchange(
        &self,
        operation: &'static str,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Vec<u8>, S3Error> {
        let instructions = self.instructions(
            SignatureLocation::Headers,
            method,
            url,
            headers,
            SignableBody::Bytes(&body),
        )?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a standard method");
        let mut builder = self.http.request(method, url);
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            builder = builder.header(name, value);
        }
        let response = builder
            .body(body)
            .send()
            .await
            .map_err(|err| S3Error::Unreachable {
                endpoint: self.private_url.clone(),
                message: err.to_string(),
            })?;
        let status = response.status();
        let answer = response.bytes().await.map_err(|err| S3Error::Unreachable {
            endpoint: self.private_url.clone(),
            message: err.to_string(),
        })?;
        if status.is_success() {
            return Ok(answer.to_vec());
        }
        let error: Option<xml::ErrorBody> = quick_xml::de::from_reader(&answer[..]).ok();
        let (code, message) = match error {
            Some(error) => (error.code, error.message),
            None => (
                status.canonical_reason().unwrap_or("error").to_string(),
                String::new(),
            ),
        };
        tracing::debug!(operation, %status, %code, "S3 refused a request");
        Err(S3Error::Refused {
            operation,
            status: status.as_u16(),
            code,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_times_are_epoch_seconds() {
        assert_eq!(epoch("2026-12-07T19:00:00.000Z"), Some(1_796_670_000));
        assert_eq!(epoch("2026-12-07T19:00:00Z"), Some(1_796_670_000));
        assert_eq!(epoch("yesterday"), None);
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert_eq!(S3Client::bucket_for("fireuser").unwrap(), "fireuser");
        assert_eq!(S3Client::bucket_for("user-1.x").unwrap(), "user-1.x");
        for bad in [
            "ab",
            "Fireuser",
            "fire_user",
            "-user",
            "user-",
            &"a".repeat(64),
        ] {
            assert!(S3Client::bucket_for(bad).is_err(), "{bad}");
        }
    }
}
