//! The few S3 XML documents Ironcrest reads and writes.

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct InitiateMultipartUploadResult {
    pub upload_id: String,
}

/// `GET /{bucket}?uploads`: the multipart uploads in progress (those under a prefix), a
/// page of them.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListMultipartUploadsResult {
    #[serde(default)]
    pub upload: Vec<Upload>,
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub next_key_marker: Option<String>,
    #[serde(default)]
    pub next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Upload {
    pub key: String,
    pub upload_id: String,
    #[serde(default)]
    pub initiated: Option<String>,
}

/// `GET /{bucket}?list-type=2`: a page of the objects (under a prefix).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListBucketResult {
    #[serde(default)]
    pub contents: Vec<Contents>,
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub next_continuation_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Contents {
    pub key: String,
    pub size: u64,
    #[serde(default)]
    pub last_modified: Option<String>,
}

/// `GET /{bucket}/{key}?uploadId=…`: a page of the parts of a multipart upload.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListPartsResult {
    #[serde(default)]
    pub part: Vec<Part>,
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub next_part_number_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Part {
    pub part_number: u64,
    pub size: u64,
    #[serde(default)]
    pub last_modified: Option<String>,
}

/// S3's error body, e.g. `<Error><Code>NoSuchBucket</Code><Message>…</Message></Error>`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Serialize)]
#[serde(rename = "LifecycleConfiguration", rename_all = "PascalCase")]
pub(crate) struct LifecycleConfiguration {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub rule: Vec<LifecycleRule>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LifecycleRule {
    #[serde(rename = "ID")]
    pub id: &'static str,
    pub filter: LifecycleFilter,
    pub status: &'static str,
    pub expiration: Expiration,
    pub abort_incomplete_multipart_upload: AbortIncomplete,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LifecycleFilter {
    pub prefix: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Expiration {
    pub days: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AbortIncomplete {
    pub days_after_initiation: u32,
}

#[derive(Serialize)]
#[serde(rename = "CreateBucketConfiguration", rename_all = "PascalCase")]
pub(crate) struct CreateBucketConfiguration<'a> {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub location_constraint: &'a str,
}

#[derive(Serialize)]
#[serde(rename = "CORSConfiguration", rename_all = "PascalCase")]
pub(crate) struct CorsConfiguration<'a> {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "CORSRule")]
    pub rule: CorsRule<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CorsRule<'a> {
    pub allowed_origin: &'a [String],
    pub allowed_method: &'static [&'static str],
    pub allowed_header: &'static [&'static str],
    pub expose_header: &'static [&'static str],
    pub max_age_seconds: u32,
}

pub(crate) const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

pub(crate) fn lifecycle(days: u32) -> String {
    let document = LifecycleConfiguration {
        xmlns: NAMESPACE,
        rule: vec![LifecycleRule {
            id: "ExpireObjects",
            filter: LifecycleFilter { prefix: "" },
            status: "Enabled",
            expiration: Expiration { days },
            // Parts of an upload that was never completed expire too.
            abort_incomplete_multipart_upload: AbortIncomplete {
                days_after_initiation: days,
            },
        }],
    };
    quick_xml::se::to_string(&document).expect("a fixed document serialises")
}

/// A CORS rule letting pages of `origins` upload parts and complete uploads with presigned
/// URLs, and read each part's `ETag` (which completing needs).
pub(crate) fn cors(origins: &[String]) -> String {
    quick_xml::se::to_string(&CorsConfiguration {
        xmlns: NAMESPACE,
        rule: CorsRule {
            allowed_origin: origins,
            allowed_method: &["GET", "PUT", "POST"],
            allowed_header: &["*"],
            expose_header: &["ETag"],
            max_age_seconds: 3600,
        },
    })
    .expect("a CORS document serialises")
}

pub(crate) fn create_bucket(region: &str) -> String {
    quick_xml::se::to_string(&CreateBucketConfiguration {
        xmlns: NAMESPACE,
        location_constraint: region,
    })
    .expect("a fixed document serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_document_lets_the_origins_upload_and_read_etags() {
        assert_eq!(
            cors(&["https://ui.example".into(), "http://a&b:*".into()]),
            "<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><CORSRule><AllowedOrigin>https://ui.example</AllowedOrigin><AllowedOrigin>http://a&amp;b:*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod><AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3600</MaxAgeSeconds></CORSRule></CORSConfiguration>"
        );
    }

    #[test]
    fn lifecycle_document_expires_objects_and_incomplete_uploads() {
        assert_eq!(
            lifecycle(10),
            "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ID>ExpireObjects</ID><Filter><Prefix/></Filter><Status>Enabled</Status><Expiration><Days>10</Days></Expiration><AbortIncompleteMultipartUpload><DaysAfterInitiation>10</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>"
        );
    }

    #[test]
    fn reads_upload_ids_and_errors() {
        let started: InitiateMultipartUploadResult = quick_xml::de::from_str(
            r#"<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>fireuser</Bucket><Key>k/a b</Key><UploadId>Zm9v+YmFy/ZQ==</UploadId></InitiateMultipartUploadResult>"#,
        )
        .expect("parses");
        assert_eq!(started.upload_id, "Zm9v+YmFy/ZQ==");
        let error: ErrorBody = quick_xml::de::from_str(
            "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>x</BucketName></Error>",
        )
        .expect("parses");
        assert_eq!(error.code, "NoSuchBucket");
    }

    #[test]
    fn reads_the_uploads_in_progress() {
        let listed: ListMultipartUploadsResult = quick_xml::de::from_str(
            r#"<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>fireuser</Bucket><Prefix>u/a</Prefix><Upload><Key>u/a</Key><UploadId>one</UploadId><Initiated>2026-12-07T19:00:00.000Z</Initiated></Upload><Upload><Key>u/ab</Key><UploadId>two</UploadId></Upload></ListMultipartUploadsResult>"#,
        )
        .expect("parses");
        let uploads: Vec<_> = listed
            .upload
            .iter()
            .map(|u| (u.key.as_str(), u.upload_id.as_str()))
            .collect();
        assert_eq!(uploads, [("u/a", "one"), ("u/ab", "two")]);
        let none: ListMultipartUploadsResult = quick_xml::de::from_str(
            "<ListMultipartUploadsResult><Bucket>b</Bucket></ListMultipartUploadsResult>",
        )
        .expect("parses");
        assert!(none.upload.is_empty());
        assert!(!none.is_truncated);
        let truncated: ListMultipartUploadsResult = quick_xml::de::from_str(
            "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated><NextKeyMarker>k</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker></ListMultipartUploadsResult>",
        )
        .expect("parses");
        assert!(truncated.is_truncated);
        assert_eq!(truncated.next_key_marker.as_deref(), Some("k"));
        assert_eq!(truncated.next_upload_id_marker.as_deref(), Some("u"));
    }

    #[test]
    fn reads_objects_and_parts() {
        let listed: ListBucketResult = quick_xml::de::from_str(
            r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>fireuser</Name><Prefix></Prefix><KeyCount>2</KeyCount><IsTruncated>false</IsTruncated><Contents><Key>u/a b</Key><LastModified>2026-12-07T19:00:00.000Z</LastModified><ETag>"x"</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>v/c</Key><Size>0</Size></Contents></ListBucketResult>"#,
        )
        .expect("parses");
        let objects: Vec<_> = listed
            .contents
            .iter()
            .map(|o| (o.key.as_str(), o.size, o.last_modified.is_some()))
            .collect();
        assert_eq!(objects, [("u/a b", 12, true), ("v/c", 0, false)]);
        let parts: ListPartsResult = quick_xml::de::from_str(
            r#"<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId><IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker><Part><PartNumber>1</PartNumber><LastModified>2026-12-07T19:00:00.000Z</LastModified><ETag>"e"</ETag><Size>5242880</Size></Part><Part><PartNumber>2</PartNumber><ETag>"f"</ETag><Size>7</Size></Part></ListPartsResult>"#,
        )
        .expect("parses");
        let sizes: Vec<_> = parts.part.iter().map(|p| (p.part_number, p.size)).collect();
        assert_eq!(sizes, [(1, 5_242_880), (2, 7)]);
        assert_eq!(parts.next_part_number_marker.as_deref(), Some("2"));
    }
}
