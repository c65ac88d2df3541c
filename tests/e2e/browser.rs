//! The web dashboard in a real headless browser: Debian's Chromium driven
//! through chromedriver (WebDriver) with fantoccini, against a real server
//! and a local fixture site.
//!
//! These tests FAIL when the browser is missing; install it with
//! `apt-get install -y chromium chromium-driver` (paths can be overridden
//! with `MEDIADL_E2E_CHROMIUM` and `MEDIADL_E2E_CHROMEDRIVER`). Screenshots
//! of every page go to `target/e2e-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use mediadl_e2e::{ADMIN_PASSWORD, FixtureFile, FixtureSite, TestServer, png_fixture};
use serde_json::{Value, json};

/// How long a condition may take before the test gives up on it (a wait,
/// not a speed assertion: a slow machine only makes the test slower).
const PATIENCE: Duration = Duration::from_secs(60);

fn chromium_path() -> PathBuf {
    std::env::var_os("MEDIADL_E2E_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn chromedriver_path() -> PathBuf {
    std::env::var_os("MEDIADL_E2E_CHROMEDRIVER")
        .map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from)
}

/// `target/e2e-screenshots/`, next to the build's other artifacts.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("e2e-screenshots")
}

/// A headless Chromium session with its own profile, closed on drop.
struct Browser {
    client: Client,
    base: String,
    /// Screenshot names are prefixed with the test's name.
    test: &'static str,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(base: &str, test: &'static str) -> Self {
        let chromium = chromium_path();
        let driver_bin = chromedriver_path();
        assert!(
            chromium.exists() && driver_bin.exists(),
            "the browser tests need {} and {}: install them with `apt-get install -y chromium chromium-driver`",
            chromium.display(),
            driver_bin.display()
        );
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port");
            probe.local_addr().expect("the probe's port").port()
        };
        let driver = tokio::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", driver_bin.display()));
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!("an object literal"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) if started.elapsed() < PATIENCE => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("chromedriver did not start a session: {err}"),
            }
        };
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            test,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|err| panic!("opening {path}: {err}"));
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|err| panic!("script failed: {err}\n{script}"))
    }

    /// Waits until `script` (a function body) returns a truthy value, and
    /// returns it; on timeout saves a screenshot and fails with `what`.
    async fn wait_js(&self, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self
                .client
                .execute(script, vec![])
                .await
                .unwrap_or(Value::Null);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > PATIENCE {
                self.screenshot(&format!("FAILED-{}", what.replace(' ', "-")))
                    .await;
                let body = self.js("return document.body.innerText").await;
                panic!(
                    "waited {PATIENCE:?} for {what}; the page says:\n{}",
                    body.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_css(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(err) => {
                self.screenshot(&format!(
                    "FAILED-{}",
                    css.replace(|c: char| !c.is_alphanumeric(), "_")
                ))
                .await;
                let body = self.js("return document.body.innerText").await;
                panic!(
                    "waiting for `{css}`: {err}; the page says:\n{}",
                    body.as_str().unwrap_or("")
                );
            }
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let input = self.wait_css(css).await;
        input
            .clear()
            .await
            .unwrap_or_else(|err| panic!("clearing {css}: {err}"));
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("typing into {css}: {err}"));
    }

    async fn click(&self, css: &str) {
        let element = self.wait_css(css).await;
        element
            .click()
            .await
            .unwrap_or_else(|err| panic!("clicking {css}: {err}"));
    }

    /// Waits for a page of the app to finish loading: its section exists and
    /// no skeleton placeholder is left.
    async fn wait_page(&self, page: &str) {
        self.wait_js(
            &format!("the {page} page"),
            &format!(
                "const s = document.querySelector('section[data-page=\"{page}\"]');
                 return !!s && !s.querySelector('.skeleton') && !document.querySelector('[aria-busy=true]');"
            ),
        )
        .await;
    }

    async fn screenshot(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("creating {}: {err}", dir.display()));
        match self.client.screenshot().await {
            Ok(png) => {
                let path = dir.join(format!("{}-{name}.png", self.test));
                std::fs::write(&path, png)
                    .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
            }
            Err(err) => eprintln!("screenshot {name} failed: {err}"),
        }
    }

    async fn login(&self, username: &str, password: &str) {
        self.goto("/login").await;
        self.fill("input[name=username]", username).await;
        self.fill("input[name=password]", password).await;
        self.click("form button[type=submit]").await;
        self.wait_page("dashboard").await;
    }

    async fn logout(&self) {
        self.click("#logout").await;
        self.wait_css("section[data-page=login] input[name=username]")
            .await;
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// The API as a plain client, for setting up data the browser then shows.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn login(base: &str, username: &str, password: &str) -> Self {
        let http = reqwest::Client::new();
        let response: Value = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login request")
            .error_for_status()
            .expect("login accepted")
            .json()
            .await
            .expect("login body");
        Self {
            http,
            base: base.to_owned(),
            token: response["access_token"]
                .as_str()
                .expect("an access token")
                .to_owned(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API request");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "{method} {path}: HTTP {status}: {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Queues a direct download of `url` and waits until its record exists.
    async fn download(&self, url: &str) -> Value {
        self.send(
            reqwest::Method::POST,
            "/queue",
            Some(json!({"url": url, "platform": "direct", "content_type": "file", "source": "fixtures"})),
        )
        .await;
        let started = Instant::now();
        loop {
            let list = self
                .send(reqwest::Method::GET, "/downloads?per_page=200", None)
                .await;
            if let Some(item) = list["items"]
                .as_array()
                .and_then(|items| items.iter().find(|d| d["url"] == url))
            {
                return item.clone();
            }
            assert!(started.elapsed() < PATIENCE, "{url} was not downloaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn fixture_site() -> FixtureSite {
    let png = png_fixture(640, 480).expect("a PNG fixture");
    FixtureSite::start(vec![
        // About 2 s per download: long enough to show progress on the way.
        FixtureFile {
            path: "/media/slow-photo.png".into(),
            content_type: "image/png",
            body: png.clone(),
            pieces: 20,
            pause: Duration::from_millis(100),
        },
        FixtureFile {
            path: "/media/photo.png".into(),
            content_type: "image/png",
            body: png,
            pieces: 1,
            pause: Duration::ZERO,
        },
    ])
    .await
    .expect("the fixture site")
}

/// The five pages every signed-in user has, and the two admin pages.
const PAGES: [(&str, &str); 9] = [
    ("/dashboard", "dashboard"),
    ("/downloads", "downloads"),
    ("/queue", "queue"),
    ("/scheduler", "scheduler"),
    ("/platforms", "platforms"),
    ("/settings", "settings"),
    ("/logs", "logs"),
    ("/users", "users"),
    ("/login", "login"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_errors_then_every_page_renders_from_its_url_and_the_nav_bar() {
    let server = TestServer::start().await.expect("server");
    let site = fixture_site().await;
    Api::login(&server.base_url(), "admin", ADMIN_PASSWORD)
        .await
        .download(&site.url("/media/photo.png"))
        .await;
    let browser = Browser::start(&server.base_url(), "pages").await;

    // A page URL without a session leads to the login page, which keeps the target.
    browser.goto("/scheduler").await;
    browser
        .wait_css("section[data-page=login] input[name=username]")
        .await;
    browser.screenshot("login").await;
    browser.fill("input[name=username]", "admin").await;
    browser.fill("input[name=password]", "wrong password").await;
    browser.click("form button[type=submit]").await;
    let error = browser
        .wait_js(
            "a login error",
            "return document.getElementById('login-error')?.textContent",
        )
        .await;
    assert!(
        error
            .as_str()
            .unwrap()
            .contains("Incorrect username or password"),
        "{error}"
    );
    browser.fill("input[name=password]", ADMIN_PASSWORD).await;
    browser.click("form button[type=submit]").await;
    browser.wait_page("scheduler").await;

    // Every page from its URL, without an error state.
    for (path, page) in PAGES.iter().filter(|(path, _)| *path != "/login") {
        browser.goto(path).await;
        browser.wait_page(page).await;
        let errors = browser
            .js("return document.querySelectorAll('.empty.error').length")
            .await;
        assert_eq!(errors, json!(0), "{path} shows an error state");
        let title = browser
            .js("return document.getElementById('page-title')?.textContent")
            .await;
        assert!(
            title.as_str().is_some_and(|t| !t.is_empty()),
            "{path} has a heading"
        );
        browser.screenshot(page).await;
    }

    // The nav bar reaches every page, and marks the current one.
    browser.goto("/dashboard").await;
    browser.wait_page("dashboard").await;
    for (path, page) in PAGES.iter().filter(|(path, _)| *path != "/login") {
        browser.click(&format!("#nav-links a[href='{path}']")).await;
        browser.wait_page(page).await;
        let current = browser.js("return document.querySelector('#nav-links a[aria-current=page]')?.getAttribute('href')").await;
        assert_eq!(current, json!(path));
    }

    // Phone width and the dark theme.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("phone size");
    browser.goto("/dashboard").await;
    browser.wait_page("dashboard").await;
    browser.screenshot("dashboard-phone").await;
    let overflow = browser
        .js("return document.documentElement.scrollWidth > document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, json!(false), "the dashboard fits a phone's width");
    browser
        .client
        .set_window_size(1280, 900)
        .await
        .expect("desktop size");
    browser.click("#theme-toggle").await; // auto → light
    browser.click("#theme-toggle").await; // light → dark
    let theme = browser
        .js("return document.documentElement.dataset.theme")
        .await;
    assert_eq!(theme, json!("dark"));
    browser.goto("/downloads").await;
    browser.wait_page("downloads").await;
    browser.screenshot("downloads-dark").await;

    // Sign out returns to the login page and forgets the session.
    browser.logout().await;
    browser.goto("/queue").await;
    browser.wait_css("section[data-page=login]").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_url_shows_live_progress_to_100_percent_then_appears_in_history_with_its_thumbnail()
 {
    let server = TestServer::start().await.expect("server");
    let site = fixture_site().await;
    let url = site.url("/media/slow-photo.png");
    let browser = Browser::start(&server.base_url(), "queue").await;
    browser.login("admin", ADMIN_PASSWORD).await;

    browser.goto("/queue").await;
    browser.wait_page("queue").await;
    browser
        .wait_js(
            "the live connection",
            "return document.getElementById('live-state').dataset.state === 'live'",
        )
        .await;
    // A pasted URL shows the platform it will use before it is queued.
    let recognised = |platform: &str| {
        format!(
            "const p = document.querySelector('form[data-add-form] [data-recognised]');
             return p.dataset.platform === {platform:?} && p.textContent.startsWith('Will use: ') && p.textContent;"
        )
    };
    browser
        .fill(
            "form[data-add-form] input[name=url]",
            "https://www.instagram.com/evalongoria/reels/",
        )
        .await;
    let shown = browser
        .wait_js("the recognised platform", &recognised("instagram"))
        .await;
    assert_eq!(shown, json!("Will use: instagram · evalongoria · reels"));
    browser
        .fill("form[data-add-form] input[name=url]", &url)
        .await;
    browser
        .wait_js("the recognised platform", &recognised("direct"))
        .await;
    browser
        .click("form[data-add-form] button[type=submit]")
        .await;

    // Follow the row's progress bar, as the WebSocket moves it, to 100%.
    let row_progress = format!(
        "const row = [...document.querySelectorAll('tr[data-queue-id]')].find(r => r.textContent.includes({url:?}));
         if (!row) return null;
         return [row.querySelector('[role=progressbar]').getAttribute('aria-valuenow'), row.dataset.status,
                 row.querySelector('.progress-meta').textContent];"
    );
    let mut seen = Vec::new();
    let started = Instant::now();
    loop {
        let state = browser.js(&row_progress).await;
        if let Some([percent, status, meta]) = state.as_array().map(Vec::as_slice) {
            let percent = percent.as_str().unwrap_or("0").to_owned();
            if seen.last() != Some(&percent) {
                seen.push(percent.clone());
                if seen.len() == 2 {
                    browser.screenshot("queue-in-progress").await;
                }
            }
            if status == "failed" {
                panic!("the download failed: {meta}");
            }
            if percent == "100" && status == "completed" {
                break;
            }
        }
        assert!(started.elapsed() < PATIENCE, "progress stopped at {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("progress values seen in the queue row: {seen:?}");
    let bar = browser
        .js(&format!(
            "const row = [...document.querySelectorAll('tr[data-queue-id]')].find(r => r.textContent.includes({url:?}));
             return row.querySelector('.progress').classList.contains('done') && row.querySelector('.bar').style.transform;"
        ))
        .await;
    assert_eq!(bar, json!("scaleX(1)"), "the bar is drawn full");
    browser.screenshot("queue-completed").await;

    // The history lists it, with a thumbnail loaded from a signed link to
    // the thumbnail endpoint (no access token in the URL).
    browser.click("#nav-links a[href='/downloads']").await;
    browser.wait_page("downloads").await;
    let thumbnail = browser
        .wait_js(
            "the thumbnail in history",
            &format!(
                "const row = [...document.querySelectorAll('tr[data-id]')].find(r => r.textContent.includes({url:?}));
                 const img = row && row.querySelector('img[data-thumbnail]');
                 if (!img) return null;
                 img.scrollIntoView();
                 return img.src.includes('/thumbnail?') && img.src.includes('signature=') && !img.src.includes('token=') && img.complete && img.naturalWidth > 0 ? img.naturalWidth : null;"
            ),
        )
        .await;
    assert!(
        thumbnail.as_u64().is_some_and(|w| w > 0 && w <= 640),
        "thumbnail width {thumbnail}"
    );
    browser.screenshot("history").await;

    // The preview opens the file itself in a lightbox.
    browser.click("tr[data-id] .thumb-btn").await;
    browser
        .wait_js(
            "the image preview",
            "const img = document.querySelector('dialog .lightbox img'); return !!img && img.complete && img.naturalWidth === 640;",
        )
        .await;
    browser.screenshot("preview").await;

    // Filters live in the URL: reloading keeps them.
    browser.goto("/downloads?status=failed").await;
    browser.wait_page("downloads").await;
    let status = browser
        .js("return document.querySelector('select[name=status]').value")
        .await;
    assert_eq!(status, json!("failed"));
    browser
        .wait_js("the filtered empty state", "return document.querySelector('section[data-page=downloads] .empty')?.textContent.includes('No downloads match')")
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_schedule_previews_and_then_shows_its_next_runs() {
    let server = TestServer::start().await.expect("server");
    let site = fixture_site().await;
    let browser = Browser::start(&server.base_url(), "scheduler").await;
    browser.login("admin", ADMIN_PASSWORD).await;
    browser.goto("/scheduler").await;
    browser.wait_page("scheduler").await;
    browser.click("[data-new-job]").await;
    browser.wait_css("form[data-job-form]").await;
    browser
        .fill("form[data-job-form] input[name=name]", "Fixture photos")
        .await;
    browser
        .fill(
            "form[data-job-form] input[name=source]",
            &site.url("/media/photo.png"),
        )
        .await;

    // An invalid expression is explained and has no preview.
    browser.fill("#job-schedule", "61 * * *").await;
    let error = browser
        .wait_js(
            "a cron error",
            "return document.querySelector('[data-cron-error]').textContent",
        )
        .await;
    assert!(error.as_str().unwrap().contains("5 fields"), "{error}");
    assert_eq!(
        browser
            .js("return document.querySelectorAll('[data-next-runs] li').length")
            .await,
        json!(0)
    );

    browser.fill("#job-schedule", "0 */6 * * *").await;
    let runs = browser
        .wait_js("five previewed runs", "const n = document.querySelectorAll('[data-next-runs] li').length; return n === 5 ? n : null;")
        .await;
    assert_eq!(runs, json!(5));
    browser.screenshot("new-schedule").await;
    browser
        .click("form[data-job-form] button[type=submit]")
        .await;

    let next_run = browser
        .wait_js(
            "the job's next run",
            "const row = [...document.querySelectorAll('tr[data-job-id]')].find(r => r.textContent.includes('Fixture photos'));
             const time = row && row.querySelector('[data-next-run] time');
             return time ? time.getAttribute('datetime') : null;",
        )
        .await;
    // The server's next run is one of the six-hourly slots the preview showed.
    let next_run = next_run.as_str().unwrap().to_owned();
    let hour = browser
        .js(&format!("return new Date({next_run:?}).getUTCHours() % 6 === 0 && new Date({next_run:?}).getUTCMinutes() === 0"))
        .await;
    assert_eq!(hour, json!(true), "next run {next_run} is on the schedule");
    let human = browser
        .js("return [...document.querySelectorAll('tr[data-job-id]')].find(r => r.textContent.includes('Fixture photos')).children[1].textContent")
        .await;
    assert!(human.as_str().unwrap().contains("0 */6 * * *"), "{human}");
    browser.screenshot("schedules").await;

    // Run now records a run in the history.
    browser.click("tr[data-job-id] td.actions button").await;
    browser
        .wait_js(
            "a run in the history",
            "return document.querySelector('table[data-history] tbody tr:not(.skeleton-row) .badge')?.textContent",
        )
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_setting_persists_after_a_reload_and_bad_values_are_explained() {
    let server = TestServer::start().await.expect("server");
    let browser = Browser::start(&server.base_url(), "settings").await;
    browser.login("admin", ADMIN_PASSWORD).await;
    browser.goto("/settings").await;
    browser.wait_page("settings").await;
    let field = "input[name='general.concurrent_downloads']";

    // Out of range: refused before sending, with the allowed range.
    browser.fill(field, "99").await;
    browser.click("[data-save]").await;
    let error = browser
        .wait_js(
            "a field error",
            &format!("return document.querySelector(\"{field}\").closest('.field').querySelector('.field-error').textContent"),
        )
        .await;
    assert!(
        error.as_str().unwrap().contains("between 1 and 64"),
        "{error}"
    );

    browser.fill(field, "7").await;
    browser.click("[data-save]").await;
    browser
        .wait_js(
            "the saved toast",
            "return document.getElementById('toasts').textContent.includes('Settings saved')",
        )
        .await;
    browser.client.refresh().await.expect("reload");
    browser.wait_page("settings").await;
    let value = browser
        .js(&format!("return document.querySelector(\"{field}\").value"))
        .await;
    assert_eq!(value, json!("7"), "the setting survived the reload");

    // Secrets are write-only: shown empty, never their value.
    let secrets = browser
        .js("return [...document.querySelectorAll('input[type=password]')].map(i => i.value).join('')")
        .await;
    assert_eq!(secrets, json!(""));
    browser.screenshot("settings-saved").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_delete_or_settings_controls() {
    let server = TestServer::start().await.expect("server");
    let site = fixture_site().await;
    let api = Api::login(&server.base_url(), "admin", ADMIN_PASSWORD).await;
    api.download(&site.url("/media/photo.png")).await;
    let browser = Browser::start(&server.base_url(), "viewer").await;
    browser.login("admin", ADMIN_PASSWORD).await;

    // The admin sees delete controls (so their absence below means something).
    browser.goto("/downloads").await;
    browser.wait_page("downloads").await;
    let admin_deletes = browser
        .js("return document.querySelectorAll('[data-action=delete]').length")
        .await;
    assert!(
        admin_deletes.as_u64().unwrap() > 0,
        "the admin sees delete buttons"
    );

    // The admin adds a viewer on the Users page.
    browser.goto("/users").await;
    browser.wait_page("users").await;
    browser.click("[data-add-user]").await;
    browser.fill("dialog input[name=username]", "watcher").await;
    browser
        .fill("dialog input[name=password]", "watcher-password")
        .await;
    browser
        .js("const s = document.querySelector('dialog select[name=role]'); s.value = 'viewer'; s.dispatchEvent(new Event('change')); return true;")
        .await;
    browser.click("dialog button[type=submit]").await;
    browser.wait_css("tr[data-user=watcher]").await;
    browser.screenshot("users").await;
    browser.logout().await;

    browser.login("watcher", "watcher-password").await;
    let nav = browser
        .js("return [...document.querySelectorAll('#nav-links a')].map(a => a.getAttribute('href'))")
        .await;
    let nav: Vec<&str> = nav
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !nav.contains(&"/settings") && !nav.contains(&"/users"),
        "viewer nav: {nav:?}"
    );
    assert!(
        nav.contains(&"/downloads") && nav.contains(&"/queue"),
        "viewer nav: {nav:?}"
    );

    for (path, page) in [
        ("/dashboard", "dashboard"),
        ("/downloads", "downloads"),
        ("/queue", "queue"),
        ("/scheduler", "scheduler"),
        ("/platforms", "platforms"),
        ("/logs", "logs"),
    ] {
        browser.goto(path).await;
        browser.wait_page(page).await;
        let controls = browser
            .js("return [...document.querySelectorAll('[data-action=delete], [data-settings], [data-add-form], [data-new-job], [data-bulk], input[type=checkbox][value]')].length")
            .await;
        assert_eq!(
            controls,
            json!(0),
            "{path} shows a control a viewer may not use"
        );
        browser.screenshot(&format!("viewer-{page}")).await;
    }
    // The history still lists the download, only without controls.
    browser.goto("/downloads").await;
    browser.wait_page("downloads").await;
    assert!(
        browser
            .js("return document.querySelectorAll('tr[data-id]').length")
            .await
            .as_u64()
            .unwrap()
            > 0
    );

    browser.goto("/settings").await;
    browser
        .wait_js(
            "the admin-only message",
            "return document.getElementById('main').textContent.includes('for administrators')",
        )
        .await;
    assert_eq!(
        browser
            .js("return document.querySelectorAll('[data-settings] input').length")
            .await,
        json!(0)
    );
    browser.screenshot("viewer-settings").await;
    browser.close().await;
}

/// First load of the dashboard: what crosses the wire, and when it is usable.
/// The size is a property of the build (asserted); the time is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_first_load_is_small() {
    let server = TestServer::start().await.expect("server");
    let browser = Browser::start(&server.base_url(), "first-load").await;
    browser.login("admin", ADMIN_PASSWORD).await;
    // A fresh load of the dashboard with a cold HTTP cache (same profile, cache disabled by reload flags).
    browser.goto("/dashboard").await;
    browser.wait_page("dashboard").await;
    let figures = browser
        .js("const nav = performance.getEntriesByType('navigation')[0];
             const resources = performance.getEntriesByType('resource').filter(r => !r.name.includes('/api/') && !r.name.startsWith('ws'));
             const encoded = resources.reduce((n, r) => n + r.encodedBodySize, nav.encodedBodySize);
             const decoded = resources.reduce((n, r) => n + r.decodedBodySize, nav.decodedBodySize);
             const ready = performance.getEntriesByName('mediadl:ready:dashboard')[0];
             return { encoded, decoded, files: resources.length + 1, dom_interactive_ms: nav.domInteractive,
                      load_ms: nav.loadEventEnd, data_on_screen_ms: ready ? ready.startTime : null };")
        .await;
    eprintln!("dashboard first load: {figures}");
    assert!(
        figures["data_on_screen_ms"].is_number(),
        "the dashboard marked itself ready: {figures}"
    );
    let encoded = figures["encoded"].as_u64().unwrap();
    assert!(encoded > 0, "resource sizes were measured: {figures}");
    assert!(
        encoded <= 200 * 1024,
        "the dashboard's assets are {encoded} bytes compressed, over 200 KB"
    );
    assert!(
        encoded < figures["decoded"].as_u64().unwrap(),
        "assets arrive compressed: {figures}"
    );
    browser.close().await;
}

/// The WebSocket comes back by itself after the server restarts, and live
/// updates flow again without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_updates_reconnect_after_a_server_restart() {
    let mut server = TestServer::start().await.expect("server");
    let site = fixture_site().await;
    let browser = Browser::start(&server.base_url(), "reconnect").await;
    browser.login("admin", ADMIN_PASSWORD).await;
    browser.goto("/queue").await;
    browser.wait_page("queue").await;
    let live = "return document.getElementById('live-state').dataset.state === 'live'";
    browser.wait_js("the live connection", live).await;

    server.stop().await;
    browser
        .wait_js(
            "the offline indicator",
            "return document.getElementById('live-state').dataset.state !== 'live'",
        )
        .await;
    browser.screenshot("offline").await;
    server.start_again().await.expect("server restarted");
    browser
        .wait_js("the reconnected live connection", live)
        .await;

    // A queue change made by another client shows up live in this page.
    let api = Api::login(&server.base_url(), "admin", ADMIN_PASSWORD).await;
    let url = site.url("/media/photo.png");
    api.download(&url).await;
    browser
        .wait_js(
            "the new item, pushed over the WebSocket",
            &format!(
                "const row = [...document.querySelectorAll('tr[data-queue-id]')].find(r => r.textContent.includes({url:?}));
                 return row && row.dataset.status === 'completed';"
            ),
        )
        .await;
    browser.close().await;
}

/// A `notification` event (here: the storage limit is reached) appears as a
/// toast whose action leads to the page it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_events_appear_as_toasts_with_their_action() {
    let server = TestServer::start().await.expect("server");
    let site = fixture_site().await;
    let api = Api::login(&server.base_url(), "admin", ADMIN_PASSWORD).await;
    api.download(&site.url("/media/photo.png")).await;
    // About one kilobyte: the download root already holds more.
    api.send(
        reqwest::Method::PATCH,
        "/settings",
        Some(json!({"general": {"storage_limit_gb": 0.000001}})),
    )
    .await;

    let browser = Browser::start(&server.base_url(), "notification").await;
    browser.login("admin", ADMIN_PASSWORD).await;
    browser
        .wait_js(
            "the live connection",
            "return document.getElementById('live-state').dataset.state === 'live'",
        )
        .await;
    api.send(
        reqwest::Method::POST,
        "/queue",
        Some(json!({"url": site.url("/media/slow-photo.png"), "platform": "direct", "content_type": "file"})),
    )
    .await;
    browser
        .wait_js(
            "the storage toast",
            "return [...document.querySelectorAll('#toasts .toast-warning')].some(t => t.textContent.includes('Storage limit reached'))",
        )
        .await;
    browser.screenshot("toast").await;
    browser
        .click("#toasts .toast-warning a[href='/settings']")
        .await;
    browser.wait_page("settings").await;
    browser.close().await;
}

/// A Chrome DevTools command through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    command: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.command, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}

/// 500 queue items receiving 2,000 progress events a second: the page keeps
/// every row right (on screen at once, off screen when scrolled to) and the
/// frame figures are reported (not asserted: speed belongs to benches).
///
/// The items are real (queued on the server, engine off so they stay put);
/// the events are fed to the page's own WebSocket object, so the whole path
/// from message to pixels is the dashboard's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_active_items_render_every_progress_event_batched_per_frame() {
    let server = TestServer::start_with(|config| config.run_engine = false)
        .await
        .expect("server");
    let api = Api::login(&server.base_url(), "admin", ADMIN_PASSWORD).await;
    let mut ids = Vec::new();
    for n in 0..500 {
        let item = api
            .send(
                reqwest::Method::POST,
                "/queue",
                Some(json!({"url": format!("http://127.0.0.1:9/item-{n}.jpg"), "platform": "direct", "content_type": "file"})),
            )
            .await;
        ids.push(item["id"].as_i64().expect("a queue id"));
    }

    let browser = Browser::start(&server.base_url(), "queue-500").await;
    // Keep a handle on the page's WebSocket (installed before any page script).
    browser
        .client
        .issue_cmd(Cdp {
            command: "Page.addScriptToEvaluateOnNewDocument",
            params: json!({"source": "(() => { const Native = window.WebSocket; window.__sockets = [];
                window.WebSocket = class extends Native { constructor(...args) { super(...args); window.__sockets.push(this); } }; })();"}),
        })
        .await
        .expect("CDP script");
    browser.login("admin", ADMIN_PASSWORD).await;
    browser.goto("/queue?per_page=500").await;
    browser.wait_page("queue").await;
    browser
        .wait_js(
            "500 rows and a live connection",
            "return document.querySelectorAll('tr[data-queue-id]').length === 500
                && document.getElementById('live-state').dataset.state === 'live'
                && window.__sockets.some(s => s.readyState === 1);",
        )
        .await;

    // Four seconds of events: every 10 ms, 20 items advance by one step, so
    // each item gets about four events a second; the last event of item i
    // carries progress 40 + i % 60.
    let figures = browser
        .client
        .execute_async(
            "const [ids, done] = arguments;
             const ws = window.__sockets.find(s => s.readyState === 1);
             const frames = []; const long = [];
             new PerformanceObserver(l => l.getEntries().forEach(e => long.push(e.duration))).observe({entryTypes: ['longtask']});
             let last = performance.now(); let running = true;
             const tick = (t) => { frames.push(t - last); last = t; if (running) requestAnimationFrame(tick); };
             requestAnimationFrame(tick);
             let sent = 0; let round = 0; const rounds = 400;
             const timer = setInterval(() => {
               for (let k = 0; k < 20; k++) {
                 const i = (round * 20 + k) % ids.length;
                 const step = Math.floor((round * 20 + k) / ids.length);
                 const final = 40 + i % 60;
                 const progress = Math.min(final, Math.round(final * (step + 1) / 16));
                 ws.onmessage({ data: JSON.stringify({ type: 'download_progress', timestamp: new Date().toISOString(), data: {
                   queue_id: ids[i], url: 'http://127.0.0.1:9/item-' + i + '.jpg', platform: 'direct', source: '127.0.0.1',
                   status: 'downloading', progress, items_downloaded: step, items_total: 16, current_item: 'item.jpg',
                   speed_mbps: 1.5, eta_seconds: 16 - step, bytes_downloaded: 0, bytes_total: null } }) });
                 sent++;
               }
               if (++round === rounds) {
                 clearInterval(timer);
                 // Send every item its final value once more, then let two frames pass.
                 ids.forEach((id, i) => ws.onmessage({ data: JSON.stringify({ type: 'download_progress', timestamp: new Date().toISOString(), data: {
                   queue_id: id, url: '', platform: 'direct', source: '127.0.0.1', status: 'downloading', progress: 40 + i % 60,
                   items_downloaded: 16, items_total: 16, current_item: null, speed_mbps: 1.5, eta_seconds: 0, bytes_downloaded: 0, bytes_total: null } }) }));
                 requestAnimationFrame(() => requestAnimationFrame(() => {
                   running = false;
                   const sorted = frames.slice(1).sort((a, b) => a - b);
                   const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
                   done({ events: sent + ids.length, frames: sorted.length, median_ms: at(0.5), p95_ms: at(0.95), max_ms: sorted[sorted.length - 1],
                          frames_over_20ms: sorted.filter(f => f > 20).length, long_tasks: long.length, longest_task_ms: Math.max(0, ...long) });
                 }));
               }
             }, 10);",
            vec![json!(ids)],
        )
        .await
        .expect("the event feed");
    eprintln!("500 items, progress events fed to the page: {figures}");
    assert_eq!(figures["events"], json!(8_500));

    // Rows on screen show their final values now; rows off screen show them
    // once scrolled into view.
    let check = "const rows = [...document.querySelectorAll('tr[data-queue-id]')];
                 return rows.filter(r => { const i = Number(r.querySelector('.url div').textContent.match(/item-(\\d+)/)[1]);
                   return r.querySelector('[role=progressbar]').getAttribute('aria-valuenow') !== String(40 + i % 60); })
                   .map(r => r.dataset.queueId);";
    browser.screenshot("top").await;
    browser
        .js("document.querySelector('tr[data-queue-id]:last-child').scrollIntoView(); return true;")
        .await;
    browser
        .wait_js("the last row drawn after scrolling", "const r = document.querySelector('tr[data-queue-id]:last-child');
            const i = Number(r.querySelector('.url div').textContent.match(/item-(\\d+)/)[1]);
            return r.querySelector('[role=progressbar]').getAttribute('aria-valuenow') === String(40 + i % 60);")
        .await;
    browser.screenshot("bottom").await;
    // Scroll through everything; afterwards no row may show a stale value.
    browser
        .js("return new Promise(async (resolve) => {
              const frame = () => new Promise(f => requestAnimationFrame(() => requestAnimationFrame(f)));
              window.scrollTo(0, 0); await frame();
              while (window.scrollY + window.innerHeight < document.documentElement.scrollHeight - 2) {
                window.scrollBy(0, window.innerHeight * 0.8); await frame();
              }
              await frame(); resolve(true); });")
        .await;
    let stale = browser.js(check).await;
    assert_eq!(stale, json!([]), "rows showing a stale progress value");
    let meta = browser
        .js("return document.querySelector('tr[data-queue-id] .progress-meta').textContent")
        .await;
    assert!(meta.as_str().unwrap().contains("16/16 items"), "{meta}");
    browser.close().await;
}
