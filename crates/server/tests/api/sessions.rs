//! Ending sessions: a password change or a sign-out takes effect at once in every API process.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{ApiProcess, Backend, Options, PASSWORD, TestApp};

both_databases!(
    a_password_change_or_sign_out_ends_the_other_sessions_in_every_process,
    of_two_password_changes_made_at_once_with_the_old_password_one_wins,
);

/// A signed-up user, `EMAIL`, and two API processes on one database: on PostgreSQL this server
/// and a second `donkies serve` process (A's base, B's base, B); on SQLite, whose database one
/// process answers for, this server twice.
async fn two_processes(backend: Backend) -> (TestApp, String, String, Option<ApiProcess>) {
    let mut options = Options::default();
    // Sign-ins here are many, and all from one address.
    options.args.login_rate_per_minute = Some("1000".into());
    let app = TestApp::spawn_with(backend, options).await;
    app.signed_up_user(EMAIL).await;
    let a = app.base.clone();
    match backend {
        Backend::Sqlite => (app, a.clone(), a, None),
        Backend::Postgres => {
            let process = app.second_process().await;
            let b = process.base.clone();
            (app, a, b, Some(process))
        }
    }
}

const EMAIL: &str = "ada@example.com";

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
    let (app, a, b, _process) = two_processes(backend).await;
    let email = EMAIL;
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

async fn of_two_password_changes_made_at_once_with_the_old_password_one_wins(backend: Backend) {
    let (app, a, b, _process) = two_processes(backend).await;
    let email = EMAIL;
    let path = "/v1/user/change/password";
    let mut password = PASSWORD.to_owned();
    for round in 1..=3 {
        let on_a = log_in(&app, &a, email, &password).await;
        let on_b = log_in(&app, &b, email, &password).await;
        let (new_a, new_b) = (format!("a's password {round}"), format!("b's password {round}"));
        let (answer_a, answer_b) = tokio::join!(
            call(&app, &a, Method::POST, path, &on_a, change(&password, &new_a)),
            call(&app, &b, Method::POST, path, &on_b, change(&password, &new_b)),
        );
        let winners: Vec<_> = [(answer_a, new_a, on_b), (answer_b, new_b, on_a)]
            .into_iter()
            .filter(|(answer, _, _)| *answer == StatusCode::OK)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {answer_a} and {answer_b}");
        // The winner's password holds, and the loser's session is over.
        let [(_, new, loser)] = <[_; 1]>::try_from(winners).unwrap();
        log_in(&app, &b, email, &new).await;
        for base in [&a, &b] {
            assert_eq!(call(&app, base, Method::GET, "/v1/user", &loser, None).await, StatusCode::UNAUTHORIZED);
        }
        password = new;
    }
}
