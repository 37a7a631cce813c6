//! The Lead Finder agent: runs a `search_request`, turns every profile found into a lead once,
//! classifies it (Speaker / Sponsor / Other with a confidence) and scores it 1–10.
//!
//! Each profile is a short process over three streams, every step idempotent so that a crash
//! and a rerun of the same search change nothing twice:
//!
//! 1. claim `linkedin-url-<hash>` for a lead id derived from (search, URL) — a profile that is
//!    already a lead is counted as a duplicate, never added again;
//! 2. `lead_discovered` on the new `lead-<id>`, in the lead's own correlation (one per journey);
//! 3. `lead_classified` and `quality_score_calculated` from the LLM port, whose fallback is the
//!    rules engine; the LLM usage goes into the events' metadata, its alerts to `department`.
//!
//! A lead under the quality threshold is recorded but not allocatable; a classification under
//! the confidence threshold waits in the human review queue (both are read off the events by
//! the Sales Manager and the review queue). At most `max_leads_per_day` new leads per search.

pub mod feedback;
pub mod handler;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use salesdept_events::domain::department::{AlertSeverity, DepartmentCommand, DepartmentState};
use salesdept_events::domain::lead::{DiscoverLead, LeadCommand, LeadSource, LeadState};
use salesdept_events::domain::search::{SearchCommand, SearchEvent, SearchState};
use salesdept_events::domain::url::{ReserveUrl, UrlReservation};
use salesdept_events::domain::{
    Classification, CommandError, CommandHandler, CommandMetadata, Confidence, DEPARTMENT_STREAM,
    DomainError, DomainEvent, LinkedInUrl, Pii, QualityScore, lead_stream, search_stream,
    url_stream,
};
use salesdept_events::{Actor, EventStore, RecordedEvent, StoreError, step_event_id};
use uuid::Uuid;

use crate::clock::Clock;
use crate::linkedin::csv_import::ImportPlan;
use crate::linkedin::{LinkedInError, LinkedInPort, ProviderProfile, SearchCriteria};
use crate::llm::answers::{ProfileAssessment, classify_profile_task_with_corrections};
use crate::llm::{AgentName, LlmAlert, LlmError, LlmPort};
use crate::rules::{Correction, Profile, apply_corrections, assess_profile};

pub use feedback::CorrectionSource;

/// The actor name of the Lead Finder's events.
pub const LEAD_FINDER: &str = "lead_finder";

/// The seed's `lead_finder` keys that shape a run.
#[derive(Clone, Debug, PartialEq)]
pub struct FinderSettings {
    /// New leads per search at most (the seed's `max_leads_per_day`; one search a day).
    pub max_leads_per_day: u32,
    /// Below this score a lead is recorded but never allocated.
    pub quality_threshold: f64,
    /// Below this confidence a classification waits for a human.
    pub review_confidence_threshold: f64,
}

impl Default for FinderSettings {
    fn default() -> Self {
        Self {
            max_leads_per_day: 100,
            quality_threshold: 6.0,
            review_confidence_threshold: 0.55,
        }
    }
}

/// One new lead of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct FoundLead {
    pub lead_id: Uuid,
    pub classification: Classification,
    pub confidence: Confidence,
    pub quality_score: QualityScore,
    /// At or above the quality threshold: the Sales Manager may allocate it.
    pub allocatable: bool,
    /// Under the confidence threshold: in the human review queue.
    pub needs_review: bool,
    /// The answer came from the rules engine (no LLM, over budget, or the chain failed).
    pub by_rules: bool,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchOutcome {
    pub search_id: Uuid,
    pub profiles_found: u32,
    pub leads: Vec<FoundLead>,
    /// Profiles that already were leads.
    pub duplicates: u32,
    /// Profiles left out because the day's cap was reached.
    pub over_cap: u32,
    /// Profiles that could not be processed, with why (no personal data).
    pub failed: Vec<String>,
    /// The search had run before: nothing was done again.
    pub already_completed: bool,
}

/// What an import did, row by row (by the file's line numbers).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportOutcome {
    pub import_id: Uuid,
    /// The rows that are leads now (including those a previous run of the same file made).
    pub leads: Vec<(u64, FoundLead)>,
    /// Rows whose profile was already a lead before this file.
    pub already_leads: Vec<u64>,
    /// Rows that could not be taken in, with why (no personal data).
    pub failed: Vec<(u64, String)>,
}

/// The id of an import: derived from the file's bytes, so the same file imported again (after
/// a crash, or by mistake) is recognised and makes no new leads.
pub fn import_id(bytes: &[u8]) -> Uuid {
    use sha2::{Digest, Sha256};
    const NAMESPACE: Uuid = Uuid::from_u128(0x7a1f_3c2e_9b4d_4e8a_a6c1_5d0f_2b3e_8c91);
    Uuid::new_v5(&NAMESPACE, &Sha256::digest(bytes))
}

#[derive(Debug, thiserror::Error)]
pub enum FinderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("the search could not be run: {0}")]
    Provider(#[from] LinkedInError),
    #[error("this Lead Finder imports files only: it has no LinkedIn account to search with")]
    NoLinkedIn,
    #[error("event {0} is not a search request")]
    NotASearchRequest(Uuid),
}

/// The Lead Finder.
pub struct LeadFinder<S: EventStore + ?Sized, L: LlmPort> {
    handler: CommandHandler<S>,
    /// None for an importer, which reads files, not LinkedIn.
    linkedin: Option<Arc<dyn LinkedInPort>>,
    llm: Arc<L>,
    clock: Arc<dyn Clock>,
    settings: FinderSettings,
    /// Where the team's latest corrections come from, and how many to use.
    corrections: Option<(Arc<dyn CorrectionSource>, usize)>,
}

impl<S: EventStore + ?Sized, L: LlmPort> LeadFinder<S, L> {
    pub fn new(
        store: Arc<S>,
        linkedin: Arc<dyn LinkedInPort>,
        llm: Arc<L>,
        clock: Arc<dyn Clock>,
        settings: FinderSettings,
    ) -> Self {
        Self {
            handler: CommandHandler::new(store).with_max_attempts(8),
            linkedin: Some(linkedin),
            llm,
            clock,
            settings,
            corrections: None,
        }
    }

    /// A Lead Finder that only imports files ([`Self::import`]); it cannot run searches.
    pub fn importer(
        store: Arc<S>,
        llm: Arc<L>,
        clock: Arc<dyn Clock>,
        settings: FinderSettings,
    ) -> Self {
        Self {
            handler: CommandHandler::new(store).with_max_attempts(8),
            linkedin: None,
            llm,
            clock,
            settings,
            corrections: None,
        }
    }

    /// Learns from the team: each run reads the latest `limit` classification corrections
    /// (few-shot examples for the LLM; applied by the rules to similar profiles).
    pub fn with_corrections(mut self, source: Arc<dyn CorrectionSource>, limit: usize) -> Self {
        self.corrections = Some((source, limit));
        self
    }

    fn metadata(&self, cause: &RecordedEvent, correlation_id: Uuid, step: &str) -> CommandMetadata {
        self.cause_metadata(&Cause::Event(cause), correlation_id, step)
    }

    fn cause_metadata(
        &self,
        cause: &Cause<'_>,
        correlation_id: Uuid,
        step: &str,
    ) -> CommandMetadata {
        let mut metadata = match cause {
            Cause::Event(event) => {
                CommandMetadata::caused_by(event, Actor::agent(LEAD_FINDER), self.now())
            }
            Cause::Import { actor, .. } => CommandMetadata::new(actor.clone(), self.now()),
        }
        .with_step(cause.id(), step.to_owned());
        metadata.correlation_id = Some(correlation_id);
        metadata
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs the search a `search_request` event asks for (once: a rerun after completion, or
    /// after a crash, repeats no step that was done).
    #[tracing::instrument(skip_all, fields(search = %request.stream_id), err)]
    pub async fn run_search(&self, request: &RecordedEvent) -> Result<SearchOutcome, FinderError> {
        let SearchEvent::SearchRequest(search) = SearchEvent::from_recorded(request)? else {
            return Err(FinderError::NotASearchRequest(request.event_id));
        };
        let stream = search_stream(search.search_id);
        let state = self.handler.load::<SearchState>(&stream).await?.state;
        let mut outcome = SearchOutcome {
            search_id: search.search_id,
            ..SearchOutcome::default()
        };
        if state.completed.is_some() {
            outcome.already_completed = true;
            return Ok(outcome);
        }
        let criteria = SearchCriteria {
            keywords: (!search.criteria.keywords.is_empty())
                .then(|| search.criteria.keywords.join(" ")),
            industries: search.criteria.industries.clone(),
            position_keywords: search.criteria.positions.clone(),
            company_sizes: search.criteria.company_sizes.clone(),
            locations: search.criteria.locations.clone(),
            limit: search.criteria.limit,
        };
        let corrections = match &self.corrections {
            Some((source, limit)) => source.latest_corrections(*limit).await?,
            None => Vec::new(),
        };
        let Some(linkedin) = &self.linkedin else {
            return Err(FinderError::NoLinkedIn);
        };
        let profiles = linkedin.search_profiles(&criteria).await?;
        outcome.profiles_found = u32::try_from(profiles.len()).unwrap_or(u32::MAX);
        // The daily cycle's correlation: the request's own.
        let cycle = request.metadata.correlation_id.unwrap_or(request.event_id);
        for profile in &profiles {
            if outcome.leads.len() as u32 >= self.settings.max_leads_per_day {
                outcome.over_cap += 1;
                continue;
            }
            let origin = Origin::Search {
                search_id: search.search_id,
            };
            match self
                .intake(&Cause::Event(request), &origin, profile, &corrections)
                .await
            {
                Ok(Intake::New(lead)) => outcome.leads.push(lead),
                Ok(Intake::Duplicate) => outcome.duplicates += 1,
                Err(error) => {
                    tracing::warn!(%error, "a profile could not be taken in");
                    outcome.failed.push(error.to_string());
                    self.record_agent_error(request, cycle, "intake", &error.to_string())
                        .await?;
                }
            }
        }
        let complete = SearchCommand::Complete {
            profiles_found: outcome.profiles_found,
            leads_discovered: u32::try_from(outcome.leads.len()).unwrap_or(u32::MAX),
            duplicates: outcome.duplicates,
            failed: u32::try_from(outcome.failed.len()).unwrap_or(u32::MAX),
        };
        match self
            .handler
            .execute::<SearchState>(
                &stream,
                &complete,
                &self.metadata(request, cycle, "complete"),
            )
            .await
        {
            Ok(_) | Err(CommandError::Rejected(DomainError::SearchAlreadyCompleted)) => {}
            Err(error) => return Err(error.into()),
        }
        Ok(outcome)
    }

    /// Imports the accepted rows of an exported prospect list: each becomes a lead once
    /// (claimed, discovered with source `import`, classified and scored like a search's), and a
    /// profile that already is a lead is counted as a duplicate. Lead ids derive from the
    /// import id (see [`import_id`]), so running the same file again after a crash finishes
    /// what was left and repeats nothing. The daily search cap does not apply.
    #[tracing::instrument(skip_all, fields(import = %import_id, rows = plan.accepted.len()), err)]
    pub async fn import(
        &self,
        plan: &ImportPlan,
        import_id: Uuid,
        format: &str,
        actor: Actor,
    ) -> Result<ImportOutcome, FinderError> {
        let corrections = match &self.corrections {
            Some((source, limit)) => source.latest_corrections(*limit).await?,
            None => Vec::new(),
        };
        let origin = Origin::Import {
            import_id,
            format: format.to_owned(),
            emails: plan
                .accepted
                .iter()
                .filter_map(|row| {
                    let email = row.email.clone()?;
                    Some((row.profile_url.as_str().to_owned(), email))
                })
                .collect(),
        };
        let cause = Cause::Import { import_id, actor };
        let mut outcome = ImportOutcome {
            import_id,
            ..ImportOutcome::default()
        };
        for row in &plan.accepted {
            let profile = ProviderProfile {
                provider_id: String::new(),
                name: row.name.clone(),
                position: row.position.clone(),
                company: row.company.clone(),
                company_size: row.company_size.clone(),
                industry: row.industry.clone(),
                location: row.location.clone(),
                about: row.about.clone(),
                recent_activity: None,
                profile_url: row.profile_url.clone(),
                is_connection: false,
            };
            match self.intake(&cause, &origin, &profile, &corrections).await {
                Ok(Intake::New(lead)) => outcome.leads.push((row.line, lead)),
                Ok(Intake::Duplicate) => outcome.already_leads.push(row.line),
                // The domain refused this row (e.g. a lead forgotten under that URL): the
                // row is reported, the others go on. A store failure stops the import; the
                // same file run again finishes it.
                Err(FinderError::Command(CommandError::Rejected(why))) => {
                    outcome.failed.push((row.line, why.to_string()));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(outcome)
    }

    /// Takes one profile in: claim, discover, classify and score.
    async fn intake(
        &self,
        cause: &Cause<'_>,
        origin: &Origin,
        profile: &ProviderProfile,
        corrections: &[Correction],
    ) -> Result<Intake, FinderError> {
        let url = profile.profile_url.clone();
        let lead_id = step_event_id(origin.id(), &url.hash());
        let step = |name: &str| format!("{name}:{}", url.hash());
        let claim = ReserveUrl {
            lead_id,
            url: url.clone(),
        };
        match self
            .handler
            .execute::<UrlReservation>(
                &url_stream(&url),
                &claim,
                &self.cause_metadata(cause, lead_id, &step("reserve_url")),
            )
            .await
        {
            Ok(_) => {}
            Err(CommandError::Rejected(DomainError::UrlAlreadyClaimed { .. })) => {
                return Ok(Intake::Duplicate);
            }
            Err(error) => return Err(error.into()),
        }
        let lead = lead_stream(lead_id);
        let discover = LeadCommand::Discover(DiscoverLead {
            lead_id,
            url: url.clone(),
            name: profile.name.clone(),
            position: profile.position.clone().unwrap_or_default(),
            company: profile.company.clone().unwrap_or_default(),
            company_size: profile.company_size.clone(),
            industry: profile.industry.clone(),
            is_connection: profile.is_connection,
            source: origin.source(),
            search_id: origin.search_id(),
            import_format: origin.import_format(),
            profile: Pii {
                headline: profile.position.clone(),
                about: profile.about.clone(),
                location: profile.location.clone(),
                recent_activity: profile.recent_activity.clone(),
                email: profile_email(origin, &url),
                ..Pii::default()
            },
        });
        let state = match self
            .handler
            .execute::<LeadState>(
                &lead,
                &discover,
                &self.cause_metadata(cause, lead_id, &step("discover")),
            )
            .await
        {
            Ok(executed) => executed.state,
            Err(CommandError::Rejected(DomainError::LeadAlreadyDiscovered { .. })) => {
                self.handler.load::<LeadState>(&lead).await?.state
            }
            Err(error) => return Err(error.into()),
        };
        // A rerun after a crash: what was decided before stands, and is not paid for twice.
        if let (Some((classification, confidence)), Some(quality_score)) =
            (state.classification, state.score)
        {
            return Ok(Intake::New(self.found(
                lead_id,
                classification,
                confidence,
                quality_score,
                false,
            )));
        }

        let rules_profile = rules_profile(profile, &url);
        let task = classify_profile_task_with_corrections(&rules_profile, corrections);
        let answer = self
            .llm
            .complete(AgentName::LeadFinder, &task, || {
                apply_corrections(&rules_profile, assess_profile(&rules_profile), corrections)
            })
            .await
            .map_err(|error| match error {
                LlmError::Ledger(source) => FinderError::Store(StoreError::Database(source)),
                LlmError::InvalidTask(why) => FinderError::Store(StoreError::InvalidAppend(why)),
            })?;
        for alert in &answer.alerts {
            self.raise_alert_for(cause, alert).await?;
        }
        let assessment: ProfileAssessment = answer.value;
        let by_rules = matches!(answer.source, crate::llm::AnswerSource::Fallback(_));
        let mut classify_metadata = self.cause_metadata(cause, lead_id, &step("classify"));
        classify_metadata.llm = answer.usage.clone();
        let classify = LeadCommand::Classify {
            classification: assessment.classification,
            confidence: assessment.confidence,
            rationale: Some(assessment.rationale.clone()),
        };
        let mut score_metadata = self.cause_metadata(cause, lead_id, &step("score"));
        score_metadata.llm = answer.usage;
        let score = LeadCommand::Score {
            score: assessment.quality_score,
            factors: assessment.factors.clone().unwrap_or_default(),
            rationale: None,
        };
        for (command, metadata) in [(classify, classify_metadata), (score, score_metadata)] {
            match self
                .handler
                .execute::<LeadState>(&lead, &command, &metadata)
                .await
            {
                // A human's override stands: the automatic answer does not replace it.
                Ok(_) | Err(CommandError::Rejected(DomainError::OverriddenByHuman)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Intake::New(self.found(
            lead_id,
            assessment.classification,
            assessment.confidence,
            assessment.quality_score,
            by_rules,
        )))
    }

    fn found(
        &self,
        lead_id: Uuid,
        classification: Classification,
        confidence: Confidence,
        quality_score: QualityScore,
        by_rules: bool,
    ) -> FoundLead {
        FoundLead {
            lead_id,
            classification,
            confidence,
            quality_score,
            allocatable: quality_score.value() >= self.settings.quality_threshold,
            needs_review: confidence.value() < self.settings.review_confidence_threshold,
            by_rules,
        }
    }

    async fn raise_alert_for(
        &self,
        cause: &Cause<'_>,
        alert: &LlmAlert,
    ) -> Result<(), FinderError> {
        let command = DepartmentCommand::RaiseAlert {
            metric: alert.metric.clone(),
            value: alert.value,
            threshold: alert.threshold,
            severity: AlertSeverity::Warning,
            message: alert.message.clone(),
        };
        let step = format!("alert:{}:{}", alert.metric, alert.date);
        match self
            .handler
            .execute::<DepartmentState>(
                DEPARTMENT_STREAM,
                &command,
                &self.cause_metadata(cause, cause.correlation(), &step),
            )
            .await
        {
            Ok(_) | Err(CommandError::Rejected(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn record_agent_error(
        &self,
        cause: &RecordedEvent,
        correlation: Uuid,
        operation: &str,
        error: &str,
    ) -> Result<(), FinderError> {
        let command = DepartmentCommand::RecordAgentError {
            agent: LEAD_FINDER.into(),
            operation: operation.into(),
            error: error.into(),
            lead_id: None,
            retryable: true,
        };
        let metadata = CommandMetadata::caused_by(cause, Actor::agent(LEAD_FINDER), self.now())
            .with_correlation(correlation);
        match self
            .handler
            .execute::<DepartmentState>(DEPARTMENT_STREAM, &command, &metadata)
            .await
        {
            Ok(_) | Err(CommandError::Rejected(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

enum Intake {
    New(FoundLead),
    Duplicate,
}

/// What a step of an intake was caused by: a recorded request (a search), or an import a
/// person started (whose id is derived from the file, so a rerun finds its own steps).
enum Cause<'a> {
    Event(&'a RecordedEvent),
    Import { import_id: Uuid, actor: Actor },
}

impl Cause<'_> {
    fn id(&self) -> Uuid {
        match self {
            Self::Event(event) => event.event_id,
            Self::Import { import_id, .. } => *import_id,
        }
    }

    fn correlation(&self) -> Uuid {
        match self {
            Self::Event(event) => event.metadata.correlation_id.unwrap_or(event.event_id),
            Self::Import { import_id, .. } => *import_id,
        }
    }
}

/// Where a profile came from: a search, or a row of an imported file (with its e-mail).
enum Origin {
    Search {
        search_id: Uuid,
    },
    Import {
        import_id: Uuid,
        format: String,
        emails: std::collections::HashMap<String, String>,
    },
}

impl Origin {
    /// Lead ids are derived from this and the URL.
    fn id(&self) -> Uuid {
        match self {
            Self::Search { search_id } => *search_id,
            Self::Import { import_id, .. } => *import_id,
        }
    }

    fn source(&self) -> LeadSource {
        match self {
            Self::Search { .. } => LeadSource::Search,
            Self::Import { .. } => LeadSource::Import,
        }
    }

    fn search_id(&self) -> Option<Uuid> {
        match self {
            Self::Search { search_id } => Some(*search_id),
            Self::Import { .. } => None,
        }
    }

    fn import_format(&self) -> Option<String> {
        match self {
            Self::Search { .. } => None,
            Self::Import { format, .. } => Some(format.clone()),
        }
    }
}

fn profile_email(origin: &Origin, url: &LinkedInUrl) -> Option<String> {
    match origin {
        Origin::Search { .. } => None,
        Origin::Import { emails, .. } => emails.get(url.as_str()).cloned(),
    }
}

/// The rules engine's (and the LLM's) view of a provider profile.
fn rules_profile(profile: &ProviderProfile, url: &LinkedInUrl) -> Profile {
    Profile {
        name: profile.name.clone(),
        position: profile.position.clone().unwrap_or_default(),
        company: profile.company.clone().unwrap_or_default(),
        company_size: profile.company_size.clone().unwrap_or_default(),
        industry: profile.industry.clone().unwrap_or_default(),
        location: profile.location.clone().unwrap_or_default(),
        about: profile.about.clone().unwrap_or_default(),
        recent_activity: profile.recent_activity.clone().unwrap_or_default(),
        linkedin_url: url.as_str().to_owned(),
    }
}
