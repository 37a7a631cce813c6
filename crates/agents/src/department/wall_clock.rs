//! The wall-clock scheduler behind `salesdept serve`.
//!
//! One loop runs the [`Schedule`]'s jobs when their time comes, in the schedule's time zone.
//! In `serve` the times come from tokio-cron-scheduler ([`CronTriggers`], one cron job per
//! scheduled job from [`Recurrence::cron_expression`]); without it the loop computes the same
//! times itself on the department's clock with [`Schedule::next_after`] (what the tests do on
//! tokio's paused time). Jobs run one at a time — the loop is the
//! only caller of the runner — each followed by a catch-up of every subscription. Between jobs the
//! subscriptions follow the log on the store's wake-up signal ([`WallClockScheduler::wake_on`])
//! and on a catch-up tick every [`WallClockScheduler::tick`], so a human command from the API
//! gets its reaction at once. A failing job or catch-up
//! is logged and the loop goes on; a stop request ends the loop after the running job.
//!
//! [`Recurrence::cron_expression`]: super::Recurrence::cron_expression

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

use super::cron::CronTriggers;
use super::driver::{DriverError, DriverReport, JobRunner, Scheduler, jobs_due};
use super::schedule::{JobKind, Schedule};
use crate::clock::Clock;

/// What the loop last did, for readiness checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeartbeatState {
    /// The last time the loop was alive (after a job, a catch-up, or a wake-up).
    pub beat_at: Option<DateTime<Utc>>,
    /// The last job finished, when, and whether it failed.
    pub last_job: Option<(JobKind, DateTime<Utc>, bool)>,
    /// The last catch-up's error, cleared by the next successful one.
    pub catch_up_error: Option<String>,
    /// Jobs run, per kind.
    pub jobs: BTreeMap<JobKind, u64>,
    /// Jobs that failed, per kind.
    pub failures: BTreeMap<JobKind, u64>,
}

/// The scheduler's shared heartbeat (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct Heartbeat(Arc<Mutex<HeartbeatState>>);

impl Heartbeat {
    pub fn state(&self) -> HeartbeatState {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut HeartbeatState)) {
        change(&mut self.0.lock().unwrap_or_else(|poison| poison.into_inner()));
    }
}

/// Runs the schedule on the wall clock until stopped.
pub struct WallClockScheduler {
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
    trigger: Arc<Notify>,
    tick: Duration,
    at_start: Vec<JobKind>,
    heartbeat: Heartbeat,
    max_runs_per_instant: u32,
    cron: tokio::sync::Mutex<Option<CronTriggers>>,
    wake_ups: Option<watch::Receiver<u64>>,
    retry: JobRetry,
}

/// How a job that failed for a transient reason (the store unreachable: a lost connection, no
/// connection within the pool's timeout) is run again: after a backoff doubling from `first` up
/// to `max`, at most `attempts` times, then it waits for its next scheduled time. Other failures
/// are not retried (a retry would fail the same way); they wait for the next time too.
#[derive(Clone, Debug)]
pub struct JobRetry {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Default for JobRetry {
    /// Ten retries over about two minutes: a restarted database or a dropped connection is back
    /// within that, and the morning coordination still runs that morning.
    fn default() -> Self {
        Self {
            attempts: 10,
            first: Duration::from_millis(250),
            max: Duration::from_secs(30),
        }
    }
}

impl WallClockScheduler {
    /// A scheduler on `clock` that ends once `stop` turns true.
    pub fn new(clock: Arc<dyn Clock>, stop: watch::Receiver<bool>) -> Self {
        Self {
            clock,
            stop,
            trigger: Arc::new(Notify::new()),
            tick: Duration::from_secs(1),
            at_start: Vec::new(),
            heartbeat: Heartbeat::default(),
            max_runs_per_instant: 50,
            cron: tokio::sync::Mutex::new(None),
            wake_ups: None,
            retry: JobRetry::default(),
        }
    }

    /// How jobs failing for a transient reason are retried (default [`JobRetry::default`]).
    pub fn retry(mut self, retry: JobRetry) -> Self {
        self.retry = retry;
        self
    }

    /// Catches up as soon as `wake_ups` changes (the store's signal of new events), besides
    /// every tick: a person's command gets its agents' reaction at once.
    pub fn wake_on(mut self, wake_ups: watch::Receiver<u64>) -> Self {
        self.wake_ups = Some(wake_ups);
        self
    }

    /// Takes the due times from `cron`'s firings instead of computing them (the cron scheduler
    /// is shut down when the loop ends).
    pub fn cron(self, cron: CronTriggers) -> Self {
        Self {
            cron: tokio::sync::Mutex::new(Some(cron)),
            ..self
        }
    }

    /// How often the subscriptions catch up between jobs (default 1 s).
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick.max(Duration::from_millis(10));
        self
    }

    /// Jobs run once right at the start, before the schedule (the demo's first search).
    pub fn run_at_start(mut self, jobs: impl IntoIterator<Item = JobKind>) -> Self {
        self.at_start = jobs.into_iter().collect();
        self
    }

    /// Notifying this runs [`JobKind::InboxCheck`] soon (what a provider's webhook does).
    pub fn inbox_trigger(&self) -> Arc<Notify> {
        Arc::clone(&self.trigger)
    }

    pub fn heartbeat(&self) -> Heartbeat {
        self.heartbeat.clone()
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Catches up, logging a failure; the heartbeat records it.
    async fn catch_up(&self, runner: &dyn JobRunner, report: &mut DriverReport) {
        let began = std::time::Instant::now();
        let result = runner.catch_up().await;
        report.catch_up_time += began.elapsed();
        let now = self.clock.now();
        match result {
            Ok(()) => self.heartbeat.update(|state| {
                state.beat_at = Some(now);
                state.catch_up_error = None;
            }),
            Err(error) => {
                tracing::error!(%error, "catching up the subscriptions failed");
                self.heartbeat.update(|state| {
                    state.beat_at = Some(now);
                    state.catch_up_error = Some(error.to_string());
                });
            }
        }
    }

    /// Runs `kind` (again while it asks to run again now and does something), each run followed
    /// by a catch-up. Returns the later wake-up it asked for.
    async fn run_job(
        &self,
        kind: JobKind,
        runner: &dyn JobRunner,
        report: &mut DriverReport,
    ) -> Option<DateTime<Utc>> {
        let mut retries = 0;
        let mut backoff = self.retry.first;
        for _ in 0..self.max_runs_per_instant {
            let began = std::time::Instant::now();
            let result = runner.run_job(kind).await;
            *report.job_time.entry(kind).or_default() += began.elapsed();
            *report.jobs.entry(kind).or_default() += 1;
            let now = self.clock.now();
            let failed = result.is_err();
            self.heartbeat.update(|state| {
                state.beat_at = Some(now);
                state.last_job = Some((kind, now, failed));
                *state.jobs.entry(kind).or_default() += 1;
                if failed {
                    *state.failures.entry(kind).or_default() += 1;
                }
            });
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(error)
                    if retries < self.retry.attempts
                        && salesdept_events::is_transient_error(error.as_ref()) =>
                {
                    retries += 1;
                    tracing::warn!(job = %kind, %error, retry = retries, ?backoff, "a scheduled job could not reach the store; retrying");
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(self.retry.max);
                    if self.stopped() {
                        return None;
                    }
                    continue;
                }
                Err(error) => {
                    let error = DriverError::Job {
                        job: kind,
                        at: now,
                        error,
                    };
                    tracing::error!(%error, "a scheduled job failed; the service goes on");
                    self.catch_up(runner, report).await;
                    return None;
                }
            };
            report.activity.add(&outcome.activity);
            self.catch_up(runner, report).await;
            match outcome.wake_at {
                Some(at) if at <= self.clock.now() => {
                    if outcome.activity == super::Activity::default() || self.stopped() {
                        return None;
                    }
                }
                other => return other,
            }
        }
        tracing::warn!(job = %kind, limit = self.max_runs_per_instant, "a job kept asking to run again now");
        None
    }
}

/// When each job is next due strictly after `after`, with the wake-ups the jobs asked for.
pub fn next_wall_clock_job(
    due: &BTreeMap<JobKind, DateTime<Utc>>,
    wake: &BTreeMap<JobKind, DateTime<Utc>>,
) -> Option<(DateTime<Utc>, JobKind)> {
    due.iter()
        .chain(wake.iter())
        .map(|(kind, at)| (*at, *kind))
        .min()
}

#[async_trait]
impl Scheduler for WallClockScheduler {
    async fn run(
        &self,
        schedule: &Schedule,
        runner: &dyn JobRunner,
    ) -> Result<DriverReport, DriverError> {
        let start = self.clock.now();
        let mut report = DriverReport {
            started_at: Some(start),
            ..DriverReport::default()
        };
        let mut stop = self.stop.clone();
        self.catch_up(runner, &mut report).await;
        let mut wake: BTreeMap<JobKind, DateTime<Utc>> = BTreeMap::new();
        for kind in &self.at_start {
            if self.stopped() {
                break;
            }
            if let Some(at) = self.run_job(*kind, runner, &mut report).await {
                wake.insert(*kind, at);
            }
        }
        let mut cron = self.cron.lock().await.take();
        let mut wake_ups = self.wake_ups.clone();
        // With cron, a job is due from its firing until it has run.
        let mut due: BTreeMap<JobKind, DateTime<Utc>> = match cron {
            Some(_) => BTreeMap::new(),
            None => schedule
                .next_due(self.clock.now())
                .into_iter()
                .map(|(at, kind)| (kind, at))
                .collect(),
        };
        while !self.stopped() {
            let now = self.clock.now();
            let next = next_wall_clock_job(&due, &wake);
            let until_next = next
                .map(|(at, _)| (at - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(self.tick);
            let sleep = until_next.min(self.tick);
            let mut inbox_now = false;
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                () = self.trigger.notified() => inbox_now = true,
                _ = stop.changed() => {}
                Some(kind) = cron_firing(&mut cron) => {
                    due.entry(kind).or_insert_with(|| self.clock.now());
                }
                true = new_events(&mut wake_ups) => {}
            }
            if self.stopped() {
                break;
            }
            let now = self.clock.now();
            let to_run = jobs_due(&due, &wake, now, inbox_now);
            if to_run.is_empty() {
                report.steps += 1;
                self.catch_up(runner, &mut report).await;
                continue;
            }
            for kind in to_run {
                if self.stopped() {
                    break;
                }
                if due.get(&kind).is_some_and(|at| *at <= now) {
                    match (&cron, schedule.next_after(kind, now)) {
                        (None, Some(again)) => due.insert(kind, again),
                        _ => due.remove(&kind),
                    };
                }
                wake.remove(&kind);
                if let Some(at) = self.run_job(kind, runner, &mut report).await {
                    wake.insert(kind, at);
                }
            }
        }
        if let Some(cron) = cron {
            cron.shutdown().await;
        }
        report.ended_at = Some(self.clock.now());
        Ok(report)
    }
}

/// Whether the store signalled new events; never returns without a signal (and false once the
/// store is gone, which disables the branch).
async fn new_events(wake_ups: &mut Option<watch::Receiver<u64>>) -> bool {
    match wake_ups {
        Some(wake_ups) => wake_ups.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// The next job a cron firing names; never, without cron.
async fn cron_firing(cron: &mut Option<CronTriggers>) -> Option<JobKind> {
    match cron {
        Some(cron) => cron.fired().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::department::ScheduleSettings;
    use crate::department::driver::{JobError, JobOutcome};

    /// The wall clock as tokio's (paused) time sees it, from a fixed start.
    struct TokioClock {
        base: DateTime<Utc>,
        start: tokio::time::Instant,
    }

    impl Clock for TokioClock {
        fn now(&self) -> DateTime<Utc> {
            self.base + chrono::TimeDelta::from_std(self.start.elapsed()).unwrap()
        }
    }

    struct Recorder {
        clock: Arc<dyn Clock>,
        runs: Mutex<Vec<(DateTime<Utc>, JobKind)>>,
        running: Mutex<bool>,
        catch_ups: Mutex<u32>,
    }

    #[async_trait]
    impl JobRunner for Recorder {
        async fn run_job(&self, job: JobKind) -> Result<JobOutcome, JobError> {
            {
                let mut running = self.running.lock().unwrap();
                assert!(!*running, "two jobs at once");
                *running = true;
            }
            self.runs.lock().unwrap().push((self.clock.now(), job));
            tokio::time::sleep(Duration::from_millis(200)).await;
            *self.running.lock().unwrap() = false;
            if job == JobKind::Monitoring {
                return Err("monitoring broke".into());
            }
            Ok(JobOutcome::default())
        }

        async fn catch_up(&self) -> Result<(), JobError> {
            *self.catch_ups.lock().unwrap() += 1;
            Ok(())
        }

        fn next_external_event(&self, _after: DateTime<Utc>) -> Option<DateTime<Utc>> {
            None
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// Tokio's paused time from `base`, and a runner recording on it.
    fn paused_clock_and_recorder(base: &str) -> (Arc<dyn Clock>, Recorder) {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock {
            base: at(base),
            start: tokio::time::Instant::now(),
        });
        let runner = Recorder {
            clock: Arc::clone(&clock),
            runs: Mutex::new(Vec::new()),
            running: Mutex::new(false),
            catch_ups: Mutex::new(0),
        };
        (clock, runner)
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_run_on_their_cron_times_one_at_a_time_and_failures_do_not_stop_the_loop() {
        // A Tuesday, ten seconds before the coordination.
        let (clock, runner) = paused_clock_and_recorder("2026-12-01T08:59:50Z");
        let (stop_tx, stop_rx) = watch::channel(false);
        let scheduler = WallClockScheduler::new(Arc::clone(&clock), stop_rx)
            .run_at_start([JobKind::ScheduledSearch]);
        let heartbeat = scheduler.heartbeat();
        let trigger = scheduler.inbox_trigger();
        let schedule = Schedule::new(&ScheduleSettings::default());
        let stopper = tokio::spawn(async move {
            // A webhook at 09:40:00 (40 min 10 s after the start).
            tokio::time::sleep(Duration::from_secs(40 * 60 + 10)).await;
            trigger.notify_one();
            tokio::time::sleep(Duration::from_secs(90 * 60)).await;
            stop_tx.send(true).unwrap();
        });
        let report = scheduler.run(&schedule, &runner).await.unwrap();
        stopper.await.unwrap();
        let runs = runner.runs.lock().unwrap().clone();
        let times_of = |kind| {
            runs.iter()
                .filter(|(_, job)| *job == kind)
                .map(|(time, _)| *time)
                .collect::<Vec<_>>()
        };
        let near = |actual: &[DateTime<Utc>], expected: &[&str]| {
            assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
            for (actual, expected) in actual.iter().zip(expected) {
                let off = (*actual - at(expected)).num_milliseconds();
                assert!((0..=2_000).contains(&off), "{actual} is not {expected}");
            }
        };
        near(
            &times_of(JobKind::ScheduledSearch),
            &["2026-12-01T08:59:50Z"],
        );
        near(&times_of(JobKind::Coordination), &["2026-12-01T09:00:00Z"]);
        near(&times_of(JobKind::DailyReport), &["2026-12-01T09:15:00Z"]);
        near(
            &times_of(JobKind::OutreachTick),
            &[
                "2026-12-01T09:00:00Z",
                "2026-12-01T09:30:00Z",
                "2026-12-01T10:00:00Z",
                "2026-12-01T10:30:00Z",
                "2026-12-01T11:00:00Z",
            ],
        );
        // The 2-hourly check at 10:00, and the webhook's at 09:40.
        near(
            &times_of(JobKind::InboxCheck),
            &["2026-12-01T09:40:00Z", "2026-12-01T10:00:00Z"],
        );
        // Monitoring fails every hour and still runs again.
        near(
            &times_of(JobKind::Monitoring),
            &[
                "2026-12-01T09:00:00Z",
                "2026-12-01T10:00:00Z",
                "2026-12-01T11:00:00Z",
            ],
        );
        let state = heartbeat.state();
        assert_eq!(state.failures.get(&JobKind::Monitoring), Some(&3));
        assert!(state.beat_at.unwrap() >= at("2026-12-01T11:09:00Z"));
        // A catch-up after every job and about one a second between them.
        let catch_ups = *runner.catch_ups.lock().unwrap();
        assert!(
            catch_ups as usize > runs.len() + 7000,
            "{catch_ups} catch-ups"
        );
        assert_eq!(report.jobs.values().sum::<u64>() as usize, runs.len());
    }

    #[tokio::test]
    async fn cron_firings_run_their_jobs_one_at_a_time_until_the_stop() {
        // Real time: tokio-cron-scheduler reads the system clock.
        let (clock, runner) = paused_clock_and_recorder("2026-12-01T12:00:00Z");
        let cron = CronTriggers::from_expressions(
            [
                (JobKind::SheetSync, "* * * * * *".to_owned()),
                (JobKind::InboxCheck, "* * * * * *".to_owned()),
            ],
            chrono_tz::Tz::UTC,
        )
        .await
        .unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let scheduler = WallClockScheduler::new(Arc::clone(&clock), stop_rx)
            .tick(Duration::from_millis(100))
            .cron(cron);
        // The schedule's own times are not used: nothing here is due within the run.
        let schedule = Schedule::new(&ScheduleSettings::default());
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(3_300)).await;
            stop_tx.send(true).unwrap();
        });
        scheduler.run(&schedule, &runner).await.unwrap();
        stopper.await.unwrap();
        let runs = runner.runs.lock().unwrap().clone();
        let count = |kind| runs.iter().filter(|(_, job)| *job == kind).count();
        // A firing every second for about three seconds, each job 200 ms, one at a time (the
        // recorder fails on overlap).
        assert!((2..=4).contains(&count(JobKind::SheetSync)), "{runs:?}");
        assert!((2..=4).contains(&count(JobKind::InboxCheck)), "{runs:?}");
        assert_eq!(count(JobKind::Coordination), 0, "{runs:?}");
        assert!(!*runner.running.lock().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn new_events_in_the_store_are_caught_up_at_once() {
        let (clock, runner) = paused_clock_and_recorder("2026-12-05T12:00:00Z");
        let (signal, wake_ups) = watch::channel(0u64);
        let (stop_tx, stop_rx) = watch::channel(false);
        // A Saturday afternoon with an hour's tick: nothing is due, no tick comes.
        let scheduler = WallClockScheduler::new(Arc::clone(&clock), stop_rx)
            .tick(Duration::from_secs(3600))
            .wake_on(wake_ups);
        let schedule = Schedule::new(&ScheduleSettings {
            monitor_every: chrono::TimeDelta::hours(6),
            sheet_sync_every: chrono::TimeDelta::hours(6),
            inbox_every: chrono::TimeDelta::hours(6),
            ..ScheduleSettings::default()
        });
        let counts = Arc::new(Mutex::new(Vec::new()));
        let runner = Arc::new(runner);
        let probe = {
            let runner = Arc::clone(&runner);
            let counts = Arc::clone(&counts);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                counts
                    .lock()
                    .unwrap()
                    .push(*runner.catch_ups.lock().unwrap());
                signal.send(1).unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
                counts
                    .lock()
                    .unwrap()
                    .push(*runner.catch_ups.lock().unwrap());
                stop_tx.send(true).unwrap();
            })
        };
        scheduler.run(&schedule, runner.as_ref()).await.unwrap();
        probe.await.unwrap();
        let counts = counts.lock().unwrap().clone();
        assert_eq!(
            counts[1],
            counts[0] + 1,
            "one catch-up right after the signal"
        );
        assert!(runner.runs.lock().unwrap().is_empty());
    }

    /// Fails its first `failures` coordinations with a lost connection, then succeeds.
    struct FlakyStore {
        clock: Arc<dyn Clock>,
        failures: Mutex<u32>,
        runs: Mutex<Vec<(DateTime<Utc>, bool)>>,
    }

    #[async_trait]
    impl JobRunner for FlakyStore {
        async fn run_job(&self, job: JobKind) -> Result<JobOutcome, JobError> {
            if job != JobKind::Coordination {
                return Ok(JobOutcome::default());
            }
            let mut failures = self.failures.lock().unwrap();
            let fail = *failures > 0;
            self.runs.lock().unwrap().push((self.clock.now(), fail));
            if fail {
                *failures -= 1;
                let lost = salesdept_events::StoreError::Database(sqlx::Error::Io(
                    std::io::Error::from(std::io::ErrorKind::ConnectionReset),
                ));
                return Err(Box::new(lost));
            }
            Ok(JobOutcome::default())
        }

        async fn catch_up(&self) -> Result<(), JobError> {
            Ok(())
        }

        fn next_external_event(&self, _after: DateTime<Utc>) -> Option<DateTime<Utc>> {
            None
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_that_cannot_reach_the_store_is_retried_with_backoff() {
        let (clock, _) = paused_clock_and_recorder("2026-12-01T08:59:59Z");
        let runner = FlakyStore {
            clock: Arc::clone(&clock),
            failures: Mutex::new(3),
            runs: Mutex::new(Vec::new()),
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let scheduler = WallClockScheduler::new(Arc::clone(&clock), stop_rx);
        let schedule = Schedule::new(&ScheduleSettings::default());
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            stop_tx.send(true).unwrap();
        });
        scheduler.run(&schedule, &runner).await.unwrap();
        stopper.await.unwrap();
        let runs = runner.runs.lock().unwrap().clone();
        let failed: Vec<bool> = runs.iter().map(|(_, failed)| *failed).collect();
        assert_eq!(failed, [true, true, true, false], "{runs:?}");
        // 250 ms, 500 ms, 1 s between the attempts.
        let gaps: Vec<i64> = runs
            .windows(2)
            .map(|pair| (pair[1].0 - pair[0].0).num_milliseconds())
            .collect();
        for (gap, expected) in gaps.iter().zip([250, 500, 1_000]) {
            assert!((expected..expected + 50).contains(gap), "{gaps:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_loop_after_the_running_job() {
        let (clock, runner) = paused_clock_and_recorder("2026-12-01T08:59:59Z");
        let (stop_tx, stop_rx) = watch::channel(false);
        let scheduler = WallClockScheduler::new(Arc::clone(&clock), stop_rx);
        let schedule = Schedule::new(&ScheduleSettings::default());
        let stopper = tokio::spawn(async move {
            // During the first job at 09:00 (each takes 200 ms).
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            stop_tx.send(true).unwrap();
        });
        scheduler.run(&schedule, &runner).await.unwrap();
        stopper.await.unwrap();
        let runs = runner.runs.lock().unwrap().clone();
        assert_eq!(runs.len(), 1, "only the job running at the stop: {runs:?}");
        assert!(!*runner.running.lock().unwrap(), "it finished");
    }
}
