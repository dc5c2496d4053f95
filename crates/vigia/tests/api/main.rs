//! End-to-end tests: the real application on a real socket, against SQLite and PostgreSQL.

mod helpers;

mod access;
mod accounts;
mod admin;
mod attachments;
mod cancellation;
mod catalog;
mod cli;
mod incidents;
mod jobs;
mod notify;
mod realtime;
mod reports;
mod revocation;
mod stats;
mod system;
