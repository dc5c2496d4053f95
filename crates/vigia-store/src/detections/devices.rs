//! Registered devices, each with an API key of its own (scope `detections:write`).

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::{ApiKeyId, DeviceId, UserId, ZoneId};

use crate::audit::{AuditDraft, insert_audit};
use crate::page::{Cursor, Page};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, composed, on_reader, on_writer};

#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub id: DeviceId,
    pub code: String,
    pub name: String,
    pub zone_id: Option<ZoneId>,
    pub location: Option<String>,
    pub api_key_id: ApiKeyId,
    pub active: bool,
    pub firmware: Option<String>,
    pub last_seen_at: Option<Timestamp>,
    /// Detections refused (subject without consent).
    pub refused: i64,
    /// Messages that could not be read (MQTT payloads that are not a detection).
    pub invalid: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(FromRow)]
struct Row {
    id: i64,
    code: String,
    name: String,
    zone_id: Option<i64>,
    location: Option<String>,
    api_key_id: i64,
    active: bool,
    firmware: Option<String>,
    last_seen_at: Option<i64>,
    refused: i64,
    invalid: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Device {
    fn from(r: Row) -> Self {
        Self {
            id: DeviceId(r.id),
            code: r.code,
            name: r.name,
            zone_id: r.zone_id.map(ZoneId),
            location: r.location,
            api_key_id: ApiKeyId(r.api_key_id),
            active: r.active,
            firmware: r.firmware,
            last_seen_at: r.last_seen_at.map(Timestamp::from_millis),
            refused: r.refused,
            invalid: r.invalid,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
        }
    }
}

const COLUMNS: &str = "id, code, name, zone_id, location, api_key_id, active, firmware, \
                       last_seen_at, refused, invalid, created_at, updated_at";

/// A device's editable fields.
#[derive(Debug, Clone)]
pub struct DeviceFields {
    pub code: String,
    pub name: String,
    pub zone_id: Option<ZoneId>,
    pub location: Option<String>,
    pub active: bool,
}

/// The key a new device gets: prefix and hash of a secret shown once.
#[derive(Debug, Clone)]
pub struct DeviceKey {
    pub key_prefix: String,
    pub key_hash: String,
}

async fn zone_exists(db: &Db, zone: Option<ZoneId>) -> StoreResult<()> {
    let Some(zone) = zone else { return Ok(()) };
    let n: i64 = on_reader!(db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM zones WHERE id = $1"
    )
    .bind(zone.0)
    .fetch_one(pool)
    .await?);
    if n == 0 {
        return Err(StoreError::UnknownReference {
            field: "zone_id".into(),
            entity: "zone",
        });
    }
    Ok(())
}

const INSERT_KEY: &str = "INSERT INTO api_keys (name, key_prefix, key_hash, scopes, created_by, created_at) \
     VALUES ($1, $2, $3, 'detections:write', $4, $5) RETURNING id";

/// Registers a device and its API key in one transaction (audited).
pub async fn create(
    db: &Db,
    fields: &DeviceFields,
    key: &DeviceKey,
    creator: UserId,
    actor: &ChangeAuthor,
) -> StoreResult<Device> {
    zone_exists(db, fields.zone_id).await?;
    let now = Timestamp::now().millis();
    let sql = format!(
        "INSERT INTO devices (code, name, zone_id, location, api_key_id, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let key_id: i64 = sqlx::query_scalar(INSERT_KEY)
            .bind(format!("device {}", fields.code))
            .bind(&key.key_prefix)
            .bind(&key.key_hash)
            .bind(creator.0)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let row: Row = sqlx::query_as(composed(&sql))
            .bind(&fields.code)
            .bind(&fields.name)
            .bind(fields.zone_id.map(|z| z.0))
            .bind(&fields.location)
            .bind(key_id)
            .bind(fields.active)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "devices_code_key", "code"))?;
        let device = Device::from(row);
        insert_audit!(
            &mut *tx,
            AuditDraft::new(
                actor,
                "device.created",
                AuditEntity::Device,
                Some(device.id.0)
            )
            .after(&device)
        );
        tx.commit().await?;
        Ok(device)
    })
}

/// Gives a device a new key and revokes the old one at once (audited).
pub async fn rotate_key(
    db: &Db,
    id: DeviceId,
    key: &DeviceKey,
    creator: UserId,
    actor: &ChangeAuthor,
) -> StoreResult<Device> {
    let before = find(db, id).await?;
    let now = Timestamp::now().millis();
    let sql = format!(
        "UPDATE devices SET api_key_id = $2, updated_at = $3 WHERE id = $1 RETURNING {COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let key_id: i64 = sqlx::query_scalar(INSERT_KEY)
            .bind(format!("device {}", before.code))
            .bind(&key.key_prefix)
            .bind(&key.key_hash)
            .bind(creator.0)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(before.api_key_id.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let row: Row = sqlx::query_as(composed(&sql))
            .bind(id.0)
            .bind(key_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let device = Device::from(row);
        insert_audit!(
            &mut *tx,
            AuditDraft::new(actor, "device.key_rotated", AuditEntity::Device, Some(id.0))
                .before(&before)
                .after(&device)
        );
        tx.commit().await?;
        Ok(device)
    })
}

pub async fn find(db: &Db, id: DeviceId) -> StoreResult<Device> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE id = $1");
    let row: Option<Row> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id.0)
        .fetch_optional(pool)
        .await?);
    row.map(Device::from).ok_or(StoreError::NotFound)
}

/// The device an API key belongs to (`NotFound` for a key that is no device's).
pub async fn by_api_key(db: &Db, key: ApiKeyId) -> StoreResult<Device> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE api_key_id = $1");
    let row: Option<Row> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(key.0)
        .fetch_optional(pool)
        .await?);
    row.map(Device::from).ok_or(StoreError::NotFound)
}

/// The device whose key hashes to `key_hash`, if that key is neither revoked nor expired
/// (MQTT clients present the key itself).
pub async fn by_key_hash(db: &Db, key_hash: &str) -> StoreResult<Device> {
    let sql = format!(
        "SELECT {} FROM devices d JOIN api_keys k ON k.id = d.api_key_id \
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)",
        COLUMNS
            .split(", ")
            .map(|c| format!("d.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let row: Option<Row> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(key_hash)
        .bind(Timestamp::now().millis())
        .fetch_optional(pool)
        .await?);
    row.map(Device::from).ok_or(StoreError::NotFound)
}

pub async fn list(db: &Db, after: Option<Cursor>, limit: usize) -> StoreResult<Page<Device>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM devices WHERE id < $1 ORDER BY id DESC LIMIT {}",
        limit + 1
    );
    let rows: Vec<Row> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(after.map_or(i64::MAX, |c| c.0))
        .fetch_all(pool)
        .await?);
    Ok(Page::from_rows(rows, limit, |r| r.id).map(Device::from))
}

/// Changes a device's fields (audited).
pub async fn update(
    db: &Db,
    id: DeviceId,
    fields: &DeviceFields,
    actor: &ChangeAuthor,
) -> StoreResult<Device> {
    zone_exists(db, fields.zone_id).await?;
    let before = find(db, id).await?;
    let sql = format!(
        "UPDATE devices SET code = $2, name = $3, zone_id = $4, location = $5, active = $6, updated_at = $7 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Row = sqlx::query_as(composed(&sql))
            .bind(id.0)
            .bind(&fields.code)
            .bind(&fields.name)
            .bind(fields.zone_id.map(|z| z.0))
            .bind(&fields.location)
            .bind(fields.active)
            .bind(Timestamp::now().millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "devices_code_key", "code"))?;
        let device = Device::from(row);
        insert_audit!(
            &mut *tx,
            AuditDraft::new(actor, "device.updated", AuditEntity::Device, Some(id.0))
                .before(&before)
                .after(&device)
        );
        tx.commit().await?;
        Ok(device)
    })
}

/// A heartbeat: last seen now, and the firmware/version text if given.
pub async fn heartbeat(db: &Db, id: DeviceId, firmware: Option<&str>) -> StoreResult<Device> {
    let sql = format!(
        "UPDATE devices SET last_seen_at = $2, firmware = COALESCE($3, firmware) WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row: Option<Row> = on_writer!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id.0)
        .bind(Timestamp::now().millis())
        .bind(firmware)
        .fetch_optional(pool)
        .await?);
    row.map(Device::from).ok_or(StoreError::NotFound)
}

/// Counts one unreadable message from a device.
pub async fn count_invalid(db: &Db, id: DeviceId) -> StoreResult<()> {
    on_writer!(db, |pool| sqlx::query(
        "UPDATE devices SET invalid = invalid + 1 WHERE id = $1"
    )
    .bind(id.0)
    .execute(pool)
    .await
    .map(|_| ())?);
    Ok(())
}

/// Counts one unreadable message sent under a device's code (no-op for an unknown code).
pub async fn count_invalid_by_code(db: &Db, code: &str) -> StoreResult<()> {
    on_writer!(db, |pool| sqlx::query(
        "UPDATE devices SET invalid = invalid + 1 WHERE code = $1"
    )
    .bind(code)
    .execute(pool)
    .await
    .map(|_| ())?);
    Ok(())
}
