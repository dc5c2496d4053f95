//! One module per area; each exposes `router()`, merged in [`crate::app`].

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod catalog;
pub mod incidents;
pub mod jobs;
pub mod report_links;
pub mod reports;
pub mod stats;
pub mod system;
pub mod users;
pub mod webhooks;
