//! Outgoing mail, stored before delivery so that none is lost.

use chrono::{DateTime, Utc};

use crate::{Db, StoreError, Tx, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Mail {
    pub id: i64,
    pub user_id: Option<i64>,
    pub template: String,
    pub to_address: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, user_id, template, to_address, subject, text_body, html_body, created_at, sent_at";

pub async fn insert(tx: &mut Tx, mail: &Mail) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO outbox (id, user_id, template, to_address, subject, text_body, html_body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(mail.id)
    .bind(mail.user_id)
    .bind(&mail.template)
    .bind(&mail.to_address)
    .bind(&mail.subject)
    .bind(&mail.text_body)
    .bind(&mail.html_body)
    .bind(mail.created_at)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Mail>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Mail>(&sql).bind(id).fetch_optional(pool).await)?)
}

/// Record the delivery and drop the bodies: a sent mail's links stay out of the database.
pub async fn mark_sent(tx: &mut Tx, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "UPDATE outbox SET sent_at = $2, text_body = '', html_body = '' WHERE id = $1 AND sent_at IS NULL",
    )
        .bind(id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Mail addressed to `to_address`, oldest first.
pub async fn list_to(db: &Db, to_address: &str) -> Result<Vec<Mail>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE to_address = $1 ORDER BY created_at, id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Mail>(&sql).bind(to_address).fetch_all(pool).await)?)
}
