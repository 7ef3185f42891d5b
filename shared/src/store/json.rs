//! JSON documents bound as the Postgres `json` type (text as given), not `jsonb`.
//!
//! `jsonb` cannot hold the escape `\u0000`, so a task whose inputs, outputs or report held a
//! NUL character could not be stored on Postgres while SQLite stored it. The task documents
//! are only ever written and read whole, so they live in `json` columns
//! (`migrations/postgres/0005_task_documents_json.sql`). sqlx's own `Json` declares its
//! parameters `jsonb`, which Postgres would parse (and refuse) before any conversion, so
//! these are declared `json`. On SQLite they are text, as `Json` is.

use serde::Serialize;
use sqlx::{
    Encode, Postgres, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, types::Oid},
    sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo},
};

/// The `json` type's fixed OID (a built-in type: the same in every database).
const JSON_OID: Oid = Oid(114);

/// A value serialized to JSON text and bound as `json` (Postgres) or `TEXT` (SQLite).
#[derive(Clone, Copy, Debug)]
pub struct JsonText<T>(pub T);

impl<T> Type<Postgres> for JsonText<T> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(JSON_OID)
    }
}

impl<T: Serialize> Encode<'_, Postgres> for JsonText<T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // The binary form of `json` is its text.
        serde_json::to_writer(&mut **buf, &self.0)?;
        Ok(IsNull::No)
    }
}

impl<T> Type<Sqlite> for JsonText<T> {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<T: Serialize> Encode<'_, Sqlite> for JsonText<T> {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(serde_json::to_string(&self.0)?, buf)
    }
}
