//! The aggregator's institution catalog and the credentials each institution asks for.

use chrono::{DateTime, Utc};

use crate::{Db, StoreError, Tx, on_db, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Institution {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Credential {
    pub institution_id: i64,
    pub guid: String,
    pub field_name: String,
    pub label: String,
    pub kind: String,
    pub display_order: i64,
}

pub struct CatalogEntry {
    pub code: String,
    pub name: String,
    pub url: Option<String>,
}

/// Insert or refresh institutions by code; existing ids stay.
pub async fn upsert(tx: &mut Tx, entries: &[CatalogEntry], now: DateTime<Utc>) -> Result<(), StoreError> {
    for e in entries {
        on_tx!(tx, conn => sqlx::query(
            "INSERT INTO institutions (id, code, name, url, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, url = excluded.url, updated_at = excluded.updated_at",
        )
        .bind(crate::new_id())
        .bind(&e.code)
        .bind(&e.name)
        .bind(&e.url)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Replace the stored credentials of an institution.
pub async fn replace_credentials(
    tx: &mut Tx,
    institution_id: i64,
    credentials: &[Credential],
) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query("DELETE FROM institution_credentials WHERE institution_id = $1")
        .bind(institution_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    for c in credentials {
        on_tx!(tx, conn => sqlx::query(
            "INSERT INTO institution_credentials (institution_id, guid, field_name, label, kind, display_order) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(institution_id)
        .bind(&c.guid)
        .bind(&c.field_name)
        .bind(&c.label)
        .bind(&c.kind)
        .bind(c.display_order)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Institutions by name, optionally those whose name contains `search` (any case, Unicode
/// aware; `%` and `_` are plain characters). The catalog is small, so matching and ordering
/// happen here, identically on both engines, rather than under two engines' collations.
pub async fn list(db: &Db, search: Option<&str>, limit: i64) -> Result<Vec<Institution>, StoreError> {
    let all = on_db!(db, pool => sqlx::query_as::<_, Institution>("SELECT id, code, name, url FROM institutions").fetch_all(pool).await)?;
    let needle = search.map(str::to_lowercase).unwrap_or_default();
    let mut found: Vec<(String, Institution)> =
        all.into_iter().map(|i| (i.name.to_lowercase(), i)).filter(|(name, _)| name.contains(&needle)).collect();
    found.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.code.cmp(&y.code)));
    Ok(found.into_iter().map(|(_, i)| i).take(usize::try_from(limit).unwrap_or(0)).collect())
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Institution>, StoreError> {
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, Institution>("SELECT id, code, name, url FROM institutions WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await)?,
    )
}

pub async fn get_by_code(db: &Db, code: &str) -> Result<Option<Institution>, StoreError> {
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, Institution>("SELECT id, code, name, url FROM institutions WHERE code = $1")
        .bind(code)
        .fetch_optional(pool)
        .await)?,
    )
}

pub async fn credentials(db: &Db, institution_id: i64) -> Result<Vec<Credential>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, Credential>(
        "SELECT institution_id, guid, field_name, label, kind, display_order FROM institution_credentials \
         WHERE institution_id = $1 ORDER BY display_order, guid",
    )
    .bind(institution_id)
    .fetch_all(pool)
    .await)?)
}

pub async fn count(db: &Db) -> Result<i64, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM institutions").fetch_one(pool).await)?)
}
