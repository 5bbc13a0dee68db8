//! `Paas`: the server core's handle on the store, Docker, git and the router, and the
//! routing table it keeps the router fed with.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use paas_router::{Route, RouteTable, Router};
use paas_store::{App, Release, Store};

use super::error::Result;

/// A process that serves HTTP: its type and where it listens.
pub(crate) type Served = (String, SocketAddr);

#[derive(Clone)]
pub struct Paas {
    store: Store,
    router: Router,
    /// Apps answer at `APP.{domain}`.
    domain: String,
    /// The port the router listens on, for the URLs shown to users.
    router_port: u16,
    /// `None` when Docker was not reachable at start-up: builds then fail with that reason.
    pub(crate) builder: Option<paas_builder::Builder>,
    /// `None` when Docker was not reachable at start-up: deploys then fail with that reason.
    pub(crate) runner: Option<paas_runner::Runner>,
    /// One deploy per app at a time.
    pub(crate) deploy_locks: super::deploy::DeployLocks,
    /// Cancelled per app when it is destroyed.
    pub(crate) destroy_tokens: super::deploy::DestroyTokens,
    /// git push and clone; `None` in a server built without it (some tests).
    pub(crate) git: Option<Arc<super::repos::Git>>,
    /// Each app's healthy processes that serve HTTP (`web`, and the types routes send
    /// paths to): container id → process type and address. The router's backends.
    pub(crate) backends: Arc<Mutex<HashMap<String, BTreeMap<String, Served>>>>,
    /// What paas did to each app, for `paas logs`.
    events: super::events::AppEvents,
    /// Images of this many newest releases are kept for rollbacks.
    pub(crate) keep_release_images: usize,
    /// Each app's latest deploy of a branch from the dashboard, for its viewers.
    pub(crate) live_deploys: Arc<super::branches::LiveDeploys>,
    /// Where GitHub is, for linked repositories.
    pub(crate) github: super::github::GithubSettings,
    /// Proxies in front of the control plane, whose X-Forwarded-For names the client.
    trusted_proxies: paas_router::TrustedProxies,
    /// GitHub deliveries whose signatures are being checked at once.
    pub(crate) github_checks: Arc<tokio::sync::Semaphore>,
    /// Each app's GitHub pushes waiting to deploy.
    pub(crate) github_queue: Arc<super::github::GithubQueue>,
    /// Failed sign-ins per address.
    pub(crate) sign_in_limits: Arc<super::accounts::SignInLimits>,
    /// Tags images `paas/NAMESPACE/app-…`: set when this server's Docker network is not the
    /// default one, since another paas then shares the engine.
    pub(crate) image_namespace: Option<String>,
    /// The registry (`HOST:PORT`) every release image is pushed to, for Swarm's nodes.
    pub(crate) registry: Option<String>,
    /// Where add-on backups are written.
    pub(crate) backup_dir: std::path::PathBuf,
    /// The table file of a router in another process (`--router external`).
    pub(crate) router_file: Option<Arc<super::router_file::RouterFile>>,
    /// Certificates: the ACME settings, the operator's certificate, challenges under way.
    pub(crate) https: Arc<super::https::Https>,
    /// Cancelled when the server stops: pushes still building are cut short and told so,
    /// new ones refused.
    stopping: tokio_util::sync::CancellationToken,
    /// One routing table made and handed out at a time, so an older one never lands after a
    /// newer one (in the router here, or in an external router's file).
    routes_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Paas {
    pub fn new(store: Store, router: Router, domain: &str, router_port: u16) -> Paas {
        Paas {
            store,
            router,
            domain: domain.to_ascii_lowercase(),
            router_port,
            builder: None,
            runner: None,
            deploy_locks: Default::default(),
            destroy_tokens: Default::default(),
            git: None,
            backends: Default::default(),
            events: Default::default(),
            keep_release_images: 5,
            sign_in_limits: Default::default(),
            live_deploys: Default::default(),
            github: Default::default(),
            github_queue: Default::default(),
            github_checks: Arc::new(tokio::sync::Semaphore::new(4)),
            trusted_proxies: Default::default(),
            image_namespace: None,
            registry: None,
            backup_dir: std::path::PathBuf::from("backups"),
            router_file: None,
            https: Default::default(),
            stopping: Default::default(),
            routes_lock: Default::default(),
        }
    }

    /// Builds go through this builder, containers through this runner.
    pub fn with_docker(
        mut self,
        builder: Option<paas_builder::Builder>,
        runner: Option<paas_runner::Runner>,
    ) -> Paas {
        self.builder = builder;
        self.runner = runner;
        self
    }

    /// Tags this server's images under `paas/NAMESPACE/`.
    pub fn with_image_namespace(mut self, namespace: Option<String>) -> Paas {
        self.image_namespace = namespace;
        self
    }

    /// Pushes every release image to `registry` and runs it from there by digest.
    pub fn with_registry(mut self, registry: Option<String>) -> Paas {
        self.registry = registry;
        self
    }

    /// The image a release runs: `image` itself on one machine; with a registry, `image`
    /// pushed there, by digest, so that every node pulls the same bytes.
    pub(crate) async fn publish_image(
        &self,
        builder: &paas_builder::Builder,
        image: &str,
        log: &paas_builder::BuildLog,
    ) -> std::result::Result<String, paas_builder::BuildError> {
        let Some(registry) = &self.registry else { return Ok(image.to_string()) };
        log.step(format!("Pushing the image to {registry}"));
        let pushed = builder.push(image, registry).await?;
        log.info(format!("Pushed as {pushed}"));
        Ok(pushed)
    }

    /// Writes add-on backups under `dir`.
    pub fn with_backup_dir(mut self, dir: std::path::PathBuf) -> Paas {
        self.backup_dir = dir;
        self
    }

    /// Keeps the images of the newest `n` releases (at least one) for rollbacks.
    pub fn keeping_release_images(mut self, n: usize) -> Paas {
        self.keep_release_images = n.max(1);
        self
    }

    /// Takes the client's address from X-Forwarded-For of these proxies.
    pub fn with_trusted_proxies(mut self, proxies: paas_router::TrustedProxies) -> Paas {
        self.trusted_proxies = proxies;
        self
    }

    pub fn trusted_proxies(&self) -> &paas_router::TrustedProxies {
        &self.trusted_proxies
    }

    /// Linked repositories are fetched from, and statuses sent to, this GitHub.
    pub fn with_github(mut self, github: super::github::GithubSettings) -> Paas {
        self.github = github;
        self
    }

    /// The router runs in another process (`paas router --table FILE`): every routing table
    /// is also written to `table`, once [`Paas::router_file_ready`] says the server has
    /// adopted what runs.
    pub fn with_router_file(mut self, table: std::path::PathBuf) -> Paas {
        self.router_file = Some(Arc::new(super::router_file::RouterFile::new(table)));
        self
    }

    /// The server has adopted the running containers: the external router's table may be
    /// written from now on (before, it would have lacked every app).
    pub async fn router_file_ready(&self) -> Result<()> {
        if let Some(file) = &self.router_file {
            file.set_ready();
            self.sync_routes().await?;
        }
        Ok(())
    }

    /// The server is stopping: pushes that are still building end, telling the pusher, and
    /// new ones are refused; rollouts under way run to their end.
    pub fn stop_deploys(&self) {
        self.stopping.cancel();
    }

    pub(crate) fn stopping(&self) -> &tokio_util::sync::CancellationToken {
        &self.stopping
    }

    /// Apps get git repositories here, and pushes deploy.
    pub fn with_git(mut self, git: Arc<super::repos::Git>) -> Paas {
        self.git = Some(git);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The apps' activity feed (`paas[deploy]:` lines in `paas logs`).
    pub fn events(&self) -> &super::events::AppEvents {
        &self.events
    }

    /// Says in the app's feed that `release` was made, Heroku's "Release v5 created by …".
    pub(crate) fn announce_release(&self, app: &App, release: &Release) {
        self.events.emit(
            &app.name,
            "deploy",
            format!(
                "Release v{} created by {}: {}",
                release.version, release.created_by, release.description
            ),
        );
    }

    /// Where the app is served: `http://APP.DOMAIN[:PORT]`.
    pub fn web_url(&self, app: &App) -> String {
        match self.router_port {
            80 => format!("http://{}.{}/", app.name, self.domain),
            port => format!("http://{}.{}:{port}/", app.name, self.domain),
        }
    }

    /// The routing table: every app at `APP.DOMAIN` and its custom domains, with its healthy
    /// `web` processes as backends, and its routed paths with their process types'; an app
    /// (or a path) with none answers 503.
    pub async fn route_table(&self) -> Result<RouteTable> {
        let backends = self.backends.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let of_type = |app: &str, process_type: &str| -> Vec<SocketAddr> {
            let served = backends.get(app).into_iter().flat_map(|b| b.values());
            served.filter(|(t, _)| t == process_type).map(|(_, addr)| *addr).collect()
        };
        let mut routes: BTreeMap<String, Route> = BTreeMap::new();
        let https = self.store.https_settings().await?;
        for app in self.store.apps().await? {
            let host = format!("{}.{}", app.name, self.domain);
            let web = of_type(&app.name, "web");
            let settings = https.get(&app.name).copied().unwrap_or_default();
            let route = Route {
                app: app.name.clone(),
                hosts: vec![host],
                backends: web,
                paths: vec![],
                https_redirect: settings.redirect,
                hsts: settings.hsts,
            };
            routes.insert(app.name, route);
        }
        for (app, hostname) in self.store.all_domains().await? {
            if let Some(route) = routes.get_mut(&app) {
                route.hosts.push(hostname);
            }
        }
        for path in self.store.routes(None).await? {
            if let Some(route) = routes.get_mut(&path.app) {
                let backends = of_type(&path.app, &path.process_type);
                route.paths.push(paas_router::PathRoute {
                    prefix: path.prefix,
                    process_type: path.process_type,
                    backends,
                });
            }
        }
        Ok(RouteTable { routes: routes.into_values().collect() })
    }

    /// Hands the router a fresh table after apps or domains changed.
    pub async fn sync_routes(&self) -> Result<()> {
        // Apps or domains may have changed: the certificates follow.
        self.https.wake();
        let draining = self.apply_routes().await?;
        tokio::spawn(draining.wait(std::time::Duration::from_secs(30)));
        Ok(())
    }

    /// Swaps in a fresh table; the backends that left it are returned to be drained. An
    /// external router gets it too, and is waited for until it serves it.
    pub async fn apply_routes(&self) -> Result<paas_router::Draining> {
        let _turn = self.routes_lock.lock().await;
        let table = self.route_table().await?;
        if let Some(file) = &self.router_file {
            file.publish(&table).await;
        }
        Ok(self.router.set_table(&table))
    }

    /// The domain apps are served under.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Replaces the app's backends with `served`, or with `only` a type given, that type's.
    pub(crate) fn set_backends(
        &self,
        app: &str,
        only: Option<&str>,
        served: BTreeMap<String, Served>,
    ) {
        let mut backends = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        let mut now = match only {
            Some(only) => {
                let mut kept = backends.remove(app).unwrap_or_default();
                kept.retain(|_, (t, _)| t != only);
                kept
            }
            None => BTreeMap::new(),
        };
        now.extend(served);
        if !now.is_empty() {
            backends.insert(app.to_string(), now);
        } else {
            backends.remove(app);
        }
    }

    /// Adds or removes one backend; true if that changed anything.
    pub(crate) fn update_backend(
        &self,
        app: &str,
        container_id: &str,
        served: Option<Served>,
    ) -> bool {
        let mut backends = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        let app_backends = backends.entry(app.to_string()).or_default();
        match served {
            Some(served) => {
                app_backends.insert(container_id.to_string(), served.clone()) != Some(served)
            }
            None => app_backends.remove(container_id).is_some(),
        }
    }
}
