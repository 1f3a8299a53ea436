//! Ending sessions: a password change or a sign-out takes effect at once in every API process.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{ApiProcess, Backend, Options, PASSWORD, TestApp};

both_databases!(a_password_change_or_sign_out_ends_the_other_sessions_in_every_process);

/// On PostgreSQL a second `donkies serve` process on the same database; on SQLite, whose
/// database one process answers for, the same server.
async fn other_process(app: &TestApp, backend: Backend) -> (String, Option<ApiProcess>) {
    match backend {
        Backend::Sqlite => (app.base.clone(), None),
        Backend::Postgres => {
            let process = app.second_process().await;
            (process.base.clone(), Some(process))
        }
    }
}

async fn call(app: &TestApp, base: &str, method: Method, path: &str, token: &str, body: Option<Value>) -> StatusCode {
    app.call_on(base, method, path, Some(token), body).await.0
}

async fn log_in(app: &TestApp, base: &str, email: &str, password: &str) -> String {
    let body = json!({"email": email, "password": password});
    let (status, body) = app.call_on(base, Method::POST, "/v1/auth/login", None, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

fn change(current: &str, new: &str) -> Option<Value> {
    Some(json!({"current_password": current, "new_password1": new, "new_password2": new}))
}

async fn a_password_change_or_sign_out_ends_the_other_sessions_in_every_process(backend: Backend) {
    let mut options = Options::default();
    // Sign-ins here are many, and all from one address.
    options.args.login_rate_per_minute = Some("1000".into());
    let app = TestApp::spawn_with(backend, options).await;
    let (b, _process) = other_process(&app, backend).await;
    let a = app.base.clone();
    let email = "ada@example.com";
    app.signed_up_user(email).await;
    let mut password = PASSWORD.to_owned();
    for round in 1..=3 {
        // A session on each process, both just used (and so remembered wherever they may be).
        let on_a = log_in(&app, &a, email, &password).await;
        let on_b = log_in(&app, &b, email, &password).await;
        for (base, token) in [(&a, &on_a), (&b, &on_b), (&b, &on_a)] {
            assert_eq!(call(&app, base, Method::GET, "/v1/user", token, None).await, StatusCode::OK);
        }

        let new = format!("a new password, round {round}");
        let path = "/v1/user/change/password";
        assert_eq!(call(&app, &a, Method::POST, path, &on_a, change(&password, &new)).await, StatusCode::OK);

        // The very next requests: the other session is over, everywhere, and cannot use the
        // old password to change the password again.
        assert_eq!(call(&app, &b, Method::GET, "/v1/user", &on_b, None).await, StatusCode::UNAUTHORIZED);
        let again = change(&password, "the intruder's password");
        assert_eq!(call(&app, &b, Method::POST, path, &on_b, again).await, StatusCode::UNAUTHORIZED);
        let old = json!({"email": email, "password": password});
        let (status, _) = app.call_on(&b, Method::POST, "/v1/auth/login", None, Some(old)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "the old password no longer signs in");
        // The session that made the change stays signed in, in every process.
        for base in [&a, &b] {
            assert_eq!(call(&app, base, Method::GET, "/v1/user", &on_a, None).await, StatusCode::OK);
        }
        password = new;
    }

    // Signing out on one process ends every session of the user on all of them.
    let on_a = log_in(&app, &a, email, &password).await;
    let on_b = log_in(&app, &b, email, &password).await;
    assert_eq!(call(&app, &b, Method::GET, "/v1/user", &on_b, None).await, StatusCode::OK);
    assert_eq!(call(&app, &b, Method::GET, "/v1/user", &on_a, None).await, StatusCode::OK);
    assert_eq!(call(&app, &a, Method::POST, "/v1/auth/logout", &on_a, None).await, StatusCode::NO_CONTENT);
    for base in [&a, &b] {
        for token in [&on_a, &on_b] {
            assert_eq!(call(&app, base, Method::GET, "/v1/user", token, None).await, StatusCode::UNAUTHORIZED);
        }
    }
}
