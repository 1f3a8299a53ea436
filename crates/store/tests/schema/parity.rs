//! The two migration trees describe one schema: after migrating, SQLite and PostgreSQL have the
//! same tables, the same columns with types of the same family and the same nullability, and the
//! same unique indexes. And a released migration is never edited: each file's checksum is listed
//! in `migrations/released.sha256`, and a new migration is added there when it is released.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use donkies_store::Db;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// A column as both engines can describe it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    family: Family,
    nullable: bool,
}

/// What kind of value a column holds. SQLite keeps timestamps, dates and JSON as text, so its
/// `Text` stands for any of PostgreSQL's textual families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Integer,
    Real,
    Boolean,
    Text,
    Time,
    Json,
    Bytes,
}

impl Family {
    fn of(declared: &str) -> Family {
        let declared = declared.to_ascii_lowercase();
        match declared.as_str() {
            "integer" | "bigint" | "int" | "int8" | "int4" | "smallint" | "int2" => Family::Integer,
            "real" | "double precision" | "float8" | "float4" | "numeric" => Family::Real,
            "boolean" | "bool" => Family::Boolean,
            "timestamp with time zone" | "timestamptz" | "timestamp" | "date" => Family::Time,
            "json" | "jsonb" => Family::Json,
            "bytea" | "blob" => Family::Bytes,
            _ => Family::Text,
        }
    }

    /// Whether a SQLite column of this family stores what a PostgreSQL column of `pg` does.
    fn sqlite_stores(self, pg: Family) -> bool {
        self == pg || (self == Family::Text && matches!(pg, Family::Time | Family::Json))
    }
}

#[derive(Debug, Default)]
struct Schema {
    /// table → column → description
    tables: BTreeMap<String, BTreeMap<String, Column>>,
    /// (table, columns in index order, partial?) of every unique index and unique constraint,
    /// primary keys included.
    unique: BTreeSet<(String, Vec<String>, bool)>,
}

async fn sqlite_schema(db: &Db) -> Schema {
    let Db::Sqlite { pool, .. } = db else { panic!("not SQLite") };
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in tables {
        let mut columns = BTreeMap::new();
        let mut primary_key: Vec<(i64, String)> = Vec::new();
        for row in sqlx::query(&format!("PRAGMA table_info(\"{table}\")")).fetch_all(pool).await.unwrap() {
            let name: String = row.get("name");
            let declared: String = row.get("type");
            let not_null: bool = row.get::<i64, _>("notnull") != 0;
            let pk: i64 = row.get("pk");
            if pk > 0 {
                primary_key.push((pk, name.clone()));
            }
            // A primary key is never null on PostgreSQL; SQLite only enforces it for INTEGER keys,
            // but the program never writes a null key.
            columns.insert(name, Column { family: Family::of(&declared), nullable: !not_null && pk == 0 });
        }
        primary_key.sort();
        if !primary_key.is_empty() {
            schema.unique.insert((table.clone(), primary_key.into_iter().map(|(_, c)| c).collect(), false));
        }
        for index in sqlx::query(&format!("PRAGMA index_list(\"{table}\")")).fetch_all(pool).await.unwrap() {
            let unique: bool = index.get::<i64, _>("unique") != 0;
            let origin: String = index.get("origin");
            if !unique || origin == "pk" {
                continue;
            }
            let name: String = index.get("name");
            let partial: bool = index.get::<i64, _>("partial") != 0;
            let mut cols: Vec<(i64, String)> = sqlx::query(&format!("PRAGMA index_info(\"{name}\")"))
                .fetch_all(pool)
                .await
                .unwrap()
                .into_iter()
                .map(|c| {
                    (c.get::<i64, _>("seqno"), c.get::<Option<String>, _>("name").unwrap_or_else(|| "<expr>".into()))
                })
                .collect();
            cols.sort();
            schema.unique.insert((table.clone(), cols.into_iter().map(|(_, c)| c).collect(), partial));
        }
        schema.tables.insert(table, columns);
    }
    schema
}

async fn postgres_schema(db: &Db) -> Schema {
    let Db::Postgres(pool) = db else { panic!("not PostgreSQL") };
    let mut schema = Schema::default();
    let rows = sqlx::query(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, \
                c.data_type::text AS data_type, c.is_nullable::text AS is_nullable \
         FROM information_schema.columns c \
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
           AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in rows {
        let table: String = row.get("table_name");
        let column: String = row.get("column_name");
        let declared: String = row.get("data_type");
        let nullable = row.get::<String, _>("is_nullable") == "YES";
        schema.tables.entry(table).or_default().insert(column, Column { family: Family::of(&declared), nullable });
    }
    let indexes = sqlx::query(
        "SELECT t.relname::text AS table_name, i.indpred IS NOT NULL AS partial, \
                array_agg(coalesce(a.attname::text, '<expr>') ORDER BY k.ord) AS columns \
         FROM pg_index i \
         JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum AND k.attnum > 0 \
         WHERE n.nspname = current_schema() AND i.indisunique AND t.relname <> '_sqlx_migrations' \
         GROUP BY i.indexrelid, t.relname, i.indpred",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in indexes {
        schema.unique.insert((row.get("table_name"), row.get("columns"), row.get("partial")));
    }
    schema
}

/// Every difference between the two engines' schemas, one line each.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let tables: BTreeSet<&String> = sqlite.tables.keys().chain(postgres.tables.keys()).collect();
    for table in tables {
        let (Some(lite), Some(pg)) = (sqlite.tables.get(table), postgres.tables.get(table)) else {
            out.push(format!(
                "table {table}: only on {}",
                if sqlite.tables.contains_key(table) { "SQLite" } else { "PostgreSQL" }
            ));
            continue;
        };
        let columns: BTreeSet<&String> = lite.keys().chain(pg.keys()).collect();
        for column in columns {
            match (lite.get(column), pg.get(column)) {
                (Some(l), Some(p)) => {
                    if !l.family.sqlite_stores(p.family) {
                        out.push(format!("{table}.{column}: SQLite {:?}, PostgreSQL {:?}", l.family, p.family));
                    }
                    if l.nullable != p.nullable {
                        out.push(format!(
                            "{table}.{column}: nullable on {}",
                            if l.nullable { "SQLite only" } else { "PostgreSQL only" }
                        ));
                    }
                }
                (Some(_), None) => out.push(format!("{table}.{column}: only on SQLite")),
                (None, _) => out.push(format!("{table}.{column}: only on PostgreSQL")),
            }
        }
    }
    for index in sqlite.unique.symmetric_difference(&postgres.unique) {
        let side = if sqlite.unique.contains(index) { "SQLite" } else { "PostgreSQL" };
        let (table, columns, partial) = index;
        out.push(format!(
            "unique index on {table} ({}){}: only on {side}",
            columns.join(", "),
            if *partial { " WHERE …" } else { "" }
        ));
    }
    out
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set DONKIES_TEST_POSTGRES_URL to run the PostgreSQL half")]
async fn both_engines_migrate_to_the_same_schema() {
    let sqlite = donkies_store::testing::TestDb::sqlite().await;
    let postgres = donkies_store::testing::TestDb::postgres().await;
    let (lite, pg) = (sqlite_schema(&sqlite.db).await, postgres_schema(&postgres.db).await);
    assert!(
        lite.tables.len() > 10 && lite.tables.contains_key("users"),
        "introspection found {:?}",
        lite.tables.keys()
    );
    assert!(pg.unique.iter().any(|(t, c, _)| t == "users" && c == &["email".to_owned()]), "{:?}", pg.unique);
    let diff = differences(&lite, &pg);
    assert!(diff.is_empty(), "the migration trees disagree:\n{}", diff.join("\n"));
}

#[test]
fn a_schema_difference_is_reported() {
    let column = |family, nullable| Column { family, nullable };
    let mut lite = Schema::default();
    let mut pg = Schema::default();
    lite.tables.insert(
        "t".into(),
        BTreeMap::from([("a".into(), column(Family::Text, true)), ("b".into(), column(Family::Integer, false))]),
    );
    pg.tables.insert(
        "t".into(),
        BTreeMap::from([("a".into(), column(Family::Time, false)), ("b".into(), column(Family::Boolean, false))]),
    );
    pg.unique.insert(("t".into(), vec!["a".into()], false));
    assert_eq!(
        differences(&lite, &pg),
        vec![
            "t.a: nullable on SQLite only".to_owned(),
            "t.b: SQLite Integer, PostgreSQL Boolean".to_owned(),
            "unique index on t (a): only on PostgreSQL".to_owned(),
        ]
    );
}

/// `migrations/released.sha256`: `<sha256>  <engine>/<file>` per released migration.
fn released() -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let text = std::fs::read_to_string(dir.join("released.sha256")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (sum, file) = l.split_once("  ").unwrap_or_else(|| panic!("malformed line {l:?}"));
            (file.to_owned(), sum.to_owned())
        })
        .collect()
}

fn checksum(path: &Path) -> String {
    hex(&Sha256::digest(std::fs::read(path).unwrap()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn released_migrations_are_never_edited() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let released = released();
    let mut on_disk = BTreeSet::new();
    for engine in ["sqlite", "postgres"] {
        for entry in std::fs::read_dir(dir.join(engine)).unwrap() {
            let path = entry.unwrap().path();
            on_disk.insert(format!("{engine}/{}", path.file_name().unwrap().to_string_lossy()));
        }
    }
    let mut problems = Vec::new();
    for (file, sum) in &released {
        if !on_disk.contains(file) {
            problems.push(format!("{file}: released, but gone"));
        } else if checksum(&dir.join(file)) != *sum {
            problems.push(format!("{file}: released, and edited since (add a new migration instead)"));
        }
    }
    for file in on_disk.difference(&released.keys().cloned().collect()) {
        problems.push(format!("{file}: not listed in migrations/released.sha256 (list it when it is released)"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Both trees hold the same versions.
    let versions = |engine: &str| -> BTreeSet<String> {
        released.keys().filter_map(|f| f.strip_prefix(&format!("{engine}/")).map(str::to_owned)).collect()
    };
    assert_eq!(versions("sqlite"), versions("postgres"), "the two trees name different migrations");
}
