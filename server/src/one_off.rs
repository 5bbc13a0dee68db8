//! One-off commands (`paas run`): a fresh container of the current release, its output
//! streamed to the caller, then its exit code.

use std::time::Duration;

use paas_store::App;

use crate::error::{Error, Result};
use crate::ops::Paas;
use crate::rollout::spec_for;

/// One event of a one-off run, sent as a JSON line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEvent {
    /// A line of the command's output.
    Line(String),
    /// The command ended with this exit code.
    Exit(i64),
    /// paas could not run it.
    Error(String),
}

/// Longest a one-off command may run.
const ONE_OFF_LIMIT: Duration = Duration::from_secs(60 * 60);

impl Paas {
    /// Runs `command` once in a fresh container of the current release, with its config and
    /// `input` (if any) as its standard input: the output and then the exit code arrive on
    /// the returned channel, and the container is removed afterwards, or as soon as the
    /// receiver is dropped (`paas run`).
    pub async fn run_one_off(
        &self,
        app: &App,
        command: &str,
        input: Option<paas_runner::StdinStream>,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<RunEvent>> {
        if command.trim().is_empty() {
            return Err(Error::invalid("invalid_command", "give a command to run"));
        }
        let runner = self.runner()?.clone();
        let release = self.store().current_release(app).await?;
        let Some((release, image)) = release.and_then(|r| r.image.clone().map(|i| (r, i))) else {
            return Err(Error::invalid(
                "not_deployed",
                format!(
                    "{} has no deployed release to run a command in; deploy it first",
                    app.name
                ),
            ));
        };
        let mut spec = spec_for(app, &release, &image, "run", 1);
        spec.command = Some(command.to_string());
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (lines, mut output) = tokio::sync::mpsc::unbounded_channel::<String>();
            let forward_events = events.clone();
            let forward = tokio::spawn(async move {
                while let Some(line) = output.recv().await {
                    let _ = forward_events.send(RunEvent::Line(line));
                }
            });
            // Whoever asked going away (Ctrl-C of `paas run`) ends the run, as on Heroku:
            // dropping it removes the container.
            let result = tokio::select! {
                result = runner.run_once_with_input(&spec, input, &lines, ONE_OFF_LIMIT) => result,
                () = events.closed() => {
                    tracing::info!(app = %spec.app, "one-off abandoned by its caller; removed");
                    return;
                }
            };
            drop(lines);
            let _ = forward.await;
            let _ = events.send(match result {
                Ok(code) => RunEvent::Exit(code),
                Err(err) => RunEvent::Error(err.to_string()),
            });
        });
        Ok(receiver)
    }
}
