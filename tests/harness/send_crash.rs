//! Crashes injected at each step of the send path (`salesdept_agents::outreach::send`).
//!
//! The send path is: the slot on the account's stream (the recorded intent), the provider's
//! call keyed by the slot, the outcome on the lead; after a crash, reconciliation by the same
//! key. A [`SendCrash`] wraps every account's LinkedIn adapter and, at its step of the
//! `after + 1`-th send of its kind, stops answering for good and says so: the test then drops
//! the department there, as a killed process would leave it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use salesdept_agents::department::LinkedInWrapper;
use salesdept_agents::linkedin::{
    ConnectionAccepted, IdempotencyKey, InvitationNote, LinkedInError, LinkedInPort, MessageText,
    Provider, ProviderProfile, Recipient, Reply, SearchCriteria, SentMessage,
};
use salesdept_events::domain::LinkedInUrl;
use tokio::sync::Notify;

/// Where in the send path the process dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendStep {
    /// The slot (the intent to send) is on the account's stream; the provider was not called.
    IntentRecorded,
    /// The provider took the send; its event is not in the log.
    ProviderAccepted,
    /// The send's event is on the lead; the process dies at its next call to LinkedIn.
    OutcomeRecorded,
    /// A restarted department asked the provider what became of an interrupted send and got
    /// the answer, but dies before recording it.
    Reconciling,
}

/// Which sends a crash counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendKind {
    Invitation,
    Message,
}

/// One planned crash, shared by the wrappers of every account of one department.
#[derive(Clone)]
pub struct SendCrash {
    pub step: SendStep,
    pub kind: SendKind,
    left: Arc<AtomicU32>,
    /// Set once the planned send's outcome was recorded: the next call dies.
    die_at_next_call: Arc<AtomicBool>,
    pub crashed: Arc<Notify>,
    /// The provider id of the send the crash concerns, when the provider gave one.
    cut_off: Arc<std::sync::Mutex<Option<String>>>,
}

impl SendCrash {
    /// Dies at `step` of the `after + 1`-th send of `kind` (for [`SendStep::Reconciling`], at
    /// the first reconciliation whatever `kind` and `after`).
    pub fn new(step: SendStep, kind: SendKind, after: u32) -> Self {
        Self {
            step,
            kind,
            left: Arc::new(AtomicU32::new(after)),
            die_at_next_call: Arc::new(AtomicBool::new(false)),
            crashed: Arc::new(Notify::new()),
            cut_off: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    pub fn wrapper(&self) -> LinkedInWrapper {
        let plan = self.clone();
        Arc::new(move |_account, inner| {
            Arc::new(CrashingLinkedIn {
                inner,
                plan: plan.clone(),
            }) as Arc<dyn LinkedInPort>
        })
    }

    pub fn cut_off(&self) -> Option<String> {
        self.cut_off.lock().unwrap().clone()
    }

    /// The process "dies": says so, then never answers (the department is dropped meanwhile).
    async fn die(&self) -> ! {
        self.crashed.notify_one();
        std::future::pending::<()>().await;
        unreachable!("a pending future never completes")
    }

    /// Whether this send is the planned one (counting sends of the planned kind).
    fn is_planned(&self, kind: SendKind) -> bool {
        if self.step == SendStep::Reconciling || kind != self.kind {
            return false;
        }
        let left = self.left.load(Ordering::SeqCst);
        if left == 0 {
            return true;
        }
        self.left.store(left - 1, Ordering::SeqCst);
        false
    }

    async fn before_any_call(&self) {
        if self.die_at_next_call.load(Ordering::SeqCst) {
            self.die().await;
        }
    }

    /// Wraps one send: the crash's step decides where it dies.
    async fn send(
        &self,
        kind: SendKind,
        call: impl std::future::Future<Output = Result<SentMessage, LinkedInError>>,
    ) -> Result<SentMessage, LinkedInError> {
        self.before_any_call().await;
        if !self.is_planned(kind) {
            return call.await;
        }
        match self.step {
            SendStep::IntentRecorded => self.die().await,
            SendStep::ProviderAccepted => {
                let sent = call.await?;
                *self.cut_off.lock().unwrap() = Some(sent.provider_message_id.clone());
                self.die().await
            }
            SendStep::OutcomeRecorded => {
                let sent = call.await?;
                *self.cut_off.lock().unwrap() = Some(sent.provider_message_id.clone());
                self.die_at_next_call.store(true, Ordering::SeqCst);
                Ok(sent)
            }
            SendStep::Reconciling => call.await,
        }
    }
}

struct CrashingLinkedIn {
    inner: Arc<dyn LinkedInPort>,
    plan: SendCrash,
}

#[async_trait]
impl LinkedInPort for CrashingLinkedIn {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }

    async fn search_profiles(
        &self,
        criteria: &SearchCriteria,
    ) -> Result<Vec<ProviderProfile>, LinkedInError> {
        self.plan.before_any_call().await;
        self.inner.search_profiles(criteria).await
    }

    async fn fetch_profile(
        &self,
        profile_url: &LinkedInUrl,
    ) -> Result<ProviderProfile, LinkedInError> {
        self.plan.before_any_call().await;
        self.inner.fetch_profile(profile_url).await
    }

    async fn send_connection_request(
        &self,
        to: &Recipient,
        note: Option<&InvitationNote>,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        self.plan
            .send(
                SendKind::Invitation,
                self.inner.send_connection_request(to, note, key),
            )
            .await
    }

    async fn send_message(
        &self,
        to: &Recipient,
        text: &MessageText,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        self.plan
            .send(SendKind::Message, self.inner.send_message(to, text, key))
            .await
    }

    async fn replies_since(&self, since: DateTime<Utc>) -> Result<Vec<Reply>, LinkedInError> {
        self.plan.before_any_call().await;
        self.inner.replies_since(since).await
    }

    async fn connections_accepted_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ConnectionAccepted>, LinkedInError> {
        self.plan.before_any_call().await;
        self.inner.connections_accepted_since(since).await
    }

    async fn find_sent(&self, key: IdempotencyKey) -> Result<Option<SentMessage>, LinkedInError> {
        self.plan.before_any_call().await;
        let found = self.inner.find_sent(key).await?;
        if self.plan.step == SendStep::Reconciling {
            *self.plan.cut_off.lock().unwrap() =
                found.as_ref().map(|sent| sent.provider_message_id.clone());
            self.plan.die().await;
        }
        Ok(found)
    }
}
