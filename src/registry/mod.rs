//! The model registry, as MLflow's: a registered model has versions 1..n, each linking the run
//! that trained it, the dataset version it learned from, its metrics and the hash of its
//! artifact. A version's stage is None, Staging, Production or Archived; the store allows one
//! Production version per model (a partial unique index). Every transition is kept with who,
//! why and when, and lands in the audit log in the same transaction.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, NewEvent};
use crate::data::blob::BlobStore;
use crate::data::catalog;
use crate::db::schema::{model_versions, registered_models, stage_transitions};
use crate::db::{DbConnection, now};
use crate::error::AppError;
use crate::ml::TrainedModel;
use crate::tracking::{self, FINISHED, Run};

pub mod external;

/// The artifact a model version serves from.
pub const MODEL_ARTIFACT: &str = "model.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Stage::None),
            "staging" => Ok(Stage::Staging),
            "production" => Ok(Stage::Production),
            "archived" => Ok(Stage::Archived),
            other => Err(format!(
                "unknown stage `{other}`: use None, Staging, Production or Archived"
            )),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = model_versions)]
pub struct ModelVersion {
    #[serde(skip)]
    pub id: String,
    pub model: String,
    pub version: i32,
    pub run_id: String,
    pub model_kind: String,
    pub dataset: String,
    pub dataset_version: i32,
    pub dataset_hash: String,
    pub artifact_hash: String,
    #[serde(skip)]
    pub metrics_json: String,
    pub stage: String,
    pub created_by: String,
    pub created_at: chrono::NaiveDateTime,
    /// Where MLflow's client said the model came from (`runs:/<id>/model`); `None` for
    /// versions Steward registered itself.
    pub source: Option<String>,
    pub description: Option<String>,
}

impl ModelVersion {
    /// The start of the run's id, to tell runs apart at a glance.
    pub fn short_run_id(&self) -> &str {
        self.run_id.get(..8).unwrap_or(&self.run_id)
    }

    /// The run's summary metrics when it was registered (series left out, also those a
    /// version registered before the series were renamed still carries).
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let mut all: BTreeMap<String, f64> =
            serde_json::from_str(&self.metrics_json).unwrap_or_default();
        all.retain(|name, _| !tracking::is_series(name));
        all
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = stage_transitions)]
pub struct StageTransition {
    pub seq: i64,
    pub model: String,
    pub version: i32,
    pub from_stage: String,
    pub to_stage: String,
    pub actor: String,
    pub reason: String,
    pub created_at: chrono::NaiveDateTime,
    /// Part of a rollback: the re-promotion, or the archiving of the version rolled back from.
    pub rollback: bool,
}

/// The next version number of `model`: one past every number it ever used, also those of
/// deleted versions (their history stays), so a number always means one version.
pub(crate) fn next_version(conn: &mut DbConnection, model: &str) -> Result<i32, AppError> {
    let max: Option<i32> = model_versions::table
        .filter(model_versions::model.eq(model))
        .select(diesel::dsl::max(model_versions::version))
        .first(conn)?;
    let history: Option<i32> = stage_transitions::table
        .filter(stage_transitions::model.eq(model))
        .select(diesel::dsl::max(stage_transitions::version))
        .first(conn)?;
    let deleted: Option<i32> = registered_models::table
        .find(model)
        .select(registered_models::deleted_up_to)
        .first(conn)
        .optional()?;
    Ok(max
        .unwrap_or(0)
        .max(history.unwrap_or(0))
        .max(deleted.unwrap_or(0))
        + 1)
}

pub(crate) fn ensure_model(conn: &mut DbConnection, name: &str) -> Result<(), AppError> {
    let exists: i64 = registered_models::table
        .filter(registered_models::name.eq(name))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(registered_models::table)
            .values((
                registered_models::name.eq(name),
                registered_models::created_at.eq(now()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Registers a finished run's model as the next version of `model`, in stage None. The run
/// must be finished and have its model artifact; the version row, its first transition and the
/// audit event land together or not at all.
pub fn register(
    conn: &mut DbConnection,
    model: &str,
    run: &Run,
    actor: &str,
) -> Result<ModelVersion, AppError> {
    register_with(conn, model, run, actor, None, None)
}

/// [`register`], with MLflow's `source` and `description` recorded in the same transaction.
pub fn register_with(
    conn: &mut DbConnection,
    model: &str,
    run: &Run,
    actor: &str,
    source: Option<&str>,
    description: Option<&str>,
) -> Result<ModelVersion, AppError> {
    if run.status != FINISHED {
        return Err(AppError::Conflict(format!(
            "run {} is {}; only a finished run can be registered",
            run.id, run.status
        )));
    }
    let artifact = tracking::artifacts_of(conn, &run.id)?
        .into_iter()
        .find(|a| a.name == MODEL_ARTIFACT)
        .ok_or_else(|| {
            AppError::Conflict(format!("run {} has no {MODEL_ARTIFACT} artifact", run.id))
        })?;
    let kind = run.model_kind.clone();
    insert_version(
        conn,
        model,
        run,
        &kind,
        &artifact.hash,
        source,
        description,
        actor,
    )
}

/// Writes `run`'s model as the next version of `model` (kind `kind`, artifact `artifact_hash`,
/// the run's summary metrics), in stage None, with its `model.register` event, in one
/// transaction. A run is registered once.
#[expect(
    clippy::too_many_arguments,
    reason = "one version row's parts, all stored"
)]
pub(crate) fn insert_version(
    conn: &mut DbConnection,
    model: &str,
    run: &Run,
    kind: &str,
    artifact_hash: &str,
    source: Option<&str>,
    description: Option<&str>,
    actor: &str,
) -> Result<ModelVersion, AppError> {
    let metrics = tracking::latest_metrics(conn, std::slice::from_ref(&run.id))?
        .remove(&run.id)
        .unwrap_or_default();
    audit::with_event(conn, |conn| {
        ensure_model(conn, model)?;
        let taken: i64 = model_versions::table
            .filter(model_versions::run_id.eq(&run.id))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(AppError::Conflict(format!(
                "run {} is already registered (a run is registered once)",
                run.id
            )));
        }
        let version = ModelVersion {
            id: uuid::Uuid::new_v4().to_string(),
            model: model.to_owned(),
            version: next_version(conn, model)?,
            run_id: run.id.clone(),
            model_kind: kind.to_owned(),
            dataset: run.dataset.clone(),
            dataset_version: run.dataset_version,
            dataset_hash: run.dataset_hash.clone(),
            artifact_hash: artifact_hash.to_owned(),
            metrics_json: serde_json::to_string(&metrics)
                .map_err(|e| AppError::Internal(e.into()))?,
            stage: Stage::None.as_str().to_owned(),
            created_by: actor.to_owned(),
            created_at: now(),
            source: source.map(str::to_owned),
            description: description.map(str::to_owned),
        };
        diesel::insert_into(model_versions::table)
            .values(&version)
            .execute(conn)?;
        let event = NewEvent::new(
            actor,
            "model.register",
            format!("model:{model}/{}", version.version),
        )
        .after(json!({
            "run_id": version.run_id,
            "model_kind": version.model_kind,
            "dataset": version.dataset,
            "dataset_version": version.dataset_version,
            "artifact_hash": version.artifact_hash,
            "source": source.map(|s| crate::error::bounded(s, 200)),
        }));
        Ok((version, event))
    })
}

/// What a transition changed.
#[derive(Debug, Clone, Serialize)]
pub struct TransitionOutcome {
    pub version: ModelVersion,
    pub from_stage: String,
    /// The version that left Production to make room, if any.
    pub archived: Option<i32>,
}

#[expect(
    clippy::too_many_arguments,
    reason = "one stage change's parts, all stored"
)]
pub(crate) fn record(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
    from: &str,
    to: Stage,
    actor: &str,
    reason: &str,
    rollback: bool,
) -> Result<(), AppError> {
    let max: Option<i64> = stage_transitions::table
        .select(diesel::dsl::max(stage_transitions::seq))
        .first(conn)?;
    diesel::update(
        model_versions::table
            .filter(model_versions::model.eq(model))
            .filter(model_versions::version.eq(version)),
    )
    .set(model_versions::stage.eq(to.as_str()))
    .execute(conn)?;
    diesel::insert_into(stage_transitions::table)
        .values(StageTransition {
            seq: max.unwrap_or(0) + 1,
            model: model.to_owned(),
            version,
            from_stage: from.to_owned(),
            to_stage: to.as_str().to_owned(),
            actor: actor.to_owned(),
            reason: reason.to_owned(),
            created_at: now(),
            rollback,
        })
        .execute(conn)?;
    Ok(())
}

/// Longest reason a stage change (or a training's promotion) may give, in characters: it is
/// stored in the history and the audit log.
pub const MAX_REASON_CHARS: usize = 500;

/// Refuses a reason longer than [`MAX_REASON_CHARS`] (422 naming `reason`).
pub fn check_reason(reason: &str) -> Result<(), AppError> {
    if reason
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(AppError::validation(
            "reason",
            "must not hold control characters",
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::validation(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Who asks for a stage change, why, and whether they override the data gate.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub actor: &'a str,
    pub reason: &'a str,
    /// Promote even though the version was trained on data whose validation failed; needs a
    /// reason, and the audit event records the failures and the override.
    pub force: bool,
}

/// What the latest validation of the dataset version a model version was trained on failed,
/// as labels (empty when it passed or was never recorded).
pub fn data_failures(
    conn: &mut DbConnection,
    version: &ModelVersion,
) -> Result<Vec<String>, AppError> {
    let Some(run) =
        catalog::latest_runs_by_version(conn, &version.dataset)?.remove(&version.dataset_version)
    else {
        return Ok(Vec::new());
    };
    if run.success {
        return Ok(Vec::new());
    }
    Ok(run
        .result()?
        .results
        .iter()
        .filter(|r| !r.success)
        .map(|r| r.label())
        .collect())
}

/// The data gate of a move into Production (a promotion or a rollback): a version trained on
/// data whose validation failed needs `change.force` and a reason, else 409 naming the
/// failures. Answers what the audit event records (`null` when the data passed).
fn data_gate(
    conn: &mut DbConnection,
    target: &ModelVersion,
    change: &Change<'_>,
    (verb, noun): (&str, &str),
) -> Result<serde_json::Value, AppError> {
    let failures = data_failures(conn, target)?;
    if failures.is_empty() {
        return Ok(json!(null));
    }
    if !change.force {
        return Err(AppError::Conflict(format!(
            "{} v{} was trained on {} v{}, whose validation failed: {}; {verb} it with force \
             and a reason if you mean to",
            target.model,
            target.version,
            target.dataset,
            target.dataset_version,
            failures.join(", ")
        )));
    }
    if change.reason.trim().is_empty() {
        return Err(AppError::validation(
            "reason",
            format!("forcing a {noun} past failed validation needs a reason"),
        ));
    }
    Ok(json!({ "forced": true, "validation_failures": failures }))
}

/// What a version must pass to enter Production: its artifact is in the blob store and hashes
/// to the recorded hash, it reads as a model, and it was trained on the features the server
/// serves. Checked inside the transition's transaction, so a version that could not be served
/// never becomes Production.
///
/// The artifact is read and parsed before the transaction ([`Servable::preload`]), so the
/// store's write lock is not held while a large model loads; inside, a preloaded model whose
/// artifact hash is still the version's is taken as checked, and the serving slot then swaps
/// in that same model ([`Servable::take_preloaded`]) instead of loading it again.
pub struct Servable<'a> {
    pub blobs: &'a dyn BlobStore,
    /// The configured schema's feature names, in order.
    pub features: &'a [String],
    preloaded: std::cell::RefCell<Option<(ModelVersion, TrainedModel)>>,
    /// See [`Servable::fenced`].
    fence: Option<&'a Fence<'a>>,
    fenced_because: std::cell::RefCell<Option<String>>,
}

/// A fencing check: `Some(why)` when the caller may no longer change anything (the agent's:
/// this process lost the agent's lease, or the action was marked interrupted).
pub type Fence<'a> = dyn Fn(&mut DbConnection) -> Result<Option<String>, AppError> + Sync + 'a;

impl<'a> Servable<'a> {
    pub fn new(blobs: &'a dyn BlobStore, features: &'a [String]) -> Self {
        Servable {
            blobs,
            features,
            preloaded: std::cell::RefCell::new(None),
            fence: None,
            fenced_because: std::cell::RefCell::new(None),
        }
    }

    /// Asks `fence` inside the change's transaction just before anything is written (after
    /// the audit head lock and the model's load): `Some(why)` refuses the change with 409 and
    /// nothing is written, however long the load took. [`Servable::fenced_because`] then
    /// says why.
    pub fn fenced(mut self, fence: &'a Fence<'a>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Why the fence refused the change, when it did.
    pub fn fenced_because(&self) -> Option<String> {
        self.fenced_because.borrow().clone()
    }

    /// A change starts with no answer of the fence (a `Servable` may serve several).
    fn forget_fence_answer(&self) {
        self.fenced_because.borrow_mut().take();
    }

    fn pass_fence(&self, conn: &mut DbConnection) -> Result<(), AppError> {
        self.forget_fence_answer();
        let Some(fence) = self.fence else {
            return Ok(());
        };
        if let Some(why) = fence(conn)? {
            let refused = AppError::Conflict(format!("the change was fenced off: {why}"));
            *self.fenced_because.borrow_mut() = Some(why);
            return Err(refused);
        }
        Ok(())
    }

    /// Loads and verifies `version` ahead of a transition into Production, outside any
    /// transaction. A version that does not load is left to the check inside, which refuses it
    /// with the reason.
    pub fn preload(&self, conn: &mut DbConnection, model: &str, version: i32) {
        if let Ok(loaded) = load(conn, self.blobs, model, version) {
            *self.preloaded.borrow_mut() = Some(loaded);
        }
    }

    /// The model preloaded (and checked) for the transition, for the serving slot.
    pub fn take_preloaded(&self) -> Option<(ModelVersion, TrainedModel)> {
        self.preloaded.borrow_mut().take()
    }

    fn check(
        &self,
        conn: &mut DbConnection,
        model: &str,
        version: i32,
        serving: Option<i32>,
    ) -> Result<(), AppError> {
        let refuse = |why: String| {
            let still = match serving {
                Some(v) => format!("v{v} stays in Production and is what is served"),
                None => "no version is in Production, so nothing is served".into(),
            };
            AppError::Conflict(format!(
                "{model} v{version} cannot be served ({why}); refused: {still}"
            ))
        };
        let row = find_version(conn, model, version)?;
        let mut preloaded = self.preloaded.borrow_mut();
        let fresh = preloaded
            .as_ref()
            .is_some_and(|(v, _)| v.id == row.id && v.artifact_hash == row.artifact_hash);
        if !fresh {
            *preloaded =
                Some(load(conn, self.blobs, model, version).map_err(|e| refuse(e.to_string()))?);
        }
        let Some((_, trained)) = preloaded.as_ref() else {
            return Err(refuse("it did not load".into()));
        };
        if trained.features != self.features {
            return Err(refuse(format!(
                "trained on features ({}) that the configured schema does not have ({})",
                trained.features.join(", "),
                self.features.join(", ")
            )));
        }
        Ok(())
    }
}

/// Moves a version to a stage. Promoting to Production checks that the version can be served
/// ([`Servable`]) and archives the version that held it. Runs inside the audit lock, so
/// concurrent promotions queue and the one-Production rule holds.
///
/// A promotion to Production of a version trained on data whose validation failed (critical
/// or not) is refused with 409 naming the failures, unless `change.force` with a reason.
pub fn transition(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
    to: Stage,
    change: Change<'_>,
    servable: &Servable<'_>,
) -> Result<TransitionOutcome, AppError> {
    check_reason(change.reason)?;
    servable.forget_fence_answer();
    if to == Stage::Production {
        servable.preload(conn, model, version);
    }
    audit::with_event(conn, |conn| {
        let target = find_version(conn, model, version)?;
        if target.stage == to.as_str() {
            return Err(AppError::Conflict(format!(
                "{model} v{version} is already in {to}"
            )));
        }
        let gate = if to == Stage::Production {
            data_gate(conn, &target, &change, ("promote", "promotion"))?
        } else {
            json!(null)
        };
        let (outcome, mut event) = transition_locked(
            conn,
            model,
            version,
            to,
            change,
            "model.transition",
            servable,
            false,
        )?;
        if !gate.is_null() {
            if let Some(after) = event.after.as_mut().and_then(|a| a.as_object_mut()) {
                after.insert("data_gate".into(), gate);
            }
        }
        Ok((outcome, event))
    })
}

#[expect(
    clippy::too_many_arguments,
    reason = "one transition's parts, all needed"
)]
fn transition_locked(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
    to: Stage,
    change: Change<'_>,
    action: &'static str,
    servable: &Servable<'_>,
    rollback: bool,
) -> Result<(TransitionOutcome, NewEvent), AppError> {
    let (actor, reason) = (change.actor, change.reason);
    let current = find_version(conn, model, version)?;
    if current.stage == to.as_str() {
        return Err(AppError::Conflict(format!(
            "{model} v{version} is already in {to}"
        )));
    }
    if to == Stage::Production {
        let serving = production(conn, model)?.map(|p| p.version);
        servable.check(conn, model, version, serving)?;
    }
    // Last, just before anything is written: after the model's load (even one made here).
    servable.pass_fence(conn)?;
    let mut archived = None;
    if to == Stage::Production {
        if let Some(prod) = production(conn, model)? {
            record(
                conn,
                model,
                prod.version,
                &prod.stage,
                Stage::Archived,
                actor,
                &format!("replaced by v{version}: {reason}"),
                rollback,
            )?;
            archived = Some(prod.version);
        }
    }
    record(
        conn,
        model,
        version,
        &current.stage,
        to,
        actor,
        reason,
        rollback,
    )?;
    metrics::counter!(crate::telemetry::MODEL_TRANSITIONS_TOTAL, "stage" => to.as_str())
        .increment(1);
    let updated = find_version(conn, model, version)?;
    // `production` before and after: the version in Production (a promotion moves it from
    // the archived one to this one; other moves leave it out).
    let production_after = (to == Stage::Production).then_some(version);
    let event = NewEvent::new(actor, action, format!("model:{model}/{version}"))
        .before(json!({ "stage": current.stage, "production": archived }))
        .after(json!({
            "stage": to.as_str(),
            "production": production_after,
            "reason": reason,
            "archived": archived,
        }));
    Ok((
        TransitionOutcome {
            version: updated,
            from_stage: current.stage,
            archived,
        },
        event,
    ))
}

/// The Production history as a stack, replayed from the stage transitions in order: a
/// promotion pushes its version (moving it to the top if it was already there); a rollback to a
/// version on the stack drops everything above it, and a rollback (`--to`) to one that had left
/// the stack pushes it like a promotion. The top is the version in Production; the one below is where a
/// rollback goes. Versions rolled back from leave the stack, so repeated rollbacks walk further
/// back, and a later promotion of one of them puts it on top again.
pub fn production_stack(conn: &mut DbConnection, model: &str) -> Result<Vec<i32>, AppError> {
    let production = Stage::Production.as_str();
    let rows: Vec<StageTransition> = stage_transitions::table
        .filter(stage_transitions::model.eq(model))
        .filter(
            stage_transitions::to_stage
                .eq(production)
                .or(stage_transitions::from_stage.eq(production)),
        )
        .order(stage_transitions::seq.asc())
        .select(StageTransition::as_select())
        .load(conn)?;
    let mut moves = Vec::new();
    for (i, t) in rows.iter().enumerate() {
        if t.to_stage == production {
            moves.push(if t.rollback {
                Move::Rollback(t.version)
            } else {
                Move::Promote(t.version)
            });
        } else {
            // Leaving Production: part of a replacement when the next transition (the same
            // change) moves another version in; else a person took it out.
            let replaced = rows
                .get(i + 1)
                .is_some_and(|next| next.seq == t.seq + 1 && next.to_stage == production);
            if !replaced {
                moves.push(Move::Demote(t.version));
            }
        }
    }
    Ok(replay_stack(&moves))
}

/// A step of the Production history.
#[derive(Debug, Clone, Copy)]
enum Move {
    Promote(i32),
    Rollback(i32),
    /// Taken out of Production by hand (archived, staged): it leaves the stack.
    Demote(i32),
}

/// [`production_stack`]'s replay, oldest first.
fn replay_stack(moves: &[Move]) -> Vec<i32> {
    let mut stack: Vec<i32> = Vec::new();
    for m in moves {
        match *m {
            Move::Rollback(version) if stack.contains(&version) => {
                if let Some(at) = stack.iter().position(|v| *v == version) {
                    stack.truncate(at + 1);
                }
            }
            Move::Promote(version) | Move::Rollback(version) => {
                stack.retain(|v| *v != version);
                stack.push(version);
            }
            Move::Demote(version) => stack.retain(|v| *v != version),
        }
    }
    stack
}

/// Where a rollback goes: the version below the current one in the [`production_stack`]. So
/// repeated rollbacks walk further back instead of toggling between two versions, and a version
/// rolled back from is not gone back to until it is promoted again.
pub fn rollback_target(
    conn: &mut DbConnection,
    model: &str,
) -> Result<Option<(ModelVersion, ModelVersion)>, AppError> {
    let Some(current) = production(conn, model)? else {
        return Ok(None);
    };
    let stack = production_stack(conn, model)?;
    let target = stack.iter().rev().find(|v| **v != current.version).copied();
    match target {
        Some(v) => Ok(Some((current, find_version(conn, model, v)?))),
        None => Ok(None),
    }
}

/// Rolls Production back: to `to` when given (a version that was in Production before), else
/// to [`rollback_target`]. Both transitions are marked as a rollback. The data gate holds as
/// for a promotion: a target trained on data whose validation failed needs `change.force` and
/// a reason (its failures may have been recorded since it last served).
pub fn rollback(
    conn: &mut DbConnection,
    model: &str,
    to: Option<i32>,
    change: Change<'_>,
    servable: &Servable<'_>,
) -> Result<TransitionOutcome, AppError> {
    check_reason(change.reason)?;
    servable.forget_fence_answer();
    // The likely target, loaded before the transaction (re-decided inside).
    let likely = match to {
        Some(v) => Some(v),
        None => rollback_target(conn, model)?.map(|(_, t)| t.version),
    };
    if let Some(v) = likely {
        servable.preload(conn, model, v);
    }
    audit::with_event(conn, |conn| {
        let current = production(conn, model)?.ok_or_else(|| {
            AppError::Conflict(format!("{model} has no Production version to roll back"))
        })?;
        let target = match to {
            Some(v) => {
                let was_production: i64 = stage_transitions::table
                    .filter(stage_transitions::model.eq(model))
                    .filter(stage_transitions::version.eq(v))
                    .filter(stage_transitions::to_stage.eq(Stage::Production.as_str()))
                    .count()
                    .get_result(conn)?;
                find_version(conn, model, v)?;
                if v == current.version {
                    return Err(AppError::Conflict(format!(
                        "{model} v{v} is the Production version already"
                    )));
                }
                if was_production == 0 {
                    return Err(AppError::Conflict(format!(
                        "{model} v{v} was never in Production; promote it instead of rolling back to it"
                    )));
                }
                v
            }
            None => rollback_target(conn, model)?
                .map(|(_, t)| t.version)
                .ok_or_else(|| {
                    AppError::Conflict(format!(
                        "{model} has no earlier Production version to roll back to from v{} \
                         (versions rolled back from are skipped until promoted again)",
                        current.version
                    ))
                })?,
        };
        let target_version = find_version(conn, model, target)?;
        let gate = data_gate(conn, &target_version, &change, ("roll back to", "rollback"))?;
        let reason = if change.reason.trim().is_empty() {
            format!("rollback from v{}", current.version)
        } else {
            format!("rollback from v{}: {}", current.version, change.reason)
        };
        let (outcome, mut event) = transition_locked(
            conn,
            model,
            target,
            Stage::Production,
            Change {
                reason: &reason,
                ..change
            },
            "model.rollback",
            servable,
            true,
        )?;
        if !gate.is_null() {
            if let Some(after) = event.after.as_mut().and_then(|a| a.as_object_mut()) {
                after.insert("data_gate".into(), gate);
            }
        }
        Ok((outcome, event))
    })
}

/// The version in Production before `version` was last promoted, other than it: what its
/// figures are compared with.
pub fn previous_production(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
) -> Result<Option<i32>, AppError> {
    let promotions: Vec<StageTransition> = stage_transitions::table
        .filter(stage_transitions::model.eq(model))
        .filter(stage_transitions::to_stage.eq(Stage::Production.as_str()))
        .order(stage_transitions::seq.desc())
        .select(StageTransition::as_select())
        .load(conn)?;
    let mut seen_current = false;
    for p in promotions {
        if p.version == version {
            seen_current = true;
        } else if seen_current {
            return Ok(Some(p.version));
        }
    }
    Ok(None)
}

/// The version the audit log last put into Production (the newest `model.transition` or
/// `model.rollback` event to Production), if any: every move into Production writes one in the
/// same transaction, so a Production stage without it was set behind the registry's back (an
/// edit of the database), and is not served.
pub fn audited_production(conn: &mut DbConnection, model: &str) -> Result<Option<i32>, AppError> {
    use crate::db::schema::audit_events;
    let prefix = format!("model:{model}/");
    let events: Vec<(String, Option<String>)> = audit_events::table
        .filter(audit_events::action.eq_any(["model.transition", "model.rollback"]))
        .filter(audit_events::subject.like(format!("{prefix}%")))
        .order(audit_events::seq.desc())
        .limit(500)
        .select((audit_events::subject, audit_events::after_json))
        .load(conn)?;
    for (subject, after) in events {
        let into_production = after
            .as_deref()
            .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            .is_some_and(|a| {
                a.get("stage").and_then(|s| s.as_str()) == Some(Stage::Production.as_str())
            });
        if into_production {
            return Ok(subject.strip_prefix(&prefix).and_then(|v| v.parse().ok()));
        }
    }
    Ok(None)
}

pub fn production(conn: &mut DbConnection, model: &str) -> Result<Option<ModelVersion>, AppError> {
    Ok(model_versions::table
        .filter(model_versions::model.eq(model))
        .filter(model_versions::stage.eq(Stage::Production.as_str()))
        .select(ModelVersion::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_version(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
) -> Result<ModelVersion, AppError> {
    model_versions::table
        .filter(model_versions::model.eq(model))
        .filter(model_versions::version.eq(version))
        .select(ModelVersion::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound(format!("model `{model}` has no version {version}")))
}

/// The versions registered from these runs, under whichever model.
pub fn versions_of_runs(
    conn: &mut DbConnection,
    run_ids: &[String],
) -> Result<Vec<ModelVersion>, AppError> {
    let mut out = Vec::new();
    for chunk in run_ids.chunks(500) {
        out.extend(
            model_versions::table
                .filter(model_versions::run_id.eq_any(chunk))
                .select(ModelVersion::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// The version registered from `run_id`, under whichever model (a run is registered once).
pub fn version_of_run(
    conn: &mut DbConnection,
    run_id: &str,
) -> Result<Option<ModelVersion>, AppError> {
    Ok(model_versions::table
        .filter(model_versions::run_id.eq(run_id))
        .select(ModelVersion::as_select())
        .first(conn)
        .optional()?)
}

pub fn list_versions(conn: &mut DbConnection, model: &str) -> Result<Vec<ModelVersion>, AppError> {
    Ok(model_versions::table
        .filter(model_versions::model.eq(model))
        .order(model_versions::version.desc())
        .select(ModelVersion::as_select())
        .load(conn)?)
}

pub fn transitions(conn: &mut DbConnection, model: &str) -> Result<Vec<StageTransition>, AppError> {
    Ok(stage_transitions::table
        .filter(stage_transitions::model.eq(model))
        .order(stage_transitions::seq.desc())
        .select(StageTransition::as_select())
        .load(conn)?)
}

/// A registered model with its versions (and their metrics) and its transition history: what
/// the API's model page and the dashboard's Models page show.
#[derive(Debug, Clone, Serialize)]
pub struct ModelDetail {
    pub name: String,
    pub production: Option<i32>,
    pub versions: Vec<VersionRow>,
    pub transitions: Vec<StageTransition>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    #[serde(flatten)]
    pub version: ModelVersion,
    pub metrics: BTreeMap<String, f64>,
    /// The latest validation of the dataset version it was trained on failed (critical or
    /// not): moving it into Production needs force and a reason.
    pub data_failed: bool,
}

/// One version with its summary metrics and whether its data failed validation.
pub fn version_row(conn: &mut DbConnection, version: ModelVersion) -> Result<VersionRow, AppError> {
    let data_failed = !data_failures(conn, &version)?.is_empty();
    Ok(VersionRow {
        metrics: version.metrics(),
        version,
        data_failed,
    })
}

pub fn model_detail(conn: &mut DbConnection, name: &str) -> Result<ModelDetail, AppError> {
    let mut validations: BTreeMap<String, BTreeMap<i32, bool>> = BTreeMap::new();
    let mut versions = Vec::new();
    for v in list_versions(conn, name)? {
        if !validations.contains_key(&v.dataset) {
            let runs = catalog::latest_runs_by_version(conn, &v.dataset)?
                .into_iter()
                .map(|(number, run)| (number, run.success))
                .collect();
            validations.insert(v.dataset.clone(), runs);
        }
        let passed = validations
            .get(&v.dataset)
            .and_then(|runs| runs.get(&v.dataset_version))
            .copied();
        versions.push(VersionRow {
            metrics: v.metrics(),
            version: v,
            data_failed: passed == Some(false),
        });
    }
    Ok(ModelDetail {
        name: name.to_owned(),
        production: versions
            .iter()
            .find(|v| v.version.stage == Stage::Production.as_str())
            .map(|v| v.version.version),
        transitions: transitions(conn, name)?,
        versions,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct RegisteredModel {
    pub name: String,
    pub versions: i64,
    pub production: Option<i32>,
}

pub fn list_models(conn: &mut DbConnection) -> Result<Vec<RegisteredModel>, AppError> {
    let names: Vec<String> = registered_models::table
        .order(registered_models::name.asc())
        .select(registered_models::name)
        .load(conn)?;
    names
        .into_iter()
        .map(|name| {
            let versions: i64 = model_versions::table
                .filter(model_versions::model.eq(&name))
                .count()
                .get_result(conn)?;
            let production = production(conn, &name)?.map(|v| v.version);
            Ok(RegisteredModel {
                name,
                versions,
                production,
            })
        })
        .collect()
}

/// A version's model, read from the blob store and verified against the recorded hash: a
/// tampered artifact is refused, never served.
pub fn load(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    model: &str,
    version: i32,
) -> Result<(ModelVersion, TrainedModel), AppError> {
    let v = find_version(conn, model, version)?;
    if let Some(flavour) = external::flavour_of(&v) {
        return Err(AppError::Conflict(format!(
            "{model} v{version} was registered through MLflow's API with the `{flavour}` \
             flavour, which Steward cannot load: Steward serves the models it trains"
        )));
    }
    let bytes = blobs.get(&v.artifact_hash).map_err(|e| {
        // A file system path stays in the log, out of answers.
        let why = match &e {
            // A file system path, or an S3 endpoint, bucket and error body, stay in the log.
            crate::data::blob::BlobError::Io { .. }
            | crate::data::blob::BlobError::Remote { .. } => {
                tracing::error!(model, version, error = %e, "reading a model artifact");
                "the artifact store could not read it".to_owned()
            }
            other => other.to_string(),
        };
        AppError::Unavailable(format!(
            "{model} v{version}: its artifact cannot be used: {why}"
        ))
    })?;
    let trained = TrainedModel::from_bytes(&bytes)
        .map_err(|e| AppError::Unavailable(format!("{model} v{version}: {e}")))?;
    Ok((v, trained))
}

/// The given version, or the Production one.
pub fn resolve(
    conn: &mut DbConnection,
    model: &str,
    version: Option<i32>,
) -> Result<ModelVersion, AppError> {
    match version {
        Some(v) => find_version(conn, model, v),
        None => production(conn, model)?.ok_or_else(|| {
            AppError::NotFound(format!("model `{model}` has no Production version"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{Move, replay_stack};

    fn promote(v: i32) -> Move {
        Move::Promote(v)
    }
    fn rollback(v: i32) -> Move {
        Move::Rollback(v)
    }

    #[test]
    fn repeated_rollbacks_walk_back_and_a_promotion_starts_again() {
        // Promote 1, 2, 3; roll back twice: 3 → 2 → 1.
        let history = [promote(1), promote(2), promote(3), rollback(2), rollback(1)];
        assert_eq!(replay_stack(&history), vec![1]);
        // Promoting 3 again puts it on top of 1: a rollback goes to 1, not nowhere.
        let history = [
            promote(1),
            promote(2),
            promote(3),
            rollback(2),
            rollback(1),
            promote(3),
        ];
        assert_eq!(replay_stack(&history), vec![1, 3]);
        // Promoting 1 over 3 moves 1 to the top: a rollback goes to 3.
        let history = [promote(1), promote(3), promote(1)];
        assert_eq!(replay_stack(&history), vec![3, 1]);
    }

    #[test]
    fn a_rollback_to_an_earlier_version_drops_what_was_above_it() {
        let history = [promote(1), promote(2), promote(3), promote(4), rollback(2)];
        assert_eq!(replay_stack(&history), vec![1, 2]);
    }

    #[test]
    fn a_rollback_to_a_version_rolled_back_from_pushes_it() {
        // 3 was rolled back from; `--to 3` from 1 goes forward, and 1 stays below it.
        let history = [promote(1), promote(3), rollback(1), rollback(3)];
        assert_eq!(replay_stack(&history), vec![1, 3]);
    }

    #[test]
    fn a_version_taken_out_by_hand_is_not_rolled_back_to() {
        // 2 was archived by a person, then 3 promoted: a rollback goes to 1.
        let history = [promote(1), promote(2), Move::Demote(2), promote(3)];
        assert_eq!(replay_stack(&history), vec![1, 3]);
    }
}
