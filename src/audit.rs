//! The audit log: an append-only, keyed hash chain of every action that changes Steward.
//!
//! Each event's hash is an HMAC-SHA256, under the chain key, of its own fields and the previous
//! event's hash, so a changed, removed or reordered row breaks the chain from that row on, and
//! nobody without the key can recompute the chain after editing it. The key lives outside the
//! database (`audit.key`, or `<storage.dir>/audit.key`, readable by its owner only). The
//! database refuses UPDATE and DELETE on the table (triggers), and `audit_head` keeps the newest
//! hash. A cut tail with a rewound head needs no key, so the head is also written outside the
//! database (the log and `<storage.dir>/audit-head.json`, at each start and every
//! `audit.head_log_secs`); a head that went backwards shows against that record.
//!
//! Chains begun before the key existed keep their plain BLAKE3 hashes: at its next start Steward
//! verifies such a chain and appends an `audit.chain_keyed` event whose HMAC covers the old head,
//! and every event from there on is keyed (`audit_head.keyed_from`).
//!
//! A change and its event are written together through [`with_event`].
//!
//! The chain key is the process's, installed once at start ([`install_key`]) like the metrics
//! recorder: every append in the process signs with it, whichever module reached the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::db::schema::{audit_events, audit_head};
use crate::db::{DbConnection, now};
use crate::error::AppError;

/// The hash the first event chains to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The event that starts the keyed part of a chain begun before the key existed.
pub const CHAIN_KEYED: &str = "audit.chain_keyed";

/// File names under `storage.dir`.
pub const KEY_FILE: &str = "audit.key";
pub const HEAD_FILE: &str = "audit-head.json";

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub seq: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub prev_hash: String,
    pub hash: String,
}

/// What a caller records; the chain fields are filled in by [`append`].
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub actor: String,
    pub action: &'static str,
    pub subject: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl NewEvent {
    pub fn new(actor: impl Into<String>, action: &'static str, subject: impl Into<String>) -> Self {
        NewEvent {
            actor: actor.into(),
            action,
            subject: subject.into(),
            before: None,
            after: None,
        }
    }

    pub fn before(mut self, value: serde_json::Value) -> Self {
        self.before = Some(value);
        self
    }

    pub fn after(mut self, value: serde_json::Value) -> Self {
        self.after = Some(value);
        self
    }
}

/// The chain key: 32 secret bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ChainKey([u8; 32]);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(***)")
    }
}

impl ChainKey {
    pub fn from_hex(text: &str) -> Result<ChainKey, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| "not hex".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must be 32 bytes (64 hex digits)".to_owned())?;
        Ok(ChainKey(key))
    }

    pub fn generate() -> ChainKey {
        use rand::RngCore;
        let mut key = [0_u8; 32];
        rand::rng().fill_bytes(&mut key);
        ChainKey(key)
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        for part in parts {
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// A key for another purpose (hex of HMAC-SHA256 over the purpose), so that other
    /// signatures (approval links) never use the chain's key itself.
    pub fn derive(&self, purpose: &str) -> String {
        self.mac(&[b"derive\0", purpose.as_bytes()])
    }

    /// A short keyed digest of `text` for `purpose`: lets the log say "the same unknown name
    /// again" without recording the name (which may be a mistyped password).
    pub fn label_digest(&self, purpose: &str, text: &str) -> String {
        let full = self.mac(&[purpose.as_bytes(), b"\0", text.as_bytes()]);
        full.chars().take(16).collect()
    }
}

static PROCESS_KEY: OnceLock<ChainKey> = OnceLock::new();

/// Installs the process's chain key. Installing the same key again is fine; another key is an
/// error (one process keeps one chain).
pub fn install_key(key: ChainKey) -> anyhow::Result<()> {
    let installed = PROCESS_KEY.get_or_init(|| key.clone());
    if *installed != key {
        anyhow::bail!("this process already signs the audit chain with another key");
    }
    Ok(())
}

/// The installed key.
pub fn process_key() -> Result<&'static ChainKey, AppError> {
    PROCESS_KEY.get().ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!(
            "the audit chain key is not installed in this process"
        ))
    })
}

/// Where the key came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Config,
    File(PathBuf),
    Generated(PathBuf),
}

/// Loads the chain key: `audit.key` when set, else `<storage_dir>/audit.key`. The file is
/// created (owner-only) only when `may_create`: on a store whose chain has no keyed event yet.
/// A store whose chain is keyed but whose key is gone is an error, never a fresh key (which
/// would make every existing event look forged).
pub fn load_key(
    configured: &str,
    storage_dir: &Path,
    may_create: bool,
) -> anyhow::Result<(ChainKey, KeySource)> {
    if !configured.is_empty() {
        let key = ChainKey::from_hex(configured)
            .map_err(|e| anyhow::anyhow!("configuration key `audit.key`: {e}"))?;
        return Ok((key, KeySource::Config));
    }
    let path = storage_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = ChainKey::from_hex(&text)
                .map_err(|e| anyhow::anyhow!("the audit key file {}: {e}", path.display()))?;
            Ok((key, KeySource::File(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
            let key = ChainKey::generate();
            write_private(&path, &hex::encode(key.0))?;
            Ok((key, KeySource::Generated(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "the audit chain of this store is keyed, but its key is missing: restore {} or set \
             audit.key (STEWARD__AUDIT__KEY) to the key it was made with",
            path.display()
        ),
        Err(e) => anyhow::bail!("reading the audit key {}: {e}", path.display()),
    }
}

/// Writes a file readable by its owner only (0600), replacing it atomically.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(contents.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("writing {}: {}", path.display(), e.error))?;
    Ok(())
}

impl AuditEvent {
    fn canonical(&self) -> String {
        serde_json::json!([
            self.seq,
            self.actor,
            self.action,
            self.subject,
            self.before_json,
            self.after_json,
            self.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            self.prev_hash,
        ])
        .to_string()
    }

    /// The plain BLAKE3 hash of chains made before the key (events before `keyed_from`).
    pub fn legacy_hash(&self) -> String {
        blake3::hash(self.canonical().as_bytes())
            .to_hex()
            .to_string()
    }

    /// HMAC-SHA256 under the chain key of the canonical JSON array of the event's fields and
    /// the previous hash.
    pub fn keyed_hash(&self, key: &ChainKey) -> String {
        key.mac(&[self.canonical().as_bytes()])
    }

    fn expected_hash(&self, key: &ChainKey, keyed_from: Option<i64>) -> String {
        match keyed_from {
            Some(from) if self.seq >= from => self.keyed_hash(key),
            _ => self.legacy_hash(),
        }
    }
}

/// The chain's head row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
    pub keyed_from: Option<i64>,
}

pub fn head(conn: &mut DbConnection) -> Result<Head, AppError> {
    let (seq, hash, keyed_from) = audit_head::table
        .find(1)
        .select((audit_head::seq, audit_head::hash, audit_head::keyed_from))
        .first(conn)?;
    Ok(Head {
        seq,
        hash,
        keyed_from,
    })
}

/// The newest event this process appended, once its transaction committed: a head behind it,
/// or another hash at its seq, is a cut or a rewrite, whatever the head record says (the record
/// is written only now and then, so without this a DB-only attacker could cut what the process
/// appended since).
/// Kept per chain (named by its first event's hash), as one process may open several stores.
static LAST_APPENDED: Mutex<BTreeMap<String, (i64, String)>> = Mutex::new(BTreeMap::new());

/// A chain's name: its first event's hash.
fn chain_id(conn: &mut DbConnection) -> Result<Option<String>, AppError> {
    Ok(audit_events::table
        .find(1)
        .select(audit_events::hash)
        .first(conn)
        .optional()?)
}

fn note_appended(conn: &mut DbConnection, row: &AuditEvent) {
    let Ok(Some(chain)) = chain_id(conn) else {
        return;
    };
    if let Ok(mut last) = LAST_APPENDED.lock() {
        let newer = last.get(&chain).is_none_or(|(seq, _)| *seq < row.seq);
        if newer {
            last.insert(chain, (row.seq, row.hash.clone()));
        }
    }
}

/// See [`LAST_APPENDED`].
pub fn last_appended(conn: &mut DbConnection) -> Result<Option<(i64, String)>, AppError> {
    let Some(chain) = chain_id(conn)? else {
        return Ok(None);
    };
    Ok(LAST_APPENDED
        .lock()
        .ok()
        .and_then(|last| last.get(&chain).cloned()))
}

/// Of two verified positions, the one further along.
fn furthest(a: Option<(i64, String)>, b: Option<(i64, String)>) -> Option<(i64, String)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Appends one event to the chain, atomically.
pub fn append(conn: &mut DbConnection, event: NewEvent) -> Result<AuditEvent, AppError> {
    let row = conn.transaction(|conn| {
        lock_head(conn)?;
        append_locked(conn, event)
    })?;
    note_appended(conn, &row);
    Ok(row)
}

/// Runs a change and records the event it returns, in one transaction: both land or neither.
///
/// The transaction begins by locking the chain head, a write, so that SQLite takes its write lock
/// before `change` reads anything and concurrent writers queue instead of failing.
pub fn with_event<T>(
    conn: &mut DbConnection,
    change: impl FnOnce(&mut DbConnection) -> Result<(T, NewEvent), AppError>,
) -> Result<T, AppError> {
    let (value, row) = conn.transaction(|conn| {
        lock_head(conn)?;
        let (value, event) = change(conn)?;
        let row = append_locked(conn, event)?;
        Ok::<_, AppError>((value, row))
    })?;
    note_appended(conn, &row);
    Ok(value)
}

/// As [`with_event`], for a change that may have nothing to record (a repeat of what is
/// already recorded): the same lock and transaction, and an event only when `change` returns one.
pub fn with_optional_event<T>(
    conn: &mut DbConnection,
    change: impl FnOnce(&mut DbConnection) -> Result<(T, Option<NewEvent>), AppError>,
) -> Result<T, AppError> {
    let (value, row) = conn.transaction(|conn| {
        lock_head(conn)?;
        let (value, event) = change(conn)?;
        let row = event.map(|e| append_locked(conn, e)).transpose()?;
        Ok::<_, AppError>((value, row))
    })?;
    if let Some(row) = row {
        note_appended(conn, &row);
    }
    Ok(value)
}

/// As [`with_event`], for a change that records any number of events (none included), all
/// in its one transaction: `change` pushes them in order; they are appended after it returns,
/// and remembered as appended only once the transaction has committed.
pub fn with_events<T>(
    conn: &mut DbConnection,
    change: impl FnOnce(&mut DbConnection, &mut Vec<NewEvent>) -> Result<T, AppError>,
) -> Result<T, AppError> {
    let (value, last) = conn.transaction(|conn| {
        lock_head(conn)?;
        let mut events = Vec::new();
        let value = change(conn, &mut events)?;
        let mut last = None;
        for event in events {
            last = Some(append_locked(conn, event)?);
        }
        Ok::<_, AppError>((value, last))
    })?;
    if let Some(row) = last {
        note_appended(conn, &row);
    }
    Ok(value)
}

/// Writing the head row takes the write lock on both backends, so concurrent appenders queue
/// here and each sees the head the previous one left.
fn lock_head(conn: &mut DbConnection) -> Result<(), AppError> {
    diesel::update(audit_head::table.find(1))
        .set(audit_head::seq.eq(audit_head::seq))
        .execute(conn)?;
    Ok(())
}

fn append_locked(conn: &mut DbConnection, event: NewEvent) -> Result<AuditEvent, AppError> {
    let key = process_key()?;
    let head = head(conn)?;
    let mut row = AuditEvent {
        seq: head.seq + 1,
        actor: event.actor,
        action: event.action.to_owned(),
        subject: event.subject,
        before_json: event.before.map(|v| v.to_string()),
        after_json: event.after.map(|v| v.to_string()),
        created_at: now(),
        prev_hash: head.hash,
        hash: String::new(),
    };
    // A new store's first event starts the keyed chain. A chain with events but no keyed part
    // is keyed only by `prepare`'s `audit.chain_keyed` event (after verifying it): an event
    // appended to it here would start a keyed part with no marker, which no adoption can mend.
    let keyed_from = match head.keyed_from {
        Some(k) => k,
        None if head.seq == 0 => row.seq,
        None => {
            return Err(AppError::Conflict(
                "the audit chain has no keyed part yet: nothing is appended to it until it is \
                 keyed (a start with a key it generates, or `steward audit adopt`)"
                    .into(),
            ));
        }
    };
    row.hash = row.expected_hash(key, Some(keyed_from));
    diesel::insert_into(audit_events::table)
        .values(&row)
        .execute(conn)?;
    diesel::update(audit_head::table.find(1))
        .set((
            audit_head::seq.eq(row.seq),
            audit_head::hash.eq(&row.hash),
            audit_head::keyed_from.eq(Some(keyed_from)),
        ))
        .execute(conn)?;
    metrics::counter!(crate::telemetry::AUDIT_EVENTS_TOTAL, "action" => event.action).increment(1);
    Ok(row)
}

/// Newest events first, optionally only those older than `before_seq`.
pub fn list(
    conn: &mut DbConnection,
    limit: i64,
    before_seq: Option<i64>,
) -> Result<Vec<AuditEvent>, AppError> {
    let mut query = audit_events::table
        .select(AuditEvent::as_select())
        .order(audit_events::seq.desc())
        .limit(limit.clamp(1, 1000))
        .into_boxed();
    if let Some(before) = before_seq {
        query = query.filter(audit_events::seq.lt(before));
    }
    Ok(query.load(conn)?)
}

pub fn count(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(audit_events::table.count().get_result(conn)?)
}

/// The newest event with this action, if any.
pub fn latest_with_action(
    conn: &mut DbConnection,
    action: &str,
) -> Result<Option<AuditEvent>, AppError> {
    Ok(audit_events::table
        .filter(audit_events::action.eq(action))
        .order(audit_events::seq.desc())
        .select(AuditEvent::as_select())
        .first(conn)
        .optional()?)
}

/// Actions whose details only admins read: configuration, users, tokens, logins and the audit
/// chain's own events (a break's reason). Others see that such an event happened, and when,
/// but not by whom, on what, nor its before/after.
pub fn is_admin_only(action: &str) -> bool {
    ["config.", "user.", "token.", "auth.", "audit."]
        .iter()
        .any(|prefix| action.starts_with(prefix))
}

/// What a non-admin reads in place of an admin-only event's actor and subject.
pub const REDACTED: &str = "(admin only)";

/// Leaves out who and what of admin-only events unless the reader is an admin: before/after,
/// subject and actor (which name users: a failed login's subject would otherwise tell an
/// existing name from an unknown one). The action and time stay.
pub fn redact_for(events: &mut [AuditEvent], admin: bool) {
    for e in events.iter_mut() {
        redact(e, admin);
    }
}

/// [`redact_for`] for one event; says whether anything was left out.
pub fn redact(e: &mut AuditEvent, admin: bool) -> bool {
    if admin || !is_admin_only(&e.action) {
        return false;
    }
    e.before_json = None;
    e.after_json = None;
    e.subject = REDACTED.to_owned();
    e.actor = REDACTED.to_owned();
    true
}

/// Where the chain first breaks.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Events known intact, from the first: up to the head when the chain holds, else up to
    /// the break.
    pub events_checked: u64,
    /// Of those, the events hashed by this verification (the rest were verified before and
    /// their last hash still holds).
    pub events_hashed: u64,
    /// The head this verification read first: the snapshot it checked up to.
    pub head_seq: i64,
    #[serde(skip)]
    pub head_hash: String,
    pub first_break: Option<Break>,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Walks the whole chain in order and reports the first row that does not hold.
pub fn verify(conn: &mut DbConnection) -> Result<Verification, AppError> {
    verify_since(conn, None)
}

/// Verifies the chain from a position verified before (`(seq, hash)`): the event at `seq`
/// must still carry `hash` (else the chain was cut and regrown, or rewritten: a break), the
/// head may not be behind it (a cut tail), and every event after it is checked. `None` checks
/// from the start.
///
/// The head is read first and only events up to it are walked: events appended meanwhile
/// are left for the next verification, so concurrent appends never read as tampering.
pub fn verify_since(
    conn: &mut DbConnection,
    from: Option<(i64, String)>,
) -> Result<Verification, AppError> {
    const PAGE: i64 = 1000;
    let key = process_key()?;
    let head = head(conn)?;
    let broken = |seq: i64, checked: u64, hashed: u64, reason: String| Verification {
        events_checked: checked,
        events_hashed: hashed,
        head_seq: head.seq,
        head_hash: head.hash.clone(),
        first_break: Some(Break { seq, reason }),
    };
    if let Some(k) = head.keyed_from {
        if k > head.seq && head.seq > 0 {
            return Ok(broken(
                head.seq,
                0,
                0,
                format!("the chain is said to be keyed from event {k}, past its head"),
            ));
        }
        if k > 1 && k <= head.seq {
            let marker: Option<(String, Option<String>)> = audit_events::table
                .find(k)
                .select((audit_events::action, audit_events::after_json))
                .first(conn)
                .optional()?;
            let legacy_events = marker
                .as_ref()
                .and_then(|(_, after)| after.as_deref())
                .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                .and_then(|a| a.get("legacy_events").and_then(|n| n.as_i64()));
            let is_marker = marker.as_ref().map(|(action, _)| action.as_str()) == Some(CHAIN_KEYED);
            if !is_marker || legacy_events != Some(k - 1) {
                return Ok(broken(
                    k,
                    0,
                    0,
                    format!(
                        "the chain is said to be keyed from event {k}, which is no {CHAIN_KEYED} \
                         event over the {} events before it",
                        k - 1
                    ),
                ));
            }
        }
    }
    let (mut expected_seq, mut prev_hash) = match from {
        Some((seq, _)) if seq > head.seq => {
            return Ok(broken(
                head.seq + 1,
                u64::try_from(head.seq).unwrap_or(0),
                0,
                format!(
                    "the log ends at event {} but it had been verified up to event {seq} (a cut tail)",
                    head.seq
                ),
            ));
        }
        Some((seq, hash)) => {
            let stored: Option<String> = audit_events::table
                .find(seq)
                .select(audit_events::hash)
                .first(conn)
                .optional()?;
            if stored.as_deref() != Some(hash.as_str()) {
                return Ok(broken(
                    seq,
                    0,
                    0,
                    format!(
                        "event {seq} no longer has the hash it was verified with (the chain was \
                         cut and regrown, or rewritten)"
                    ),
                ));
            }
            (seq + 1, hash)
        }
        None => (1, GENESIS_HASH.to_owned()),
    };
    let before = u64::try_from(expected_seq - 1).unwrap_or(0);
    let mut hashed = 0_u64;
    while expected_seq <= head.seq {
        let rows: Vec<AuditEvent> = audit_events::table
            .filter(audit_events::seq.ge(expected_seq))
            .filter(audit_events::seq.le(head.seq))
            .order(audit_events::seq.asc())
            .limit(PAGE)
            .select(AuditEvent::as_select())
            .load(conn)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if row.seq != expected_seq {
                return Ok(broken(
                    expected_seq,
                    before + hashed,
                    hashed,
                    format!(
                        "event {expected_seq} is missing (next present is {})",
                        row.seq
                    ),
                ));
            }
            if row.prev_hash != prev_hash {
                return Ok(broken(
                    row.seq,
                    before + hashed,
                    hashed,
                    "prev_hash does not match the previous event's hash".into(),
                ));
            }
            if row.expected_hash(key, head.keyed_from) != row.hash {
                return Ok(broken(
                    row.seq,
                    before + hashed,
                    hashed,
                    "contents do not match the stored hash (the row was altered, or hashed \
                     without the chain key)"
                        .into(),
                ));
            }
            prev_hash = row.hash;
            expected_seq += 1;
            hashed += 1;
        }
    }
    if expected_seq - 1 != head.seq || prev_hash != head.hash {
        return Ok(broken(
            expected_seq,
            before + hashed,
            hashed,
            format!(
                "the log ends at event {} but its head records event {}",
                expected_seq - 1,
                head.seq
            ),
        ));
    }
    Ok(Verification {
        events_checked: before + hashed,
        events_hashed: hashed,
        head_seq: head.seq,
        head_hash: head.hash,
        first_break: None,
    })
}

/// The server's running verification: the furthest position verified intact (so a page view
/// re-hashes only what was appended since, and a head that falls behind it is a cut), checked
/// each time against the head record outside the database. Every verification sets
/// `steward_audit_chain_intact`.
pub struct VerifiedPosition {
    state: Mutex<Position>,
    storage_dir: PathBuf,
}

#[derive(Default)]
struct Position {
    /// The furthest (seq, hash) verified intact.
    verified: Option<(i64, String)>,
    /// The last break found; it stands until a full verification finds the chain intact, so a
    /// quick check of the newest events can't hide what the scheduled full one found.
    broken: Option<Break>,
}

impl VerifiedPosition {
    /// `broken`: a break found already (at start, under `--allow-broken-audit`); it stands
    /// until a full verification finds the chain intact.
    pub fn new(storage_dir: &Path, broken: Option<Break>) -> Self {
        Self {
            state: Mutex::new(Position {
                verified: None,
                broken,
            }),
            storage_dir: storage_dir.to_owned(),
        }
    }

    /// A break is known and not cleared by a full verification since.
    pub fn is_broken(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.broken.is_some())
            .unwrap_or(true)
    }

    /// Verifies from the furthest position verified intact and moves it forward when the
    /// chain holds; a break leaves the position where it was, so it stays visible, and a break
    /// found before is reported until [`Self::verify_full`] finds the chain intact.
    pub fn verify(&self, conn: &mut DbConnection) -> Result<Verification, AppError> {
        let from = furthest(
            self.state.lock().ok().and_then(|g| g.verified.clone()),
            last_appended(conn)?,
        );
        let report = verify_since(conn, from)?;
        self.finish(conn, report, false)
    }

    /// Verifies the whole chain from the first event, and also that it still holds the
    /// furthest position verified before (a scheduled check: rows altered behind the
    /// position show here, not in [`Self::verify`]).
    pub fn verify_full(&self, conn: &mut DbConnection) -> Result<Verification, AppError> {
        let from = furthest(
            self.state.lock().ok().and_then(|g| g.verified.clone()),
            last_appended(conn)?,
        );
        let mut report = verify_since(conn, None)?;
        if report.is_intact() && from.is_some() {
            let held = verify_since(conn, from)?;
            if !held.is_intact() {
                report.first_break = held.first_break;
            }
        }
        self.finish(conn, report, true)
    }

    fn finish(
        &self,
        conn: &mut DbConnection,
        mut report: Verification,
        full: bool,
    ) -> Result<Verification, AppError> {
        if report.is_intact() {
            report.first_break = check_head_record(conn, &self.storage_dir)?;
        }
        if let Ok(mut state) = self.state.lock() {
            match &report.first_break {
                Some(b) => {
                    tracing::error!(event = b.seq, reason = %b.reason, "THE AUDIT LOG IS BROKEN");
                    state.broken = Some(b.clone());
                }
                None => {
                    // Only forward: a slower verification that read an older head does not
                    // move the position back.
                    let newer = state
                        .verified
                        .as_ref()
                        .is_none_or(|(seq, _)| *seq <= report.head_seq);
                    if newer {
                        state.verified = Some((report.head_seq, report.head_hash.clone()));
                    }
                    if full {
                        state.broken = None;
                    } else if let Some(b) = &state.broken {
                        report.first_break = Some(b.clone());
                    }
                }
            }
        }
        let intact = report.is_intact();
        metrics::gauge!(crate::telemetry::AUDIT_CHAIN_INTACT).set(if intact { 1.0 } else { 0.0 });
        Ok(report)
    }
}

/// The head as last written outside the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadRecord {
    pub seq: i64,
    pub hash: String,
    pub keyed_from: Option<i64>,
    pub at: chrono::NaiveDateTime,
}

/// The head record, if there is one. A record that can't be read (another owner's file, say)
/// or parsed is a break: it must not pass for "no record" and switch the check off. Reasons name
/// the file, not its path.
fn read_head_record(storage_dir: &Path) -> Result<Option<HeadRecord>, Break> {
    let text = match std::fs::read_to_string(storage_dir.join(HEAD_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Break {
                seq: 0,
                reason: format!("{HEAD_FILE} can't be read ({})", e.kind()),
            });
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| Break {
        seq: 0,
        reason: format!("{HEAD_FILE} is not a head record: {e}"),
    })
}

/// Moves the head record forward to the current head after checking that the chain from the
/// recorded position to the head holds: what a command that appended does before it exits. A
/// store without a record is verified whole first. Nothing is written when the head did not
/// move past the record, or when the chain does not hold (the record stays as evidence).
pub fn extend_head_record(conn: &mut DbConnection, storage_dir: &Path) -> Result<(), AppError> {
    let record = read_head_record(storage_dir)
        .map_err(|b| AppError::Internal(anyhow::anyhow!("the audit head record: {}", b.reason)))?;
    let from = record.as_ref().map(|r| (r.seq, r.hash.clone()));
    let now = head(conn)?;
    if record.as_ref().is_some_and(|r| r.seq == now.seq) {
        return Ok(());
    }
    let report = verify_since(conn, from)?;
    // What this process appended must still be there too.
    let mine = match last_appended(conn)? {
        Some(position) => verify_since(conn, Some(position))?.first_break,
        None => None,
    };
    let broken = match report.first_break.or(mine) {
        Some(b) => Some(b),
        None => check_head_record(conn, storage_dir)?,
    };
    if let Some(b) = broken {
        return Err(AppError::Internal(anyhow::anyhow!(
            "the audit log is broken at event {}: {}; its head record is kept",
            b.seq,
            b.reason
        )));
    }
    write_head_record(conn, storage_dir).map(|_| ())
}

/// Compares the store with the head recorded in `<storage_dir>/audit-head.json`: the log may
/// have grown since, but the recorded event must still be there with the same hash.
pub fn check_head_record(
    conn: &mut DbConnection,
    storage_dir: &Path,
) -> Result<Option<Break>, AppError> {
    let record = match read_head_record(storage_dir) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(b) => return Ok(Some(b)),
    };
    let now = head(conn)?;
    if now.seq < record.seq {
        return Ok(Some(Break {
            seq: now.seq + 1,
            reason: format!(
                "the log ends at event {} but it had reached event {} on {} UTC (a cut tail)",
                now.seq, record.seq, record.at
            ),
        }));
    }
    if record.keyed_from.is_some() && now.keyed_from != record.keyed_from {
        // A keyed part never moves or goes away (clearing it would let plain hashes pass).
        return Ok(Some(Break {
            seq: record.keyed_from.unwrap_or(0),
            reason: "the chain's keyed part does not start where it did".into(),
        }));
    }
    if record.seq > 0 {
        let stored: Option<String> = audit_events::table
            .find(record.seq)
            .select(audit_events::hash)
            .first(conn)
            .optional()?;
        if stored.as_deref() != Some(record.hash.as_str()) {
            return Ok(Some(Break {
                seq: record.seq,
                reason: format!(
                    "event {} no longer has the hash recorded on {} UTC",
                    record.seq, record.at
                ),
            }));
        }
    }
    Ok(None)
}

/// Writes the head to the log and to `<storage_dir>/audit-head.json`, after checking the store
/// against the record already there: a record is never moved backwards or to another keyed
/// part, so the evidence of a cut tail or a downgraded chain stays until someone who can
/// write the storage directory moves it aside.
pub fn record_head(conn: &mut DbConnection, storage_dir: &Path) -> Result<Head, AppError> {
    if let Some(b) = check_head_record(conn, storage_dir)? {
        return Err(AppError::Internal(anyhow::anyhow!(
            "the audit head record was not updated: the log is broken at event {}: {}",
            b.seq,
            b.reason
        )));
    }
    let head = write_head_record(conn, storage_dir)?;
    tracing::info!(
        audit_head_seq = head.seq,
        audit_head_hash = %head.hash,
        "audit chain head"
    );
    Ok(head)
}

/// Writes the current head to `<storage_dir>/audit-head.json` (the caller checked it).
fn write_head_record(conn: &mut DbConnection, storage_dir: &Path) -> Result<Head, AppError> {
    let head = head(conn)?;
    let record = HeadRecord {
        seq: head.seq,
        hash: head.hash.clone(),
        keyed_from: head.keyed_from,
        at: now(),
    };
    let text = serde_json::to_string(&record).map_err(|e| AppError::Internal(e.into()))?;
    write_private(&storage_dir.join(HEAD_FILE), &text).map_err(AppError::Internal)?;
    Ok(head)
}

/// What [`prepare`] found.
#[derive(Debug)]
pub struct Prepared {
    pub source: KeySource,
    /// The event that keyed a chain begun before the key, when this start keyed it.
    pub keyed_now: Option<i64>,
    /// Where the chain is broken, if it is (only with a full check).
    pub broken: Option<Break>,
}

/// How a process opens the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The server's start: keys a chain begun before the key, verifies the whole chain and
    /// compares it with the head record.
    Start,
    /// A command that appends events: keys a chain begun before the key.
    Command,
    /// A command that only reads (`steward audit verify`): creates no key file and appends
    /// nothing; a chain begun before the key is verified with its plain hashes.
    ReadOnly,
    /// `steward audit adopt`: keys a chain begun before the key with a key that existed before
    /// (configured, or a key file): what a start does only with a key it generated itself.
    Adopt,
}

/// Loads and installs the chain key, keys a chain begun before the key, and on
/// [`Opening::Start`] verifies the whole chain and compares it with the recorded head.
///
/// A chain without `keyed_from` is either one begun before the key existed (an upgrade) or a
/// keyed chain rewritten with plain hashes by someone who has the database but not the key (a
/// downgrade). It is verified, then keyed automatically only when nothing says it was ever
/// keyed: no head record says so, and the key was generated by this very start (no key
/// existed). With a key that existed before (configured, or a key file) it is a break until a
/// person adopts it with `steward audit adopt` ([`Opening::Adopt`]).
pub fn prepare(
    conn: &mut DbConnection,
    configured_key: &str,
    storage_dir: &Path,
    opening: Opening,
    actor: &str,
) -> anyhow::Result<Prepared> {
    let head = head(conn)?;
    let unkeyed = head.keyed_from.is_none();
    let read_only = opening == Opening::ReadOnly;
    let (key, source) = match load_key(configured_key, storage_dir, unkeyed && !read_only) {
        Ok(found) => found,
        // Reading a chain that was never keyed needs no key; one is made up for this
        // process and never written or used.
        Err(_) if read_only && unkeyed => {
            (ChainKey::generate(), KeySource::Generated(PathBuf::new()))
        }
        Err(e) => return Err(e),
    };
    install_key(key.clone())?;
    let mut keyed_now = None;
    if unkeyed && head.seq > 0 && !read_only {
        // Verify the unkeyed chain, and that it was never recorded keyed, before vouching
        // for it with the key.
        let mut broken = verify(conn)?.first_break;
        if broken.is_none() {
            broken = check_head_record(conn, storage_dir)?;
        }
        let key_is_new = matches!(source, KeySource::Generated(_));
        if broken.is_none() && !key_is_new && opening != Opening::Adopt {
            broken = Some(Break {
                seq: 1,
                reason: "the chain has no keyed part, but a chain key existed before this \
                         start: either a keyed chain was rewritten without its key, or a chain \
                         from before the key is being upgraded; after checking which, adopt it \
                         with `steward audit adopt`"
                    .into(),
            });
        }
        if broken.is_some() {
            return Ok(Prepared {
                source,
                keyed_now: None,
                broken,
            });
        }
        let event = conn.transaction(|conn| {
            lock_head(conn)?;
            let head = self::head(conn)?;
            if head.keyed_from.is_some() {
                return Ok::<_, AppError>(None);
            }
            let seq = head.seq + 1;
            diesel::update(audit_head::table.find(1))
                .set(audit_head::keyed_from.eq(Some(seq)))
                .execute(conn)?;
            let event = NewEvent::new(actor, CHAIN_KEYED, "audit").after(serde_json::json!({
                "legacy_events": head.seq,
                "legacy_head": head.hash,
            }));
            append_locked(conn, event).map(Some)
        })?;
        if let Some(row) = &event {
            note_appended(conn, row);
        }
        keyed_now = event.map(|row| row.seq);
    }
    let mut broken = None;
    if opening == Opening::Start {
        broken = verify(conn)?.first_break;
        if broken.is_none() {
            broken = check_head_record(conn, storage_dir)?;
        }
    }
    Ok(Prepared {
        source,
        keyed_now,
        broken,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hashes_depend_on_the_key_and_digests_hide_names() {
        let event = AuditEvent {
            seq: 1,
            actor: "system".into(),
            action: "user.create".into(),
            subject: "user:admin".into(),
            before_json: None,
            after_json: Some("{}".into()),
            created_at: chrono::NaiveDateTime::default(),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        let a = ChainKey::from_hex(&"11".repeat(32)).expect("key");
        let b = ChainKey::from_hex(&"22".repeat(32)).expect("key");
        assert_ne!(event.keyed_hash(&a), event.keyed_hash(&b));
        assert_ne!(event.keyed_hash(&a), event.legacy_hash());
        assert_eq!(event.keyed_hash(&a).len(), 64);
        let digest = a.label_digest("login-name", "hunter2-typed-as-name");
        assert_eq!(digest.len(), 16);
        assert!(!digest.contains("hunter2"));
        assert!(ChainKey::from_hex("abc").is_err());
        assert!(ChainKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_missing_key_of_a_keyed_chain_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("dir");
        let err = load_key("", dir.path(), false).expect_err("refused");
        assert!(err.to_string().contains("missing"), "{err}");
        let (_, source) = load_key("", dir.path(), true).expect("generated");
        assert!(matches!(source, KeySource::Generated(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (_, source) = load_key("", dir.path(), false).expect("read back");
        assert!(matches!(source, KeySource::File(_)));
    }
}
