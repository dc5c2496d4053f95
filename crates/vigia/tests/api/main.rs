//! End-to-end tests: the real application on a real socket, against SQLite and PostgreSQL.

mod helpers;

mod access;
mod accounts;
mod admin;
mod attachments;
mod catalog;
mod cli;
mod incidents;
mod jobs;
mod notify;
mod realtime;
mod reports;
mod stats;
mod system;
