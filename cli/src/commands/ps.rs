//! `paas ps`, `paas ps:scale`, `paas logs`, `paas run`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result, bail};
use paas_runner::Process;
use paas_server::wire::RunEvent;

use super::{app_name, client, nothing, progress, table};
use crate::AppArg;
use crate::client::{encode, path};

pub(crate) async fn scale(arg: &AppArg, changes: &[String]) -> Result<()> {
    let name = app_name(arg)?;
    let client = client()?;
    let path = path(&["apps", &name, "formation"])?;
    if changes.is_empty() {
        let formation: BTreeMap<String, i64> = client.get(&path).await?;
        print_formation(&name, &formation);
        return Ok(());
    }
    let mut wanted = BTreeMap::new();
    for change in changes {
        let Some((process_type, quantity)) = change.split_once('=') else {
            bail!("{change:?} is not TYPE=N, like web=2");
        };
        let quantity: i64 = quantity
            .parse()
            .with_context(|| format!("{change:?}: {quantity:?} is not a number"))?;
        wanted.insert(process_type.to_string(), quantity);
    }
    let work = client.patch::<BTreeMap<String, i64>>(&path, &wanted);
    let formation = progress(&format!("Scaling {name}"), work, nothing).await?;
    print_formation(&name, &formation);
    Ok(())
}

fn print_formation(name: &str, formation: &BTreeMap<String, i64>) {
    if formation.is_empty() {
        println!("{name} has no processes scaled yet");
        return;
    }
    let line: Vec<String> = formation.iter().map(|(t, n)| format!("{t}={n}")).collect();
    println!("{}", line.join(" "));
}

pub(crate) async fn list(arg: &AppArg) -> Result<()> {
    let name = app_name(arg)?;
    let processes: Vec<Process> = client()?.get(&path(&["apps", &name, "ps"])?).await?;
    if processes.is_empty() {
        println!("{name} has no processes running. Deploy it, or `paas ps:scale web=1`.");
        return Ok(());
    }
    println!("=== {name} Processes");
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            let state = match p.uptime() {
                Some(up) => format!("{} for {}", p.state.as_str(), human(up)),
                None => p.state.as_str().to_string(),
            };
            let restarts = match p.restart_count {
                0 => String::new(),
                n => format!("{n} restarts{}", if p.oom_killed { " (out of memory)" } else { "" }),
            };
            let kind = if p.one_off { " (one-off)" } else { "" };
            let mut row =
                vec![format!("{}{kind}", p.process_name()), format!("v{}", p.release), state];
            // With the Swarm scheduler: the node each task runs on.
            row.extend(p.node.as_ref().map(|node| format!("on {node}")));
            row.push(restarts);
            row
        })
        .collect();
    print!("{}", table(&rows));
    Ok(())
}

fn human(duration: std::time::Duration) -> String {
    match duration.as_secs() {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

pub(crate) async fn logs(arg: &AppArg, tail: bool, ps: Option<&str>, num: usize) -> Result<()> {
    let name = app_name(arg)?;
    let mut url = format!("{}?num={num}&tail={tail}", path(&["apps", &name, "logs"])?);
    if let Some(ps) = ps {
        url.push_str(&format!("&ps={}", encode(ps)));
    }
    let mut response = client()?.get_stream(&url).await?;
    let mut stdout = std::io::stdout();
    while let Some(chunk) = response.chunk().await? {
        stdout.write_all(&chunk)?;
        stdout.flush()?;
    }
    Ok(())
}

/// Streams the command's output, stdout to stdout and stderr to stderr, byte for byte;
/// exits the CLI with the command's exit code.
pub(crate) async fn run(arg: &AppArg, command: &[String], no_input: bool) -> Result<()> {
    let name = app_name(arg)?;
    let command = command.join(" ");
    eprintln!("Running `{command}` on {name}...");
    let path = path(&["apps", &name, "run"])?;
    let body = paas_server::wire::RunCommand { command };
    let response = if no_input || std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        client()?.post_stream(&path, &body).await?
    } else {
        // Piped input (`paas run python manage.py loaddata - < data.json`) is the command's:
        // the body is the command as a JSON line, then the input.
        let mut line = serde_json::to_vec(&body)?;
        line.push(b'\n');
        let first = futures_util::stream::iter([Ok(line)]);
        let input = futures_util::StreamExt::chain(first, stdin_chunks());
        client()?.post_bytes_stream(&path, reqwest::Body::wrap_stream(input)).await?
    };
    let code =
        relay(response.bytes_stream(), &mut std::io::stdout(), &mut std::io::stderr()).await?;
    if code != 0 {
        // Codes that do not fit an exit status (-1: Docker could not tell) still fail.
        std::process::exit(u8::try_from(code).map_or(1, i32::from));
    }
    Ok(())
}

/// Writes a run's output ([`RunEvent`] lines) to `stdout` and `stderr` as it arrives, each
/// chunk flushed at once (a prompt has no newline); returns the command's exit code. A
/// stream that ends before the exit code is an error: the command's fate is unknown.
///
/// The writes block: while whoever reads this program's output is behind, the response is
/// not read, and so the server and the command wait too.
pub(crate) async fn relay<B, E>(
    mut body: impl futures_util::Stream<Item = Result<B, E>> + Unpin,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> Result<i64>
where
    B: AsRef<[u8]>,
    E: std::error::Error + Send + Sync + 'static,
{
    use futures_util::StreamExt;
    let mut pending = Vec::new();
    while let Some(chunk) = body.next().await {
        pending.extend_from_slice(chunk?.as_ref());
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = &pending[start..start + end];
            start += end + 1;
            match serde_json::from_slice::<RunEvent>(line)? {
                RunEvent::Stdout(bytes) => {
                    stdout.write_all(&bytes)?;
                    stdout.flush()?;
                }
                RunEvent::Stderr(bytes) => {
                    stderr.write_all(&bytes)?;
                    stderr.flush()?;
                }
                RunEvent::Exit(code) => return Ok(code),
                RunEvent::Error(message) => bail!(message),
            }
        }
        pending.drain(..start);
    }
    bail!("the connection ended before the command finished")
}

/// This program's standard input, as it is read.
pub(crate) fn stdin_chunks()
-> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(tokio::io::stdin(), |mut stdin| async move {
        let mut buffer = vec![0; 64 * 1024];
        match stdin.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(buffer), stdin))
            }
            Err(error) => Some((Err(error), stdin)),
        }
    })
}

pub(crate) async fn restart(arg: &AppArg, process_type: Option<String>) -> Result<()> {
    let name = app_name(arg)?;
    let what = process_type.clone().unwrap_or_else(|| "all processes".into());
    let body = paas_server::wire::Restart { process_type };
    let client = client()?;
    let path = path(&["apps", &name, "ps", "restart"])?;
    let work = client.post::<Vec<Process>>(&path, &body);
    progress(&format!("Restarting {what} of {name}"), work, nothing).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(text: &str, size: usize) -> Vec<std::io::Result<Vec<u8>>> {
        text.as_bytes().chunks(size).map(|c| Ok(c.to_vec())).collect()
    }

    #[test]
    fn run_output_is_relayed_byte_for_byte_to_its_own_stream() {
        let wire = "{\"out\":\"aGVs\"}\n{\"err\":\"b29wcw==\"}\n{\"out\":\"bG8=\"}\n{\"exit\":3}\n";
        // Cut anywhere, even inside an event: only whole lines are read.
        for size in [1, 7, wire.len()] {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let body = futures_util::stream::iter(chunks(wire, size));
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let code = runtime.block_on(relay(body, &mut stdout, &mut stderr)).unwrap();
            assert_eq!((code, &stdout[..], &stderr[..]), (3, &b"hello"[..], &b"oops"[..]));
        }
    }

    #[test]
    fn a_run_stream_without_its_exit_code_is_an_error() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let cut = futures_util::stream::iter(chunks("{\"out\":\"aGk=\"}\n{\"exit\"", 100));
        let error = runtime.block_on(relay(cut, &mut stdout, &mut stderr)).unwrap_err();
        assert!(error.to_string().contains("ended before the command finished"), "{error}");
        assert_eq!(stdout, b"hi", "what came before is out");
        let failed = futures_util::stream::iter(chunks("{\"error\":\"no Docker\"}\n", 100));
        let error = runtime.block_on(relay(failed, &mut stdout, &mut stderr)).unwrap_err();
        assert_eq!(error.to_string(), "no Docker");
    }
}
