use diesel::RunQueryDsl;
use steward::audit::{self, NewEvent};
use steward::db::DbConnection;

use crate::helpers::spawn_app;

#[tokio::test]
async fn user_token_and_config_actions_are_audited() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let events: Vec<serde_json::Value> = app
        .client
        .get(app.url("/api/v1/audit?limit=50"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    for expected in [
        "user.create",
        "config.applied",
        "auth.login",
        "token.create",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let token_event = events
        .iter()
        .find(|e| e["action"] == "token.create")
        .expect("token.create");
    assert_eq!(token_event["actor"], "user:admin");
    assert!(
        !token_event.to_string().contains(&token),
        "the token itself is never audited"
    );

    let report: serde_json::Value = app
        .client
        .get(app.url("/api/v1/audit/verify"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("json");
    assert!(report["first_break"].is_null(), "{report}");
    assert_eq!(report["events_checked"].as_u64(), Some(events.len() as u64));
}

#[tokio::test]
async fn the_store_refuses_to_change_audit_rows() {
    let app = spawn_app().await;
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let result = diesel::sql_query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
        .execute(&mut *conn);
    let err = result.expect_err("the trigger refuses updates").to_string();
    assert!(err.contains("append-only"), "{err}");
    let result = diesel::sql_query("DELETE FROM audit_events").execute(&mut *conn);
    assert!(result.is_err(), "the trigger refuses deletes");
}

#[tokio::test]
async fn a_tampered_row_makes_audit_verify_fail() {
    let app = spawn_app().await;
    app.admin_token().await; // a few more events: login, token.create
    let (ok, output) = app.verify_audit();
    assert!(ok, "an untouched chain verifies: {output}");
    assert!(output.contains("intact"), "{output}");

    // An attacker with write access to the database lifts the guard and edits event 2.
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let lift = match &*conn {
        DbConnection::Sqlite(_) => "DROP TRIGGER audit_events_no_update",
        DbConnection::Postgres(_) => {
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change"
        }
    };
    diesel::sql_query(lift)
        .execute(&mut *conn)
        .expect("lift guard");
    diesel::sql_query("UPDATE audit_events SET subject = 'user:mallory' WHERE seq = 2")
        .execute(&mut *conn)
        .expect("tamper");
    drop(conn);

    let (ok, output) = app.verify_audit();
    assert!(!ok, "verify must fail on a tampered chain: {output}");
    assert!(output.contains("BROKEN at event 2"), "{output}");
    assert!(output.contains("altered"), "{output}");
}

#[tokio::test]
async fn concurrent_appends_keep_one_unbroken_chain() {
    let app = spawn_app().await;
    let db = app.store();
    let before = audit::count(&mut db.get().expect("conn")).expect("count");
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut conn = db.get().expect("conn");
                for i in 0..10 {
                    audit::append(
                        &mut conn,
                        NewEvent::new(format!("test:{w}"), "test.append", format!("item:{i}")),
                    )
                    .expect("append");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let mut conn = db.get().expect("conn");
    assert_eq!(audit::count(&mut conn).expect("count"), before + 60);
    let report = audit::verify(&mut conn).expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, (before + 60) as u64);
}
