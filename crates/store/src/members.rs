//! Members: a user's login at one institution, its aggregation status and challenges.

use chrono::{DateTime, Utc};
use donkies_domain::MemberStatus;

use crate::column::Col;
use crate::institutions::Institution;
use crate::{Db, StoreError, Tx, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub id: i64,
    pub user_id: i64,
    pub institution_id: i64,
    pub identifier: String,
    pub guid: Option<String>,
    pub name: String,
    #[sqlx(try_from = "Col<MemberStatus>")]
    pub status: MemberStatus,
    pub aggregated_at: Option<DateTime<Utc>>,
    pub successfully_aggregated_at: Option<DateTime<Utc>>,
    pub metadata: Option<String>,
    pub poll_generation: i64,
    pub polls: i64,
    pub halted_retries: i64,
    pub gave_up: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub institution: InstitutionCols,
}

/// The member's institution, read in the same query.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstitutionCols {
    pub inst_code: String,
    pub inst_name: String,
    pub inst_url: Option<String>,
}

impl Member {
    pub fn institution(&self) -> Institution {
        Institution {
            id: self.institution_id,
            code: self.institution.inst_code.clone(),
            name: self.institution.inst_name.clone(),
            url: self.institution.inst_url.clone(),
        }
    }
}

pub(crate) const SELECT: &str = "SELECT m.id, m.user_id, m.institution_id, m.identifier, m.guid, m.name, m.status, \
    m.aggregated_at, m.successfully_aggregated_at, m.metadata, m.poll_generation, m.polls, m.halted_retries, \
    m.gave_up, m.created_at, m.updated_at, i.code AS inst_code, i.name AS inst_name, i.url AS inst_url \
    FROM members m JOIN institutions i ON i.id = m.institution_id";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Challenge {
    pub guid: String,
    pub field_name: Option<String>,
    pub label: String,
    pub kind: String,
    /// JSON array of `{"label", "value"}`.
    pub options: String,
    /// The picture an image challenge shows (a data URI or base64 text).
    pub image_data: Option<String>,
}

pub struct NewMember<'a> {
    pub id: i64,
    pub user_id: i64,
    pub institution_id: i64,
    pub identifier: &'a str,
    pub guid: &'a str,
    pub name: &'a str,
    pub status: MemberStatus,
    pub now: DateTime<Utc>,
}

/// Insert a member; a live member for the same user and institution is a Conflict.
pub async fn insert(tx: &mut Tx, m: &NewMember<'_>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO members (id, user_id, institution_id, identifier, guid, name, status, poll_generation, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)",
    )
    .bind(m.id)
    .bind(m.user_id)
    .bind(m.institution_id)
    .bind(m.identifier)
    .bind(m.guid)
    .bind(m.name)
    .bind(m.status.as_str())
    .bind(m.now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Member>, StoreError> {
    let sql = format!("{SELECT} WHERE m.id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Member>(&sql).bind(id).fetch_optional(pool).await)?)
}

/// The user's live member with this identifier.
pub async fn find_by_identifier(db: &Db, user_id: i64, identifier: &str) -> Result<Option<Member>, StoreError> {
    let sql = format!("{SELECT} WHERE m.user_id = $1 AND m.identifier = $2 AND m.is_deleted = FALSE");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Member>(&sql).bind(user_id).bind(identifier).fetch_optional(pool).await)?)
}

pub async fn find_for_institution(db: &Db, user_id: i64, institution_id: i64) -> Result<Option<Member>, StoreError> {
    let sql = format!("{SELECT} WHERE m.user_id = $1 AND m.institution_id = $2 AND m.is_deleted = FALSE");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, Member>(&sql).bind(user_id).bind(institution_id).fetch_optional(pool).await)?,
    )
}

pub async fn list_for_user(db: &Db, user_id: i64) -> Result<Vec<Member>, StoreError> {
    let sql = format!("{SELECT} WHERE m.user_id = $1 AND m.is_deleted = FALSE ORDER BY m.created_at, m.id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Member>(&sql).bind(user_id).fetch_all(pool).await)?)
}

/// Live members whose last aggregation completed (for the periodic re-sync).
pub async fn list_completed(db: &Db) -> Result<Vec<Member>, StoreError> {
    let sql = format!("{SELECT} WHERE m.status = 'COMPLETED' AND m.is_deleted = FALSE ORDER BY m.id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Member>(&sql).fetch_all(pool).await)?)
}

/// Start a new aggregation round: a new poll generation (older polling jobs retire), counters
/// reset, challenges cleared. Returns the new generation.
pub async fn restart(
    tx: &mut Tx,
    member_id: i64,
    status: &MemberStatus,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let generation = on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "UPDATE members SET poll_generation = poll_generation + 1, polls = 0, halted_retries = 0, gave_up = FALSE, \
         status = $2, updated_at = $3 WHERE id = $1 RETURNING poll_generation",
    )
    .bind(member_id)
    .bind(status.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await)?
    .ok_or(StoreError::NotFound)?;
    clear_challenges(tx, member_id).await?;
    Ok(generation)
}

pub struct StatusUpdate {
    pub status: MemberStatus,
    pub aggregated_at: Option<DateTime<Utc>>,
    pub successfully_aggregated_at: Option<DateTime<Utc>>,
    pub polls: i64,
    pub halted_retries: i64,
    pub gave_up: bool,
}

/// Save what a poll learned, only if the member is still in poll generation `generation`.
pub async fn save_status(
    tx: &mut Tx,
    member_id: i64,
    generation: i64,
    u: &StatusUpdate,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE members SET status = $3, aggregated_at = COALESCE($4, aggregated_at), \
         successfully_aggregated_at = COALESCE($5, successfully_aggregated_at), polls = $6, halted_retries = $7, \
         gave_up = $8, updated_at = $9 WHERE id = $1 AND poll_generation = $2 AND is_deleted = FALSE",
    )
    .bind(member_id)
    .bind(generation)
    .bind(u.status.as_str())
    .bind(u.aggregated_at)
    .bind(u.successfully_aggregated_at)
    .bind(u.polls)
    .bind(u.halted_retries)
    .bind(u.gave_up)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn clear_challenges(tx: &mut Tx, member_id: i64) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query("DELETE FROM challenges WHERE member_id = $1")
        .bind(member_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn replace_challenges(tx: &mut Tx, member_id: i64, challenges: &[Challenge]) -> Result<(), StoreError> {
    clear_challenges(tx, member_id).await?;
    for (position, c) in challenges.iter().enumerate() {
        on_tx!(tx, conn => sqlx::query(
            "INSERT INTO challenges (member_id, guid, position, field_name, label, kind, options, image_data) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(member_id)
        .bind(&c.guid)
        .bind(position as i64)
        .bind(&c.field_name)
        .bind(&c.label)
        .bind(&c.kind)
        .bind(&c.options)
        .bind(&c.image_data)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

pub async fn challenges(db: &Db, member_id: i64) -> Result<Vec<Challenge>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, Challenge>(
        "SELECT guid, field_name, label, kind, options, image_data FROM challenges WHERE member_id = $1 ORDER BY position",
    )
    .bind(member_id)
    .fetch_all(pool)
    .await)?)
}

/// Hide a member and everything read through it.
pub async fn mark_deleted(tx: &mut Tx, member_id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
    let user_id = on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "UPDATE members SET is_deleted = TRUE, poll_generation = poll_generation + 1, updated_at = $2 WHERE id = $1 \
         RETURNING user_id",
    )
        .bind(member_id)
        .bind(now)
        .fetch_optional(conn)
        .await)?;
    on_tx!(tx, conn => sqlx::query("UPDATE accounts SET is_deleted = TRUE, share_when_unlinked = transfer_share, transfer_share = 0, \
         updated_at = $2 WHERE member_id = $1")
        .bind(member_id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    if let Some(user_id) = user_id {
        crate::transactions::list_changed(tx, user_id).await?;
    }
    Ok(())
}

/// Status of a member, for cheap change detection.
pub async fn status_of(db: &Db, member_id: i64) -> Result<Option<(MemberStatus, bool)>, StoreError> {
    let row = on_db!(db, pool => sqlx::query_as::<_, (Col<MemberStatus>, bool)>("SELECT status, gave_up FROM members WHERE id = $1")
        .bind(member_id)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(|(status, gave_up)| (status.0, gave_up)))
}

/// Take the member's sync lease until `until` unless another sync holds it: one sync of a
/// member at a time, across processes. False when another holds it.
pub async fn claim_sync(
    tx: &mut Tx,
    member_id: i64,
    token: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE members SET sync_token = $2, sync_until = $3 \
         WHERE id = $1 AND (sync_token IS NULL OR sync_until IS NULL OR sync_until <= $4)",
    )
    .bind(member_id)
    .bind(token)
    .bind(until)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Whether `token` still holds the member's sync lease (read under the caller's lock).
pub async fn holds_sync(tx: &mut Tx, member_id: i64, token: &str) -> Result<bool, StoreError> {
    let sql = match tx {
        Tx::Postgres(_) => "SELECT sync_token FROM members WHERE id = $1 FOR UPDATE",
        Tx::Sqlite(..) => "SELECT sync_token FROM members WHERE id = $1",
    };
    let held =
        on_tx!(tx, conn => sqlx::query_scalar::<_, Option<String>>(sql).bind(member_id).fetch_optional(conn).await)?;
    Ok(held.flatten().as_deref() == Some(token))
}

/// Give the sync lease back.
pub async fn release_sync(tx: &mut Tx, member_id: i64, token: &str) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query("UPDATE members SET sync_token = NULL, sync_until = NULL WHERE id = $1 AND sync_token = $2")
        .bind(member_id)
        .bind(token)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
