//! The scheduler port and its discrete-event implementation.
//!
//! [`Scheduler`] runs a [`Schedule`]'s jobs on a [`JobRunner`] (the department). `serve` will
//! implement it with tokio-cron-scheduler on the wall clock (one cron job per
//! [`super::ScheduledJob`], from [`super::Recurrence::cron_expression`], plus a timer for the
//! wake-ups jobs ask for); `simulate` uses the [`SimulatedDriver`], which never sleeps: it moves
//! the [`SimulatedClock`] straight to the next due time — the earliest of the schedule, the
//! wake-ups the jobs asked for (e.g. Outreach's next send) and the next time the outside world
//! changes by itself (a sandbox person's reply or acceptance) — runs what is due, and brings
//! every subscription up to date between two jobs, so each job sees the effects of the last.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::schedule::{JobKind, Schedule};
use crate::clock::{Clock, SimulatedClock};

/// A job's failure; the department records agent errors itself, this is what it could not.
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// What a job did, for progress lines, and when it wants to run again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobOutcome {
    /// Run this job again at this time too (if later than now), besides its schedule.
    pub wake_at: Option<DateTime<Utc>>,
    /// Counters for progress lines (never the source of the final summary).
    pub activity: Activity,
}

/// Counts of what happened, for progress lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    pub leads_found: u64,
    pub allocated: u64,
    pub invitations: u64,
    pub messages: u64,
    pub replies: u64,
    pub failures: u64,
}

impl Activity {
    pub fn add(&mut self, other: &Activity) {
        self.leads_found += other.leads_found;
        self.allocated += other.allocated;
        self.invitations += other.invitations;
        self.messages += other.messages;
        self.replies += other.replies;
        self.failures += other.failures;
    }
}

/// What a scheduler drives: the department.
#[async_trait]
pub trait JobRunner: Send + Sync {
    /// Runs one job at the clock's current time.
    async fn run_job(&self, job: JobKind) -> Result<JobOutcome, JobError>;

    /// Brings every subscription (agents' reactions and projections) up to date with the log.
    async fn catch_up(&self) -> Result<(), JobError>;

    /// The next time after `after` that the outside world changes by itself (a reply arrives,
    /// an invitation is accepted), when the adapters can tell (the sandbox can); the job
    /// [`JobKind::InboxCheck`] runs then, as a provider's webhook would trigger it.
    fn next_external_event(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>>;
}

/// Runs a schedule's jobs on a runner.
#[async_trait]
pub trait Scheduler: Send + Sync {
    async fn run(
        &self,
        schedule: &Schedule,
        runner: &dyn JobRunner,
    ) -> Result<DriverReport, DriverError>;
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("job {job} failed at {at}: {error}")]
    Job {
        job: JobKind,
        at: DateTime<Utc>,
        error: JobError,
    },
    #[error("catching up the subscriptions failed at {at}: {error}")]
    CatchUp { at: DateTime<Utc>, error: JobError },
    #[error("job {job} asked to run again at {at} more than {limit} times: a runaway loop")]
    Runaway {
        job: JobKind,
        at: DateTime<Utc>,
        limit: u32,
    },
}

/// The jobs to run at `now`, in [`JobKind`] order: those the schedule has due and those that
/// asked to run again by then, plus an inbox check when `inbox` (a reply or webhook is in).
pub(crate) fn jobs_due(
    due: &BTreeMap<JobKind, DateTime<Utc>>,
    wake: &BTreeMap<JobKind, DateTime<Utc>>,
    now: DateTime<Utc>,
    inbox: bool,
) -> Vec<JobKind> {
    JobKind::ALL
        .into_iter()
        .filter(|kind| {
            (inbox && *kind == JobKind::InboxCheck)
                || due.get(kind).is_some_and(|at| *at <= now)
                || wake.get(kind).is_some_and(|at| *at <= now)
        })
        .collect()
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriverReport {
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Jobs run, per kind.
    pub jobs: BTreeMap<JobKind, u64>,
    /// Wall time spent in each kind of job.
    pub job_time: BTreeMap<JobKind, std::time::Duration>,
    /// Wall time spent catching the subscriptions up between jobs.
    pub catch_up_time: std::time::Duration,
    /// Times the clock was moved.
    pub steps: u64,
    pub activity: Activity,
}

/// A simulated day has ended (for progress lines).
#[derive(Clone, Debug, PartialEq)]
pub struct DayDone {
    pub day: NaiveDate,
    /// 1-based.
    pub number: u32,
    pub of: u32,
    /// That day's activity.
    pub activity: Activity,
}

/// Called at the end of each simulated day.
pub type DayCallback = Box<dyn Fn(&DayDone) + Send + Sync>;

/// The discrete-event driver: runs from the clock's time until `until`, without sleeping.
pub struct SimulatedDriver {
    clock: SimulatedClock,
    until: DateTime<Utc>,
    /// Runs of one job at one instant at most (a job asking to run again "now" forever is a bug).
    max_runs_per_instant: u32,
    on_day: Option<DayCallback>,
}

impl SimulatedDriver {
    pub fn new(clock: SimulatedClock, until: DateTime<Utc>) -> Self {
        Self {
            clock,
            until,
            max_runs_per_instant: 50,
            on_day: None,
        }
    }

    /// Called at the end of each simulated day (in UTC).
    pub fn on_day(mut self, callback: impl Fn(&DayDone) + Send + Sync + 'static) -> Self {
        self.on_day = Some(Box::new(callback));
        self
    }

    fn day_count(&self, start: DateTime<Utc>) -> u32 {
        let days = (self.until.date_naive() - start.date_naive()).num_days();
        u32::try_from(days.max(1)).unwrap_or(u32::MAX)
    }
}

#[async_trait]
impl Scheduler for SimulatedDriver {
    async fn run(
        &self,
        schedule: &Schedule,
        runner: &dyn JobRunner,
    ) -> Result<DriverReport, DriverError> {
        let start = self.clock.now();
        let days = self.day_count(start);
        let mut report = DriverReport {
            started_at: Some(start),
            ..DriverReport::default()
        };
        // Every job's next due time; a job due exactly at the start runs at the start.
        let just_before = start - chrono::TimeDelta::milliseconds(1);
        let mut due: BTreeMap<JobKind, DateTime<Utc>> = schedule
            .next_due(just_before)
            .into_iter()
            .map(|(at, kind)| (kind, at))
            .collect();
        // Wake-ups the jobs asked for, per job: the earliest.
        let mut wake: BTreeMap<JobKind, DateTime<Utc>> = BTreeMap::new();
        let mut day = start.date_naive();
        let mut day_number = 1;
        let mut day_activity = Activity::default();
        runner
            .catch_up()
            .await
            .map_err(|error| DriverError::CatchUp { at: start, error })?;
        loop {
            let now = self.clock.now();
            let external = runner.next_external_event(now);
            let next = due
                .values()
                .chain(wake.values())
                .copied()
                .chain(external)
                .min();
            let Some(next) = next.filter(|next| *next < self.until) else {
                break;
            };
            // Days that end before the next instant are reported first.
            while next.date_naive() > day {
                if let Some(callback) = &self.on_day {
                    callback(&DayDone {
                        day,
                        number: day_number,
                        of: days,
                        activity: day_activity,
                    });
                }
                day = day.succ_opt().unwrap_or(day);
                day_number += 1;
                day_activity = Activity::default();
            }
            self.clock.advance_to(next);
            report.steps += 1;

            let to_run = jobs_due(&due, &wake, next, external.is_some_and(|at| at <= next));
            for kind in to_run {
                if due.get(&kind).is_some_and(|at| *at <= next)
                    && let Some(again) = schedule.next_after(kind, next)
                {
                    due.insert(kind, again);
                }
                wake.remove(&kind);
                let mut runs = 0;
                loop {
                    runs += 1;
                    if runs > self.max_runs_per_instant {
                        return Err(DriverError::Runaway {
                            job: kind,
                            at: next,
                            limit: self.max_runs_per_instant,
                        });
                    }
                    let began = std::time::Instant::now();
                    let outcome = runner
                        .run_job(kind)
                        .await
                        .map_err(|error| DriverError::Job {
                            job: kind,
                            at: next,
                            error,
                        })?;
                    *report.job_time.entry(kind).or_default() += began.elapsed();
                    *report.jobs.entry(kind).or_default() += 1;
                    report.activity.add(&outcome.activity);
                    day_activity.add(&outcome.activity);
                    let began = std::time::Instant::now();
                    runner
                        .catch_up()
                        .await
                        .map_err(|error| DriverError::CatchUp { at: next, error })?;
                    report.catch_up_time += began.elapsed();
                    match outcome.wake_at {
                        // "Again now": there is more to do at this instant (e.g. a reserve
                        // account can send while the primary waits for its gap).
                        Some(at) if at <= next => {
                            if outcome.activity == Activity::default() {
                                // Nothing happened and nothing will until time moves on.
                                break;
                            }
                        }
                        Some(at) => {
                            let earliest = wake.get(&kind).map_or(at, |known| (*known).min(at));
                            wake.insert(kind, earliest);
                            break;
                        }
                        None => break,
                    }
                }
            }
        }
        self.clock.advance_to(self.until);
        if let Some(callback) = &self.on_day {
            callback(&DayDone {
                day,
                number: day_number.min(days),
                of: days,
                activity: day_activity,
            });
        }
        report.ended_at = Some(self.clock.now());
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::TimeDelta;

    use super::*;
    use crate::department::ScheduleSettings;

    /// Records what ran when; Outreach asks to be woken 7 minutes later while it has sends left.
    struct Recorder {
        clock: SimulatedClock,
        runs: Mutex<Vec<(DateTime<Utc>, JobKind)>>,
        sends_left: Mutex<u32>,
        catch_ups: Mutex<u32>,
        external: Vec<DateTime<Utc>>,
    }

    #[async_trait]
    impl JobRunner for Recorder {
        async fn run_job(&self, job: JobKind) -> Result<JobOutcome, JobError> {
            let now = self.clock.now();
            self.runs.lock().unwrap().push((now, job));
            if job == JobKind::OutreachTick {
                let mut left = self.sends_left.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return Ok(JobOutcome {
                        wake_at: Some(now + TimeDelta::minutes(7)),
                        activity: Activity {
                            messages: 1,
                            ..Activity::default()
                        },
                    });
                }
            }
            Ok(JobOutcome::default())
        }

        async fn catch_up(&self) -> Result<(), JobError> {
            *self.catch_ups.lock().unwrap() += 1;
            Ok(())
        }

        fn next_external_event(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
            self.external.iter().copied().filter(|at| *at > after).min()
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn the_clock_jumps_from_due_time_to_due_time() {
        let clock = SimulatedClock::starting_at(at("2026-12-01T00:00:00Z"));
        let runner = Recorder {
            clock: clock.clone(),
            runs: Mutex::new(Vec::new()),
            sends_left: Mutex::new(3),
            catch_ups: Mutex::new(0),
            external: vec![at("2026-12-01T13:17:00Z")],
        };
        let days = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&days);
        let driver =
            SimulatedDriver::new(clock.clone(), at("2026-12-03T00:00:00Z")).on_day(move |done| {
                seen.lock()
                    .unwrap()
                    .push((done.number, done.activity.messages))
            });
        let schedule = Schedule::new(&ScheduleSettings::default());
        let wall = std::time::Instant::now();
        let report = driver.run(&schedule, &runner).await.unwrap();
        assert!(
            wall.elapsed() < std::time::Duration::from_secs(5),
            "no sleeping"
        );
        assert_eq!(clock.now(), at("2026-12-03T00:00:00Z"));
        let runs = runner.runs.lock().unwrap().clone();
        let times_of = |kind| {
            runs.iter()
                .filter(|(_, job)| *job == kind)
                .map(|(time, _)| *time)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            times_of(JobKind::Coordination),
            vec![at("2026-12-01T09:00:00Z"), at("2026-12-02T09:00:00Z")]
        );
        assert_eq!(times_of(JobKind::DailyReport).len(), 2);
        // The schedule's ticks at 09:00, 09:30…, plus the asked-for wake-ups 7 minutes apart.
        let ticks = times_of(JobKind::OutreachTick);
        assert_eq!(
            &ticks[..4],
            &[
                at("2026-12-01T09:00:00Z"),
                at("2026-12-01T09:07:00Z"),
                at("2026-12-01T09:14:00Z"),
                at("2026-12-01T09:21:00Z"),
            ]
        );
        assert_eq!(
            ticks.len(),
            3 + 2 * 16,
            "16 half-hour ticks a day plus 3 wake-ups"
        );
        assert!(ticks.iter().all(|tick| {
            let time = tick.time();
            time >= chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap()
                && time < chrono::NaiveTime::from_hms_opt(17, 0, 0).unwrap()
        }));
        // The provider's event woke the inbox between its 2-hourly checks.
        assert!(times_of(JobKind::InboxCheck).contains(&at("2026-12-01T13:17:00Z")));
        assert_eq!(times_of(JobKind::InboxCheck).len(), 12 * 2 + 1);
        // Jobs due at one instant ran in the fixed order.
        let at_nine: Vec<JobKind> = runs
            .iter()
            .filter(|(time, _)| *time == at("2026-12-01T09:00:00Z"))
            .map(|(_, job)| *job)
            .collect();
        let mut sorted = at_nine.clone();
        sorted.sort();
        assert_eq!(at_nine, sorted);
        assert_eq!(
            *runner.catch_ups.lock().unwrap() as usize,
            runs.len() + 1,
            "subscriptions caught up after every job"
        );
        assert_eq!(report.activity.messages, 3);
        assert_eq!(days.lock().unwrap().clone(), vec![(1, 3), (2, 0)]);
    }

    #[tokio::test]
    async fn a_job_that_keeps_asking_for_now_is_stopped() {
        struct Greedy(SimulatedClock);
        #[async_trait]
        impl JobRunner for Greedy {
            async fn run_job(&self, _job: JobKind) -> Result<JobOutcome, JobError> {
                Ok(JobOutcome {
                    wake_at: Some(self.0.now()),
                    activity: Activity {
                        messages: 1,
                        ..Activity::default()
                    },
                })
            }
            async fn catch_up(&self) -> Result<(), JobError> {
                Ok(())
            }
            fn next_external_event(&self, _after: DateTime<Utc>) -> Option<DateTime<Utc>> {
                None
            }
        }
        let clock = SimulatedClock::starting_at(at("2026-12-01T08:00:00Z"));
        let driver = SimulatedDriver::new(clock.clone(), at("2026-12-02T00:00:00Z"));
        let schedule = Schedule::new(&ScheduleSettings::default());
        let error = driver.run(&schedule, &Greedy(clock)).await.unwrap_err();
        assert!(matches!(error, DriverError::Runaway { .. }), "{error}");
    }
}
