//! Registered devices, each with an API key of its own (scope `detections:write`).

use serde::Serialize;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::{ApiKeyId, DeviceId, UserId, ZoneId};

use super::audited::{self, Taken};
use crate::audit::AuditDraft;
use crate::direct::direct_row;
use crate::page::{Cursor, Page};
use crate::{
    ChangeAuthor, Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write,
};

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

direct_row! {
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

pub(super) async fn zone_exists(db: &Db, zone: Option<ZoneId>) -> StoreResult<()> {
    const SQL: &str = "SELECT COUNT(*) AS n FROM zones WHERE id = $1";
    let Some(zone) = zone else { return Ok(()) };
    let n: i64 = direct_read!(db,
        sqlite: |conn| Ok(direct::query_optional(conn, SQL, &[&zone.0], |r| r.get("n"))?.unwrap_or(0)),
        postgres: |pool| Ok(sqlx::query_scalar(SQL).bind(zone.0).fetch_one(pool).await?),
    )?;
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
const REVOKE_KEY: &str = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

/// Two devices with the same code.
const CODE_TAKEN: Taken = Taken {
    constraint: "devices_code_key",
    field: "code",
};

fn find_sql() -> String {
    format!("SELECT {COLUMNS} FROM devices WHERE id = $1")
}

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
    let (fields, key, actor) = (fields.clone(), key.clone(), actor.clone());
    let key_name = format!("device {}", fields.code);
    let zone = fields.zone_id.map(|z| z.0);
    let audit = move |device: &Device| {
        AuditDraft::new(
            &actor,
            "device.created",
            AuditEntity::Device,
            Some(device.id.0),
        )
        .after(device)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let key_id: Option<i64> = direct::query_optional(
                conn,
                INSERT_KEY,
                &[&key_name, &key.key_prefix, &key.key_hash, &creator.0, &now],
                |r| r.get("id"),
            )?;
            let key_id = key_id.ok_or(StoreError::NotFound)?;
            audited::returning_direct(
                conn,
                &sql,
                &[&fields.code, &fields.name, &zone, &fields.location, &key_id, &fields.active, &now],
                Row::from_direct,
                Some(CODE_TAKEN),
                audit,
            )
        },
        postgres: |tx| {
            let key_id: i64 = sqlx::query_scalar(INSERT_KEY)
                .bind(&key_name)
                .bind(&key.key_prefix)
                .bind(&key.key_hash)
                .bind(creator.0)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            let query = sqlx::query_as::<_, Row>(composed(&sql))
                .bind(&fields.code)
                .bind(&fields.name)
                .bind(zone)
                .bind(&fields.location)
                .bind(key_id)
                .bind(fields.active)
                .bind(now);
            audited::returning_postgres(&mut *tx, query, Some(CODE_TAKEN), audit).await
        },
    )
}

/// Gives a device a new key and revokes the old one at once (audited).
pub async fn rotate_key(
    db: &Db,
    id: DeviceId,
    key: &DeviceKey,
    creator: UserId,
    actor: &ChangeAuthor,
) -> StoreResult<Device> {
    let now = Timestamp::now().millis();
    let find = find_sql();
    let sql = format!(
        "UPDATE devices SET api_key_id = $2, updated_at = $3 WHERE id = $1 RETURNING {COLUMNS}"
    );
    let (key, actor) = (key.clone(), actor.clone());
    let audit = move |before: &Device, device: &Device| {
        AuditDraft::new(
            &actor,
            "device.key_rotated",
            AuditEntity::Device,
            Some(id.0),
        )
        .before(before)
        .after(device)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before: Device = audited::before_direct(conn, &find, id.0, Row::from_direct)?;
            let key_name = format!("device {}", before.code);
            let key_id: Option<i64> = direct::query_optional(
                conn,
                INSERT_KEY,
                &[&key_name, &key.key_prefix, &key.key_hash, &creator.0, &now],
                |r| r.get("id"),
            )?;
            let key_id = key_id.ok_or(StoreError::NotFound)?;
            direct::execute(conn, REVOKE_KEY, &[&before.api_key_id.0, &now])?;
            audited::returning_direct(
                conn,
                &sql,
                &[&id.0, &key_id, &now],
                Row::from_direct,
                None,
                |device| audit(&before, device),
            )
        },
        postgres: |tx| {
            let before = audited::before_postgres::<Row, Device>(&mut *tx, &find, id.0).await?;
            let key_id: i64 = sqlx::query_scalar(INSERT_KEY)
                .bind(format!("device {}", before.code))
                .bind(&key.key_prefix)
                .bind(&key.key_hash)
                .bind(creator.0)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(REVOKE_KEY)
                .bind(before.api_key_id.0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let query = sqlx::query_as::<_, Row>(composed(&sql))
                .bind(id.0)
                .bind(key_id)
                .bind(now);
            audited::returning_postgres(&mut *tx, query, None, |device| audit(&before, device)).await
        },
    )
}

/// One device by `sql` (selecting [`COLUMNS`]) bound to `value`.
async fn find_by(db: &Db, sql: String, value: i64) -> StoreResult<Device> {
    let row: Option<Row> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&value], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(value).fetch_optional(pool).await?),
    )?;
    row.map(Device::from).ok_or(StoreError::NotFound)
}

pub async fn find(db: &Db, id: DeviceId) -> StoreResult<Device> {
    find_by(db, find_sql(), id.0).await
}

/// The device an API key belongs to (`NotFound` for a key that is no device's).
pub async fn by_api_key(db: &Db, key: ApiKeyId) -> StoreResult<Device> {
    find_by(
        db,
        format!("SELECT {COLUMNS} FROM devices WHERE api_key_id = $1"),
        key.0,
    )
    .await
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
    let key_hash = key_hash.to_owned();
    let now = Timestamp::now().millis();
    let row: Option<Row> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&key_hash, &now], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql))
            .bind(&key_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?),
    )?;
    row.map(Device::from).ok_or(StoreError::NotFound)
}

pub async fn list(db: &Db, after: Option<Cursor>, limit: usize) -> StoreResult<Page<Device>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM devices WHERE id < $1 ORDER BY id DESC LIMIT {}",
        limit + 1
    );
    let after = after.map_or(i64::MAX, |c| c.0);
    let rows: Vec<Row> = direct_read!(db,
        sqlite: |conn| direct::query_sized(conn, &sql, &[&after], limit + 1, Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(after).fetch_all(pool).await?),
    )?;
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
    let find = find_sql();
    let sql = format!(
        "UPDATE devices SET code = $2, name = $3, zone_id = $4, location = $5, active = $6, updated_at = $7 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let (fields, actor) = (fields.clone(), actor.clone());
    let zone = fields.zone_id.map(|z| z.0);
    let audit = move |before: &Device, device: &Device| {
        AuditDraft::new(&actor, "device.updated", AuditEntity::Device, Some(id.0))
            .before(before)
            .after(device)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before: Device = audited::before_direct(conn, &find, id.0, Row::from_direct)?;
            audited::returning_direct(
                conn,
                &sql,
                &[&id.0, &fields.code, &fields.name, &zone, &fields.location, &fields.active, &now],
                Row::from_direct,
                Some(CODE_TAKEN),
                |device| audit(&before, device),
            )
        },
        postgres: |tx| {
            let before = audited::before_postgres::<Row, Device>(&mut *tx, &find, id.0).await?;
            let query = sqlx::query_as::<_, Row>(composed(&sql))
                .bind(id.0)
                .bind(&fields.code)
                .bind(&fields.name)
                .bind(zone)
                .bind(&fields.location)
                .bind(fields.active)
                .bind(now);
            audited::returning_postgres(&mut *tx, query, Some(CODE_TAKEN), |device| {
                audit(&before, device)
            })
            .await
        },
    )
}

/// A heartbeat: last seen now, and the firmware/version text if given.
pub async fn heartbeat(db: &Db, id: DeviceId, firmware: Option<&str>) -> StoreResult<Device> {
    let sql = format!(
        "UPDATE devices SET last_seen_at = $2, firmware = COALESCE($3, firmware) WHERE id = $1 RETURNING {COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let firmware = firmware.map(str::to_owned);
    let row: Option<Row> = grouped_write!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id.0, &now, &firmware], Row::from_direct),
        postgres: |tx| Ok(sqlx::query_as(composed(&sql))
            .bind(id.0)
            .bind(now)
            .bind(&firmware)
            .fetch_optional(&mut *tx)
            .await?),
    )?;
    row.map(Device::from).ok_or(StoreError::NotFound)
}

const COUNT_INVALID: &str = "UPDATE devices SET invalid = invalid + 1 WHERE id = $1";
const COUNT_INVALID_BY_CODE: &str = "UPDATE devices SET invalid = invalid + 1 WHERE code = $1";

/// Counts one unreadable message from a device.
pub async fn count_invalid(db: &Db, id: DeviceId) -> StoreResult<()> {
    grouped_write!(db,
        sqlite: |conn| direct::execute(conn, COUNT_INVALID, &[&id.0]).map(|_| ()),
        postgres: |tx| {
            sqlx::query(COUNT_INVALID).bind(id.0).execute(&mut *tx).await?;
            Ok(())
        },
    )
}

/// Counts one unreadable message sent under a device's code (no-op for an unknown code).
pub async fn count_invalid_by_code(db: &Db, code: &str) -> StoreResult<()> {
    let code = code.to_owned();
    grouped_write!(db,
        sqlite: |conn| direct::execute(conn, COUNT_INVALID_BY_CODE, &[&code]).map(|_| ()),
        postgres: |tx| {
            sqlx::query(COUNT_INVALID_BY_CODE).bind(&code).execute(&mut *tx).await?;
            Ok(())
        },
    )
}
