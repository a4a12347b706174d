//! The one schema both backends share: ids as text, UTC timestamps, JSON as text.
//! Written by hand to match `migrations/*/`; the migration tests check the two agree.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        prefix -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        actor -> Text,
        action -> Text,
        subject -> Text,
        before_json -> Nullable<Text>,
        after_json -> Nullable<Text>,
        created_at -> Timestamp,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    api_tokens,
    sessions,
    audit_events,
    audit_head
);

diesel::table! {
    datasets (name) {
        name -> Text,
        current_version -> Nullable<Integer>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    dataset_versions (id) {
        id -> Text,
        dataset -> Text,
        version -> Integer,
        hash -> Text,
        size_bytes -> BigInt,
        format -> Text,
        file_name -> Text,
        row_count -> BigInt,
        column_count -> Integer,
        parent_version -> Nullable<Integer>,
        message -> Text,
        profile_json -> Text,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    validation_runs (id) {
        id -> Text,
        suite -> Text,
        suite_hash -> Text,
        dataset -> Nullable<Text>,
        version -> Nullable<Integer>,
        source -> Text,
        success -> Bool,
        evaluated -> Integer,
        successful -> Integer,
        critical_failures -> Integer,
        result_json -> Text,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(dataset_versions -> datasets (dataset));

diesel::allow_tables_to_appear_in_same_query!(datasets, dataset_versions, validation_runs);
