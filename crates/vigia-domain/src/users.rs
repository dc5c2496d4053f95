//! User accounts: e-mail addresses, roles, display names, the password policy.

use serde::{Deserialize, Serialize};

use crate::validation::{FieldError, bounded_text};

/// A syntactically valid e-mail address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim().to_lowercase();
        let invalid =
            || FieldError::new(field, "must be an e-mail address such as ana@example.org");
        if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || local.len() > 64
            || local.contains('@')
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || !domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
        {
            return Err(invalid());
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user may do. Ordered: every role may do what the roles before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reports incidents and follows their own; sees public ones.
    Reporter,
    /// Works the incidents of the departments they belong to.
    Staff,
    /// Manages users, catalogs and settings; sees everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Reporter, Role::Staff, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reporter => "reporter",
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        match raw {
            "reporter" => Ok(Role::Reporter),
            "staff" => Ok(Role::Staff),
            "admin" => Ok(Role::Admin),
            _ => Err(FieldError::new(
                field,
                "must be one of: reporter, staff, admin",
            )),
        }
    }
}

/// The language a user reads Vigía in. Spanish by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    Es,
    En,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Es => "es",
            Locale::En => "en",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        match raw {
            "es" => Ok(Locale::Es),
            "en" => Ok(Locale::En),
            _ => Err(FieldError::new(field, "must be one of: es, en")),
        }
    }
}

/// A person's name as shown to others: 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        bounded_text(field, raw, 1, 100).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The shortest password accepted (NIST SP 800-63B recommends at least 8; we ask for more
/// because Vigía has no second factor yet).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password accepted; bounds the hashing work an attacker can ask for.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Passwords seen so often in breaches that they are refused whatever their length.
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789012",
    "0123456789",
    "1q2w3e4r5t",
    "qwertyuiop",
    "password123",
    "password1234",
    "contraseña123",
    "contrasena123",
    "iloveyou123",
    "administrator",
    "qwerty123456",
    "abcdefghij",
    "passw0rd123",
    "welcome123",
    "letmein1234",
    "changeme123",
];

/// A password that satisfies the policy. It is never stored or logged: only its hash is.
pub struct NewPassword(String);

impl NewPassword {
    /// Checks the policy; `email` lets us refuse a password built from the account name.
    pub fn parse(field: &str, raw: &str, email: Option<&Email>) -> Result<Self, FieldError> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(FieldError::new(
                field,
                format!("is too short: use at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(FieldError::new(
                field,
                format!("is too long: use at most {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        let lower = raw.to_lowercase();
        if COMMON_PASSWORDS.contains(&lower.as_str()) {
            return Err(FieldError::new(
                field,
                "is one of the most common passwords: choose another",
            ));
        }
        let distinct: std::collections::HashSet<char> = raw.chars().collect();
        if distinct.len() < 4 {
            return Err(FieldError::new(
                field,
                "uses too few different characters: choose a less repetitive password",
            ));
        }
        if let Some(email) = email {
            let local = email.local_part();
            if local.chars().count() >= 4 && lower.contains(local) {
                return Err(FieldError::new(
                    field,
                    "must not contain your e-mail address",
                ));
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

impl TryFrom<String> for Role {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Role::parse("role", &raw)
    }
}

impl TryFrom<String> for Locale {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Locale::parse("locale", &raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        let email = Email::parse("email", "  Ana.Perez@UTEC.edu.PE ").expect("valid");
        assert_eq!(email.as_str(), "ana.perez@utec.edu.pe");
        assert_eq!(email.local_part(), "ana.perez");
    }

    #[test]
    fn email_without_domain_dot_or_at_is_rejected() {
        for bad in [
            "ana",
            "ana@",
            "@utec.pe",
            "ana@utec",
            "ana@@utec.pe",
            "a na@utec.pe",
            "ana@utec..pe",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Reporter < Role::Staff && Role::Staff < Role::Admin);
        assert_eq!(Role::parse("role", "staff"), Ok(Role::Staff));
        assert!(Role::parse("role", "root").is_err());
    }

    #[test]
    fn weak_passwords_are_rejected_with_a_reason() {
        let email = Email::parse("email", "mariana@utec.pe").expect("valid");
        let why = |pw: &str| {
            NewPassword::parse("password", pw, Some(&email))
                .expect_err(pw)
                .message
        };
        assert!(why("short").contains("too short"));
        assert!(why("Password123").contains("common"));
        assert!(why("aaaaaaaaaaaa").contains("different characters"));
        assert!(why("mariana-2026!").contains("e-mail"));
        assert!(why(&"x1".repeat(70)).contains("too long"));
        assert!(NewPassword::parse("password", "correct horse battery", Some(&email)).is_ok());
    }
}
