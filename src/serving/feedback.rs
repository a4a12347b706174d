//! Ground truth for logged predictions: `POST /feedback {request_id, label}`. A label for a
//! request id that was never predicted is refused; so is a second label for the same one.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::schema::{feedback, predictions};
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

fn prediction_exists(conn: &mut DbConnection, request_id: &str) -> Result<bool, AppError> {
    let n: i64 = predictions::table
        .filter(predictions::request_id.eq(request_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Stores a label; the prediction must be in the log already (`NotFound` otherwise: callers
/// flush the log's queue and try once more).
pub fn record(
    conn: &mut DbConnection,
    request: &FeedbackRequest,
    actor: &str,
) -> Result<Feedback, AppError> {
    if !(0..=1).contains(&request.label) {
        return Err(AppError::validation("label", "must be 0 or 1"));
    }
    conn.transaction(|conn| {
        if !prediction_exists(conn, &request.request_id)? {
            return Err(AppError::NotFound(format!(
                "no prediction with request_id `{}`",
                request.request_id
            )));
        }
        let already: i64 = feedback::table
            .filter(feedback::request_id.eq(&request.request_id))
            .count()
            .get_result(conn)?;
        if already > 0 {
            return Err(AppError::Conflict(format!(
                "request `{}` already has a label",
                request.request_id
            )));
        }
        let row = Feedback {
            request_id: request.request_id.clone(),
            label: request.label,
            actor: actor.to_owned(),
            received_at: now(),
        };
        diesel::insert_into(feedback::table)
            .values(&row)
            .execute(conn)?;
        Ok(row)
    })
}
