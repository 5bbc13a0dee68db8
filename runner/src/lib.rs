//! Release → running containers.
//!
//! The server's deploy pipeline describes each process it wants as a [`ProcessSpec`] (app,
//! release, process type and index, image, command, config vars, port) and the [`Runner`]
//! makes it a Docker container through the Engine API:
//!
//! - [`Runner::start`] creates and starts one container on the paas bridge network, labelled
//!   so that [`Runner::list`] can rebuild every [`Process`] from Docker alone (adoption after
//!   a restart of paas), locked down (no privileges, no host network, no Docker socket, fewer
//!   capabilities, memory and process limits) and restarted by Docker when it exits.
//! - [`Runner::wait_healthy`] decides when a new `web` process may get traffic: a TCP
//!   connect to its `PORT`, then an optional HTTP GET ([`HealthCheck`]); an exit meanwhile
//!   fails it at once with the exit code and the last log lines.
//! - [`Runner::stop`] is SIGTERM, a grace period, SIGKILL, removal.
//! - [`Runner::run_once`] runs a one-off container (release phase, `paas run`), streaming
//!   its output byte for byte from the attached streams into a bounded channel, so a slow
//!   reader makes the process wait; [`Runner::logs`] reads and follows a container's output;
//!   [`Runner::events`] reports starts, exits and removals, so the server can take a crashed
//!   process out of the router and put it back when it is up again.
//!
//! - [`Runner::ensure_service`] runs an add-on's container (a database, a cache) with a
//!   named volume for its data, joined to the private networks of the apps attached to it.
//!
//! Nothing here knows about the store or the router: specs in, processes, lines and events
//! out, all plain data. `docs/deploys.md` explains the choices (environment, labels,
//! security settings, restart policy, log rotation) for users.

mod docker;
mod error;
mod health;
mod process;
mod service;
mod spec;
mod swarm;

pub use docker::{DROPPED_CAPABILITIES, Runner, RunnerConfig, StdinStream};
pub use error::RunError;
pub use health::HealthCheck;
pub use process::{
    LogLine, LogStream, OutputChunk, Process, ProcessEvent, ProcessEventKind, ProcessState,
};
pub use service::{LABEL_MAJOR, LABEL_SERVICE, Service, ServiceSpec};
pub use spec::{
    LABEL_APP, LABEL_INDEX, LABEL_MANAGED, LABEL_NETWORK, LABEL_ONE_OFF, LABEL_PORT, LABEL_PROCESS,
    LABEL_RELEASE, ProcessSpec, VolumeMount,
};
pub use swarm::{Scheduler, Wanted};
