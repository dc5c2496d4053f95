//! Capability links: a signed, expiring token that opens one department's report of one
//! incident without an account (department contacts receive it by e-mail). The token is
//! `{link}.{expires}.{signature}`: the stored link's id (what an admin revokes), its expiry in
//! milliseconds, and a base64url HMAC-SHA256 over both and the incident and department of the
//! URL it travels in, keyed by a key derived from the server's secret. Changing any part of the
//! URL breaks the signature; the signature is checked before the expiry is believed.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::Timestamp;
use crate::ids::{DepartmentId, IncidentId};

type HmacSha256 = Hmac<Sha256>;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The key report links are signed with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// What a link grants: one department's report of one incident, until it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLinkClaims {
    /// The stored link (revocable).
    pub link_id: i64,
    pub incident: IncidentId,
    pub department: DepartmentId,
    pub expires_at: Timestamp,
}

/// Why a token opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Malformed, or signed for another report or by another key.
    #[error("the link is not valid")]
    Invalid,
    /// Genuine, but past its expiry.
    #[error("the link has expired")]
    Expired,
}

impl LinkKey {
    /// The key for report links, derived from the server's secret (every node that shares the
    /// secret verifies every other node's links).
    pub fn derive(server_secret: &[u8]) -> Self {
        Self(hmac(server_secret, b"vigia report links v1"))
    }

    /// A key of its own (a server without a configured secret, tests).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The token of `claims`.
    pub fn sign(&self, claims: &ReportLinkClaims) -> String {
        let (id, expires) = (claims.link_id, claims.expires_at.millis());
        let signature = self.signature(id, expires, claims.incident, claims.department);
        format!("{id}.{expires}.{}", B64.encode(signature))
    }

    /// The claims of `token` presented for `incident`'s report to `department`, if it was
    /// signed by this key for exactly that report and has not expired at `now`.
    pub fn verify(
        &self,
        token: &str,
        incident: IncidentId,
        department: DepartmentId,
        now: Timestamp,
    ) -> Result<ReportLinkClaims, LinkError> {
        let mut parts = token.splitn(3, '.');
        let (Some(id), Some(expires), Some(signature)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Invalid);
        };
        let id: i64 = id.parse().map_err(|_| LinkError::Invalid)?;
        let expires: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
        let signature = B64.decode(signature).map_err(|_| LinkError::Invalid)?;
        // Constant time: a guessed signature learns nothing from how long the refusal took.
        self.mac(id, expires, incident, department)
            .verify_slice(&signature)
            .map_err(|_| LinkError::Invalid)?;
        if expires <= now.millis() {
            return Err(LinkError::Expired);
        }
        Ok(ReportLinkClaims {
            link_id: id,
            incident,
            department,
            expires_at: Timestamp::from_millis(expires),
        })
    }

    fn mac(
        &self,
        id: i64,
        expires: i64,
        incident: IncidentId,
        department: DepartmentId,
    ) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(format!("report:{id}:{expires}:{}:{}", incident.0, department.0).as_bytes());
        mac
    }

    fn signature(
        &self,
        id: i64,
        expires: i64,
        incident: IncidentId,
        department: DepartmentId,
    ) -> [u8; 32] {
        self.mac(id, expires, incident, department)
            .finalize()
            .into_bytes()
            .into()
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires_at: i64) -> ReportLinkClaims {
        ReportLinkClaims {
            link_id: 7,
            incident: IncidentId(42),
            department: DepartmentId(3),
            expires_at: Timestamp::from_millis(expires_at),
        }
    }

    #[test]
    fn a_link_opens_exactly_the_report_it_was_signed_for_until_it_expires() {
        let key = LinkKey::derive(b"server secret of at least 32 bytes!!");
        let token = key.sign(&claims(2_000));
        let now = Timestamp::from_millis(1_000);
        assert_eq!(
            key.verify(&token, IncidentId(42), DepartmentId(3), now),
            Ok(claims(2_000))
        );
        assert_eq!(
            key.verify(&token, IncidentId(43), DepartmentId(3), now),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            key.verify(&token, IncidentId(42), DepartmentId(4), now),
            Err(LinkError::Invalid)
        );
        let later = Timestamp::from_millis(2_000);
        assert_eq!(
            key.verify(&token, IncidentId(42), DepartmentId(3), later),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn a_tampered_token_or_another_servers_token_is_invalid() {
        let key = LinkKey::derive(b"server secret of at least 32 bytes!!");
        let now = Timestamp::from_millis(1_000);
        let token = key.sign(&claims(2_000));
        let longer = token.replacen(".2000.", ".9999999.", 1);
        assert_eq!(
            key.verify(&longer, IncidentId(42), DepartmentId(3), now),
            Err(LinkError::Invalid)
        );
        let other_link = token.replacen("7.", "8.", 1);
        assert_eq!(
            key.verify(&other_link, IncidentId(42), DepartmentId(3), now),
            Err(LinkError::Invalid)
        );
        let other = LinkKey::derive(b"another secret of at least 32 bytes!");
        assert_eq!(
            other.verify(&token, IncidentId(42), DepartmentId(3), now),
            Err(LinkError::Invalid)
        );
        for junk in ["", "7", "7.2000", "x.2000.abc", "7.2000.%%%"] {
            assert_eq!(
                key.verify(junk, IncidentId(42), DepartmentId(3), now),
                Err(LinkError::Invalid),
                "{junk}"
            );
        }
    }
}
