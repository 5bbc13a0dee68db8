//! Service containers: the databases and caches paas runs for apps (add-ons). Each is one
//! long-running container with a named volume for its data, at home on the paas network
//! (where no app can reach it: traffic between containers is off there) and joined to the
//! private network of each app attached to it, under its name as a host name there.
//!
//! Like processes, a service is described as plain data ([`ServiceSpec`]) and found again
//! from Docker alone by its name; nothing here knows what runs inside.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, Mount, MountType,
    NetworkConnectRequest, NetworkDisconnectRequest, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Sender;

use crate::docker::{AbortOnDrop, NetworkKind, ensure_network, feed_stdin};
use crate::error::{is_not_found, status};
use crate::spec::{LABEL_MANAGED, LABEL_NETWORK};
use crate::{LogStream, OutputChunk, RunError, Runner, StdinStream};

/// Set on service containers and volumes: the add-on's name.
pub const LABEL_SERVICE: &str = "io.paas.service";
/// The image label service images carry: the major version of what they run.
pub const LABEL_MAJOR: &str = "io.paas.major";

/// One service to run.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// The add-on's name, also its host name on the networks of the apps attached to it.
    pub name: String,
    /// A local image, e.g. `paas/postgres:15`.
    pub image: String,
    /// What the image's entrypoint needs to set itself up (user, password, database).
    pub env: BTreeMap<String, String>,
    /// Where the data volume is mounted inside.
    pub data_dir: String,
    pub memory_mb: u64,
}

/// Without `env`, which holds passwords.
impl std::fmt::Debug for ServiceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("data_dir", &self.data_dir)
            .field("memory_mb", &self.memory_mb)
            .finish_non_exhaustive()
    }
}

/// A service's container as Docker sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub container_id: String,
    pub name: String,
    pub image: String,
    pub running: bool,
    pub restart_count: i64,
    /// Its address on the paas network, where paas itself (on the host) reaches it.
    pub ip: Option<IpAddr>,
    /// The app networks it has joined.
    pub networks: Vec<String>,
}

impl Runner {
    /// `paas-addon-NAME` (with this runner's network in front): the container's name.
    pub fn service_container(&self, name: &str) -> String {
        format!("{}-addon-{name}", self.config.network)
    }

    /// The data volume of service `name`: kept until [`Runner::remove_service`].
    pub fn service_volume(&self, name: &str) -> String {
        self.service_container(name)
    }

    /// The private network of `app`, where its processes and the services attached to it
    /// meet (`paas-app-APP`).
    pub fn app_network(&self, app: &str) -> String {
        format!("{}-app-{app}", self.config.network)
    }

    /// The major version an image runs (its `io.paas.major` label); `Ok(None)` when the
    /// image is not on this host.
    pub async fn image_major(&self, image: &str) -> Result<Option<String>, RunError> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(inspect
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(LABEL_MAJOR).cloned())
                .or(Some(String::new()))),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Creates the service's volume and container unless they exist, and starts it unless it
    /// runs. Its data is never touched: an existing volume is mounted as it is.
    pub async fn ensure_service(&self, spec: &ServiceSpec) -> Result<Service, RunError> {
        let container = self.service_container(&spec.name);
        if let Some(service) = self.service(&spec.name).await? {
            if !service.running {
                self.docker.start_container(&container, None).await?;
                tracing::info!(service = %spec.name, "service started");
            }
            return self.service(&spec.name).await?.ok_or(RunError::NotFound { container });
        }
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_NETWORK.to_string(), self.config.network.clone()),
            (LABEL_SERVICE.to_string(), spec.name.clone()),
        ]);
        let volume = self.service_volume(&spec.name);
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await?;
        let memory = i64::try_from(spec.memory_mb.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                mounts: Some(vec![Mount {
                    target: Some(spec.data_dir.clone()),
                    source: Some(volume),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                }]),
                // Docker's 64 MB /dev/shm fails PostgreSQL's parallel queries on big tables.
                shm_size: Some(memory / 4),
                // Up again after a crash, a `docker restart` or a reboot, until paas stops it.
                ..self.locked_down(RestartPolicyNameEnum::UNLESS_STOPPED, memory)
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&container).build();
        match self.docker.create_container(Some(options), body).await {
            Ok(_) => {}
            // Made by a concurrent call meanwhile: start that one.
            Err(error) if status(&error) == Some(409) => {}
            Err(DockerError::DockerResponseServerError { status_code: 404, message })
                if message.contains("image") =>
            {
                return Err(RunError::ImageMissing { image: spec.image.clone() });
            }
            Err(error) => return Err(error.into()),
        }
        self.docker.start_container(&container, None).await?;
        tracing::info!(service = %spec.name, image = %spec.image, "service created");
        self.service(&spec.name).await?.ok_or(RunError::NotFound { container })
    }

    /// Whether a container or a volume of service `name` is on this host: left from an
    /// earlier add-on of that name whose removal failed, it must not become a new one's.
    pub async fn service_leftovers(&self, name: &str) -> Result<bool, RunError> {
        if self.service(name).await?.is_some() {
            return Ok(true);
        }
        match self.docker.inspect_volume(&self.service_volume(name)).await {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// The service's container, `None` when there is none.
    pub async fn service(&self, name: &str) -> Result<Option<Service>, RunError> {
        let inspect = match self.docker.inspect_container(&self.service_container(name), None).await
        {
            Ok(inspect) => inspect,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let state = inspect.state.unwrap_or_default();
        let networks = inspect.network_settings.and_then(|s| s.networks).unwrap_or_default();
        let home = self.network_id();
        let ip = networks
            .iter()
            .find(|(net, endpoint)| {
                **net == self.config.network || endpoint.network_id.as_deref() == Some(&home)
            })
            .and_then(|(_, endpoint)| endpoint.ip_address.as_deref()?.parse().ok());
        let prefix = format!("{}-app-", self.config.network);
        Ok(Some(Service {
            container_id: inspect.id.unwrap_or_default(),
            name: name.to_string(),
            image: inspect.config.and_then(|c| c.image).unwrap_or_default(),
            running: state.running.unwrap_or(false),
            restart_count: inspect.restart_count.unwrap_or(0),
            ip,
            networks: networks.into_keys().filter(|n| n.starts_with(&prefix)).collect(),
        }))
    }

    /// Joins the service to `app`'s network under its name; already joined is fine.
    pub async fn attach_service(&self, name: &str, app: &str) -> Result<(), RunError> {
        let network = self.app_network(app);
        self.ensure_app_network(&network).await?;
        let request = NetworkConnectRequest {
            container: self.service_container(name),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(vec![name.to_string()]),
                ..Default::default()
            }),
        };
        match self.docker.connect_network(&network, request).await {
            Ok(()) => Ok(()),
            // "endpoint with name … already exists in network …"
            Err(error) if status(&error) == Some(403) || already(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Takes the service off `app`'s network; not there is fine.
    pub async fn detach_service(&self, name: &str, app: &str) -> Result<(), RunError> {
        let request =
            NetworkDisconnectRequest { container: self.service_container(name), force: Some(true) };
        match self.docker.disconnect_network(&self.app_network(app), request).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) || status(&error) == Some(403) => Ok(()),
            Err(DockerError::DockerResponseServerError { message, .. })
                if message.contains("not connected") =>
            {
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Removes `app`'s network once nothing is on it; in use or gone is fine (a later call,
    /// when the app is destroyed, tries again).
    pub async fn remove_app_network(&self, app: &str) {
        let network = self.app_network(app);
        match self.docker.remove_network(&network).await {
            Ok(()) => tracing::info!(%network, "app network removed"),
            Err(error) if is_not_found(&error) => {}
            Err(error) => tracing::info!(%network, "app network kept: {error}"),
        }
    }

    /// Stops and removes the service's container and, with it, its volume: its data is gone.
    pub async fn remove_service(&self, name: &str) -> Result<(), RunError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(&self.service_container(name), Some(options)).await {
            Ok(()) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(error.into()),
        }
        match self.docker.remove_volume(&self.service_volume(name), None::<RemoveVolume>).await {
            Ok(()) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(error.into()),
        }
        tracing::info!(service = name, "service and its volume removed");
        Ok(())
    }

    /// Runs `cmd` inside the running service (`pg_dump`, `pg_restore`, `pg_isready`) as
    /// `user`, with `input` as its stdin when given; its output goes to `output` as it comes
    /// (a slow reader slows it down). Returns its exit code. Past `timeout` it is ended from
    /// inside (coreutils' `timeout`), so nothing of it runs on unseen.
    ///
    /// Input that breaks off is cut without its end, which the command then fails on; the
    /// service itself is never stopped for it.
    pub async fn exec_in_service(
        &self,
        name: &str,
        user: &str,
        cmd: &[&str],
        input: Option<StdinStream>,
        output: Sender<OutputChunk>,
        timeout: Duration,
    ) -> Result<i64, RunError> {
        let container = self.service_container(name);
        let limit = timeout.as_secs().max(1).to_string();
        let command: Vec<String> = ["timeout", "-s", "TERM", "-k", "10", &limit]
            .into_iter()
            .chain(cmd.iter().copied())
            .map(str::to_string)
            .collect();
        let config = ExecConfig {
            attach_stdin: Some(input.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(command),
            user: Some(user.to_string()),
            ..Default::default()
        };
        let exec = self.docker.create_exec(&container, config).await?.id;
        let run = async {
            let options = StartExecOptions { detach: false, tty: false, output_capacity: None };
            let StartExecResults::Attached { output: mut stream, input: stdin } =
                self.docker.start_exec(&exec, Some(options)).await?
            else {
                return Err(RunError::NotFound { container: container.clone() });
            };
            let _feeding = input.map(|input| {
                AbortOnDrop(tokio::spawn(feed_stdin(self.docker.clone(), None, stdin, input)))
            });
            while let Some(frame) = stream.next().await {
                let (stream, bytes) = match frame? {
                    bollard::container::LogOutput::StdErr { message } => {
                        (LogStream::Stderr, message)
                    }
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message } => {
                        (LogStream::Stdout, message)
                    }
                    bollard::container::LogOutput::StdIn { .. } => continue,
                };
                let _ = output.send(OutputChunk { stream, bytes }).await;
            }
            // The stream ends as the process does; Docker may take a moment to record the code.
            loop {
                let inspect = self.docker.inspect_exec(&exec).await?;
                match (inspect.running, inspect.exit_code) {
                    (Some(false), Some(code)) => return Ok(code),
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        };
        // The command's own `timeout` ends it first; this is for a daemon that stops answering.
        match tokio::time::timeout(timeout + Duration::from_secs(30), run).await {
            Ok(Ok(124)) => Err(RunError::TimedOut { process: cmd.join(" "), limit: timeout }),
            Ok(result) => result,
            Err(_) => Err(RunError::TimedOut { process: cmd.join(" "), limit: timeout }),
        }
    }

    /// Creates `network` (an app's, where containers may talk) unless it exists, safely
    /// against others doing the same at once, as for the paas network.
    pub(crate) async fn ensure_app_network(&self, network: &str) -> Result<(), RunError> {
        match self.docker.inspect_network(network, None).await {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) => {
                let kind = if self.orchestrates_rollouts() {
                    NetworkKind::SwarmApp
                } else {
                    NetworkKind::App
                };
                ensure_network(&self.docker, network, kind).await.map(drop)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Joins a just-created process container to the app networks its spec names.
    pub(crate) async fn join_networks(
        &self,
        container: &str,
        networks: &[String],
    ) -> Result<(), DockerError> {
        for network in networks {
            if let Err(error) = self.ensure_app_network(network).await {
                tracing::warn!(%network, "cannot create the app network: {error}");
            }
            let request =
                NetworkConnectRequest { container: container.to_string(), endpoint_config: None };
            match self.docker.connect_network(network, request).await {
                Ok(()) => {}
                Err(error) if already(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

type RemoveVolume = bollard::query_parameters::RemoveVolumeOptions;

fn already(error: &DockerError) -> bool {
    matches!(error, DockerError::DockerResponseServerError { message, .. } if message.contains("already exists"))
}
