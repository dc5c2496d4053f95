//! Access tokens: compact JWTs (RFC 7519) signed with HMAC-SHA256, nothing else accepted.
//!
//! Only `HS256` is produced and only `HS256` verifies: the header is compared byte for byte with
//! the one we issue, so `alg: none` and algorithm confusion are impossible by construction.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use vigia_domain::Timestamp;
use vigia_domain::ids::{SessionId, UserId};

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const ISSUER: &str = "vigia";

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user id.
    pub sub: i64,
    /// The session (refresh-token family) the token was issued for.
    pub sid: i64,
    /// Issued at and expiry, seconds since the epoch.
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    pub fn user(&self) -> UserId {
        UserId(self.sub)
    }

    pub fn session(&self) -> SessionId {
        SessionId(self.sid)
    }
}

/// Why a token was refused. All of them are a 401 to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token signature is invalid")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
}

/// Signs and verifies access tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

impl TokenKeys {
    /// `secret` should carry at least 256 bits of entropy.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }

    /// Issues a token for `user`'s `session`, valid for `ttl_secs` from `now`.
    pub fn issue(&self, user: UserId, session: SessionId, now: Timestamp, ttl_secs: i64) -> String {
        let iat = now.millis() / 1000;
        let claims = Claims {
            iss: ISSUER.into(),
            sub: user.0,
            sid: session.0,
            iat,
            exp: iat + ttl_secs,
        };
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// Checks the signature (in constant time), the header, the issuer and the expiry.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        if URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?
            != HEADER.as_bytes()
        {
            return Err(TokenError::Malformed);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Malformed);
        }
        if claims.exp <= now.millis() / 1000 {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_verifies_until_it_expires() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let now = Timestamp::from_millis(1_800_000_000_000);
        let token = keys.issue(UserId(7), SessionId(3), now, 900);
        let claims = keys.verify(&token, now).expect("valid");
        assert_eq!((claims.user(), claims.session()), (UserId(7), SessionId(3)));
        assert_eq!(
            keys.verify(&token, now.plus_seconds(900)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_foreign_and_malformed_tokens_are_refused() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let now = Timestamp::from_millis(1_800_000_000_000);
        let token = keys.issue(UserId(7), SessionId(3), now, 900);
        let other = TokenKeys::new(b"another secret another secret!!!");
        assert_eq!(other.verify(&token, now), Err(TokenError::BadSignature));

        let (head, rest) = token.split_once('.').expect("dots");
        let (_, signature) = rest.split_once('.').expect("dots");
        let forged =
            URL_SAFE_NO_PAD.encode(r#"{"iss":"vigia","sub":1,"sid":3,"iat":0,"exp":9999999999}"#);
        assert_eq!(
            keys.verify(&format!("{head}.{forged}.{signature}"), now),
            Err(TokenError::BadSignature)
        );

        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(
            keys.verify(&format!("{none_header}.{forged}."), now)
                .is_err()
        );
        for junk in ["", "a.b", "a.b.c.d", "not a token"] {
            assert_eq!(keys.verify(junk, now), Err(TokenError::Malformed), "{junk}");
        }
    }
}
