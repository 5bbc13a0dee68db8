//! `paas cron`, `cron:add`, `cron:remove`: commands run on a schedule (Heroku Scheduler).

use anyhow::Result;
use paas_server::core::CronJob;
use paas_server::wire::AddCronJob;

use super::{app_name, client, nothing, progress, table};
use crate::AppArg;
use crate::client::path;

pub(crate) async fn list(arg: &AppArg) -> Result<()> {
    let app = app_name(arg)?;
    let jobs: Vec<CronJob> = client()?.get(&path(&["apps", &app, "cron"])?).await?;
    if jobs.is_empty() {
        println!(
            "{app} has no scheduled jobs. Add one with \
             `paas cron:add \"0 11 * * *\" python manage.py run_daily_tasks`."
        );
        return Ok(());
    }
    let mut rows = vec![
        ["ID", "SCHEDULE (UTC)", "COMMAND", "LAST RUN", "RUNS", "SKIPPED"]
            .map(String::from)
            .to_vec(),
    ];
    for job in jobs {
        let last = match (&job.last_started_at, job.running, job.last_exit_code, &job.last_error) {
            (None, _, _, _) => "never".to_string(),
            (Some(at), 1, _, _) => format!("{at}, running"),
            (Some(at), _, Some(code), _) => format!("{at}, exit {code}"),
            (Some(at), _, None, Some(error)) => format!("{at}, failed: {error}"),
            (Some(at), _, None, None) => at.clone(),
        };
        rows.push(vec![
            format!("cron.{}", job.id),
            job.schedule,
            job.command,
            last,
            job.runs.to_string(),
            job.skipped.to_string(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

pub(crate) async fn add(arg: &AppArg, schedule: &str, command: &[String]) -> Result<()> {
    // Everything after the schedule is the command, so `-a shop` at the end would be run,
    // not read: say where it goes rather than schedule the wrong thing on the wrong app.
    if let [.., flag, app] = command
        && ["-a", "--app", "-r", "--remote"].contains(&flag.as_str())
    {
        anyhow::bail!(
            "`{flag} {app}` after the command would be part of the command; put it before the \
             schedule: paas cron:add {flag} {app} \"{schedule}\" {}",
            command[..command.len() - 2].join(" ")
        );
    }
    let app = app_name(arg)?;
    let client = client()?;
    let body = AddCronJob { schedule: schedule.to_string(), command: command.join(" ") };
    let url = path(&["apps", &app, "cron"])?;
    let job: CronJob =
        progress(&format!("Scheduling a job of {app}"), client.post(&url, &body), nothing).await?;
    println!(
        "cron.{} runs `{}` at \"{}\" UTC in a one-off container of {app}'s current release; \
         its output is in `paas logs --ps cron.{}`.",
        job.id, job.command, job.schedule, job.id
    );
    Ok(())
}

pub(crate) async fn remove(arg: &AppArg, id: &str) -> Result<()> {
    let app = app_name(arg)?;
    let id = id.trim_start_matches("cron.");
    let client = client()?;
    let url = path(&["apps", &app, "cron", id])?;
    progress(&format!("Removing job cron.{id} of {app}"), client.delete(&url), nothing).await
}
