//! Scheduled jobs (`paas cron:add "0 11 * * *" "python manage.py run_daily_tasks"`), Heroku
//! Scheduler's work: each run is a one-off container of the app's current release, with its
//! config, add-ons and volumes, its output in `paas logs` as `app[cron.ID]`. And the one
//! timer that runs them and the add-ons' scheduled backups, once a minute, in UTC.
//!
//! A job never runs twice at once: a run due while the last one still goes is skipped and
//! counted. Runs are claimed in the store by their minute, so a paas restarted within a
//! minute does not run it again; a minute that passed while paas was down is not made up.

use std::time::{Duration, Instant};

use paas_runner::LogStream;
use paas_store::{App, CronJob};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::Paas;
use super::audit::Actor;
use super::cron::Schedule;
use super::error::{Error, Result};
use super::rollout::OUTPUT_CHUNKS;

/// Most jobs one app may have.
pub const MAX_JOBS: usize = 20;
/// Longest a command may be.
const MAX_COMMAND: usize = 4096;
/// Longest a run may take before it is stopped.
const RUN_LIMIT: Duration = Duration::from_secs(6 * 60 * 60);

/// A job as paas allows it: its schedule parsed, its command trimmed.
pub(super) fn check_job(schedule: &str, command: &str) -> Result<(Schedule, String)> {
    let schedule = Schedule::parse(schedule).map_err(|e| Error::invalid("invalid_schedule", e))?;
    let command = command.trim();
    if command.is_empty() || command.len() > MAX_COMMAND || command.contains('\0') {
        return Err(Error::invalid(
            "invalid_command",
            format!("give a command to run, of at most {MAX_COMMAND} characters"),
        ));
    }
    Ok((schedule, command.to_string()))
}

impl Paas {
    pub async fn cron_jobs(&self, app: &App) -> Result<Vec<CronJob>> {
        Ok(self.store().cron_jobs(Some(app)).await?)
    }

    /// Adds a job: `schedule` is five cron fields in UTC.
    pub async fn add_cron_job(
        &self,
        actor: &Actor,
        app: &App,
        schedule: &str,
        command: &str,
    ) -> Result<CronJob> {
        let (schedule, command) = check_job(schedule, command)?;
        if self.store().cron_jobs(Some(app)).await?.len() >= MAX_JOBS {
            return Err(Error::invalid(
                "too_many_jobs",
                format!("{} has {MAX_JOBS} scheduled jobs, the most an app may have", app.name),
            ));
        }
        let job =
            self.store().add_cron_job(app, schedule.as_str(), &command, actor.email()).await?;
        // The schedule, not the command: it may carry a secret.
        let detail = format!("scheduled job {} at {:?}", job.id, job.schedule);
        self.audit(actor, Some(app), "cron.add", detail).await;
        Ok(job)
    }

    pub async fn remove_cron_job(&self, actor: &Actor, app: &App, id: i64) -> Result<()> {
        if !self.store().remove_cron_job(app, id).await? {
            return Err(Error::NotFound(format!("scheduled job {id} of {}", app.name)));
        }
        self.audit(actor, Some(app), "cron.remove", format!("removed scheduled job {id}")).await;
        Ok(())
    }

    /// The timer: once a minute, the jobs and backups due in that minute. Runs for the
    /// server's life; a run in progress when paas stops is recorded as cut short at the next
    /// start.
    pub fn schedule_loop(&self) -> tokio::task::JoinHandle<()> {
        let paas = self.clone();
        tokio::spawn(async move {
            match paas.store().fail_running_cron_jobs().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(jobs = n, "scheduled runs cut short by the last stop"),
                Err(err) => tracing::error!(error = %err, "cannot read scheduled jobs"),
            }
            loop {
                // A second into each minute: the clock's minute is then surely the next one.
                let now = OffsetDateTime::now_utc();
                tokio::time::sleep(Duration::from_secs(61 - u64::from(now.second()))).await;
                let now = OffsetDateTime::now_utc();
                if let Err(err) = paas.run_due_jobs(now).await {
                    tracing::error!(error = %err, "scheduled jobs not run");
                }
                if let Err(err) = paas.capture_due_backups(now).await {
                    tracing::error!(error = %err, "scheduled backups not run");
                }
            }
        })
    }

    /// Starts the jobs due in the minute of `now`.
    pub(crate) async fn run_due_jobs(&self, now: OffsetDateTime) -> Result<()> {
        let minute = now.replace_second(0).ok().and_then(|t| t.replace_nanosecond(0).ok());
        let minute =
            minute.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
        let Some(minute) = minute else { return Ok(()) };
        for job in self.store().cron_jobs(None).await? {
            let due = Schedule::parse(&job.schedule).is_ok_and(|s| s.matches(now));
            if !due {
                continue;
            }
            if self.store().claim_cron_run(&job, &minute).await? {
                let paas = self.clone();
                tokio::spawn(async move { paas.run_job(job).await });
            } else if job.running != 0 {
                let since = job.last_started_at.as_deref().unwrap_or("earlier");
                self.events().emit(
                    &job.app,
                    &format!("cron.{}", job.id),
                    format!("Skipped: the run started at {since} is still going"),
                );
            }
        }
        Ok(())
    }

    /// One run of a claimed job, to its end, recorded.
    async fn run_job(&self, job: CronJob) {
        let process = format!("cron.{}", job.id);
        let started = Instant::now();
        let outcome = self.run_job_container(&job, &process).await;
        let seconds = started.elapsed().as_secs_f64();
        let (code, error) = match &outcome {
            Ok(code) => (Some(*code), None),
            Err(err) => (None, Some(err.public_message())),
        };
        let said = match (&code, &error) {
            (Some(code), _) => {
                format!("`{}` exited with code {code} after {seconds:.1}s", job.command)
            }
            (None, Some(why)) => format!("`{}` did not run to its end: {why}", job.command),
            (None, None) => String::new(),
        };
        self.events().emit(&job.app, &process, said);
        if let Err(err) = self.store().finish_cron_run(&job, code, error.as_deref()).await {
            tracing::error!(job = job.id, error = %err, "cannot record a scheduled run");
        }
    }

    async fn run_job_container(&self, job: &CronJob, process: &str) -> Result<i64> {
        let app = self.store().app(&job.app).await?;
        let release = self.store().current_release(&app).await?;
        let Some((release, image)) = release.and_then(|r| r.image.clone().map(|i| (r, i))) else {
            return Err(Error::invalid(
                "not_deployed",
                format!("{} has nothing deployed", app.name),
            ));
        };
        let runner = self.runner()?.clone();
        let index = u32::try_from(job.id).unwrap_or(u32::MAX);
        let mut spec = self.process_spec(&app, &release, &image, "cron", index).await?;
        spec.command = Some(job.command.clone());
        self.events().emit(
            &app.name,
            process,
            format!("Starting `{}` of v{} ({} UTC)", job.command, release.version, job.schedule),
        );
        let (output, mut chunks) = mpsc::channel(OUTPUT_CHUNKS);
        let run = runner.run_once(&spec, output, RUN_LIMIT);
        let forward = async {
            // Whole lines to the log, each stream on its own; a last line without a newline
            // too.
            let mut pending = [Vec::new(), Vec::new()];
            while let Some(chunk) = chunks.recv().await {
                let buffer = &mut pending[usize::from(chunk.stream == LogStream::Stderr)];
                buffer.extend_from_slice(&chunk.bytes);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let text = String::from_utf8_lossy(&line);
                    self.events().output(&app.name, process, text.trim_end_matches(['\n', '\r']));
                }
            }
            for rest in pending.iter().filter(|b| !b.is_empty()) {
                self.events().output(&app.name, process, String::from_utf8_lossy(rest));
            }
        };
        let (code, ()) = tokio::join!(run, forward);
        Ok(code?)
    }
}
