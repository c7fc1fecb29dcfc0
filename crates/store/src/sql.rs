//! Small helpers for portable SQL through sqlx's `Any` driver.
//!
//! `QueryBuilder<Any>` emits `?` placeholders, which PostgreSQL rejects, so
//! batch inserts are built here with numbered `$N` placeholders, which both
//! SQLite and PostgreSQL accept. Only placeholders and fixed SQL fragments
//! written in this crate are ever spliced into statement text; every value
//! is bound.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe, Row};

use crate::error::StoreError;

/// A value to bind. `Any` carries only these kinds portably.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Bool(bool),
    OptBool(Option<bool>),
}

pub(crate) fn bind_val<'q>(
    q: Query<'q, Any, AnyArguments>,
    v: Val,
) -> Query<'q, Any, AnyArguments> {
    match v {
        Val::Text(s) => q.bind(s),
        Val::OptText(s) => q.bind(s),
        Val::Int(i) => q.bind(i),
        Val::Bool(b) => q.bind(b),
        Val::OptBool(b) => q.bind(b),
    }
}

/// Bind parameters per batch statement. Far below the engines' limits
/// (SQLite 32766, PostgreSQL 65535) on purpose: sqlx-sqlite looks up each
/// parameter's name, and SQLite's lookup walks the parameter list, so binding
/// costs O(n^2) in the parameters of one statement. Around a thousand keeps
/// that negligible while still amortizing the per-statement round trip.
const MAX_PARAMS: usize = 1_000;
/// Rows per statement, whatever the width.
const MAX_ROWS: usize = 250;

/// `($1, $2, $3), ($4, $5, $6)` for `rows` rows of `cols` columns.
pub(crate) fn values_placeholders(cols: usize, rows: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    let mut n = 0usize;
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            n += 1;
            s.push('$');
            s.push_str(&n.to_string());
        }
        s.push(')');
    }
    s
}

/// Inserts `rows` with as few multi-row statements as the parameter limits
/// allow: `{head} VALUES (...), (...) {tail}`. `head` and `tail` are fixed
/// SQL written in this crate; `tail` may be an `ON CONFLICT` clause.
pub(crate) async fn insert_rows(
    conn: &mut AnyConnection,
    head: &'static str,
    tail: &'static str,
    cols: usize,
    rows: Vec<Vec<Val>>,
) -> Result<(), StoreError> {
    let per_stmt = (MAX_PARAMS / cols.max(1)).clamp(1, MAX_ROWS);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(per_stmt).collect();
        let sql = format!(
            "{head} VALUES {} {tail}",
            values_placeholders(cols, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            if row.len() != cols {
                // A bug in this crate, not bad input; refuse rather than
                // shift every later value into the wrong column.
                return Err(StoreError::Invalid(format!(
                    "internal: {head}: row has {} values for {cols} columns",
                    row.len()
                )));
            }
            for v in row {
                q = bind_val(q, v);
            }
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Reads a boolean column. PostgreSQL returns BOOLEAN; SQLite stores 0/1
/// and `Any` hands it back as an integer.
pub(crate) fn get_bool(row: &AnyRow, col: &str) -> Result<bool, sqlx::Error> {
    match row.try_get::<bool, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(col)? != 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_across_rows() {
        assert_eq!(values_placeholders(2, 3), "($1, $2), ($3, $4), ($5, $6)");
        assert_eq!(values_placeholders(1, 1), "($1)");
    }
}
