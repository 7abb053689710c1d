//! Time as a dependency, so signing and expiry logic take it as an argument.

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, UTC.
    fn now(&self) -> OffsetDateTime;
    /// Now, Unix seconds.
    fn now_unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// RFC 3339 UTC with `Z` and whole seconds (`2020-12-26T01:05:02Z`).
/// Written digit by digit (every answer carries two or three of these; the format-description
/// path cost a tenth of the answer's serialisation), with `time`'s formatter for years outside
/// 0–9999.
pub fn rfc3339(unix: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return rfc3339_formatted(t);
    }
    let mut b = *b"0000-00-00T00:00:00Z";
    write_date_time(&mut b, t);
    b.iter().map(|&c| char::from(c)).collect()
}

/// Writes `YYYY-MM-DDTHH:MM:SS` of `t` (year 0–9999) over the first 19 bytes of `b`, which
/// holds the separators already.
fn write_date_time(b: &mut [u8], t: OffsetDateTime) {
    let year = t.year() as u32;
    for (i, div) in [1000, 100, 10, 1].into_iter().enumerate() {
        b[i] = b'0' + ((year / div) % 10) as u8;
    }
    for (at, v) in [
        (5, u8::from(t.month())),
        (8, t.day()),
        (11, t.hour()),
        (14, t.minute()),
        (17, t.second()),
    ] {
        b[at] = b'0' + v / 10;
        b[at + 1] = b'0' + v % 10;
    }
}

/// RFC 3339 UTC with microseconds (`2026-12-04T01:36:27.054953Z`), the log lines' time,
/// written digit by digit (`time`'s formatter for years outside 0–9999).
pub fn write_rfc3339_micros(
    w: &mut impl std::fmt::Write,
    unix: i64,
    micros: u32,
) -> std::fmt::Result {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        let s = rfc3339_formatted(t);
        return write!(w, "{}.{:06}Z", s.trim_end_matches('Z'), micros.min(999_999));
    }
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    write_date_time(&mut b, t);
    let mut m = micros.min(999_999);
    for i in (20..26).rev() {
        b[i] = b'0' + (m % 10) as u8;
        m /= 10;
    }
    // Only ASCII digits and separators were written.
    w.write_str(std::str::from_utf8(&b).unwrap_or("1970-01-01T00:00:00.000000Z"))
}

/// [`rfc3339`] through `time`'s formatter.
fn rfc3339_formatted(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&f).unwrap_or_default()
}

/// Unix seconds of an RFC 3339 timestamp as clouds send them (`2025-01-01T01:00:00Z`,
/// `2025-01-01T01:00:00.123000Z`, `2025-01-01T09:00:00+08:00`); a time without an offset is
/// taken as UTC. Fractions are truncated, never rounded up. `None` for anything else.
pub fn parse_utc(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(text, &f)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    #[test]
    fn rfc3339_is_utc_z() {
        assert_eq!(super::rfc3339(1_609_000_000), "2020-12-26T16:26:40Z");
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn parse_utc_reads_cloud_formats_and_truncates() {
        use super::parse_utc;
        assert_eq!(parse_utc("2025-01-01T00:00:00Z"), Some(1_735_689_600));
        assert_eq!(
            parse_utc("2025-01-01T00:00:00.999999Z"),
            Some(1_735_689_600)
        );
        assert_eq!(parse_utc("2025-01-01T08:00:00+08:00"), Some(1_735_689_600));
        assert_eq!(parse_utc("2025-01-01T00:00:00"), Some(1_735_689_600));
        assert_eq!(parse_utc(" 2025-01-01T00:00:00.5 "), Some(1_735_689_600));
        for bad in [
            "",
            "soon",
            "2025-01-01",
            "2025-13-01T00:00:00Z",
            "1735689600",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn rfc3339_matches_the_formatter(unix in -62_135_596_800i64..=253_402_300_799i64) {
            let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
            prop_assert_eq!(super::rfc3339(unix), super::rfc3339_formatted(t));
        }

        #[test]
        fn log_times_match_the_formatter(unix in 0i64..=253_402_300_799i64, micros in 0u32..1_000_000) {
            let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap()
                + time::Duration::microseconds(i64::from(micros));
            let f = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            );
            let mut ours = String::new();
            super::write_rfc3339_micros(&mut ours, unix, micros).unwrap();
            prop_assert_eq!(ours, t.format(&f).unwrap());
        }

        #[test]
        fn parse_utc_round_trips_rfc3339(ts in 0i64..253_402_300_799i64) {
            prop_assert_eq!(super::parse_utc(&super::rfc3339(ts)), Some(ts));
        }

        #[test]
        fn parse_utc_never_panics(text in ".{0,40}") {
            let _ = super::parse_utc(&text);
        }
    }
}
