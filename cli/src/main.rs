//! `paas`: one binary that is both the platform (`paas server`) and its command-line client,
//! with Heroku's verbs (`apps:create`, `config:set`, `releases`, `ps:scale`, …).

mod client;
mod commands;
mod credentials;
mod git;
mod logging;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "paas",
    version,
    about = "A self-hosted Heroku: git push to deploy, config vars, releases and rollback",
    long_about = "A self-hosted Heroku: git push to deploy, config vars, releases and rollback.\n\n\
        Start the platform with `paas server`; every other command talks to a running server's \
        API. Log in once with `paas login URL`, or set PAAS_URL and PAAS_TOKEN. Commands that act \
        on one app take -a APP, or find the app from the `paas` git remote of the current \
        checkout, as the Heroku CLI does.",
    after_help = "Getting started:\n  paas server                       # in one shell\n  \
        paas login http://127.0.0.1:7000  # paste the token the server printed\n  \
        paas apps:create myapp            # adds the `paas` git remote\n  \
        paas config:set SECRET_KEY=s3cret\n  paas releases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which app a command acts on.
#[derive(Args, Clone, Debug)]
pub struct AppArg {
    /// App to act on (default: the app of the `paas` git remote of this checkout).
    #[arg(short, long, env = "PAAS_APP")]
    pub app: Option<String>,
    /// Git remote to read the app from.
    #[arg(short, long, default_value = "paas")]
    pub remote: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the paas platform: API, git and router (on embedded defaults: SQLite in ./data).
    Server(Box<commands::server::ServerArgs>),
    /// Run only the router, serving a routing table from a JSON file (reloaded on SIGHUP).
    Router(commands::router::RouterArgs),
    /// Build a directory into an image on the local Docker engine, printing the build log
    /// (--plan: only show what would be built).
    Build(commands::build::BuildArgs),
    /// Sign in with email and password (asked for) and save a personal token for this
    /// machine (in a 0600 file); or save a token given with --token; or accept an
    /// invitation from `paas users:add`, choosing a password.
    #[command(after_help = "Examples:\n  paas login https://paas.example.com\n  \
        paas login http://127.0.0.1:7000 --token paas_…     # the token the first start printed\n  \
        paas login URL --invitation paas_inv_…              # set your password, then sign in\n  \
        echo \"$PW\" | paas login URL --email ci@example.com --password-stdin")]
    Login {
        /// The server's URL.
        #[arg(default_value = "http://127.0.0.1:7000")]
        url: String,
        /// An API token to use instead of a password.
        #[arg(long, conflicts_with_all = ["email", "invitation"])]
        token: Option<String>,
        /// Your email (asked for when omitted).
        #[arg(long)]
        email: Option<String>,
        /// An invitation from `paas users:add`: choose your password and sign in.
        #[arg(long, value_name = "CODE", conflicts_with = "email")]
        invitation: Option<String>,
        /// Read the password from the first line of standard input (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Forget the saved login (the token stays valid until revoked: `paas tokens:revoke`).
    Logout,
    /// Show who the saved token belongs to.
    Whoami,
    /// Change your password (asks for the current one first, when one is set).
    Passwd {
        /// Read the passwords from standard input: the current one on the first line (when
        /// one is set), the new one on the next.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (admins only).
    Users,
    /// Add a user (admins only): prints a one-time invitation, or sets the password read
    /// from standard input.
    #[command(name = "users:add")]
    UsersAdd {
        email: String,
        /// Make them an admin: they see and change every app and manage users.
        #[arg(long)]
        admin: bool,
        /// Set their password from the first line of standard input instead of inviting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user (admins only): their tokens stop working at once. The apps they made
    /// stay. The last admin cannot be removed.
    #[command(name = "users:remove")]
    UsersRemove { email: String },
    /// List your API tokens (never the tokens themselves).
    Tokens {
        /// Everyone's tokens (admins only).
        #[arg(long)]
        all: bool,
    },
    /// Make an API token, for CI or a script; it is shown once.
    #[command(name = "tokens:create")]
    TokensCreate {
        /// What it is for, shown in `paas tokens`.
        #[arg(long, short)]
        description: String,
        /// Lifetime, like 90d, 12h, 2w or 1y (default: until revoked).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Revoke an API token by its ID (from `paas tokens`); it stops working at once.
    #[command(name = "tokens:revoke")]
    TokensRevoke { id: i64 },
    /// List who may see and change the app besides the admins.
    Access(AppArg),
    /// Let a user see and change the app (its owner or an admin may).
    #[command(name = "access:add")]
    AccessAdd {
        #[command(flatten)]
        app: AppArg,
        email: String,
    },
    /// Take a user's access to the app away (its owner or an admin may; anyone may leave).
    #[command(name = "access:remove")]
    AccessRemove {
        #[command(flatten)]
        app: AppArg,
        email: String,
    },
    /// Link the app to a GitHub repository: pushes to its branch there deploy here. Prints
    /// what to paste into GitHub's webhook settings (the secret, once).
    #[command(name = "github:link")]
    GithubLink {
        #[command(flatten)]
        app: AppArg,
        /// The repository, as OWNER/REPO.
        repository: String,
        /// The branch whose pushes deploy.
        #[arg(long, default_value = "main")]
        branch: String,
        /// The webhook secret to use (at least 16 characters; default: a random one).
        #[arg(long)]
        secret: Option<String>,
        /// Read a GitHub token from standard input: for private repositories and for commit
        /// statuses on GitHub. Stored, never shown again.
        #[arg(long)]
        token_stdin: bool,
    },
    /// Stop deploying the app from GitHub.
    #[command(name = "github:unlink")]
    GithubUnlink(AppArg),
    /// Show the app's GitHub link and its latest webhook deliveries with what came of each.
    Github(AppArg),
    /// List the app's routes: which paths go to which process type (the rest to web).
    Routes(AppArg),
    /// Send requests whose path starts with PREFIX to another process type than web (daphne
    /// on /ws/ beside gunicorn): the longest prefix wins. That type's processes listen on
    /// $PORT, are health-checked and roll out with no downtime, as web's do.
    #[command(
        name = "routes:add",
        after_help = "Example (Procfile: web: gunicorn …, channels: daphne -p $PORT …):\n  \
            paas routes:add /ws/ channels\n  paas ps:scale channels=1"
    )]
    RoutesAdd {
        #[command(flatten)]
        app: AppArg,
        /// The path prefix, such as /ws/.
        prefix: String,
        /// The process type that serves it, from the Procfile.
        process_type: String,
    },
    /// Stop routing a prefix: its requests go to web again.
    #[command(name = "routes:remove")]
    RoutesRemove {
        #[command(flatten)]
        app: AppArg,
        prefix: String,
    },
    /// List pipelines, or show one: each stage's apps, what they run, and how many commits
    /// each is behind the stage before.
    Pipelines { name: Option<String> },
    /// Create a pipeline: apps in stages (development, staging, production) that promote the
    /// image one stage tested to the next, with no rebuild.
    #[command(
        name = "pipelines:create",
        after_help = "Example:\n  paas pipelines:create shop\n  \
            paas pipelines:add shop -a shop-staging --stage staging\n  \
            paas pipelines:add shop -a shop-production --stage production\n  \
            paas pipelines:promote -a shop-staging"
    )]
    PipelinesCreate { name: String },
    /// Put an app at a stage of a pipeline (moving it within the pipeline).
    #[command(name = "pipelines:add")]
    PipelinesAdd {
        name: String,
        #[command(flatten)]
        app: AppArg,
        /// development, staging or production.
        #[arg(long)]
        stage: String,
    },
    /// Give each pull request on GitHub an app of its own (PIPELINE-pr-N, stage review): made
    /// when the pull request opens, deployed at each update, destroyed with all it owned when
    /// it closes. Pull requests come through the GitHub link of --from (an app of the
    /// pipeline), whose config vars --copy-config copies.
    #[command(
        name = "pipelines:review-apps",
        after_help = "Example:\n  paas pipelines:review-apps shop --from shop-staging \\\n    \
            --copy-config SECRET_KEY --copy-config DJANGO_SETTINGS_MODULE --addon postgres\n  \
            paas pipelines:review-apps shop --off"
    )]
    PipelinesReviewApps {
        name: String,
        /// The pipeline's app linked to the GitHub repository.
        #[arg(long, required_unless_present = "off")]
        from: Option<String>,
        /// A config var of --from to copy into each review app; repeat for several.
        #[arg(long = "copy-config", value_name = "KEY")]
        copy_config: Vec<String>,
        /// An add-on each review app gets its own of (postgres, redis); repeat for several.
        #[arg(long = "addon", value_name = "SERVICE")]
        addons: Vec<String>,
        /// Also for pull requests from forks (their code then runs with the copied config).
        #[arg(long)]
        forks: bool,
        /// Turn review apps off (those that exist go when their pull requests close).
        #[arg(long, conflicts_with_all = ["from", "copy_config", "addons", "forks"])]
        off: bool,
    },
    /// Take an app out of its pipeline (the app stays as it is).
    #[command(name = "pipelines:remove")]
    PipelinesRemove(AppArg),
    /// Delete a pipeline; its apps stay, in no pipeline.
    #[command(name = "pipelines:destroy")]
    PipelinesDestroy {
        name: String,
        /// The pipeline's name again, to confirm.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Release the image the app runs on the apps of the next stage (or on --to APP), each
    /// with its own config vars and release phase, with no build. Refused unless the app's
    /// latest release is the one that serves.
    #[command(name = "pipelines:promote")]
    PipelinesPromote {
        #[command(flatten)]
        app: AppArg,
        /// Promote to these apps (of a later stage) only; repeat for several.
        #[arg(long)]
        to: Vec<String>,
    },
    /// List the app's scheduled jobs with their last run, runs and skipped runs.
    Cron(AppArg),
    /// Run a command on a schedule (Heroku Scheduler): five cron fields in UTC, MINUTE HOUR
    /// DAY MONTH WEEKDAY. Each run is a one-off container of the current release; a run due
    /// while the last one still goes is skipped.
    #[command(
        name = "cron:add",
        after_help = "Examples:\n  paas cron:add \"0 11 * * *\" python manage.py run_daily_tasks\n  \
            paas cron:add \"*/10 * * * *\" python manage.py clearsessions"
    )]
    CronAdd {
        #[command(flatten)]
        app: AppArg,
        /// When, in UTC: "0 11 * * *" is every day at 11:00.
        schedule: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Stop a scheduled job, by its ID from `paas cron` (cron.3 or 3).
    #[command(name = "cron:remove")]
    CronRemove {
        #[command(flatten)]
        app: AppArg,
        id: String,
    },
    /// List the app's persistent volumes.
    Volumes(AppArg),
    /// Add a persistent volume: a folder kept across deploys, rollbacks and restarts,
    /// mounted at PATH in every process of the app (and `paas run`). The app's processes
    /// are replaced with no downtime to mount it.
    #[command(
        name = "volumes:add",
        after_help = "Example:\n  paas volumes:add media /app/media   # Django's MEDIA_ROOT"
    )]
    VolumesAdd {
        #[command(flatten)]
        app: AppArg,
        /// Its name: lowercase letters, digits, - and _.
        name: String,
        /// Where it is mounted, an absolute path such as /app/media.
        path: String,
    },
    /// Remove a volume and every file in it; the app's processes are replaced without it.
    #[command(name = "volumes:remove")]
    VolumesRemove {
        #[command(flatten)]
        app: AppArg,
        name: String,
        /// The volume's name again, to confirm.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// List add-ons: the app's (-a APP, or this checkout's), or every one you can see.
    Addons {
        #[command(flatten)]
        app: AppArg,
        /// Every add-on you can see, whatever the checkout's app.
        #[arg(long)]
        all: bool,
    },
    /// Create a PostgreSQL (with PostGIS) or Redis add-on for the app and attach it: the app
    /// gets DATABASE_URL or REDIS_URL (or AS_URL) in a new release, rolled out with no
    /// downtime. Its data lives in a volume on this server, reachable only by attached apps.
    #[command(
        name = "addons:create",
        after_help = "Examples:\n  paas addons:create postgres -a shop          # DATABASE_URL\n  \
            paas addons:create redis -a shop             # REDIS_URL\n  \
            paas addons:create postgres --as ANALYTICS   # ANALYTICS_URL"
    )]
    AddonsCreate {
        #[command(flatten)]
        app: AppArg,
        /// `postgres` or `redis` (Heroku's `heroku-postgresql`, `heroku-redis` work too).
        service: String,
        /// Attach as this name: the app gets NAME_URL (default: DATABASE or REDIS).
        #[arg(long = "as", value_name = "NAME")]
        attach_as: Option<String>,
        /// The add-on's name (default: APP-postgres, APP-redis).
        #[arg(long)]
        name: Option<String>,
    },
    /// Show an add-on: its service and version, state, the apps it is attached to, backups.
    #[command(name = "addons:info")]
    AddonsInfo { name: String },
    /// Attach an existing add-on to another app as well (a staging copy sharing the
    /// database): that app gets NAME_URL in a new release.
    #[command(name = "addons:attach")]
    AddonsAttach {
        name: String,
        #[command(flatten)]
        app: AppArg,
        #[arg(long = "as", value_name = "NAME")]
        attach_as: Option<String>,
    },
    /// Detach an add-on from an app (not the app it was created for): the app loses its
    /// NAME_URL in a new release. The add-on and its data stay.
    #[command(name = "addons:detach")]
    AddonsDetach {
        name: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Destroy an add-on and its data (its backups stay on the server); every attached app
    /// loses its URL.
    #[command(name = "addons:destroy")]
    AddonsDestroy {
        name: String,
        /// The add-on's name again, to confirm.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// List the backups of the app's PostgreSQL add-on (or of ADDON), with size and status.
    #[command(name = "pg:backups")]
    PgBackups {
        addon: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Back up the app's PostgreSQL add-on now (pg_dump, custom format, on the server).
    #[command(name = "pg:backups:capture")]
    PgBackupsCapture {
        addon: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Replace everything in the add-on with a backup (pg_restore --clean, in one
    /// transaction: all of it or, on an error, nothing).
    #[command(name = "pg:backups:restore")]
    PgBackupsRestore {
        /// The backup, like b003 (from `paas pg:backups`).
        id: String,
        addon: Option<String>,
        #[command(flatten)]
        app: AppArg,
        /// The add-on's name, to confirm.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Back the add-on up on a schedule: a cron expression in UTC, e.g. "0 3 * * *" for
    /// every night at 03:00. A failed backup shows in `paas pg:backups` and the app's logs.
    #[command(name = "pg:backups:schedule")]
    PgBackupsSchedule {
        schedule: String,
        addon: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Stop the add-on's scheduled backups.
    #[command(name = "pg:backups:unschedule")]
    PgBackupsUnschedule {
        addon: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Run psql against the app's PostgreSQL add-on, in a one-off container beside the app;
    /// SQL comes from standard input (`paas pg:psql < schema.sql`, or typed, ending with
    /// Ctrl-D).
    #[command(name = "pg:psql")]
    PgPsql {
        addon: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show the audit log, newest first: who changed what, when, from where, through what.
    /// Admins see everything; others the apps they can access and their own doing.
    Audit {
        /// Only this app's changes.
        #[arg(short, long)]
        app: Option<String>,
        /// How many to show.
        #[arg(short = 'n', long, default_value_t = 50)]
        num: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List apps.
    Apps,
    /// Create an app (random name if none given) and add the `paas` git remote here.
    #[command(name = "apps:create")]
    AppsCreate {
        /// App name: 2-30 lowercase letters, digits and single hyphens.
        name: Option<String>,
        /// Do not add a git remote.
        #[arg(long)]
        no_remote: bool,
        /// Name of the git remote to add.
        #[arg(short, long, default_value = "paas")]
        remote: String,
    },
    /// Change an app's settings.
    #[command(name = "apps:update")]
    AppsUpdate {
        #[command(flatten)]
        app: AppArg,
        /// Deploy pushes to this branch only (default: main, with master also accepted).
        #[arg(long, value_name = "BRANCH")]
        deploy_branch: Option<String>,
        /// Build pushed tags matching PATTERN (`v*`; `*` matches anything) into releases
        /// that wait for `paas releases:approve`; the running release serves until then.
        #[arg(long, value_name = "PATTERN", conflicts_with = "no_deploy_tags")]
        deploy_tags: Option<String>,
        /// Refuse pushed tags again.
        #[arg(long)]
        no_deploy_tags: bool,
    },
    /// Point a git remote of this checkout (default `paas`) at the app: then
    /// `git push paas main` deploys it.
    #[command(name = "git:remote")]
    GitRemote(AppArg),
    /// git's credential helper (set up by `paas login`): answers git with the saved token.
    #[command(name = "git-credential", hide = true)]
    GitCredential {
        /// get, store or erase, as git passes it.
        action: String,
    },
    /// The pre-receive hook of app repositories: run by git inside a push, on the server.
    #[command(name = "git-hook", hide = true)]
    GitHook,
    /// Show an app's details.
    #[command(name = "apps:info")]
    AppsInfo(AppArg),
    /// Permanently destroy an app: its config, releases and formation.
    #[command(name = "apps:destroy")]
    AppsDestroy {
        #[command(flatten)]
        app: AppArg,
        /// The app's name again, to confirm.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Show config vars.
    Config {
        #[command(flatten)]
        app: AppArg,
        /// Print KEY=value lines, ready for a shell or a .env file.
        #[arg(long, conflicts_with = "json")]
        shell: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print one config var's value.
    #[command(name = "config:get")]
    ConfigGet {
        #[command(flatten)]
        app: AppArg,
        key: String,
    },
    /// Set config vars (KEY=value …); makes a new release.
    #[command(name = "config:set")]
    ConfigSet {
        #[command(flatten)]
        app: AppArg,
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Remove config vars; makes a new release.
    #[command(name = "config:unset")]
    ConfigUnset {
        #[command(flatten)]
        app: AppArg,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// List releases, newest first.
    Releases {
        #[command(flatten)]
        app: AppArg,
        /// How many to show.
        #[arg(short = 'n', long, default_value_t = 15)]
        num: usize,
    },
    /// List builds, newest first.
    Builds(AppArg),
    /// Show one build with its whole log.
    #[command(name = "builds:info")]
    BuildsInfo {
        #[command(flatten)]
        app: AppArg,
        /// Build number (default: the latest).
        id: Option<i64>,
    },
    /// Show one release.
    #[command(name = "releases:info")]
    ReleasesInfo {
        #[command(flatten)]
        app: AppArg,
        /// Version, like v3 (default: the latest).
        version: Option<String>,
    },
    /// List the app's hostnames (APP.DOMAIN and custom domains) with their HTTPS
    /// certificates: pending, issued until DATE, or failed and why.
    Domains(AppArg),
    /// Show or change the app's HTTPS: --redirect off serves plain HTTP too (on by default
    /// once a host has a certificate); --hsts on adds Strict-Transport-Security.
    Https {
        #[command(flatten)]
        app: AppArg,
        /// Redirect plain HTTP to HTTPS where a certificate exists.
        #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
        redirect: Option<bool>,
        /// Send Strict-Transport-Security (a year) on HTTPS answers. Browsers then refuse
        /// plain HTTP to the host for that long: turn it on once HTTPS works.
        #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
        hsts: Option<bool>,
    },
    /// Route a custom domain (www.example.com, or *.example.com) to the app.
    #[command(name = "domains:add")]
    DomainsAdd {
        #[command(flatten)]
        app: AppArg,
        hostname: String,
    },
    /// Stop routing a custom domain to the app.
    #[command(name = "domains:remove")]
    DomainsRemove {
        #[command(flatten)]
        app: AppArg,
        hostname: String,
    },
    /// Show the app's output (`app[web.1]: …`) and what paas did to it (`paas[deploy]: …`);
    /// --tail keeps streaming new lines.
    Logs {
        #[command(flatten)]
        app: AppArg,
        /// Keep streaming new lines until interrupted.
        #[arg(short, long)]
        tail: bool,
        /// Only one process type (web) or process (web.1).
        #[arg(short, long)]
        ps: Option<String>,
        /// Lines of history per process.
        #[arg(short, long, default_value_t = 100)]
        num: usize,
    },
    /// Run a one-off command in a fresh container of the current release, with its config
    /// (e.g. `paas run python manage.py showmigrations`); exits with the command's code.
    /// Piped input becomes the command's standard input (`paas run python manage.py
    /// loaddata --format=json - < data.json`); there is no terminal (TTY) yet.
    Run {
        #[command(flatten)]
        app: AppArg,
        /// Send no input, even when standard input is not a terminal (in a `while read`
        /// loop, say, whose lines it would otherwise take).
        #[arg(short = 'n', long)]
        no_input: bool,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Replace the app's processes (or one type's) with fresh ones, with no downtime.
    #[command(name = "ps:restart")]
    PsRestart {
        #[command(flatten)]
        app: AppArg,
        /// Only this process type, e.g. web.
        process_type: Option<String>,
    },
    /// List the app's processes: type and index, release, state and uptime, the Swarm node
    /// each runs on (with --scheduler swarm), restarts.
    Ps(AppArg),
    /// Roll back to an earlier release's code and config (default: the one before the
    /// current one). Makes a new release; no rebuild.
    Rollback {
        #[command(flatten)]
        app: AppArg,
        /// Version to roll back to, like v3.
        version: Option<String>,
    },
    /// Roll out a release that waits for approval (a tag deploy, see apps:update
    /// --deploy-tags). You are recorded as who approved it.
    #[command(name = "releases:approve")]
    ReleasesApprove {
        #[command(flatten)]
        app: AppArg,
        /// The waiting release, like v7.
        version: String,
    },
    /// Turn down a release that waits for approval: it never runs.
    #[command(name = "releases:reject")]
    ReleasesReject {
        #[command(flatten)]
        app: AppArg,
        /// The waiting release, like v7.
        version: String,
    },
    /// Set how many containers run per process type (web=2 worker=1); no arguments shows it.
    #[command(name = "ps:scale")]
    PsScale {
        #[command(flatten)]
        app: AppArg,
        #[arg(value_name = "TYPE=N")]
        changes: Vec<String>,
    },
}

/// The command line, with `paas server`'s config file merged in (and `--print-config`
/// answered here, since it needs to know where each setting came from).
fn parse() -> Result<Cli, ExitCode> {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = Cli::command().get_matches_from(args.clone());
    let Some(("server", server)) = matches.subcommand() else {
        return Cli::from_arg_matches(&matches).map_err(|e| e.exit());
    };
    let root = Cli::command();
    let command = root.find_subcommand("server").expect("paas has a server command");
    let (args, from_file) = match commands::server::with_config_file(args, command, server) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Err(ExitCode::FAILURE);
        }
    };
    let matches = Cli::command().get_matches_from(args);
    if let Some(("server", server)) = matches.subcommand()
        && server.get_flag("print_config")
    {
        commands::server::print_config(command, server, &from_file);
        return Err(ExitCode::SUCCESS);
    }
    Cli::from_arg_matches(&matches).map_err(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::GitHook = cli.command {
        // The hook's verdict is its exit code; its output is already the pusher's.
        return match runtime.block_on(commands::push::hook()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                println!(" !     {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let code = match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Not a plain drop, which would wait for blocking reads: `paas run` reads its stdin on a
    // thread, and a read of a pipe that never ends (inherited from cron, CI) cannot be
    // cancelled.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn run(command: Command) -> anyhow::Result<()> {
    use commands::{accounts, addons, apps, builds, config, domains, ps, releases, session};
    match command {
        Command::Server(args) => commands::server::run(*args).await,
        Command::Router(args) => commands::router::run(args).await,
        Command::Build(args) => commands::build::run(args).await,
        Command::Login { url, token, email, invitation, password_stdin } => {
            session::login(session::LoginArgs { url, token, email, invitation, password_stdin })
                .await
        }
        Command::Logout => session::logout(),
        Command::Whoami => session::whoami().await,
        Command::Passwd { password_stdin } => session::passwd(password_stdin).await,
        Command::Users => accounts::users().await,
        Command::UsersAdd { email, admin, password_stdin } => {
            accounts::add_user(&email, admin, password_stdin).await
        }
        Command::UsersRemove { email } => accounts::remove_user(&email).await,
        Command::Tokens { all } => accounts::tokens(all).await,
        Command::TokensCreate { description, expires } => {
            accounts::create_token(&description, expires.as_deref()).await
        }
        Command::TokensRevoke { id } => accounts::revoke_token(id).await,
        Command::Access(app) => accounts::access(&app).await,
        Command::AccessAdd { app, email } => accounts::add_access(&app, &email).await,
        Command::AccessRemove { app, email } => accounts::remove_access(&app, &email).await,
        Command::GithubLink { app, repository, branch, secret, token_stdin } => {
            commands::github::link(&app, &repository, &branch, secret, token_stdin).await
        }
        Command::GithubUnlink(app) => commands::github::unlink(&app).await,
        Command::Github(app) => commands::github::show(&app).await,
        Command::Pipelines { name: None } => commands::pipelines::list().await,
        Command::Pipelines { name: Some(name) } => commands::pipelines::show(&name).await,
        Command::PipelinesCreate { name } => commands::pipelines::create(&name).await,
        Command::PipelinesAdd { name, app, stage } => {
            commands::pipelines::add(&name, &app, &stage).await
        }
        Command::PipelinesRemove(app) => commands::pipelines::remove(&app).await,
        Command::PipelinesReviewApps { name, from, copy_config, addons, forks, off } => {
            let settings = from.filter(|_| !off).map(|app| paas_server::core::ReviewApps {
                app,
                copy_config,
                addons,
                forks,
            });
            commands::pipelines::review_apps(&name, settings).await
        }
        Command::PipelinesDestroy { name, confirm } => {
            commands::pipelines::destroy(&name, confirm).await
        }
        Command::PipelinesPromote { app, to } => commands::pipelines::promote(&app, to).await,
        Command::Routes(app) => commands::routes::list(&app).await,
        Command::RoutesAdd { app, prefix, process_type } => {
            commands::routes::add(&app, &prefix, &process_type).await
        }
        Command::RoutesRemove { app, prefix } => commands::routes::remove(&app, &prefix).await,
        Command::Cron(app) => commands::cron::list(&app).await,
        Command::CronAdd { app, schedule, command } => {
            commands::cron::add(&app, &schedule, &command).await
        }
        Command::CronRemove { app, id } => commands::cron::remove(&app, &id).await,
        Command::Volumes(app) => commands::volumes::list(&app).await,
        Command::VolumesAdd { app, name, path } => commands::volumes::add(&app, &name, &path).await,
        Command::VolumesRemove { app, name, confirm } => {
            commands::volumes::remove(&app, &name, confirm).await
        }
        Command::Addons { app, all } => addons::list(&app, all).await,
        Command::AddonsCreate { app, service, attach_as, name } => {
            addons::create(&app, &service, attach_as, name).await
        }
        Command::AddonsInfo { name } => addons::info(&name).await,
        Command::AddonsAttach { name, app, attach_as } => {
            addons::attach(&name, &app, attach_as).await
        }
        Command::AddonsDetach { name, app } => addons::detach(&name, &app).await,
        Command::AddonsDestroy { name, confirm } => addons::destroy(&name, confirm).await,
        Command::PgBackups { addon, app } => addons::backups(addon.as_deref(), &app).await,
        Command::PgBackupsCapture { addon, app } => addons::capture(addon.as_deref(), &app).await,
        Command::PgBackupsRestore { id, addon, app, confirm } => {
            addons::restore(&id, addon.as_deref(), &app, confirm).await
        }
        Command::PgBackupsSchedule { schedule, addon, app } => {
            addons::schedule(Some(&schedule), addon.as_deref(), &app).await
        }
        Command::PgBackupsUnschedule { addon, app } => {
            addons::schedule(None, addon.as_deref(), &app).await
        }
        Command::PgPsql { addon, app } => addons::psql(addon, &app).await,
        Command::Audit { app, num, json } => accounts::audit(app.as_deref(), num, json).await,
        Command::Apps => apps::list().await,
        Command::AppsCreate { name, no_remote, remote } => {
            apps::create(name, (!no_remote).then_some(remote)).await
        }
        Command::AppsInfo(app) => apps::info(&app).await,
        Command::AppsUpdate { app, deploy_branch, deploy_tags, no_deploy_tags } => {
            let tags = if no_deploy_tags { Some(String::new()) } else { deploy_tags };
            apps::update(&app, deploy_branch, tags).await
        }
        Command::GitRemote(app) => commands::push::remote(&app),
        Command::GitCredential { action } => commands::push::credential(&action),
        Command::GitHook => unreachable!("handled before the runtime runs commands"),
        Command::AppsDestroy { app, confirm } => apps::destroy(&app, confirm).await,
        Command::Config { app, shell, json } => config::show(&app, shell, json).await,
        Command::ConfigGet { app, key } => config::get(&app, &key).await,
        Command::ConfigSet { app, pairs } => config::set(&app, &pairs).await,
        Command::ConfigUnset { app, keys } => config::unset(&app, &keys).await,
        Command::Releases { app, num } => releases::list(&app, num).await,
        Command::ReleasesInfo { app, version } => releases::info(&app, version).await,
        Command::Builds(app) => builds::list(&app).await,
        Command::BuildsInfo { app, id } => builds::info(&app, id).await,
        Command::PsScale { app, changes } => ps::scale(&app, &changes).await,
        Command::Ps(app) => ps::list(&app).await,
        Command::PsRestart { app, process_type } => ps::restart(&app, process_type).await,
        Command::Run { app, no_input, command } => ps::run(&app, &command, no_input).await,
        Command::Logs { app, tail, ps, num } => ps::logs(&app, tail, ps.as_deref(), num).await,
        Command::Rollback { app, version } => releases::rollback(&app, version).await,
        Command::ReleasesApprove { app, version } => {
            releases::decide(&app, &version, "approve").await
        }
        Command::ReleasesReject { app, version } => {
            releases::decide(&app, &version, "reject").await
        }
        Command::Domains(app) => domains::list(&app).await,
        Command::Https { app, redirect, hsts } => domains::https(&app, redirect, hsts).await,
        Command::DomainsAdd { app, hostname } => domains::add(&app, &hostname).await,
        Command::DomainsRemove { app, hostname } => domains::remove(&app, &hostname).await,
    }
}

/// `on` or `off` (also true/false, yes/no, 1/0).
fn parse_on_off(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{value:?} is neither on nor off")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
