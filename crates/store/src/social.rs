//! Social sign-in: provider identities linked to users, and pending OAuth 1.0a requests.

use chrono::{DateTime, Utc};

use crate::{Db, StoreError, Tx, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Identity {
    pub id: i64,
    pub provider: String,
    pub provider_user_id: String,
    pub user_id: i64,
    pub email: Option<String>,
    pub profile: String,
}

pub async fn find(db: &Db, provider: &str, provider_user_id: &str) -> Result<Option<Identity>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, Identity>(
        "SELECT id, provider, provider_user_id, user_id, email, profile FROM social_identities \
         WHERE provider = $1 AND provider_user_id = $2",
    )
    .bind(provider)
    .bind(provider_user_id)
    .fetch_optional(pool)
    .await)?)
}

pub struct NewIdentity<'a> {
    pub provider: &'a str,
    pub provider_user_id: &'a str,
    pub user_id: i64,
    pub email: Option<&'a str>,
    pub profile: &'a str,
    pub now: DateTime<Utc>,
}

/// Link a provider account to a user; refreshes the stored profile when already linked.
/// A provider account linked to another user is a Conflict.
pub async fn link(tx: &mut Tx, identity: &NewIdentity<'_>) -> Result<(), StoreError> {
    let n = on_tx!(tx, conn => sqlx::query(
        "INSERT INTO social_identities (id, provider, provider_user_id, user_id, email, profile, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (provider, provider_user_id) DO UPDATE SET email = excluded.email, profile = excluded.profile, \
           updated_at = excluded.updated_at WHERE social_identities.user_id = excluded.user_id",
    )
    .bind(crate::new_id())
    .bind(identity.provider)
    .bind(identity.provider_user_id)
    .bind(identity.user_id)
    .bind(identity.email)
    .bind(identity.profile)
    .bind(identity.now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    if n == 0 {
        return Err(StoreError::Conflict(crate::constraints::SOCIAL_IDENTITIES_PROVIDER_USER.to_owned()));
    }
    Ok(())
}

pub async fn count_for_user(db: &Db, user_id: i64) -> Result<i64, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM social_identities WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await)?)
}

/// Remember a pending request token and its (sealed) secret until `expires_at`.
pub async fn save_request(
    tx: &mut Tx,
    token: &str,
    provider: &str,
    secret_sealed: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query("DELETE FROM oauth_requests WHERE expires_at <= $1")
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO oauth_requests (token, provider, secret_sealed, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token)
    .bind(provider)
    .bind(secret_sealed)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Take a pending request token (once, before it expires); returns its sealed secret.
pub async fn take_request(
    tx: &mut Tx,
    token: &str,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let secret = on_tx!(tx, conn => sqlx::query_scalar::<_, String>(
        "DELETE FROM oauth_requests WHERE token = $1 AND provider = $2 AND expires_at > $3 RETURNING secret_sealed",
    )
    .bind(token)
    .bind(provider)
    .bind(now)
    .fetch_optional(conn)
    .await)?;
    Ok(secret)
}
