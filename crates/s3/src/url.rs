//! S3's URI encoding (SigV4 "UriEncode"): every byte but `A-Za-z0-9-_.~` as `%XX`, and in
//! object keys `/` kept. The signer signs the path as given, so it must be encoded this way.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const KEY_PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

pub(crate) fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_PATH).to_string()
}

pub(crate) fn encode_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(name, QUERY_VALUE),
                utf8_percent_encode(value, QUERY_VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_slashes_and_encode_everything_else() {
        assert_eq!(
            encode_key("0b1e/my file's (1)+$x~.dat"),
            "0b1e/my%20file%27s%20%281%29%2B%24x~.dat"
        );
        assert_eq!(encode_key("d/é"), "d/%C3%A9");
    }

    #[test]
    fn query_values_encode_slashes_and_plus() {
        assert_eq!(
            encode_query([("uploadId", "a+b/c="), ("partNumber", "3")]),
            "uploadId=a%2Bb%2Fc%3D&partNumber=3"
        );
    }
}
