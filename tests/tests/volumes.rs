//! Persistent volumes on real containers: a file uploaded to an app is still there after a
//! deploy, a rollback, a one-off run and a restart of paas; removing the volume (or the app)
//! removes it; wrong names and paths are refused.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use paas_tests::developer::Developer;
use paas_tests::{Db, TestServer};

/// An app that keeps one uploaded file: POST stores the body, GET answers it ("none" before).
const UPLOADS: &str = r#"
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

FILE = "/app/media/upload.txt"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = open(FILE, "rb").read() if os.path.exists(FILE) else b"none"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        os.makedirs(os.path.dirname(FILE), exist_ok=True)
        with open(FILE, "wb") as out:
            out.write(data)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#;

async fn upload(server: &TestServer, text: &str) {
    let response = server
        .http
        .post(format!("http://{}/", server.router))
        .header("host", "files.localhost")
        .body(text.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

async fn uploaded(server: &TestServer) -> String {
    server.app_request("files.localhost", "/").await.text().await.unwrap()
}

fn docker_volume_exists(name: &str) -> bool {
    std::process::Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_file_outlives_deploys_rollbacks_and_restarts() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "python-stdlib");
    dev.write("app.py", UPLOADS);
    dev.commit("Uploads");
    dev.paas(&["apps:create", "files"]).success();
    dev.git(&["push", "paas", "main"]).success();

    // Without a volume the file lives in the container, and a deploy loses it.
    upload(&server, "lost").await;
    dev.paas(&["ps:restart"]).success();
    assert_eq!(uploaded(&server).await, "none");

    let added = dev.paas(&["volumes:add", "media", "/app/media"]).success();
    assert!(added.contains("now has media at /app/media"), "{added}");
    assert!(dev.paas(&["volumes"]).success().contains("/app/media"));
    upload(&server, "kept").await;

    dev.edit("app.py", "b\"none\"", "b\"nothing yet\"");
    dev.commit("Another deploy");
    dev.git(&["push", "paas", "main"]).success();
    assert_eq!(uploaded(&server).await, "kept", "after a deploy");
    dev.paas(&["rollback"]).success();
    assert_eq!(uploaded(&server).await, "kept", "after a rollback");
    let read = dev.paas(&["run", "cat", "/app/media/upload.txt"]).success();
    assert!(read.contains("kept"), "a one-off run mounts it too: {read}");

    let server = server.restart().await;
    let dev = dev.logged_in_to(&server);
    assert_eq!(uploaded(&server).await, "kept", "after a restart of paas");

    // Wrong input: a clear error, and nothing changes.
    for (args, says) in [
        (&["volumes:add", "etc", "/etc"][..], "belongs to the system"),
        (&["volumes:add", "thumbs", "/app/media/thumbs"], "inside one another"),
        (&["volumes:add", "Media", "/data"], "cannot name a volume"),
        (&["volumes:add", "data", "data"], "absolute path"),
        (&["volumes:add", "media", "/data"], "already has a volume named media"),
        (&["volumes:remove", "media"], "--confirm media"),
        (&["volumes:remove", "nope", "--confirm", "nope"], "volume nope of files not found"),
    ] {
        let out = dev.paas(args).failure();
        assert!(out.contains(says), "paas {args:?}: {out}");
    }
    assert_eq!(uploaded(&server).await, "kept");

    // Removed, its files go; so does the volume of a destroyed app.
    let volume = format!("{}-app-files.media", server.docker_network());
    assert!(docker_volume_exists(&volume));
    dev.paas(&["volumes:remove", "media", "--confirm", "media"]).success();
    assert!(!docker_volume_exists(&volume));
    assert_eq!(uploaded(&server).await, "none", "the rolled-back code, with no file");
    dev.paas(&["volumes:add", "media", "/app/media"]).success();
    assert!(docker_volume_exists(&volume));
    dev.paas(&["apps:destroy", "-a", "files", "--confirm", "files"]).success();
    assert!(!docker_volume_exists(&volume));
}

/// paas.toml declares the volumes and jobs: a deploy adds what is new, replaces the jobs,
/// never removes a volume, and a declaration paas refuses rejects the push with nothing
/// changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paas_toml_declares_volumes_and_jobs() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "python-stdlib");
    dev.write("app.py", UPLOADS);
    dev.write(
        "paas.toml",
        "[volumes]\nmedia = \"/app/media\"\n\n[[cron]]\nschedule = \"0 11 * * *\"\n\
         command = \"python -c 'print(1)'\"\n",
    );
    dev.commit("Declared volume and job");
    dev.paas(&["apps:create", "files"]).success();
    let pushed = dev.git(&["push", "paas", "main"]).success();
    for expected in ["added volume media at /app/media", "scheduled job", "Released v2"] {
        assert!(pushed.contains(expected), "no {expected:?} in:\n{pushed}");
    }
    upload(&server, "kept").await;
    assert!(dev.paas(&["volumes"]).success().contains("/app/media"));
    assert!(dev.paas(&["cron"]).success().contains("print(1)"));

    // The volume is no longer declared and the job changed: the volume stays, with its file.
    dev.write(
        "paas.toml",
        "[[cron]]\nschedule = \"30 4 * * *\"\ncommand = \"python -c 'print(2)'\"\n",
    );
    dev.commit("Another job");
    let pushed = dev.git(&["push", "paas", "main"]).success();
    assert!(pushed.contains("removed scheduled job"), "{pushed}");
    assert_eq!(uploaded(&server).await, "kept");
    let jobs = dev.paas(&["cron"]).success();
    assert!(jobs.contains("print(2)") && !jobs.contains("print(1)"), "{jobs}");
    assert!(dev.paas(&["volumes"]).success().contains("/app/media"));

    // A volume over the system's folders is refused before anything is released.
    dev.write("paas.toml", "[volumes]\netc = \"/etc\"\n");
    dev.commit("A bad volume");
    let refused = dev.git(&["push", "paas", "main"]).failure();
    assert!(refused.contains("paas.toml [volumes]") && refused.contains("/etc"), "{refused}");
    assert!(refused.contains("Push rejected"), "{refused}");
    assert_eq!(uploaded(&server).await, "kept");
    let releases = server.get_json("/apps/files/releases").await;
    assert_eq!(releases[0]["version"], 3, "{releases}");

    dev.paas(&["apps:destroy", "--confirm", "files"]).success();
}
