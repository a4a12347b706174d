use secrecy::SecretString;
use steward::db::{self, Db};
use steward::startup::Application;

use crate::helpers::{fresh_database, on_postgres, test_settings};

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
