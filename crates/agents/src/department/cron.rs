//! The schedule's jobs on tokio-cron-scheduler: one cron job per [`ScheduledJob`], in the
//! schedule's time zone, whose only work is to name its [`JobKind`] to the
//! [`WallClockScheduler`](super::WallClockScheduler)'s loop. The loop stays the only caller of
//! the department, so jobs still run one at a time and each is followed by a catch-up.
//!
//! [`ScheduledJob`]: super::ScheduledJob

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use uuid::Uuid;

use super::schedule::{JobKind, Schedule};

#[derive(Debug, thiserror::Error)]
pub enum CronError {
    #[error("the cron expression {expression:?} of job {job} is not valid")]
    Expression { job: JobKind, expression: String },
    #[error("the cron scheduler failed: {0}")]
    Scheduler(#[from] JobSchedulerError),
}

/// Running cron jobs and the channel their firings arrive on.
pub struct CronTriggers {
    scheduler: JobScheduler,
    jobs: Vec<(JobKind, Uuid)>,
    fired: mpsc::UnboundedReceiver<JobKind>,
}

impl CronTriggers {
    /// Registers every job of `schedule` from its [`Recurrence::cron_expression`] and starts
    /// the cron scheduler.
    ///
    /// [`Recurrence::cron_expression`]: super::Recurrence::cron_expression
    pub async fn start(schedule: &Schedule) -> Result<Self, CronError> {
        let jobs = schedule
            .jobs
            .iter()
            .map(|job| (job.kind, job.recurrence.cron_expression()));
        Self::from_expressions(jobs, schedule.time_zone).await
    }

    /// Registers one cron job per `(kind, six-field expression)` in `time_zone` and starts them.
    pub async fn from_expressions(
        jobs: impl IntoIterator<Item = (JobKind, String)>,
        time_zone: Tz,
    ) -> Result<Self, CronError> {
        let scheduler = JobScheduler::new().await?;
        let (sender, fired) = mpsc::unbounded_channel();
        let mut registered = Vec::new();
        for (kind, expression) in jobs {
            let sender = sender.clone();
            let job = Job::new_async_tz(expression.as_str(), time_zone, move |_id, _lock| {
                // The loop may have stopped: a firing nobody receives is simply dropped.
                let _ = sender.send(kind);
                Box::pin(async {})
            })
            .map_err(|error| match error {
                JobSchedulerError::ParseSchedule => CronError::Expression {
                    job: kind,
                    expression: expression.clone(),
                },
                other => CronError::Scheduler(other),
            })?;
            let id = scheduler.add(job).await?;
            tracing::debug!(job = %kind, %expression, %time_zone, "cron job registered");
            registered.push((kind, id));
        }
        scheduler.start().await?;
        Ok(Self {
            scheduler,
            jobs: registered,
            fired,
        })
    }

    /// The next firing of `kind`'s cron job (None when it has none).
    pub async fn next_tick(&mut self, kind: JobKind) -> Result<Option<DateTime<Utc>>, CronError> {
        let mut earliest: Option<DateTime<Utc>> = None;
        for (_, id) in self.jobs.iter().filter(|(job, _)| *job == kind) {
            if let Some(at) = self.scheduler.next_tick_for_job(*id).await? {
                earliest = Some(earliest.map_or(at, |low| low.min(at)));
            }
        }
        Ok(earliest)
    }

    /// The next job a cron firing names (None once the scheduler has stopped).
    pub(crate) async fn fired(&mut self) -> Option<JobKind> {
        self.fired.recv().await
    }

    /// Stops the cron scheduler; firings already queued are dropped.
    pub async fn shutdown(mut self) {
        if let Err(error) = self.scheduler.shutdown().await {
            tracing::warn!(%error, "stopping the cron scheduler failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::department::ScheduleSettings;

    #[tokio::test]
    async fn every_job_is_registered_at_the_schedules_times_in_its_time_zone() {
        let settings = ScheduleSettings {
            time_zone: "Europe/Berlin".parse().unwrap(),
            ..ScheduleSettings::default()
        };
        let schedule = Schedule::new(&settings);
        let mut cron = CronTriggers::start(&schedule).await.unwrap();
        let now = Utc::now();
        // Daily and hour-dividing jobs fire exactly when the schedule says (the interval jobs
        // are computed from the start of the day in both). A firing second may pass between
        // registration and `now`, so compare with the schedule from a second before.
        for kind in [
            JobKind::Coordination,
            JobKind::DailyReport,
            JobKind::WeeklyStrategy,
            JobKind::Monitoring,
            JobKind::SheetSync,
            JobKind::InboxCheck,
        ] {
            let tick = cron.next_tick(kind).await.unwrap().expect("a next tick");
            let expected = schedule
                .next_after(kind, now - chrono::TimeDelta::seconds(1))
                .unwrap();
            assert_eq!(tick, expected, "{kind}");
        }
        cron.shutdown().await;
    }

    #[tokio::test]
    async fn an_invalid_expression_names_the_job() {
        let error = CronTriggers::from_expressions(
            [(JobKind::Monitoring, "every now and then".to_owned())],
            Tz::UTC,
        )
        .await
        .err()
        .expect("refused");
        assert_eq!(
            error.to_string(),
            "the cron expression \"every now and then\" of job monitoring is not valid"
        );
    }
}
