//! The deploy pipeline through the server's operations, with the real Docker engine: a build
//! is recorded with its log, a good one makes a release, a bad one makes none.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::PathBuf;

use paas_builder::BuildLog;
use paas_server::deploy::SourceTree;
use paas_tests::{Db, TestServer, both_databases};
use reqwest::Method;
use serde_json::{Value, json};

both_databases!(builds_are_recorded_and_released);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn tree(dir: PathBuf, sha: Option<&str>) -> SourceTree {
    SourceTree {
        dir,
        source: "api".into(),
        commit_sha: sha.map(str::to_string),
        commit_message: sha.map(|_| "Add the app".to_string()),
    }
}

async fn builds_are_recorded_and_released(db: Db) {
    let server = TestServer::start(db).await;
    let paas = &server.server.paas;
    let name = format!("deploy-{}", if db == Db::Sqlite { "sqlite" } else { "pg" });
    server.api(Method::POST, "/apps").json(&json!({ "name": name })).send().await.unwrap();
    server
        .api(Method::PATCH, &format!("/apps/{name}/config"))
        .json(&json!({"GREETING": "hi"}))
        .send()
        .await
        .unwrap();
    let app = paas.app(&name).await.unwrap();

    // A good build: recorded with its log, released with its image and process types.
    let log = BuildLog::new();
    let _lock = paas.lock_deploys(&app, &log).await;
    let release = paas
        .build_and_release(
            &app,
            &tree(fixture("python-stdlib"), Some("0123456789abcdef")),
            "admin",
            &log,
        )
        .await
        .unwrap();
    assert_eq!(release.version, 3);
    assert_eq!(release.description, "Deploy 0123456");
    assert!(release.image.as_deref().unwrap().starts_with(&format!("paas/app-{name}:b")));
    assert!(release.process_types.contains_key("web"), "{:?}", release.process_types);
    assert_eq!(release.config.get("GREETING").map(String::as_str), Some("hi"));
    assert!(log.text().contains("Python app detected"), "{}", log.text());

    let builds: Value = server
        .api(Method::GET, &format!("/apps/{name}/builds"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = &builds[0];
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["kind"], "python");
    assert_eq!(first["commit_sha"], "0123456789abcdef");
    assert!(first.get("log").is_none(), "listings leave the log out");
    let id = first["id"].as_i64().unwrap();
    let build: Value = server
        .api(Method::GET, &format!("/apps/{name}/builds/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(build["log"].as_str().unwrap().contains("Python app detected"));
    assert!(build["finished_at"].is_string());

    // A tree with nothing to build: a failed build with the reason, and no release.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("README.md"), "nothing to run here\n").unwrap();
    let log = BuildLog::new();
    let err = paas.build_and_release(&app, &tree(empty.path().into(), None), "admin", &log).await;
    let err = err.unwrap_err();
    assert_eq!(err.code(), "no_app_detected", "{err}");
    let builds = paas.store().builds(&app).await.unwrap();
    assert_eq!(builds[0].status, "failed");
    let failed = paas.store().build(&app, builds[0].id).await.unwrap();
    assert!(failed.error.as_deref().unwrap_or_default().contains("Procfile"), "{failed:?}");
    assert!(!failed.log.is_empty());
    assert_eq!(paas.store().latest_release(&app).await.unwrap().unwrap().version, 3);

    if let Some(image) = &release.image {
        let docker = bollard::Docker::connect_with_local_defaults().unwrap();
        let _ = docker
            .remove_image(image, None::<bollard::query_parameters::RemoveImageOptions>, None)
            .await;
    }
}
