//! The inbox console in a real browser (Debian's Chromium, headless, driven
//! over WebDriver by `chromedriver`), and its access rules over plain
//! HTTP.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use ricloud_webhook_inbox::{Inbox, RowState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ops::get;
use crate::{event_body, eventually, id, Api, Process, TempDir};

const TOKEN: &str = "console-test-token-5e1d";

/// `chromedriver` on a free port; killed when dropped.
struct Driver(Child, u16);

impl Driver {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/test.sh installs Debian's chromium-driver)");
        let driver = Self(child, port);
        eventually(
            "chromedriver listening",
            Duration::from_secs(20),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            },
        )
        .await;
        driver
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,860"],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.1))
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `task.failed` event with id `id`.
fn failing_body(id: &str) -> Vec<u8> {
    let mut event: serde_json::Value = serde_json::from_slice(&event_body(id)).expect("json");
    event["action"] = "failed".into();
    event["data"]["state"] = "failed".into();
    serde_json::to_vec(&event).expect("json")
}

async fn until_state(inbox: &Inbox, id: &str, state: RowState) {
    eventually(
        &format!("{id} {state}"),
        Duration::from_secs(30),
        || async { inbox.get(id).await.is_ok_and(|s| s.row.state == state) },
    )
    .await;
}

/// Where the test saves its screenshots: the README's `docs/` when
/// `RICLOUD_WEBHOOK_SCREENSHOTS=docs` asks it to refresh them, else `dir`,
/// so an ordinary run leaves the work tree as it was.
fn screenshots(dir: &Path) -> PathBuf {
    if std::env::var_os("RICLOUD_WEBHOOK_SCREENSHOTS").is_some_and(|v| v == "docs") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
    } else {
        dir.to_path_buf()
    }
}

/// Saves a screenshot of the page as `name`, checking it is a PNG.
async fn screenshot(browser: &Client, dir: &Path, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let dir = screenshots(dir);
    std::fs::create_dir_all(&dir).expect("the screenshots' directory");
    std::fs::write(dir.join(name), png).expect("save the screenshot");
}

/// Waits until `css` is on the page and returns its text. A navigation in
/// progress (after a submit or a click) can abort a find or stale the
/// element found ("aborted by navigation"): then it looks again, as a
/// person would once the page has loaded.
async fn text(browser: &Client, css: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let found = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await,
            Err(e) => Err(e),
        };
        match found {
            Ok(text) => return text,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{css}: {e}"),
        }
    }
}

async fn rows(browser: &Client) -> usize {
    browser
        .find_all(Locator::Css("#events tbody tr"))
        .await
        .expect("rows")
        .len()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Chromium: scripts/test.sh installs it and runs these"]
async fn an_operator_finds_a_dead_event_replays_it_and_watches_new_ones_arrive() {
    let dir = TempDir::new("console");
    let fail = dir.path().join("fail");
    std::fs::write(&fail, "").expect("the failing switch");
    let receiver = Process::start(
        dir.path(),
        &[
            ("RICLOUD_WEBHOOK_CONSOLE_TOKEN", TOKEN),
            ("RICLOUD_WEBHOOK_FAIL_WHILE", fail.to_str().expect("a path")),
        ],
    );
    let admin = receiver.admin.clone().expect("an admin listener");
    let api = Api::new();
    let base = receiver.base();
    for n in 1..=3 {
        assert_eq!(api.deliver(&base, &event_body(&id(n))).await, Some(200));
    }
    for n in 11..=14 {
        assert_eq!(api.deliver(&base, &failing_body(&id(n))).await, Some(200));
    }
    let inbox = Inbox::connect_existing(&format!(
        "sqlite://{}",
        dir.path().join("ricloud-webhook.db").display()
    ))
    .await
    .expect("the inbox");
    for n in 11..=14 {
        until_state(&inbox, &id(n), RowState::Dead).await;
    }

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let console = format!("http://{admin}/console");

    // Without the token: no data.
    browser.goto(&console).await.expect("goto");
    assert!(text(&browser, "body").await.contains("needs its token"));
    browser
        .goto(&format!("{console}/login?token=wrong"))
        .await
        .expect("goto");
    assert!(text(&browser, "body").await.contains("needs its token"));

    // Logged in: the list, newest first, with the counts.
    browser
        .goto(&format!("{console}/login?token={TOKEN}"))
        .await
        .expect("goto");
    let counts = text(&browser, "p.counts").await;
    assert!(counts.contains("dead 4"), "{counts}");
    assert_eq!(rows(&browser).await, 7);

    // By filter: the dead ones.
    let form = browser
        .form(Locator::Css("form.filters"))
        .await
        .expect("the filters");
    form.set_by_name("state", "dead").await.expect("state");
    form.submit().await.expect("submit");
    text(&browser, "option[value=dead][selected]").await;
    assert_eq!(rows(&browser).await, 4);

    // By id: one; open it and read why it failed.
    let dead = id(12);
    let form = browser
        .form(Locator::Css("form.filters"))
        .await
        .expect("the filters");
    form.set_by_name("state", "").await.expect("state");
    form.set_by_name("id", &dead).await.expect("id");
    form.submit().await.expect("submit");
    text(&browser, &format!("input[name=id][value='{dead}']")).await;
    assert_eq!(rows(&browser).await, 1);
    browser
        .find(Locator::LinkText(&dead))
        .await
        .expect("the event's link")
        .click()
        .await
        .expect("click");
    let reason = text(&browser, "#last-error").await;
    assert!(reason.contains("downstream refused task"), "{reason}");
    assert!(text(&browser, "#body").await.contains(&dead));
    screenshot(&browser, dir.path(), "console-detail.png").await;

    // The handler may succeed now: replay it and watch it turn done.
    std::fs::remove_file(&fail).expect("the failing switch");
    browser
        .find(Locator::Id("replay"))
        .await
        .expect("the replay button")
        .click()
        .await
        .expect("click");
    assert!(text(&browser, "p.notice")
        .await
        .contains("Put back to pending"));
    let detail = browser.current_url().await.expect("url");
    eventually(
        "the event done in the page",
        Duration::from_secs(30),
        || async {
            browser.goto(detail.as_str()).await.expect("reload");
            text(&browser, "dd .state").await == "done"
        },
    )
    .await;

    // Bulk: the three still dead, counted before anything runs.
    browser
        .goto(&format!("{console}/replay?state=dead"))
        .await
        .expect("goto");
    let count = text(&browser, "#replay-count").await;
    assert!(count.starts_with("3 event(s) match"), "{count}");
    assert_eq!(
        inbox.stats().await.expect("stats").dead,
        3,
        "the count ran nothing"
    );
    browser
        .find(Locator::Id("confirm"))
        .await
        .expect("the confirmation")
        .click()
        .await
        .expect("click");
    let done = text(&browser, "#replayed").await;
    assert!(done.contains("Put 3 event(s) back to pending"), "{done}");
    for n in 11..=14 {
        until_state(&inbox, &id(n), RowState::Done).await;
    }

    // The live tail: a new delivery shows up in the open list.
    browser.goto(&console).await.expect("goto");
    assert_eq!(rows(&browser).await, 7);
    let fresh = id(21);
    assert_eq!(api.deliver(&base, &event_body(&fresh)).await, Some(200));
    browser
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(&format!("tr[data-id='{fresh}']")))
        .await
        .expect("the new event in the list, without a reload");
    screenshot(&browser, dir.path(), "console-list.png").await;
    browser.close().await.expect("close");
}

/// A request with `cookie`; the status and the body.
async fn request(addr: &str, method: &str, path: &str, cookie: &str, form: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, answer)
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_token_nothing_and_without_csrf_no_change() {
    let dir = TempDir::new("console-access");
    let receiver = Process::start(dir.path(), &[("RICLOUD_WEBHOOK_CONSOLE_TOKEN", TOKEN)]);
    let admin = receiver.admin.clone().expect("an admin listener");
    let mut event: serde_json::Value = serde_json::from_slice(&event_body(&id(1))).expect("json");
    event["data"]["note"] = "<script>alert(1)</script>".into();
    let body = serde_json::to_vec(&event).expect("json");
    assert_eq!(Api::new().deliver(&receiver.base(), &body).await, Some(200));
    receiver.until_handled(&id(1)).await;

    // No session: 401 and no data on every page and action.
    let detail = format!("/console/events/{}", id(1));
    for path in [
        "/console",
        "/console/tail",
        detail.as_str(),
        "/console/replay?state=dead",
    ] {
        let (status, page) = get(&admin, path).await;
        assert_eq!(status, 401, "{path}");
        assert!(!page.contains(&id(1)), "{path}: {page}");
    }
    for path in [
        format!("{detail}/replay"),
        "/console/replay".to_owned(),
        "/console/purge".to_owned(),
    ] {
        let (status, _) = request(&admin, "POST", &path, "", "csrf=x&done_before=0s").await;
        assert_eq!(status, 401, "{path}");
    }
    // The public listener has no console.
    assert_eq!(get(&receiver.addr, "/console").await.0, 404);

    // A session, with its cookie's attributes.
    let (status, login) = request(
        &admin,
        "GET",
        &format!("/console/login?token={TOKEN}"),
        "",
        "",
    )
    .await;
    assert_eq!(status, 303, "{login}");
    let set_cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookie = set_cookie
        .split_once(':')
        .and_then(|(_, v)| v.trim().split(';').next())
        .expect("name=value")
        .to_owned();

    // The body is shown as text, the page forbids scripts from elsewhere.
    let (status, page) = request(&admin, "GET", &detail, &cookie, "").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    let csp = page
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("content-security-policy:")
        })
        .expect("a CSP");
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"));

    // A change without the form's CSRF token is refused and changes nothing.
    for form in ["", "csrf=forged"] {
        let (status, _) = request(
            &admin,
            "POST",
            "/console/purge",
            &cookie,
            &format!("{form}&done_before=0s"),
        )
        .await;
        assert_eq!(status, 403, "{form:?}");
        let (status, _) = request(&admin, "POST", &format!("{detail}/replay"), &cookie, form).await;
        assert_eq!(status, 403, "{form:?}");
    }
    let (_, page) = request(&admin, "GET", &detail, &cookie, "").await;
    assert!(
        page.contains("state-done"),
        "the event was not replayed: {page}"
    );
    // With it, the replay runs and says so.
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's CSRF token")
        .to_owned();
    let (status, answer) = request(
        &admin,
        "POST",
        &format!("{detail}/replay"),
        &cookie,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(status, 303, "{answer}");
    assert!(answer.contains("Put%20back%20to%20pending"), "{answer}");
}
