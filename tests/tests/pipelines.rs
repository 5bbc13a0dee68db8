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
    dev.paas(&["pipelines:destroy", "shop", "--confirm", "shop"]).success();
    assert!(dev.paas(&["pipelines"]).success().contains("No pipelines yet"));
    assert_eq!(answer(&server, "shop-prod").await["GREETING"], "production");
}
