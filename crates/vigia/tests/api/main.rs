//! End-to-end tests: the real application on a real socket, against SQLite and PostgreSQL.

mod helpers;

mod access;
mod accounts;
mod admin;
mod attachments;
mod bodies;
mod cancellation;
mod catalog;
mod cli;
mod connections;
mod incident_reports;
mod incidents;
mod jobs;
mod mail_links;
mod memory;
mod notify;
mod privacy;
mod realtime;
mod reports;
mod revocation;
mod stats;
mod system;
mod ws_teardown;
