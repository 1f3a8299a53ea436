//! The `donkies` binary as an operator runs it: start-up errors, help, graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn donkies() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_donkies"));
    cmd.env_remove("DATABASE_URL").env_remove("DONKIES_LISTEN").env("RUST_LOG", "info");
    cmd
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("donkies-proc-{}", donkies_store::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = temp_dir();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["serve", "--listen", "nonsense"], &[], "DONKIES_LISTEN"),
        (&["serve"], &[("DONKIES_LISTEN", "127.0.0.1:99999")], "DONKIES_LISTEN"),
        (&["serve"], &[("DATABASE_URL", "mysql://nope")], "DATABASE_URL"),
        (&["serve"], &[("DONKIES_SMTP_URL", "not a url")], "DONKIES_SMTP_URL"),
        (&["serve"], &[("DONKIES_TOKEN_EXPIRE_MINUTES", "soon")], "DONKIES_TOKEN_EXPIRE_MINUTES"),
        (&["--config", "/nonexistent/donkies.toml", "serve"], &[], "--config"),
    ];
    for (args, env, setting) in cases {
        let out = donkies().args(*args).envs(env.iter().copied()).env("DONKIES_DATA_DIR", &dir).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let lines: Vec<_> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].starts_with("error: ") && lines[0].contains(setting), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_port_in_use_is_reported_by_name() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = temp_dir();
    let out = donkies()
        .args(["serve", "--listen", &taken.local_addr().unwrap().to_string()])
        .env("DONKIES_DATA_DIR", &dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("error: DONKIES_LISTEN (--listen): cannot listen on")), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn serve_help_documents_every_setting() {
    let out = donkies().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for setting in donkies_server::config::Setting::ALL {
        for name in [setting.env(), setting.flag()] {
            assert!(help.contains(&name), "{name} missing from serve --help:\n{help}");
        }
    }
    for name in ["DONKIES_CONFIG", "--no-worker"] {
        assert!(help.contains(name), "{name} missing from serve --help:\n{help}");
    }
    assert!(!help.contains("SecretString"), "{help}");
}

#[test]
fn a_data_json_config_file_is_understood() {
    let dir = temp_dir();
    let config = dir.join("data.json");
    std::fs::write(&config, r#"{"SECRET_KEY": "a secret key from data.json", "ALLOWED_HOSTS": ["*"], "MYSTERY": 1}"#)
        .unwrap();
    let out = donkies()
        .args(["--config", config.to_str().unwrap(), "migrate"])
        .env("DONKIES_DATA_DIR", &dir)
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(all.contains("migrations applied"), "{all}");
    assert!(all.contains("unknown key \"MYSTERY\" ignored"), "{all}");
    assert!(dir.join("donkies.db").exists());
    assert!(!dir.join("secret_key").exists(), "the file's SECRET_KEY is used, none generated");
    std::fs::remove_dir_all(dir).unwrap();
}

/// SIGTERM: stop accepting, finish the request in flight, exit 0. The log never shows the
/// password or token that went through.
#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let dir = temp_dir();
    let mut child = donkies()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DONKIES_DATA_DIR", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut addr = String::new();
    let mut log = String::new();
    for _ in 0..50 {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        log.push_str(&line);
        if let Some(i) = line.find("listening on http://") {
            addr = line[i + "listening on http://".len()..].trim().to_owned();
            break;
        }
    }
    assert!(!addr.is_empty(), "no listening line in:\n{log}");

    // A request whose body is still arriving when the signal comes.
    let body =
        r#"{"email": "ada@example.com", "password": "my secret password", "first_name": "Ada", "last_name": "L"}"#;
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        conn,
        "POST /v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    std::thread::sleep(Duration::from_millis(300));
    conn.write_all(&body.as_bytes()[10..]).unwrap();
    let mut response = String::new();
    let mut buf = [0u8; 1024];
    while !response.contains("\r\n\r\n") {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        response.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(response.starts_with("HTTP/1.1 204"), "{response}");

    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    stdout.read_to_string(&mut log).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("my secret password"), "the password was logged:\n{log}");
    assert!(std::net::TcpStream::connect(&addr).is_err(), "no longer accepting");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Zero configuration, no `serve` running: an operator command prints its answer alone, and one
/// that needs the payment service says that `serve`, which simulates it, is not running.
#[test]
fn operator_commands_print_their_answer_and_say_when_serve_is_not_running() {
    let dir = temp_dir();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let operator = |args: &[&str]| {
        donkies()
            .args(args)
            .env_remove("RUST_LOG")
            .env("DONKIES_DATA_DIR", &dir)
            .env("DONKIES_LISTEN", free.to_string())
            .output()
            .unwrap()
    };
    let out = operator(&["payments", "customers"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("id "), "the answer comes first:\n{stdout}");
    assert_eq!(stderr, "", "nothing beside the answer");
    let out = operator(&["payments", "simulate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(&format!("`donkies serve` is not running at {free}")), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
