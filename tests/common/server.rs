//! A running `octo-budget serve` for tests (tests/serve.rs,
//! tests/browser.rs): started on a free loopback port, killed when
//! dropped, and a GET helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::Env;

/// A running server, killed when dropped.
pub struct Served {
    pub child: Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve --listen 127.0.0.1:0` with `extra` flags and `envs`; the
/// first line on stdout names the port.
pub fn serve_with(env: &Env, extra: &[&str], envs: &[(&str, &str)]) -> Served {
    let mut cmd = env.std_cmd();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--ingest-every", "1s"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("octo-budget serve: listening on ")
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    Served { child, base }
}

pub fn serve(env: &Env) -> Served {
    serve_with(env, &[], &[])
}

/// GET `path`: status and body.
pub fn get_auth(s: &Served, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(&format!("{}{path}", s.base)).timeout(Duration::from_secs(30));
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    match req.call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("GET {path}: {e}"),
    }
}
