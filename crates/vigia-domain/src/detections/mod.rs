//! Devices, subjects and detections: what a sensing device reports about a monitored subject,
//! how a detection is checked on arrival, and the alert rules evaluated over them.
//!
//! Pure logic: the store keeps detections and alerts, `vigia-http` feeds the [`engine`].

pub mod engine;
pub mod events;
pub mod input;
pub mod labels;
pub mod rules;
pub mod silence;

pub use engine::{Candidate, RuleEngine, RuleWindow};
pub use events::{AlertEventKind, AlertScope};
pub use input::{Confidence, DetectionDraft, IngestPolicy, ValidDetection};
pub use labels::{Label, Vocabulary};
pub use rules::{AlertStatus, RuleSpec, Severity};
pub use silence::{Silence, SilenceTarget};
