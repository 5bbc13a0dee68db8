//! Apps that bring their own Dockerfile, as Heroku's container stack and Railway take them:
//! a `heroku.yml` with build args and a release command, and a Dockerfile on a paas stack
//! image that installs from PyPI behind this network's TLS-intercepting proxy, unchanged.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use paas_tests::developer::Developer;
use paas_tests::{Db, TestServer};

/// The host's CA bundle, which trusts the proxy that re-signs TLS here.
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

const HEROKU_YML: &str = "\
setup:
  addons:
    - plan: heroku-postgresql
build:
  docker:
    web: Dockerfile
    worker: Dockerfile
  config:
    GREETING: hello from heroku.yml
release:
  image: web
  command:
    - echo \"release phase of $PAAS_RELEASE sees $(cat /greeting.txt)\"
run:
  web: python server.py
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heroku_yml_app_deploys_with_its_build_config_and_release_command() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "dockerfile");
    dev.write("heroku.yml", HEROKU_YML);
    // heroku.yml wins over a Procfile, as on Heroku's container stack.
    dev.write("Procfile", "web: exit 1\n");
    dev.commit("heroku.yml");
    dev.paas(&["apps:create", "stack"]).success();
    // A config var of the same name loses to build.config, as on Heroku.
    dev.paas(&["config:set", "GREETING=from a config var"]).success();

    let pushed = dev.git(&["push", "paas", "main"]).success();
    for expected in [
        "Dockerfile detected (heroku.yml, Dockerfile)",
        "heroku.yml and a Procfile are both here: heroku.yml wins",
        "`setup` section is not read",
        "heroku.yml's build.config passed as build args: GREETING (in place of the config vars \
         GREETING, as on Heroku)",
        "heroku.yml declares types",
        "Running release command",
        "release phase of v3 sees hello from heroku.yml",
        "Released v3",
    ] {
        assert!(pushed.contains(expected), "no {expected:?} in:\n{pushed}");
    }
    let served = server.app_request("stack.localhost", "/").await.text().await.unwrap();
    assert_eq!(served, "hello from heroku.yml\n");
    // worker runs the image's CMD; it is a process type of the release.
    let release = server.get_json("/apps/stack/releases/3").await;
    assert_eq!(release["process_types"]["worker"], "", "{release}");
    assert_eq!(release["process_types"]["web"], "python server.py", "{release}");

    // A heroku.yml paas cannot build is refused before building, and v3 keeps serving.
    dev.write(
        "heroku.yml",
        "build:\n  docker:\n    web: Dockerfile\n    worker: worker.Dockerfile\n",
    );
    dev.commit("Two Dockerfiles");
    let refused = dev.git(&["push", "paas", "main"]).failure();
    assert!(
        refused.contains("heroku.yml: `build.docker` names 2 different Dockerfiles"),
        "{refused}"
    );
    assert!(refused.contains("Push rejected: nothing was deployed"), "{refused}");
    let served = server.app_request("stack.localhost", "/").await.text().await.unwrap();
    assert_eq!(served, "hello from heroku.yml\n");

    dev.paas(&["apps:destroy", "--confirm", "stack"]).success();
}

/// Seed 000's shape: `FROM` a local stack image, `pip install` from PyPI, no line about
/// certificates. With PAAS_BUILD_CA_FILE set, paas adds the bundle after each FROM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerfile_on_a_stack_image_installs_from_pypi_unchanged() {
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.build.build_ca_file = Some(HOST_CA_BUNDLE.into());
    })
    .await;
    let dev = Developer::new(&server, "dockerfile");
    dev.write(
        "Dockerfile",
        "FROM paas/python-build:bookworm AS build\n\
         RUN python -m venv /venv && /venv/bin/pip install --disable-pip-version-check six==1.17.0\n\
         FROM paas/python:bookworm\n\
         COPY --from=build /venv /venv\n\
         RUN /venv/bin/python -c 'import six; print(\"six\", six.__version__)' > /greeting.txt\n\
         WORKDIR /srv\n\
         COPY server.py .\n\
         CMD [\"/venv/bin/python\", \"server.py\"]\n",
    );
    dev.commit("pip install from PyPI");
    dev.paas(&["apps:create", "pypi"]).success();
    let pushed = dev.git(&["push", "paas", "main"]).success();
    for expected in [
        "paas adds it after each FROM of Dockerfile (it starts from paas stack images)",
        "Released v2",
    ] {
        assert!(pushed.contains(expected), "no {expected:?} in:\n{pushed}");
    }
    let served = server.app_request("pypi.localhost", "/").await.text().await.unwrap();
    assert_eq!(served, "six 1.17.0\n");
    // The bundle was a build step's, not the image's: its ENV is the Dockerfile's own.
    let env = dev.paas(&["run", "env"]).success();
    assert!(!env.contains("SSL_CERT_FILE"), "{env}");

    dev.paas(&["apps:destroy", "--confirm", "pypi"]).success();
}

/// As on Heroku, a Python app with no Procfile and nothing paas can infer (no app.py,
/// main.py or Django) builds and releases; the push says nothing will serve it and how to add
/// a web process, and the router answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_with_no_process_types_releases_and_says_how_to_add_one() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "python-stdlib");
    dev.git(&["rm", "-q", "app.py"]).success();
    dev.write("worker.py", "print('a worker, started by nothing yet')\n");
    dev.commit("No Procfile, nothing to infer");
    dev.paas(&["apps:create", "idle"]).success();
    let pushed = dev.git(&["push", "paas", "main"]).success();
    for expected in [
        "no process types: this Python app has no Procfile",
        "No process types: nothing runs this release",
        "web: gunicorn myproject.wsgi",
        "Released v2",
    ] {
        assert!(pushed.contains(expected), "no {expected:?} in:\n{pushed}");
    }
    let release = server.get_json("/apps/idle/releases/2").await;
    assert_eq!(release["process_types"], serde_json::json!({}), "{release}");
    assert_eq!(server.app_request("idle.localhost", "/").await.status(), 503);
}
