use thiserror::Error;

pub type StoreResult<T, E = StoreError> = Result<T, E>;

/// What can go wrong in the store that a caller may want to tell apart.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The entity does not exist (or the caller's scope does not include it).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; `field` names the input that collided.
    #[error("{field} is already taken")]
    Duplicate { field: &'static str },
    /// An input refers to an entity that does not exist.
    #[error("{field} refers to a {entity} that does not exist")]
    UnknownReference { field: String, entity: &'static str },
    /// The entity is still referenced by others and cannot be deleted.
    #[error("still in use by {by}")]
    InUse { by: &'static str },
    /// The entity changed since the caller read it (optimistic concurrency): re-read and retry.
    #[error("the entity was changed by someone else; reload it and try again")]
    Stale,
    /// Anything else: a bug or an unreachable database. Shown to clients as an opaque 500.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The same, from the SQLite group commit's own connection.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl StoreError {
    /// Maps a unique violation on `constraint` to [`StoreError::Duplicate`] for `field`.
    pub(crate) fn unique(error: sqlx::Error, constraint: &str, field: &'static str) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db.is_unique_violation()
            && (db.constraint() == Some(constraint)
                || db.message().contains("UNIQUE constraint failed"))
        {
            return StoreError::Duplicate { field };
        }
        StoreError::Database(error)
    }

    /// Turns "not found" into "`field` refers to a missing `entity`": for lookups of what an
    /// input refers to. Use as `.map_err(StoreError::missing_reference("zone_id", "zone"))`.
    pub(crate) fn missing_reference(
        field: &'static str,
        entity: &'static str,
    ) -> impl FnOnce(StoreError) -> StoreError {
        move |error| match error {
            StoreError::NotFound => StoreError::UnknownReference {
                field: field.into(),
                entity,
            },
            other => other,
        }
    }

    /// True for a foreign-key violation (used to report "still in use" on delete).
    pub(crate) fn is_foreign_key(error: &sqlx::Error) -> bool {
        // SQLite reports a RESTRICT violation with the generic constraint code, so match its
        // message as well.
        matches!(error, sqlx::Error::Database(db)
            if db.is_foreign_key_violation() || db.message().contains("FOREIGN KEY constraint failed"))
    }
}
