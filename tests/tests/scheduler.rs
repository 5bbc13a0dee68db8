//! Scheduled jobs on real containers: a job set to run every minute runs in a one-off
//! container of the current release and writes its row to the app's database (SQLite in a
//! volume); `paas cron` shows the run and `paas logs` its output; a job that runs longer
//! than its period is skipped, never started twice. The same timer takes an add-on's
//! scheduled backups.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use paas_tests::developer::Developer;
use paas_tests::{Db, TestServer};

/// `python tick.py KIND [SECONDS]` records a row of KIND, then sleeps; `python tick.py`
/// counts the rows of each kind.
const TICK: &str = r#"
import sqlite3, sys, time

db = sqlite3.connect("/app/data/ticks.db")
db.execute("CREATE TABLE IF NOT EXISTS ticks (kind TEXT, at REAL)")
if len(sys.argv) > 1:
    db.execute("INSERT INTO ticks VALUES (?, ?)", (sys.argv[1], time.time()))
    db.commit()
    print("tick", sys.argv[1], flush=True)
    time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 0)
else:
    for kind, n in db.execute("SELECT kind, count(*) FROM ticks GROUP BY kind ORDER BY kind"):
        print(kind, n)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_every_minute_and_never_twice_at_once() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "python-stdlib");
    dev.write("tick.py", TICK);
    dev.commit("Ticks");
    dev.paas(&["apps:create", "ticker"]).success();
    dev.git(&["push", "paas", "main"]).success();
    dev.paas(&["volumes:add", "data", "/app/data"]).success();
    // The same timer takes an add-on's scheduled backups.
    dev.paas(&["addons:create", "postgres"]).success();
    let scheduled = dev.paas(&["pg:backups:schedule", "* * * * *"]).success();
    assert!(scheduled.contains("The next one is at"), "{scheduled}");

    let added = dev.paas(&["cron:add", "* * * * *", "python", "tick.py", "fast"]).success();
    assert!(added.contains("cron.1 runs `python tick.py fast`"), "{added}");
    // Runs for 150 s, so the next two minutes' runs find it still going.
    dev.paas(&["cron:add", "* * * * *", "python tick.py slow 150"]).success();
    for (args, says) in [
        (&["cron:add", "every day", "true"][..], "has 2 fields"),
        (&["cron:add", "61 * * * *", "true"], "minute field"),
        (&["cron:remove", "cron.9"], "scheduled job 9 of ticker not found"),
        (&["cron:add", "0 3 * * *", "true", "-a", "ticker"], "put it before the schedule"),
    ] {
        let out = dev.paas(args).failure();
        assert!(out.contains(says), "paas {args:?}: {out}");
    }

    // Within three minutes: the fast job has run at least twice, the slow one once, and the
    // slow one's later turns were skipped.
    let deadline = std::time::Instant::now() + Duration::from_secs(200);
    let listed = loop {
        let listed = dev.paas(&["cron"]).success();
        let row = |id: &str| listed.lines().find(|l| l.starts_with(id)).unwrap_or("").to_string();
        let counts = |row: String| {
            let mut numbers =
                row.split_whitespace().rev().take(2).map(|n| n.parse::<i64>().unwrap_or(-1));
            let skipped = numbers.next().unwrap_or(-1);
            (numbers.next().unwrap_or(-1), skipped)
        };
        let fast_done = row("cron.1").contains("exit 0");
        let (fast_runs, _) = counts(row("cron.1"));
        let (slow_runs, slow_skipped) = counts(row("cron.2"));
        if fast_runs >= 2 && fast_done && slow_skipped >= 1 {
            assert_eq!(slow_runs, 1, "the slow job ran twice at once:\n{listed}");
            break listed;
        }
        assert!(std::time::Instant::now() < deadline, "jobs did not run in time:\n{listed}");
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    assert!(listed.contains("exit 0"), "{listed}");
    let backups = dev.paas(&["pg:backups"]).success();
    assert!(backups.contains("succeeded") && backups.contains("scheduler"), "{backups}");
    dev.paas(&["pg:backups:unschedule"]).success();
    let info = dev.paas(&["addons:info", "ticker-postgres"]).success();
    assert!(info.contains("on demand"), "{info}");
    let counted = dev.paas(&["run", "python", "tick.py"]).success();
    assert!(counted.contains("slow 1"), "{counted}");
    let fast: i64 = counted
        .lines()
        .find_map(|l| l.strip_prefix("fast "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(fast >= 2, "{counted}");
    let logs = dev.paas(&["logs", "-n", "300"]).success();
    assert!(logs.contains("app[cron.1]: tick fast"), "{logs}");
    assert!(logs.contains("paas[cron.1]: `python tick.py fast` exited with code 0"), "{logs}");
    assert!(logs.contains("paas[cron.2]: Skipped: the run started at"), "{logs}");

    dev.paas(&["cron:remove", "cron.1"]).success();
    assert!(!dev.paas(&["cron"]).success().contains("tick.py fast"));
}
