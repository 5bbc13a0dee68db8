//! Source tree → container image.
//!
//! Two halves with a plain value between them:
//!
//! - [`plan`] looks at a directory and decides *what* to build: a `Dockerfile` in the app
//!   wins; otherwise the first [provider](providers) that recognises the tree (Python, Node,
//!   Go, Ruby, static site, Procfile-only "shell") describes base image, dependency install
//!   step (keyed on the lock files), build command and process types. The result, a
//!   [`BuildPlan`], is printable and serializable, and needs no Docker.
//! - [`Builder::build`] turns a plan into an image through the Docker Engine API's classic
//!   builder: it generates a Dockerfile that copies the lock files before the rest of the code
//!   (so a code-only change reuses the dependency layer), streams every line into a
//!   [`BuildLog`], and returns a [`BuiltImage`].
//!
//! Config vars reach detected builds as build-time environment in a build stage, never in
//! the image's `ENV` or history, and Dockerfile builds as the build args they declare. The
//! app's files are read without ever leaving its directory (`files.rs`). Base images come
//! from [`BaseImages`]: by default the offline `paas/*` stack images where the
//! engine has them, else the official slim images.

mod config;
mod context;
mod docker;
mod dockerfile;
mod error;
mod files;
mod heroku_yml;
mod hints;
mod ignore;
mod log;
mod manifest;
mod plan;
mod procfile;
mod providers;

pub use config::{BaseImages, BuilderConfig, ImageRole, ImageSource};
pub use docker::{BuildRequest, Builder, BuiltImage, app_image_tag};
pub use dockerfile::{GENERATED_DOCKERFILE, generate as generate_dockerfile};
pub use error::BuildError;
pub use log::{BuildLog, LogSubscription};
pub use manifest::{AppManifest, CronEntry};
pub use plan::{BuildPlan, ClientBuild, Install, Kind, ProcessSource, Stage, plan};
pub use procfile::parse as parse_procfile;
