// The diesel schema, written to fit both backends (ids are BIGINT on both).

diesel::table! {
    operators (id) {
        id -> BigInt,
        name -> Text,
        country -> Text,
        support_email -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    customers (id) {
        id -> BigInt,
        operator_id -> BigInt,
        full_name -> Text,
        email -> Text,
        phone -> Text,
        city -> Text,
        country -> Text,
        plan -> Text,
        status -> Text,
        created_at -> Timestamp,
        search_text -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        is_active -> Bool,
        must_change_password -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        failed_since_last_login -> Integer,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Nullable<BigInt>,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        token_hash -> Text,
        prefix -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_quota (user_id) {
        user_id -> BigInt,
        touched_at -> Timestamp,
        window_count -> BigInt,
        counted_after -> Timestamp,
    }
}

diesel::table! {
    api_requests (id) {
        id -> BigInt,
        user_id -> BigInt,
        requested_at -> Timestamp,
    }
}

diesel::table! {
    login_failures (id) {
        id -> BigInt,
        username -> Text,
        client_addr -> Text,
        failed_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        user_id -> Nullable<BigInt>,
        username -> Nullable<Text>,
        kind -> Text,
        client_addr -> Text,
        path -> Text,
        detail -> Text,
        row_count -> Nullable<BigInt>,
        customer_ids -> Nullable<Text>,
        request_id -> Text,
    }
}

diesel::table! {
    app_state (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::joinable!(customers -> operators (operator_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(api_quota -> users (user_id));
diesel::joinable!(api_requests -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    operators,
    customers,
    users,
    sessions,
    api_tokens,
    api_quota,
    api_requests,
    login_failures,
    audit_log,
    app_state,
);
