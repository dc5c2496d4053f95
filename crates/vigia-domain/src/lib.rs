//! Vigía's domain: the types and rules of the product.
//!
//! Architecture invariant: this crate depends on neither axum nor sqlx and performs no I/O.
//! Input from the outside world becomes a domain value through a `parse` function that
//! returns a [`validation::FieldError`] naming the offending field; a value that exists is valid.

pub mod audit;
pub mod auth;
pub mod backoff;
pub mod catalog;
pub mod clock;
pub mod competitions;
pub mod detections;
pub mod ids;
pub mod incidents;
pub mod links;
pub mod users;
pub mod validation;

pub use validation::{FieldError, Validation};

pub use clock::Timestamp;
