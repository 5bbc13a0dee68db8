//! What the runner reports back: processes, their log lines and their lifecycle events, all
//! plain data rebuilt from Docker's labels.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::spec::{
    LABEL_APP, LABEL_INDEX, LABEL_MANAGED, LABEL_ONE_OFF, LABEL_PORT, LABEL_PROCESS, LABEL_RELEASE,
};

/// A container paas manages, as Docker sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub container_id: String,
    /// The container's name, e.g. `paas-shop-web.1-v3-1a2b3c`.
    pub name: String,
    pub app: String,
    pub release: i64,
    pub process_type: String,
    pub index: u32,
    /// A release-phase or `paas run` container rather than part of the formation.
    pub one_off: bool,
    pub image: String,
    pub state: ProcessState,
    /// Where it listens: its IP on the paas network and its `PORT`. `None` for processes
    /// without a port and for containers that are not running (a restarting container may
    /// come back with another IP).
    pub addr: Option<SocketAddr>,
    /// The port it was given (`PORT`), running or not.
    pub port: Option<u16>,
    /// How often Docker has restarted it after it exited: a rising count is a crash loop.
    pub restart_count: i64,
    /// When the current (or last) run started, RFC 3339 as Docker reports it.
    pub started_at: Option<String>,
    /// The last exit code, when it is not running.
    pub exit_code: Option<i64>,
    /// The last run was killed for going over its memory limit.
    pub oom_killed: bool,
    /// The Swarm node it runs on (a Swarm task); `None` with the container scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Process {
    /// `web.1`.
    pub fn process_name(&self) -> String {
        format!("{}.{}", self.process_type, self.index)
    }

    /// How long it has been running; `None` when it is not running.
    pub fn uptime(&self) -> Option<Duration> {
        if self.state != ProcessState::Running {
            return None;
        }
        let started = parse_time(self.started_at.as_deref()?)?;
        let now = OffsetDateTime::from(SystemTime::now());
        (now - started).try_into().ok()
    }
}

/// Docker's container states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    Created,
    Running,
    /// Exited, waiting for Docker's restart backoff.
    Restarting,
    Paused,
    Exited,
    Removing,
    Dead,
}

impl ProcessState {
    pub(crate) fn parse(status: &str) -> ProcessState {
        match status {
            "created" => ProcessState::Created,
            "running" => ProcessState::Running,
            "restarting" => ProcessState::Restarting,
            "paused" => ProcessState::Paused,
            "removing" => ProcessState::Removing,
            "dead" => ProcessState::Dead,
            _ => ProcessState::Exited,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Created => "created",
            ProcessState::Running => "running",
            ProcessState::Restarting => "restarting",
            ProcessState::Paused => "paused",
            ProcessState::Exited => "exited",
            ProcessState::Removing => "removing",
            ProcessState::Dead => "dead",
        }
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line a process wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When Docker received it, RFC 3339 with nanoseconds.
    pub timestamp: String,
    pub stream: LogStream,
    /// The line, without its line break.
    pub line: String,
}

/// Bytes a one-off process wrote, as Docker passed them on: not split into lines, and a
/// line may end in the next chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    pub stream: LogStream,
    pub bytes: bytes::Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// Something happened to a paas-managed container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEvent {
    pub container_id: String,
    pub name: String,
    pub app: String,
    pub release: i64,
    pub process_type: String,
    pub index: u32,
    pub one_off: bool,
    pub kind: ProcessEventKind,
    /// When, in nanoseconds since the Unix epoch.
    pub time_nano: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum ProcessEventKind {
    /// It started: first start, or a restart by Docker after a crash. Its address may have
    /// changed: look it up with `Runner::process` and health-check it before routing to it.
    Started,
    /// Its process exited (Docker restarts it unless it was stopped).
    Died { exit_code: Option<i64> },
    /// The kernel killed it for going over its memory limit (a `Died` follows).
    OutOfMemory,
    /// Its image's own HEALTHCHECK changed state.
    Health { healthy: bool },
    /// The container was removed.
    Removed,
}

impl ProcessEventKind {
    /// Docker's event action → ours; `None` for actions paas does not follow.
    pub(crate) fn parse(action: &str, attributes: &HashMap<String, String>) -> Option<Self> {
        Some(match action {
            "start" => ProcessEventKind::Started,
            "die" => ProcessEventKind::Died {
                exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
            },
            "oom" => ProcessEventKind::OutOfMemory,
            "destroy" => ProcessEventKind::Removed,
            "health_status: healthy" => ProcessEventKind::Health { healthy: true },
            "health_status: unhealthy" => ProcessEventKind::Health { healthy: false },
            _ => return None,
        })
    }
}

/// The identity of a process as its labels say; `None` when they are not paas's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Labels {
    pub app: String,
    pub release: i64,
    pub process_type: String,
    pub index: u32,
    pub port: Option<u16>,
    pub one_off: bool,
}

impl Labels {
    pub(crate) fn parse(labels: &HashMap<String, String>) -> Option<Labels> {
        if labels.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
            return None;
        }
        Some(Labels {
            app: labels.get(LABEL_APP)?.clone(),
            release: labels.get(LABEL_RELEASE)?.parse().ok()?,
            process_type: labels.get(LABEL_PROCESS)?.clone(),
            index: labels.get(LABEL_INDEX)?.parse().ok()?,
            port: match labels.get(LABEL_PORT) {
                Some(port) => Some(port.parse().ok()?),
                None => None,
            },
            one_off: labels.get(LABEL_ONE_OFF).map(String::as_str) == Some("true"),
        })
    }
}

/// A process from `docker inspect`; `None` when it is not one of paas's.
pub(crate) fn from_inspect(
    inspect: bollard::models::ContainerInspectResponse,
    network: &str,
    network_id: &str,
) -> Option<Process> {
    let config = inspect.config.unwrap_or_default();
    let labels = Labels::parse(config.labels.as_ref()?)?;
    let state = inspect.state.unwrap_or_default();
    let status = state.status.map(|s| ProcessState::parse(s.as_ref()));
    let status = status.unwrap_or(ProcessState::Exited);
    let ip = inspect
        .network_settings
        .and_then(|settings| settings.networks)
        .and_then(|networks| {
            networks
                .into_iter()
                .find(|(name, endpoint)| {
                    name == network || endpoint.network_id.as_deref() == Some(network_id)
                })
                .and_then(|(_, endpoint)| endpoint.ip_address)
        })
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    let addr = match (status, ip, labels.port) {
        (ProcessState::Running, Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
        _ => None,
    };
    let started_at = state.started_at.filter(|s| parse_time(s).is_some_and(|t| t.year() > 1));
    let running = matches!(status, ProcessState::Running | ProcessState::Paused);
    Some(Process {
        container_id: inspect.id?,
        name: inspect.name.unwrap_or_default().trim_start_matches('/').to_string(),
        app: labels.app,
        release: labels.release,
        process_type: labels.process_type,
        index: labels.index,
        one_off: labels.one_off,
        image: config.image.unwrap_or_default(),
        state: status,
        addr,
        port: labels.port,
        restart_count: inspect.restart_count.unwrap_or(0),
        started_at,
        exit_code: if running { None } else { state.exit_code },
        oom_killed: state.oom_killed.unwrap_or(false),
        node: None,
    })
}

pub(crate) fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `1700000000.123456789`: the form Docker's `since` accepts with nanoseconds.
pub(crate) fn docker_since(at: OffsetDateTime) -> String {
    format!("{}.{:09}", at.unix_timestamp(), at.nanosecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProcessSpec;

    #[test]
    fn labels_read_back_what_the_spec_wrote() {
        let mut spec = ProcessSpec::new("shop", 12, "worker", 2, "img");
        let labels = spec.labels("paas", false);
        let parsed = Labels::parse(&labels).unwrap();
        assert_eq!(
            parsed,
            Labels {
                app: "shop".into(),
                release: 12,
                process_type: "worker".into(),
                index: 2,
                port: None,
                one_off: false,
            }
        );
        spec.port = Some(5000);
        let parsed = Labels::parse(&spec.labels("paas", true)).unwrap();
        assert_eq!((parsed.port, parsed.one_off), (Some(5000), true));

        let mut foreign = labels.clone();
        foreign.remove(LABEL_MANAGED);
        assert_eq!(Labels::parse(&foreign), None);
        let mut broken = labels;
        broken.insert(LABEL_RELEASE.into(), "v12".into());
        assert_eq!(Labels::parse(&broken), None);
    }

    #[test]
    fn docker_states_and_events() {
        assert_eq!(ProcessState::parse("restarting"), ProcessState::Restarting);
        assert_eq!(ProcessState::parse("running").to_string(), "running");
        assert_eq!(ProcessState::parse("weird"), ProcessState::Exited);
        let attrs = HashMap::from([("exitCode".to_string(), "3".to_string())]);
        assert_eq!(
            ProcessEventKind::parse("die", &attrs),
            Some(ProcessEventKind::Died { exit_code: Some(3) })
        );
        assert_eq!(
            ProcessEventKind::parse("health_status: unhealthy", &attrs),
            Some(ProcessEventKind::Health { healthy: false })
        );
        assert_eq!(ProcessEventKind::parse("attach", &attrs), None);
        let json = serde_json::to_string(&ProcessEventKind::Died { exit_code: Some(1) }).unwrap();
        assert_eq!(json, r#"{"event":"died","exit_code":1}"#);
    }

    #[test]
    fn times() {
        let at = parse_time("2024-05-01T12:34:56.000001234Z").unwrap();
        assert_eq!(docker_since(at), "1714566896.000001234");
        assert!(parse_time("0001-01-01T00:00:00Z").is_some_and(|t| t.year() == 1));
        assert!(parse_time("yesterday").is_none());
        let mut process = Process {
            container_id: "c".into(),
            name: "n".into(),
            app: "a".into(),
            release: 1,
            process_type: "web".into(),
            index: 1,
            one_off: false,
            image: "i".into(),
            state: ProcessState::Running,
            addr: None,
            port: None,
            restart_count: 0,
            started_at: Some("2024-05-01T12:34:56.5Z".into()),
            exit_code: None,
            oom_killed: false,
            node: None,
        };
        assert!(process.uptime().is_some_and(|u| u > Duration::from_secs(3600)));
        process.state = ProcessState::Exited;
        assert_eq!(process.uptime(), None);
    }
}
