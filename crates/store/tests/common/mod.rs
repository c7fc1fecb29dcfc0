//! Shared by the store's test files: the harness that gives every case a
//! fresh store on SQLite (a temp file) and on PostgreSQL (its own schema in
//! `ROSTER_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`;
//! unreachable fails the case unless `ROSTER_REQUIRE_POSTGRES=0`), and the
//! `both_backends!` macro that instantiates each case for both.

#![allow(dead_code)] // Not every test file uses every helper.

pub mod harness {
    use std::future::Future;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use roster_store::{Backend, Store};
    use sqlx::{AnyConnection, AssertSqlSafe, Connection};

    /// What a case gets: an open store and a URL to reach the same
    /// database behind the store's back.
    pub struct Fx {
        pub store: Store,
        pub raw_url: String,
        /// The URL the store was opened with (to reopen it).
        pub open_url: String,
        pub backend: Backend,
    }

    impl Fx {
        /// Runs `sql` on a separate connection, as an attacker or an
        /// operator with database access would.
        pub async fn raw(&self, sql: &str) {
            let mut conn = AnyConnection::connect(&self.raw_url)
                .await
                .expect("raw connect");
            sqlx::query(AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("raw SQL {sql:?} failed: {e}"));
            conn.close().await.expect("raw close");
        }
    }

    pub async fn run_sqlite<F, Fut>(_name: &str, case: F)
    where
        F: FnOnce(Fx) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("roster.db");
        let open_url = path.to_str().expect("utf-8 path").to_string();
        let store = Store::open(&open_url).await.expect("open sqlite store");
        let keep = store.clone();
        let fx = Fx {
            store,
            raw_url: format!("sqlite://{open_url}"),
            open_url,
            backend: Backend::Sqlite,
        };
        let outcome = tokio::spawn(case(fx)).await;
        keep.close().await;
        drop(dir);
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    fn postgres_base_url() -> String {
        std::env::var("ROSTER_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
    }

    pub async fn run_postgres<F, Fut>(name: &str, case: F)
    where
        F: FnOnce(Fx) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        sqlx::any::install_default_drivers();
        let base = postgres_base_url();
        let admin =
            tokio::time::timeout(Duration::from_secs(5), AnyConnection::connect(&base)).await;
        let mut admin = match admin {
            Ok(Ok(c)) => c,
            failure => {
                let why = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out after 5 s".to_string(),
                };
                // Required unless explicitly waived: a suite whose PostgreSQL
                // half quietly skips would pass while testing nothing there.
                if std::env::var("ROSTER_REQUIRE_POSTGRES").as_deref() != Ok("0") {
                    panic!(
                        "PostgreSQL is required but the server in ROSTER_TEST_POSTGRES_URL is \
                         unreachable: {why}. Start it (scripts/postgres.sh does), point \
                         ROSTER_TEST_POSTGRES_URL at one, or set ROSTER_REQUIRE_POSTGRES=0 to skip \
                         the PostgreSQL half on purpose"
                    );
                }
                let shown = url::Url::parse(&base)
                    .map(|mut u| {
                        let _ = u.set_password(None);
                        u.to_string()
                    })
                    .unwrap_or_default();
                eprintln!("SKIP postgres::{name}: PostgreSQL at {shown:?} unreachable ({why})");
                return;
            }
        };

        // A schema of its own per test, so parallel tests never see each
        // other's tables (or each other's audit chains).
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut schema = format!(
            "rt_{}_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos,
            name
        );
        schema.truncate(63);
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut admin)
            .await
            .expect("create test schema");

        let mut url = url::Url::parse(&base).expect("postgres test URL");
        url.query_pairs_mut()
            .append_pair("options[search_path]", &schema);
        let url = url.to_string();

        let store = Store::open(&url).await.expect("open postgres store");
        let keep = store.clone();
        let fx = Fx {
            store,
            raw_url: url.clone(),
            open_url: url,
            backend: Backend::Postgres,
        };
        let outcome = tokio::spawn(case(fx)).await;
        keep.close().await;
        let dropped = sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
            .execute(&mut admin)
            .await;
        let _ = admin.close().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
        dropped.expect("drop test schema");
    }
}

/// `both_backends!(a, b)` makes `sqlite::a`, `postgres::a`, ... from the
/// functions `crate::cases::a`, ...
// `crate::cases` and `crate::harness` deliberately name the calling test
// crate's modules: each test file has its own cases.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::run_sqlite(stringify!($case), crate::cases::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::run_postgres(stringify!($case), crate::cases::$case).await;
                }
            )*
        }
    };
}
