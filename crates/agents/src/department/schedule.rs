//! The department's timetable: which job runs when, in the department's time zone.
//!
//! A [`Schedule`] is data, not a timer: it answers "when is this job next due after `t`?" for
//! any `t`. The simulated driver ([`super::SimulatedDriver`]) uses that to jump the clock straight
//! to the next due time; a wall-clock scheduler (tokio-cron-scheduler in `serve`) can register
//! the same jobs from [`Recurrence::cron_expression`].

use std::fmt;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use salesdept_events::domain::WorkingHours;

/// What the department does on a schedule. The order is the order jobs due at the same instant
/// run in: the strategy before the day's search, the search before the allocation, the
/// allocation before the report and the sends, projections last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    /// The Sales Manager's weekly strategy review.
    WeeklyStrategy,
    /// The Lead Finder's own search, when nobody requested one within its interval.
    ScheduledSearch,
    /// The Sales Manager's daily coordination: today's search request and allocations.
    Coordination,
    /// The Sales Manager's daily report.
    DailyReport,
    /// Reading replies and accepted invitations (every 2 h, and when the provider signals).
    InboxCheck,
    /// Outreach: send what is due under the accounts' limits.
    OutreachTick,
    /// The Sales Manager's monitoring of the agents.
    Monitoring,
    /// The Sheet (or its CSV file) brought up to date with the lead table.
    SheetSync,
}

impl JobKind {
    pub const ALL: [JobKind; 8] = [
        Self::WeeklyStrategy,
        Self::ScheduledSearch,
        Self::Coordination,
        Self::DailyReport,
        Self::InboxCheck,
        Self::OutreachTick,
        Self::Monitoring,
        Self::SheetSync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WeeklyStrategy => "weekly_strategy",
            Self::ScheduledSearch => "scheduled_search",
            Self::Coordination => "coordination",
            Self::DailyReport => "daily_report",
            Self::InboxCheck => "inbox_check",
            Self::OutreachTick => "outreach_tick",
            Self::Monitoring => "monitoring",
            Self::SheetSync => "sheet_sync",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a job recurs, in the schedule's time zone.
#[derive(Clone, Debug, PartialEq)]
pub enum Recurrence {
    /// At a local time on the given weekdays (all seven when empty).
    Daily { at: NaiveTime, days: Vec<Weekday> },
    /// Every `interval` from local midnight (so 2 h means 00:00, 02:00, …), and when `within` is
    /// set only inside those working hours (from their opening on).
    Every {
        interval: TimeDelta,
        within: Option<WorkingHours>,
    },
}

impl Recurrence {
    /// The first due time strictly after `after`.
    pub fn next_after(&self, time_zone: Tz, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Daily { at, days } => {
                let mut date = after.with_timezone(&time_zone).date_naive();
                for _ in 0..16 {
                    if days.is_empty() || days.contains(&date.weekday()) {
                        let due = local_instant(time_zone, date, *at);
                        if due > after {
                            return due;
                        }
                    }
                    date = date.succ_opt().unwrap_or(date);
                }
                after + TimeDelta::days(1)
            }
            Self::Every { interval, within } => {
                let interval = (*interval).max(TimeDelta::minutes(1));
                let mut candidate = next_multiple(time_zone, interval, after);
                let Some(hours) = within else {
                    return candidate;
                };
                // At most a fortnight of candidates: working hours open within that.
                for _ in 0..(15 * 24 * 60 / interval.num_minutes().max(1) + 2) {
                    if hours.contains(candidate) {
                        return candidate;
                    }
                    let opening = hours.next_opening(candidate);
                    candidate = if opening > candidate && opening > after {
                        opening
                    } else {
                        next_multiple(time_zone, interval, candidate)
                    };
                }
                candidate
            }
        }
    }

    /// The same recurrence as a six-field cron expression (sec min hour day month weekday), for
    /// a wall-clock scheduler. Intervals that do not divide an hour or a day are rounded to
    /// whole minutes or hours.
    pub fn cron_expression(&self) -> String {
        match self {
            Self::Daily { at, days } => format!(
                "0 {} {} * * {}",
                at.format("%-M"),
                at.format("%-H"),
                weekday_field(days)
            ),
            Self::Every { interval, within } => {
                let minutes = interval.num_minutes().max(1);
                let (minute, hour) = if minutes < 60 {
                    (format!("*/{minutes}"), "*".to_owned())
                } else if minutes >= 24 * 60 {
                    ("0".to_owned(), "0".to_owned())
                } else {
                    ("0".to_owned(), format!("*/{}", (minutes / 60).clamp(1, 23)))
                };
                match within {
                    None => format!("0 {minute} {hour} * * *"),
                    Some(hours) => {
                        let first = hours.start.format("%-H").to_string();
                        let last = (hours.end - TimeDelta::minutes(1))
                            .format("%-H")
                            .to_string();
                        let hour = if hour == "*" {
                            format!("{first}-{last}")
                        } else {
                            format!("{first}-{last}/{}", (minutes / 60).clamp(1, 23))
                        };
                        format!("0 {minute} {hour} * * {}", weekday_field(&hours.days))
                    }
                }
            }
        }
    }
}

fn weekday_field(days: &[Weekday]) -> String {
    if days.is_empty() || days.len() == 7 {
        return "*".to_owned();
    }
    days.iter()
        .map(|day| match day {
            Weekday::Mon => "Mon",
            Weekday::Tue => "Tue",
            Weekday::Wed => "Wed",
            Weekday::Thu => "Thu",
            Weekday::Fri => "Fri",
            Weekday::Sat => "Sat",
            Weekday::Sun => "Sun",
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The first multiple of `interval` from the local midnight of `after`'s day (or a later day)
/// strictly after `after`.
fn next_multiple(time_zone: Tz, interval: TimeDelta, after: DateTime<Utc>) -> DateTime<Utc> {
    let mut date = after.with_timezone(&time_zone).date_naive();
    for _ in 0..3 {
        let midnight = local_instant(time_zone, date, NaiveTime::MIN);
        let next_midnight =
            local_instant(time_zone, date.succ_opt().unwrap_or(date), NaiveTime::MIN);
        if after < midnight {
            return midnight;
        }
        let elapsed = (after - midnight).num_seconds();
        let step = interval.num_seconds().max(60);
        let candidate = midnight + TimeDelta::seconds((elapsed / step + 1) * step);
        if candidate < next_midnight {
            return candidate;
        }
        date = date.succ_opt().unwrap_or(date);
    }
    after + interval
}

/// A local wall-clock time as an instant; in a daylight-saving gap an hour later, in an overlap
/// the earlier instant.
fn local_instant(time_zone: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    let resolved = match time_zone.from_local_datetime(&local) {
        LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => Some(instant),
        LocalResult::None => time_zone
            .from_local_datetime(&(local + TimeDelta::hours(1)))
            .earliest(),
    };
    resolved.map_or_else(|| local.and_utc(), |instant| instant.with_timezone(&Utc))
}

/// One job and when it recurs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledJob {
    pub kind: JobKind,
    pub recurrence: Recurrence,
}

/// The times of the department's jobs (the seed's defaults in [`ScheduleSettings::default`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleSettings {
    pub time_zone: Tz,
    /// The Sales Manager's coordination (default 09:00, every day).
    pub coordination_at: NaiveTime,
    /// The daily report (default 09:15, every day).
    pub report_at: NaiveTime,
    /// The weekly strategy review (default Monday 08:30).
    pub strategy_day: Weekday,
    pub strategy_at: NaiveTime,
    /// Outreach ticks inside these hours (the accounts' own hours still decide each send).
    pub outreach_hours: WorkingHours,
    /// How often Outreach is woken inside its hours, besides when it asks to be (default 30 min).
    pub outreach_every: TimeDelta,
    /// Replies and acceptances (default 2 h).
    pub inbox_every: TimeDelta,
    /// The Lead Finder's own search interval (default 24 h).
    pub search_every: TimeDelta,
    /// Monitoring (default 1 h).
    pub monitor_every: TimeDelta,
    /// The Sheet's sync (default 1 h).
    pub sheet_sync_every: TimeDelta,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        let time = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("a valid time");
        Self {
            time_zone: Tz::UTC,
            coordination_at: time(9, 0),
            report_at: time(9, 15),
            strategy_day: Weekday::Mon,
            strategy_at: time(8, 30),
            outreach_hours: WorkingHours::default(),
            outreach_every: TimeDelta::minutes(30),
            inbox_every: TimeDelta::hours(2),
            search_every: TimeDelta::hours(24),
            monitor_every: TimeDelta::hours(1),
            sheet_sync_every: TimeDelta::hours(1),
        }
    }
}

/// The department's jobs.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub time_zone: Tz,
    pub jobs: Vec<ScheduledJob>,
}

impl Schedule {
    pub fn new(settings: &ScheduleSettings) -> Self {
        let every = |kind, interval| ScheduledJob {
            kind,
            recurrence: Recurrence::Every {
                interval,
                within: None,
            },
        };
        Self {
            time_zone: settings.time_zone,
            jobs: vec![
                ScheduledJob {
                    kind: JobKind::WeeklyStrategy,
                    recurrence: Recurrence::Daily {
                        at: settings.strategy_at,
                        days: vec![settings.strategy_day],
                    },
                },
                every(JobKind::ScheduledSearch, settings.search_every),
                ScheduledJob {
                    kind: JobKind::Coordination,
                    recurrence: Recurrence::Daily {
                        at: settings.coordination_at,
                        days: Vec::new(),
                    },
                },
                ScheduledJob {
                    kind: JobKind::DailyReport,
                    recurrence: Recurrence::Daily {
                        at: settings.report_at,
                        days: Vec::new(),
                    },
                },
                every(JobKind::InboxCheck, settings.inbox_every),
                ScheduledJob {
                    kind: JobKind::OutreachTick,
                    recurrence: Recurrence::Every {
                        interval: settings.outreach_every,
                        within: Some(settings.outreach_hours.clone()),
                    },
                },
                every(JobKind::Monitoring, settings.monitor_every),
                every(JobKind::SheetSync, settings.sheet_sync_every),
            ],
        }
    }

    /// When `kind` is next due strictly after `after` (None when the schedule lacks it).
    pub fn next_after(&self, kind: JobKind, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.jobs
            .iter()
            .filter(|job| job.kind == kind)
            .map(|job| job.recurrence.next_after(self.time_zone, after))
            .min()
    }

    /// Every job's next due time strictly after `after`.
    pub fn next_due(&self, after: DateTime<Utc>) -> Vec<(DateTime<Utc>, JobKind)> {
        let mut due: Vec<(DateTime<Utc>, JobKind)> = self
            .jobs
            .iter()
            .map(|job| (job.recurrence.next_after(self.time_zone, after), job.kind))
            .collect();
        due.sort();
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn daily_jobs_fall_on_their_local_time_strictly_after_now() {
        let schedule = Schedule::new(&ScheduleSettings::default());
        // Tuesday 2026-12-01.
        assert_eq!(
            schedule.next_after(JobKind::Coordination, at("2026-12-01T08:00:00Z")),
            Some(at("2026-12-01T09:00:00Z"))
        );
        assert_eq!(
            schedule.next_after(JobKind::Coordination, at("2026-12-01T09:00:00Z")),
            Some(at("2026-12-02T09:00:00Z")),
            "strictly after: a job that just ran is due tomorrow"
        );
        assert_eq!(
            schedule.next_after(JobKind::DailyReport, at("2026-12-01T09:00:00Z")),
            Some(at("2026-12-01T09:15:00Z"))
        );
        assert_eq!(
            schedule.next_after(JobKind::WeeklyStrategy, at("2026-12-01T09:00:00Z")),
            Some(at("2026-12-07T08:30:00Z")),
            "the next Monday"
        );
    }

    #[test]
    fn interval_jobs_count_from_local_midnight() {
        let schedule = Schedule::new(&ScheduleSettings::default());
        assert_eq!(
            schedule.next_after(JobKind::InboxCheck, at("2026-12-01T09:05:00Z")),
            Some(at("2026-12-01T10:00:00Z"))
        );
        assert_eq!(
            schedule.next_after(JobKind::InboxCheck, at("2026-12-01T23:30:00Z")),
            Some(at("2026-12-02T00:00:00Z"))
        );
        assert_eq!(
            schedule.next_after(JobKind::ScheduledSearch, at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-02T00:00:00Z"))
        );
    }

    #[test]
    fn outreach_ticks_only_inside_working_hours() {
        let schedule = Schedule::new(&ScheduleSettings::default());
        assert_eq!(
            schedule.next_after(JobKind::OutreachTick, at("2026-12-01T10:10:00Z")),
            Some(at("2026-12-01T10:30:00Z"))
        );
        assert_eq!(
            schedule.next_after(JobKind::OutreachTick, at("2026-12-01T16:45:00Z")),
            Some(at("2026-12-02T09:00:00Z")),
            "after the close: the next opening"
        );
        // Friday evening → Monday morning.
        assert_eq!(
            schedule.next_after(JobKind::OutreachTick, at("2026-12-04T17:00:00Z")),
            Some(at("2026-12-07T09:00:00Z"))
        );
        assert_eq!(
            schedule.next_after(JobKind::OutreachTick, at("2026-12-07T08:59:00Z")),
            Some(at("2026-12-07T09:00:00Z"))
        );
    }

    #[test]
    fn time_zones_move_the_instants() {
        let settings = ScheduleSettings {
            time_zone: chrono_tz::Europe::Berlin,
            ..ScheduleSettings::default()
        };
        let schedule = Schedule::new(&settings);
        assert_eq!(
            schedule.next_after(JobKind::Coordination, at("2026-12-01T07:00:00Z")),
            Some(at("2026-12-01T08:00:00Z")),
            "09:00 in Berlin in winter"
        );
    }

    #[test]
    fn the_same_jobs_as_cron_expressions() {
        let schedule = Schedule::new(&ScheduleSettings::default());
        let cron = |kind| {
            schedule
                .jobs
                .iter()
                .find(|job| job.kind == kind)
                .unwrap()
                .recurrence
                .cron_expression()
        };
        assert_eq!(cron(JobKind::Coordination), "0 0 9 * * *");
        assert_eq!(cron(JobKind::DailyReport), "0 15 9 * * *");
        assert_eq!(cron(JobKind::WeeklyStrategy), "0 30 8 * * Mon");
        assert_eq!(cron(JobKind::InboxCheck), "0 0 */2 * * *");
        assert_eq!(
            cron(JobKind::OutreachTick),
            "0 */30 9-16 * * Mon,Tue,Wed,Thu,Fri"
        );
    }
}
