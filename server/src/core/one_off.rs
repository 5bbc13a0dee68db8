//! One-off commands (`paas run`): a fresh container of the current release, its output
//! streamed to the caller byte for byte, then its exit code.

use std::time::Duration;

use paas_store::App;
use tokio::sync::mpsc;

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};
use super::rollout::OUTPUT_CHUNKS;
use crate::wire::RunEvent;

/// Longest a one-off command may run.
const ONE_OFF_LIMIT: Duration = Duration::from_secs(60 * 60);

impl Paas {
    /// Runs `command` once in a fresh container of the current release, with its config and
    /// `input` (if any) as its standard input: the output and then the exit code arrive on
    /// the returned channel, and the container is removed afterwards, or as soon as the
    /// receiver is dropped (`paas run`). The channel is bounded: while the receiver does not
    /// read, the command waits.
    pub async fn run_one_off(
        &self,
        actor: &Actor,
        app: &App,
        command: &str,
        input: Option<paas_runner::StdinStream>,
    ) -> Result<mpsc::Receiver<RunEvent>> {
        if command.trim().is_empty() {
            return Err(Error::invalid("invalid_command", "give a command to run"));
        }
        self.runner()?;
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
        // Not the command itself: it may carry a secret on its command line.
        let detail = format!("ran a one-off command in v{}", release.version);
        self.audit(actor, Some(app), "run", detail).await;
        self.run_in_image(app, &release, &image, command, input).await
    }

    /// Runs `command` once in a fresh container of `image` (`release`'s, or an add-on's for
    /// `pg:psql`) with `release`'s config, on the app's network.
    pub(crate) async fn run_in_image(
        &self,
        app: &App,
        release: &paas_store::Release,
        image: &str,
        command: &str,
        input: Option<paas_runner::StdinStream>,
    ) -> Result<mpsc::Receiver<RunEvent>> {
        let runner = self.runner()?.clone();
        let mut spec = self.process_spec(app, release, image, "run", 1).await?;
        spec.command = Some(command.to_string());
        let (events, receiver) = mpsc::channel(OUTPUT_CHUNKS);
        let destroyed = self.destroying(&app.name);
        tokio::spawn(async move {
            let (output, mut chunks) = mpsc::channel(OUTPUT_CHUNKS);
            let run = runner.run_once_with_input(&spec, input, output, ONE_OFF_LIMIT);
            let forward = async {
                while let Some(chunk) = chunks.recv().await {
                    if events.send(RunEvent::from(chunk)).await.is_err() {
                        break;
                    }
                }
            };
            // Whoever asked going away (Ctrl-C of `paas run`) ends the run, as on Heroku:
            // dropping it removes the container. So does destroying the app, before its
            // containers are stopped: Docker holds up a container killed while its attached
            // output waits unread.
            let result = tokio::select! {
                (result, ()) = async { tokio::join!(run, forward) } => result,
                () = events.closed() => {
                    tracing::info!(app = %spec.app, "one-off abandoned by its caller; removed");
                    return;
                }
                () = destroyed.cancelled() => {
                    let _ = events.try_send(RunEvent::Error(format!("{} was destroyed", spec.app)));
                    return;
                }
            };
            let _ = events
                .send(match result {
                    Ok(code) => RunEvent::Exit(code),
                    Err(err) => RunEvent::Error(err.to_string()),
                })
                .await;
        });
        Ok(receiver)
    }
}
