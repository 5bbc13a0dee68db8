//! Cron expressions, as Heroku Scheduler's and crontab's users write them: five fields
//! (minute, hour, day of month, month, day of week), each `*`, a number, a range `a-b`, a
//! step `*/n` or `a-b/n`, or a comma-separated list of those; times are UTC. When both day
//! fields are restricted, a day matching either one counts (crontab's rule).

use time::OffsetDateTime;

/// A parsed expression: which values of each field match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day-of-month and day-of-week fields were given (not `*`).
    days_restricted: bool,
    weekdays_restricted: bool,
}

impl Schedule {
    /// Parses `text`; the error says which field is wrong and how fields are written.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!(
                "{text:?} has {} fields; a schedule has five, MINUTE HOUR DAY MONTH WEEKDAY, \
                 in UTC (e.g. \"0 3 * * *\": every day at 03:00)",
                fields.len()
            ));
        };
        // Sunday is 0 or 7.
        let weekdays = field(weekday, "weekday", 0, 7)?;
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        Ok(Schedule {
            text: fields.join(" "),
            minutes: field(minute, "minute", 0, 59)?,
            hours: field(hour, "hour", 0, 23)?,
            days: field(day, "day of month", 1, 31)?,
            months: field(month, "month", 1, 12)?,
            weekdays,
            days_restricted: day != "*",
            weekdays_restricted: weekday != "*",
        })
    }

    /// Whether a run is due in the minute of `at` (UTC).
    pub fn matches(&self, at: OffsetDateTime) -> bool {
        let at = at.to_offset(time::UtcOffset::UTC);
        let bit = |set: u64, value: u8| set & (1 << value) != 0;
        let day = bit(self.days, at.day());
        let weekday = bit(self.weekdays, at.weekday().number_days_from_sunday());
        let day_ok = match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            _ => day && weekday,
        };
        bit(self.minutes, at.minute())
            && bit(self.hours, at.hour())
            && bit(self.months, u8::from(at.month()))
            && day_ok
    }

    /// The first minute after `after` when a run is due, within a year (else `None`: a
    /// schedule such as "0 0 31 2 *" never is).
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let start = after.to_offset(time::UtcOffset::UTC).replace_second(0).ok()?;
        let start = start.replace_nanosecond(0).ok()?;
        (1..=366 * 24 * 60).map(|m| start + time::Duration::minutes(m)).find(|at| self.matches(*at))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The set of values (bit n for value n) one field matches.
fn field(text: &str, name: &str, min: u8, max: u8) -> Result<u64, String> {
    let wrong = |why: &str| {
        Err(format!(
            "the {name} field {text:?} {why}: write *, a number from {min} to {max}, a range \
             like {min}-{max}, a step like */5, or a list like 1,15"
        ))
    };
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => match step.parse::<u8>() {
                Ok(step) if step > 0 => (range, step),
                _ => return wrong("has a step that is not a positive number"),
            },
            None => (part, 1),
        };
        let (low, high) = if range == "*" {
            (min, max)
        } else if let Some((low, high)) = range.split_once('-') {
            match (low.parse::<u8>(), high.parse::<u8>()) {
                (Ok(low), Ok(high)) if low <= high => (low, high),
                _ => return wrong("has a range that is not LOW-HIGH"),
            }
        } else {
            match range.parse::<u8>() {
                // `5/10`: from 5 to the end, every 10.
                Ok(value) if step > 1 => (value, max),
                Ok(value) => (value, value),
                Err(_) => return wrong("is not understood"),
            }
        };
        if low < min || high > max {
            return wrong("is out of range");
        }
        let mut value = low;
        while value <= high {
            set |= 1 << value;
            value = match value.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn daily_and_stepped_schedules_match_their_minutes() {
        let daily = Schedule::parse("0 3 * * *").unwrap();
        assert!(daily.matches(datetime!(2026-12-02 03:00:59 UTC)));
        assert!(!daily.matches(datetime!(2026-12-02 03:01 UTC)));
        assert_eq!(
            daily.next_after(datetime!(2026-12-02 03:00:10 UTC)),
            Some(datetime!(2026-12-03 03:00 UTC))
        );
        let every_15 = Schedule::parse("*/15 9-17 * * 1-5").unwrap();
        // 2026-12-02 is a Wednesday, 2026-12-05 a Saturday.
        assert!(every_15.matches(datetime!(2026-12-02 09:45 UTC)));
        assert!(!every_15.matches(datetime!(2026-12-02 09:50 UTC)));
        assert!(!every_15.matches(datetime!(2026-12-05 09:45 UTC)));
        let sundays = Schedule::parse("30 11 * * 7").unwrap();
        assert!(sundays.matches(datetime!(2026-12-06 11:30 UTC)));
        let list = Schedule::parse("0 0,12 1,15 * *").unwrap();
        assert!(list.matches(datetime!(2026-12-15 12:00 UTC)));
        assert!(!list.matches(datetime!(2026-12-14 12:00 UTC)));
        // Both day fields given: either one is enough, as in crontab.
        let either = Schedule::parse("0 0 1 * 3").unwrap();
        assert!(either.matches(datetime!(2026-12-02 00:00 UTC)), "a Wednesday");
        assert!(either.matches(datetime!(2027-01-01 00:00 UTC)), "the 1st");
        assert_eq!(
            Schedule::parse("0 0 31 2 *").unwrap().next_after(datetime!(2026-01-01 0:00 UTC)),
            None
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (text, says) in [
            ("0 3 * *", "has 4 fields"),
            ("60 3 * * *", "minute field \"60\" is out of range"),
            ("0 24 * * *", "hour field"),
            ("0 3 0 * *", "day of month field"),
            ("0 3 * 13 *", "month field"),
            ("0 3 * * 8", "weekday field"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "range"),
            ("daily * * * *", "not understood"),
        ] {
            let error = Schedule::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
