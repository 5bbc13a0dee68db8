//! Accounts against the real server, over SQLite and PostgreSQL: users and their passwords,
//! personal tokens, who may touch which app (through the API and git alike), and the audit
//! log.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use paas_tests::developer::Developer;
use paas_tests::{Db, TestServer, both_databases};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

both_databases!(
    users_see_only_their_apps_and_git_obeys_the_same_rule,
    a_removed_or_revoked_token_stops_at_once,
    the_audit_log_names_who_and_never_a_value,
    bad_account_input_changes_nothing,
    failed_sign_ins_lock_the_account,
    the_cli_invites_signs_in_and_manages_tokens,
    behind_a_trusted_proxy_the_client_address_counts,
);

const PASSWORD: &str = "correct horse battery";

/// A user's side of the API: requests carrying their token.
struct User {
    email: String,
    token: String,
}

impl User {
    fn api(&self, server: &TestServer, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/api/v1{path}", server.url);
        server.http.request(method, url).bearer_auth(&self.token)
    }

    async fn call(&self, server: &TestServer, method: Method, path: &str) -> (StatusCode, Value) {
        json_of(self.api(server, method, path).send().await.unwrap()).await
    }

    async fn send(
        &self,
        server: &TestServer,
        method: Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        json_of(self.api(server, method, path).json(&body).send().await.unwrap()).await
    }
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn admin(server: &TestServer) -> User {
    User { email: "admin".into(), token: server.token.clone() }
}

/// Signs in with a password for a new personal token.
async fn log_in(server: &TestServer, email: &str, password: &str) -> (StatusCode, Value) {
    let body = json!({"email": email, "password": password, "description": "test"});
    let url = format!("{}/api/v1/login", server.url);
    json_of(server.http.post(url).json(&body).send().await.unwrap()).await
}

/// An admin adds `email` with a password; they sign in for a token.
async fn add_user(server: &TestServer, email: &str) -> User {
    let (status, body) = admin(server)
        .send(server, Method::POST, "/users", json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["invitation"], Value::Null);
    let (status, body) = log_in(server, email, PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    User { email: email.into(), token: body["token"].as_str().unwrap().into() }
}

fn names(apps: &Value) -> Vec<&str> {
    apps.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect()
}

/// What a missing app answers: another user's app must answer exactly so.
fn assert_not_found(status: StatusCode, body: &Value, app: &str) {
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["message"], format!("app {app} not found"));
}

async fn users_see_only_their_apps_and_git_obeys_the_same_rule(db: Db) {
    let server = TestServer::start(db).await;
    let ann = add_user(&server, "ann@example.com").await;
    let bob = add_user(&server, "bob@example.com").await;
    for (user, app) in [(&ann, "ann-shop"), (&bob, "bob-blog")] {
        let (status, body) = user.send(&server, Method::POST, "/apps", json!({"name": app})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(names(&ann.call(&server, Method::GET, "/apps").await.1), ["ann-shop"]);
    assert_eq!(names(&bob.call(&server, Method::GET, "/apps").await.1), ["bob-blog"]);
    let all = admin(&server).call(&server, Method::GET, "/apps").await.1;
    assert_eq!(names(&all), ["ann-shop", "bob-blog"]);

    // Bob's app is to Ann what a missing one is, for reading and for changing.
    let (status, body) = ann.call(&server, Method::GET, "/apps/bob-blog").await;
    assert_not_found(status, &body, "bob-blog");
    let (status, body) = ann.call(&server, Method::GET, "/apps/no-such-app").await;
    assert_not_found(status, &body, "no-such-app");
    let (status, body) =
        ann.send(&server, Method::PATCH, "/apps/bob-blog/config", json!({"X": "1"})).await;
    assert_not_found(status, &body, "bob-blog");
    let (status, body) = ann.call(&server, Method::DELETE, "/apps/bob-blog").await;
    assert_not_found(status, &body, "bob-blog");
    assert_eq!(bob.call(&server, Method::GET, "/apps/bob-blog/config").await.1, json!({}));
    assert_eq!(bob.call(&server, Method::GET, "/apps/bob-blog").await.0, StatusCode::OK);

    // git obeys the same rule: Ann pushes to her app, and cannot even list Bob's.
    let dev = Developer::of(&server.url, &ann.token, "python-stdlib");
    dev.paas(&["git:remote", "-a", "ann-shop"]).success();
    let out = dev.git(&["push", "paas", "main"]).success();
    assert!(out.contains("remote: -----> Released v2"), "{out}");
    let bob_url = format!("{}/bob-blog.git", server.url);
    let refused = dev.git(&["ls-remote", &bob_url]).failure();
    assert!(refused.contains("There is no app named bob-blog"), "{refused}");
    let missing = dev.git(&["ls-remote", &format!("{}/no-such-app.git", server.url)]).failure();
    assert_eq!(
        refused.replace("bob-blog", "APP"),
        missing.replace("no-such-app", "APP"),
        "another user's app and a missing one must look alike"
    );
    // The audit log has the push, by Ann through git.
    let events = ann.call(&server, Method::GET, "/audit?app=ann-shop").await.1;
    let deploy = events.as_array().unwrap().iter().find(|e| e["action"] == "deploy").unwrap();
    assert_eq!((&deploy["actor"], &deploy["via"]), (&json!("ann@example.com"), &json!("git")));
    assert!(deploy["detail"].as_str().unwrap().ends_with("as v2"), "{deploy}");
    // Releases and builds name who made them.
    let releases = ann.call(&server, Method::GET, "/apps/ann-shop/releases").await.1;
    assert_eq!(releases[0]["created_by"], "ann@example.com");
    let build_id = &releases[0]["build_id"];
    let build = ann.call(&server, Method::GET, &format!("/apps/ann-shop/builds/{build_id}")).await;
    assert_eq!(build.1["created_by"], "ann@example.com");

    // Ann lets Bob in: he sees and may push to her app, but not let others in.
    let out = dev.paas(&["access:add", "bob@example.com", "-a", "ann-shop"]).success();
    assert!(out.contains("Giving bob@example.com access to ann-shop... done"), "{out}");
    assert_eq!(names(&bob.call(&server, Method::GET, "/apps").await.1), ["ann-shop", "bob-blog"]);
    let bob_dev = Developer::of(&server.url, &bob.token, "python-stdlib");
    let ann_url = format!("{}/ann-shop.git", server.url);
    assert!(bob_dev.git(&["ls-remote", &ann_url]).success().contains("refs/heads/main"));
    let out = dev.paas(&["access", "-a", "ann-shop"]).success();
    assert!(out.contains("ann@example.com  owner") && out.contains("bob@example.com  member"));
    let (status, body) =
        bob.send(&server, Method::POST, "/apps/ann-shop/access", json!({"email": "admin"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("ann-shop's owner"), "{body}");
    // Only the owner or an admin may destroy it.
    let (status, body) = bob.call(&server, Method::DELETE, "/apps/ann-shop").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The owner stays; Bob may leave, and then the app is gone for him again.
    let (status, _) =
        bob.call(&server, Method::DELETE, "/apps/ann-shop/access/ann@example.com").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) =
        admin(&server).call(&server, Method::DELETE, "/apps/ann-shop/access/ann@example.com").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) =
        bob.call(&server, Method::DELETE, "/apps/ann-shop/access/bob@example.com").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = bob.call(&server, Method::GET, "/apps/ann-shop").await;
    assert_not_found(status, &body, "ann-shop");
    assert!(bob_dev.git(&["ls-remote", &ann_url]).failure().contains("There is no app named"));
}

async fn a_removed_or_revoked_token_stops_at_once(db: Db) {
    let server = TestServer::start(db).await;
    let bob = add_user(&server, "bob@example.com").await;
    let dev = Developer::of(&server.url, &bob.token, "python-stdlib");
    dev.paas(&["apps:create", "bob-blog"]).success();
    let out = dev.git(&["push", "paas", "main"]).success();
    assert!(out.contains("remote: -----> Released v2"), "{out}");

    // A token for CI: it works until revoked, then at once it does not.
    let out = dev.paas(&["tokens:create", "--description", "CI", "--expires", "90d"]).success();
    let token = out.split_whitespace().find(|w| w.starts_with("paas_")).expect("a token");
    let ci = User { email: bob.email.clone(), token: token.into() };
    assert_eq!(ci.call(&server, Method::GET, "/apps").await.0, StatusCode::OK);
    let tokens = dev.paas(&["tokens"]).success();
    let line = tokens.lines().find(|l| l.contains("CI")).unwrap_or_else(|| panic!("{tokens}"));
    assert!(!line.contains(&ci.token), "a listing never shows a token: {tokens}");
    let id = line.split_whitespace().next().unwrap();
    dev.paas(&["tokens:revoke", id]).success();
    let (status, body) = ci.call(&server, Method::GET, "/apps").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["message"], "invalid API token");

    // An expired token says so.
    let store = server.server.paas.store();
    let user = store.user("bob@example.com").await.unwrap();
    let hash = hex_sha256("paas_expired");
    store.create_token(&user, &hash, "old", Some("2020-01-01T00:00:00Z")).await.unwrap();
    let expired = User { email: bob.email.clone(), token: "paas_expired".into() };
    let (status, body) = expired.call(&server, Method::GET, "/apps").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"), "{body}");

    // Bob leaves the team: his token and his git push stop at once; his app serves on.
    let (status, _) = admin(&server).call(&server, Method::DELETE, "/users/bob@example.com").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(bob.call(&server, Method::GET, "/apps").await.0, StatusCode::UNAUTHORIZED);
    dev.edit("app.py", "\"app\": \"python-stdlib\"", "\"app\": \"after-removal\"");
    dev.commit("Pushed after removal");
    let refused = dev.git(&["push", "paas", "main"]).failure();
    assert!(refused.contains("Authentication failed"), "{refused}");
    let page = server.app_request("bob-blog.localhost", "/").await.text().await.unwrap();
    assert!(page.contains("python-stdlib"), "{page}");
    let apps = admin(&server).call(&server, Method::GET, "/apps").await.1;
    assert_eq!(names(&apps), ["bob-blog"], "the app stays, for the admins");
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

async fn the_audit_log_names_who_and_never_a_value(db: Db) {
    let server = TestServer::start(db).await;
    let admin = admin(&server);
    let ann = add_user(&server, "ann@example.com").await;
    add_user(&server, "bob@example.com").await;
    let secret = "hunter2-do-not-log";
    let changes: Vec<(&User, Method, &str, Value)> = vec![
        (&ann, Method::POST, "/apps", json!({"name": "ann-shop"})),
        (&ann, Method::PATCH, "/apps/ann-shop/config", json!({"SECRET": secret, "DEBUG": "0"})),
        (&ann, Method::PATCH, "/apps/ann-shop/config", json!({"DEBUG": null})),
        (&ann, Method::POST, "/apps/ann-shop/domains", json!({"hostname": "shop.example.com"})),
        (&ann, Method::DELETE, "/apps/ann-shop/domains/shop.example.com", json!({})),
        (&ann, Method::POST, "/apps/ann-shop/access", json!({"email": "bob@example.com"})),
        (&ann, Method::DELETE, "/apps/ann-shop/access/bob@example.com", json!({})),
        (&admin, Method::PATCH, "/apps/ann-shop", json!({"deploy_branch": "release"})),
        (&ann, Method::POST, "/tokens", json!({"description": "laptop"})),
        (&admin, Method::DELETE, "/users/bob@example.com", json!({})),
    ];
    for (user, method, path, body) in changes {
        let (status, answer) = user.send(&server, method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
    }

    let (status, events) = admin.call(&server, Method::GET, "/audit").await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let text = events.to_string();
    assert!(!text.contains(secret), "a config value reached the audit log: {text}");
    let seen: Vec<(String, String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            assert_eq!(e["via"], "api", "{e}");
            assert_eq!(e["address"], "127.0.0.1", "{e}");
            let app = e["app"].as_str().unwrap_or("-");
            (e["actor"].as_str().unwrap().into(), e["action"].as_str().unwrap().into(), app.into())
        })
        .collect();
    let expected = [
        ("admin", "user.add", "-"),
        ("ann@example.com", "token.create", "-"),
        ("admin", "user.add", "-"),
        ("bob@example.com", "token.create", "-"),
        ("ann@example.com", "app.create", "ann-shop"),
        ("ann@example.com", "config.update", "ann-shop"),
        ("ann@example.com", "config.update", "ann-shop"),
        ("ann@example.com", "domain.add", "ann-shop"),
        ("ann@example.com", "domain.remove", "ann-shop"),
        ("ann@example.com", "access.add", "ann-shop"),
        ("ann@example.com", "access.remove", "ann-shop"),
        ("admin", "app.update", "ann-shop"),
        ("ann@example.com", "token.create", "-"),
        ("admin", "user.remove", "-"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(seen, expected);
    let details: Vec<&str> =
        events.as_array().unwrap().iter().map(|e| e["detail"].as_str().unwrap()).collect();
    assert!(details.contains(&"Set DEBUG, SECRET config vars (v2)"), "{details:?}");
    assert!(details.contains(&"Remove DEBUG config vars (v3)"), "{details:?}");
    assert!(details.contains(&"removed bob@example.com"), "{details:?}");

    // Ann sees her app's changes and her own doing, not who the admin added.
    let (_, mine) = ann.call(&server, Method::GET, "/audit").await;
    let mine: Vec<&str> =
        mine.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(mine.contains(&"app.create") && mine.contains(&"app.update"), "{mine:?}");
    assert!(!mine.contains(&"user.add") && !mine.contains(&"user.remove"), "{mine:?}");
    let (_, app_only) = ann.call(&server, Method::GET, "/audit?app=ann-shop&limit=2").await;
    assert_eq!(app_only.as_array().unwrap().len(), 2);
    assert_eq!(app_only[0]["action"], "app.update");
    // An app the asker cannot see is not found, in the audit log too.
    let carl = add_user(&server, "carl@example.com").await;
    let (status, body) = carl.call(&server, Method::GET, "/audit?app=ann-shop").await;
    assert_not_found(status, &body, "ann-shop");

    // The CLI shows the same.
    let dev = Developer::of(&server.url, &ann.token, "python-stdlib");
    let out = dev.paas(&["audit", "-a", "ann-shop"]).success();
    assert!(out.contains("config.update") && out.contains("Set DEBUG, SECRET"), "{out}");
    assert!(!out.contains(secret));
}

async fn bad_account_input_changes_nothing(db: Db) {
    let server = TestServer::start(db).await;
    let admin = admin(&server);
    let ann = add_user(&server, "ann@example.com").await;
    let users_before = admin.call(&server, Method::GET, "/users").await.1;
    let tokens_before = admin.call(&server, Method::GET, "/tokens?all=true").await.1;

    let refusals: Vec<(&User, Method, &str, Value, StatusCode, &str)> = vec![
        (
            &admin,
            Method::POST,
            "/users",
            json!({"email": "ANN@example.com", "password": PASSWORD}),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            &admin,
            Method::POST,
            "/users",
            json!({"email": "not-an-email", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a valid email",
        ),
        (
            &admin,
            Method::POST,
            "/users",
            json!({"email": "eve@example.com", "password": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too short",
        ),
        (
            &admin,
            Method::POST,
            "/users",
            json!({"email": "eve@example.com", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too short",
        ),
        (
            &ann,
            Method::POST,
            "/users",
            json!({"email": "eve@example.com", "password": PASSWORD}),
            StatusCode::FORBIDDEN,
            "only an admin",
        ),
        (&ann, Method::GET, "/users", json!({}), StatusCode::FORBIDDEN, "only an admin"),
        (&ann, Method::GET, "/tokens?all=true", json!({}), StatusCode::FORBIDDEN, "only an admin"),
        (&ann, Method::DELETE, "/users/admin", json!({}), StatusCode::FORBIDDEN, "only an admin"),
        (&ann, Method::DELETE, "/tokens/1", json!({}), StatusCode::NOT_FOUND, "token 1 not found"),
        (&admin, Method::DELETE, "/users/admin", json!({}), StatusCode::CONFLICT, "last admin"),
        (
            &admin,
            Method::DELETE,
            "/users/ghost@example.com",
            json!({}),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            &ann,
            Method::POST,
            "/tokens",
            json!({"description": "x", "expires_in_secs": 10}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "at least a minute",
        ),
        (
            &ann,
            Method::POST,
            "/tokens",
            json!({"description": " "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "description",
        ),
        (
            &ann,
            Method::PUT,
            "/account/password",
            json!({"current_password": "wrong password", "password": "a new password"}),
            StatusCode::FORBIDDEN,
            "current password is wrong",
        ),
        (
            &ann,
            Method::PUT,
            "/account/password",
            json!({"current_password": PASSWORD, "password": "2short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too short",
        ),
        (&ann, Method::GET, "/metrics", json!({}), StatusCode::FORBIDDEN, "only an admin"),
    ];
    for (user, method, path, body, status, words) in refusals {
        let (got, answer) = if path == "/metrics" {
            let url = format!("{}/metrics", server.url);
            json_of(server.http.get(url).bearer_auth(&user.token).send().await.unwrap()).await
        } else {
            user.send(&server, method.clone(), path, body).await
        };
        assert_eq!(got, status, "{method} {path}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{method} {path}: {message:?} lacks {words:?}");
    }
    // Access to an app: an unknown user, or the owner, are refused.
    ann.send(&server, Method::POST, "/apps", json!({"name": "ann-shop"})).await;
    let (status, _) = ann
        .send(&server, Method::POST, "/apps/ann-shop/access", json!({"email": "ghost@x.io"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = ann
        .send(&server, Method::POST, "/apps/ann-shop/access", json!({"email": "ann@example.com"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Sign-in failures say nothing of whether the email exists.
    let (status, wrong) = log_in(&server, "ann@example.com", "not her password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, unknown) = log_in(&server, "nobody@example.com", "not her password").await;
    assert_eq!(wrong, unknown);
    let url = format!("{}/api/v1/invitations/accept", server.url);
    let bogus = json!({"invitation": "paas_inv_bogus", "password": PASSWORD, "description": "x"});
    let (status, body) = json_of(server.http.post(url).json(&bogus).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Nothing changed: the same users, the same tokens, and every token still works.
    assert_eq!(admin.call(&server, Method::GET, "/users").await.1, users_before);
    let tokens_after = admin.call(&server, Method::GET, "/tokens?all=true").await.1;
    let ids = |tokens: &Value| -> Vec<i64> {
        tokens.as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect()
    };
    assert_eq!(ids(&tokens_after), ids(&tokens_before));
    assert_eq!(ann.call(&server, Method::GET, "/account").await.0, StatusCode::OK);
    assert_eq!(log_in(&server, "ann@example.com", PASSWORD).await.0, StatusCode::CREATED);

    // A refused acceptance does not spend the invitation.
    let (_, added) =
        admin.send(&server, Method::POST, "/users", json!({"email": "ivy@example.com"})).await;
    let invitation = added["invitation"].as_str().unwrap();
    let url = format!("{}/api/v1/invitations/accept", server.url);
    for (password, description, status) in [
        (PASSWORD, " ", StatusCode::UNPROCESSABLE_ENTITY),
        ("short", "laptop", StatusCode::UNPROCESSABLE_ENTITY),
        (PASSWORD, "laptop", StatusCode::CREATED),
    ] {
        let body =
            json!({"invitation": invitation, "password": password, "description": description});
        let (got, answer) = json_of(server.http.post(&url).json(&body).send().await.unwrap()).await;
        assert_eq!(got, status, "{answer}");
    }
}

async fn failed_sign_ins_lock_the_account(db: Db) {
    let server = TestServer::start(db).await;
    let ann = add_user(&server, "ann@example.com").await;
    add_user(&server, "bob@example.com").await;
    let limit = paas_server::core::LOCK_AFTER_FAILURES;
    for _ in 1..limit {
        assert_eq!(log_in(&server, "ann@example.com", "guess").await.0, StatusCode::UNAUTHORIZED);
    }
    let url = format!("{}/api/v1/login", server.url);
    let body = json!({"email": "ann@example.com", "password": "guess", "description": "x"});
    let response = server.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    let (_, body) = json_of(response).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("locked") && message.contains("15 minutes"), "{message}");
    // Locked means locked, even with the right password; others sign in as ever.
    let (status, body) = log_in(&server, "ann@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(log_in(&server, "bob@example.com", PASSWORD).await.0, StatusCode::CREATED);
    // Her token still works, but not to change the password while locked.
    let change = json!({"current_password": PASSWORD, "password": "a brand new password"});
    let (status, body) = ann.send(&server, Method::PUT, "/account/password", change).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let users = admin(&server).call(&server, Method::GET, "/users").await.1;
    let ann = users.as_array().unwrap().iter().find(|u| u["email"] == "ann@example.com").unwrap();
    assert!(ann["locked_until"].is_string(), "{users}");
    let events = admin(&server).call(&server, Method::GET, "/audit").await.1;
    let locked = events.as_array().unwrap().iter().find(|e| e["action"] == "user.lock");
    assert_eq!(locked.expect("the lock is in the audit log")["actor"], "ann@example.com");
}

async fn the_cli_invites_signs_in_and_manages_tokens(db: Db) {
    let server = TestServer::start(db).await;
    let admin_dev = Developer::new(&server, "python-stdlib");
    let out = admin_dev.paas(&["whoami"]).success();
    assert!(out.contains("admin (admin)"), "{out}");

    // An invitation: printed once, redeemed once by choosing a password.
    let out = admin_dev.paas(&["users:add", "carl@example.com"]).success();
    let invitation = out
        .split_whitespace()
        .find(|w| w.starts_with("paas_inv_"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let carl = Developer::of(&server.url, &server.token, "python-stdlib");
    let login = |args: &[&str], input: &str| {
        let mut all = vec!["login", &server.url];
        all.extend_from_slice(args);
        carl.paas_fed(&all, input.as_bytes().to_vec())
    };
    let out =
        login(&["--invitation", &invitation, "--password-stdin"], "carls password\n").success();
    assert!(out.contains("Logged in to") && out.contains("carl@example.com"), "{out}");
    let again = login(&["--invitation", &invitation, "--password-stdin"], "carls password\n");
    assert!(again.failure().contains("unknown, used or expired"));
    assert_eq!(
        carl.paas(&["whoami"]).success().trim(),
        format!("carl@example.com on {}", server.url)
    );

    // A new password: the old one stops working, the new one signs in.
    carl.paas_fed(
        &["passwd", "--password-stdin"],
        b"carls password\ncarls new password\n".to_vec(),
    )
    .success();
    let old = login(&["--email", "carl@example.com", "--password-stdin"], "carls password\n");
    assert!(old.failure().contains("wrong email or password"));
    login(&["--email", "carl@example.com", "--password-stdin"], "carls new password\n").success();
    let tokens = carl.paas(&["tokens"]).success();
    assert_eq!(tokens.matches("paas CLI on").count(), 2, "{tokens}");

    // Users as the admin sees them; a removed user is gone from the list.
    let users = admin_dev.paas(&["users"]).success();
    assert!(users.contains("carl@example.com  user   password"), "{users}");
    let err = carl.paas(&["users"]).failure();
    assert!(err.contains("only an admin can list users"), "{err}");
    admin_dev.paas(&["users:remove", "carl@example.com"]).success();
    assert!(!admin_dev.paas(&["users"]).success().contains("carl@"));
    assert!(carl.paas(&["whoami"]).failure().contains("invalid API token"));
}

/// Behind nginx on the same host (the seeds' set-up), the audit log and the sign-in limits
/// see the client nginx names, not nginx.
async fn behind_a_trusted_proxy_the_client_address_counts(db: Db) {
    let server = TestServer::start_with(db, |config| {
        config.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    add_user(&server, "ann@example.com").await;
    let body = json!({"email": "ann@example.com", "password": PASSWORD, "description": "proxied"});
    let url = format!("{}/api/v1/login", server.url);
    let response = server
        .http
        .post(&url)
        .header("x-forwarded-for", "198.51.100.7, 203.0.113.9")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let events = admin(&server).call(&server, Method::GET, "/audit").await.1;
    let newest = &events[0];
    assert_eq!(
        (&newest["action"], &newest["detail"]),
        (&json!("token.create"), &json!("created token 3 (proxied)"))
    );
    assert_eq!(newest["address"], "203.0.113.9", "the address the proxy appended: {newest}");
    // Failures from one client behind the proxy do not hold up another.
    for _ in 0..paas_server::core::ADDRESS_FAILURES {
        let wrong = json!({"email": "nobody@example.com", "password": "x", "description": "x"});
        let request = server.http.post(&url).header("x-forwarded-for", "203.0.113.66");
        request.json(&wrong).send().await.unwrap();
    }
    let response = server.http.post(&url).header("x-forwarded-for", "203.0.113.66").json(&body);
    assert_eq!(response.send().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    let response = server.http.post(&url).header("x-forwarded-for", "203.0.113.9").json(&body);
    assert_eq!(response.send().await.unwrap().status(), StatusCode::CREATED);
}
