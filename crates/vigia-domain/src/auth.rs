//! Credentials: password hashing, opaque tokens, API-key scopes, and who a caller is.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{ApiKeyId, DepartmentId, SessionId, UserId};
use crate::users::{NewPassword, Role};
use crate::validation::FieldError;

/// Argon2id with the OWASP Password Storage Cheat Sheet's first recommendation:
/// 19 MiB of memory, 2 iterations, 1 degree of parallelism.
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).unwrap_or_default()
}

/// Argon2's working memory for one hash (19 MiB with our parameters), given back to the
/// operating system when dropped. Its allocation asks for more than 32 MiB of address space
/// (only the 19 MiB used are ever touched), because glibc always serves and frees so large a
/// request with `mmap`/`munmap`: a 19 MiB one, after the first is freed, comes from a
/// per-thread arena that keeps it, and a burst of logins on many threads kept hundreds of MB.
pub struct HashMemory(Vec<Block>);

/// Address space asked for: above glibc's largest dynamic mmap threshold (32 MiB).
const RESERVED_BYTES: usize = 33 * 1024 * 1024;

impl HashMemory {
    pub fn new() -> Self {
        let blocks = params().block_count();
        let reserved = (RESERVED_BYTES / Block::SIZE).max(blocks);
        let mut memory = Vec::with_capacity(reserved);
        memory.resize(blocks, Block::default());
        Self(memory)
    }

    /// The first `blocks` blocks, grown first if a stored hash asks for more than ours.
    fn blocks(&mut self, blocks: usize) -> &mut [Block] {
        if self.0.len() < blocks {
            self.0.resize(blocks, Block::default());
        }
        &mut self.0[..blocks]
    }
}

impl Default for HashMemory {
    fn default() -> Self {
        Self::new()
    }
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub fn hash_password(password: &NewPassword) -> String {
    hash_password_in(&mut HashMemory::new(), password)
}

/// [`hash_password`] in `memory`.
pub fn hash_password_in(memory: &mut HashMemory, password: &NewPassword) -> String {
    let salt = SaltString::generate(&mut OsRng);
    let params = params();
    let hashed = (|| {
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let blocks = memory.blocks(params.block_count());
        let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            Ok(argon2.hash_password_into_with_memory(
                password.expose().as_bytes(),
                salt_bytes,
                out,
                &mut *blocks,
            )?)
        })?;
        argon2::password_hash::Result::Ok(PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        })
    })();
    // Hashing only fails for parameters or lengths outside Argon2's limits, which ours are not.
    hashed
        .map(|hash| hash.to_string())
        .unwrap_or_else(|error| panic!("argon2 rejected its own parameters: {error}"))
}

/// Checks `password` against a stored PHC hash. A malformed hash never verifies.
pub fn verify_password(hash: &str, password: &str) -> bool {
    verify_password_in(&mut HashMemory::new(), hash, password)
}

/// [`verify_password`] in `memory`, with the parameters the stored hash names.
pub fn verify_password_in(memory: &mut HashMemory, hash: &str, password: &str) -> bool {
    let verified = (|| {
        let parsed = PasswordHash::new(hash)?;
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let blocks = memory.blocks(params.block_count());
        let computed = Output::init_with(expected.len(), |out| {
            Ok(argon2.hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                out,
                &mut *blocks,
            )?)
        })?;
        // `Output`'s equality is constant-time.
        argon2::password_hash::Result::Ok(computed == expected)
    })();
    verified.unwrap_or(false)
}

/// A valid hash of a random password, used to spend the same time verifying a login for an
/// account that does not exist as for one that does (made in `memory` the first time).
pub fn decoy_hash(memory: &mut HashMemory) -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let random = random_secret("decoy_");
        hash_password_in(
            memory,
            &NewPassword::parse("password", &random, None).unwrap_or_else(|_| unreachable!()),
        )
    })
}

/// A random, URL-safe secret with a recognisable prefix (so leaked secrets can be found by
/// scanners): 32 random bytes, base64url without padding.
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The SHA-256 of a high-entropy secret, hex encoded. Refresh tokens and API keys are stored
/// only as this hash; a slow hash is unnecessary because the secrets are random, not chosen.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Prefix of refresh tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "vrt_";
/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "vak_";

/// What an API key may do. Keys never get more than the scopes they were created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Read departments, categories and zones.
    #[serde(rename = "catalog:read")]
    CatalogRead,
    /// Read incidents (as a staff member of the key's departments would).
    #[serde(rename = "incidents:read")]
    IncidentsRead,
    /// Report incidents and act on them.
    #[serde(rename = "incidents:write")]
    IncidentsWrite,
    /// Post device detections and heartbeats.
    #[serde(rename = "detections:write")]
    DetectionsWrite,
    /// Upload media for analysis.
    #[serde(rename = "media:write")]
    MediaWrite,
    /// Read reports and exports.
    #[serde(rename = "reports:read")]
    ReportsRead,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::CatalogRead,
        Scope::IncidentsRead,
        Scope::IncidentsWrite,
        Scope::DetectionsWrite,
        Scope::MediaWrite,
        Scope::ReportsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CatalogRead => "catalog:read",
            Scope::IncidentsRead => "incidents:read",
            Scope::IncidentsWrite => "incidents:write",
            Scope::DetectionsWrite => "detections:write",
            Scope::MediaWrite => "media:write",
            Scope::ReportsRead => "reports:read",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                FieldError::new(
                    field,
                    format!("unknown scope {raw:?}; known scopes: {}", known.join(", ")),
                )
            })
    }

    /// Parses a non-empty list of scopes, dropping duplicates.
    pub fn parse_list(field: &str, raw: &[String]) -> Result<Vec<Self>, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new(field, "must name at least one scope"));
        }
        let mut scopes = Vec::with_capacity(raw.len());
        for (i, item) in raw.iter().enumerate() {
            let scope = Self::parse(&format!("{field}[{i}]"), item)?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(scopes)
    }
}

/// Who is calling. Every authorization decision starts from one of these.
#[derive(Debug, Clone)]
pub enum Principal {
    User(UserPrincipal),
    ApiKey(ApiKeyPrincipal),
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub role: Role,
    /// The departments the user is a member of (staff work these departments' incidents).
    pub departments: Vec<DepartmentId>,
}

/// A device or integration.
#[derive(Debug, Clone)]
pub struct ApiKeyPrincipal {
    pub key_id: ApiKeyId,
    /// The admin who created the key; actions are attributed to the key and recorded with them.
    pub created_by: UserId,
    pub scopes: Vec<Scope>,
    pub departments: Vec<DepartmentId>,
}

impl Principal {
    /// True when the caller is an admin user.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::User(u) if u.role == Role::Admin)
    }

    /// True when the caller is a user of at least `role`.
    pub fn has_role(&self, role: Role) -> bool {
        matches!(self, Principal::User(u) if u.role >= role)
    }

    /// True when the caller may use `scope`: users by their role, keys by their scopes.
    pub fn allows(&self, scope: Scope) -> bool {
        match self {
            Principal::User(_) => true,
            Principal::ApiKey(key) => key.scopes.contains(&scope),
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Principal::User(u) => Some(u.user_id),
            Principal::ApiKey(_) => None,
        }
    }

    /// A short label for logs and the audit trail: `user:12` or `api_key:3`.
    pub fn label(&self) -> String {
        match self {
            Principal::User(u) => format!("user:{}", u.user_id),
            Principal::ApiKey(k) => format!("api_key:{}", k.key_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let password =
            NewPassword::parse("password", "correct horse battery", None).expect("valid");
        let hash = hash_password(&password);
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse battery!"));
        assert!(!verify_password("not a hash", "correct horse battery"));
    }

    #[test]
    fn hashes_made_in_reused_memory_agree_with_argon2s_own_hasher_and_verifier() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        let mut memory = HashMemory::new();
        let password =
            NewPassword::parse("password", "correct horse battery", None).expect("valid");
        let ours = hash_password_in(&mut memory, &password);
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert!(
            argon2
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(
            argon2
                .verify_password(b"wrong horse battery", &parsed)
                .is_err()
        );
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2
            .hash_password(b"correct horse battery", &salt)
            .expect("hash")
            .to_string();
        // The same memory, used again, verifies a hash made elsewhere and rejects a wrong one.
        assert!(verify_password_in(
            &mut memory,
            &theirs,
            "correct horse battery"
        ));
        assert!(!verify_password_in(
            &mut memory,
            &theirs,
            "correct horse battery!"
        ));
        let cheaper = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).expect("params"),
        )
        .hash_password(b"older parameters", &salt)
        .expect("hash")
        .to_string();
        assert!(verify_password_in(
            &mut memory,
            &cheaper,
            "older parameters"
        ));
    }

    #[test]
    fn secrets_are_random_prefixed_and_hash_stably() {
        let a = random_secret(API_KEY_PREFIX);
        let b = random_secret(API_KEY_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("vak_") && a.len() == 4 + 43);
        assert_eq!(secret_hash(&a), secret_hash(&a));
        assert_eq!(secret_hash(&a).len(), 64);
    }

    #[test]
    fn scopes_parse_and_unknown_ones_are_named() {
        let scopes = Scope::parse_list("scopes", &["catalog:read".into(), "catalog:read".into()])
            .expect("valid");
        assert_eq!(scopes, vec![Scope::CatalogRead]);
        let error = Scope::parse_list("scopes", &["root".into()]).expect_err("unknown");
        assert_eq!(error.field, "scopes[0]");
        assert!(Scope::parse_list("scopes", &[]).is_err());
    }
}
