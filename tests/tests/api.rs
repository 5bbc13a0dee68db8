//! The JSON API against a real server, over SQLite and over PostgreSQL.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use paas_tests::{Db, TestServer, both_databases};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

both_databases!(
    every_route_needs_a_token,
    every_app_route_hides_other_users_apps,
    apps_lifecycle,
    config_makes_releases,
    bad_input_is_refused_cleanly,
    formation_scales,
    apps_are_routed,
    limits_are_checked_when_set,
);

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Asserts the one error shape and returns its code.
fn error_code(body: &Value) -> &str {
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error without a message: {body}");
    body["error"]["code"].as_str().expect("error code")
}

/// A release declaring `types`, as a build would record it, with no image (so nothing is
/// started): what scaling checks against, without Docker.
async fn release_with_types(server: &TestServer, app: &str, types: &[&str]) {
    let store = server.server.paas.store();
    let app = store.app(app).await.unwrap();
    let new = paas_store::NewBuild {
        source: paas_store::DeploySource::Api,
        commit_sha: None,
        commit_message: None,
        git_tag: None,
        created_by: "admin".into(),
    };
    let build = store.create_build(&app, &new).await.unwrap();
    let outcome = paas_store::BuildOutcome {
        succeeded: true,
        process_types: types.iter().map(|t| (t.to_string(), format!("run-{t}"))).collect(),
        ..Default::default()
    };
    let build = store.finish_build(build.id, &outcome).await.unwrap();
    store.create_release_from_build(&app, &build, "Deploy", "admin", false).await.unwrap();
}

async fn every_route_needs_a_token(db: Db) {
    let server = TestServer::start(db).await;
    server.api(Method::POST, "/apps").json(&json!({"name": "demo"})).send().await.unwrap();
    let routes = paas_server::http::api::routes();
    assert!(routes.len() >= 11);
    for (method, path, _) in routes {
        let path = concrete(path, "demo");
        let url = format!("{}/api/v1{path}", server.url);
        for auth in [None, Some("Bearer paas_wrong"), Some("Basic Zm9vOmJhcg=="), Some("Bearer ")] {
            let mut request = server.http.request(method.clone(), &url).json(&json!({}));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}"
            );
            assert!(response.headers().contains_key("www-authenticate"));
            let (_, body) = json_of(response).await;
            assert_eq!(error_code(&body), "unauthorized");
        }
    }
    // git's routes too: nothing runs without a token, and the hook only for a live push.
    let git_routes = [
        (Method::GET, "/demo.git/info/refs?service=git-receive-pack"),
        (Method::GET, "/demo.git/info/refs?service=git-upload-pack"),
        (Method::POST, "/demo.git/git-receive-pack"),
        (Method::POST, "/demo.git/git-upload-pack"),
        (Method::POST, "/internal/git-hook"),
    ];
    for (method, path) in git_routes {
        let url = format!("{}{path}", server.url);
        for auth in [None, Some("Bearer paas_wrong"), Some("Basic Zm9vOmJhcg==")] {
            let mut request = server.http.request(method.clone(), &url).body("0000");
            if path.starts_with("/internal") {
                request = request.json(&json!({"refs": [], "env": {}}));
            }
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}"
            );
        }
    }
    // Signing in is open to all, and gives nothing without a password or invitation.
    for (method, path, _) in paas_server::http::api::public_routes() {
        let url = format!("{}/api/v1{path}", server.url);
        let response = server.http.request(method.clone(), &url).json(&json!({})).send().await;
        let (status, body) = json_of(response.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{method} {path}: {body}");
        let fields =
            json!({"email": "admin", "password": "", "invitation": "", "description": "x"});
        let response = server.http.request(method.clone(), &url).json(&fields).send().await;
        let (status, body) = json_of(response.unwrap()).await;
        assert!(status.is_client_error(), "{method} {path}: {status} {body}");
        assert!(body.get("token").is_none(), "{method} {path}: {body}");
    }
    // The health check is the one other route open to all.
    let health = server.http.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // Every answer names its request: a UUIDv7 of paas's, or the id the client sent.
    let id = health.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "7", "a version 7 UUID: {id}");
    let traced = server.http.get(format!("{}/healthz", server.url)).header("x-request-id", "abc");
    assert_eq!(traced.send().await.unwrap().headers()["x-request-id"], "abc");
    // And the token does work.
    let (status, body) = json_of(server.api(Method::GET, "/account").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], "admin");
}

/// A route's path with its parameters filled in, for `app`.
fn concrete(path: &str, app: &str) -> String {
    path.replace("{app}", app)
        .replace("{version}", "v1")
        .replace("{id}", "1")
        .replace("{email}", "admin")
        .replace("{hostname}", "www.example.com")
        .replace("{name}", "media")
}

/// A body each app route accepts, so that only access decides the answer.
fn valid_body(path: &str) -> Value {
    match path.rsplit('/').next().unwrap_or_default() {
        "config" => json!({"KEY": "v"}),
        "formation" => json!({"web": 1}),
        "domains" => json!({"hostname": "a.example.com"}),
        "access" => json!({"email": "eve@example.com"}),
        "run" => json!({"command": "true"}),
        "github" => json!({"repository": "octo/shop"}),
        "addons" => json!({"service": "postgres"}),
        "volumes" => json!({"name": "media", "path": "/app/media"}),
        "cron" => json!({"schedule": "0 3 * * *", "command": "true"}),
        "routes" => json!({"prefix": "/ws/", "process_type": "ws"}),
        _ => json!({}),
    }
}

/// The second walk: a user who is not an admin gets "not found" from every route of an app
/// they may not touch, exactly as for an app that does not exist, and changes nothing.
async fn every_app_route_hides_other_users_apps(db: Db) {
    let server = TestServer::start(db).await;
    server.api(Method::POST, "/apps").json(&json!({"name": "demo"})).send().await.unwrap();
    server
        .api(Method::PATCH, "/apps/demo/config")
        .json(&json!({"KEEP": "1"}))
        .send()
        .await
        .unwrap();
    let user = json!({"email": "eve@example.com", "password": "eve's long password"});
    server.api(Method::POST, "/users").json(&user).send().await.unwrap();
    let login = json!({"email": "eve@example.com", "password": "eve's long password", "description": "walk"});
    let url = format!("{}/api/v1/login", server.url);
    let (_, body) = json_of(server.http.post(url).json(&login).send().await.unwrap()).await;
    let token = body["token"].as_str().unwrap().to_string();

    let app_routes: Vec<_> = paas_server::http::api::routes()
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/apps/{app}"))
        .collect();
    assert!(app_routes.len() >= 20, "{}", app_routes.len());
    for (method, path, _) in app_routes {
        for app in ["demo", "ghost"] {
            let url = format!("{}/api/v1{}", server.url, concrete(path, app));
            let body = valid_body(path);
            let response = server
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let (status, body) = json_of(response).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path} for {app}: {body}");
            assert_eq!(body["error"]["message"], format!("app {app} not found"), "{method} {path}");
        }
    }
    // Audit by app, and git, say the same.
    let url = format!("{}/api/v1/audit?app=demo", server.url);
    let (status, _) = json_of(server.http.get(url).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let url = format!("{}/demo.git/info/refs?service=git-receive-pack", server.url);
    let response = server.http.get(url).basic_auth("x", Some(&token)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The walk changed nothing: the app, its config and its access are as they were.
    assert_eq!(server.get_json("/apps/demo/config").await, json!({"KEEP": "1"}));
    let members = server.get_json("/apps/demo/access").await;
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    assert_eq!(server.get_json("/apps/demo").await["name"], "demo");
}

async fn apps_lifecycle(db: Db) {
    let server = TestServer::start(db).await;
    let (status, body) = json_of(
        server.api(Method::POST, "/apps").json(&json!({"name": "shop"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "shop");
    assert_eq!(body["release"], 1);

    let (status, body) =
        json_of(server.api(Method::POST, "/apps").json(&json!({})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    let random = body["name"].as_str().unwrap().to_string();
    assert!(random.len() >= 2 && random.contains('-'), "{random}");

    let (_, list) = json_of(server.api(Method::GET, "/apps").send().await.unwrap()).await;
    let names: Vec<&str> =
        list.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"shop") && names.contains(&random.as_str()), "{names:?}");

    let (status, body) = json_of(server.api(Method::GET, "/apps/shop").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["deploy_branch"], "main");

    // Destroying removes the app and everything under it; the name is free again.
    server
        .api(Method::PATCH, "/apps/shop/config")
        .json(&json!({"SECRET": "x"}))
        .send()
        .await
        .unwrap();
    let response = server.api(Method::DELETE, "/apps/shop").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = json_of(server.api(Method::GET, "/apps/shop").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("shop"));
    let (status, body) = json_of(
        server.api(Method::POST, "/apps").json(&json!({"name": "shop"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["release"], 1, "a recreated app starts over");
    let (_, config) =
        json_of(server.api(Method::GET, "/apps/shop/config").send().await.unwrap()).await;
    assert_eq!(config, json!({}));
}

async fn config_makes_releases(db: Db) {
    let server = TestServer::start(db).await;
    server.api(Method::POST, "/apps").json(&json!({"name": "blog"})).send().await.unwrap();
    // Any UTF-8 comes back exactly: newlines, quotes, emoji, shell metacharacters.
    let tricky = "line 1\nline 2\t'single' \"double\" $HOME `cmd` ünïcödé 🚀 \\ %s";
    let (status, body) = json_of(
        server
            .api(Method::PATCH, "/apps/blog/config")
            .json(&json!({"A": "1", "B": tricky}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["release"]["version"], 2);
    assert_eq!(body["release"]["description"], "Set A, B config vars");
    assert_eq!(body["config"]["B"], tricky);

    let (_, body) = json_of(
        server
            .api(Method::PATCH, "/apps/blog/config")
            .json(&json!({"A": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["release"]["version"], 3);
    assert_eq!(body["release"]["description"], "Remove A config vars");

    let (_, config) =
        json_of(server.api(Method::GET, "/apps/blog/config").send().await.unwrap()).await;
    assert_eq!(config, json!({"B": tricky}));

    let (_, releases) =
        json_of(server.api(Method::GET, "/apps/blog/releases").send().await.unwrap()).await;
    let summary: Vec<(i64, &str)> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["version"].as_i64().unwrap(), r["description"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![(3, "Remove A config vars"), (2, "Set A, B config vars"), (1, "Initial release")]
    );
    // Release listings never carry config values: they are secrets.
    assert!(!releases.to_string().contains("line 2"), "{releases}");

    let (status, body) =
        json_of(server.api(Method::GET, "/apps/blog/releases/v2").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], 2);
    let (status, _) =
        json_of(server.api(Method::GET, "/apps/blog/releases/2").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        json_of(server.api(Method::GET, "/apps/blog/releases/v9").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");

    // Setting a var to the value it has, or removing one that is not set, changes nothing:
    // no release, the current one answered (Heroku makes none either).
    for changes in
        [json!({"B": tricky}), json!({"NOT_SET": null}), json!({"B": tricky, "NO": null})]
    {
        let (status, body) = json_of(
            server.api(Method::PATCH, "/apps/blog/config").json(&changes).send().await.unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{changes}: {body}");
        assert_eq!(body["unchanged"], true, "{changes}: {body}");
        assert_eq!(body["release"]["version"], 3, "{changes}: {body}");
    }
    let (_, body) = json_of(
        server
            .api(Method::PATCH, "/apps/blog/config")
            .json(&json!({"B": tricky, "C": "3", "NO": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["unchanged"], false, "{body}");
    assert_eq!(body["release"]["version"], 4);
    assert_eq!(body["release"]["description"], "Set C config vars", "only what changed");
    let (_, releases) =
        json_of(server.api(Method::GET, "/apps/blog/releases").send().await.unwrap()).await;
    assert_eq!(releases.as_array().unwrap().len(), 4, "{releases}");

    // The stored snapshot of each release is the config as it was then.
    let app = server.server.paas.store().app("blog").await.unwrap();
    let v2 = server.server.paas.release(&app, 2).await.unwrap();
    assert_eq!(v2.config.get("A").map(String::as_str), Some("1"));
    let v3 = server.server.paas.release(&app, 3).await.unwrap();
    assert!(!v3.config.contains_key("A"));
}

async fn bad_input_is_refused_cleanly(db: Db) {
    let server = TestServer::start(db).await;
    server.api(Method::POST, "/apps").json(&json!({"name": "valid-app"})).send().await.unwrap();

    for (name, code) in [
        ("A", "invalid_app_name"),
        ("1app", "invalid_app_name"),
        ("my--app", "invalid_app_name"),
        ("trailing-", "invalid_app_name"),
        ("UPPER", "invalid_app_name"),
        ("way-too-long-for-an-app-name-really", "invalid_app_name"),
        ("api", "reserved_app_name"),
        ("git", "reserved_app_name"),
    ] {
        let (status, body) = json_of(
            server.api(Method::POST, "/apps").json(&json!({"name": name})).send().await.unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {body}");
        assert_eq!(error_code(&body), code, "{name}");
    }
    let (status, body) = json_of(
        server.api(Method::POST, "/apps").json(&json!({"name": "valid-app"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"].as_str().unwrap().contains("already exists"));

    let (status, body) =
        json_of(server.api(Method::GET, "/apps/ghost").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let (status, _) = json_of(
        server
            .api(Method::PATCH, "/apps/ghost/config")
            .json(&json!({"A": "1"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Malformed JSON, wrong types, and a missing content type.
    let (status, body) = json_of(
        server
            .api(Method::POST, "/apps")
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "bad_request");
    let (status, body) = json_of(
        server
            .api(Method::PATCH, "/apps/valid-app/config")
            .json(&json!({"A": 5}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "invalid_body");
    let (status, _) =
        json_of(server.api(Method::POST, "/apps").body("{}").send().await.unwrap()).await;
    assert!(status.is_client_error());

    // Bad config changes, each refused as a whole: nothing is written, no release is made.
    let big = "x".repeat(32 * 1024 + 1);
    for (changes, code) in [
        (json!({"OK": "1", "BAD-KEY": "2"}), "invalid_config_key"),
        (json!({"1ABC": "2"}), "invalid_config_key"),
        (json!({"OK": "1", "BIG": big}), "config_value_too_large"),
        (json!({"OK": "a\u{0}b"}), "invalid_config_value"),
        (json!({}), "no_config_changes"),
    ] {
        let (status, body) = json_of(
            server
                .api(Method::PATCH, "/apps/valid-app/config")
                .json(&changes)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(&body), code);
    }
    let (_, config) =
        json_of(server.api(Method::GET, "/apps/valid-app/config").send().await.unwrap()).await;
    assert_eq!(config, json!({}), "a refused change writes nothing");
    let (_, releases) =
        json_of(server.api(Method::GET, "/apps/valid-app/releases").send().await.unwrap()).await;
    assert_eq!(releases.as_array().unwrap().len(), 1, "a refused change makes no release");

    // Exactly 32 KiB is fine.
    let (status, _) = json_of(
        server
            .api(Method::PATCH, "/apps/valid-app/config")
            .json(&json!({"BIG": "y".repeat(32 * 1024)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Unknown routes and methods get the error shape too.
    let (status, body) = json_of(server.api(Method::GET, "/nope").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let (status, body) = json_of(server.api(Method::PUT, "/apps").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&body), "method_not_allowed");
    // Outside the API as well.
    for (method, path) in [
        (Method::POST, "/healthz"),
        (Method::DELETE, "/metrics"),
        (Method::PUT, "/x.git/info/refs"),
    ] {
        let url = format!("{}{path}", server.url);
        let response = server.http.request(method.clone(), url).send().await.unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(error_code(&body), "method_not_allowed", "{method} {path}");
    }

    // A body over the limit is too large (413), not malformed, and refused before it is
    // sent to a client that waits for `100 Continue`, as curl does. (A client that sends it
    // all anyway may see the connection closed under its upload instead: the server stops
    // reading at the limit.)
    let answer = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = server.url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "PATCH /api/v1/apps/valid-app/config HTTP/1.1\r\nHost: {address}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            server.token,
            10 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        let read = stream.read_to_string(&mut answer);
        let limit = std::time::Duration::from_secs(10);
        tokio::time::timeout(limit, read).await.expect("an answer before the body").unwrap();
        answer
    };
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(error_code(&body), "payload_too_large");

    // A log query paas cannot read.
    let (status, body) =
        json_of(server.api(Method::GET, "/apps/valid-app/logs?num=lots").send().await.unwrap())
            .await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(error_code(&body), "invalid_query");

    // The git hook takes only a push's one-off token, and says so in the error shape.
    let hook = format!("{}/internal/git-hook", server.url);
    for body in ["{}", "not json"] {
        let response = server
            .http
            .post(&hook)
            .bearer_auth("paas_not_a_push")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(error_code(&body), "unauthorized");
    }

    // A percent-encoded slash is part of the name, never a path: it reaches no other app.
    server.api(Method::POST, "/apps").json(&json!({"name": "victim"})).send().await.unwrap();
    for path in ["/apps/x%2F..%2Fvictim", "/apps/..%2Fvictim", "/apps/x%2F..%2Fvictim/config"] {
        let (status, body) = json_of(server.api(Method::GET, path).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        let response = server.api(Method::DELETE, path).send().await.unwrap();
        assert!(response.status().is_client_error(), "{path}");
    }
    let (status, _) = json_of(server.api(Method::GET, "/apps/victim").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "victim is still there");

    // IP addresses are not custom domains: one app would take every request made by IP.
    for hostname in ["999.1.1.1", "127.0.0.1", "10.0.0.1.", "::1", "[::1]", "*.1.2.3"] {
        let (status, body) = json_of(
            server
                .api(Method::POST, "/apps/valid-app/domains")
                .json(&json!({"hostname": hostname}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{hostname}: {body}");
        assert_eq!(error_code(&body), "invalid_domain");
        assert!(body["error"]["message"].as_str().unwrap().contains("IP address"), "{body}");
    }
}

/// Values paas reads at rollout are checked when they are set; the whole config is capped
/// below what Linux lets a process's environment hold.
async fn limits_are_checked_when_set(db: Db) {
    let server = TestServer::start(db).await;
    server.api(Method::POST, "/apps").json(&json!({"name": "limits"})).send().await.unwrap();
    let server = &server;
    let patch = |changes: Value| async move {
        let response =
            server.api(Method::PATCH, "/apps/limits/config").json(&changes).send().await.unwrap();
        json_of(response).await
    };
    for changes in [
        json!({"PAAS_HEALTHCHECK_PATH": "health"}),
        json!({"PAAS_HEALTHCHECK_PATH": "/a b"}),
        json!({"PAAS_HEALTHCHECK_TIMEOUT": "0"}),
        json!({"PAAS_HEALTHCHECK_TIMEOUT": "601"}),
        json!({"PAAS_HEALTHCHECK_TIMEOUT": "ten"}),
    ] {
        let (status, body) = patch(changes.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{changes}: {body}");
        assert_eq!(error_code(&body), "invalid_config_value", "{changes}");
    }
    let (status, body) =
        patch(json!({"PAAS_HEALTHCHECK_PATH": "/health", "PAAS_HEALTHCHECK_TIMEOUT": "600"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // 1 MiB of keys and values in all: 20 vars of 32 KiB fit, 12 more do not, and the
    // message names the limit and the var that crossed it.
    let value = "v".repeat(32 * 1024);
    let vars = |range: std::ops::Range<usize>| {
        Value::Object(range.map(|i| (format!("VAR_{i:02}"), json!(value))).collect())
    };
    let (status, body) = patch(vars(0..20)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = patch(vars(20..32)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "config_too_large");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("1048576 bytes") && message.contains("VAR_31"), "{message}");
    let config = server.get_json("/apps/limits/config").await;
    assert_eq!(config.as_object().unwrap().len(), 22, "nothing of the refused change is kept");
    // Replacing a big value with a small one is always fine.
    let (status, body) = patch(json!({"VAR_00": "small", "VAR_01": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn formation_scales(db: Db) {
    let server = TestServer::start(db).await;
    server.api(Method::POST, "/apps").json(&json!({"name": "worky"})).send().await.unwrap();
    let server = &server;
    let scale = |changes: Value| async move {
        let response =
            server.api(Method::PATCH, "/apps/worky/formation").json(&changes).send().await.unwrap();
        json_of(response).await
    };

    // Before a release declares process types there is nothing to scale, as on Heroku; the
    // first deploy starts web=1.
    let junk = Value::Object((0..50).map(|i| (format!("t{i}"), json!(100))).collect());
    for changes in [json!({"web": 1}), json!({"web": 0}), json!({"worker": 2}), junk] {
        let (status, body) = scale(changes.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(&body), "unknown_process_type");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("Couldn't find that process type"), "{message}");
        assert!(message.contains("deploy"), "{message}");
    }
    assert_eq!(server.get_json("/apps/worky/formation").await, json!({}));

    release_with_types(server, "worky", &["web", "worker", "release"]).await;
    let (status, body) = scale(json!({"web": 2, "worker": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"web": 2, "worker": 1}));
    let (_, body) = scale(json!({"worker": 0})).await;
    assert_eq!(body, json!({"web": 2, "worker": 0}));
    for (changes, code) in [
        (json!({"web": -1}), "invalid_quantity"),
        (json!({"web": 1000}), "invalid_quantity"),
        (json!({"release": 1}), "invalid_process_type"),
        (json!({"bad type": 1}), "invalid_process_type"),
        (json!({"clock": 1}), "unknown_process_type"),
        (json!({"web": 60, "worker": 41}), "too_many_processes"),
    ] {
        let (status, body) = scale(changes.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{changes}: {body}");
        assert_eq!(error_code(&body), code, "{changes}");
    }
    let (_, body) = scale(json!({"web": 60, "worker": 41})).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("100 in total"), "{body}");
    let (status, body) = scale(json!({"web": 60, "worker": 40})).await;
    assert_eq!(status, StatusCode::OK, "exactly 100 is fine: {body}");
    let (_, body) = scale(json!({"web": 2, "worker": 1})).await;
    assert_eq!(body, json!({"web": 2, "worker": 1}), "refused changes left it as it was");

    // A later release without `worker`: it can be scaled to 0, never up.
    release_with_types(server, "worky", &["web"]).await;
    let (status, body) = scale(json!({"worker": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = scale(json!({"worker": 0})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"web": 2, "worker": 0}));
}

async fn apps_are_routed(db: Db) {
    let server = TestServer::start(db).await;
    let (_, info) = json_of(
        server.api(Method::POST, "/apps").json(&json!({"name": "shop"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(info["web_url"], format!("http://shop.localhost:{}/", server.router.port()));

    // Routed, but nothing runs yet: Heroku's "no web processes running".
    let response = server.app_request("shop.localhost", "/").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.text().await.unwrap().contains("no web processes running"));
    let response = server.app_request("nobody.localhost", "/").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Custom domains, including a wildcard.
    for hostname in ["www.shop.example", "*.shop.dev"] {
        let (status, body) = json_of(
            server
                .api(Method::POST, "/apps/shop/domains")
                .json(&json!({"hostname": hostname}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for host in ["WWW.shop.example", "pr-1.shop.dev:8000"] {
        let response = server.app_request(host, "/").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{host}");
    }
    for (hostname, status, code) in [
        ("not a host", StatusCode::UNPROCESSABLE_ENTITY, "invalid_domain"),
        ("other.localhost", StatusCode::UNPROCESSABLE_ENTITY, "invalid_domain"),
        ("www.shop.example", StatusCode::CONFLICT, "conflict"),
    ] {
        let (got, body) = json_of(
            server
                .api(Method::POST, "/apps/shop/domains")
                .json(&json!({"hostname": hostname}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got, status, "{hostname}: {body}");
        assert_eq!(error_code(&body), code);
    }
    let (_, domains) =
        json_of(server.api(Method::GET, "/apps/shop/domains").send().await.unwrap()).await;
    let names: Vec<&str> =
        domains.as_array().unwrap().iter().map(|d| d["hostname"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["*.shop.dev", "www.shop.example"]);
    let response =
        server.api(Method::DELETE, "/apps/shop/domains/www.shop.example").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.app_request("www.shop.example", "/").await.status(), StatusCode::NOT_FOUND);

    // Prometheus metrics need the token too, and count the router's answers per app.
    let url = format!("{}/metrics", server.url);
    assert_eq!(server.http.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let metrics = server.http.get(&url).bearer_auth(&server.token).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("paas_router_requests_total{app=\"shop\",code=\"5xx\"} 3"), "{text}");

    // A destroyed app is no longer routed.
    server.api(Method::DELETE, "/apps/shop").send().await.unwrap();
    assert_eq!(server.app_request("shop.localhost", "/").await.status(), StatusCode::NOT_FOUND);
}
