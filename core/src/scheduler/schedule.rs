//! Standard 5-field cron as users write it, read in UTC or an IANA zone.
//!
//! Parsing is `croner`'s (Vixie semantics: day of week 0–7 with 0 and 7
//! Sunday, names, ranges, steps, lists, day of month OR day of week); this
//! module adds the checks users need a clear reason for (field count, a
//! step of zero, a schedule that never fires) and the plain-English
//! description shown as `schedule_human`.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing but white space was given.
    #[error("schedule is empty: write 5 cron fields, e.g. \"0 */4 * * *\"")]
    Empty,
    #[error(
        "expected 5 fields (minute hour day-of-month month day-of-week), found {found} in {expr:?}"
    )]
    /// Not five fields (seconds and years are not accepted).
    FieldCount {
        /// The expression as given (trimmed).
        expr: String,
        /// How many fields it has.
        found: usize,
    },
    /// A field is out of range or malformed, or a step is zero.
    #[error("invalid cron expression {expr:?}: {reason}")]
    Invalid {
        /// The expression as given (trimmed).
        expr: String,
        /// What is wrong, in the parser's words.
        reason: String,
    },
    /// The expression is valid but matches no date (`0 0 31 2 *`).
    #[error("cron expression {expr:?} never fires")]
    NeverFires {
        /// The expression as given (trimmed).
        expr: String,
    },
    /// The time zone is not an IANA name known to `chrono-tz`.
    #[error("unknown time zone {0:?} (use an IANA name such as \"Europe/Berlin\")")]
    UnknownTimezone(String),
}

impl ScheduleError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::UnknownTimezone(_) => "timezone",
            _ => "schedule",
        }
    }
}

impl From<ScheduleError> for crate::Error {
    fn from(err: ScheduleError) -> Self {
        crate::Error::invalid(err.field(), err.to_string())
    }
}

/// A parsed schedule: the cron expression and the zone it is read in.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use mediadl::scheduler::{Schedule, ScheduleError};
///
/// let every_4_hours = Schedule::parse("0 */4 * * *", None).expect("valid");
/// assert_eq!(every_4_hours.describe(), "Every 4 hours");
/// let at = Utc.with_ymd_and_hms(2026, 3, 1, 10, 30, 0).unwrap();
/// assert_eq!(
///     every_4_hours.next_after(at),
///     Some(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap())
/// );
///
/// // 09:00 in Berlin is 08:00 UTC in winter.
/// let berlin = Schedule::parse("0 9 * * *", Some("Europe/Berlin")).expect("valid");
/// assert_eq!(
///     berlin.next_after(at),
///     Some(Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap())
/// );
///
/// assert!(matches!(
///     Schedule::parse("0 0 * *", None),
///     Err(ScheduleError::FieldCount { found: 4, .. })
/// ));
/// assert!(matches!(
///     Schedule::parse("0 0 31 2 *", None),
///     Err(ScheduleError::NeverFires { .. })
/// ));
/// ```
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    timezone: Option<Tz>,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr && self.timezone == other.timezone
    }
}

impl Schedule {
    /// Parses standard 5-field cron (or an `@hourly`-style nickname), read
    /// in `timezone` (an IANA name) or UTC when absent.
    ///
    /// # Errors
    ///
    /// A [`ScheduleError`] saying what to fix: an empty expression, a wrong
    /// field count, an invalid field or zero step, one that never fires, or
    /// an unknown time zone.
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<Self, ScheduleError> {
        let expr = expr.trim();
        if expr.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let timezone = match timezone.map(str::trim).filter(|tz| !tz.is_empty()) {
            Some(name) => Some(
                Tz::from_str(name).map_err(|_| ScheduleError::UnknownTimezone(name.to_owned()))?,
            ),
            None => None,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if !expr.starts_with('@') && fields.len() != 5 {
            return Err(ScheduleError::FieldCount {
                expr: expr.to_owned(),
                found: fields.len(),
            });
        }
        // croner accepts `*/0` in some positions; a zero step never makes sense.
        for field in &fields {
            for part in field.split(',') {
                if let Some((_, step)) = part.split_once('/')
                    && step.trim().parse::<u32>().is_ok_and(|step| step == 0)
                {
                    return Err(ScheduleError::Invalid {
                        expr: expr.to_owned(),
                        reason: format!("step of zero in {field:?}"),
                    });
                }
            }
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|err| ScheduleError::Invalid {
                expr: expr.to_owned(),
                reason: err.to_string(),
            })?;
        let schedule = Self {
            expr: expr.to_owned(),
            cron,
            timezone,
        };
        // `0 0 31 2 *` parses but never fires; croner would search for a long
        // time at every tick. Probe once over a leap cycle.
        let probe = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
        if probe.and_then(|at| schedule.next_after(at)).is_none() {
            return Err(ScheduleError::NeverFires {
                expr: expr.to_owned(),
            });
        }
        Ok(schedule)
    }

    /// The expression as given (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The zone the schedule is read in (`None`: UTC).
    pub fn timezone(&self) -> Option<Tz> {
        self.timezone
    }

    /// The first slot strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.timezone {
            Some(tz) => self
                .cron
                .find_next_occurrence(&after.with_timezone(&tz), false)
                .ok()
                .map(|at| at.with_timezone(&Utc)),
            None => self.cron.find_next_occurrence(&after, false).ok(),
        }
    }

    /// The latest slot at or before `at`.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.timezone {
            Some(tz) => self
                .cron
                .find_previous_occurrence(&at.with_timezone(&tz), true)
                .ok()
                .map(|at| at.with_timezone(&Utc)),
            None => self.cron.find_previous_occurrence(&at, true).ok(),
        }
    }

    /// Whether the schedule fires at `at`.
    pub fn is_slot(&self, at: DateTime<Utc>) -> bool {
        self.latest_at_or_before(at) == Some(at)
    }

    /// Plain English for the common shapes ("Every 4 hours", "Every day at
    /// 09:00", "Every Monday at 06:30", "Every 15 minutes"), croner's
    /// description otherwise; a zoned schedule names its zone.
    pub fn describe(&self) -> String {
        let text = describe_common(&self.expr).unwrap_or_else(|| self.cron.describe());
        match self.timezone {
            Some(tz) => format!("{text} ({})", tz.name()),
            None => text,
        }
    }
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn number(field: &str, max: u32) -> Option<u32> {
    field.parse::<u32>().ok().filter(|n| *n <= max)
}

/// `*/N` or `*` (N = 1) as a step.
fn every(field: &str) -> Option<u32> {
    if field == "*" {
        return Some(1);
    }
    field.strip_prefix("*/").and_then(|n| n.parse().ok())
}

fn weekday(field: &str) -> Option<usize> {
    if let Some(n) = number(field, 7) {
        return Some(n as usize % 7);
    }
    let upper = field.to_ascii_uppercase();
    WEEKDAYS
        .iter()
        .position(|day| day[..3].eq_ignore_ascii_case(&upper))
}

fn plural(n: u32, unit: &str) -> String {
    if n == 1 {
        format!("Every {unit}")
    } else {
        format!("Every {n} {unit}s")
    }
}

fn describe_common(expr: &str) -> Option<String> {
    match expr.to_ascii_lowercase().as_str() {
        "@hourly" => return Some("Every hour".into()),
        "@daily" | "@midnight" => return Some("Every day at 00:00".into()),
        "@weekly" => return Some("Every Sunday at 00:00".into()),
        "@monthly" => return Some("On day 1 of every month at 00:00".into()),
        "@yearly" | "@annually" => return Some("Every year on January 1 at 00:00".into()),
        _ => {}
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return None;
    };
    if *month != "*" {
        return None;
    }
    let date_wild = *dom == "*" && *dow == "*";
    // Interval shapes: "*/15 * * * *", "0 */4 * * *", "30 * * * *".
    if date_wild && *hour == "*" {
        if let Some(step) = every(minute) {
            return Some(plural(step, "minute"));
        }
        if let Some(m) = number(minute, 59) {
            return Some(if m == 0 {
                "Every hour".into()
            } else {
                format!("Every hour at minute {m}")
            });
        }
        return None;
    }
    let m = number(minute, 59);
    if date_wild && let (Some(m), Some(step)) = (m, every(hour)) {
        let base = plural(step, "hour");
        return Some(if m == 0 {
            base
        } else {
            format!("{base} at minute {m}")
        });
    }
    let (m, h) = (m?, number(hour, 23)?);
    let at = format!("{h:02}:{m:02}");
    match (*dom, *dow) {
        ("*", "*") => Some(format!("Every day at {at}")),
        ("*", "1-5") | ("*", "MON-FRI") | ("*", "mon-fri") => {
            Some(format!("Every weekday (Monday to Friday) at {at}"))
        }
        ("*", days) => {
            let names: Option<Vec<&str>> = days
                .split(',')
                .map(|day| weekday(day).map(|i| WEEKDAYS[i]))
                .collect();
            let names = names?;
            let list = match names.as_slice() {
                [one] => (*one).to_owned(),
                [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
                [] => return None,
            };
            Some(format!("Every {list} at {at}"))
        }
        (day, "*") => {
            let day = number(day, 31).filter(|d| *d >= 1)?;
            Some(format!("On day {day} of every month at {at}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("", None, "empty"),
            ("   ", None, "empty"),
            ("*/0 * * * *", None, "step of zero"),
            ("0 */0 * * *", None, "step of zero"),
            ("60 * * * *", None, "invalid cron"),
            ("0 24 * * *", None, "invalid cron"),
            ("0 0 32 * *", None, "invalid cron"),
            ("0 0 0 * *", None, "invalid cron"),
            ("0 0 * 13 *", None, "invalid cron"),
            ("0 0 * * 8", None, "invalid cron"),
            ("0 0 * * MOX", None, "invalid cron"),
            ("0 0 * *", None, "expected 5 fields"),
            ("0 0 0 * * *", None, "expected 5 fields"),
            ("every hour", None, "expected 5 fields"),
            ("0 0 31 2 *", None, "never fires"),
            ("0 * * * *", Some("Mars/Olympus"), "unknown time zone"),
        ];
        for (expr, tz, expected) in cases {
            let err = Schedule::parse(expr, *tz).expect_err(expr);
            assert!(
                err.to_string().contains(expected),
                "{expr:?}: {err} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn timezone_errors_name_the_timezone_field() {
        let err = Schedule::parse("0 * * * *", Some("Nowhere/City")).unwrap_err();
        assert_eq!(err.field(), "timezone");
        let err = Schedule::parse("*/0 * * * *", None).unwrap_err();
        assert_eq!(err.field(), "schedule");
    }

    #[test]
    fn accepts_the_standard_shapes() {
        for expr in [
            "0 */4 * * *",
            "*/15 * * * *",
            "30 6 * * 1",
            "30 6 * * MON",
            "0 9 * * 0",
            "0 9 * * 7",
            "0 9 * * SUN",
            "0 9 * * 1-5",
            "0 9 * * MON-FRI",
            "0 9,18 * * *",
            "0 9 1,15 * *",
            "0 0 1 JAN,JUL *",
            "5-10/5 * * * *",
            "@hourly",
            "@daily",
            " 0 0 29 2 * ",
        ] {
            Schedule::parse(expr, None).unwrap_or_else(|err| panic!("{expr}: {err}"));
        }
    }

    /// (expression, zone, after, expected next slot), all instants in UTC.
    #[test]
    fn next_run_table() {
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            // Plain intervals.
            (
                "0 */4 * * *",
                None,
                "2025-10-13T12:00:00Z",
                "2025-10-13T16:00:00Z",
            ),
            (
                "0 */4 * * *",
                None,
                "2025-10-13T12:00:01Z",
                "2025-10-13T16:00:00Z",
            ),
            (
                "*/15 * * * *",
                None,
                "2025-10-13T12:07:00Z",
                "2025-10-13T12:15:00Z",
            ),
            // Month ends: 30-day, 31-day, December into January.
            (
                "0 0 * * *",
                None,
                "2025-04-30T12:00:00Z",
                "2025-05-01T00:00:00Z",
            ),
            (
                "0 0 31 * *",
                None,
                "2025-04-01T00:00:00Z",
                "2025-05-31T00:00:00Z",
            ),
            (
                "30 23 * * *",
                None,
                "2025-12-31T23:30:00Z",
                "2026-01-01T23:30:00Z",
            ),
            (
                "0 0 1 * *",
                None,
                "2025-12-15T00:00:00Z",
                "2026-01-01T00:00:00Z",
            ),
            // Leap days: Feb 29 only in leap years; Feb 28 → Mar 1 otherwise.
            (
                "0 12 29 2 *",
                None,
                "2025-03-01T00:00:00Z",
                "2028-02-29T12:00:00Z",
            ),
            (
                "0 0 * * *",
                None,
                "2024-02-28T06:00:00Z",
                "2024-02-29T00:00:00Z",
            ),
            (
                "0 0 * * *",
                None,
                "2025-02-28T06:00:00Z",
                "2025-03-01T00:00:00Z",
            ),
            // Day of week: 0 and 7 are Sunday; names; OR with day of month.
            (
                "0 9 * * 0",
                None,
                "2025-10-13T00:00:00Z",
                "2025-10-19T09:00:00Z",
            ),
            (
                "0 9 * * 7",
                None,
                "2025-10-13T00:00:00Z",
                "2025-10-19T09:00:00Z",
            ),
            (
                "30 6 * * MON",
                None,
                "2025-10-13T07:00:00Z",
                "2025-10-20T06:30:00Z",
            ),
            (
                "0 9 * * 1-5",
                None,
                "2025-10-17T10:00:00Z",
                "2025-10-20T09:00:00Z",
            ),
            (
                "0 0 13 * 5",
                None,
                "2025-10-01T00:00:00Z",
                "2025-10-03T00:00:00Z",
            ),
            // A zoned daily job keeps its wall clock time across DST.
            (
                "0 9 * * *",
                Some("Europe/Berlin"),
                "2025-03-29T09:00:00Z",
                "2025-03-30T07:00:00Z",
            ),
            (
                "0 9 * * *",
                Some("Europe/Berlin"),
                "2025-10-25T08:00:00Z",
                "2025-10-26T08:00:00Z",
            ),
            (
                "0 9 * * *",
                Some("America/New_York"),
                "2025-03-08T14:00:00Z",
                "2025-03-09T13:00:00Z",
            ),
            // 02:30 does not exist in Berlin on 2025-03-30 (02:00 → 03:00):
            // the job runs once, at the first instant after the gap.
            (
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2025-03-29T12:00:00Z",
                "2025-03-30T01:00:00Z",
            ),
            // 02:30 happens twice in Berlin on 2025-10-26: a fixed-time
            // job runs once, at the first of the two.
            (
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2025-10-25T12:00:00Z",
                "2025-10-26T00:30:00Z",
            ),
            (
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2025-10-26T00:30:00Z",
                "2025-10-27T01:30:00Z",
            ),
            // An hourly zoned job is 1 hour apart in UTC across both changes.
            (
                "0 * * * *",
                Some("Europe/Berlin"),
                "2025-03-30T00:30:00Z",
                "2025-03-30T01:00:00Z",
            ),
            (
                "0 * * * *",
                Some("Europe/Berlin"),
                "2025-10-26T00:30:00Z",
                "2025-10-26T01:00:00Z",
            ),
        ];
        for (expr, tz, after, expected) in cases {
            let schedule = Schedule::parse(expr, *tz).unwrap();
            let next = schedule.next_after(utc(after));
            assert_eq!(next, Some(utc(expected)), "{expr} in {tz:?} after {after}");
            assert!(schedule.is_slot(utc(expected)), "{expr}: {expected}");
        }
    }

    #[test]
    fn latest_slot_at_or_before() {
        let schedule = Schedule::parse("0 */4 * * *", None).unwrap();
        assert_eq!(
            schedule.latest_at_or_before(utc("2025-10-13T16:00:00Z")),
            Some(utc("2025-10-13T16:00:00Z"))
        );
        assert_eq!(
            schedule.latest_at_or_before(utc("2025-10-13T19:59:59Z")),
            Some(utc("2025-10-13T16:00:00Z"))
        );
        let zoned = Schedule::parse("0 9 * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            zoned.latest_at_or_before(utc("2025-07-01T12:00:00Z")),
            Some(utc("2025-07-01T07:00:00Z"))
        );
    }

    #[test]
    fn describes_common_shapes_in_plain_english() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("0 */4 * * *", None, "Every 4 hours"),
            ("15 */2 * * *", None, "Every 2 hours at minute 15"),
            ("0 * * * *", None, "Every hour"),
            ("0 */1 * * *", None, "Every hour"),
            ("45 * * * *", None, "Every hour at minute 45"),
            ("*/15 * * * *", None, "Every 15 minutes"),
            ("* * * * *", None, "Every minute"),
            ("0 9 * * *", None, "Every day at 09:00"),
            ("30 6 * * 1", None, "Every Monday at 06:30"),
            ("30 6 * * mon", None, "Every Monday at 06:30"),
            ("0 8 * * 7", None, "Every Sunday at 08:00"),
            ("0 8 * * 1,4", None, "Every Monday and Thursday at 08:00"),
            (
                "0 8 * * 1-5",
                None,
                "Every weekday (Monday to Friday) at 08:00",
            ),
            ("0 3 1 * *", None, "On day 1 of every month at 03:00"),
            ("@hourly", None, "Every hour"),
            (
                "0 9 * * *",
                Some("Europe/Berlin"),
                "Every day at 09:00 (Europe/Berlin)",
            ),
        ];
        for (expr, tz, expected) in cases {
            let schedule = Schedule::parse(expr, *tz).unwrap();
            assert_eq!(schedule.describe(), *expected, "{expr}");
        }
    }

    /// One field of a generated expression and the values it stands for.
    ///
    /// `step_weight` 0 leaves out `*/n`: in the day fields its meaning
    /// depends on conventions the naive matcher does not model (`*/n` in
    /// day of month spans 1–31 whatever the month, and Vixie cron treats a
    /// field starting with `*` as unrestricted for the OR rule).
    fn field_strategy(
        min: u32,
        max: u32,
        wildcard_weight: u32,
        step_weight: u32,
    ) -> impl proptest::strategy::Strategy<Value = (String, Vec<u32>)> {
        use proptest::prelude::*;
        prop_oneof![
            wildcard_weight => Just(("*".to_owned(), (min..=max).collect())),
            step_weight => (1..=(max - min).max(1)).prop_map(move |step| {
                (format!("*/{step}"), (min..=max).step_by(step as usize).collect())
            }),
            2 => proptest::collection::btree_set(min..=max, 1..4).prop_map(|set| {
                let text: Vec<String> = set.iter().map(u32::to_string).collect();
                (text.join(","), set.into_iter().collect())
            }),
            1 => (min..=max, min..=max).prop_map(|(a, b)| {
                let (lo, hi) = (a.min(b), a.max(b));
                (format!("{lo}-{hi}"), (lo..=hi).collect())
            }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]

        /// croner against a naive minute-by-minute matcher with Vixie
        /// semantics (day of month OR day of week when both are
        /// restricted; 7 is Sunday), from random instants.
        #[test]
        fn next_after_agrees_with_a_naive_matcher(
            (minute, minutes) in field_strategy(0, 59, 1, 1),
            (hour, hours) in field_strategy(0, 23, 2, 1),
            (dom, doms) in field_strategy(1, 28, 4, 0),
            (dow, dows) in field_strategy(0, 7, 3, 0),
            start in 1_577_836_800i64..1_893_456_000i64,
        ) {
            use chrono::{Datelike, Timelike};
            let expr = format!("{minute} {hour} {dom} * {dow}");
            let schedule = Schedule::parse(&expr, None).unwrap();
            let after = DateTime::<Utc>::from_timestamp(start, 0).unwrap();
            let dom_restricted = dom != "*";
            let dow_restricted = dow != "*";
            let matches = |at: DateTime<Utc>| {
                let weekday = at.weekday().num_days_from_sunday();
                let dom_ok = doms.contains(&at.day());
                let dow_ok = dows.iter().any(|d| d % 7 == weekday);
                let day_ok = match (dom_restricted, dow_restricted) {
                    (true, true) => dom_ok || dow_ok,
                    (true, false) => dom_ok,
                    (false, true) => dow_ok,
                    (false, false) => true,
                };
                minutes.contains(&at.minute()) && hours.contains(&at.hour()) && day_ok
            };
            let mut at = after
                .with_second(0)
                .unwrap()
                + chrono::Duration::minutes(1);
            let limit = after + chrono::Duration::days(70);
            while !matches(at) && at < limit {
                at += chrono::Duration::minutes(1);
            }
            proptest::prop_assert!(at < limit, "{expr}: no slot within 70 days");
            proptest::prop_assert_eq!(schedule.next_after(after), Some(at), "{}", expr);
            proptest::prop_assert_eq!(schedule.latest_at_or_before(at), Some(at), "{}", expr);
        }
    }

    #[test]
    fn uncommon_shapes_get_a_generic_description() {
        let schedule = Schedule::parse("0 9-17/2 1-7 * 1", None).unwrap();
        let text = schedule.describe();
        assert!(!text.is_empty());
        assert_ne!(text, schedule.expr());
    }
}
