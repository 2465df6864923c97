//! From a JWKS document to verification keys, each bound to exactly one asymmetric algorithm.

use std::str::FromStr;
use std::sync::Arc;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::AuthSetupError;

/// A public key and the one algorithm tokens checked with it must use.
pub(crate) struct VerificationKey {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// Parses `auth.authentication.jwk_algorithm`: asymmetric signature algorithms only.
pub(crate) fn configured_algorithm(name: &str) -> Result<Algorithm, AuthSetupError> {
    Algorithm::from_str(name)
        .ok()
        .filter(|alg| is_asymmetric(*alg))
        .ok_or_else(|| AuthSetupError::UnsupportedAlgorithm(name.to_owned()))
}

fn is_asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// Parses a JWKS document and keeps the keys usable for signature checks. Entries that are not
/// (encryption or symmetric keys, unsupported curves or algorithms, unparsable members) are
/// skipped with a debug log, so one odd key does not hide the others.
pub(crate) fn parse_jwks(
    body: &[u8],
    fallback: Option<Algorithm>,
    source: &str,
) -> Result<Vec<Arc<VerificationKey>>, serde_json::Error> {
    let document: JwksDocument = serde_json::from_slice(body)?;
    let mut keys = Vec::with_capacity(document.keys.len());
    for (index, value) in document.keys.into_iter().enumerate() {
        match verification_key(value, fallback) {
            Ok(key) => keys.push(Arc::new(key)),
            Err(reason) => tracing::debug!(
                jwks.source = source,
                jwks.index = index,
                jwks.skipped = reason,
                "skipping JWK"
            ),
        }
    }
    Ok(keys)
}

fn verification_key(
    value: serde_json::Value,
    fallback: Option<Algorithm>,
) -> Result<VerificationKey, String> {
    let jwk: Jwk =
        serde_json::from_value(value).map_err(|_| "unsupported key type or malformed")?;
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return Err("not a signature key (use)".into());
    }
    if matches!(&jwk.common.key_operations, Some(ops) if !ops.contains(&KeyOperations::Verify)) {
        return Err("not a verification key (key_ops)".into());
    }
    let alg = choose_algorithm(&jwk, fallback)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "malformed key material")?;
    Ok(VerificationKey {
        kid: jwk.common.key_id,
        alg,
        key,
    })
}

/// The JWK's own `alg`; else the configured fallback if it fits the key; else inferred from the
/// key type. Symmetric (`oct`) keys never qualify.
fn choose_algorithm(jwk: &Jwk, fallback: Option<Algorithm>) -> Result<Algorithm, String> {
    let params = &jwk.algorithm;
    if let Some(declared) = jwk.common.key_algorithm {
        return signature_algorithm(declared)
            .filter(|alg| fits(*alg, params))
            .ok_or_else(|| format!("alg {declared} is not usable with this key"));
    }
    fallback
        .filter(|alg| fits(*alg, params))
        .or_else(|| inferred_algorithm(params))
        .ok_or_else(|| "no usable algorithm for this key type".into())
}

fn signature_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

fn fits(alg: Algorithm, params: &AlgorithmParameters) -> bool {
    match params {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            okp.curve == EllipticCurve::Ed25519 && alg == Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => false,
    }
}

fn inferred_algorithm(params: &AlgorithmParameters) -> Option<Algorithm> {
    match params {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            EllipticCurve::P521 | EllipticCurve::Ed25519 => None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => {
            (okp.curve == EllipticCurve::Ed25519).then_some(Algorithm::EdDSA)
        }
        AlgorithmParameters::OctetKey(_) => None,
    }
}

/// The keys of every source, kept per source so that a source that fails to refresh keeps its
/// previous keys while the others move on.
pub(crate) struct KeySet {
    per_source: Vec<Vec<Arc<VerificationKey>>>,
}

impl KeySet {
    pub(crate) fn empty(sources: usize) -> Self {
        Self {
            per_source: vec![Vec::new(); sources],
        }
    }

    /// A new set where each source with a fresh load (`Some`) takes it and the others keep theirs.
    pub(crate) fn merged(&self, loaded: Vec<Option<Vec<Arc<VerificationKey>>>>) -> Self {
        let per_source = self
            .per_source
            .iter()
            .zip(loaded)
            .map(|(old, new)| new.unwrap_or_else(|| old.clone()))
            .collect();
        Self { per_source }
    }

    /// Keys whose `kid` equals the token's; for a token without `kid`, the keys without one.
    pub(crate) fn candidates(&self, kid: Option<&str>) -> Vec<Arc<VerificationKey>> {
        self.per_source
            .iter()
            .flatten()
            .filter(|key| key.kid.as_deref() == kid)
            .cloned()
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.per_source.iter().map(Vec::len).sum()
    }

    /// The key ids, for logs; `-` stands for a key without `kid`.
    pub(crate) fn kids(&self) -> Vec<String> {
        self.per_source
            .iter()
            .flatten()
            .map(|key| key.kid.clone().unwrap_or_else(|| "-".into()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str, fallback: Option<Algorithm>) -> Vec<(Option<String>, Algorithm)> {
        parse_jwks(json.as_bytes(), fallback, "test")
            .unwrap()
            .iter()
            .map(|key| (key.kid.clone(), key.alg))
            .collect()
    }

    const RSA: &str = r#""kty":"RSA","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB""#;
    const EC256: &str = r#""kty":"EC","crv":"P-256","x":"V1vyvRJNGMP01Bem7OOmz4P8pwmLdlJd2o8Iel3M97U","y":"1yvLbLsOto9l5hKqj5zK374BYn2JRwAk27wuKu1xmKQ""#;
    const ED25519: &str =
        r#""kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo""#;

    #[test]
    fn algorithm_comes_from_jwk_then_config_then_key_type() {
        let doc = format!(
            r#"{{"keys":[{{"kid":"a",{RSA}}},{{"kid":"b","alg":"PS384",{RSA}}},{{"kid":"c",{EC256}}},{{"kid":"d",{ED25519}}}]}}"#
        );
        assert_eq!(
            parse(&doc, None),
            vec![
                (Some("a".into()), Algorithm::RS256),
                (Some("b".into()), Algorithm::PS384),
                (Some("c".into()), Algorithm::ES256),
                (Some("d".into()), Algorithm::EdDSA),
            ]
        );
        // A configured fallback applies to the keys it fits, and only those without `alg`.
        assert_eq!(
            parse(&doc, Some(Algorithm::RS512)),
            vec![
                (Some("a".into()), Algorithm::RS512),
                (Some("b".into()), Algorithm::PS384),
                (Some("c".into()), Algorithm::ES256),
                (Some("d".into()), Algorithm::EdDSA),
            ]
        );
    }

    #[test]
    fn unusable_entries_are_skipped_not_fatal() {
        let doc = format!(
            r#"{{"keys":[
                {{"kid":"oct","kty":"oct","k":"c2VjcmV0"}},
                {{"kid":"hs","alg":"HS256",{RSA}}},
                {{"kid":"enc","use":"enc",{RSA}}},
                {{"kid":"ops","key_ops":["encrypt"],{RSA}}},
                {{"kid":"mismatch","alg":"ES384",{EC256}}},
                {{"kid":"weird","kty":"XYZ"}},
                {{"kid":"rsa-oaep","alg":"RSA-OAEP",{RSA}}},
                {{"kid":"ok","use":"sig","key_ops":["verify"],{RSA}}}
            ]}}"#
        );
        assert_eq!(
            parse(&doc, None),
            vec![(Some("ok".into()), Algorithm::RS256)]
        );
        assert!(parse_jwks(b"{\"nokeys\":[]}", None, "test").is_err());
    }

    #[test]
    fn configured_algorithm_must_be_asymmetric() {
        assert_eq!(configured_algorithm("ES384").unwrap(), Algorithm::ES384);
        assert!(configured_algorithm("HS256").is_err());
        assert!(configured_algorithm("none").is_err());
    }

    #[test]
    fn candidates_match_kid_or_keyless() {
        let doc = format!(r#"{{"keys":[{{"kid":"a",{RSA}}},{{{EC256}}}]}}"#);
        let keys = parse_jwks(doc.as_bytes(), None, "test").unwrap();
        let set = KeySet::empty(2).merged(vec![Some(keys), None]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.candidates(Some("a"))[0].alg, Algorithm::RS256);
        assert_eq!(set.candidates(None)[0].alg, Algorithm::ES256);
        assert!(set.candidates(Some("zzz")).is_empty());
        assert_eq!(set.kids(), vec!["a".to_string(), "-".to_string()]);
        // A failed load (None) keeps a source's keys; a successful one replaces them.
        assert_eq!(set.merged(vec![None, Some(Vec::new())]).len(), 2);
        assert_eq!(set.merged(vec![Some(Vec::new()), None]).len(), 0);
    }
}
