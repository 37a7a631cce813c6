//! The `account-<id>` stream: one LinkedIn sending account's send slots.
//!
//! Every message or invitation first reserves a slot here. The account's limits are checked
//! against the slots already in the stream, and the reservation is appended with the version
//! read, so several Outreach processes sending from one account at once can never together
//! exceed a cap or break the minimum gap: the loser of a race conflicts, reloads, and is
//! decided again against the winner's slot.
//!
//! The minimum gap between two actions is drawn at random (5–15 minutes by default) by the
//! caller and carried by the command; the reservation records it, and the next action on the
//! account may not happen before `at + gap`. Replaying the stream therefore gives the same
//! decisions without the random number generator.

use std::fmt;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::DomainError;
use super::event::{Aggregate, DecisionContext, domain_events};

/// What a slot is used for. The kinds have separate daily caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendAction {
    /// A message (first message or follow-up) to a connection.
    Message,
    /// A connection invitation.
    Invitation,
}

/// Which limit refused a reservation (the daily report says which cap bound the day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimit {
    MinimumGap,
    MessagesPerDay,
    InvitationsPerDay,
    InvitationsPerWeek,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MinimumGap => "the minimum gap between actions",
            Self::MessagesPerDay => "the daily message cap",
            Self::InvitationsPerDay => "the daily invitation cap",
            Self::InvitationsPerWeek => "the rolling weekly invitation cap",
        })
    }
}

/// When an account may act: a daily window on some weekdays, in the account's time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkingHours {
    pub time_zone: Tz,
    pub start: NaiveTime,
    /// Exclusive.
    pub end: NaiveTime,
    pub days: Vec<Weekday>,
}

impl Default for WorkingHours {
    /// 09:00–17:00, Monday to Friday, UTC.
    fn default() -> Self {
        Self {
            time_zone: Tz::UTC,
            start: NaiveTime::from_hms_opt(9, 0, 0).expect("a valid time"),
            end: NaiveTime::from_hms_opt(17, 0, 0).expect("a valid time"),
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
        }
    }
}

impl WorkingHours {
    /// The default window in another time zone.
    pub fn in_time_zone(time_zone: Tz) -> Self {
        Self {
            time_zone,
            ..Self::default()
        }
    }

    /// The account's calendar day at `at`: daily caps count per local day.
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.time_zone).date_naive()
    }

    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.time_zone);
        self.days.contains(&local.weekday()) && {
            let date = local.date_naive();
            self.local_instant(date, self.start) <= at && at < self.local_instant(date, self.end)
        }
    }

    /// The first instant at or after `after` inside the window (`after` itself when inside).
    pub fn next_opening(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        let mut date = self.local_date(after);
        // Two weeks always reach a working day when any is configured.
        for _ in 0..15 {
            if self.days.contains(&date.weekday()) {
                let (start, end) = (
                    self.local_instant(date, self.start),
                    self.local_instant(date, self.end),
                );
                if after < end {
                    return start.max(after);
                }
            }
            date = date.succ_opt().unwrap_or(date);
        }
        after
    }

    /// The first opening on a later local day than `at`'s.
    pub fn next_day_opening(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let tomorrow = self
            .local_date(at)
            .succ_opt()
            .unwrap_or(self.local_date(at));
        self.next_opening(self.local_instant(tomorrow, NaiveTime::MIN))
    }

    /// A local wall-clock time on `date` as an instant. In a daylight-saving gap the wall time
    /// does not exist and the instant an hour later is used; in an overlap, the earlier one.
    fn local_instant(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let local = date.and_time(time);
        let resolved = match self.time_zone.from_local_datetime(&local) {
            LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => Some(instant),
            LocalResult::None => self
                .time_zone
                .from_local_datetime(&(local + TimeDelta::hours(1)))
                .earliest(),
        };
        resolved.map_or_else(|| local.and_utc(), |instant| instant.with_timezone(&Utc))
    }

    fn validate(&self) -> Result<(), DomainError> {
        if self.start >= self.end {
            return Err(DomainError::InvalidCommand(format!(
                "working hours must start before they end ({}–{})",
                self.start, self.end
            )));
        }
        if self.days.is_empty() {
            return Err(DomainError::InvalidCommand(
                "working hours need at least one day".into(),
            ));
        }
        Ok(())
    }
}

/// A sending account's limits (LinkedIn restricts accounts well below these per week).
#[derive(Clone, Debug, PartialEq)]
pub struct AccountLimits {
    /// Messages (first messages and follow-ups) per local day. Default 45.
    pub messages_per_day: u32,
    /// Connection invitations per local day. Default 20.
    pub invitations_per_day: u32,
    /// Connection invitations per rolling `invitation_window`. Default 100.
    pub invitations_per_window: u32,
    /// Default 7 days.
    pub invitation_window: TimeDelta,
    /// The gap drawn between two actions lies in `min_gap..=max_gap`. Default 5–15 minutes.
    pub min_gap: TimeDelta,
    pub max_gap: TimeDelta,
    pub working_hours: WorkingHours,
}

impl Default for AccountLimits {
    fn default() -> Self {
        Self {
            messages_per_day: 45,
            invitations_per_day: 20,
            invitations_per_window: 100,
            invitation_window: TimeDelta::days(7),
            min_gap: TimeDelta::minutes(5),
            max_gap: TimeDelta::minutes(15),
            working_hours: WorkingHours::default(),
        }
    }
}

impl AccountLimits {
    /// The gap for a uniform random draw in `[0, 1]`, whole seconds between the configured
    /// minimum and maximum. The caller draws (from the seeded RNG) and passes the gap in the
    /// command.
    pub fn gap_from_fraction(&self, fraction: f64) -> TimeDelta {
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let span = (self.max_gap - self.min_gap).num_seconds() as f64;
        self.min_gap + TimeDelta::seconds((span * fraction).round() as i64)
    }

    fn validate(&self) -> Result<(), DomainError> {
        if self.min_gap < TimeDelta::zero() || self.min_gap > self.max_gap {
            return Err(DomainError::InvalidCommand(format!(
                "the gap range {}s–{}s is empty",
                self.min_gap.num_seconds(),
                self.max_gap.num_seconds()
            )));
        }
        if self.invitation_window <= TimeDelta::zero() {
            return Err(DomainError::InvalidCommand(
                "the invitation window must be positive".into(),
            ));
        }
        self.working_hours.validate()
    }
}

domain_events! {
    /// Events of an `account-<id>` stream.
    pub enum AccountEvent {
        SendSlotReserved(SendSlotReserved) = "send_slot_reserved",
        SendSlotReleased(SendSlotReleased) = "send_slot_released",
    }
}

/// A slot for one action at `at`; the next action on the account waits `gap_seconds`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendSlotReserved {
    pub slot_id: Uuid,
    pub lead_id: Uuid,
    pub action: SendAction,
    #[serde(with = "crate::envelope::rfc3339")]
    pub at: DateTime<Utc>,
    /// The drawn minimum gap before the account's next action, in seconds.
    pub gap_seconds: i64,
}

/// Why a slot is given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The provider refused the send: nothing reached LinkedIn.
    SendFailed,
    /// The send was called off before it was attempted (e.g. the lead became do-not-contact).
    Cancelled,
}

/// The slot's action did not happen: it no longer counts towards the caps. (It still counts
/// for the gap: the clock is never wound back.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendSlotReleased {
    pub slot_id: Uuid,
    pub reason: ReleaseReason,
}

/// Reserves a slot for `action` now (the command's time).
#[derive(Clone, Debug, PartialEq)]
pub struct ReserveSendSlot {
    /// Chosen by the caller, e.g. a [`step_event_id`](crate::step_event_id), so a retried
    /// reservation is recognised.
    pub slot_id: Uuid,
    pub lead_id: Uuid,
    pub action: SendAction,
    /// The random gap drawn for after this action (within the limits' range).
    pub gap: TimeDelta,
    pub limits: AccountLimits,
}

/// Gives a slot back.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseSendSlot {
    pub slot_id: Uuid,
    pub reason: ReleaseReason,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AccountCommand {
    Reserve(ReserveSendSlot),
    Release(ReleaseSendSlot),
}

impl From<ReserveSendSlot> for AccountCommand {
    fn from(command: ReserveSendSlot) -> Self {
        Self::Reserve(command)
    }
}

impl From<ReleaseSendSlot> for AccountCommand {
    fn from(command: ReleaseSendSlot) -> Self {
        Self::Release(command)
    }
}

/// One reserved slot.
#[derive(Clone, Debug, PartialEq)]
pub struct SendSlot {
    pub slot_id: Uuid,
    pub lead_id: Uuid,
    pub action: SendAction,
    pub at: DateTime<Utc>,
    pub gap: TimeDelta,
    pub released: Option<ReleaseReason>,
}

impl SendSlot {
    /// When the account's next action may happen.
    pub fn next_action_not_before(&self) -> DateTime<Utc> {
        self.at + self.gap
    }
}

/// An account's slots, in the order reserved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountState {
    pub slots: Vec<SendSlot>,
}

impl AccountState {
    pub fn slot(&self, slot_id: Uuid) -> Option<&SendSlot> {
        self.slots.iter().find(|slot| slot.slot_id == slot_id)
    }

    /// When the next action may happen (None: no action yet).
    pub fn next_action_not_before(&self) -> Option<DateTime<Utc>> {
        self.slots
            .iter()
            .map(SendSlot::next_action_not_before)
            .max()
    }

    fn counted(&self, action: SendAction) -> impl Iterator<Item = &SendSlot> {
        self.slots
            .iter()
            .filter(move |slot| slot.action == action && slot.released.is_none())
    }

    /// Slots of `action` counted on `now`'s local day.
    pub fn used_on_day(
        &self,
        action: SendAction,
        limits: &AccountLimits,
        now: DateTime<Utc>,
    ) -> u32 {
        let today = limits.working_hours.local_date(now);
        count(
            self.counted(action)
                .filter(|slot| limits.working_hours.local_date(slot.at) == today),
        )
    }

    /// Invitation slots counted in the rolling window ending at `now`, oldest first.
    fn invitations_in_window(
        &self,
        limits: &AccountLimits,
        now: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut times: Vec<DateTime<Utc>> = self
            .counted(SendAction::Invitation)
            .filter(|slot| slot.at > now - limits.invitation_window)
            .map(|slot| slot.at)
            .collect();
        times.sort();
        times
    }

    /// How many more `action`s the caps allow today (ignoring the gap and working hours).
    pub fn remaining_today(
        &self,
        action: SendAction,
        limits: &AccountLimits,
        now: DateTime<Utc>,
    ) -> u32 {
        let used = self.used_on_day(action, limits, now);
        match action {
            SendAction::Message => limits.messages_per_day.saturating_sub(used),
            SendAction::Invitation => {
                let in_window = count(self.invitations_in_window(limits, now).iter());
                limits
                    .invitations_per_day
                    .saturating_sub(used)
                    .min(limits.invitations_per_window.saturating_sub(in_window))
            }
        }
    }

    /// Whether an `action` may happen at `now`: working hours, the gap, then the caps. This is
    /// the check a reservation makes; callers may ask it first to plan their day.
    pub fn check(
        &self,
        action: SendAction,
        limits: &AccountLimits,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        limits.validate()?;
        let hours = &limits.working_hours;
        if !hours.contains(now) {
            return Err(DomainError::OutsideWorkingHours {
                next_opening: hours.next_opening(now),
            });
        }
        if let Some(not_before) = self
            .next_action_not_before()
            .filter(|not_before| now < *not_before)
        {
            return Err(DomainError::RateLimited {
                limit: RateLimit::MinimumGap,
                retry_at: not_before,
            });
        }
        let used_today = self.used_on_day(action, limits, now);
        let (daily_cap, daily_limit) = match action {
            SendAction::Message => (limits.messages_per_day, RateLimit::MessagesPerDay),
            SendAction::Invitation => (limits.invitations_per_day, RateLimit::InvitationsPerDay),
        };
        if used_today >= daily_cap {
            return Err(DomainError::RateLimited {
                limit: daily_limit,
                retry_at: hours.next_day_opening(now),
            });
        }
        if action == SendAction::Invitation {
            let in_window = self.invitations_in_window(limits, now);
            let cap = limits.invitations_per_window as usize;
            if in_window.len() >= cap {
                // The window drops its oldest entries; room opens when enough have left.
                let frees_at = in_window[in_window.len() - cap] + limits.invitation_window;
                return Err(DomainError::RateLimited {
                    limit: RateLimit::InvitationsPerWeek,
                    retry_at: hours.next_opening(frees_at),
                });
            }
        }
        Ok(())
    }
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}

impl Aggregate for AccountState {
    type Event = AccountEvent;
    type Command = AccountCommand;

    fn evolve(mut self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::SendSlotReserved(reserved) => self.slots.push(SendSlot {
                slot_id: reserved.slot_id,
                lead_id: reserved.lead_id,
                action: reserved.action,
                at: reserved.at,
                gap: TimeDelta::seconds(reserved.gap_seconds),
                released: None,
            }),
            AccountEvent::SendSlotReleased(released) => {
                if let Some(slot) = self
                    .slots
                    .iter_mut()
                    .find(|slot| slot.slot_id == released.slot_id)
                {
                    slot.released = Some(released.reason);
                }
            }
        }
        self
    }

    fn decide(
        &self,
        command: &AccountCommand,
        context: &DecisionContext,
    ) -> Result<Vec<AccountEvent>, DomainError> {
        match command {
            AccountCommand::Reserve(reserve) => {
                if self.slot(reserve.slot_id).is_some() {
                    return Ok(Vec::new());
                }
                let limits = &reserve.limits;
                limits.validate()?;
                if reserve.gap < limits.min_gap || reserve.gap > limits.max_gap {
                    return Err(DomainError::InvalidCommand(format!(
                        "the drawn gap of {}s is outside {}s–{}s",
                        reserve.gap.num_seconds(),
                        limits.min_gap.num_seconds(),
                        limits.max_gap.num_seconds()
                    )));
                }
                self.check(reserve.action, limits, context.now)?;
                Ok(vec![
                    SendSlotReserved {
                        slot_id: reserve.slot_id,
                        lead_id: reserve.lead_id,
                        action: reserve.action,
                        at: context.now,
                        gap_seconds: reserve.gap.num_seconds(),
                    }
                    .into(),
                ])
            }
            AccountCommand::Release(release) => match self.slot(release.slot_id) {
                None => Err(DomainError::UnknownSlot {
                    slot_id: release.slot_id,
                }),
                Some(slot) if slot.released.is_some() => Ok(Vec::new()),
                Some(_) => Ok(vec![
                    SendSlotReleased {
                        slot_id: release.slot_id,
                        reason: release.reason,
                    }
                    .into(),
                ]),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::{given, test_time};

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn slot(action: SendAction, at_time: DateTime<Utc>, gap_minutes: i64) -> AccountEvent {
        SendSlotReserved {
            slot_id: Uuid::now_v7(),
            lead_id: Uuid::now_v7(),
            action,
            at: at_time,
            gap_seconds: gap_minutes * 60,
        }
        .into()
    }

    /// `n` slots of `action` from `first`, `every` minutes apart, each with a 5-minute gap.
    fn slots(action: SendAction, first: DateTime<Utc>, n: i64, every: i64) -> Vec<AccountEvent> {
        (0..n)
            .map(|index| slot(action, first + TimeDelta::minutes(index * every), 5))
            .collect()
    }

    fn reserve(action: SendAction, gap_minutes: i64) -> ReserveSendSlot {
        ReserveSendSlot {
            slot_id: Uuid::from_u128(7),
            lead_id: Uuid::from_u128(8),
            action,
            gap: TimeDelta::minutes(gap_minutes),
            limits: AccountLimits::default(),
        }
    }

    fn reserved(command: &ReserveSendSlot, now: DateTime<Utc>) -> AccountEvent {
        SendSlotReserved {
            slot_id: command.slot_id,
            lead_id: command.lead_id,
            action: command.action,
            at: now,
            gap_seconds: command.gap.num_seconds(),
        }
        .into()
    }

    #[test]
    fn a_slot_inside_working_hours_is_reserved_with_its_drawn_gap() {
        let command = reserve(SendAction::Message, 7);
        given::<AccountState>([])
            .when(command.clone().into())
            .then([reserved(&command, test_time())]);
    }

    #[test]
    fn outside_working_hours_is_refused_with_the_next_opening() {
        for (now, next) in [
            ("2026-11-25T08:59:59Z", "2026-11-25T09:00:00Z"),
            ("2026-11-25T17:00:00Z", "2026-11-26T09:00:00Z"),
            ("2026-11-27T18:00:00Z", "2026-11-30T09:00:00Z"),
            ("2026-11-28T12:00:00Z", "2026-11-30T09:00:00Z"),
        ] {
            given::<AccountState>([])
                .at(at(now))
                .when(reserve(SendAction::Message, 5).into())
                .then_error(DomainError::OutsideWorkingHours {
                    next_opening: at(next),
                });
        }
    }

    #[test]
    fn working_hours_are_in_the_accounts_time_zone() {
        let mut command = reserve(SendAction::Message, 5);
        command.limits.working_hours = WorkingHours::in_time_zone(chrono_tz::America::New_York);
        // 13:30 UTC is 08:30 in New York (EST, UTC-5).
        given::<AccountState>([])
            .at(at("2026-11-25T13:30:00Z"))
            .when(command.clone().into())
            .then_error(DomainError::OutsideWorkingHours {
                next_opening: at("2026-11-25T14:00:00Z"),
            });
        given::<AccountState>([])
            .at(at("2026-11-25T21:59:00Z"))
            .when(command.clone().into())
            .then([reserved(&command, at("2026-11-25T21:59:00Z"))]);
    }

    #[test]
    fn the_next_action_waits_for_the_gap_drawn_by_the_previous_one() {
        let previous = slot(SendAction::Invitation, at("2026-11-25T10:00:00Z"), 12);
        given::<AccountState>([previous.clone()])
            .at(at("2026-11-25T10:11:59Z"))
            .when(reserve(SendAction::Message, 5).into())
            .then_error(DomainError::RateLimited {
                limit: RateLimit::MinimumGap,
                retry_at: at("2026-11-25T10:12:00Z"),
            });
        let command = reserve(SendAction::Message, 5);
        given::<AccountState>([previous])
            .at(at("2026-11-25T10:12:00Z"))
            .when(command.clone().into())
            .then([reserved(&command, at("2026-11-25T10:12:00Z"))]);
    }

    #[test]
    fn a_gap_outside_the_configured_range_is_refused() {
        for minutes in [4, 16] {
            let error = given::<AccountState>([])
                .when(reserve(SendAction::Message, minutes).into())
                .then_err();
            assert!(
                matches!(error, DomainError::InvalidCommand(_)),
                "{minutes}: {error:?}"
            );
        }
    }

    #[test]
    fn the_daily_message_cap_holds_per_local_day() {
        let today = slots(SendAction::Message, at("2026-11-25T09:00:00Z"), 45, 10);
        let now = at("2026-11-25T16:55:00Z");
        given::<AccountState>(today.clone())
            .at(now)
            .when(reserve(SendAction::Message, 5).into())
            .then_error(DomainError::RateLimited {
                limit: RateLimit::MessagesPerDay,
                retry_at: at("2026-11-26T09:00:00Z"),
            });
        // Invitations have their own cap.
        let command = reserve(SendAction::Invitation, 5);
        given::<AccountState>(today.clone())
            .at(now)
            .when(command.clone().into())
            .then([reserved(&command, now)]);
        // The next day starts again.
        let command = reserve(SendAction::Message, 5);
        let tomorrow = at("2026-11-26T09:00:00Z");
        given::<AccountState>(today)
            .at(tomorrow)
            .when(command.clone().into())
            .then([reserved(&command, tomorrow)]);
    }

    #[test]
    fn a_released_slot_does_not_count_towards_the_cap() {
        let mut events = slots(SendAction::Message, at("2026-11-25T09:00:00Z"), 45, 10);
        let AccountEvent::SendSlotReserved(first) = events[0].clone() else {
            unreachable!()
        };
        events.push(
            SendSlotReleased {
                slot_id: first.slot_id,
                reason: ReleaseReason::SendFailed,
            }
            .into(),
        );
        let now = at("2026-11-25T16:55:00Z");
        let command = reserve(SendAction::Message, 5);
        given::<AccountState>(events)
            .at(now)
            .when(command.clone().into())
            .then([reserved(&command, now)]);
    }

    #[test]
    fn the_daily_invitation_cap_is_twenty() {
        let today = slots(SendAction::Invitation, at("2026-11-25T09:00:00Z"), 20, 10);
        given::<AccountState>(today)
            .at(at("2026-11-25T13:00:00Z"))
            .when(reserve(SendAction::Invitation, 5).into())
            .then_error(DomainError::RateLimited {
                limit: RateLimit::InvitationsPerDay,
                retry_at: at("2026-11-26T09:00:00Z"),
            });
    }

    #[test]
    fn invitations_are_capped_per_rolling_seven_days() {
        // 20 a day from Wednesday to the next Tuesday (five working days): 100 in the window.
        let mut week = Vec::new();
        for day in [
            "2026-11-25",
            "2026-11-26",
            "2026-11-27",
            "2026-11-30",
            "2026-12-01",
        ] {
            week.extend(slots(
                SendAction::Invitation,
                at(&format!("{day}T10:00:00Z")),
                20,
                10,
            ));
        }
        // Next Wednesday 09:30: no invitation today yet, but the first of last Wednesday's
        // (10:00) is still inside the window until 10:00.
        given::<AccountState>(week.clone())
            .at(at("2026-12-02T09:30:00Z"))
            .when(reserve(SendAction::Invitation, 5).into())
            .then_error(DomainError::RateLimited {
                limit: RateLimit::InvitationsPerWeek,
                retry_at: at("2026-12-02T10:00:00Z"),
            });
        let command = reserve(SendAction::Invitation, 5);
        given::<AccountState>(week.clone())
            .at(at("2026-12-02T10:00:00Z"))
            .when(command.clone().into())
            .then([reserved(&command, at("2026-12-02T10:00:00Z"))]);
        // Messages are not limited by the invitation window.
        let command = reserve(SendAction::Message, 5);
        given::<AccountState>(week)
            .at(at("2026-12-02T09:30:00Z"))
            .when(command.clone().into())
            .then([reserved(&command, at("2026-12-02T09:30:00Z"))]);
    }

    #[test]
    fn reserving_the_same_slot_again_is_a_no_op() {
        let command = reserve(SendAction::Message, 5);
        given::<AccountState>([reserved(&command, test_time())])
            .at(test_time() + TimeDelta::minutes(1))
            .when(command.into())
            .then([]);
    }

    #[test]
    fn slots_are_released_once_and_only_when_known() {
        let command = reserve(SendAction::Message, 5);
        let release = ReleaseSendSlot {
            slot_id: command.slot_id,
            reason: ReleaseReason::Cancelled,
        };
        let released: AccountEvent = SendSlotReleased {
            slot_id: command.slot_id,
            reason: ReleaseReason::Cancelled,
        }
        .into();
        given::<AccountState>([reserved(&command, test_time())])
            .when(release.clone().into())
            .then([released.clone()]);
        given::<AccountState>([reserved(&command, test_time()), released])
            .when(release.clone().into())
            .then([]);
        given::<AccountState>([])
            .when(release.into())
            .then_error(DomainError::UnknownSlot {
                slot_id: command.slot_id,
            });
    }

    #[test]
    fn remaining_today_reports_the_binding_cap() {
        let limits = AccountLimits::default();
        let state = AccountState::fold(&slots(
            SendAction::Invitation,
            at("2026-11-25T09:00:00Z"),
            15,
            10,
        ));
        let now = at("2026-11-25T12:00:00Z");
        assert_eq!(
            state.remaining_today(SendAction::Invitation, &limits, now),
            5
        );
        assert_eq!(state.remaining_today(SendAction::Message, &limits, now), 45);
    }

    #[test]
    fn gaps_are_drawn_inside_the_range() {
        let limits = AccountLimits::default();
        assert_eq!(limits.gap_from_fraction(0.0), TimeDelta::minutes(5));
        assert_eq!(limits.gap_from_fraction(1.0), TimeDelta::minutes(15));
        assert_eq!(limits.gap_from_fraction(0.5), TimeDelta::minutes(10));
        assert_eq!(limits.gap_from_fraction(f64::NAN), TimeDelta::minutes(5));
    }

    #[test]
    fn daylight_saving_gaps_do_not_break_the_window() {
        // Europe/Berlin springs forward on 2027-03-28 (a Sunday); a window opening at 02:30
        // that day does not exist and opens at 03:30 local instead.
        let hours = WorkingHours {
            time_zone: chrono_tz::Europe::Berlin,
            start: NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
            end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            days: vec![Weekday::Sun],
        };
        assert_eq!(
            hours.next_opening(at("2027-03-27T12:00:00Z")),
            at("2027-03-28T01:30:00Z")
        );
    }
}

#[cfg(test)]
mod properties {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::envelope::Actor;

    /// Small caps and a time zone away from UTC, so that every limit binds in short runs.
    fn limits() -> AccountLimits {
        AccountLimits {
            messages_per_day: 6,
            invitations_per_day: 3,
            invitations_per_window: 8,
            working_hours: WorkingHours::in_time_zone(chrono_tz::Europe::Berlin),
            ..AccountLimits::default()
        }
    }

    /// Checks every limit on a recorded history, as of each reservation.
    fn check_history(
        history: &[AccountEvent],
        limits: &AccountLimits,
    ) -> Result<(), TestCaseError> {
        let hours = &limits.working_hours;
        let mut active: Vec<&SendSlotReserved> = Vec::new();
        let mut previous: Option<&SendSlotReserved> = None;
        let mut released: HashSet<Uuid> = HashSet::new();
        for event in history {
            match event {
                AccountEvent::SendSlotReserved(slot) => {
                    prop_assert!(
                        hours.contains(slot.at),
                        "{} is outside working hours",
                        slot.at
                    );
                    if let Some(previous) = previous {
                        let not_before = previous.at + TimeDelta::seconds(previous.gap_seconds);
                        prop_assert!(slot.at >= not_before, "{} before {not_before}", slot.at);
                    }
                    let gap = TimeDelta::seconds(slot.gap_seconds);
                    prop_assert!(limits.min_gap <= gap && gap <= limits.max_gap);
                    active.push(slot);
                    let same_day = active
                        .iter()
                        .filter(|other| {
                            other.action == slot.action
                                && hours.local_date(other.at) == hours.local_date(slot.at)
                        })
                        .count() as u32;
                    let cap = match slot.action {
                        SendAction::Message => limits.messages_per_day,
                        SendAction::Invitation => limits.invitations_per_day,
                    };
                    prop_assert!(same_day <= cap, "{same_day} {:?} on one day", slot.action);
                    let in_window = active
                        .iter()
                        .filter(|other| {
                            other.action == SendAction::Invitation
                                && other.at > slot.at - limits.invitation_window
                        })
                        .count() as u32;
                    prop_assert!(
                        in_window <= limits.invitations_per_window,
                        "{in_window} invitations in a week"
                    );
                    previous = Some(slot);
                }
                AccountEvent::SendSlotReleased(release) => {
                    prop_assert!(released.insert(release.slot_id), "released twice");
                    active.retain(|slot| slot.slot_id != release.slot_id);
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_sequence_of_reservations_breaks_the_limits(
            steps in prop::collection::vec(
                (
                    // Mostly minutes apart (the gap and the daily caps bind), sometimes hours
                    // or days (new days, the weekly window, nights and weekends).
                    prop_oneof![8 => 0..20i64, 2 => 20..600i64, 1 => 600..3000i64],
                    any::<bool>(),
                    0.0..=1.0f64,
                    0..8u8,
                ),
                1..300,
            ),
        ) {
            let limits = limits();
            let mut now: DateTime<Utc> = "2026-11-23T07:30:00Z".parse().unwrap();
            let mut state = AccountState::default();
            let mut history = Vec::new();
            for (minutes, invitation, fraction, release) in steps {
                now += TimeDelta::minutes(minutes);
                // Now and then a send fails and its slot is given back.
                let command: AccountCommand = match (release, state.slots.last()) {
                    (0, Some(last)) => ReleaseSendSlot {
                        slot_id: last.slot_id,
                        reason: ReleaseReason::SendFailed,
                    }
                    .into(),
                    _ => ReserveSendSlot {
                        slot_id: Uuid::now_v7(),
                        lead_id: Uuid::now_v7(),
                        action: if invitation { SendAction::Invitation } else { SendAction::Message },
                        gap: limits.gap_from_fraction(fraction),
                        limits: limits.clone(),
                    }
                    .into(),
                };
                match state.decide(&command, &DecisionContext::new(now, Actor::agent("outreach"))) {
                    Ok(events) => {
                        for event in events {
                            state = state.evolve(&event);
                            history.push(event);
                        }
                    }
                    Err(DomainError::RateLimited { retry_at, .. }) => {
                        prop_assert!(retry_at > now, "retry at {retry_at}, not after {now}");
                    }
                    Err(DomainError::OutsideWorkingHours { next_opening }) => {
                        prop_assert!(next_opening > now && limits.working_hours.contains(next_opening));
                    }
                    Err(other) => prop_assert!(false, "unexpected refusal {other:?}"),
                }
            }
            check_history(&history, &limits)?;
            prop_assert_eq!(AccountState::fold(&history), state);
        }
    }
}
