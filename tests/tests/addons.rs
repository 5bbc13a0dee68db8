//! Add-ons on real containers: PostgreSQL (with PostGIS) and Redis made from the stack
//! images (`deploy/stack/build.sh postgres redis`), attached to apps deployed by git push,
//! reachable only by them, backed up and restored, and kept through redeploys, rollbacks,
//! `docker restart`, and restarts of paas.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use paas_tests::developer::{Developer, Run};
use paas_tests::{Db, TestServer};

/// Probes the tests run inside app containers (`paas run python probe.py …`): whether a
/// host and port can be reached, and a Redis conversation, with the standard library only.
const PROBE: &str = r#"
import os, socket, sys, urllib.parse

def reach(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return "reached"
    except OSError as e:
        return "unreachable (%s)" % type(e).__name__

what = sys.argv[1]
if what == "url":
    url = urllib.parse.urlparse(os.environ[sys.argv[2]])
    print(url.hostname, reach(url.hostname, url.port))
elif what == "addr":
    print(sys.argv[2], reach(sys.argv[2], sys.argv[3]))
elif what == "redis":
    url = urllib.parse.urlparse(os.environ["REDIS_URL"])
    conn = socket.create_connection((url.hostname, url.port), timeout=5)
    def call(*args):
        conn.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)).encode())
        return conn.recv(1024).decode().strip()
    print("user", repr(url.username), "auth", call("AUTH", url.password), "ping", call("PING"))
"#;

/// `pg:psql` of the app's database with `sql` as its input.
fn psql(dev: &Developer, app: &str, sql: &str) -> Run {
    dev.paas_fed(&["pg:psql", "-a", app], sql.as_bytes().to_vec())
}

fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A deployed app `name` of the python-stdlib fixture with the probe in it.
fn deployed(server: &TestServer, name: &str) -> Developer {
    let dev = Developer::new(server, "python-stdlib");
    dev.write("probe.py", PROBE);
    dev.commit("Probe");
    dev.paas(&["apps:create", name]).success();
    let pushed = dev.git(&["push", "paas", "main"]).success();
    assert!(pushed.contains("Released v"), "{pushed}");
    dev
}

/// Create, attach, reach from the app, PostGIS, Redis without a user name; capture, drop,
/// restore; the data through a redeploy, a rollback, `docker restart` of the add-on, a
/// failed backup of a stopped one (recorded as failed, in the app's log), and a restart of
/// paas, which starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_redis_addons_keep_their_data() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = deployed(&server, "shop");

    let created = dev.paas(&["addons:create", "postgres"]).success();
    assert!(
        created.contains(
            "Created shop-postgres (postgres 15) and attached it to shop as DATABASE_URL"
        ),
        "{created}"
    );
    let config = dev.paas(&["config"]).success();
    assert!(config.contains("postgres://shop_postgres:"), "{config}");
    let reached = dev.paas(&["run", "python", "probe.py", "url", "DATABASE_URL"]).success();
    assert!(reached.contains("shop-postgres reached"), "{reached}");

    let made = psql(
        &dev,
        "shop",
        "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept');\n\
         SELECT PostGIS_Version();\n",
    )
    .success();
    assert!(made.contains("INSERT 0 1") && made.contains("USE_GEOS=1"), "{made}");

    dev.paas(&["addons:create", "redis"]).success();
    let redis = dev.paas(&["run", "python", "probe.py", "redis"]).success();
    assert!(redis.contains("user '' auth +OK ping +PONG"), "no user name in REDIS_URL: {redis}");
    let listed = dev.paas(&["addons"]).success();
    assert!(listed.contains("shop-postgres") && listed.contains("shop::REDIS"), "{listed}");

    // Backup, a dropped table, restore: the table is back.
    let captured = dev.paas(&["pg:backups:capture"]).success();
    assert!(captured.contains("Backup b001 of shop-postgres"), "{captured}");
    psql(&dev, "shop", "DROP TABLE notes;").success();
    let gone = psql(&dev, "shop", "SELECT body FROM notes;").failure();
    assert!(gone.contains("does not exist"), "{gone}");
    let refused = dev.paas(&["pg:backups:restore", "b001"]).failure();
    assert!(refused.contains("--confirm shop-postgres"), "{refused}");
    dev.paas(&["pg:backups:restore", "b001", "--confirm", "shop-postgres"]).success();
    assert!(psql(&dev, "shop", "SELECT body FROM notes;").success().contains("kept"));

    // A redeploy and a rollback keep the add-on and its URL.
    dev.paas(&["config:set", "GREETING=hi"]).success();
    dev.paas(&["rollback"]).success();
    assert!(dev.paas(&["config"]).success().contains("DATABASE_URL"));
    assert!(psql(&dev, "shop", "SELECT body FROM notes;").success().contains("kept"));

    // Docker restarts the add-on: the data is in its volume.
    let container = format!("{}-addon-shop-postgres", server.docker_network());
    docker(&["restart", &container]);
    paas_tests::wait_until("the data after docker restart", Duration::from_secs(60), || async {
        psql(&dev, "shop", "SELECT body FROM notes;").text().contains("kept")
    })
    .await;

    // A backup of a stopped add-on fails, and says so everywhere, never as a success.
    docker(&["stop", &container]);
    let failed = dev.paas(&["pg:backups:capture"]).failure();
    assert!(failed.contains("backup b002 of shop-postgres failed"), "{failed}");
    let backups = dev.paas(&["pg:backups"]).success();
    assert!(backups.contains("b002") && backups.contains("failed:"), "{backups}");
    assert!(backups.contains("b001") && backups.contains("succeeded"), "{backups}");
    let logs = dev.paas(&["logs", "-n", "200"]).success();
    assert!(logs.contains("paas[addons]: shop-postgres: Backup b002 failed"), "{logs}");
    let not_restorable = dev.paas(&["pg:backups:restore", "b002", "--confirm", "shop-postgres"]);
    assert!(not_restorable.failure().contains("only a backup that succeeded"));

    // paas restarts: the stopped add-on is started again, with its data.
    let server = server.restart().await;
    let dev = dev.logged_in_to(&server);
    assert!(psql(&dev, "shop", "SELECT body FROM notes;").success().contains("kept"));
    let info = dev.paas(&["addons:info", "shop-postgres"]).success();
    assert!(info.contains("running") && info.contains("postgres 15"), "{info}");
}

/// Another app cannot reach an add-on, by name or by address, until it is attached; detached,
/// it cannot again. Wrong input is refused with what to do, and changes nothing: unknown
/// services, an add-on's URL edited by hand, detaching an add-on from its own app,
/// destroying an app that has add-ons, destroying without confirming. A destroyed add-on's
/// volume goes; a rollback to a release that used it says so. A volume of another major
/// version is not started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addons_are_reachable_only_by_their_apps() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = deployed(&server, "web");
    dev.paas(&["addons:create", "postgres"]).success();
    dev.paas(&["apps:create", "other", "--remote", "other"]).success();
    dev.git(&["push", "other", "main"]).success();

    let container = format!("{}-addon-web-postgres", server.docker_network());
    let addresses = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        &container,
    ]);
    let addresses: Vec<&str> = addresses.split_whitespace().collect();
    assert_eq!(addresses.len(), 2, "the paas network and web's: {addresses:?}");
    let probe = |app: &str, host: &str| {
        dev.paas(&["run", "-a", app, "python", "probe.py", "addr", host, "5432"]).success()
    };
    assert!(probe("other", "web-postgres").contains("unreachable (gaierror)"));
    for address in &addresses {
        let out = probe("other", address);
        assert!(out.contains("unreachable"), "{address} from another app: {out}");
    }
    assert!(probe("web", "web-postgres").contains("reached"));

    // Another user, without access to web, sees no add-on of it: not by name, not its
    // backups, not in lists, and cannot back it up or destroy it.
    let password = "eve's long password";
    let added = server
        .api(reqwest::Method::POST, "/users")
        .json(&serde_json::json!({ "email": "eve@example.com", "password": password }))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success(), "{:?}", added.text().await);
    let login = serde_json::json!({ "email": "eve@example.com", "password": password, "description": "test" });
    let eve: serde_json::Value = server
        .http
        .post(format!("{}/api/v1/login", server.url))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let eve = eve["token"].as_str().unwrap().to_string();
    let as_eve = |method: reqwest::Method, path: &str| {
        server.http.request(method, format!("{}/api/v1{path}", server.url)).bearer_auth(&eve)
    };
    for (method, path) in [
        (reqwest::Method::GET, "/addons/web-postgres"),
        (reqwest::Method::GET, "/addons/web-postgres/backups"),
        (reqwest::Method::POST, "/addons/web-postgres/backups"),
        (reqwest::Method::DELETE, "/addons/web-postgres?confirm=web-postgres"),
        (reqwest::Method::GET, "/apps/web/addons"),
    ] {
        let answer =
            as_eve(method.clone(), path).json(&serde_json::json!({})).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{method} {path}");
    }
    let listed: serde_json::Value =
        as_eve(reqwest::Method::GET, "/addons").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, serde_json::json!([]));

    // Attached, the other app reaches it too; detached, no more.
    let attached = dev.paas(&["addons:attach", "web-postgres", "-a", "other"]).success();
    assert!(attached.contains("other has DATABASE_URL now"), "{attached}");
    assert!(psql(&dev, "other", "SELECT 1 AS one;").success().contains("one"));
    dev.paas(&["addons:detach", "web-postgres", "-a", "other"]).success();
    assert!(!dev.paas(&["config", "-a", "other"]).success().contains("DATABASE_URL"));
    assert!(probe("other", "web-postgres").contains("unreachable"));

    // Wrong input: a clear error, and nothing changes.
    let cases: &[(&[&str], &str)] = &[
        (&["addons:create", "mysql"], "paas runs `postgres` (with PostGIS) and `redis`"),
        (&["addons:create", "postgres", "--as", "1DB"], "cannot name an attachment"),
        (
            &["addons:create", "postgres", "--as", "X", "--name", "Bad_Name"],
            "cannot name an add-on",
        ),
        (&["addons:create", "postgres"], "already has web-postgres attached as DATABASE"),
        (&["config:set", "DATABASE_URL=postgres://elsewhere/db"], "set by add-on web-postgres"),
        (&["config:unset", "DATABASE_URL"], "set by add-on web-postgres"),
        (&["addons:detach", "web-postgres", "-a", "web"], "was created for web"),
        (&["apps:destroy", "-a", "web", "--confirm", "web"], "has add-ons made for it"),
        (&["addons:destroy", "web-postgres"], "--confirm web-postgres"),
        (&["addons:info", "nope"], "add-on nope not found"),
        (&["pg:backups", "-a", "other"], "other has no PostgreSQL add-on"),
    ];
    for (args, says) in cases {
        let out = dev.paas(args).failure();
        assert!(out.contains(says), "paas {args:?}: {out}");
    }
    dev.paas(&["config:set", "DATABASE_URL=postgres://elsewhere/db", "-a", "other"]).success();
    let taken = dev.paas(&["addons:attach", "web-postgres", "-a", "other"]).failure();
    assert!(taken.contains("already has DATABASE_URL set by hand"), "{taken}");
    assert!(probe("web", "web-postgres").contains("reached"), "web still has its database");

    // A Redis add-on, destroyed: its volume goes, and a rollback to a release that had its
    // URL says so and leaves it out.
    dev.paas(&["addons:create", "redis"]).success();
    dev.paas(&["config:set", "AFTER_REDIS=1"]).success();
    let volume = format!("{}-addon-web-redis", server.docker_network());
    assert!(docker(&["volume", "inspect", &volume]).contains("\"Name\""));
    dev.paas(&["addons:destroy", "web-redis", "--confirm", "web-redis"]).success();
    assert!(docker(&["volume", "inspect", &volume]).contains("no such volume"));
    assert!(!dev.paas(&["config"]).success().contains("REDIS_URL"));
    let releases = server.get_json("/apps/web/releases").await;
    let with_redis = releases
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["description"].as_str().unwrap().starts_with("Set AFTER_REDIS"))
        .unwrap()["version"]
        .as_i64()
        .unwrap();
    let rolled = dev.paas(&["rollback", &format!("v{with_redis}")]).success();
    assert!(rolled.contains("named add-on web-redis, which was destroyed"), "{rolled}");
    assert!(!dev.paas(&["config"]).success().contains("REDIS_URL"));
    assert!(dev.paas(&["config"]).success().contains("DATABASE_URL"));

    // The data's major version is pinned: an add-on whose recorded version differs from
    // the image's is not started; its volume stays for a dump and restore.
    let db = server.dir.path().join("paas.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    sqlx::query("UPDATE addons SET major = '14' WHERE name = 'web-postgres'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    docker(&["rm", "-f", &container]);
    let server = server.restart().await;
    let dev = dev.logged_in_to(&server);
    let info = dev.paas(&["addons:info", "web-postgres"]).success();
    assert!(info.contains("missing"), "{info}");
    let logs = dev.paas(&["logs", "-n", "100"]).success();
    assert!(logs.contains("holds postgres 14 data"), "{logs}");
    assert!(
        docker(&["volume", "inspect", &format!("{}-addon-web-postgres", server.docker_network())])
            .contains("\"Name\"")
    );
}

/// The host's CA bundle: on this project's machines it holds the TLS proxy's CA.
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A Django app (dj-database-url, psycopg2 from PyPI) with a PostgreSQL add-on made before
/// its first push: the release phase migrates into the add-on, the web process reads it, the
/// app's own code runs a PostGIS query, and a redeploy finds the same database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_migrates_into_its_postgres_addon() {
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.build.build_ca_file = Some(HOST_CA_BUNDLE.into());
    })
    .await;
    let app = "blog";
    let dev = Developer::new(&server, "django-monorepo");
    dev.write(
        "backend/postgis.py",
        "import os\nimport psycopg2\n\nconnection = psycopg2.connect(os.environ[\"DATABASE_URL\"])\n\
         cursor = connection.cursor()\ncursor.execute(\"SELECT PostGIS_Version()\")\n\
         print(\"postgis\", cursor.fetchone()[0])\n",
    );
    dev.commit("A PostGIS probe");
    dev.paas(&["apps:create", app]).success();
    let created = dev.paas(&["addons:create", "heroku-postgresql:essential-0"]).success();
    assert!(created.contains("as DATABASE_URL"), "{created}");

    let pushed = dev.git(&["push", "paas", "main"]).success();
    for expected in [
        "Running release command: cd backend && python manage.py migrate --noinput",
        "Applying auth.0001_initial... OK",
        "remote: -----> Released v",
    ] {
        assert!(pushed.contains(expected), "no {expected:?} in:\n{pushed}");
    }
    let db = server.app_request(&format!("{app}.localhost"), "/api/db/").await;
    let db: serde_json::Value = db.json().await.unwrap();
    assert_eq!(db["vendor"], "postgresql", "{db}");
    assert!(db["migrations"].as_i64().unwrap() >= 10, "{db}");
    let postgis = dev.paas(&["run", "python", "backend/postgis.py"]).success();
    assert!(postgis.contains("postgis 3."), "{postgis}");

    dev.git(&["commit", "-q", "--allow-empty", "-m", "Redeploy"]).success();
    let again = dev.git(&["push", "paas", "main"]).success();
    assert!(again.contains("No migrations to apply."), "the same database: {again}");
}
