//! The web dashboard: in a real headless Chromium against the real server, Docker and both
//! databases, and its security rules over plain HTTP.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use paas_tests::browser::{Browser, screenshot_dir};
use paas_tests::developer::Developer;
use paas_tests::{Db, TestServer, both_databases};
use reqwest::{Method, StatusCode};
use serde_json::json;

both_databases!(a_developer_works_through_the_dashboard, the_dashboard_guards_every_route);

const PASSWORD: &str = "correct horse battery";
const XSS: &str = "<script>alert(1)</script>";

/// An admin adds `email` with a password, and a token for their git pushes.
async fn add_user(server: &TestServer, email: &str) -> String {
    let user = json!({"email": email, "password": PASSWORD});
    let response = server.api(Method::POST, "/users").json(&user).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let login = json!({"email": email, "password": PASSWORD, "description": "test"});
    let url = format!("{}/api/v1/login", server.url);
    let body: serde_json::Value =
        server.http.post(url).json(&login).send().await.unwrap().json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

async fn sign_in(browser: &Browser, email: &str) {
    browser.find("#email").await.type_text(email).await;
    browser.find("#password").await.type_text(PASSWORD).await;
    browser.find("form button[type=submit]").await.click().await;
}

/// Submits the form whose button says `label` exactly.
async fn press(browser: &Browser, label: &str) {
    let script = format!(
        "const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === {label:?});\n\
         if (!b) return false; b.click(); return true;"
    );
    assert_eq!(browser.run(&script).await, json!(true), "no button {label:?}");
}

/// No `alert()` ran: a hostile value stayed text.
async fn assert_inert(browser: &Browser, page: &str) {
    let alert = browser.run("return typeof window.__alerted === 'undefined';").await;
    assert_eq!(alert, json!(true), "{page}");
    let source = browser.source().await;
    assert!(!source.contains(XSS), "{page} holds the script unescaped");
}

async fn a_developer_works_through_the_dashboard(db: Db) {
    let server = TestServer::start(db).await;
    let token = add_user(&server, "ann@example.com").await;
    let shots = screenshot_dir().join(format!("{db:?}").to_lowercase());
    let browser = Browser::start(1280).await;
    // Any alert() from a hostile value would set this flag.
    let trap = "window.alert = () => { window.__alerted = true; };";

    // Without a session every page sends to sign-in, and back after it.
    browser.goto(&format!("{}/apps", server.url)).await;
    browser.goto(&format!("{}/account", server.url)).await;
    assert!(browser.url().await.contains("/login?next=/account"), "{}", browser.url().await);
    browser.screenshot(&shots, "sign-in").await;
    sign_in(&browser, "ann@example.com").await;
    browser.wait_for_text("Your account", Duration::from_secs(10)).await;

    // Create an app.
    browser.goto(&format!("{}/", server.url)).await;
    browser.find("#new-app").await.type_text("web-demo").await;
    press(&browser, "Create").await;
    browser.wait_for_text("Created web-demo", Duration::from_secs(10)).await;

    // Paste config vars (one release), one of them hostile.
    browser.goto(&format!("{}/apps/web-demo/config", server.url)).await;
    let env = format!("# from .env\nGREETING=hello\nexport DEBUG=0\nNASTY={XSS}\n");
    browser.find("#paste").await.type_text(&env).await;
    press(&browser, "Set them all").await;
    let text = browser.wait_for_text("as v2", Duration::from_secs(10)).await;
    assert!(text.contains("Set DEBUG, GREETING, NASTY config vars as v2"), "{text}");
    browser.run(trap).await;
    assert_inert(&browser, "config").await;
    // A bad key is refused next to its field, and nothing is saved.
    browser.find("#key").await.type_text("BAD-KEY").await;
    browser.find("#value").await.type_text("x").await;
    press(&browser, "Set").await;
    let text = browser.wait_for_text("not a valid config var name", Duration::from_secs(10)).await;
    assert!(!text.contains("as v3"), "{text}");
    let config = server.get_json("/apps/web-demo/config").await;
    assert_eq!(config, json!({"GREETING": "hello", "DEBUG": "0", "NASTY": XSS}));
    browser.screenshot(&shots, "config").await;

    // The first deploy by git push, with a hostile commit message; then a feature branch,
    // pushed (kept, not deployed) and deployed from the dashboard, its log streaming to the
    // end.
    let dev = Developer::of(&server.url, &token, "python-stdlib");
    dev.paas(&["git:remote", "-a", "web-demo"]).success();
    dev.edit("app.py", "\"app\": \"python-stdlib\"", "\"app\": \"dashboard-v3\"");
    // At start it prints a config var (hostile) and a line redrawn with `\r`, as progress does.
    let start = "if __name__ == \"__main__\":\n";
    let prints = "    print('startup ' + os.environ.get('NASTY', ''), flush=True)\n    \
                  print('loading 10%\\rloading 99%', flush=True)\n";
    dev.edit("app.py", start, &format!("{start}{prints}"));
    dev.commit(XSS);
    dev.git(&["push", "paas", "main"]).success();
    dev.edit("app.py", "\"app\": \"dashboard-v3\"", "\"app\": \"feature-v4\"");
    dev.commit("Feature work");
    let out = dev.git(&["push", "paas", "HEAD:feature"]).success();
    assert!(out.contains("Updated `feature` without deploying"), "{out}");
    // A branch named like a script is listed as text.
    dev.git(&["push", "paas", &format!("HEAD:refs/heads/{XSS}")]).success();
    browser.goto(&format!("{}/apps/web-demo/deploy", server.url)).await;
    browser.run(trap).await;
    assert!(browser.text().await.contains(XSS), "the branch is listed");
    assert_inert(&browser, "deploy branches").await;
    press(&browser, "Deploy feature").await;
    let text = browser.wait_for_text("Released v4", Duration::from_secs(180)).await;
    assert!(text.contains("Deploy of feature"), "{text}");
    assert!(text.contains("-----> Deploying feature") && text.contains("for ann@example.com"));
    let page = server.app_request("web-demo.localhost", "/").await.text().await.unwrap();
    assert!(page.contains("feature-v4"), "{page}");
    let builds = server.get_json("/apps/web-demo/builds").await;
    assert_eq!(
        (&builds[0]["source"], &builds[0]["created_by"]),
        (&json!("dashboard"), &json!("ann@example.com"))
    );
    assert_inert(&browser, "deploy").await;
    browser.screenshot(&shots, "deploy").await;
    // Coming back shows the log so far and streams nothing twice.
    browser.goto(&format!("{}/apps/web-demo/deploy", server.url)).await;
    let log = browser.find("#deploy-log").await.text().await;
    assert_eq!(log.matches("-----> Deploying feature").count(), 1, "{log}");
    assert_eq!(log.matches("Released v4").count(), 1, "{log}");

    // Releases: the commit message is text, and a rollback runs v3 again.
    browser.goto(&format!("{}/apps/web-demo/releases", server.url)).await;
    browser.run(trap).await;
    assert_inert(&browser, "releases").await;
    assert!(browser.text().await.contains(XSS), "the commit message is shown, as text");
    browser.screenshot(&shots, "releases").await;
    browser.goto(&format!("{}/apps/web-demo/rollback?version=v3", server.url)).await;
    let text = browser.text().await;
    assert!(text.contains("v3's config vars") && text.contains("NASTY"), "{text}");
    press(&browser, "Roll back to v3").await;
    browser.wait_for_text("Rolled back to v3 as v5", Duration::from_secs(120)).await;
    let releases = server.get_json("/apps/web-demo/releases").await;
    assert_eq!(releases[0]["description"], "Rollback to v3");
    let page = server.app_request("web-demo.localhost", "/").await.text().await.unwrap();
    assert!(page.contains("dashboard-v3"), "v3's code again: {page}");
    assert_eq!(releases[0]["created_by"], "ann@example.com");

    // Scale web to 2 from the app page.
    browser.goto(&format!("{}/apps/web-demo", server.url)).await;
    browser.find("#scale-web").await.clear().await;
    browser.find("#scale-web").await.type_text("2").await;
    press(&browser, "Scale web").await;
    browser.wait_for_text("Scaled web to 2", Duration::from_secs(120)).await;
    let text = browser.wait_for_text("web.2", Duration::from_secs(10)).await;
    assert!(text.contains("running"), "{text}");
    browser.screenshot(&shots, "app").await;

    // The live log: a request's line arrives, and a hostile one stays text.
    browser.goto(&format!("{}/apps/web-demo/logs", server.url)).await;
    browser.run(trap).await;
    browser.wait_for_text("live", Duration::from_secs(10)).await;
    server.app_request("web-demo.localhost", "/hello-from-the-test").await;
    server.app_request("web-demo.localhost", &format!("/{}", XSS.replace(' ', "%20"))).await;
    let text = browser.wait_for_text("/hello-from-the-test", Duration::from_secs(30)).await;
    assert!(text.contains(&format!("startup {XSS}")), "the hostile line, as text: {text}");
    assert!(text.contains("loading 99%") && !text.contains("loading 10%"), "{text}");
    assert_inert(&browser, "logs").await;
    browser.screenshot(&shots, "logs").await;

    // The audit log names the dashboard.
    let events = server.get_json("/audit?app=web-demo").await;
    let vias: Vec<&str> =
        events.as_array().unwrap().iter().map(|e| e["via"].as_str().unwrap()).collect();
    assert!(vias.contains(&"dashboard") && vias.contains(&"git"), "{vias:?}");

    // Phone width: the apps list still shows the app.
    let phone = Browser::start(390).await;
    phone.goto(&format!("{}/login", server.url)).await;
    sign_in(&phone, "ann@example.com").await;
    phone.wait_for_text("web-demo", Duration::from_secs(10)).await;
    phone.screenshot(&shots, "apps-phone").await;
    phone.quit().await;
    browser.quit().await;
}

/// A client with a signed-in session over plain HTTP: the cookie and the page's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn hidden_csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..].split('"').next().unwrap().to_string()
}

fn cookie_of(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

async fn http_sign_in(server: &TestServer, http: &reqwest::Client, email: &str) -> Session {
    let page = http.get(format!("{}/login", server.url)).send().await.unwrap();
    let login_cookie = cookie_of(&page, "paas_login_csrf");
    let csrf = hidden_csrf(&page.text().await.unwrap());
    let form = [("csrf", csrf.as_str()), ("email", email), ("password", PASSWORD), ("next", "/")];
    let signed = http
        .post(format!("{}/login", server.url))
        .header("cookie", &login_cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_of(&signed, "paas_session");
    let set =
        signed.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string());
    let session_header = set.into_iter().find(|v| v.starts_with("paas_session=")).unwrap();
    assert!(session_header.contains("HttpOnly") && session_header.contains("SameSite=Lax"));
    let home = http.get(format!("{}/", server.url)).header("cookie", &cookie).send().await.unwrap();
    let csrf = hidden_csrf(&home.text().await.unwrap());
    Session { cookie, csrf }
}

async fn the_dashboard_guards_every_route(db: Db) {
    let server = TestServer::start(db).await;
    add_user(&server, "ann@example.com").await;
    add_user(&server, "bob@example.com").await;
    // No redirects followed: what each answer says is what is checked.
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let ann = http_sign_in(&server, &http, "ann@example.com").await;
    let bob = http_sign_in(&server, &http, "bob@example.com").await;
    let create = [("csrf", ann.csrf.as_str()), ("name", "ann-app")];
    let created = http
        .post(format!("{}/apps", server.url))
        .header("cookie", &ann.cookie)
        .form(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let url = |path: &str| {
        format!("{}{}", server.url, path.replace("{app}", "ann-app").replace("{id}", "1"))
    };
    let routes = paas_web_ui::routes();
    assert!(routes.len() >= 30);
    for (method, path, _) in &routes {
        let method: Method = method.parse().unwrap();
        // Without a session: to the sign-in page.
        let response = http.request(method.clone(), url(path)).form(&[("csrf", "x")]).send().await;
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{method} {path}");
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with("/login"), "{method} {path}: {location}");
        if method == Method::POST {
            // With a session but without the CSRF token, or a wrong one: refused.
            for form in [vec![("name", "x")], vec![("csrf", "paas_wrong"), ("name", "x")]] {
                let response = http
                    .post(url(path))
                    .header("cookie", &ann.cookie)
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} without CSRF");
            }
        }
        if path.starts_with("/apps/{app}") && method == Method::GET {
            // Another user's app is not found, exactly like a missing one.
            let response = http.get(url(path)).header("cookie", &bob.cookie).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path} for bob");
            let text = response.text().await.unwrap();
            assert!(text.contains("app ann-app not found"), "{path}: {text}");
        }
    }
    // Pages run only this site's scripts and refuse to be framed.
    let page = http.get(url("/apps/{app}")).header("cookie", &ann.cookie).send().await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    // Nothing a refused post asked for happened: ann-app is there, with no config.
    assert_eq!(server.get_json("/apps/ann-app/config").await, json!({}));
    let apps = server.get_json("/apps").await;
    assert_eq!(apps.as_array().unwrap().len(), 1, "{apps}");
    // A sign-in form without its token is refused; signing out ends the session.
    let form = [("email", "ann@example.com"), ("password", PASSWORD)];
    let response = http.post(format!("{}/login", server.url)).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let out = [("csrf", ann.csrf.as_str())];
    let response = http
        .post(format!("{}/logout", server.url))
        .header("cookie", &ann.cookie)
        .form(&out)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let after = http.get(format!("{}/", server.url)).header("cookie", &ann.cookie).send().await;
    assert_eq!(after.unwrap().status(), StatusCode::SEE_OTHER, "the session ended");
}

/// The pipeline page: create a pipeline and put apps in it, promote staging to production
/// with a button, and approve a tag deploy that waits, in a real browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_promote_and_approve_from_the_dashboard() {
    let server = TestServer::start(Db::Sqlite).await;
    let token = add_user(&server, "ann@example.com").await;
    let shots = screenshot_dir().join("pipelines");
    let dev = Developer::of(&server.url, &token, "python-stdlib");
    dev.paas(&["apps:create", "shop-staging"]).success();
    dev.paas(&["apps:create", "shop-prod", "--remote", "prod"]).success();
    dev.paas(&["apps:update", "-a", "shop-prod", "--deploy-tags", "v*"]).success();
    dev.git(&["push", "paas", "main"]).success();

    let browser = Browser::start(1280).await;
    browser.goto(&format!("{}/pipelines", server.url)).await;
    sign_in(&browser, "ann@example.com").await;
    browser.wait_for_text("No pipelines yet", Duration::from_secs(10)).await;
    browser.find("#new-pipeline").await.type_text("shop").await;
    press(&browser, "Create pipeline").await;
    browser.wait_for_text("Created pipeline shop", Duration::from_secs(10)).await;
    for (app, stage) in [("shop-staging", "staging"), ("shop-prod", "production")] {
        browser.find("#stage-app").await.type_text(app).await;
        browser
            .run(&format!("document.querySelector('#stage').value = '{stage}'; return true;"))
            .await;
        press(&browser, "Add to shop").await;
        browser
            .wait_for_text(&format!("Added {app} at stage {stage}"), Duration::from_secs(10))
            .await;
    }

    press(&browser, "Promote to production").await;
    let page = browser
        .wait_for_text("Promoted shop-staging to shop-prod v", Duration::from_secs(30))
        .await;
    assert!(page.contains("up to date with shop-staging"), "{page}");
    browser.screenshot(&shots, "promoted").await;
    let answered = server.app_request("shop-prod.localhost", "/").await;
    assert_eq!(answered.status(), 200);

    // A tag pushed to production waits; the pipeline page approves it.
    dev.git(&["tag", "v1.0.0"]).success();
    dev.git(&["push", "prod", "v1.0.0"]).success();
    browser.goto(&format!("{}/pipelines/shop", server.url)).await;
    let page = browser.wait_for_text("waits for approval", Duration::from_secs(10)).await;
    assert!(page.contains("Deploy tag v1.0.0"), "{page}");
    browser.screenshot(&shots, "waiting").await;
    press(&browser, "Approve v3").await;
    browser.wait_for_text("Approved v3: shop-prod runs v3", Duration::from_secs(30)).await;
    let audit = server.get_json("/audit?app=shop-prod").await.to_string();
    assert!(audit.contains("ann@example.com") && audit.contains("release.approve"), "{audit}");
    browser.quit().await;
}
