//! The human-facing incident code, `INC-000123`, made from the incident's sequence number.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::validation::FieldError;

/// An incident code: `INC-` and the sequence number, zero-padded to at least six digits
/// (`INC-000123`, `INC-1234567`). Parsing accepts only this canonical form, except that the
/// prefix may be in lower case and the value may be surrounded by spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IncidentCode(u64);

/// The prefix every incident code starts with.
pub const INCIDENT_CODE_PREFIX: &str = "INC-";
/// The fewest digits a code shows; numbers are zero-padded up to it.
const MIN_DIGITS: usize = 6;

impl IncidentCode {
    /// The code of the incident with sequence number `sequence`.
    pub fn from_sequence(sequence: u64) -> Self {
        Self(sequence)
    }

    /// The sequence number the code was made from.
    pub fn sequence(self) -> u64 {
        self.0
    }

    /// Parses `INC-000123` (or `inc-000123`) back into a code.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new(field, "must be an incident code such as INC-000123");
        let raw = raw.trim();
        let (prefix, digits) = raw
            .split_at_checked(INCIDENT_CODE_PREFIX.len())
            .ok_or_else(invalid)?;
        if !prefix.eq_ignore_ascii_case(INCIDENT_CODE_PREFIX)
            || digits.len() < MIN_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
            // Beyond the padding a leading zero would give one number two spellings.
            || (digits.len() > MIN_DIGITS && digits.starts_with('0'))
        {
            return Err(invalid());
        }
        digits.parse().map(Self).map_err(|_| invalid())
    }

    /// Calls `f` with the code as text, written on the stack: lists write one per item.
    pub fn with_str<R>(self, f: impl FnOnce(&str) -> R) -> R {
        // "INC-" and at most 20 digits (u64::MAX).
        let mut buf = [b'0'; INCIDENT_CODE_PREFIX.len() + 20];
        buf[..INCIDENT_CODE_PREFIX.len()].copy_from_slice(INCIDENT_CODE_PREFIX.as_bytes());
        let mut digits = [0u8; 20];
        let mut n = self.0;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            n /= 10;
            len += 1;
            if n == 0 {
                break;
            }
        }
        let width = len.max(MIN_DIGITS);
        let start = INCIDENT_CODE_PREFIX.len();
        for i in 0..len {
            buf[start + width - 1 - i] = digits[i];
        }
        f(std::str::from_utf8(&buf[..start + width]).unwrap_or_default())
    }
}

impl std::fmt::Display for IncidentCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_str(|code| f.write_str(code))
    }
}

impl Serialize for IncidentCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_str(|code| serializer.serialize_str(code))
    }
}

impl<'de> Deserialize<'de> for IncidentCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse("code", &raw).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl TryFrom<String> for IncidentCode {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        IncidentCode::parse("code", &raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_padded_to_six_digits_and_grow_beyond() {
        assert_eq!(IncidentCode::from_sequence(123).to_string(), "INC-000123");
        assert_eq!(
            IncidentCode::from_sequence(999_999).to_string(),
            "INC-999999"
        );
        assert_eq!(
            IncidentCode::from_sequence(1_234_567).to_string(),
            "INC-1234567"
        );
        assert_eq!(IncidentCode::from_sequence(0).to_string(), "INC-000000");
        assert_eq!(
            IncidentCode::from_sequence(u64::MAX).to_string(),
            format!("INC-{}", u64::MAX)
        );
    }

    #[test]
    fn every_code_parses_back_to_its_sequence() {
        for sequence in [
            0,
            1,
            9,
            123,
            100_000,
            999_999,
            1_000_000,
            98_765_432_101,
            u64::MAX,
        ] {
            let code = IncidentCode::from_sequence(sequence);
            assert_eq!(
                IncidentCode::parse("code", &code.to_string()),
                Ok(code),
                "{code}"
            );
        }
        assert_eq!(
            IncidentCode::parse("code", " inc-000042 ").map(IncidentCode::sequence),
            Ok(42)
        );
    }

    #[test]
    fn malformed_codes_are_rejected() {
        for bad in [
            "",
            "INC-",
            "INC-123",
            "INC-00012a",
            "INC-0001234",
            "INC-+00123",
            "TKT-000123",
            "INC 000123",
        ] {
            assert!(IncidentCode::parse("code", bad).is_err(), "{bad} accepted");
        }
        assert!(IncidentCode::parse("code", "INC-99999999999999999999").is_err());
        assert!(IncidentCode::parse("code", "ÍNC-000123").is_err());
    }

    #[test]
    fn codes_travel_as_strings() {
        let code = IncidentCode::from_sequence(7);
        let json = serde_json::to_string(&code).expect("serializes");
        assert_eq!(json, "\"INC-000007\"");
        assert_eq!(
            serde_json::from_str::<IncidentCode>(&json).expect("deserializes"),
            code
        );
        assert!(serde_json::from_str::<IncidentCode>("\"INC-7\"").is_err());
    }
}
