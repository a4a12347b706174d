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
        expires_at -> Nullable<Timestamp>,
        role -> Nullable<Text>,
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
        keyed_from -> Nullable<BigInt>,
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

diesel::table! {
    experiments (name) {
        name -> Text,
        created_at -> Timestamp,
        mlflow_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    runs (id) {
        id -> Text,
        experiment -> Text,
        model_kind -> Text,
        status -> Text,
        params_json -> Text,
        dataset -> Text,
        dataset_version -> Integer,
        dataset_hash -> Text,
        steward_version -> Text,
        owner -> Text,
        error -> Nullable<Text>,
        created_by -> Text,
        started_at -> Timestamp,
        heartbeat_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        duration_ms -> Nullable<BigInt>,
        lifecycle_stage -> Text,
    }
}

diesel::table! {
    run_metrics (run_id, name, step, recorded_at, value) {
        run_id -> Text,
        name -> Text,
        step -> Integer,
        value -> Double,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    run_tags (run_id, name) {
        run_id -> Text,
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    run_artifacts (run_id, name) {
        run_id -> Text,
        name -> Text,
        hash -> Text,
        media_type -> Text,
        size_bytes -> BigInt,
    }
}

diesel::table! {
    registered_models (name) {
        name -> Text,
        created_at -> Timestamp,
        description -> Nullable<Text>,
        deleted_up_to -> Integer,
    }
}

diesel::table! {
    model_versions (id) {
        id -> Text,
        model -> Text,
        version -> Integer,
        run_id -> Text,
        model_kind -> Text,
        dataset -> Text,
        dataset_version -> Integer,
        dataset_hash -> Text,
        artifact_hash -> Text,
        metrics_json -> Text,
        stage -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        source -> Nullable<Text>,
        description -> Nullable<Text>,
    }
}

diesel::table! {
    stage_transitions (seq) {
        seq -> BigInt,
        model -> Text,
        version -> Integer,
        from_stage -> Text,
        to_stage -> Text,
        actor -> Text,
        reason -> Text,
        created_at -> Timestamp,
        rollback -> Bool,
    }
}

diesel::table! {
    predictions (request_id) {
        request_id -> Text,
        created_at -> Timestamp,
        model -> Text,
        model_version -> Integer,
        endpoint -> Text,
        features_json -> Text,
        probability -> Double,
        prediction -> Integer,
        latency_us -> BigInt,
        batch_rows -> Integer,
    }
}

diesel::table! {
    feedback (request_id) {
        request_id -> Text,
        label -> Integer,
        actor -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    prediction_dead_letters (request_id) {
        request_id -> Text,
        created_at -> Timestamp,
        row_json -> Text,
        error -> Text,
        failed_at -> Timestamp,
    }
}

diesel::joinable!(feedback -> predictions (request_id));

diesel::allow_tables_to_appear_in_same_query!(predictions, feedback);

diesel::table! {
    reference_profiles (model, version) {
        model -> Text,
        version -> Integer,
        rows -> BigInt,
        profile_json -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    drift_checks (id) {
        id -> Text,
        model -> Text,
        version -> Integer,
        trigger_kind -> Text,
        actor -> Text,
        status -> Text,
        reason -> Nullable<Text>,
        window_rows -> BigInt,
        window_start -> Nullable<Timestamp>,
        window_end -> Nullable<Timestamp>,
        drift_share -> Nullable<Double>,
        dataset_drift -> Bool,
        accuracy_live -> Nullable<Double>,
        accuracy_estimated -> Nullable<Double>,
        labelled_rows -> BigInt,
        p99_latency_ms -> Nullable<Double>,
        missing_ratio -> Nullable<Double>,
        report_json -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    drift_check_features (check_id, feature) {
        check_id -> Text,
        feature -> Text,
        stattest -> Nullable<Text>,
        score -> Nullable<Double>,
        threshold -> Nullable<Double>,
        drifted -> Bool,
        effect_size -> Nullable<Double>,
        psi -> Nullable<Double>,
        missing_ratio -> Double,
    }
}

diesel::table! {
    monitoring_alerts (id) {
        id -> Text,
        fingerprint -> Text,
        alert_type -> Text,
        severity -> Text,
        model -> Text,
        version -> Integer,
        score -> Nullable<Double>,
        summary -> Text,
        evidence_json -> Text,
        check_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    agent_incidents (id) {
        id -> Text,
        fingerprint -> Text,
        source -> Text,
        alert_type -> Text,
        alertname -> Text,
        severity -> Text,
        model -> Text,
        version -> Nullable<Integer>,
        summary -> Text,
        labels_json -> Text,
        evidence_json -> Text,
        check_id -> Nullable<Text>,
        status -> Text,
        alert_count -> BigInt,
        first_seen -> Timestamp,
        last_seen -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        resolution -> Nullable<Text>,
        decision_id -> Nullable<Text>,
    }
}

diesel::table! {
    agent_decisions (id) {
        id -> Text,
        incident_id -> Text,
        model -> Text,
        rule -> Nullable<Text>,
        action -> Text,
        approval -> Bool,
        status -> Text,
        redecide -> Bool,
        explanation_json -> Text,
        context_json -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    agent_approvals (id) {
        id -> Text,
        decision_id -> Text,
        incident_id -> Text,
        action -> Text,
        model -> Text,
        version -> Nullable<Integer>,
        status -> Text,
        evidence_json -> Text,
        requested_at -> Timestamp,
        expires_at -> Timestamp,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        comment -> Nullable<Text>,
        action_id -> Nullable<Text>,
    }
}

diesel::table! {
    agent_actions (id) {
        id -> Text,
        decision_id -> Text,
        approval_id -> Nullable<Text>,
        incident_id -> Text,
        action -> Text,
        model -> Text,
        status -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        outcome_json -> Nullable<Text>,
        error -> Nullable<Text>,
        model_version -> Nullable<Integer>,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        incident_id -> Nullable<Text>,
        severity -> Text,
        subject -> Text,
        body -> Text,
        created_at -> Timestamp,
        kind -> Text,
        facts_json -> Text,
        link -> Nullable<Text>,
        approval_id -> Nullable<Text>,
        attachment_blob -> Nullable<Text>,
        attachment_name -> Nullable<Text>,
        dedupe_key -> Nullable<Text>,
        channel -> Nullable<Text>,
        routed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    notification_deliveries (id) {
        id -> Text,
        notification_id -> Text,
        channel -> Text,
        channel_kind -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        claimed_at -> Nullable<Timestamp>,
        sent_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    agent_quarantine (request_id) {
        request_id -> Text,
        incident_id -> Text,
        feature -> Text,
        rule -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    agent_state (key) {
        key -> Text,
        value -> Text,
        updated_by -> Text,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(predictions, agent_quarantine);
diesel::allow_tables_to_appear_in_same_query!(feedback, agent_quarantine);
diesel::allow_tables_to_appear_in_same_query!(agent_decisions, agent_actions);

diesel::table! {
    model_aliases (model, alias) {
        model -> Text,
        alias -> Text,
        version -> Integer,
        created_at -> Timestamp,
    }
}

diesel::joinable!(notification_deliveries -> notifications (notification_id));
diesel::allow_tables_to_appear_in_same_query!(notifications, notification_deliveries);

diesel::table! {
    leases (name) {
        name -> Text,
        holder -> Text,
        expires_at -> Timestamp,
        started_at -> Timestamp,
        runs -> BigInt,
    }
}
