//! The upload's `multipart/form-data` body, read as a stream: the `file` part's name as the
//! client meant it, and its bytes as they arrive.
//!
//! File names are decoded the way clients encode them, not the way a strict header parser
//! wants them. Browsers (WHATWG) and httpx (pyfirecrest) write `"` as `%22` and CR, LF (httpx:
//! every control byte but ESC) as `%0D`, `%0A`, …; httpx escapes `\` as `\\`; ESC and DEL
//! arrive raw. So the `filename` parameter is read like python-multipart (FirecREST v2's
//! parser) reads it — quotes stripped, `\\` and `\"` unescaped — and then the escapes clients
//! make (`%00`–`%1F`, `%22`) are undone, so that the name lands byte-exact. A name that
//! itself contains such a sequence (`100%22`) cannot be told apart and is decoded too.
//! `filename*=` (RFC 5987) wins over `filename` when both are sent.

use axum::body::{Body, BodyDataStream};
use axum::http::{HeaderMap, header};
use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use memchr::memmem;

/// The most a part's header block may take.
const MAX_HEADER_BLOCK: usize = 16 * 1024;

/// Why the body is not a form with a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartError(pub String);

/// The `file` part: its name, then its bytes through [`FilePart::chunk`].
pub struct FilePart {
    pub file_name: Vec<u8>,
    reader: Reader,
    /// `\r\n--<boundary>`, which ends the part.
    delimiter: Vec<u8>,
    done: bool,
}

struct Reader {
    body: BodyDataStream,
    buffer: BytesMut,
}

impl Reader {
    /// Reads more of the body; `false` at its end.
    async fn fill(&mut self) -> Result<bool, MultipartError> {
        match self.body.next().await {
            Some(Ok(chunk)) => {
                self.buffer.extend_from_slice(&chunk);
                Ok(true)
            }
            Some(Err(error)) => Err(MultipartError(format!(
                "The request body could not be read: {error}"
            ))),
            None => Ok(false),
        }
    }

    /// Buffers until `needle` is in the buffer and returns its offset.
    async fn find(&mut self, needle: &[u8], limit: usize) -> Result<usize, MultipartError> {
        self.find_within(needle, limit)
            .await?
            .ok_or_else(|| MultipartError("A multipart header block is too long.".into()))
    }

    /// Buffers until `needle` is in the buffer and returns its offset; `None` once more
    /// than `limit` bytes are buffered without it.
    async fn find_within(
        &mut self,
        needle: &[u8],
        limit: usize,
    ) -> Result<Option<usize>, MultipartError> {
        let mut searched = 0;
        loop {
            if let Some(at) = memmem::find(&self.buffer[searched..], needle) {
                return Ok(Some(searched + at));
            }
            searched = self.buffer.len().saturating_sub(needle.len() - 1);
            if self.buffer.len() > limit {
                return Ok(None);
            }
            if !self.fill().await? {
                return Err(incomplete());
            }
        }
    }

    /// Reads up to and past the next `needle`, dropping what comes before it as it goes, so
    /// a long preamble or a large field other than `file` is never held in memory.
    async fn skip_past(&mut self, needle: &[u8]) -> Result<(), MultipartError> {
        loop {
            if let Some(at) = memmem::find(&self.buffer, needle) {
                self.buffer.advance(at + needle.len());
                return Ok(());
            }
            let keep = needle.len() - 1;
            if self.buffer.len() > keep {
                let drop = self.buffer.len() - keep;
                self.buffer.advance(drop);
            }
            if !self.fill().await? {
                return Err(incomplete());
            }
        }
    }

    /// Buffers at least `n` bytes.
    async fn need(&mut self, n: usize) -> Result<(), MultipartError> {
        while self.buffer.len() < n {
            if !self.fill().await? {
                return Err(incomplete());
            }
        }
        Ok(())
    }
}

/// Reads `body` up to its `file` part: fields are kept (up to `limit` bytes of values) when
/// a limit is given, else skipped without being held.
async fn read_form(
    headers: &HeaderMap,
    body: Body,
    limit: Option<usize>,
) -> Result<(Fields, Option<FilePart>), MultipartError> {
    let boundary = boundary(headers)?;
    let mut reader = Reader {
        body: body.into_data_stream(),
        buffer: BytesMut::new(),
    };
    // The first boundary may follow a preamble; every later one follows a CRLF.
    let mut dash_boundary = b"--".to_vec();
    dash_boundary.extend_from_slice(&boundary);
    reader.skip_past(&dash_boundary).await?;
    let mut delimiter = b"\r\n".to_vec();
    delimiter.extend_from_slice(&dash_boundary);
    let mut fields = Fields::new();
    let mut kept = 0;
    loop {
        // After a boundary: `--` ends the form, CRLF starts a part.
        reader.need(2).await?;
        if reader.buffer.starts_with(b"--") {
            return Ok((fields, None));
        }
        let line_end = reader.find(b"\r\n", MAX_HEADER_BLOCK).await?;
        reader.buffer.advance(line_end + 2);
        let end = reader.find(b"\r\n\r\n", MAX_HEADER_BLOCK).await?;
        let block = reader.buffer.split_to(end + 4);
        let part = PartHeaders::parse(&block[..end])?;
        if part.name.as_deref() == Some(b"file".as_slice()) {
            let file = FilePart {
                file_name: part.file_name.unwrap_or_default(),
                reader,
                delimiter,
                done: false,
            };
            return Ok((fields, Some(file)));
        }
        let Some(limit) = limit else {
            reader.skip_past(&delimiter).await?;
            continue;
        };
        let too_long = || MultipartError(format!("The form's fields exceed {limit} bytes."));
        let at = reader
            .find_within(&delimiter, limit.saturating_sub(kept) + delimiter.len())
            .await?
            .ok_or_else(too_long)?;
        if kept + at > limit {
            return Err(too_long());
        }
        kept += at;
        let value = reader.buffer.split_to(at).to_vec();
        reader.buffer.advance(delimiter.len());
        let name = String::from_utf8_lossy(&part.name.unwrap_or_default()).into_owned();
        fields.push((name, value));
    }
}

fn incomplete() -> MultipartError {
    MultipartError("The multipart body ended before its closing boundary.".into())
}

/// A form's text fields (name, value) in the order they came.
pub type Fields = Vec<(String, Vec<u8>)>;

impl FilePart {
    /// Finds the `file` part of the form `body` (skipping others) and reads its headers.
    pub async fn from_body(headers: &HeaderMap, body: Body) -> Result<Self, MultipartError> {
        match read_form(headers, body, None).await? {
            (_, Some(file)) => Ok(file),
            (_, None) => Err(MultipartError("Field required: `file`.".into())),
        }
    }

    /// The fields of the form `body` that come before its `file` part (at most `limit`
    /// bytes of values in all), and that part if there is one (`None`: the form has only
    /// fields). Clients send fields first (requests, httpx); one after the file is not read.
    pub async fn with_fields(
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<(Fields, Option<Self>), MultipartError> {
        read_form(headers, body, Some(limit)).await
    }

    /// The next bytes of the file, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let buffer = &mut self.reader.buffer;
            if let Some(at) = memmem::find(buffer, &self.delimiter) {
                if at > 0 {
                    return Ok(Some(buffer.split_to(at).freeze()));
                }
                self.done = true;
                return Ok(None);
            }
            // The last bytes may begin the delimiter: keep them until more arrive.
            let safe = buffer.len().saturating_sub(self.delimiter.len() - 1);
            if safe > 0 {
                return Ok(Some(buffer.split_to(safe).freeze()));
            }
            if !self.reader.fill().await? {
                return Err(incomplete());
            }
        }
    }
}

/// The `boundary` parameter of a `multipart/form-data` content type.
fn boundary(headers: &HeaderMap) -> Result<Vec<u8>, MultipartError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    let (media_type, parameters) = split_header(content_type);
    if !media_type.eq_ignore_ascii_case(b"multipart/form-data") {
        return Err(MultipartError(
            "Expected a multipart/form-data body with a `file` field.".into(),
        ));
    }
    parameters
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"boundary"))
        .map(|(_, value)| value)
        .filter(|value| (1..=200).contains(&value.len()))
        .ok_or_else(|| MultipartError("The multipart body has no valid boundary.".into()))
}

#[derive(Default)]
struct PartHeaders {
    name: Option<Vec<u8>>,
    file_name: Option<Vec<u8>>,
}

impl PartHeaders {
    /// Header lines, leniently: any byte but CR and LF may be in a value.
    fn parse(block: &[u8]) -> Result<Self, MultipartError> {
        let mut part = PartHeaders::default();
        for line in block.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                if line.is_empty() {
                    continue;
                }
                return Err(MultipartError("A multipart header line has no ':'.".into()));
            };
            if !line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(b"content-disposition")
            {
                continue;
            }
            let (_, parameters) = split_header(&line[colon + 1..]);
            let mut extended_name = None;
            for (name, value) in parameters {
                match name.to_ascii_lowercase().as_slice() {
                    b"name" => part.name = Some(value),
                    b"filename" => part.file_name = Some(decode_client_escapes(&value)),
                    b"filename*" => extended_name = decode_extended(&value),
                    _ => {}
                }
            }
            if extended_name.is_some() {
                part.file_name = extended_name;
            }
        }
        Ok(part)
    }
}

/// A header parameter's name and value.
type Parameter = (Vec<u8>, Vec<u8>);

/// `value; name=token; name="quoted"` → the value and the parameters, quoted strings read
/// as python-multipart reads them (`\\` → `\`, `\"` → `"`, any other `\x` kept).
fn split_header(header: &[u8]) -> (&[u8], Vec<Parameter>) {
    let end = header
        .iter()
        .position(|b| *b == b';')
        .unwrap_or(header.len());
    let value = header[..end].trim_ascii();
    let mut parameters = Vec::new();
    let mut rest = &header[end..];
    while let Some(after) = rest.strip_prefix(b";") {
        let after = after.trim_ascii_start();
        let Some(eq) = after.iter().position(|b| *b == b'=') else {
            break;
        };
        let name = after[..eq].trim_ascii().to_vec();
        let raw = after[eq + 1..].trim_ascii_start();
        let (value, consumed) = if let Some(quoted) = raw.strip_prefix(b"\"") {
            unquote(quoted)
        } else {
            let end = raw.iter().position(|b| *b == b';').unwrap_or(raw.len());
            (raw[..end].trim_ascii_end().to_vec(), end)
        };
        parameters.push((name, value));
        let consumed = if raw.starts_with(b"\"") {
            consumed + 1
        } else {
            consumed
        };
        rest = raw[consumed..].trim_ascii_start();
        // Anything between a closing quote and the next `;` is ignored.
        let next = rest.iter().position(|b| *b == b';').unwrap_or(rest.len());
        rest = &rest[next..];
    }
    (value, parameters)
}

/// The inside of a quoted string (after its opening quote) up to its closing quote, and the
/// bytes consumed including that quote.
fn unquote(quoted: &[u8]) -> (Vec<u8>, usize) {
    let mut value = Vec::with_capacity(quoted.len());
    let mut i = 0;
    while i < quoted.len() {
        match quoted[i] {
            b'"' => return (value, i + 1),
            b'\\' if matches!(quoted.get(i + 1), Some(b'\\' | b'"')) => {
                value.push(quoted[i + 1]);
                i += 2;
            }
            byte => {
                value.push(byte);
                i += 1;
            }
        }
    }
    (value, quoted.len())
}

/// Undoes the percent escapes browsers and httpx make in a `filename`: control bytes and `"`.
fn decode_client_escapes(name: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        if name[i] == b'%'
            && let (Some(high), Some(low)) = (
                name.get(i + 1).copied().and_then(hex),
                name.get(i + 2).copied().and_then(hex),
            )
        {
            let byte = high * 16 + low;
            if byte < 0x20 || byte == b'"' {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(name[i]);
        i += 1;
    }
    out
}

/// RFC 5987 `charset'language'percent-encoded`, UTF-8 or ISO-8859-1 (as bytes).
fn decode_extended(value: &[u8]) -> Option<Vec<u8>> {
    let mut fields = value.splitn(3, |b| *b == b'\'');
    let charset = fields.next()?;
    let _language = fields.next()?;
    let encoded = fields.next()?;
    if !charset.eq_ignore_ascii_case(b"utf-8") && !charset.eq_ignore_ascii_case(b"iso-8859-1") {
        return None;
    }
    let bytes: Vec<u8> = percent_encoding::percent_decode(encoded).collect();
    if charset.eq_ignore_ascii_case(b"utf-8") {
        Some(bytes)
    } else {
        Some(
            bytes
                .iter()
                .map(|&b| b as char)
                .collect::<String>()
                .into_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(parts: &[(&[u8], &[u8])], boundary: &str) -> Vec<u8> {
        let mut body = b"preamble\r\n".to_vec();
        for (headers, data) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            body.extend_from_slice(headers);
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    /// Reads the file part of `body`, fed in chunks of `chunk` bytes.
    async fn read(
        body: Vec<u8>,
        boundary: &str,
        chunk: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), MultipartError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}")
                .parse()
                .unwrap(),
        );
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let body = Body::from_stream(futures::stream::iter(chunks));
        let mut part = FilePart::from_body(&headers, body).await?;
        let mut data = Vec::new();
        while let Some(bytes) = part.chunk().await? {
            data.extend_from_slice(&bytes);
        }
        Ok((part.file_name, data))
    }

    #[tokio::test]
    async fn the_file_part_streams_whatever_the_chunking() {
        let content: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut tricky = content.clone();
        // Almost-delimiters inside the data.
        tricky.extend_from_slice(b"\r\n--bound\r\n--boundar\r\n-");
        let body = form(
            &[
                (b"Content-Disposition: form-data; name=\"other\"", b"x\r\n--boundar"),
                (
                    b"Content-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream",
                    &tricky,
                ),
            ],
            "boundary",
        );
        for chunk in [1, 2, 3, 7, 64, 1000, body.len()] {
            let (name, data) = read(body.clone(), "boundary", chunk).await.unwrap();
            assert_eq!(name, b"a.bin");
            assert_eq!(data, tricky, "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn file_names_decode_as_clients_encode_them() {
        let cases: &[(&[u8], &[u8])] = &[
            // httpx: `"` → %22, `\` → `\\`, control bytes → %XX but ESC raw.
            (
                b"filename=\"a%22b\\\\c%0D%0Ad%09e\x1bf\x7fg h\xc3\xa9.txt\"",
                b"a\"b\\c\r\nd\te\x1bf\x7fg h\xc3\xa9.txt",
            ),
            (b"filename=\"\\\\\\\\\"", b"\\\\"),
            (b"filename=\"q\\\"uote\"", b"q\"uote"),
            (b"filename=\"bs\\n\"", b"bs\\n"),
            (b"filename=\"100%25 %41\"", b"100%25 %41"),
            (b"filename=plain.txt", b"plain.txt"),
            (b"filename=\"x;y\"; other=1", b"x;y"),
            (
                b"filename=\"ascii\"; filename*=UTF-8''%C3%A9t%C3%A9",
                "été".as_bytes(),
            ),
        ];
        for (disposition, expected) in cases {
            let mut headers = b"Content-Disposition: form-data; name=\"file\"; ".to_vec();
            headers.extend_from_slice(disposition);
            let body = form(&[(&headers, b"data")], "b0undary");
            let (name, data) = read(body, "b0undary", 5).await.unwrap();
            assert_eq!(
                String::from_utf8_lossy(&name),
                String::from_utf8_lossy(expected),
                "{}",
                String::from_utf8_lossy(disposition)
            );
            assert_eq!(data, b"data");
        }
    }

    #[tokio::test]
    async fn forms_without_a_file_or_an_end_are_refused() {
        let no_file = form(
            &[(b"Content-Disposition: form-data; name=\"x\"", b"1")],
            "b",
        );
        assert!(
            read(no_file, "b", 4)
                .await
                .unwrap_err()
                .0
                .contains("`file`")
        );
        let mut cut = form(
            &[(
                b"Content-Disposition: form-data; name=\"file\"; filename=\"f\"",
                b"123456",
            )],
            "b",
        );
        cut.truncate(cut.len() - 12);
        assert!(read(cut, "b", 4).await.unwrap_err().0.contains("ended"));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(FilePart::from_body(&headers, Body::empty()).await.is_err());
    }

    #[tokio::test]
    async fn fields_before_the_file_are_kept_within_the_limit() {
        let body = form(
            &[
                (
                    b"Content-Disposition: form-data; name=\"targetPath\"",
                    b"/home/u\r\n--boundar",
                ),
                (b"Content-Disposition: form-data; name=\"p\"", b"True"),
                (
                    b"Content-Disposition: form-data; name=\"file\"; filename=\"a\"",
                    b"data",
                ),
            ],
            "boundary",
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=boundary".parse().unwrap(),
        );
        for chunk in [1, 5, body.len()] {
            let chunks: Vec<Result<Bytes, std::io::Error>> = body
                .chunks(chunk)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let stream = Body::from_stream(futures::stream::iter(chunks));
            let (fields, file) = FilePart::with_fields(&headers, stream, 64).await.unwrap();
            assert_eq!(
                fields,
                vec![
                    ("targetPath".to_string(), b"/home/u\r\n--boundar".to_vec()),
                    ("p".to_string(), b"True".to_vec())
                ]
            );
            let mut file = file.expect("a file part");
            let mut data = Vec::new();
            while let Some(bytes) = file.chunk().await.unwrap() {
                data.extend_from_slice(&bytes);
            }
            assert_eq!(data, b"data");
        }
        let only_fields = form(
            &[(b"Content-Disposition: form-data; name=\"a\"", b"1")],
            "b",
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=b".parse().unwrap(),
        );
        let (fields, file) = FilePart::with_fields(&headers, Body::from(only_fields.clone()), 64)
            .await
            .unwrap();
        assert_eq!(fields, vec![("a".to_string(), b"1".to_vec())]);
        assert!(file.is_none());
        let error = FilePart::with_fields(&headers, Body::from(only_fields), 0)
            .await
            .err()
            .unwrap();
        assert_eq!(error.0, "The form's fields exceed 0 bytes.");
    }
}
