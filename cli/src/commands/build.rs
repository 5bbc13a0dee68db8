//! `paas build DIR`: build a local directory into an image on the local Docker engine, as a
//! deploy would, printing the build log live; or, with `--plan`, only say what would be built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use paas_builder::{BuildLog, BuildRequest, Builder, BuilderConfig};

#[derive(clap::Args, Debug)]
pub(crate) struct BuildArgs {
    /// The app's source directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// App name for the image tag (default: the directory's name).
    #[arg(short, long)]
    pub app: Option<String>,
    /// Print the build plan and the generated Dockerfile; no Docker needed.
    #[arg(long)]
    pub plan: bool,
    /// With --plan: print it as JSON.
    #[arg(long, requires = "plan")]
    pub json: bool,
    /// Build this folder of DIR (monorepos), like the PAAS_APP_BASE config var.
    #[arg(long, value_name = "PATH")]
    pub base_dir: Option<PathBuf>,
    /// A config var the build sees (repeatable): a build arg for Dockerfiles, build-time
    /// environment otherwise.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
}

pub(crate) async fn run(args: BuildArgs) -> Result<()> {
    let settings = BuilderConfig::from_env()?;
    let config = parse_config(&args.config)?;
    let mut request = BuildRequest::new(app_name(&args)?, unix_now(), &args.dir);
    request.base_dir = args.base_dir.clone();
    request.config = config;
    request.commit = git_head(&args.dir);
    if args.plan {
        return print_plan(&request, &settings, args.json);
    }

    let builder = Builder::connect(settings)
        .await
        .context("cannot reach the Docker engine (is it running? DOCKER_HOST picks another)")?;
    let log = BuildLog::new();
    let mut lines = log.subscribe();
    let printer = tokio::spawn(async move {
        while let Some(line) = lines.next().await {
            println!("{line}");
        }
    });
    let result = builder.build(&request, &log).await;
    log.close();
    let _ = printer.await;
    match result {
        Ok(image) => {
            let web = image.process_types.get("web").filter(|c| !c.is_empty());
            let command = web.map(|c| format!(" sh -c {}", shell_quote(c))).unwrap_or_default();
            eprintln!(
                "\nRun it: docker run --rm -e PORT=5000 -p 5000:5000 {}{command}",
                image.image
            );
            Ok(())
        }
        // The log above already says why, in full.
        Err(e) => bail!("build failed ({})", e.code()),
    }
}

fn print_plan(request: &BuildRequest, settings: &BuilderConfig, json: bool) -> Result<()> {
    let dir = request.app_dir()?;
    let plan = paas_builder::plan(&dir, &settings.base_images)?;
    let args: Vec<String> = request.config.keys().cloned().collect();
    let labels = BTreeMap::from([("io.paas.app".to_string(), request.app.clone())]);
    let dockerfile =
        paas_builder::generate_dockerfile(&plan, &args, settings.ca_file.is_some(), &labels);
    if json {
        let value = serde_json::json!({ "plan": plan, "dockerfile": dockerfile });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("=== Build plan for {}", dir.display());
    print!("{plan}");
    if let Some(dockerfile) = dockerfile {
        println!("\n=== Generated Dockerfile");
        print!("{dockerfile}");
    }
    Ok(())
}

fn parse_config(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => bail!("{pair:?} is not KEY=VALUE"),
        })
        .collect()
}

/// The directory's name as an app name: `My App_2` → `my-app-2`.
fn app_name(args: &BuildArgs) -> Result<String> {
    if let Some(app) = &args.app {
        return Ok(app.clone());
    }
    let dir = args.dir.canonicalize().with_context(|| format!("{}", args.dir.display()))?;
    let base = args.base_dir.as_ref().and_then(|b| b.file_name()).or(dir.file_name());
    let raw = base.map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let mut name = String::new();
    for c in raw.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') && !name.is_empty() {
            name.push('-');
        }
    }
    let name = name.trim_end_matches('-');
    Ok(if name.is_empty() { "app".to_string() } else { name.to_string() })
}

/// Each local build gets its own tag; seconds are unique enough for one person's builds.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn git_head(dir: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_pairs_and_names() {
        let config = parse_config(&["A=1".into(), "B=x=y".into(), "C=".into()]).unwrap();
        assert_eq!(config["B"], "x=y");
        assert_eq!(config["C"], "");
        assert!(parse_config(&["=1".into()]).is_err());
        assert!(parse_config(&["NOEQUALS".into()]).is_err());

        let dir = tempfile::tempdir().unwrap();
        let app_dir = dir.path().join("My App_2");
        std::fs::create_dir(&app_dir).unwrap();
        let args = BuildArgs {
            dir: app_dir,
            app: None,
            plan: true,
            json: false,
            base_dir: None,
            config: Vec::new(),
        };
        assert_eq!(app_name(&args).unwrap(), "my-app-2");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
