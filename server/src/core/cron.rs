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
        let minutes = field(minute, "minute", 0, 59)?;
        let hours = field(hour, "hour", 0, 23)?;
        let days = field(day, "day of month", 1, 31)?;
        let months = field(month, "month", 1, 12)?;
        // Sunday is 0 or 7.
        let weekdays = field(weekday, "weekday", 0, 7)?;
        Ok(Schedule {
            text: fields.join(" "),
            minutes,
            hours,
            days,
            months,
            weekdays: (weekdays | (weekdays >> 7)) & 0x7f,
            // As in crontab, a day field starting with `*` (`*`, `*/2`) does not restrict.
            days_restricted: !day.starts_with('*'),
            weekdays_restricted: !weekday.starts_with('*'),
        })
    }

    /// Whether a run is due in the minute of `at` (UTC).
    pub fn matches(&self, at: OffsetDateTime) -> bool {
        let at = at.to_offset(time::UtcOffset::UTC);
        self.day_matches(at.date()) && bit(self.minutes, at.minute()) && bit(self.hours, at.hour())
    }

    fn day_matches(&self, date: time::Date) -> bool {
        let day = bit(self.days, date.day());
        let weekday = bit(self.weekdays, date.weekday().number_days_from_sunday());
        let day_ok = match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            _ => day && weekday,
        };
        day_ok && bit(self.months, u8::from(date.month()))
    }

    /// The first minute after `after` when a run is due, within eight years (a leap day's
    /// schedule comes round in four); `None` for one that never is, such as "0 0 31 2 *".
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let after = after.to_offset(time::UtcOffset::UTC);
        let mut date = after.date();
        for _ in 0..=8 * 366 {
            if self.day_matches(date) {
                for hour in (0..24).filter(|h| bit(self.hours, *h)) {
                    for minute in (0..60).filter(|m| bit(self.minutes, *m)) {
                        let at = date.with_hms(hour, minute, 0).ok()?.assume_utc();
                        if at > after {
                            return Some(at);
                        }
                    }
                }
            }
            date = date.next_day()?;
        }
        None
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn bit(set: u64, value: u8) -> bool {
    set & (1 << value) != 0
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
                Ok(step) if step > 0 && step <= max => (range, step),
                _ => return wrong(&format!("has a step that is not from 1 to {max}")),
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
        let never = Schedule::parse("0 0 31 2 *").unwrap();
        assert_eq!(never.next_after(datetime!(2026-01-01 0:00 UTC)), None);
        let leap = Schedule::parse("0 12 29 2 *").unwrap();
        assert_eq!(
            leap.next_after(datetime!(2026-12-02 10:00 UTC)),
            Some(datetime!(2028-02-29 12:00 UTC))
        );
        // A day field starting with `*` (`*/2`) does not make either day enough: both must
        // match, as in crontab.
        let odd_mondays = Schedule::parse("0 0 */2 * 1").unwrap();
        assert!(!odd_mondays.matches(datetime!(2026-12-01 00:00 UTC)), "a Tuesday, the 1st");
        assert!(odd_mondays.matches(datetime!(2026-12-07 00:00 UTC)), "a Monday, the 7th");
        assert!(!odd_mondays.matches(datetime!(2026-12-14 00:00 UTC)), "a Monday, the 14th");
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
