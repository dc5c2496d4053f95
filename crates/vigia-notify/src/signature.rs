//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): `webhook-signature` is a
//! space-separated list of `v1,<base64 HMAC-SHA256>` computed with each secret over
//! `{webhook-id}.{webhook-timestamp}.{body}`. Secrets are `whsec_` + base64 key bytes. During a
//! rotation several secrets sign, and a receiver accepts any signature it can verify.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix of every secret this server issues.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far a receiver should accept a timestamp from its own clock (the spec suggests 5 min).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the secret is not base64 after the whsec_ prefix")]
    BadSecret,
    #[error("the webhook-timestamp header is not a number of seconds")]
    BadTimestamp,
    #[error("the webhook-timestamp is too far from now")]
    TimestampOutOfRange,
    #[error("no signature matches")]
    NoMatch,
}

/// A new random secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The key bytes of a secret (with or without the `whsec_` prefix).
fn key_of(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let raw = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD.decode(raw).map_err(|_| SignatureError::BadSecret)
}

/// True when `secret` can sign.
pub fn is_valid_secret(secret: &str) -> bool {
    secret.starts_with(SECRET_PREFIX) && key_of(secret).is_ok_and(|k| k.len() >= 16)
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One signature, `v1,<base64>`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignatureError> {
    let key = key_of(secret)?;
    let tag = mac(&key, id, timestamp, body).finalize().into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

/// The `webhook-signature` header value: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[&str],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let parts: Result<Vec<String>, _> = secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect();
    Ok(parts?.join(" "))
}

/// Verifies a received webhook as a receiver would: the timestamp within `tolerance_secs` of
/// `now_secs`, and at least one `v1` signature made with one of `secrets` (constant-time).
pub fn verify(
    secrets: &[&str],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now_secs - ts).abs() > tolerance_secs {
        return Err(SignatureError::TimestampOutOfRange);
    }
    for secret in secrets {
        let key = key_of(secret)?;
        for candidate in signature_header.split_whitespace() {
            let Some(encoded) = candidate.strip_prefix("v1,") else {
                continue;
            };
            let Ok(tag) = STANDARD.decode(encoded) else {
                continue;
            };
            if mac(&key, id, ts, body).verify_slice(&tag).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector published with the Standard Webhooks reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_published_test_vector_is_reproduced_exactly() {
        assert_eq!(sign(SECRET, ID, TS, BODY).expect("signs"), EXPECTED);
    }

    #[test]
    fn the_test_vector_verifies_and_any_change_breaks_it() {
        let ok = verify(&[SECRET], ID, "1614265330", EXPECTED, BODY, TS, 300);
        assert_eq!(ok, Ok(()));
        let tampered = verify(&[SECRET], ID, "1614265330", EXPECTED, b"{}", TS, 300);
        assert_eq!(tampered, Err(SignatureError::NoMatch));
        let other_id = verify(&[SECRET], "msg_x", "1614265330", EXPECTED, BODY, TS, 300);
        assert_eq!(other_id, Err(SignatureError::NoMatch));
        let late = verify(&[SECRET], ID, "1614265330", EXPECTED, BODY, TS + 301, 300);
        assert_eq!(late, Err(SignatureError::TimestampOutOfRange));
    }

    #[test]
    fn during_a_rotation_either_secret_verifies_the_multi_signature_header() {
        let new = generate_secret();
        let header = signature_header(&[&new, SECRET], ID, TS, BODY).expect("signs");
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.ends_with(EXPECTED));
        assert_eq!(
            verify(&[SECRET], ID, "1614265330", &header, BODY, TS, 300),
            Ok(())
        );
        assert_eq!(
            verify(&[&new], ID, "1614265330", &header, BODY, TS, 300),
            Ok(())
        );
        let stranger = generate_secret();
        assert_eq!(
            verify(&[&stranger], ID, "1614265330", &header, BODY, TS, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn generated_secrets_are_prefixed_random_and_valid() {
        let (a, b) = (generate_secret(), generate_secret());
        assert!(a.starts_with("whsec_") && is_valid_secret(&a));
        assert_ne!(a, b);
        assert!(!is_valid_secret("whsec_!!!"));
        assert!(!is_valid_secret("plain"));
    }
}
