//! Users: accounts, profile, settings.

use chrono::{DateTime, NaiveDate, Utc};
use donkies_domain::TransferAmount;

use crate::column::Col;
use crate::{Conn, Db, StoreError, Tx, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub identifier: String,
    pub encrypted_id: String,
    pub is_confirmed: bool,
    pub confirmation_token_hash: Option<String>,
    pub guid: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub ssn_encrypted: Option<String>,
    pub ssn_last4: Option<String>,
    pub phone: Option<String>,
    pub is_profile_completed: bool,
    #[sqlx(try_from = "Col<TransferAmount>")]
    pub minimum_transfer_amount: TransferAmount,
    pub is_even_roundup: bool,
    pub roundups_paused: bool,
    pub roundup_multiplier: i64,
    /// Whole dollars; `None`: no cap.
    pub daily_cap: Option<i64>,
    pub monthly_cap: Option<i64>,
    /// Whole dollars a collection must leave available in the round-up source account.
    pub overdraft_floor: i64,
    pub is_closed_account: bool,
    pub closed_at: Option<DateTime<Utc>>,
    pub profile_image_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str = "id, email, password_hash, first_name, last_name, identifier, encrypted_id, \
    is_confirmed, confirmation_token_hash, guid, address1, address2, city, state, postal_code, \
    date_of_birth, ssn_encrypted, ssn_last4, phone, is_profile_completed, minimum_transfer_amount, \
    is_even_roundup, roundups_paused, roundup_multiplier, daily_cap, monthly_cap, overdraft_floor, is_closed_account, closed_at, profile_image_url, created_at, updated_at";

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub id: i64,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub identifier: &'a str,
    pub encrypted_id: &'a str,
    pub confirmation_token_hash: &'a str,
    pub now: DateTime<Utc>,
}

/// Profile fields written by `PUT /v1/user`; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub ssn_encrypted: Option<String>,
    pub ssn_last4: Option<String>,
}

/// Insert a user; a taken email comes back as [`StoreError::Conflict`].
pub async fn insert(tx: &mut Tx, user: &NewUser<'_>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO users (id, email, password_hash, first_name, last_name, identifier, \
         encrypted_id, confirmation_token_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(user.id)
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.first_name)
    .bind(user.last_name)
    .bind(user.identifier)
    .bind(user.encrypted_id)
    .bind(user.confirmation_token_hash)
    .bind(user.now)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

async fn find_by(db: &Db, column: &str, value: &str) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE {column} = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, User>(&sql).bind(value).fetch_optional(pool).await)?)
}

pub async fn find_by_id(db: impl Into<Conn<'_>>, id: i64) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    Ok(crate::on_conn!(db.into(), pool => sqlx::query_as::<_, User>(&sql).bind(id).fetch_optional(pool).await)?)
}

pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<User>, StoreError> {
    find_by(db, "email", email).await
}

pub async fn find_by_encrypted_id(db: &Db, encrypted_id: &str) -> Result<Option<User>, StoreError> {
    find_by(db, "encrypted_id", encrypted_id).await
}

/// The user holding an unexpired session token with this hash; `Err(Expired)`-like cases are
/// told apart by the caller through [`crate::tokens::lookup`].
pub async fn find_by_token_hash(db: &Db, token_hash: &str) -> Result<Option<(User, DateTime<Utc>)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        token_expires_at: DateTime<Utc>,
    }
    // Every authenticated request that misses the session cache runs this: build its text once.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {cols}, t.expires_at AS token_expires_at FROM auth_tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
            cols = COLUMNS.split(", ").map(|c| format!("u.{}", c.trim())).collect::<Vec<_>>().join(", ")
        )
    });
    let row = on_db!(db, pool => sqlx::query_as::<_, Row>(SQL.as_str()).bind(token_hash).fetch_optional(pool).await)?;
    Ok(row.map(|r| (r.user, r.token_expires_at)))
}

/// Mark the user confirmed if `token_hash` matches; returns false when it does not.
pub async fn confirm(tx: &mut Tx, user_id: i64, token_hash: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let done = on_tx!(tx, conn => sqlx::query(
        "UPDATE users SET is_confirmed = TRUE, confirmation_token_hash = NULL, updated_at = $3 \
         WHERE id = $1 AND confirmation_token_hash = $2 AND is_confirmed = FALSE",
    )
    .bind(user_id)
    .bind(token_hash)
    .bind(now)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))?
        == 1;
    Ok(done)
}

/// Replace the confirmation token (resend of the sign-up link).
pub async fn set_confirmation_token(
    tx: &mut Tx,
    user_id: i64,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "UPDATE users SET confirmation_token_hash = $2, updated_at = $3 WHERE id = $1",
    )
    .bind(user_id)
    .bind(token_hash)
    .bind(now)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Replace the password hash only if it is still `old_hash`; false when it changed meanwhile.
pub async fn replace_password_hash(
    tx: &mut Tx,
    user_id: i64,
    old_hash: &str,
    new_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let replaced = on_tx!(tx, conn => sqlx::query(
        "UPDATE users SET password_hash = $3, updated_at = $4 WHERE id = $1 AND password_hash = $2",
    )
    .bind(user_id)
    .bind(old_hash)
    .bind(new_hash)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(replaced == 1)
}

pub async fn set_password_hash(
    tx: &mut Tx,
    user_id: i64,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Change the email; a taken address comes back as [`StoreError::Conflict`].
pub async fn set_email(tx: &mut Tx, user_id: i64, email: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query("UPDATE users SET email = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(email)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Apply a profile update unless the profile is already complete; marks it complete when every
/// required field is present afterwards. Returns `Ok(None)` when the profile was already complete.
pub async fn update_profile(
    tx: &mut Tx,
    user_id: i64,
    update: &ProfileUpdate,
    now: DateTime<Utc>,
) -> Result<Option<User>, StoreError> {
    let changed = on_tx!(tx, conn => sqlx::query(
        "UPDATE users SET \
           first_name = COALESCE($2, first_name), last_name = COALESCE($3, last_name), \
           phone = COALESCE($4, phone), address1 = COALESCE($5, address1), \
           address2 = COALESCE($6, address2), city = COALESCE($7, city), \
           state = COALESCE($8, state), postal_code = COALESCE($9, postal_code), \
           date_of_birth = COALESCE($10, date_of_birth), \
           ssn_encrypted = COALESCE($11, ssn_encrypted), ssn_last4 = COALESCE($12, ssn_last4), \
           updated_at = $13 \
         WHERE id = $1 AND is_profile_completed = FALSE",
    )
    .bind(user_id)
    .bind(&update.first_name)
    .bind(&update.last_name)
    .bind(&update.phone)
    .bind(&update.address1)
    .bind(&update.address2)
    .bind(&update.city)
    .bind(&update.state)
    .bind(&update.postal_code)
    .bind(update.date_of_birth)
    .bind(&update.ssn_encrypted)
    .bind(&update.ssn_last4)
    .bind(now)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))?;
    if changed == 0 {
        return Ok(None);
    }
    on_tx!(tx, conn => sqlx::query(
        "UPDATE users SET is_profile_completed = TRUE WHERE id = $1 \
         AND first_name <> '' AND last_name <> '' AND phone IS NOT NULL \
         AND address1 IS NOT NULL AND city IS NOT NULL AND state IS NOT NULL \
         AND postal_code IS NOT NULL AND date_of_birth IS NOT NULL AND ssn_encrypted IS NOT NULL",
    )
    .bind(user_id)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))?;
    find_by_id(tx, user_id).await
}

/// Round-up settings written by `PATCH /v1/user_settings`; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsUpdate {
    pub minimum_transfer_amount: Option<TransferAmount>,
    pub is_even_roundup: Option<bool>,
    pub roundups_paused: Option<bool>,
    pub roundup_multiplier: Option<i64>,
    /// `Some(None)` removes the cap.
    pub daily_cap: Option<Option<i64>>,
    pub monthly_cap: Option<Option<i64>>,
    pub overdraft_floor: Option<i64>,
}

pub async fn update_settings(
    tx: &mut Tx,
    user_id: i64,
    update: &SettingsUpdate,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "UPDATE users SET minimum_transfer_amount = COALESCE($2, minimum_transfer_amount), \
         is_even_roundup = COALESCE($3, is_even_roundup), roundups_paused = COALESCE($4, roundups_paused), \
         roundup_multiplier = COALESCE($5, roundup_multiplier), \
         daily_cap = CASE WHEN $6 THEN $7 ELSE daily_cap END, \
         monthly_cap = CASE WHEN $8 THEN $9 ELSE monthly_cap END, updated_at = $10, \
         overdraft_floor = COALESCE($11, overdraft_floor) WHERE id = $1",
    )
    .bind(user_id)
    .bind(update.minimum_transfer_amount.map(TransferAmount::get))
    .bind(update.is_even_roundup)
    .bind(update.roundups_paused)
    .bind(update.roundup_multiplier)
    .bind(update.daily_cap.is_some())
    .bind(update.daily_cap.flatten())
    .bind(update.monthly_cap.is_some())
    .bind(update.monthly_cap.flatten())
    .bind(now)
    .bind(update.overdraft_floor)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn close_account(tx: &mut Tx, user_id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "UPDATE users SET is_closed_account = TRUE, closed_at = COALESCE(closed_at, $2), \
         updated_at = $2 WHERE id = $1",
    )
    .bind(user_id)
    .bind(now)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Record the aggregator's id for the user.
pub async fn set_guid(tx: &mut Tx, user_id: i64, guid: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query("UPDATE users SET guid = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(guid)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Users not yet known to the aggregator.
pub async fn ids_without_guid(db: &Db) -> Result<Vec<i64>, StoreError> {
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE guid IS NULL ORDER BY created_at, id")
        .fetch_all(pool)
        .await)?,
    )
}

/// Mark a user confirmed without a token (accounts whose email a sign-in provider verified).
pub async fn mark_confirmed(tx: &mut Tx, user_id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "UPDATE users SET is_confirmed = TRUE, confirmation_token_hash = NULL, updated_at = $2 WHERE id = $1",
    )
    .bind(user_id)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
