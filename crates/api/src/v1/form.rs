//! v1's request parameters: a query string, or a form body (`application/x-www-form-urlencoded`
//! as pyfirecrest sends it, or `multipart/form-data`), read into [`Fields`] of bytes, so a
//! path that is not UTF-8 reaches the cluster unchanged and is never replaced by U+FFFD. A
//! value read as text that is not UTF-8 is refused, naming the field.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use super::error::V1Error;
use crate::AppState;
use crate::error::ApiError;
use crate::multipart::{FilePart, MultipartError};
use crate::routes::filesystem::percent_decode;

/// The most a form's fields may hold (a job script uploaded with `jobs/upload` is a file
/// part and does not count).
pub const MAX_FIELDS: usize = 256 * 1024;

/// Named values, in the order the client sent them; the first of a name wins.
#[derive(Debug, Default)]
pub struct Fields(pub Vec<(String, Vec<u8>)>);

impl Fields {
    /// `a=1&b=%FF` → `[("a", b"1"), ("b", b"\xff")]`; `+` is a space.
    pub fn from_urlencoded(text: &[u8]) -> Self {
        Fields(
            text.split(|b| *b == b'&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = match pair.iter().position(|b| *b == b'=') {
                        Some(i) => (&pair[..i], &pair[i + 1..]),
                        None => (pair, &b""[..]),
                    };
                    let name = String::from_utf8_lossy(&percent_decode(name)).into_owned();
                    (name, percent_decode(value))
                })
                .collect(),
        )
    }

    /// The value of `name`, if sent.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_slice())
    }

    /// The value of `name` as text; not UTF-8 is a 400 naming the field.
    pub fn text(&self, name: &str) -> Result<Option<&str>, ApiError> {
        self.bytes(name)
            .map(|value| std::str::from_utf8(value).map_err(|_| invalid(name, "is not UTF-8 text")))
            .transpose()
    }

    /// Like [`Fields::text`], an empty value being absent (httpx sends `None` as empty).
    pub fn present(&self, name: &str) -> Result<Option<&str>, ApiError> {
        Ok(self.text(name)?.filter(|value| !value.is_empty()))
    }

    /// A required value, as bytes (a path): absent or empty is a 400 naming it.
    pub fn required(&self, name: &str) -> Result<&[u8], ApiError> {
        self.bytes(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| invalid(name, "is required"))
    }

    /// A boolean as Python clients write one (`True`, `false`, `1`, …); absent or empty is
    /// `false`.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.present(name)? {
            None => Ok(false),
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
                "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
                _ => Err(invalid(name, &format!("is not a boolean: {text:?}"))),
            },
        }
    }

    /// A non-negative whole number, if sent.
    pub fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.present(name)?
            .map(|text| {
                text.parse()
                    .map_err(|_| invalid(name, &format!("is not a whole number: {text:?}")))
            })
            .transpose()
    }
}

/// A 400 naming `field`, as v2's validation errors do.
pub fn invalid(field: &str, problem: &str) -> ApiError {
    ApiError::Validation {
        location: "form",
        name: field.to_string(),
        message: format!("'{field}' {problem}."),
    }
}

/// The request's query string as [`Fields`].
pub struct V1Query(pub Fields);

impl<S: Send + Sync> FromRequestParts<S> for V1Query {
    type Rejection = V1Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, V1Error> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(V1Query(Fields::from_urlencoded(query.as_bytes())))
    }
}

/// The request's form body as [`Fields`] (a form with a file is refused: only
/// `utilities/upload` and `compute/jobs/upload` take one, and they read it themselves).
pub struct V1Form(pub Fields);

impl FromRequest<AppState> for V1Form {
    type Rejection = V1Error;

    async fn from_request(request: Request, _state: &AppState) -> Result<Self, V1Error> {
        let refused = |message: String| {
            V1Error::new(
                "Error reading the form",
                ApiError::Http {
                    status: StatusCode::BAD_REQUEST,
                    message,
                },
            )
        };
        let headers = request.headers().clone();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let (fields, file) = FilePart::with_fields(&headers, request.into_body(), MAX_FIELDS)
                .await
                .map_err(|MultipartError(message)| refused(message))?;
            if file.is_some() {
                return Err(refused("This operation takes no file.".into()));
            }
            return Ok(V1Form(Fields(fields)));
        }
        let body = axum::body::to_bytes(request.into_body(), MAX_FIELDS)
            .await
            .map_err(|_| refused(format!("The form exceeds {MAX_FIELDS} bytes.")))?;
        Ok(V1Form(Fields::from_urlencoded(&body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bytes_and_text_is_checked() {
        let fields = Fields::from_urlencoded(b"targetPath=%2Fhome%2F%FF+x&p=True&n=&n=2&bad=%FF");
        assert_eq!(fields.bytes("targetPath"), Some(&b"/home/\xff x"[..]));
        assert!(fields.flag("p").unwrap());
        assert!(!fields.flag("missing").unwrap());
        assert_eq!(
            fields.number("n").unwrap(),
            None,
            "the first of a name wins"
        );
        assert!(fields.text("bad").is_err());
        assert!(fields.required("n").is_err());
        assert!(Fields::from_urlencoded(b"p=maybe").flag("p").is_err());
    }
}
