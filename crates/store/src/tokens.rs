//! Session tokens and single-use action tokens (password reset, email change). Only hashes of
//! tokens are stored.

use chrono::{DateTime, Utc};

use crate::{Db, StoreError, Tx, on_db, on_tx};

pub async fn insert_session(
    tx: &mut Tx,
    token_hash: &str,
    user_id: i64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    // Expired tokens of this user are of no further use.
    on_tx!(tx, conn => sqlx::query("DELETE FROM auth_tokens WHERE user_id = $1 AND expires_at <= $2")
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO auth_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Revoke every session token of the user; returns how many were revoked.
pub async fn delete_sessions(tx: &mut Tx, user_id: i64) -> Result<u64, StoreError> {
    Ok(on_tx!(tx, conn => sqlx::query("DELETE FROM auth_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?)
}

pub async fn count_sessions(db: &Db, user_id: i64) -> Result<i64, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM auth_tokens WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await)?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    EmailChange,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "password_reset",
            Purpose::EmailChange => "email_change",
        }
    }
}

pub struct NewActionToken<'a> {
    pub token_hash: &'a str,
    pub user_id: i64,
    pub purpose: Purpose,
    pub new_email: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_action(tx: &mut Tx, token: &NewActionToken<'_>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO action_tokens (token_hash, user_id, purpose, new_email, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.token_hash)
    .bind(token.user_id)
    .bind(token.purpose.as_str())
    .bind(token.new_email)
    .bind(token.now)
    .bind(token.expires_at)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Use up an action token: succeeds once, only before it expires, only for its user and purpose.
/// Returns the `new_email` it carried (for email changes).
pub async fn consume_action(
    tx: &mut Tx,
    token_hash: &str,
    user_id: i64,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Option<Option<String>>, StoreError> {
    let row = on_tx!(tx, conn => sqlx::query_scalar::<_, Option<String>>(
        "UPDATE action_tokens SET used_at = $4 \
         WHERE token_hash = $1 AND user_id = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $4 \
         RETURNING new_email",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// Revoke every session token of the user except the one in use.
pub async fn delete_other_sessions(tx: &mut Tx, user_id: i64, keep_hash: &str) -> Result<u64, StoreError> {
    Ok(on_tx!(tx, conn => sqlx::query("DELETE FROM auth_tokens WHERE user_id = $1 AND token_hash <> $2")
        .bind(user_id)
        .bind(keep_hash)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?)
}

/// Remove expired session tokens and spent or expired action tokens.
pub async fn delete_expired(tx: &mut Tx, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let sessions = on_tx!(tx, conn => sqlx::query("DELETE FROM auth_tokens WHERE expires_at <= $1")
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    let actions = on_tx!(tx, conn => sqlx::query("DELETE FROM action_tokens WHERE expires_at <= $1 OR used_at IS NOT NULL")
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(sessions + actions)
}
