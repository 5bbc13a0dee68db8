//! GitHub auto-deploy against a stand-in GitHub that speaks the real protocols: the test
//! pushes to a repository served over smart HTTP, signs `push` deliveries (the JSON GitHub
//! sends) with the webhook secret, and checks the commit statuses paas sends back.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use hmac::{Hmac, Mac};
use paas_tests::developer::Developer;
use paas_tests::github::FakeGithub;
use paas_tests::{Db, TestServer, both_databases, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

both_databases!(pushes_on_github_deploy_signed_once_and_newest_first);

const TOKEN: &str = "ghp_test_token_for_statuses";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A `push` payload as GitHub sends it (the fields paas reads, and some it does not).
fn push_payload(repository: &str, git_ref: &str, after: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": git_ref,
        "before": "0000000000000000000000000000000000000000",
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "repository": {"full_name": repository, "name": repository.split('/').nth(1)},
        "pusher": {"name": "octocat"},
        "head_commit": {"id": after, "message": "a change"},
    }))
    .unwrap()
}

async fn deliver(
    server: &TestServer,
    event: &str,
    delivery: &str,
    signature: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = server
        .http
        .post(format!("{}/hooks/github", server.url))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .body(body);
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `Secret:        VALUE` from `paas github:link`'s output.
fn secret_of(out: &str) -> String {
    let line = out.lines().find(|l| l.trim_start().starts_with("Secret:")).unwrap();
    line.split_whitespace().nth(1).unwrap().to_string()
}

async fn page(server: &TestServer) -> String {
    server.app_request("shop.localhost", "/").await.text().await.unwrap_or_default()
}

async fn pushes_on_github_deploy_signed_once_and_newest_first(db: Db) {
    let github = FakeGithub::start().await;
    let (web, api) = (github.url.clone(), format!("{}/api", github.url));
    let server = TestServer::start_with(db, move |config| {
        config.git.github_url = web;
        config.git.github_api_url = api;
    })
    .await;
    let remote = github.create_repo("octo/shop");
    github.create_repo("octo/blog");
    let dev = Developer::new(&server, "python-stdlib");
    dev.git(&["remote", "add", "github", remote.to_str().unwrap()]).success();
    dev.paas(&["apps:create", "shop", "--no-remote"]).success();
    dev.paas(&["apps:create", "blog", "--no-remote"]).success();

    // Linking prints what to paste into GitHub; the token is read from stdin, never shown.
    let out = dev
        .paas_fed(
            &["github:link", "octo/shop", "--token-stdin", "-a", "shop"],
            format!("{TOKEN}\n").into_bytes(),
        )
        .success();
    assert!(out.contains(&format!("Payload URL:   {}/hooks/github", server.url)), "{out}");
    assert!(out.contains("Content type:  application/json") && !out.contains(TOKEN), "{out}");
    let secret = secret_of(&out);
    assert!(secret.len() >= 16, "{secret}");
    let short = dev.paas(&["github:link", "octo/blog", "--secret", "too-short", "-a", "blog"]);
    assert!(short.failure().contains("at least 16 characters"));
    let out =
        dev.paas(&["github:link", "octo/blog", "--secret", "blogs-own-secret-123", "-a", "blog"]);
    assert_eq!(secret_of(&out.success()), "blogs-own-secret-123");

    // GitHub's ping on adding the webhook.
    let ping = serde_json::to_vec(
        &json!({"zen": "Design for failure.", "repository": {"full_name": "octo/shop"}}),
    )
    .unwrap();
    let (status, body) =
        deliver(&server, "ping", "ping-1", Some(&sign(&secret, &ping)), ping).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A push to main on GitHub deploys, and its statuses go back: pending, then success.
    dev.git(&["push", "-q", "github", "main"]).success();
    let first = dev.head();
    let payload = push_payload("octo/shop", "refs/heads/main", &first);
    let signature = sign(&secret, &payload);
    let (status, body) =
        deliver(&server, "push", "push-1", Some(&signature), payload.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let serving = || async { page(&server).await.contains("python-stdlib") };
    wait_until("the first push serves", Duration::from_secs(120), serving).await;
    let two = || async { github.statuses().len() >= 2 };
    wait_until("two commit statuses", Duration::from_secs(10), two).await;
    let statuses = github.statuses();
    assert_eq!(statuses[0].path, format!("/api/repos/octo/shop/statuses/{first}"));
    assert_eq!(statuses[0].body["state"], "pending");
    assert_eq!(statuses[0].authorization, format!("Bearer {TOKEN}"));
    assert_eq!(statuses[1].body["state"], "success");
    assert!(statuses[1].body["target_url"].as_str().unwrap().starts_with("http://shop.localhost"));
    assert!(
        github.git_authorizations().iter().any(|a| a.starts_with("Basic ")),
        "the token fetched"
    );
    let builds = server.get_json("/apps/shop/builds").await;
    assert_eq!(builds.as_array().unwrap().len(), 1);
    assert_eq!((&builds[0]["source"], &builds[0]["commit_sha"]), (&json!("github"), &json!(first)));

    // Refused, each with nothing recorded or built.
    let deployed = || async {
        let view = server.get_json("/apps/shop/github").await;
        view["deliveries"][0]["outcome"].as_str().is_some_and(|o| o.starts_with("deployed v2"))
    };
    wait_until("push-1's outcome", Duration::from_secs(10), deployed).await;
    let deliveries_before = server.get_json("/apps/shop/github").await["deliveries"].clone();
    let unknown = push_payload("octo/unknown", "refs/heads/main", &first);
    let cases: Vec<(Option<String>, Vec<u8>, StatusCode)> = vec![
        (None, payload.clone(), StatusCode::UNAUTHORIZED),
        (Some(sign("not the secret at all", &payload)), payload.clone(), StatusCode::UNAUTHORIZED),
        (Some(sign("blogs-own-secret-123", &payload)), payload.clone(), StatusCode::NOT_FOUND),
        (Some(sign(&secret, b"{not json")), b"{not json".to_vec(), StatusCode::BAD_REQUEST),
        (Some(sign(&secret, &unknown)), unknown, StatusCode::NOT_FOUND),
        (Some(signature.replace("sha256=", "sha1=")), payload.clone(), StatusCode::UNAUTHORIZED),
    ];
    for (n, (signature, body, expected)) in cases.into_iter().enumerate() {
        let id = format!("refused-{n}");
        let (status, answer) = deliver(&server, "push", &id, signature.as_deref(), body).await;
        assert_eq!(status, expected, "case {n}: {answer}");
    }
    let huge = vec![b' '; paas_server::core::MAX_DELIVERY_BYTES + 1];
    let (status, _) = deliver(&server, "push", "huge", Some(&sign(&secret, &huge)), huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A redelivery of push-1 deploys nothing again.
    let (status, body) = deliver(&server, "push", "push-1", Some(&signature), payload).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["message"].as_str().unwrap().contains("received before"), "{body}");
    let after = server.get_json("/apps/shop/github").await["deliveries"].clone();
    assert_eq!(after, deliveries_before, "refusals leave no trace");
    assert_eq!(server.get_json("/apps/shop/builds").await.as_array().unwrap().len(), 1);

    // Other branches, tags and deletions: accepted with the reason, nothing built.
    for (n, git_ref) in ["refs/heads/feature", "refs/tags/v1"].iter().enumerate() {
        let body = push_payload("octo/shop", git_ref, &first);
        let (status, answer) =
            deliver(&server, "push", &format!("other-{n}"), Some(&sign(&secret, &body)), body)
                .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(answer["message"].as_str().unwrap().starts_with("ignored"), "{answer}");
    }

    // Five pushes in quick succession: at most two builds, ending on the newest commit.
    let mut shas = Vec::new();
    for n in 1..=5 {
        let before = match n {
            1 => "\"app\": \"python-stdlib\"".to_string(),
            n => format!("\"app\": \"push-{}\"", n - 1),
        };
        dev.edit("app.py", &before, &format!("\"app\": \"push-{n}\""));
        shas.push(dev.commit(&format!("Push {n}")));
        dev.git(&["push", "-q", "github", "main"]).success();
        let body = push_payload("octo/shop", "refs/heads/main", shas.last().unwrap());
        let (status, answer) =
            deliver(&server, "push", &format!("burst-{n}"), Some(&sign(&secret, &body)), body)
                .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    let newest = shas.last().unwrap().clone();
    let settled = || async {
        let view = server.get_json("/apps/shop/github").await;
        let burst: Vec<&Value> = view["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["delivery"].as_str().unwrap().starts_with("burst-"))
            .collect();
        burst.len() == 5
            && burst.iter().all(|d| !d["outcome"].as_str().unwrap().starts_with("queued"))
    };
    wait_until("the five pushes settle", Duration::from_secs(180), settled).await;
    assert!(page(&server).await.contains("\"app\": \"push-5\""), "ends on the newest commit");
    let builds = server.get_json("/apps/shop/builds").await;
    assert!(
        builds.as_array().unwrap().len() <= 1 + 2,
        "at most two builds for five pushes: {builds}"
    );
    assert_eq!(builds[0]["commit_sha"], json!(newest));
    let view = server.get_json("/apps/shop/github").await;
    let outcome_of = |id: &str| {
        let d =
            view["deliveries"].as_array().unwrap().iter().find(|d| d["delivery"] == id).unwrap();
        d["outcome"].as_str().unwrap().to_string()
    };
    assert!(outcome_of("burst-5").starts_with("deployed v"), "{view}");
    assert_eq!(outcome_of("burst-3"), "superseded by a newer push");
    let last = github.statuses().into_iter().rev().find(|s| s.path.ends_with(&newest)).unwrap();
    assert_eq!(last.body["state"], "success");

    // A delivery that comes late, naming an older commit, deploys the branch's tip: here
    // already running, so nothing changes.
    let late = push_payload("octo/shop", "refs/heads/main", &first);
    let (status, _) = deliver(&server, "push", "late-1", Some(&sign(&secret, &late)), late).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let settled = || async {
        let view = server.get_json("/apps/shop/github").await;
        view["deliveries"][0]["outcome"].as_str().is_some_and(|o| !o.starts_with("queued"))
    };
    wait_until("the late delivery", Duration::from_secs(60), settled).await;
    let view = server.get_json("/apps/shop/github").await;
    let outcome = view["deliveries"][0]["outcome"].as_str().unwrap();
    assert!(outcome.contains("already deployed"), "{outcome}");
    assert!(page(&server).await.contains("\"app\": \"push-5\""), "the newest still serves");

    // The Deploy page's list of the repository's branches on GitHub, and deploying one.
    dev.edit("app.py", "\"app\": \"push-5\"", "\"app\": \"github-feature\"");
    dev.commit("A feature on GitHub");
    dev.git(&["push", "-q", "github", "HEAD:refs/heads/feature"]).success();
    let paas = &server.server.paas;
    let app = paas.store().app("shop").await.unwrap();
    let branches = paas.github_branches(&app).await.unwrap();
    assert_eq!(branches, ["feature", "main"]);
    paas.fetch_github_branch(&app, "feature").await.unwrap();
    let live = paas.deploy_branch(&server.admin().await, &app, "feature").await.unwrap();
    let done = || async { live.outcome().is_some() };
    wait_until("the feature deploy", Duration::from_secs(120), done).await;
    assert!(matches!(live.outcome(), Some(Ok(_))), "{}", live.log.text());
    assert!(page(&server).await.contains("github-feature"));

    // The CLI shows the link and the deliveries; the audit log who linked it.
    let out = dev.paas(&["github", "-a", "shop"]).success();
    assert!(out.contains("deploys pushes to main of octo/shop") && out.contains("burst-5"));
    assert!(!out.contains(&secret) && !out.contains(TOKEN), "{out}");
    let audit = server.get_json("/audit?app=shop").await;
    let vias: Vec<&str> =
        audit.as_array().unwrap().iter().map(|e| e["via"].as_str().unwrap()).collect();
    assert!(vias.contains(&"github"), "{vias:?}");
    assert!(!audit.to_string().contains(&secret) && !audit.to_string().contains(TOKEN));
    dev.paas(&["github:unlink", "-a", "shop"]).success();
    let body = push_payload("octo/shop", "refs/heads/main", &newest);
    let (status, _) =
        deliver(&server, "push", "after-unlink", Some(&sign(&secret, &body)), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an unlinked app's secret is no longer good");
}

/// A `pull_request` payload as GitHub sends it (the fields paas reads, and some it does not).
fn pull_request_payload(action: &str, number: u64, sha: &str, head_repo: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "state": if action == "closed" { "closed" } else { "open" },
            "head": {"sha": sha, "ref": "feature", "repo": {"full_name": head_repo}},
            "base": {"ref": "main", "repo": {"full_name": "octo/shop"}},
        },
        "repository": {"full_name": "octo/shop", "name": "shop"},
        "sender": {"login": "octocat"},
    }))
    .unwrap()
}

/// Answers with what the review app runs and was given.
const REVIEW_APP: &str = r#"
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        keys = ("SOURCE_VERSION", "SECRET_KEY", "REDIS_URL", "PAAS_APP")
        body = json.dumps({k: os.environ.get(k) for k in keys}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#;

fn docker_lists(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A pull request opened on the linked repository gets a review app with the pipeline's
/// config and add-ons, serving the pull request's commit, and its URL as a commit status; a
/// fork's gets none; closing it removes the app with its containers, volume and add-on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_requests_get_review_apps_that_go_when_they_close() {
    let github = FakeGithub::start().await;
    let (web, api) = (github.url.clone(), format!("{}/api", github.url));
    let server = TestServer::start_with(Db::Sqlite, move |config| {
        config.git.github_url = web;
        config.git.github_api_url = api;
    })
    .await;
    let remote = github.create_repo("octo/shop");
    let dev = Developer::new(&server, "python-stdlib");
    dev.write("app.py", REVIEW_APP);
    dev.write("Procfile", "web: python app.py\n");
    dev.commit("Report what runs");
    dev.git(&["remote", "add", "github", remote.to_str().unwrap()]).success();
    dev.git(&["push", "-q", "github", "main"]).success();
    dev.paas(&["apps:create", "shop-staging", "--no-remote"]).success();
    let out = dev
        .paas_fed(
            &["github:link", "octo/shop", "--token-stdin", "-a", "shop-staging"],
            format!("{TOKEN}\n").into_bytes(),
        )
        .success();
    let secret = secret_of(&out);
    dev.paas(&["config:set", "-a", "shop-staging", "SECRET_KEY=s3cret", "OTHER=not-copied"])
        .success();
    dev.paas(&["pipelines:create", "shop"]).success();
    dev.paas(&["pipelines:add", "shop", "-a", "shop-staging", "--stage", "staging"]).success();
    let on = dev
        .paas(&[
            "pipelines:review-apps",
            "shop",
            "--from",
            "shop-staging",
            "--copy-config",
            "SECRET_KEY",
            "--addon",
            "redis",
        ])
        .success();
    assert!(on.contains("Review apps: each pull request on shop-staging's GitHub"), "{on}");

    // The pull request's branch, with a volume declared, as GitHub keeps it.
    dev.git(&["checkout", "-q", "-b", "feature"]).success();
    dev.write("paas.toml", "[volumes]\nmedia = \"/app/media\"\n");
    let sha = dev.commit("A feature with uploads");
    dev.git(&["push", "-q", "github", "feature:refs/pull/7/head"]).success();

    let payload = pull_request_payload("opened", 7, &sha, "octo/shop");
    let (status, body) =
        deliver(&server, "pull_request", "pr-7-opened", Some(&sign(&secret, &payload)), payload)
            .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let serving = || async {
        let response = server.app_request("shop-pr-7.localhost", "/").await;
        response.status() == 200
            && response.json::<Value>().await.is_ok_and(|v| v["SOURCE_VERSION"] == sha.as_str())
    };
    wait_until("the review app serves the pull request", Duration::from_secs(180), serving).await;
    let env: Value = server.app_request("shop-pr-7.localhost", "/").await.json().await.unwrap();
    assert_eq!(env["SECRET_KEY"], "s3cret", "{env}");
    assert!(env["REDIS_URL"].as_str().is_some_and(|u| u.starts_with("redis://")), "{env}");
    let config = server.get_json("/apps/shop-pr-7/config").await;
    assert!(config.get("OTHER").is_none(), "only the keys asked for: {config}");
    let reported = || async {
        github.statuses().iter().any(|s| {
            s.body["context"] == "paas/review-app"
                && s.body["state"] == "success"
                && s.body["target_url"].as_str().is_some_and(|u| u.contains("shop-pr-7"))
        })
    };
    wait_until("the review app's URL on GitHub", Duration::from_secs(10), reported).await;
    let status = dev.paas(&["pipelines", "shop"]).success();
    assert!(status.contains("review") && status.contains("shop-pr-7"), "{status}");
    let volume = format!("{}-app-shop-pr-7.media", server.docker_network());
    assert_eq!(
        docker_lists(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]),
        volume
    );

    // An app that happens to have a review app's name is not one: it gets nothing.
    dev.paas(&["apps:create", "shop-pr-9", "--no-remote"]).success();
    dev.git(&["push", "-q", "github", "feature:refs/pull/9/head"]).success();
    let squatted = pull_request_payload("opened", 9, &sha, "octo/shop");
    deliver(&server, "pull_request", "pr-9-opened", Some(&sign(&secret, &squatted)), squatted)
        .await;
    let refused = || async {
        let view = server.get_json("/apps/shop-staging/github").await;
        view["deliveries"].as_array().unwrap().iter().any(|d| {
            d["delivery"] == "pr-9-opened"
                && d["outcome"].as_str().is_some_and(|o| o.contains("is not a review app"))
        })
    };
    wait_until("the squatted name is refused", Duration::from_secs(20), refused).await;
    let releases = server.get_json("/apps/shop-pr-9/releases").await;
    assert_eq!(releases.as_array().unwrap().len(), 1, "untouched: {releases}");

    // A fork's pull request runs nothing.
    let fork = pull_request_payload("opened", 8, &sha, "mallory/shop");
    let (status, body) =
        deliver(&server, "pull_request", "pr-8-opened", Some(&sign(&secret, &fork)), fork).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(body.to_string().contains("comes from the fork mallory/shop"), "{body}");

    // Closing it removes the app and everything it owned.
    let closed = pull_request_payload("closed", 7, &sha, "octo/shop");
    let (status, body) =
        deliver(&server, "pull_request", "pr-7-closed", Some(&sign(&secret, &closed)), closed)
            .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let gone = || async {
        server.api(reqwest::Method::GET, "/apps/shop-pr-7").send().await.unwrap().status()
            == StatusCode::NOT_FOUND
    };
    wait_until("the review app is removed", Duration::from_secs(60), gone).await;
    let label = "label=io.paas.app=shop-pr-7";
    assert_eq!(docker_lists(&["ps", "-aq", "--filter", label]), "", "its containers");
    assert_eq!(docker_lists(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]), "");
    let addons = server.get_json("/addons").await;
    assert_eq!(addons.as_array().unwrap().len(), 0, "its add-on: {addons}");
    assert!(server.get_json("/apps/shop-staging").await["name"] == "shop-staging");
}
