//! The dashboard in a real browser (#17): headless Chromium (Debian's
//! `chromium`, a fresh profile, background networking off) driven over the
//! DevTools protocol loads `octo-budget serve`'s page, finds each arm with
//! its month's figure, sees a transcript line appended afterwards appear
//! by the page's own refresh (no reload), reads the page without
//! JavaScript and on a phone-sized screen, and saves screenshots under
//! the target dir.
//!
//! Without a browser the test is skipped with a message, except with
//! CI=true, where a missing browser is a failure (`.ci/run` installs it).
//! OCTO_BUDGET_CHROMIUM names another binary.

mod common;
#[path = "common/server.rs"]
mod server;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{assistant, exact_micros, usage, Env};
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OCTO_BUDGET_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A headless Chromium, its whole process group killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    devtools: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test started.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Browser {
    fn start(bin: &PathBuf) -> Browser {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("chromium starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = String::new();
        let devtools = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(ws) = l.strip_prefix("DevTools listening on ") {
                        break ws.trim().to_owned();
                    }
                    said.push_str(&l);
                    said.push('\n');
                }
                _ => panic!("chromium did not start its DevTools endpoint: {said}"),
            }
        };
        // Keep reading its stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Browser {
            child,
            _profile: profile,
            devtools,
        }
    }

    /// The DevTools session of the browser's first page.
    fn page(&self) -> Page {
        let host = self
            .devtools
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let list = ureq::get(&format!("http://{host}/json/list"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let list: Value = serde_json::from_str(&list).unwrap();
        let url = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let stream = TcpStream::connect(&host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools websocket");
        Page { ws, next: 1 }
    }
}

struct Page {
    ws: WebSocket<TcpStream>,
    next: u64,
}

impl Page {
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).unwrap();
        loop {
            if let Message::Text(t) = self.ws.read().expect("a DevTools message") {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// Loads `url` and waits for the arms' rows.
    fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait("the page", |p| {
            p.eval("document.readyState === 'complete' && document.querySelectorAll('tr[data-arm]').length > 0")
                == true
        });
    }

    /// Each row's arm and its month's figure, as shown.
    fn months(&mut self) -> Vec<(String, String)> {
        let v = self.eval(
            "Array.from(document.querySelectorAll('tr[data-arm]')).map(r => [r.dataset.arm, r.querySelector('td.month').innerText.trim()])",
        );
        serde_json::from_value(v).unwrap()
    }

    fn wait(&mut self, what: &str, mut done: impl FnMut(&mut Page) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !done(self) {
            assert!(Instant::now() < deadline, "waited too long for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&mut self, name: &str) -> PathBuf {
        // The whole page, not only the window.
        let size = self
            .eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]");
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }
}

/// `$1.23` from micro-dollars, as the dashboard shows money.
fn cents(micros: i64) -> String {
    let c = (micros + 5_000) / 10_000;
    format!("${}.{:02}", c / 100, c % 100)
}

#[test]
fn the_dashboard_in_headless_chromium() {
    let Some(bin) = chromium() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and no Chromium (apt-get install -y chromium; .ci/run does)");
        }
        eprintln!("SKIPPED: no Chromium at /usr/bin/chromium (apt-get install -y chromium, or set OCTO_BUDGET_CHROMIUM)");
        return;
    };
    let env = Env::with_fixtures();
    let s = server::serve(&env);
    let report = env.report_json(&[]);
    let expected: Vec<(String, String)> = report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["arm"].as_str().unwrap().to_owned(),
                cents(exact_micros(&a["cost_usd"])),
            )
        })
        .collect();
    assert_eq!(expected.len(), 4);

    let browser = Browser::start(&bin);
    let mut page = browser.page();
    page.open(&format!("{}/", s.base));
    let shown = page.months();
    for (arm, month) in &expected {
        assert!(
            shown.contains(&(arm.clone(), month.clone())),
            "{arm} {month} not shown: {shown:?}"
        );
    }
    let gamma_before = cents(exact_micros(&report["arms"][3]["cost_usd"]));
    assert_eq!(report["arms"][3]["arm"], "gamma");
    page.screenshot("dashboard-desktop.png");

    // A new transcript line for gamma: $1.00 of Haiku 4.5 input. The page
    // shows it by its own refresh, without a reload.
    page.eval("window.__same_page = true");
    env.append(
        "-work-clients-gamma/s-gamma-new.jsonl",
        &[assistant(
            "s-gamma-new",
            "/work/clients/gamma",
            "msg_new",
            "req_new",
            "2026-11-27T12:00:00Z",
            "claude-haiku-4-5-20251001",
            usage(1_000_000, 0),
        )],
    );
    let gamma_after = cents(exact_micros(&report["arms"][3]["cost_usd"]) + 1_000_000);
    assert_ne!(gamma_before, gamma_after);
    page.wait("the new line on the page", |p| {
        p.months()
            .contains(&("gamma".to_owned(), gamma_after.clone()))
    });
    assert_eq!(page.eval("window.__same_page === true"), true, "reloaded");
    let note = page.eval("document.getElementById('refresh').innerText");
    assert!(note.as_str().unwrap().starts_with("Live"), "{note}");
    page.screenshot("dashboard-refreshed.png");

    // On a phone: no table header, one card per arm, nothing wider than
    // the screen.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    page.open(&format!("{}/", s.base));
    assert_eq!(
        page.eval("getComputedStyle(document.querySelector('thead')).display"),
        "none"
    );
    let wide = page.eval("document.documentElement.scrollWidth");
    assert!(wide.as_i64().unwrap() <= 390, "scrolls sideways: {wide}");
    page.screenshot("dashboard-phone.png");
    page.call("Emulation.clearDeviceMetricsOverride", json!({}));

    // Without JavaScript: the same figures, served as a table.
    page.call(
        "Emulation.setScriptExecutionDisabled",
        json!({"value": true}),
    );
    page.open(&format!("{}/", s.base));
    let shown = page.months();
    assert!(
        shown.contains(&("gamma".to_owned(), gamma_after.clone())),
        "{shown:?}"
    );
}
