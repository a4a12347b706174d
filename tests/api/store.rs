use secrecy::SecretString;
use steward::db::{self, Db};
use steward::startup::Application;

use crate::helpers::{FreshDatabase, fresh_database, on_postgres, test_settings};

/// A fresh store, migrated: its folder and database (kept until dropped) and a pool on it.
fn migrated_store() -> (tempfile::TempDir, FreshDatabase, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = fresh_database(dir.path());
    let settings = test_settings(dir.path(), &database.url);
    let db = Db::connect(&settings.database).expect("connect");
    db::run_migrations(&mut db.get().expect("conn")).expect("up");
    (dir, database, db)
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = fresh_database(dir.path());
    let settings = test_settings(dir.path(), &database.url);
    let db = Db::connect(&settings.database).expect("connect");
    let mut conn = db.get().expect("conn");

    let applied = db::run_migrations(&mut conn).expect("up");
    assert!(!applied.is_empty());
    let tables = db::table_names(&mut conn).expect("tables");
    for t in [
        "api_tokens",
        "audit_events",
        "audit_head",
        "sessions",
        "users",
    ] {
        assert!(tables.iter().any(|n| n == t), "{t} missing from {tables:?}");
    }
    assert_eq!(db::pending_migrations(&mut conn).expect("pending"), 0);

    let reverted = db::revert_all_migrations(&mut conn).expect("down");
    assert_eq!(reverted.len(), applied.len());
    assert!(db::table_names(&mut conn).expect("tables").is_empty());

    db::run_migrations(&mut conn).expect("up again");
    assert_eq!(db::table_names(&mut conn).expect("tables"), tables);
}

/// Rollbacks recorded before `stage_transitions.rollback` existed are marked from their
/// reasons when the store is migrated, so the first rollback after an upgrade walks back.
#[tokio::test]
async fn rollbacks_from_before_the_mark_are_marked() {
    use diesel::RunQueryDsl;
    let (_dir, _database, db) = migrated_store();
    let mut conn = db.get().expect("conn");
    // Down to just before 000008 (later migrations first).
    let mut last = db::revert_last_migration(&mut conn).expect("down one");
    while !last.contains("000008") {
        assert!(last.as_str() > "2026-11-30-000008", "{last}");
        last = db::revert_last_migration(&mut conn).expect("down one more");
    }
    diesel::sql_query(
        "INSERT INTO registered_models (name, created_at) VALUES ('m', '2026-01-01 00:00:00')",
    )
    .execute(&mut *conn)
    .expect("model");
    for (seq, version, from, to, reason) in [
        (1, 1, "None", "Production", "first"),
        (2, 1, "Production", "Archived", "replaced by v2: newer"),
        (3, 2, "None", "Production", "newer"),
        (
            4,
            2,
            "Production",
            "Archived",
            "replaced by v1: rollback from v2: bad",
        ),
        (5, 1, "Archived", "Production", "rollback from v2: bad"),
    ] {
        diesel::sql_query(format!(
            "INSERT INTO stage_transitions (seq, model, version, from_stage, to_stage, actor, \
             reason, created_at) VALUES ({seq}, 'm', {version}, '{from}', '{to}', 'test', \
             '{reason}', '2026-01-01 00:00:00')"
        ))
        .execute(&mut *conn)
        .expect("transition");
    }
    db::run_migrations(&mut conn).expect("up again");
    let marked: Vec<i64> = steward::registry::transitions(&mut conn, "m")
        .expect("transitions")
        .into_iter()
        .filter(|t| t.rollback)
        .map(|t| t.seq)
        .collect();
    let mut marked = marked;
    marked.sort();
    assert_eq!(marked, [4, 5]);
    assert_eq!(
        steward::registry::production_stack(&mut conn, "m").expect("stack"),
        [1],
        "v2 was rolled back from: nothing to roll back to"
    );
}

async fn start_error(url: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = test_settings(dir.path(), url);
    settings.database.url = SecretString::from(url.to_owned());
    settings.database.connect_timeout_secs = 2;
    match Application::build(settings).await {
        Ok(_) => panic!("{url} should not start"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let err = start_error("postgres://steward:secret-pw@127.0.0.1:1/steward").await;
    assert!(err.contains("cannot connect to the database"), "{err}");
    assert!(err.contains("127.0.0.1"), "{err}");
    assert!(
        !err.contains("secret-pw"),
        "the password stays hidden: {err}"
    );
}

#[tokio::test]
async fn an_unknown_scheme_is_a_clear_error() {
    let err = start_error("mysql://root@localhost/steward").await;
    assert!(
        err.contains("unsupported database URL scheme `mysql`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_postgres_password_is_a_clear_error() {
    if !on_postgres() {
        eprintln!("skipped: needs TEST_DATABASE_URL (PostgreSQL); `make test` sets it");
        return;
    }
    let server = std::env::var("TEST_DATABASE_URL").expect("set");
    let mut url = url::Url::parse(&server).expect("url");
    url.set_password(Some("definitely-wrong"))
        .expect("password");
    let err = start_error(url.as_str()).await;
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("definitely-wrong"), "{err}");
}

/// Leases on either backend: one run per interval between holders, leadership kept by its
/// holder and taken only once expired, no renewal after a release, the fencing check, and the
/// dead-holder shortcut only for this process's own namespace.
#[tokio::test]
async fn leases_give_one_holder_at_a_time() {
    use steward::db::lease::{self, Take, Taken};
    let (_dir, _database, db) = migrated_store();
    let mut conn = db.get().expect("conn");
    let ttl = chrono::Duration::seconds(30);
    let never = |_: &str| false;
    let gap = chrono::Duration::seconds(60);
    let run = Take::Run { gap };

    // A job: the first takes a run; nobody else while it runs, nor within the gap after.
    assert_eq!(
        lease::take(&mut conn, "job:x", "a", ttl, run, &never).expect("take"),
        Taken::New
    );
    assert_eq!(
        lease::take(&mut conn, "job:x", "b", ttl, run, &never).expect("take"),
        Taken::No
    );
    lease::release(&mut conn, "job:x", "a").expect("release");
    assert_eq!(
        lease::take(&mut conn, "job:x", "b", ttl, run, &never).expect("take"),
        Taken::No
    );
    let due = Take::Run {
        gap: chrono::Duration::zero(),
    };
    assert_eq!(
        lease::take(&mut conn, "job:x", "b", ttl, due, &never).expect("take"),
        Taken::New
    );
    // A renewal after the release does not revive it; one before does.
    assert!(lease::renew(&mut conn, "job:x", "b", ttl).expect("renew"));
    lease::release(&mut conn, "job:x", "b").expect("release");
    assert!(!lease::renew(&mut conn, "job:x", "b", ttl).expect("renew"));

    // Leadership: kept (renewed) by its holder, refused to another until it expires.
    assert_eq!(
        lease::take(&mut conn, "agent", "a", ttl, Take::Lead, &never).expect("lead"),
        Taken::New
    );
    assert_eq!(
        lease::take(&mut conn, "agent", "a", ttl, Take::Lead, &never).expect("lead"),
        Taken::Renewed
    );
    assert_eq!(
        lease::take(&mut conn, "agent", "b", ttl, Take::Lead, &never).expect("lead"),
        Taken::No
    );
    assert!(lease::holds(&mut conn, "agent", "a").expect("holds"));
    assert!(!lease::holds(&mut conn, "agent", "b").expect("holds"));
    let short = chrono::Duration::milliseconds(50);
    assert_eq!(
        lease::take(&mut conn, "agent", "a", short, Take::Lead, &never).expect("lead"),
        Taken::Renewed
    );
    std::thread::sleep(std::time::Duration::from_millis(120));
    assert!(!lease::holds(&mut conn, "agent", "a").expect("expired"));
    assert_eq!(
        lease::take(&mut conn, "agent", "b", ttl, Take::Lead, &never).expect("lead"),
        Taken::New
    );
    // The old holder, awake again, is refused and its renewals fail.
    assert_eq!(
        lease::take(&mut conn, "agent", "a", ttl, Take::Lead, &never).expect("lead"),
        Taken::No
    );
    assert!(!lease::renew(&mut conn, "agent", "a", ttl).expect("renew"));

    // A holder `gone` says has ended is replaced at once; the answer is asked of the holder.
    let b_is_gone = |h: &str| h == "b";
    assert_eq!(
        lease::take(&mut conn, "agent", "c", ttl, Take::Lead, &b_is_gone).expect("lead"),
        Taken::New
    );
    // The real check: a holder id of this process's namespace whose pid is gone is gone; one
    // of another namespace (another container with the same hostname) never is.
    let me = steward::tracking::lease_holder();
    let (owner, tag) = me.rsplit_once('@').expect("owner@tag");
    let host = owner.split(':').next().expect("host");
    assert!(steward::tracking::lease_holder_gone(&format!(
        "{host}:999999999:1@{tag}"
    )));
    assert!(!steward::tracking::lease_holder_gone(&format!(
        "{host}:999999999:1@0000000000000000"
    )));
    assert!(!steward::tracking::lease_holder_gone(&format!(
        "{host}:999999999:1"
    )));
    assert!(
        !steward::tracking::lease_holder_gone(&me),
        "this process is alive"
    );
    assert_eq!(lease::list(&mut conn).expect("list").len(), 2);
}

/// The fencing read holds until its transaction commits (PostgreSQL: the lease row is read
/// `FOR SHARE`): a leader that found the lease its own inside a change commits that change
/// before another process can take the lease, even one whose take comes after the expiry and
/// before the commit. (SQLite serialises the same through the audit head's writer lock, which
/// every change takes; a plain read there would prove nothing, so this runs on PostgreSQL.)
#[test]
fn a_lease_found_held_in_a_transaction_stays_so_until_its_commit() {
    use diesel::Connection;
    use std::time::{Duration, Instant};

    use steward::db::lease::{self, Take, Taken};
    if !on_postgres() {
        return;
    }
    let (_dir, _database, db) = migrated_store();
    let mut conn = db.get().expect("conn");
    let never = |_: &str| false;
    assert_eq!(
        lease::take(
            &mut conn,
            "agent",
            "a",
            chrono::Duration::seconds(2),
            Take::Lead,
            &never
        )
        .expect("lead"),
        Taken::New
    );
    let (found, found_rx) = std::sync::mpsc::channel::<()>();
    let other = db.clone();
    let taker = std::thread::spawn(move || {
        found_rx.recv().expect("the fence read");
        // Past the lease's expiry, while the transaction that found it held is still open.
        std::thread::sleep(Duration::from_millis(2500));
        let mut conn = other.get().expect("conn");
        let asked = Instant::now();
        let taken = lease::take(
            &mut conn,
            "agent",
            "b",
            chrono::Duration::seconds(30),
            Take::Lead,
            &|_: &str| false,
        )
        .expect("take");
        (taken, asked, Instant::now())
    });
    let committed = conn
        .transaction::<_, steward::error::AppError, _>(|conn| {
            assert!(lease::holds(conn, "agent", "a")?, "still a's");
            found.send(()).expect("signal");
            // The change's work, outlasting the lease.
            std::thread::sleep(Duration::from_millis(4000));
            Ok(Instant::now())
        })
        .expect("the change commits");
    let (taken, asked, at) = taker.join().expect("taker");
    assert_eq!(taken, Taken::New, "taken once expired");
    assert!(
        asked < committed && at >= committed,
        "the take, asked before the commit, waited for it ({:?} before it)",
        committed.saturating_duration_since(at)
    );
}
