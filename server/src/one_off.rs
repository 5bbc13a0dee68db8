//! One-off commands (`paas run`): a fresh container of the current release, its output
//! streamed to the caller byte for byte, then its exit code.

use std::time::Duration;

use bytes::Bytes;
use paas_runner::{LogStream, OutputChunk};
use paas_store::App;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::ops::Paas;
use crate::rollout::spec_for;

/// One event of a one-off run: the answer of `POST /apps/{app}/run` is one JSON object a
/// line, `{"out": "<base64>"}` and `{"err": "<base64>"}` as the command writes, then
/// `{"exit": N}` or `{"error": "…"}`. Shared by the server and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RunEvent {
    /// Bytes the command wrote to its standard output, as they came (base64 in JSON, so
    /// any bytes, not only UTF-8 lines, get through).
    #[serde(rename = "out", with = "base64_bytes")]
    Stdout(Bytes),
    /// Bytes the command wrote to its standard error.
    #[serde(rename = "err", with = "base64_bytes")]
    Stderr(Bytes),
    /// The command ended with this exit code: the last event of a run.
    #[serde(rename = "exit")]
    Exit(i64),
    /// paas could not run it, or not to the end: the last event of a run.
    #[serde(rename = "error")]
    Error(String),
}

impl From<OutputChunk> for RunEvent {
    fn from(chunk: OutputChunk) -> RunEvent {
        match chunk.stream {
            LogStream::Stdout => RunEvent::Stdout(chunk.bytes),
            LogStream::Stderr => RunEvent::Stderr(chunk.bytes),
        }
    }
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        bytes: &Bytes,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map(Bytes::from).map_err(serde::de::Error::custom)
    }
}

/// Longest a one-off command may run.
const ONE_OFF_LIMIT: Duration = Duration::from_secs(60 * 60);

/// Chunks (as Docker frames them, tens of KiB) that may wait between the container and the
/// caller, per channel: enough to keep the stream flowing, little enough that a caller who
/// stops reading holds the command up rather than paas's memory.
pub(crate) const OUTPUT_CHUNKS: usize = 16;

impl Paas {
    /// Runs `command` once in a fresh container of the current release, with its config and
    /// `input` (if any) as its standard input: the output and then the exit code arrive on
    /// the returned channel, and the container is removed afterwards, or as soon as the
    /// receiver is dropped (`paas run`). The channel is bounded: while the receiver does not
    /// read, the command waits.
    pub async fn run_one_off(
        &self,
        app: &App,
        command: &str,
        input: Option<paas_runner::StdinStream>,
    ) -> Result<mpsc::Receiver<RunEvent>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_events_carry_any_bytes_as_base64_json_lines() {
        let events = [
            RunEvent::Stdout(Bytes::from_static(b"caf\xc3\xa9 \xff\x00 no newline")),
            RunEvent::Stderr(Bytes::from_static(b"warning\n")),
            RunEvent::Exit(3),
            RunEvent::Error("boom".into()),
        ];
        let lines: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
        assert_eq!(
            lines,
            [
                r#"{"out":"Y2Fmw6kg/wAgbm8gbmV3bGluZQ=="}"#,
                r#"{"err":"d2FybmluZwo="}"#,
                r#"{"exit":3}"#,
                r#"{"error":"boom"}"#,
            ]
        );
        for (line, event) in lines.iter().zip(&events) {
            assert_eq!(&serde_json::from_str::<RunEvent>(line).unwrap(), event);
        }
        assert!(serde_json::from_str::<RunEvent>(r#"{"out":"not base64!"}"#).is_err());
    }
}
