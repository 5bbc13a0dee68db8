//! Pipelines on real containers: staging deploys by push, a promotion puts the very image it
//! runs on production with production's own config and release phase and no build, and a
//! promotion of what does not serve is refused.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::{Duration, Instant};

use paas_tests::developer::Developer;
use paas_tests::{Db, TestServer};

/// Answers with the config it runs with and the commit paas says it runs.
const APP: &str = r#"
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        keys = ("GREETING", "SOURCE_VERSION", "PAAS_RELEASE")
        body = json.dumps({k: os.environ.get(k) for k in keys}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#;

async fn answer(server: &TestServer, app: &str) -> serde_json::Value {
    let response = server.app_request(&format!("{app}.localhost"), "/").await;
    assert_eq!(response.status(), 200, "{app}");
    response.json().await.unwrap()
}

/// The image id behind a release's image tag.
fn image_id(tag: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", tag])
        .output()
        .unwrap();
    assert!(out.status.success(), "{tag}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_puts_the_tested_image_on_production_without_a_build() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "python-stdlib");
    dev.write("app.py", APP);
    dev.write("Procfile", "release: echo migrating for $GREETING\nweb: python app.py\n");
    let first = dev.commit("Report config and commit");
    dev.paas(&["apps:create", "shop-staging"]).success();
    dev.paas(&["apps:create", "shop-prod", "--no-remote"]).success();
    dev.paas(&["config:set", "GREETING=staging"]).success();
    dev.paas(&["config:set", "-a", "shop-prod", "GREETING=production"]).success();
    dev.git(&["push", "paas", "main"]).success();
    let staging = answer(&server, "shop-staging").await;
    assert_eq!(staging["SOURCE_VERSION"], first.as_str(), "{staging}");

    dev.paas(&["pipelines:create", "shop"]).success();
    dev.paas(&["pipelines:add", "shop", "-a", "shop-staging", "--stage", "staging"]).success();
    let added =
        dev.paas(&["pipelines:add", "shop", "-a", "shop-prod", "--stage", "production"]).success();
    assert!(added.contains("production") && added.contains("(nothing deployed)"), "{added}");

    let started = Instant::now();
    let promoted = dev.paas(&["pipelines:promote", "-a", "shop-staging"]).success();
    let took = started.elapsed();
    assert!(promoted.contains("shop-prod is now v3: Promote shop-staging v3"), "{promoted}");
    assert!(took < Duration::from_secs(5), "promote took {took:?}");

    // The image staging tested, production's own config, production's release phase.
    let production = answer(&server, "shop-prod").await;
    assert_eq!(production["GREETING"], "production", "{production}");
    assert_eq!(production["SOURCE_VERSION"], first.as_str(), "{production}");
    let staging_release = server.get_json("/apps/shop-staging/releases/3").await;
    let prod_release = server.get_json("/apps/shop-prod/releases/3").await;
    let (staging_image, prod_image) =
        (staging_release["image"].as_str().unwrap(), prod_release["image"].as_str().unwrap());
    assert_ne!(staging_image, prod_image, "each app names its own tag");
    assert_eq!(image_id(staging_image), image_id(prod_image), "the same image");
    let builds = server.get_json("/apps/shop-prod/builds").await;
    assert_eq!(builds.as_array().unwrap().len(), 0, "no build for production: {builds}");
    let logs = dev.paas(&["logs", "-a", "shop-prod", "-n", "50"]).success();
    assert!(logs.contains("Running release command: echo migrating for $GREETING"), "{logs}");

    let status = dev.paas(&["pipelines", "shop"]).success();
    assert!(status.contains("up to date with shop-staging"), "{status}");
    dev.write("README.md", "a change\n");
    dev.commit("A newer commit");
    dev.git(&["push", "paas", "main"]).success();
    let status = dev.paas(&["pipelines", "shop"]).success();
    assert!(status.contains("1 commit behind shop-staging"), "{status}");

    // A latest release that failed to roll out is not what was tested: refused, and
    // production serves on.
    dev.write("Procfile", "web: python -c 'raise SystemExit(3)'\n");
    dev.commit("A web that crashes");
    dev.git(&["push", "paas", "main"]).failure();
    let refused = dev.paas(&["pipelines:promote", "-a", "shop-staging"]).failure();
    assert!(refused.contains("failed to roll out"), "{refused}");
    assert_eq!(answer(&server, "shop-prod").await["GREETING"], "production");

    // Wrong input: a clear error each, nothing changed.
    for (args, says) in [
        (&["pipelines:add", "shop", "-a", "shop-prod", "--stage", "prod"][..], "not a stage"),
        (&["pipelines:promote", "-a", "shop-prod"], "last stage"),
        (&["pipelines:promote", "-a", "shop-staging", "--to", "nope"], "not at a stage after"),
        (&["pipelines:create", "shop"], "already a pipeline named shop"),
        (&["pipelines", "nope"], "pipeline nope not found"),
        (&["pipelines:destroy", "shop"], "--confirm shop"),
    ] {
        let out = dev.paas(args).failure();
        assert!(out.contains(says), "paas {args:?}: {out}");
    }
    // Someone with no access to its apps cannot put an app of theirs in it.
    let user = serde_json::json!({"email": "eve@example.com", "password": "correct horse battery"});
    let created = server.api(reqwest::Method::POST, "/users").json(&user).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let login = serde_json::json!({"email": "eve@example.com", "password": "correct horse battery", "description": "t"});
    let signed_in: serde_json::Value = server
        .http
        .post(format!("{}/api/v1/login", server.url))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let eve = Developer::of(&server.url, signed_in["token"].as_str().unwrap(), "python-stdlib");
    eve.paas(&["apps:create", "eves-app", "--no-remote"]).success();
    let refused =
        eve.paas(&["pipelines:add", "shop", "-a", "eves-app", "--stage", "production"]).failure();
    assert!(refused.contains("only whoever made pipeline shop"), "{refused}");

    dev.paas(&["pipelines:destroy", "shop", "--confirm", "shop"]).success();
    assert!(dev.paas(&["pipelines"]).success().contains("No pipelines yet"));
    assert_eq!(answer(&server, "shop-prod").await["GREETING"], "production");
}

/// Seed 003's shape: a pushed tag builds a release that waits; approval makes it live (and
/// the app sees its tag), a rejected one never runs, and a newer tag supersedes a waiting one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_deploys_wait_for_approval() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "python-stdlib");
    dev.write("app.py", &APP.replace("\"PAAS_RELEASE\")", "\"PAAS_RELEASE\", \"SOURCE_TAG\")"));
    dev.write("Procfile", "web: python app.py\n");
    dev.commit("Report the tag");
    dev.paas(&["apps:create", "tagged"]).success();
    dev.git(&["push", "paas", "main"]).success();
    assert_eq!(answer(&server, "tagged").await["PAAS_RELEASE"], "v2");

    // Tags are refused until the app takes them.
    dev.git(&["tag", "v1.0.0"]).success();
    let refused = dev.git(&["push", "paas", "v1.0.0"]).failure();
    assert!(refused.contains("takes branches only"), "{refused}");
    let set = dev.paas(&["apps:update", "--deploy-tags", "v*"]).success();
    assert!(set.contains("Pushed tags matching v* now build a release"), "{set}");

    let pushed = dev.git(&["push", "paas", "v1.0.0"]).success();
    assert!(pushed.contains("v3 waits for approval"), "{pushed}");
    assert!(pushed.contains("paas releases:approve v3 -a tagged"), "{pushed}");
    assert_eq!(answer(&server, "tagged").await["PAAS_RELEASE"], "v2", "v2 serves on");
    let releases = dev.paas(&["releases"]).success();
    assert!(releases.contains("waiting") && releases.contains("Deploy tag v1.0.0"), "{releases}");

    let approved = dev.paas(&["releases:approve", "v3"]).success();
    assert!(approved.contains("tagged runs v3"), "{approved}");
    let live = answer(&server, "tagged").await;
    assert_eq!(live["PAAS_RELEASE"], "v3", "{live}");
    assert_eq!(live["SOURCE_TAG"], "v1.0.0", "{live}");
    let audit = server.get_json("/audit?app=tagged").await.to_string();
    assert!(audit.contains("release.approve") && audit.contains("approved v3 as v3"), "{audit}");

    // Two tags in a row: the older waiting one is superseded; the newer is rejected; v3
    // serves throughout. A config change meanwhile is its own release.
    dev.write("README.md", "1.1\n");
    dev.commit("1.1");
    dev.git(&["tag", "v1.1.0"]).success();
    dev.git(&["push", "paas", "v1.1.0"]).success();
    dev.write("README.md", "1.2\n");
    dev.commit("1.2");
    dev.git(&["tag", "-a", "v1.2.0", "-m", "An annotated tag"]).success();
    let pushed = dev.git(&["push", "paas", "v1.2.0"]).success();
    assert!(pushed.contains("v5 waits for approval"), "{pushed}");
    let v4 = server.get_json("/apps/tagged/releases/4").await;
    assert_eq!(v4["status"], "superseded", "{v4}");
    let refused = dev.paas(&["releases:approve", "v4"]).failure();
    assert!(refused.contains("v4 is superseded"), "{refused}");
    dev.paas(&["releases:reject", "v5"]).success();
    assert_eq!(server.get_json("/apps/tagged/releases/5").await["status"], "rejected");
    assert_eq!(answer(&server, "tagged").await["PAAS_RELEASE"], "v3");

    // Approving a waiting release after a config change rolls it out as a new release with
    // today's config, so the newest release is what runs.
    dev.write("README.md", "1.3\n");
    dev.commit("1.3");
    dev.git(&["tag", "v1.3.0"]).success();
    dev.git(&["push", "paas", "v1.3.0"]).success();
    dev.paas(&["config:set", "GREETING=hello"]).success();
    let approved = dev.paas(&["releases:approve", "v6"]).success();
    assert!(approved.contains("tagged runs v8: Approve v6"), "{approved}");
    let live = answer(&server, "tagged").await;
    assert_eq!(
        (live["GREETING"].as_str(), live["SOURCE_TAG"].as_str()),
        (Some("hello"), Some("v1.3.0"))
    );

    for (args, says) in [
        (&["git", "push", "paas", "nightly"][..], ""),
        (&["releases:approve", "v2"], "only a release waiting for approval"),
        (&["apps:update", "--deploy-tags", "v 1"], "is not a tag pattern"),
    ] {
        if args[0] == "git" {
            dev.git(&["tag", "nightly"]).success();
            let out = dev.git(&args[1..]).failure();
            assert!(out.contains("deploys tags matching `v*`; `nightly` does not match"), "{out}");
        } else {
            let out = dev.paas(args).failure();
            assert!(out.contains(says), "paas {args:?}: {out}");
        }
    }
}
