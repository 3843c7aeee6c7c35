//! A prepared statement whose text values are bound without a copy.
//!
//! rusqlite binds every text with `SQLITE_TRANSIENT`: SQLite allocates and
//! copies each string, and frees the copy at the next bind. A first load
//! inserts one row of five strings per response (~75,000 on the
//! benchmark tree): binding, copying and freeing were about a sixth of its
//! writer thread's instructions. This statement binds with
//! `SQLITE_STATIC` instead, which is sound because [`Bound::execute`]
//! holds the borrowed values for the whole step and clears the bindings
//! before it returns: SQLite never reads a pointer after that.

use std::ffi::{c_int, CStr, CString};
use std::marker::PhantomData;
use std::ptr;

use rusqlite::ffi;
use rusqlite::Connection;

/// One value of a row.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'v> {
    Int(i64),
    Text(&'v str),
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match *self {
            Value::Int(i) => i.into(),
            Value::Text(s) => s.into(),
        })
    }
}

/// A statement prepared on a connection that outlives it (`'c`), used
/// only on the thread that owns that connection.
pub(super) struct Bound<'c> {
    stmt: ptr::NonNull<ffi::sqlite3_stmt>,
    db: *mut ffi::sqlite3,
    _conn: PhantomData<&'c Connection>,
}

impl<'c> Bound<'c> {
    pub(super) fn prepare(conn: &'c Connection, sql: &str) -> rusqlite::Result<Bound<'c>> {
        let sql = CString::new(sql)?;
        // SAFETY: the handle is the live connection's, borrowed for 'c.
        let db = unsafe { conn.handle() };
        let mut stmt = ptr::null_mut();
        // SAFETY: `sql` is NUL-terminated; `stmt` receives the statement.
        let rc =
            unsafe { ffi::sqlite3_prepare_v3(db, sql.as_ptr(), -1, 0, &mut stmt, ptr::null_mut()) };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, rc));
        }
        let stmt = ptr::NonNull::new(stmt).ok_or_else(|| {
            rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_MISUSE),
                Some("empty statement".into()),
            )
        })?;
        Ok(Bound {
            stmt,
            db,
            _conn: PhantomData,
        })
    }

    /// Binds `values` to ?1, ?2, ... and runs the statement to its end.
    pub(super) fn execute(&mut self, values: &[Value<'_>]) -> rusqlite::Result<()> {
        let stmt = self.stmt.as_ptr();
        let mut rc = ffi::SQLITE_OK;
        for (i, v) in values.iter().enumerate() {
            let col = (i + 1) as c_int;
            // SAFETY: `stmt` is live; a text's bytes stay borrowed until
            // the bindings are cleared below, after the step.
            rc = unsafe {
                match *v {
                    Value::Int(n) => ffi::sqlite3_bind_int64(stmt, col, n),
                    // SQLite reads no byte of an empty text; it gets a
                    // pointer that is valid for ever all the same.
                    Value::Text("") => ffi::sqlite3_bind_text64(
                        stmt,
                        col,
                        c"".as_ptr(),
                        0,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as _,
                    ),
                    Value::Text(s) => ffi::sqlite3_bind_text64(
                        stmt,
                        col,
                        s.as_ptr().cast(),
                        s.len() as ffi::sqlite3_uint64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as _,
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                break;
            }
        }
        if rc == ffi::SQLITE_OK {
            // SAFETY: `stmt` is live and fully bound.
            rc = match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_DONE => ffi::SQLITE_OK,
                ffi::SQLITE_ROW => ffi::SQLITE_MISUSE,
                other => other,
            };
        }
        let err = (rc != ffi::SQLITE_OK).then(|| error(self.db, rc));
        // SAFETY: `stmt` is live. After these, SQLite holds no pointer
        // into `values`.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        err.map_or(Ok(()), Err)
    }
}

impl Drop for Bound<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized once.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// The connection's error for result code `rc`, as rusqlite reports it.
fn error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is a live connection; its message is copied at once.
    let msg = unsafe {
        let m = ffi::sqlite3_errmsg(db);
        (!m.is_null()).then(|| CStr::from_ptr(m).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows bound without copies read back as bound, strings that are
    /// freed right after each execute included, and errors are SQLite's.
    #[test]
    fn binds_read_back_and_errors_are_reported() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT NOT NULL, c TEXT UNIQUE)")
            .unwrap();
        let mut ins = Bound::prepare(&conn, "INSERT INTO t VALUES (?1, ?2, ?3)").unwrap();
        for i in 0..3 {
            let b = format!("row {i} {}", "é".repeat(i));
            let c = i.to_string();
            ins.execute(&[Value::Int(i as i64), Value::Text(&b), Value::Text(&c)])
                .unwrap();
        }
        ins.execute(&[Value::Int(9), Value::Text(""), Value::Text("x")])
            .unwrap();
        let dup = ins
            .execute(&[Value::Int(10), Value::Text("y"), Value::Text("1")])
            .unwrap_err();
        assert_eq!(
            dup.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation)
        );
        assert!(dup.to_string().contains("UNIQUE"), "{dup}");
        drop(ins);
        let rows: Vec<(i64, String, String)> = conn
            .prepare("SELECT a, b, c FROM t ORDER BY a")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (0, "row 0 ".into(), "0".into()),
                (1, "row 1 é".into(), "1".into()),
                (2, "row 2 éé".into(), "2".into()),
                (9, "".into(), "x".into()),
            ]
        );
        assert!(Bound::prepare(&conn, "INSERT INTO nowhere VALUES (1)").is_err());
    }
}
