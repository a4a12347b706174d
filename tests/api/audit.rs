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

    // A second verification hashes only what is new, and still counts the whole chain.
    let (_, again) = app.get_json(&token, "/api/v1/audit/verify").await;
    assert!(again["first_break"].is_null(), "{again}");
    assert_eq!(again["events_checked"], again["head_seq"], "{again}");
    assert!(
        again["events_hashed"].as_u64() < again["events_checked"].as_u64(),
        "{again}"
    );
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

/// Lifts the guard triggers, as an attacker with write access to the database would.
fn lift_guards(conn: &mut DbConnection) {
    let statements: &[&str] = match conn {
        DbConnection::Sqlite(_) => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
        ],
        DbConnection::Postgres(_) => {
            &["ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change"]
        }
    };
    for statement in statements {
        diesel::sql_query(*statement)
            .execute(conn)
            .expect("lift guard");
    }
}

/// Rewrites event `seq` and every later one with `hash`, and the head after them: a forger
/// who knows the hash formula but not the key.
fn rehash_from(conn: &mut DbConnection, seq: i64, hash: impl Fn(&audit::AuditEvent) -> String) {
    use diesel::prelude::*;
    use steward::db::schema::{audit_events, audit_head};
    let events: Vec<audit::AuditEvent> = audit_events::table
        .filter(audit_events::seq.ge(seq - 1))
        .order(audit_events::seq.asc())
        .select(audit::AuditEvent::as_select())
        .load(conn)
        .expect("events");
    let mut prev = events[0].hash.clone();
    for mut e in events.into_iter().skip(1) {
        e.prev_hash = prev.clone();
        e.hash = hash(&e);
        diesel::update(audit_events::table.find(e.seq))
            .set((
                audit_events::subject.eq(&e.subject),
                audit_events::prev_hash.eq(&e.prev_hash),
                audit_events::hash.eq(&e.hash),
            ))
            .execute(conn)
            .expect("rewrite");
        diesel::update(audit_head::table.find(1))
            .set((audit_head::seq.eq(e.seq), audit_head::hash.eq(&e.hash)))
            .execute(conn)
            .expect("head");
        prev = e.hash;
    }
}

/// Editing a row and recomputing the chain after it is caught: the forger has no key. A cut
/// tail with a rewound head is caught against the head recorded outside the database.
#[tokio::test]
async fn a_recomputed_or_truncated_chain_is_caught() {
    let app = spawn_app().await;
    app.admin_token().await;
    let db = app.store();
    let mut conn = db.get().expect("conn");
    lift_guards(&mut conn);
    diesel::sql_query("UPDATE audit_events SET subject = 'user:mallory' WHERE seq = 2")
        .execute(&mut *conn)
        .expect("tamper");
    rehash_from(&mut conn, 2, audit::AuditEvent::legacy_hash);
    let (ok, output) = app.verify_audit();
    assert!(!ok, "{output}");
    assert!(
        output.contains("BROKEN at event 2") && output.contains("without the chain key"),
        "{output}"
    );
    let wrong = audit::ChainKey::from_hex(&"ab".repeat(32)).expect("key");
    rehash_from(&mut conn, 2, |e| e.keyed_hash(&wrong));
    let (ok, output) = app.verify_audit();
    assert!(!ok, "{output}");
    assert!(output.contains("BROKEN at event 2"), "{output}");

    // Truncation: rows cut from the end and the head rewound to the last one kept. Every
    // hash still holds, but the head record written at start (and every head_log_secs) is
    // further along.
    let app = spawn_app().await;
    app.admin_token().await;
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let head = audit::head(&mut conn).expect("head");
    // The head record at start was event 3 or later; record the current head too.
    audit::record_head(&mut conn, &app.settings.storage.dir).expect("record");
    lift_guards(&mut conn);
    let keep = 2_i64;
    diesel::sql_query(format!("DELETE FROM audit_events WHERE seq > {keep}"))
        .execute(&mut *conn)
        .expect("cut");
    let kept: String = {
        use diesel::prelude::*;
        use steward::db::schema::audit_events;
        audit_events::table
            .find(keep)
            .select(audit_events::hash)
            .first(&mut *conn)
            .expect("kept")
    };
    diesel::sql_query(format!(
        "UPDATE audit_head SET seq = {keep}, hash = '{kept}' WHERE id = 1"
    ))
    .execute(&mut *conn)
    .expect("rewind");
    assert!(
        audit::verify(&mut conn).expect("verify").is_intact(),
        "the database alone can't tell ({} events before)",
        head.seq
    );
    let (ok, output) = app.verify_audit();
    assert!(!ok, "{output}");
    assert!(output.contains("cut tail"), "{output}");
}

/// The server refuses to start on a broken chain, saying why, unless told to.
#[tokio::test]
async fn serve_refuses_a_broken_chain_unless_told_to() {
    let app = spawn_app().await;
    let db = app.store();
    let mut conn = db.get().expect("conn");
    lift_guards(&mut conn);
    diesel::sql_query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
        .execute(&mut *conn)
        .expect("tamper");
    drop(conn);
    let mut env: Vec<(&str, String)> = app.cli_env();
    env.retain(|(k, _)| *k != "STEWARD__LOG__LEVEL");
    let out = app
        .cli()
        .arg("serve")
        .env("STEWARD__SERVER__PORT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("audit log is broken at event 1") && err.contains("--allow-broken-audit"),
        "{err}"
    );

    let record_file = app.settings.storage.dir.join(audit::HEAD_FILE);
    let record = std::fs::read_to_string(&record_file).expect("record");
    let (mut child, _, lines) = crate::cli::start_server_with(&["--allow-broken-audit"], &env);
    let status = crate::cli::terminate(&mut child);
    let log = lines.lock().expect("lines").join("\n");
    assert!(status.success(), "exit on SIGTERM: {status:?}\n{log}");
    assert!(log.contains("THE AUDIT LOG IS BROKEN"), "{log}");
    // Serving over it leaves the evidence: the head record as it was, an event saying so,
    // and the next plain start still refused.
    assert_eq!(
        std::fs::read_to_string(&record_file).expect("record"),
        record
    );
    let mut conn = db.get().expect("conn");
    assert!(
        audit::latest_with_action(&mut conn, "audit.started_broken")
            .expect("latest")
            .is_some()
    );
    drop(conn);
    let out = app
        .cli()
        .arg("serve")
        .env("STEWARD__SERVER__PORT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("serve");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A chain from before the key (plain BLAKE3 hashes, no `keyed_from`) is verified and keyed
/// when adopted (a start does it by itself only with a key it generated): an
/// `audit.chain_keyed` event covers the old head, and a later edit of the old part still
/// breaks the chain.
#[tokio::test]
async fn a_chain_from_before_the_key_is_verified_then_keyed() {
    use diesel::prelude::*;
    use steward::db::schema::{audit_events, audit_head};
    let app = spawn_app().await;
    let db = app.store();
    let mut conn = db.get().expect("conn");
    // Rewrite the whole chain as an older Steward wrote it.
    lift_guards(&mut conn);
    diesel::update(audit_head::table.find(1))
        .set(audit_head::keyed_from.eq(None::<i64>))
        .execute(&mut *conn)
        .expect("unkey");
    let first: audit::AuditEvent = audit_events::table
        .find(1)
        .select(audit::AuditEvent::as_select())
        .first(&mut *conn)
        .expect("first");
    let mut first = first;
    first.prev_hash = audit::GENESIS_HASH.into();
    diesel::update(audit_events::table.find(1))
        .set(audit_events::hash.eq(first.legacy_hash()))
        .execute(&mut *conn)
        .expect("legacy first");
    rehash_from(&mut conn, 2, audit::AuditEvent::legacy_hash);
    let legacy_head = audit::head(&mut conn).expect("head");
    std::fs::remove_file(app.settings.storage.dir.join(audit::HEAD_FILE)).expect("no record yet");
    drop(conn);

    // `audit verify` only reads: it checks the plain hashes and keys nothing. With a key that
    // existed before (configured here), a chain without a keyed part could be a forgery, so it
    // says so and exits 1, as a start would refuse.
    let (ok, output) = app.verify_audit();
    assert!(!ok, "{output}");
    assert!(
        output.contains("NOT KEYED") && output.contains("audit adopt"),
        "{output}"
    );
    let mut conn = db.get().expect("conn");
    assert_eq!(audit::head(&mut conn).expect("head"), legacy_head);
    drop(conn);
    // No command appends to it (an event there would start a keyed part with no marker,
    // which nothing could mend), reading or writing; a person adopts it.
    for command in [
        &["users", "list"][..],
        &["users", "add", "bob", "--role", "viewer"][..],
    ] {
        let (code, out, err) = app.run_cli(command);
        assert_eq!(code, 1, "{command:?}: {out}{err}");
        assert!(err.contains("audit adopt"), "{err}");
    }
    let mut conn = db.get().expect("conn");
    assert_eq!(audit::head(&mut conn).expect("head"), legacy_head);
    drop(conn);
    let (code, out, err) = app.run_cli(&["audit", "adopt"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("keyed from event"), "{out}");
    let (ok, output) = app.verify_audit();
    assert!(ok, "{output}");
    let mut conn = db.get().expect("conn");
    let head = audit::head(&mut conn).expect("head");
    assert_eq!(head.keyed_from, Some(legacy_head.seq + 1), "{head:?}");
    let marker: String = audit_events::table
        .find(legacy_head.seq + 1)
        .select(audit_events::action)
        .first(&mut *conn)
        .expect("marker");
    assert_eq!(marker, audit::CHAIN_KEYED);
    // An edit of the legacy part, recomputed to the legacy head, no longer fits the keyed
    // marker that covers it.
    diesel::sql_query("UPDATE audit_events SET subject = 'user:mallory' WHERE seq = 1")
        .execute(&mut *conn)
        .expect("tamper");
    let edited: audit::AuditEvent = audit_events::table
        .find(1)
        .select(audit::AuditEvent::as_select())
        .first(&mut *conn)
        .expect("first");
    diesel::update(audit_events::table.find(1))
        .set(audit_events::hash.eq(edited.legacy_hash()))
        .execute(&mut *conn)
        .expect("rehash");
    drop(conn);
    let (ok, output) = app.verify_audit();
    assert!(!ok, "{output}");
}

/// Verifying while others append reads one snapshot (the head first): never "tampered".
#[tokio::test]
async fn verification_during_appends_never_reads_as_tampering() {
    let app = spawn_app().await;
    let db = app.store();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut conn = db.get().expect("conn");
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    audit::append(
                        &mut conn,
                        NewEvent::new(format!("test:{w}"), "test.append", format!("item:{i}")),
                    )
                    .expect("append");
                    i += 1;
                }
            })
        })
        .collect();
    let token = app.admin_token().await;
    for _ in 0..20 {
        let mut conn = db.get().expect("conn");
        let report = audit::verify(&mut conn).expect("verify");
        assert!(report.is_intact(), "{report:?}");
        drop(conn);
        let (status, report) = app.get_json(&token, "/api/v1/audit/verify").await;
        assert_eq!(status, 200);
        assert_eq!(report["first_break"], serde_json::Value::Null, "{report}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
}

/// Rewrites the whole chain with plain hashes and clears `keyed_from`: what an attacker with
/// the database but not the key would do to pass a forged chain off as one from before the key.
fn downgrade_chain(conn: &mut DbConnection) {
    use diesel::prelude::*;
    use steward::db::schema::{audit_events, audit_head};
    lift_guards(conn);
    diesel::update(audit_head::table.find(1))
        .set(audit_head::keyed_from.eq(None::<i64>))
        .execute(conn)
        .expect("unkey");
    let mut first: audit::AuditEvent = audit_events::table
        .find(1)
        .select(audit::AuditEvent::as_select())
        .first(conn)
        .expect("first");
    first.prev_hash = audit::GENESIS_HASH.into();
    diesel::update(audit_events::table.find(1))
        .set(audit_events::hash.eq(first.legacy_hash()))
        .execute(conn)
        .expect("legacy first");
    rehash_from(conn, 2, audit::AuditEvent::legacy_hash);
}

/// A keyed chain can't be passed off as one from before the key: the head record says where
/// the keyed part starts, no command keys it again, and the server's scheduled check fails.
#[tokio::test]
async fn a_keyed_chain_downgraded_to_plain_hashes_is_caught() {
    let app = spawn_app().await;
    app.admin_token().await;
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let record = std::fs::read_to_string(app.settings.storage.dir.join(audit::HEAD_FILE))
        .expect("the start wrote a head record");
    downgrade_chain(&mut conn);
    assert!(
        audit::verify(&mut conn).expect("verify").is_intact(),
        "the database alone can't tell"
    );
    drop(conn);
    let (ok, output) = app.verify_audit();
    assert!(!ok, "{output}");
    assert!(output.contains("keyed part"), "{output}");
    // A writing command does not vouch for the forged chain with a keying event.
    let _ = app.run_cli(&["users", "list"]);
    let mut conn = db.get().expect("conn");
    assert!(
        audit::latest_with_action(&mut conn, audit::CHAIN_KEYED)
            .expect("latest")
            .is_none(),
        "no keying event"
    );
    // The record is not moved to the forged head.
    assert!(audit::record_head(&mut conn, &app.settings.storage.dir).is_err());
    let after =
        std::fs::read_to_string(app.settings.storage.dir.join(audit::HEAD_FILE)).expect("record");
    assert_eq!(after, record);
    drop(conn);
    // Without the head record (lost storage) the key that existed before still says no:
    // no command keys the forged chain, and the server does not start on it.
    std::fs::remove_file(app.settings.storage.dir.join(audit::HEAD_FILE)).expect("rm");
    let _ = app.run_cli(&["users", "list"]);
    let mut conn = db.get().expect("conn");
    assert!(
        audit::latest_with_action(&mut conn, audit::CHAIN_KEYED)
            .expect("latest")
            .is_none(),
        "no keying event"
    );
    drop(conn);
    let out = app
        .cli()
        .arg("serve")
        .env("STEWARD__SERVER__PORT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("steward audit adopt"), "{err}");
}

/// The running server holds the furthest position it verified: a tail cut and a head rewound
/// behind it is a break at the next verification, and the head record is not moved back.
#[tokio::test]
async fn a_cut_tail_is_caught_by_the_running_server_and_the_record_is_kept() {
    use diesel::prelude::*;
    use steward::db::schema::audit_events;
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (_, report) = app.get_json(&token, "/api/v1/audit/verify").await;
    assert!(report["first_break"].is_null(), "{report}");
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let record =
        std::fs::read_to_string(app.settings.storage.dir.join(audit::HEAD_FILE)).expect("record");
    lift_guards(&mut conn);
    let keep = 2_i64;
    diesel::sql_query(format!("DELETE FROM audit_events WHERE seq > {keep}"))
        .execute(&mut *conn)
        .expect("cut");
    let kept: String = audit_events::table
        .find(keep)
        .select(audit_events::hash)
        .first(&mut *conn)
        .expect("kept");
    diesel::sql_query(format!(
        "UPDATE audit_head SET seq = {keep}, hash = '{kept}' WHERE id = 1"
    ))
    .execute(&mut *conn)
    .expect("rewind");
    let (_, report) = app.get_json(&token, "/api/v1/audit/verify").await;
    let reason = report["first_break"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cut tail"), "{report}");
    assert!(audit::record_head(&mut conn, &app.settings.storage.dir).is_err());
    let after =
        std::fs::read_to_string(app.settings.storage.dir.join(audit::HEAD_FILE)).expect("record");
    assert_eq!(after, record, "the record is not moved back");
}

/// A command that appends writes the head record too: a tail cut right after it shows.
#[tokio::test]
async fn a_tail_cut_after_a_command_shows() {
    use diesel::prelude::*;
    use steward::db::schema::audit_events;
    let app = spawn_app().await;
    let (code, out, err) = app.run_cli(&["data", "use", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let head = audit::head(&mut conn).expect("head");
    lift_guards(&mut conn);
    let keep = head.seq - 1;
    diesel::sql_query(format!("DELETE FROM audit_events WHERE seq > {keep}"))
        .execute(&mut *conn)
        .expect("cut");
    let kept: String = audit_events::table
        .find(keep)
        .select(audit_events::hash)
        .first(&mut *conn)
        .expect("kept");
    diesel::sql_query(format!(
        "UPDATE audit_head SET seq = {keep}, hash = '{kept}' WHERE id = 1"
    ))
    .execute(&mut *conn)
    .expect("rewind");
    let (ok, output) = app.verify_audit();
    assert!(!ok, "{output}");
    assert!(output.contains("cut tail"), "{output}");
}

/// A break the scheduled full verification finds stands until a full verification finds the
/// chain intact: a quick check of the newest events (a page view) can't hide it.
#[tokio::test]
async fn a_break_found_by_the_full_check_is_not_hidden_by_a_quick_one() {
    let app = spawn_app().await;
    app.admin_token().await;
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let position = audit::VerifiedPosition::new(&app.settings.storage.dir, None);
    assert!(position.verify(&mut conn).expect("verify").is_intact());
    lift_guards(&mut conn);
    diesel::sql_query("UPDATE audit_events SET subject = 'user:mallory' WHERE seq = 2")
        .execute(&mut *conn)
        .expect("tamper");
    // Behind the verified position: the quick check does not look there.
    assert!(position.verify(&mut conn).expect("verify").is_intact());
    let full = position.verify_full(&mut conn).expect("full");
    assert_eq!(
        full.first_break.as_ref().map(|b| b.seq),
        Some(2),
        "{full:?}"
    );
    let quick = position.verify(&mut conn).expect("verify");
    assert_eq!(
        quick.first_break.map(|b| b.seq),
        Some(2),
        "the break stands"
    );
    assert!(position.is_broken());
}

/// What the running server appended itself stays its evidence: a tail cut right after, before
/// any verification or head record, is caught, and the record is not moved over it.
#[tokio::test]
async fn a_cut_of_what_the_server_just_appended_is_caught() {
    use diesel::prelude::*;
    use steward::db::schema::audit_events;
    let app = spawn_app().await;
    let token = app.admin_token().await;
    // Two more events through the server, nothing verified or recorded since.
    for name in ["one", "two"] {
        let (status, out) = app
            .api(
                &token,
                "POST",
                "/api/v1/tokens",
                serde_json::json!({ "name": name }),
            )
            .await;
        assert_eq!(status, 201, "{out}");
    }
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let head = audit::head(&mut conn).expect("head");
    lift_guards(&mut conn);
    let keep = head.seq - 2;
    diesel::sql_query(format!("DELETE FROM audit_events WHERE seq > {keep}"))
        .execute(&mut *conn)
        .expect("cut");
    let kept: String = audit_events::table
        .find(keep)
        .select(audit_events::hash)
        .first(&mut *conn)
        .expect("kept");
    diesel::sql_query(format!(
        "UPDATE audit_head SET seq = {keep}, hash = '{kept}' WHERE id = 1"
    ))
    .execute(&mut *conn)
    .expect("rewind");
    assert!(
        audit::extend_head_record(&mut conn, &app.settings.storage.dir).is_err(),
        "the record is not moved over the cut"
    );
    let (_, report) = app.get_json(&token, "/api/v1/audit/verify").await;
    let reason = report["first_break"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cut tail"), "{report}");
}
