//! Add-ons: PostgreSQL (with PostGIS) and Redis that paas runs for apps, each in a container
//! of its own with a named volume, attached to apps as `DATABASE_URL` / `REDIS_URL` config
//! vars (a new release, rolled out like any config change), reachable only from the apps
//! attached to it. Backups of PostgreSQL add-ons are `pg_dump` files in the backup
//! directory, taken on demand or on a schedule, and restored with `pg_restore`.
//!
//! The runner knows containers, volumes and networks; what a service needs to run, when it
//! is ready and how it is dumped is here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use paas_runner::{LogStream, Runner, ServiceSpec};
use paas_store::{Addon, App, Attachment, Backup, NewAddon, Release};
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::Paas;
use super::audit::Actor;
use super::cron::Schedule;
use super::error::{Error, Result};
use super::rollout::OUTPUT_CHUNKS;
use super::validate;
use crate::wire::RunEvent;

/// How long a new add-on may take to accept connections.
const READY_LIMIT: Duration = Duration::from_secs(180);
/// Longest a backup or a restore may run.
const DUMP_LIMIT: Duration = Duration::from_secs(6 * 60 * 60);
/// Most bytes of a failed `pg_dump`/`pg_restore`'s stderr kept in its message.
const STDERR_KEEP: usize = 4096;

/// A kind of add-on paas can run.
#[derive(Debug)]
pub struct Service {
    /// `postgres`, `redis`.
    pub name: &'static str,
    /// What users may type for it (Heroku's plan names too).
    aliases: &'static [&'static str],
    pub image: &'static str,
    /// Where its volume is mounted.
    data_dir: &'static str,
    port: u16,
    /// The attachment name it gets by default: `DATABASE` → `DATABASE_URL`.
    pub default_as: &'static str,
    memory_mb: u64,
}

pub const SERVICES: [Service; 2] = [
    Service {
        name: "postgres",
        aliases: &["postgresql", "heroku-postgresql", "pg"],
        image: "paas/postgres:15",
        data_dir: "/var/lib/postgresql/data",
        port: 5432,
        default_as: "DATABASE",
        memory_mb: 1024,
    },
    Service {
        name: "redis",
        aliases: &["heroku-redis"],
        image: "paas/redis:7",
        data_dir: "/data",
        port: 6379,
        default_as: "REDIS",
        memory_mb: 512,
    },
];

fn service(name: &str) -> Result<&'static Service> {
    let name = name.trim().to_ascii_lowercase();
    // `heroku-postgresql:essential-0`: the plan means nothing here.
    let name = name.split(':').next().unwrap_or_default();
    SERVICES.iter().find(|s| s.name == name || s.aliases.contains(&name)).ok_or_else(|| {
        Error::invalid(
            "unknown_addon_service",
            format!("there is no add-on {name:?}: paas runs `postgres` (with PostGIS) and `redis`"),
        )
    })
}

/// An add-on with the apps it is attached to and whether its container runs.
#[derive(Debug, Clone)]
pub struct AddonInfo {
    pub addon: Addon,
    pub attachments: Vec<Attachment>,
    /// `running`, `stopped`, `missing` (no container), or `unknown` without Docker.
    pub state: String,
}

/// The URL an attached app gets: user, password, host (the add-on's name on the app's
/// network), port, database.
pub fn url(addon: &Addon) -> String {
    let port = service(&addon.service).map(|s| s.port).unwrap_or_default();
    match addon.service.as_str() {
        // Password only: Redis's default user has no name an app could send (dokku-redis #170).
        "redis" => format!("redis://:{}@{}:{port}", addon.password, addon.name),
        _ => format!(
            "postgres://{}:{}@{}:{port}/{}",
            addon.username.as_deref().unwrap_or_default(),
            addon.password,
            addon.name,
            addon.database.as_deref().unwrap_or_default()
        ),
    }
}

/// Letters and digits only: safe in a URL without escaping, in SQL names and in a shell.
fn random_password() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..32).map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())])).collect()
}

/// The PostgreSQL database and role an add-on gets: its name, `-` as `_`, with `app_` in
/// front of what PostgreSQL keeps for itself (`postgres`, `template1`, `pg_…` roles).
fn database_name(addon: &str) -> String {
    let name = addon.replace('-', "_");
    let reserved = ["postgres", "template0", "template1"].contains(&name.as_str());
    if reserved || name.starts_with("pg_") { format!("app_{name}") } else { name }
}

/// Runs `work` on a task of its own to its end, even if the caller stops waiting for it (a
/// closed connection drops the request's future): what it changes is never left half done.
async fn to_the_end<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(work).await.map_err(|e| Error::Internal(format!("add-on task failed: {e}")))?
}

/// `DATABASE`, `HEROKU_POSTGRESQL_RED`: what goes before `_URL`.
fn attachment_name(name: &str) -> Result<String> {
    let name = name.trim().trim_end_matches("_URL").to_ascii_uppercase().replace('-', "_");
    let valid = !name.is_empty()
        && name.len() <= 60
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(Error::invalid(
            "invalid_attachment_name",
            format!(
                "{name:?} cannot name an attachment: use letters, digits and _, starting with a \
                 letter (DATABASE gives the app DATABASE_URL)"
            ),
        ));
    }
    Ok(name)
}

impl Paas {
    /// The add-on named `name`, if the actor may see it: an admin, or someone with access to
    /// an app it is attached to. Otherwise, as for apps, "not found".
    pub async fn addon_for(&self, actor: &Actor, name: &str) -> Result<Addon> {
        let missing = || Error::NotFound(format!("add-on {name}"));
        let addon = match self.store().addon(name).await {
            Err(paas_store::StoreError::NotFound(_)) => return Err(missing()),
            other => other?,
        };
        if actor.is_admin() {
            return Ok(addon);
        }
        let attached = self.store().attachments_to(&addon).await?;
        let apps = addon.app.iter().chain(attached.iter().map(|t| &t.app));
        for app in apps {
            if self.app_for(actor, app).await.is_ok() {
                return Ok(addon);
            }
        }
        Err(missing())
    }

    /// The add-ons attached to `app`, or with `None` every add-on the actor may see.
    pub async fn addons(&self, actor: &Actor, app: Option<&App>) -> Result<Vec<AddonInfo>> {
        let addons = match app {
            Some(app) => {
                let mut addons = Vec::new();
                for attachment in self.store().attachments_of(app).await? {
                    addons.push(self.store().addon(&attachment.addon).await?);
                }
                addons
            }
            None => {
                let mut visible = Vec::new();
                for addon in self.store().addons().await? {
                    if self.addon_for(actor, &addon.name).await.is_ok() {
                        visible.push(addon);
                    }
                }
                visible
            }
        };
        let mut infos = Vec::new();
        for addon in addons {
            infos.push(self.addon_info(addon).await?);
        }
        Ok(infos)
    }

    pub async fn addon_info(&self, addon: Addon) -> Result<AddonInfo> {
        let attachments = self.store().attachments_to(&addon).await?;
        let state = match &self.runner {
            None => "unknown",
            Some(runner) => match runner.service(&addon.name).await {
                Ok(Some(service)) if service.running => "running",
                Ok(Some(_)) => "stopped",
                Ok(None) => "missing",
                Err(_) => "unknown",
            },
        };
        Ok(AddonInfo { addon, attachments, state: state.to_string() })
    }

    /// Creates an add-on for `app`: its container and volume, a database and user with a
    /// random password (PostgreSQL) or a password (Redis), waits until it accepts
    /// connections, and attaches it as `AS_URL`: a new release, rolled out with no downtime.
    /// Nothing is left behind if it does not come up.
    ///
    /// It runs to its end even if whoever asked goes away (a closed connection): stopping
    /// half-way would leave an add-on that is neither made nor gone.
    pub async fn create_addon(
        &self,
        actor: &Actor,
        app: &App,
        service_name: &str,
        attach_as: Option<&str>,
        name: Option<&str>,
    ) -> Result<(AddonInfo, Release)> {
        let (paas, actor, app) = (self.clone(), actor.clone(), app.clone());
        let (service_name, attach_as) = (service_name.to_string(), attach_as.map(str::to_string));
        let name = name.map(str::to_string);
        to_the_end(async move {
            let (attach_as, name) = (attach_as.as_deref(), name.as_deref());
            paas.create_addon_now(&actor, &app, &service_name, attach_as, name).await
        })
        .await
    }

    async fn create_addon_now(
        &self,
        actor: &Actor,
        app: &App,
        service_name: &str,
        attach_as: Option<&str>,
        name: Option<&str>,
    ) -> Result<(AddonInfo, Release)> {
        let kind = service(service_name)?;
        let attach_as = attachment_name(attach_as.unwrap_or(kind.default_as))?;
        self.check_attachable(app, &attach_as).await?;
        let runner = self.runner.clone().ok_or_else(|| Error::docker_unavailable("add-ons"))?;
        let major = image_major(&runner, kind, kind.image).await?;
        let name = match name {
            Some(name) => {
                validate::addon_name(name)?;
                name.to_string()
            }
            None => self.free_addon_name(app, kind).await?,
        };
        if runner.service_leftovers(&name).await? {
            return Err(Error::Conflict(format!(
                "a container or volume of an earlier add-on named {name} is still on this host \
                 ({}); paas will not hand its data to a new add-on. Remove it (`docker rm -f`, \
                 `docker volume rm`) or choose another --name",
                runner.service_volume(&name)
            )));
        }
        let database = (kind.name == "postgres").then(|| database_name(&name));
        let new = NewAddon {
            name: name.clone(),
            service: kind.name.to_string(),
            major,
            image: kind.image.to_string(),
            username: database.clone(),
            password: random_password(),
            database,
            created_by: actor.email().to_string(),
        };
        let addon = self.store().create_addon(app, &new, &attach_as).await?;
        let started = Instant::now();
        let var = format!("{attach_as}_URL");
        let made = async {
            self.provision(&runner, &addon).await?;
            runner.attach_service(&addon.name, &app.name).await?;
            let description = attachment_description(&attach_as, &addon);
            self.set_addon_config(actor, app, &var, Some(url(&addon)), &description).await
        }
        .await;
        let release = match made {
            Ok(release) => release,
            // The URL is saved and the add-on up; only the rollout of the new release failed,
            // which the message says: the add-on stays.
            Err(err) if err.code() == "rollout_failed" => return Err(err),
            Err(err) => {
                // Nothing of it was used yet: leave no container, volume or record behind.
                if let Err(cleanup) = runner.remove_service(&addon.name).await {
                    tracing::warn!(addon = %addon.name, error = %cleanup, "cannot remove a failed add-on");
                }
                runner.remove_app_network(&app.name).await;
                self.store().forget_addon(&addon).await?;
                return Err(err);
            }
        };
        let took = started.elapsed().as_secs_f64();
        tracing::info!(addon = %addon.name, app = %app.name, seconds = took, "add-on ready");
        self.audit(
            actor,
            Some(app),
            "addon.create",
            format!("created {} ({} {}) as {attach_as}", addon.name, addon.service, addon.major),
        )
        .await;
        self.events().emit(
            &app.name,
            "addons",
            format!("{} ({} {}) created, ready in {took:.1}s", addon.name, kind.name, addon.major),
        );
        Ok((self.addon_info(addon).await?, release))
    }

    /// Attaches an existing add-on to another app (a staging copy sharing the database).
    pub async fn attach_addon(
        &self,
        actor: &Actor,
        addon: &Addon,
        app: &App,
        attach_as: Option<&str>,
    ) -> Result<Release> {
        let kind = service(&addon.service)?;
        let attach_as = attachment_name(attach_as.unwrap_or(kind.default_as))?;
        self.check_attachable(app, &attach_as).await?;
        let runner = self.runner()?.clone();
        self.store().attach_addon(addon, app, &attach_as, actor.email()).await?;
        let attached = async {
            runner.attach_service(&addon.name, &app.name).await?;
            let var = format!("{attach_as}_URL");
            let description = attachment_description(&attach_as, addon);
            self.set_addon_config(actor, app, &var, Some(url(addon)), &description).await
        }
        .await;
        match &attached {
            // Saved, only not rolled out (the message says so): it stays attached.
            Err(err) if err.code() != "rollout_failed" => {
                self.store().detach_addon(addon, app).await?;
                self.leave_app_network(addon, app).await;
            }
            _ => {
                let detail = format!("attached {} as {attach_as}", addon.name);
                self.audit(actor, Some(app), "addon.attach", detail).await;
            }
        }
        attached
    }

    /// Detaches an add-on from an app that is not the one it was made for: the app loses its
    /// `AS_URL` (a new release) and its way to the add-on.
    pub async fn detach_addon(&self, actor: &Actor, addon: &Addon, app: &App) -> Result<Release> {
        if addon.app_id == Some(app.id) {
            return Err(Error::invalid(
                "addon_owner",
                format!(
                    "{} was created for {}, which cannot let go of it; to remove it, `paas \
                     addons:destroy {} --confirm {}` (its data is deleted)",
                    addon.name, app.name, addon.name, addon.name
                ),
            ));
        }
        let attachment = self
            .store()
            .attachments_of(app)
            .await?
            .into_iter()
            .find(|t| t.addon_id == addon.id)
            .ok_or_else(|| {
                Error::NotFound(format!("attachment of {} to {}", addon.name, app.name))
            })?;
        self.store().detach_addon(addon, app).await?;
        self.audit(actor, Some(app), "addon.detach", format!("detached {}", addon.name)).await;
        let description = format!("Detach {} ({})", attachment.name, addon.name);
        let release =
            self.set_addon_config(actor, app, &attachment.config_var(), None, &description).await;
        // Detached, it is off the app's network, whether or not the release rolled out:
        // the app's new processes do not join it, and old ones must not keep a way in.
        self.leave_app_network(addon, app).await;
        release
    }

    /// Destroys an add-on and its data: every attached app loses its URL (a new release
    /// each), then the container and volume go. Its backups stay on disk. Only an admin or
    /// the owner of the app it was made for may.
    pub async fn destroy_addon(&self, actor: &Actor, addon: &Addon) -> Result<()> {
        let owner = match addon.app.as_deref() {
            Some(app) => {
                let app = self.store().app(app).await?;
                self.store().role(&app, &actor.user).await?.as_deref() == Some("owner")
            }
            None => false,
        };
        if !actor.is_admin() && !owner {
            return Err(Error::Forbidden(format!(
                "only the owner of {} or an admin can destroy {}",
                addon.app.as_deref().unwrap_or("its app"),
                addon.name
            )));
        }
        let runner = self.runner()?.clone();
        let attachments = self.store().attachments_to(addon).await?;
        for attachment in &attachments {
            let app = self.store().app(&attachment.app).await?;
            self.store().detach_addon(addon, &app).await?;
            let description = format!("Detach {} ({}, destroyed)", attachment.name, addon.name);
            if let Err(err) = self
                .set_addon_config(actor, &app, &attachment.config_var(), None, &description)
                .await
            {
                // The URL stays in its config for now; nothing serves at it any more.
                tracing::warn!(app = %app.name, error = %err, "could not remove an add-on's URL");
            }
        }
        // A failure here leaves it recorded, unattached, for its app's owner to destroy again.
        runner.remove_service(&addon.name).await?;
        self.store().destroy_addon(addon).await?;
        for attachment in &attachments {
            if let Ok(app) = self.store().app(&attachment.app).await {
                self.leave_app_network(addon, &app).await;
            }
            self.events().emit(&attachment.app, "addons", format!("{} destroyed", addon.name));
        }
        let apps: Vec<&str> = attachments.iter().map(|t| t.app.as_str()).collect();
        let app = match addon.app.as_deref() {
            Some(name) => self.store().app(name).await.ok(),
            None => None,
        };
        self.audit(
            actor,
            app.as_ref(),
            "addon.destroy",
            format!("destroyed {} (was attached to {})", addon.name, apps.join(", ")),
        )
        .await;
        Ok(())
    }

    /// Starts every add-on's container that is not running (after a reboot, a `docker
    /// stop`, or on a new Docker host with the volumes), unless its image now runs another
    /// major version: that one stays stopped, and its apps' logs say how to upgrade. Backups
    /// cut short by a stop are marked failed.
    pub(crate) async fn start_addons(&self) -> Result<()> {
        let failed = self.store().fail_running_backups().await?;
        if failed > 0 {
            tracing::warn!(backups = failed, "backups cut short by the last stop marked failed");
        }
        remove_partial_dumps(&self.backup_dir).await;
        let Some(runner) = self.runner.clone() else { return Ok(()) };
        let addons = self.store().addons().await?;
        // All at once: one slow or broken add-on holds up no other.
        let started = addons.iter().map(|addon| self.start_addon(&runner, addon));
        let started = futures_util::future::join_all(started).await;
        for (addon, result) in addons.iter().zip(started) {
            let Err(err) = result else { continue };
            tracing::error!(addon = %addon.name, "add-on not started: {err}");
            let attachments = self.store().attachments_to(addon).await.unwrap_or_default();
            for attachment in attachments {
                self.events().emit(
                    &attachment.app,
                    "addons",
                    format!("{} not started: {}", addon.name, err.public_message()),
                );
            }
        }
        Ok(())
    }

    async fn start_addon(&self, runner: &Runner, addon: &Addon) -> Result<()> {
        if let Some(service) = runner.service(&addon.name).await?
            && service.running
        {
            return Ok(());
        }
        self.provision(runner, addon).await?;
        for attachment in self.store().attachments_to(addon).await? {
            runner.attach_service(&addon.name, &attachment.app).await?;
        }
        Ok(())
    }

    /// Runs the add-on's container (made if missing, its volume kept) and waits until it
    /// accepts connections. Refuses an image of another major version than the data's.
    async fn provision(&self, runner: &Runner, addon: &Addon) -> Result<()> {
        let kind = service(&addon.service)?;
        // Its own image, the one its data was made with: a newer paas that names another
        // tag leaves it on the one it has.
        let major = image_major(runner, kind, &addon.image).await?;
        if major != addon.major {
            return Err(Error::invalid(
                "addon_major_version",
                format!(
                    "{} holds {} {} data, and {} now runs {} {major}: paas never upgrades data \
                     in place. Keep running the {} {} image, or dump the data with it and \
                     restore the dump into a new add-on (docs/addons.md, \"Upgrading\")",
                    addon.name,
                    kind.name,
                    addon.major,
                    addon.image,
                    kind.name,
                    kind.name,
                    addon.major
                ),
            ));
        }
        let mut env = BTreeMap::new();
        match kind.name {
            "redis" => {
                env.insert("REDIS_PASSWORD".to_string(), addon.password.clone());
                // Under the container's limit: a full Redis refuses writes with an error
                // the app sees, rather than being killed and replaying its file in a loop.
                env.insert("REDIS_MAXMEMORY".to_string(), format!("{}mb", kind.memory_mb * 3 / 4));
            }
            _ => {
                env.insert("POSTGRES_USER".into(), addon.username.clone().unwrap_or_default());
                env.insert("POSTGRES_PASSWORD".into(), addon.password.clone());
                env.insert("POSTGRES_DB".into(), addon.database.clone().unwrap_or_default());
            }
        }
        let spec = ServiceSpec {
            name: addon.name.clone(),
            image: addon.image.clone(),
            env,
            data_dir: kind.data_dir.to_string(),
            memory_mb: kind.memory_mb,
        };
        runner.ensure_service(&spec).await?;
        self.wait_ready(runner, addon).await
    }

    /// Polls the service from inside until it answers (`pg_isready`, `redis-cli ping`).
    async fn wait_ready(&self, runner: &Runner, addon: &Addon) -> Result<()> {
        let started = Instant::now();
        let check: Vec<&str> = match addon.service.as_str() {
            "redis" => {
                vec!["sh", "-c", "REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli ping | grep -q PONG"]
            }
            _ => vec!["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"],
        };
        loop {
            // Nobody reads the check's output: dropped at once, it is discarded.
            let (output, _) = mpsc::channel(OUTPUT_CHUNKS);
            let answered = runner
                .exec_in_service(&addon.name, "root", &check, None, output, Duration::from_secs(10))
                .await;
            if let Ok(0) = answered {
                return Ok(());
            }
            let service = runner.service(&addon.name).await?;
            let gone = service.as_ref().is_none_or(|s| !s.running && s.restart_count > 0);
            if gone || started.elapsed() > READY_LIMIT {
                let tail = runner.service_log_tail(&addon.name).await;
                let why = if gone { "its container stopped" } else { "it did not answer in time" };
                return Err(Error::Unavailable(format!(
                    "add-on {} did not become ready: {why}. Its last lines:\n{tail}",
                    addon.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Takes the add-on off `app`'s network, and removes the network once nothing of the app
    /// needs it.
    async fn leave_app_network(&self, addon: &Addon, app: &App) {
        let Some(runner) = &self.runner else { return };
        if let Err(err) = runner.detach_service(&addon.name, &app.name).await {
            tracing::warn!(addon = %addon.name, app = %app.name, error = %err, "add-on still on the app's network");
        }
        if matches!(self.store().attachments_of(app).await, Ok(left) if left.is_empty()) {
            runner.remove_app_network(&app.name).await;
        }
    }

    /// Refuses an attachment whose `AS_URL` the app already has, by hand or from another
    /// add-on: an app's database never changes under it unasked.
    async fn check_attachable(&self, app: &App, attach_as: &str) -> Result<()> {
        let var = format!("{attach_as}_URL");
        if let Some(other) =
            self.store().attachments_of(app).await?.into_iter().find(|t| t.name == attach_as)
        {
            return Err(Error::Conflict(format!(
                "{} already has {} attached as {attach_as}; pick another name with --as",
                app.name, other.addon
            )));
        }
        if self.store().config(app).await?.contains_key(&var) {
            return Err(Error::Conflict(format!(
                "{} already has {var} set by hand; `paas config:unset {var}` first, or attach \
                 with --as OTHER to get OTHER_URL",
                app.name
            )));
        }
        Ok(())
    }

    /// The config var names add-ons manage on `app`, with the add-on of each.
    pub(crate) async fn addon_vars(&self, app: &App) -> Result<BTreeMap<String, String>> {
        Ok(self
            .store()
            .attachments_of(app)
            .await?
            .into_iter()
            .map(|t| (t.config_var(), t.addon))
            .collect())
    }

    /// Where the app's processes meet its add-ons: its network, if it has any attached.
    pub(crate) async fn app_networks(&self, app: &App) -> Result<Vec<String>> {
        let attached = !self.store().attachments_of(app).await?.is_empty();
        Ok(match (&self.runner, attached) {
            (Some(runner), true) => vec![runner.app_network(&app.name)],
            _ => Vec::new(),
        })
    }

    /// `APP-postgres`, else `APP-postgres-2`, … : the first free name.
    async fn free_addon_name(&self, app: &App, kind: &Service) -> Result<String> {
        let taken: Vec<String> = self.store().addons().await?.into_iter().map(|a| a.name).collect();
        let base = format!("{}-{}", app.name, kind.name);
        (1..1000)
            .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
            .find(|name| !taken.contains(name))
            .ok_or_else(|| Error::Conflict("no free add-on name; pass one with --name".into()))
    }

    /// A rollback target's config with the add-on URLs of today: attachments stay as they
    /// are (a rollback never reattaches or detaches), and a URL of an add-on that no longer
    /// exists is left out, which the returned notes say.
    pub(crate) async fn config_for_rollback(
        &self,
        app: &App,
        target: &Release,
    ) -> Result<(BTreeMap<String, String>, Vec<String>)> {
        let mut config = target.config.clone();
        let mut notes = Vec::new();
        let attached = self.store().attachments_of(app).await?;
        let ever = self.store().addons_ever().await?;
        let current = self.store().config(app).await?;
        for (key, value) in target.config.iter() {
            if attached.iter().any(|t| t.config_var() == *key) {
                continue;
            }
            // Only add-ons the app has no longer: a hand-made copy of a URL still attached
            // (READ_DATABASE_URL) stays.
            let still = |a: &Addon| attached.iter().any(|t| t.addon_id == a.id);
            if let Some(gone) = ever.iter().find(|a| !still(a) && url(a) == *value) {
                config.remove(key);
                let why = if gone.destroyed_at.is_some() { "was destroyed" } else { "is detached" };
                notes.push(format!("without {key}: it named add-on {}, which {why}", gone.name));
            }
        }
        for attachment in &attached {
            let var = attachment.config_var();
            match current.get(&var) {
                Some(value) => config.insert(var, value.clone()),
                None => config.remove(&var),
            };
        }
        Ok((config, notes))
    }

    /// Sets or removes an add-on's URL on `app` as one release, past the guard that keeps
    /// users from editing it by hand.
    async fn set_addon_config(
        &self,
        actor: &Actor,
        app: &App,
        var: &str,
        value: Option<String>,
        description: &str,
    ) -> Result<Release> {
        let changes = BTreeMap::from([(var.to_string(), value)]);
        let (release, _) =
            self.change_config(actor, app, changes, Some(description.to_string())).await?;
        Ok(release)
    }

    /// Sets (or with `None` clears) the add-on's backup schedule, a cron expression in UTC.
    pub async fn schedule_backups(
        &self,
        actor: &Actor,
        addon: &Addon,
        schedule: Option<&str>,
    ) -> Result<Option<Schedule>> {
        postgres_only(addon)?;
        let schedule = match schedule {
            Some(text) => {
                Some(Schedule::parse(text).map_err(|e| Error::invalid("invalid_schedule", e))?)
            }
            None => None,
        };
        self.store().set_backup_schedule(addon, schedule.as_ref().map(Schedule::as_str)).await?;
        let detail = match &schedule {
            Some(s) => format!("scheduled backups of {} at {:?} UTC", addon.name, s.as_str()),
            None => format!("stopped scheduled backups of {}", addon.name),
        };
        let app = self.owner_app(addon).await;
        self.audit(actor, app.as_ref(), "addon.backups.schedule", detail).await;
        Ok(schedule)
    }

    /// Captures a backup now: `pg_dump` in PostgreSQL's custom format, into a file that
    /// only gets its name once the dump exited 0 and starts as a dump does. A failure is
    /// recorded as failed (never as success), said in the apps' logs, and returned. One runs
    /// at a time per add-on; it runs to its end even if whoever asked goes away.
    pub async fn capture_backup(&self, actor: &Actor, addon: &Addon) -> Result<Backup> {
        let (paas, actor, addon) = (self.clone(), actor.clone(), addon.clone());
        to_the_end(async move { paas.capture_backup_now(&actor, &addon).await }).await
    }

    async fn capture_backup_now(&self, actor: &Actor, addon: &Addon) -> Result<Backup> {
        postgres_only(addon)?;
        let runner = self.runner()?.clone();
        if let Some(running) = self.running_backup(addon).await? {
            return Err(Error::Conflict(format!(
                "backup {} of {} is still running; wait for it (`paas pg:backups`)",
                running.label(),
                addon.name
            )));
        }
        let backup = self.store().start_backup(addon, actor.email()).await?;
        let dir = self.backup_dir.join(&addon.name);
        let file = dir.join(format!("{}.dump", backup.label()));
        let started = Instant::now();
        let dumped = dump(&runner, addon, &dir, &file).await;
        let backup = match dumped {
            Ok(size) => {
                let path = file.display().to_string();
                self.store().finish_backup(&backup, Ok((&path, size))).await?
            }
            Err(why) => {
                let failed = self.store().finish_backup(&backup, Err(&why)).await?;
                self.backup_announce(addon, format!("Backup {} failed: {why}", failed.label()))
                    .await;
                let app = self.owner_app(addon).await;
                let detail = format!("backup {} of {} failed", failed.label(), addon.name);
                self.audit(actor, app.as_ref(), "addon.backup", detail).await;
                return Err(Error::invalid(
                    "backup_failed",
                    format!("backup {} of {} failed: {why}", failed.label(), addon.name),
                ));
            }
        };
        let took = started.elapsed().as_secs_f64();
        self.backup_announce(
            addon,
            format!(
                "Backup {} captured: {} in {took:.1}s",
                backup.label(),
                human_size(backup.size_bytes.unwrap_or(0))
            ),
        )
        .await;
        let app = self.owner_app(addon).await;
        let detail = format!("captured backup {} of {}", backup.label(), addon.name);
        self.audit(actor, app.as_ref(), "addon.backup", detail).await;
        Ok(backup)
    }

    /// Restores a backup that succeeded into the add-on it was taken of: `pg_restore
    /// --clean` in one transaction, so it is all restored or, on any error, not at all. It
    /// runs to its end even if whoever asked goes away.
    pub async fn restore_backup(&self, actor: &Actor, addon: &Addon, id: &str) -> Result<Backup> {
        let (paas, actor, addon, id) = (self.clone(), actor.clone(), addon.clone(), id.to_string());
        to_the_end(async move { paas.restore_backup_now(&actor, &addon, &id).await }).await
    }

    async fn restore_backup_now(&self, actor: &Actor, addon: &Addon, id: &str) -> Result<Backup> {
        postgres_only(addon)?;
        let backup = self.backup(addon, id).await?;
        let file = match (&backup.status[..], &backup.file) {
            ("succeeded", Some(file)) => PathBuf::from(file),
            _ => {
                return Err(Error::invalid(
                    "backup_not_restorable",
                    format!(
                        "{} {}: only a backup that succeeded can be restored",
                        backup.label(),
                        if backup.status == "failed" { "failed" } else { "is still running" }
                    ),
                ));
            }
        };
        let input = tokio::fs::File::open(&file).await.map_err(|e| {
            Error::invalid(
                "backup_missing",
                format!("{}'s file {} cannot be read: {e}", backup.label(), file.display()),
            )
        })?;
        let runner = self.runner()?.clone();
        let database = addon.database.clone().unwrap_or_default();
        let cmd = [
            // An app holding a lock on a table makes the restore fail after a minute, with
            // PostgreSQL's words, rather than wait for hours.
            "env",
            "PGOPTIONS=-c lock_timeout=60000",
            "pg_restore",
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            "-U",
            "postgres",
            "-d",
            &database,
        ];
        let stream = tokio_util::io::ReaderStream::new(input);
        let stream = futures_util::StreamExt::map(stream, |chunk| chunk.map(|b| b.to_vec()));
        let (output, errors) = mpsc::channel(OUTPUT_CHUNKS);
        let started = Instant::now();
        let run = runner.exec_in_service(
            &addon.name,
            "postgres",
            &cmd,
            Some(Box::pin(stream)),
            output,
            DUMP_LIMIT,
        );
        let (code, stderr) = tokio::join!(run, collect_stderr(errors));
        let app = self.owner_app(addon).await;
        match code {
            Ok(0) => {}
            outcome => {
                let why = match outcome {
                    Ok(code) => format!("pg_restore exited with {code}: {}", stderr.trim()),
                    Err(err) => err.to_string(),
                };
                self.backup_announce(addon, format!("Restore of {} failed: {why}", backup.label()))
                    .await;
                let detail = format!("restore of {} into {} failed", backup.label(), addon.name);
                self.audit(actor, app.as_ref(), "addon.restore", detail).await;
                return Err(Error::invalid(
                    "restore_failed",
                    format!(
                        "restore of {} failed, and {} is as it was: {why}",
                        backup.label(),
                        addon.name
                    ),
                ));
            }
        }
        let took = started.elapsed().as_secs_f64();
        self.backup_announce(addon, format!("Restored {} in {took:.1}s", backup.label())).await;
        let detail = format!("restored {} into {}", backup.label(), addon.name);
        self.audit(actor, app.as_ref(), "addon.restore", detail).await;
        Ok(backup)
    }

    async fn running_backup(&self, addon: &Addon) -> Result<Option<Backup>> {
        Ok(self.store().backups(addon).await?.into_iter().find(|b| b.status == "running"))
    }

    pub async fn backups(&self, addon: &Addon) -> Result<Vec<Backup>> {
        Ok(self.store().backups(addon).await?)
    }

    /// A backup by its label (`b007`, `7`).
    pub async fn backup(&self, addon: &Addon, id: &str) -> Result<Backup> {
        let number = id.trim().trim_start_matches(['b', 'B']).parse::<i64>().map_err(|_| {
            Error::invalid("invalid_backup_id", format!("{id:?} is not a backup id like b001"))
        })?;
        Ok(self.store().backup(addon, number).await?)
    }

    /// `psql` against the app's PostgreSQL add-on (the one attached as `addon`, or its only
    /// one) in a one-off container on the app's network, input and output as `paas run`.
    pub async fn psql(
        &self,
        actor: &Actor,
        app: &App,
        addon: Option<&str>,
        input: Option<paas_runner::StdinStream>,
    ) -> Result<mpsc::Receiver<RunEvent>> {
        let attachments = self.store().attachments_of(app).await?;
        let mut postgres = Vec::new();
        for attachment in attachments {
            let found = self.store().addon(&attachment.addon).await?;
            if found.service == "postgres" {
                postgres.push((attachment, found));
            }
        }
        let chosen = match addon {
            Some(wanted) => postgres
                .into_iter()
                .find(|(t, a)| a.name == wanted || t.name == wanted || t.config_var() == wanted),
            None if postgres.len() == 1 => postgres.pop(),
            None => match postgres.iter().position(|(t, _)| t.name == "DATABASE") {
                Some(at) => Some(postgres.swap_remove(at)),
                None if postgres.is_empty() => None,
                None => {
                    let names: Vec<&str> = postgres.iter().map(|(_, a)| a.name.as_str()).collect();
                    return Err(Error::invalid(
                        "several_postgres_addons",
                        format!(
                            "{} has several PostgreSQL add-ons; name one: {}",
                            app.name,
                            names.join(", ")
                        ),
                    ));
                }
            },
        };
        let Some((attachment, addon)) = chosen else {
            return Err(Error::invalid(
                "no_postgres_addon",
                format!(
                    "{} has no PostgreSQL add-on {}; `paas addons -a {}` lists what it has",
                    app.name,
                    addon.map(|a| format!("named {a}")).unwrap_or_else(|| "to choose".into()),
                    app.name
                ),
            ));
        };
        // The password goes to psql through PGPASSWORD, not its command line, which `ps` on
        // the server shows; paas's passwords are letters and digits, so sed can cut it out.
        let var = attachment.config_var();
        let command = format!(
            "export PGPASSWORD=\"$(printf %s \"${var}\" | sed -E 's|^[^:]+://[^:]*:([^@]*)@.*|\\1|')\"; \
             exec psql -v ON_ERROR_STOP=1 \"$(printf %s \"${var}\" | sed -E 's|^([^:]+://[^:]*):[^@]*@|\\1@|')\""
        );
        self.audit(actor, Some(app), "addon.psql", format!("opened psql on {}", addon.name)).await;
        // The config as it is now: an add-on attached a moment ago is in it.
        let Some(release) = self.store().current_release(app).await? else {
            return Err(Error::invalid("not_deployed", format!("{} has no release yet", app.name)));
        };
        self.run_in_image(app, &release, &addon.image, &command, input).await
    }

    /// The app of the add-on's owner, for the audit log.
    async fn owner_app(&self, addon: &Addon) -> Option<App> {
        self.store().app(addon.app.as_deref()?).await.ok()
    }

    /// Says `text` in the log of every app the add-on is attached to.
    async fn backup_announce(&self, addon: &Addon, text: String) {
        tracing::info!(addon = %addon.name, "{text}");
        if let Ok(attachments) = self.store().attachments_to(addon).await {
            for attachment in attachments {
                self.events().emit(&attachment.app, "addons", format!("{}: {text}", addon.name));
            }
        }
    }

    /// Starts the backups whose schedule is due in the minute of `now` (the scheduler's
    /// timer calls this once a minute).
    pub(crate) async fn capture_due_backups(&self, now: time::OffsetDateTime) -> Result<()> {
        for addon in self.store().addons().await? {
            let due = addon
                .backup_schedule
                .as_deref()
                .and_then(|s| Schedule::parse(s).ok())
                .is_some_and(|s| s.matches(now));
            // One at a time: a dump that outlasts the interval skips a turn.
            if due && self.running_backup(&addon).await?.is_none() {
                let paas = self.clone();
                tokio::spawn(async move {
                    let actor = Actor::scheduler();
                    if let Err(err) = paas.capture_backup(&actor, &addon).await {
                        tracing::warn!(addon = %addon.name, "scheduled backup: {err}");
                    }
                });
            }
        }
        Ok(())
    }
}

fn postgres_only(addon: &Addon) -> Result<()> {
    if addon.service != "postgres" {
        return Err(Error::invalid(
            "not_postgres",
            format!(
                "{} is a {} add-on; backups are for PostgreSQL add-ons",
                addon.name, addon.service
            ),
        ));
    }
    Ok(())
}

/// Heroku's words: "Attach DATABASE (shop-postgres)".
fn attachment_description(attach_as: &str, addon: &Addon) -> String {
    format!("Attach {attach_as} ({})", addon.name)
}

/// The major version the service's image runs, or why there is none.
async fn image_major(runner: &Runner, kind: &Service, image: &str) -> Result<String> {
    match runner.image_major(image).await? {
        Some(major) if !major.is_empty() => Ok(major),
        Some(_) => Err(Error::Unavailable(format!(
            "{image} has no io.paas.major label: build it with deploy/stack/build.sh {}",
            kind.name
        ))),
        None => Err(Error::Unavailable(format!(
            "the {} image {image} is not on this Docker host; build it with \
             `deploy/stack/build.sh {}` (offline, from Debian packages)",
            kind.name, kind.name
        ))),
    }
}

/// `pg_dump` of the add-on's database into `file` (through `FILE.partial`); its size.
async fn dump(
    runner: &Runner,
    addon: &Addon,
    dir: &std::path::Path,
    file: &std::path::Path,
) -> std::result::Result<i64, String> {
    // Dumps hold all of a database: for paas's user only.
    let mut folder = tokio::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    folder.mode(0o700);
    folder.create(dir).await.map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let partial = file.with_extension("dump.partial");
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut out = options
        .open(&partial)
        .await
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let database = addon.database.clone().unwrap_or_default();
    let cmd = ["pg_dump", "--format=custom", "-U", "postgres", "-d", &database];
    let (output, mut chunks) = mpsc::channel(OUTPUT_CHUNKS);
    let run = runner.exec_in_service(&addon.name, "postgres", &cmd, None, output, DUMP_LIMIT);
    let write = async {
        let mut stderr = String::new();
        let mut written: i64 = 0;
        let mut write_error = None;
        let mut head: Vec<u8> = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            match chunk.stream {
                LogStream::Stderr => push_capped(&mut stderr, &chunk.bytes),
                LogStream::Stdout => {
                    if head.len() < 5 {
                        head.extend(chunk.bytes.iter().take(5 - head.len()));
                    }
                    if write_error.is_none() {
                        match out.write_all(&chunk.bytes).await {
                            Ok(()) => written += chunk.bytes.len() as i64,
                            Err(e) => write_error = Some(e.to_string()),
                        }
                    }
                }
            }
        }
        (stderr, written, write_error, head)
    };
    let (code, (stderr, written, write_error, head)) = tokio::join!(run, write);
    let finished = async {
        if let Some(e) = write_error {
            return Err(format!("cannot write {}: {e}", partial.display()));
        }
        match code {
            Ok(0) => {}
            Ok(code) => return Err(format!("pg_dump exited with {code}: {}", stderr.trim())),
            Err(err) => return Err(err.to_string()),
        }
        if head != b"PGDMP" {
            return Err(format!("pg_dump's output is not a dump ({written} bytes)"));
        }
        // Flushed first: only that reports the last write's failure (a full disk).
        let synced = async {
            out.flush().await?;
            out.sync_all().await?;
            tokio::fs::rename(&partial, file).await?;
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await?
        };
        synced.await.map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        Ok(written)
    }
    .await;
    if finished.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    finished
}

/// Dumps that a stop of paas cut short: never a backup, only disk used.
async fn remove_partial_dumps(backups: &std::path::Path) {
    let Ok(mut addons) = tokio::fs::read_dir(backups).await else { return };
    while let Ok(Some(addon)) = addons.next_entry().await {
        let Ok(mut files) = tokio::fs::read_dir(addon.path()).await else { continue };
        while let Ok(Some(file)) = files.next_entry().await {
            if file.file_name().to_string_lossy().ends_with(".dump.partial") {
                let _ = tokio::fs::remove_file(file.path()).await;
            }
        }
    }
}

async fn collect_stderr(mut chunks: mpsc::Receiver<paas_runner::OutputChunk>) -> String {
    let mut stderr = String::new();
    while let Some(chunk) = chunks.recv().await {
        if chunk.stream == LogStream::Stderr {
            push_capped(&mut stderr, &chunk.bytes);
        }
    }
    stderr
}

fn push_capped(text: &mut String, bytes: &[u8]) {
    if text.len() < STDERR_KEEP {
        text.push_str(&String::from_utf8_lossy(bytes));
        if text.len() > STDERR_KEEP {
            let mut end = STDERR_KEEP;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
    }
}

/// `12.3 MB`.
pub fn human_size(bytes: i64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} kB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addon(service: &str) -> Addon {
        Addon {
            id: 1,
            name: "shop-postgres".into(),
            service: service.into(),
            major: "15".into(),
            image: "paas/postgres:15".into(),
            app_id: Some(1),
            app: Some("shop".into()),
            username: Some("shop_postgres".into()),
            password: "s3cret".into(),
            database: Some("shop_postgres".into()),
            backup_schedule: None,
            created_by: "admin".into(),
            created_at: String::new(),
            destroyed_at: None,
        }
    }

    #[test]
    fn urls_are_what_apps_expect() {
        assert_eq!(
            url(&addon("postgres")),
            "postgres://shop_postgres:s3cret@shop-postgres:5432/shop_postgres"
        );
        let mut redis = addon("redis");
        redis.name = "shop-redis".into();
        assert_eq!(url(&redis), "redis://:s3cret@shop-redis:6379", "no user name");
    }

    #[test]
    fn services_and_attachment_names_are_checked() {
        assert_eq!(service("heroku-postgresql:essential-0").unwrap().name, "postgres");
        assert_eq!(service("Redis").unwrap().name, "redis");
        assert!(service("mysql").unwrap_err().to_string().contains("`postgres`"));
        assert_eq!(attachment_name("database").unwrap(), "DATABASE");
        assert_eq!(attachment_name("CACHE_URL").unwrap(), "CACHE");
        assert_eq!(attachment_name("heroku-postgresql-red").unwrap(), "HEROKU_POSTGRESQL_RED");
        for bad in ["", "1DB", "DB URL", "DB;rm"] {
            assert!(attachment_name(bad).is_err(), "{bad}");
        }
        let password = random_password();
        assert_eq!(password.len(), 32);
        assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn databases_avoid_what_postgres_keeps() {
        assert_eq!(database_name("shop-postgres"), "shop_postgres");
        assert_eq!(database_name("postgres"), "app_postgres");
        assert_eq!(database_name("template1"), "app_template1");
        assert_eq!(database_name("pg-shop-postgres"), "app_pg_shop_postgres");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 kB");
        assert_eq!(human_size(105 << 20), "105.0 MB");
    }
}
