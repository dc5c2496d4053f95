//! Incidents: the lifecycle and who may move it, the human-facing code, service levels and
//! their pausable clock, the event log, automatic assignment, attachment type checks and the
//! parsing of what reporters send.
//!
//! Code map: [`status`] (lifecycle, [`check_transition`]), [`relation`] (a caller's relation to
//! one incident), [`permissions`] (who may edit, comment, assign, route, vote: [`Relation`]'s
//! `may_*` rules every entry point asks), [`code`] (`INC-000123`), [`sla`] (policies, [`SlaClock`]), [`events`] (event
//! kinds and payloads), [`assignment`] ([`pick_assignee`]), [`sniff`](mod@sniff) (magic bytes,
//! [`classify`]), [`input`] ([`NewIncident`], [`NewComment`]).

pub mod assignment;
pub mod audience;
pub mod code;
pub mod events;
pub mod input;
pub mod permissions;
pub mod relation;
pub mod scope;
pub mod sla;
pub mod sniff;
pub mod status;

pub use assignment::{AssignmentStrategy, Candidate, pick_assignee};
pub use audience::{Audience, IncidentFacts, audience};
pub use code::IncidentCode;
pub use events::{EventData, IncidentEvent, IncidentEventKind, needs_immediate_notification};
pub use input::{
    CommentBody, IncidentDescription, IncidentTitle, IncidentVisibility, Location, NewComment,
    NewIncident, RawNewIncident, Source, Visibility,
};
pub use permissions::{Denied, EditReach, STAFF_ONLY, may_choose_department};
pub use relation::Relation;
pub use scope::ReadScope;
pub use sla::{SlaBreach, SlaClock, SlaClockRecord, SlaPolicy, SlaSnapshot, raise_urgency};
pub use sniff::{AllowedMedia, Executable, MediaKind, SniffError, SniffedType, classify, sniff};
pub use status::{SlaEffect, Status, TransitionError, check_transition, is_reopen, sla_effect};
