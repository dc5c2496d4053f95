//! Points in time as Vigía keeps them: UTC, millisecond precision, RFC 3339 on the wire.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant with millisecond precision (what the store keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1000)))
    }

    pub fn to_offset_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Parses an RFC 3339 date-time such as `2026-11-22T14:00:00Z`.
    pub fn parse_rfc3339(raw: &str) -> Option<Self> {
        let t = OffsetDateTime::parse(raw, &Rfc3339).ok()?;
        Some(Self((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    pub fn to_rfc3339(self) -> String {
        self.with_rfc3339(str::to_owned)
    }

    /// Calls `f` with the RFC 3339 form, written on the stack: `YYYY-MM-DDTHH:MM:SS[.fff]Z`,
    /// the fraction without trailing zeros and left out when zero, exactly as `time`'s
    /// `Rfc3339` writes it. Lists write several of these per item, so this allocates nothing
    /// and skips `time`'s general formatter. Years outside 0–9999 come out empty: RFC 3339 has
    /// no form for them.
    pub fn with_rfc3339<R>(self, f: impl FnOnce(&str) -> R) -> R {
        let mut buf = [0u8; 24];
        let len = self.write_rfc3339(&mut buf);
        f(std::str::from_utf8(&buf[..len]).unwrap_or_default())
    }

    fn write_rfc3339(self, buf: &mut [u8; 24]) -> usize {
        let seconds = self.0.div_euclid(1000);
        let millis = self.0.rem_euclid(1000) as usize;
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        if !(0..=9999).contains(&year) {
            return 0;
        }
        let (year, month, day) = (year as usize, month as usize, day as usize);
        let of_day = seconds.rem_euclid(86_400) as usize;
        let pair = |buf: &mut [u8; 24], at: usize, value: usize| {
            buf[at..at + 2].copy_from_slice(&TWO_DIGITS[2 * value..2 * value + 2]);
        };
        pair(buf, 0, year / 100);
        pair(buf, 2, year % 100);
        buf[4] = b'-';
        pair(buf, 5, month);
        buf[7] = b'-';
        pair(buf, 8, day);
        buf[10] = b'T';
        pair(buf, 11, of_day / 3600);
        buf[13] = b':';
        pair(buf, 14, of_day / 60 % 60);
        buf[16] = b':';
        pair(buf, 17, of_day % 60);
        let len = if millis == 0 {
            19
        } else {
            buf[19] = b'.';
            buf[20] = b'0' + (millis / 100) as u8;
            pair(buf, 21, millis % 100);
            // Without trailing zeros: .5, .25, .125.
            match millis {
                m if m % 100 == 0 => 21,
                m if m % 10 == 0 => 22,
                _ => 23,
            }
        };
        buf[len] = b'Z';
        len + 1
    }
}

/// "00", "01", ..., "99", back to back: two digits at a time.
const TWO_DIGITS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut n = 0;
    while n < 100 {
        table[2 * n] = b'0' + (n / 10) as u8;
        table[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    table
};

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl From<i64> for Timestamp {
    fn from(millis: i64) -> Self {
        Self(millis)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_rfc3339(|text| f.write_str(text))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_rfc3339(|text| serializer.serialize_str(text))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse_rfc3339(&raw)
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 date-time"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc3339_at_millisecond_precision() {
        let t = Timestamp::from_millis(1_795_000_000_123);
        assert_eq!(t.to_rfc3339(), "2026-11-18T11:06:40.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-18T12:06:40.123+01:00"),
            Some(t)
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    /// The stack formatter writes what `time`'s `Rfc3339` writes, over the whole range RFC 3339
    /// can express, at every fraction length and on every calendar edge.
    #[test]
    fn rfc3339_is_written_exactly_as_the_time_crate_writes_it() {
        let reference = |t: Timestamp| t.to_offset_date_time().format(&Rfc3339).unwrap_or_default();
        let edges = [
            0,
            -1,
            1,
            10,
            100,
            999,
            1_000,
            86_399_999,
            951_782_400_000,     // 2000-02-29
            4_107_542_399_999,   // 2100-02-28T23:59:59.999
            -62_167_219_200_000, // 0000-01-01
            253_402_300_799_999, // 9999-12-31T23:59:59.999
            -2_208_988_800_000,  // 1900-01-01
        ];
        for millis in edges {
            let t = Timestamp::from_millis(millis);
            assert_eq!(t.to_rfc3339(), reference(t), "{millis}");
        }
        for beyond in [-62_167_219_200_001, 253_402_300_800_000] {
            assert_eq!(Timestamp::from_millis(beyond).to_rfc3339(), "", "{beyond}");
        }
        for _ in 0..200_000 {
            let millis = rand::random_range(-62_167_219_200_000..253_402_300_800_000_i64);
            let t = Timestamp::from_millis(millis);
            assert_eq!(t.to_rfc3339(), reference(t), "{millis}");
            let whole = Timestamp::from_millis(millis - millis.rem_euclid(1000));
            assert_eq!(whole.to_rfc3339(), reference(whole));
        }
        assert_eq!(
            serde_json::to_string(&Timestamp::from_millis(1_795_000_000_120)).expect("json"),
            "\"2026-11-18T11:06:40.12Z\""
        );
    }
}
