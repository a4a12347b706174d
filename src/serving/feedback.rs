//! Ground truth for logged predictions: `POST /feedback {request_id, label}`. A label for a
//! request id that was never predicted is refused; so is a second label for the same one.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::schema::feedback;
use crate::db::{DbConnection, now};
use crate::error::AppError;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = feedback)]
pub struct Feedback {
    pub request_id: String,
    pub label: i32,
    pub actor: String,
    pub received_at: chrono::NaiveDateTime,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The `request_id` a prediction answered with.
    pub request_id: String,
    /// The true class: 0 or 1.
    pub label: i32,
}

/// Whether `request_id` could name a prediction still in the log's queue: a UUIDv7 (what
/// predictions answer with) made in the last hour (rows wait in the queue while the store is
/// unavailable).
pub fn may_be_queued(request_id: &str) -> bool {
    let Ok(id) = uuid::Uuid::parse_str(request_id) else {
        return false;
    };
    let Some((secs, _)) = id.get_timestamp().map(|t| t.to_unix()) else {
        return false;
    };
    let now = chrono::Utc::now().timestamp();
    let made = i64::try_from(secs).unwrap_or(i64::MAX);
    (now - 3600..=now + 5).contains(&made)
}

/// Stores a label; the prediction must be in the log already (`NotFound` otherwise: callers
/// flush the log's queue and try once more, when [`may_be_queued`]). One statement, so
/// concurrent labels for one id race in the store itself: the first is stored, the others get
/// 409, on either backend.
pub fn record(
    conn: &mut DbConnection,
    request: &FeedbackRequest,
    actor: &str,
) -> Result<Feedback, AppError> {
    if !(0..=1).contains(&request.label) {
        return Err(AppError::validation("label", "must be 0 or 1"));
    }
    let id = &request.request_id;
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(AppError::validation(
            "request_id",
            "must be the request_id a prediction answered with",
        ));
    }
    let row = Feedback {
        request_id: id.clone(),
        label: request.label,
        actor: actor.to_owned(),
        received_at: now(),
    };
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match diesel::insert_into(feedback::table)
        .values(&row)
        .execute(conn)
    {
        Ok(_) => Ok(row),
        Err(E::DatabaseError(K::UniqueViolation, _)) => Err(AppError::Conflict(format!(
            "request `{id}` already has a label"
        ))),
        Err(E::DatabaseError(K::ForeignKeyViolation, _)) => Err(AppError::NotFound(format!(
            "no prediction with request_id `{id}`"
        ))),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::may_be_queued;

    #[test]
    fn only_a_recent_uuid_v7_may_be_queued() {
        assert!(may_be_queued(&uuid::Uuid::now_v7().to_string()));
        assert!(!may_be_queued(&uuid::Uuid::new_v4().to_string()));
        assert!(!may_be_queued("01890000-0000-7000-8000-000000000000"));
        assert!(!may_be_queued("not-a-uuid"));
    }
}
